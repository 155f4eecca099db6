"""GR(2^64, 48): the modulus is irreducible modulo 2 (Rabin's test), known answers for the
reduction, ring laws as property tests, and the exceptional set's two facts that the
inner-product check's soundness rests on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metisnet.crypto import galois_ring as gr
from metisnet.errors import ShapeError

D = gr.DEGREE
ELEM = st.lists(st.integers(0, 2**64 - 1), min_size=D, max_size=D).map(
    lambda v: np.array(v, dtype=np.uint64))
SETTINGS = settings(max_examples=60, deadline=None)


def _f2_mulmod(a: int, b: int, f: int, deg: int) -> int:
    r = 0
    while b:
        if b & 1:
            r ^= a
        b >>= 1
        a <<= 1
        if (a >> deg) & 1:
            a ^= f
    return r


def _f2_gcd(a: int, b: int) -> int:
    while b:
        while a and a.bit_length() >= b.bit_length():
            a ^= b << (a.bit_length() - b.bit_length())
        a, b = b, a
    return a


def _rabin(f: int, deg: int) -> bool:
    """Rabin's irreducibility test over GF(2) for a degree-48 polynomial (48 = 2^4 3)."""
    def x_pow_2k(k: int) -> int:
        x = 2
        for _ in range(k):
            x = _f2_mulmod(x, x, f, deg)
        return x

    return x_pow_2k(deg) == 2 and all(_f2_gcd(f, x_pow_2k(deg // q) ^ 2) == 1 for q in (2, 3))


def test_modulus_is_irreducible_mod_2() -> None:
    """Rabin: x^(2^48) = x mod F, and gcd(x^(2^(48/q)) - x, F) = 1 for q = 2, 3; the same
    test rejects reducible polynomials (so it can fail)."""
    f = 1 << D
    for t in gr.MODULUS_TAPS:
        f |= 1 << t
    assert _rabin(f, D)
    assert not _rabin((1 << D) | 1, D)  # (x + 1)^48
    assert not _rabin((1 << D) | (1 << 24) | 1, D)  # (x^24 + x^12 + 1)^2 over GF(2)


def test_known_answers() -> None:
    x = np.zeros(D, dtype=np.uint64)
    x[1] = 1
    top = np.zeros(D, dtype=np.uint64)
    top[D - 1] = 1
    # X^47 * X = X^48 = -(1 + X + X^2 + X^17)
    want = np.zeros(D, dtype=np.uint64)
    want[list(gr.MODULUS_TAPS)] = np.uint64(2**64 - 1)
    assert np.array_equal(gr.mul(top, x), want)
    # (2 X^47) * (3 X^47) = 6 X^94 = 6 X^46 X^48, reduced by hand through the taps
    a, b = top * np.uint64(2), top * np.uint64(3)
    full = np.zeros(2 * D - 1, dtype=np.uint64)
    full[2 * D - 2] = 6
    assert np.array_equal(gr.mul(a, b), gr.reduce(full))
    one = np.zeros(D, dtype=np.uint64)
    one[0] = 1
    assert np.array_equal(gr.powers(x, 3)[:, 2], gr.mul(x, x))
    assert np.array_equal(gr.powers(x, 1)[:, 0], one)


@SETTINGS
@given(a=ELEM, b=ELEM, c=ELEM)
def test_ring_laws(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    assert np.array_equal(gr.mul(a, b), gr.mul(b, a))
    assert np.array_equal(gr.mul(gr.mul(a, b), c), gr.mul(a, gr.mul(b, c)))
    assert np.array_equal(gr.mul(a, b + c), gr.mul(a, b) + gr.mul(a, c))
    assert np.array_equal(gr.mul_matrix(b) @ a, gr.mul(a, b))


@SETTINGS
@given(a=st.lists(ELEM, min_size=1, max_size=5), b=st.lists(ELEM, min_size=5, max_size=5))
def test_vector_forms_agree_with_scalar_products(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    n = len(a)
    av = np.stack(a, axis=1)
    bv = np.stack(b[:n], axis=1)
    each = [gr.mul(a[i], b[i]) for i in range(n)]
    assert np.array_equal(gr.mul_many(av, bv), np.stack(each, axis=1))
    assert np.array_equal(gr.inner(av, bv), np.sum(each, axis=0, dtype=np.uint64))
    base = bv[0]  # a base-ring value times an element scales its coefficients
    assert np.array_equal(gr.mul_many(av, gr.embed(base)), av * base)


@SETTINGS
@given(words=st.lists(st.integers(0, 2**64 - 1), min_size=2, max_size=2))
def test_exceptional_differences_are_units(words: list[int]) -> None:
    """Two distinct exceptional elements differ by a unit, so no non-zero base value is
    killed by it: in particular not 2^63, the error a random factor of Z_2^64 kills half
    the time."""
    e = gr.exceptional(np.array(words, dtype=np.uint64), nonzero=True)
    diff = e[:, 0] - e[:, 1]
    if not diff.any():
        return
    worst = gr.embed(np.array([1 << 63], dtype=np.uint64))[:, 0]
    assert gr.mul(diff, worst).any()
    assert set(np.unique(e)) <= {0, 1}


def test_nonzero_points_and_shapes() -> None:
    e = gr.exceptional(np.zeros(3, dtype=np.uint64), nonzero=True)
    assert np.array_equal(e[0], np.ones(3, dtype=np.uint64)) and not e[1:].any()
    with pytest.raises(ShapeError):
        gr.mul(np.zeros(3, dtype=np.uint64), np.zeros(D, dtype=np.uint64))
    with pytest.raises(ShapeError):
        gr.inner(np.zeros((D, 2), dtype=np.uint64), np.zeros((D, 3), dtype=np.uint64))
    with pytest.raises(ShapeError):
        gr.reduce(np.zeros(2 * D, dtype=np.uint64))
