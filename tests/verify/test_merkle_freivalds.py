"""Merkle commitments with inclusion proofs, and Freivalds' check of matrix products."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metisnet.crypto.prg import Csprng
from metisnet.errors import ShapeError, ValidationError
from metisnet.verify.freivalds import freivalds_check, freivalds_error_bound
from metisnet.verify.merkle import MerkleTree, verify_inclusion


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=40))
def test_every_leaf_has_a_valid_proof(chunks: list[bytes]) -> None:
    t = MerkleTree(chunks, b"dom")
    for i, c in enumerate(chunks):
        assert verify_inclusion(t.root, len(chunks), i, c, t.proof(i), b"dom")
        assert not verify_inclusion(t.root, len(chunks), i, c + b"x", t.proof(i), b"dom")
        assert not verify_inclusion(t.root, len(chunks), i, c, t.proof(i), b"other")
        assert not verify_inclusion(t.root, len(chunks) + 1, i, c, t.proof(i), b"dom")


def test_roots_bind_order_count_duplicates_and_domain() -> None:
    base = [b"a", b"b", b"c"]
    root = MerkleTree(base, b"t").root
    others = [[b"b", b"a", b"c"], [b"a", b"b"], [b"a", b"b", b"c", b"c"], [b"a", b"a", b"c"]]
    for o in others:
        assert MerkleTree(o, b"t").root != root
    assert MerkleTree(base, b"u").root != root
    assert MerkleTree([], b"t").root != MerkleTree([b""], b"t").root
    with pytest.raises(ValidationError):
        MerkleTree(base).proof(3)
    t = MerkleTree(base, b"t")
    assert not verify_inclusion(root, 3, 1, b"b", t.proof(0), b"t")  # wrong position
    assert not verify_inclusion(root, 3, 5, b"b", t.proof(1), b"t")
    assert not verify_inclusion(root, 3, 1, b"b", [*t.proof(1), b"x" * 32], b"t")


def test_freivalds_passes_true_products_and_catches_wrong_ones() -> None:
    rng = Csprng(b"freivalds-test-1")
    caught = 0
    trials = 200
    for _ in range(trials):
        a = rng.below(1000, (6, 5)).astype(np.int64) - 500
        b = rng.below(1000, (5, 4)).astype(np.int64) - 500
        c = a @ b
        assert freivalds_check(a, b, c, rng=rng)
        assert freivalds_check(a, b, c, reps=2, r_bits=20, rng=rng)
        bad = c.copy()
        i, j = int(rng.below(6, 1)[0]), int(rng.below(4, 1)[0])
        bad[i, j] += 1 + int(rng.below(5, 1)[0])
        caught += not freivalds_check(a, b, bad, reps=2, r_bits=20, rng=rng)
    assert caught == trials
    assert freivalds_error_bound(40) == 2.0**-40
    assert freivalds_error_bound(2, 20) == 2.0**-40


def test_freivalds_over_rings_and_big_integers() -> None:
    rng = Csprng(b"freivalds-test-2")
    a = rng.uint64((4, 3))
    b = rng.uint64((3, 2))
    c = a @ b  # numpy wraps modulo 2^64: the MPC ring
    assert freivalds_check(a, b, c, modulus=2**64, rng=rng)
    bad = c.copy()
    bad[0, 0] ^= np.uint64(1 << 63)  # a zero-divisor-sized error: caught w.p. 1/2 per rep
    assert not freivalds_check(a, b, bad, modulus=2**64, reps=64, rng=rng)
    big = np.array([[2**100, 3], [5, -(2**90)]], dtype=object)
    assert freivalds_check(big, big, big.dot(big), r_bits=30, reps=2)
    p = 2**61 - 1
    assert freivalds_check(big, big, np.mod(big.dot(big), p), modulus=p, r_bits=60, reps=1)
    assert freivalds_error_bound(1, 60, p) == 2.0**-60
    with pytest.raises(ValidationError):
        freivalds_check(big, big, big, modulus=15)
    with pytest.raises(ShapeError):
        freivalds_check(big, big, np.zeros((3, 2), dtype=object))
    with pytest.raises(ValidationError):
        freivalds_check(np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2)))
