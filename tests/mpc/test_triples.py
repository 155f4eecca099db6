"""The sacrifice algebra of :mod:`metisnet.mpc.triples` against the plaintext computation.

The three parties' pairs of ``v`` must reconstruct to ``(z - x y) - (c - a b)`` (XOR and
AND for the boolean form), whether the result is written into fresh arrays or over the
caller's ``c`` (the bucketing's in-place path).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metisnet.mpc.triples import plan, sacrifice_arith, sacrifice_bool

U64 = np.uint64


def _share(rng: np.random.Generator, v: np.ndarray, boolean: bool) -> list[np.ndarray]:
    s0 = rng.integers(0, 2**64, v.shape, dtype=np.uint64, endpoint=False)
    s1 = rng.integers(0, 2**64, v.shape, dtype=np.uint64, endpoint=False)
    s2 = (v ^ s0 ^ s1) if boolean else (v - s0 - s1)
    return [s0, s1, s2]


def _run(seed: int, n: int, boolean: bool, overwrite: bool, spoil: bool) -> None:
    rng = np.random.default_rng(seed)
    draw = lambda: rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)  # noqa: E731
    x, y, a, b = draw(), draw(), draw(), draw()
    mul = np.bitwise_and if boolean else np.multiply
    z, c = mul(x, y), mul(a, b)
    if spoil:  # errors on both: v must reconstruct to their difference
        ez, ec = draw(), draw()
        z = (z ^ ez) if boolean else (z + ez)
        c = (c ^ ec) if boolean else (c + ec)
    sh = {k: _share(rng, v, boolean) for k, v in dict(x=x, y=y, a=a, b=b, z=z, c=c).items()}
    op = np.bitwise_xor if boolean else np.subtract
    rho, sigma = op(x, a), op(y, b)
    fn = sacrifice_bool if boolean else sacrifice_arith
    parts = []
    for p in range(3):
        def pair(k: str, p: int = p) -> tuple[np.ndarray, np.ndarray]:
            return sh[k][p].copy(), sh[k][(p + 1) % 3].copy()
        parts.append(fn(p, pair("z"), pair("c"), pair("a"), pair("b"), rho, sigma,
                        overwrite=overwrite))
    # share j is held by parties j (first slot) and j - 1 (second slot): they must agree
    for j in range(3):
        np.testing.assert_array_equal(parts[j][0], parts[(j - 1) % 3][1])
    got = parts[0][0] ^ parts[1][0] ^ parts[2][0] if boolean else \
        parts[0][0] + parts[1][0] + parts[2][0]
    if boolean:
        want = (z ^ (x & y)) ^ (c ^ (a & b))
    else:
        want = (z - x * y) - (c - a * b)
    np.testing.assert_array_equal(got, want)
    if not spoil:
        assert not got.any()


@pytest.mark.parametrize("boolean", [False, True])
@pytest.mark.parametrize("overwrite", [False, True])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), spoil=st.booleans())
def test_sacrifice_reconstructs_the_error_difference(boolean: bool, overwrite: bool,
                                                     seed: int, n: int, spoil: bool) -> None:
    _run(seed, n, boolean, overwrite, spoil)


def test_plan_meets_the_statistical_bound() -> None:
    """Bucket of k plus a pool of M: C(M, k) and C(M, M - k n) are both at least 2^40."""
    import math
    for n in (1, 10, 1000, 10**5, 10**6):
        k, m = plan(n)
        assert 2 <= k <= 8 and m >= k * n + 1
        assert math.comb(m, k) >= 2**40
        assert math.comb(m, m - k * n) >= 2**40
