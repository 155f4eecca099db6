"""Two-party ECDH-PSI over secp256k1 between two data nodes (no committee)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from metisnet.algorithms.psi_ecdh import EcdhPsi, ecdh_psi, hash_to_curve
from metisnet.crypto.prg import Csprng
from metisnet.errors import ProtocolError, ValidationError
from metisnet.net.channel import InMemoryNetwork


def run_two(ids_a: list[Any], ids_b: list[Any], **kw: Any) -> list[Any]:
    net = InMemoryNetwork(2, timeout=60.0)
    out: list[Any] = [None, None]
    errors: list[BaseException] = []

    def go(i: int, ids: list[Any]) -> None:
        try:
            out[i] = ecdh_psi(net.channel(i), ids, rng=Csprng(bytes([i + 1]) * 16), **kw)
        except BaseException as exc:
            errors.append(exc)

    ts = [threading.Thread(target=go, args=(i, ids)) for i, ids in enumerate([ids_a, ids_b])]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return out


def test_intersection_to_the_receiver() -> None:
    a = [f"user{i}@example.org" for i in range(0, 300, 3)]
    b = [f"user{i}@example.org" for i in range(0, 300, 5)]
    out = run_two(a, b, receiver=0)
    assert out[1] is None  # the sender learns nothing but |A|
    assert sorted(out[0]) == sorted(set(a) & set(b))


def test_size_only_and_receiver_one() -> None:
    a = list(range(1000, 1200))
    b = list(range(1150, 1400))
    out = run_two(a, b, receiver=1, mode="size")
    assert out == [None, 50]


def test_empty_and_disjoint_sets() -> None:
    assert run_two([b"x", b"y"], [b"z"], receiver=0) == [[], None]
    assert run_two([], [b"z"], receiver=0, mode="size") == [0, None]


def test_hash_to_curve_is_deterministic_and_domain_separated() -> None:
    assert hash_to_curve("alice") == hash_to_curve(b"alice")
    assert hash_to_curve("alice") != hash_to_curve("bob")
    assert len(hash_to_curve(7)) == 33


def test_bad_points_and_duplicates_are_refused() -> None:
    with pytest.raises(ValidationError):
        EcdhPsi(["a", "a"])
    party = EcdhPsi(["a", "b"])
    with pytest.raises(ProtocolError):
        party.respond(np.zeros((2, 33), dtype=np.uint8), shuffle=False)
