"""Shared keys for the HE tests.

The bulk of the tests use 512-bit Paillier keys (fast; far below the 2048-bit minimum for
real use, which :data:`metisnet.he.paillier.MIN_SECURE_KEY_BITS` states); a few use 2048.
"""

from __future__ import annotations

import pytest

from metisnet.crypto.prg import Csprng
from metisnet.he.paillier import PaillierKeypair, generate_keypair


@pytest.fixture(scope="session")
def kp512() -> PaillierKeypair:
    return generate_keypair(512, rng=Csprng(b"kp512-a-test-seed"))


@pytest.fixture(scope="session")
def kp512b() -> PaillierKeypair:
    return generate_keypair(512, rng=Csprng(b"kp512-b-test-seed"))


@pytest.fixture(scope="session")
def kp2048() -> PaillierKeypair:
    return generate_keypair(2048, rng=Csprng(b"kp2048-test-seed"))
