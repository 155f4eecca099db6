"""Shared keys for the verification tests (512-bit Paillier keys for speed: tests only)."""

from __future__ import annotations

import pytest

from metisnet.crypto.prg import Csprng
from metisnet.he.paillier import PaillierKeypair, generate_keypair


@pytest.fixture(scope="session")
def vkp() -> PaillierKeypair:
    return generate_keypair(512, rng=Csprng(b"verify-kp-seed-1"))


@pytest.fixture(scope="session")
def vkp_other() -> PaillierKeypair:
    return generate_keypair(512, rng=Csprng(b"verify-kp-seed-2"))


@pytest.fixture(scope="session")
def vkp2048() -> PaillierKeypair:
    return generate_keypair(2048, rng=Csprng(b"verify-kp2048-s1"))
