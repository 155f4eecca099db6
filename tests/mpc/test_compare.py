"""Boolean shares, conversions and comparisons on both channels, against numpy; their
communication is asserted exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metisnet import mpc
from metisnet.crypto.fixedpoint import FixedPoint
from metisnet.mpc import MpcContext, SharedArray

F = FixedPoint(16)
I64 = np.iinfo(np.int64)
EDGE_INTS = [0, 1, -1, 2, -2, I64.min, I64.max, I64.min + 1, I64.max - 1, 2**32, -(2**32)]
SETTINGS = settings(max_examples=20, deadline=None)


def ints(n: Any, lo: int = I64.min, hi: int = I64.max) -> Any:
    return hnp.arrays(np.int64, n, elements=st.integers(lo, hi) | st.sampled_from(
        [v for v in EDGE_INTS if lo <= v <= hi]))


# the largest magnitude whose differences never wrap: |x|, |y| < 2^62 (raw) in the ring
HALF = 2**62 - 1
# fixed point: differences of reals below 2^46 in magnitude never wrap (2^46 - 2^-16 is the
# largest encoding; x = 2^46, y = -2^46 would give exactly 2^63 and wrap)
REALS = st.floats(-(2.0**46 - 1), 2.0**46 - 1, allow_nan=False, width=64) | st.sampled_from(
    [2.0**46 - 1, -(2.0**46 - 1), 0.0, 2.0**-16, -(2.0**-16)])


def _share(ctx: MpcContext, v: np.ndarray, owner: int, f: int = 0) -> SharedArray:
    x = mpc.share(ctx, v if ctx.party == owner else None, owner=owner, shape=v.shape,
                  frac_bits=f)
    # a fresh sharing has one zero share; multiplying by a public 1 re-randomises all three
    return mpc.mul_raw(ctx, x, mpc.public(ctx, np.ones(v.shape, np.int64), frac_bits=0))


def prog_bits(ctx: MpcContext, v: np.ndarray) -> Any:
    x = _share(ctx, v, 1)
    bits = mpc.a2b(ctx, x)
    back = mpc.b2a(ctx, bits)
    sign = mpc.ltz_bits(ctx, x)
    zero = mpc.eq_zero_bits(ctx, x)
    anded = mpc.and_bits(ctx, sign, zero)
    flipped = ~sign ^ zero
    return (mpc.reveal_bits(ctx, bits), mpc.reveal(ctx, back), mpc.reveal_bits(ctx, sign),
            mpc.reveal_bits(ctx, zero), mpc.reveal_bits(ctx, anded),
            mpc.reveal_bits(ctx, flipped))


def prog_compare(ctx: MpcContext, x: np.ndarray, y: np.ndarray, f: int) -> Any:
    a = _share(ctx, x, 0, f)
    b = _share(ctx, y, 2, f)
    outs = [mpc.less_than(ctx, a, b), mpc.greater_than(ctx, a, b), mpc.less_equal(ctx, a, b),
            mpc.equal(ctx, a, b), mpc.sign(ctx, a)]
    vals = [mpc.minimum(ctx, a, b), mpc.maximum(ctx, a, b),
            mpc.select(ctx, mpc.less_than_bits(ctx, a, b), a, b)]
    return [mpc.reveal(ctx, o) for o in outs], [mpc.reveal(ctx, v) for v in vals]


def prog_compare_public(ctx: MpcContext, x: np.ndarray, c: float) -> Any:
    a = _share(ctx, x, 1, 16)
    return mpc.reveal(ctx, mpc.less_than(ctx, a, c)), mpc.reveal(ctx, mpc.equal(ctx, a, c))


def prog_argmax(ctx: MpcContext, x: np.ndarray) -> Any:
    a = _share(ctx, x, 0, 16)
    i, v = mpc.argmax(ctx, a)
    j, w = mpc.argmin(ctx, a)
    return mpc.reveal(ctx, i), mpc.reveal(ctx, v), mpc.reveal(ctx, j), mpc.reveal(ctx, w)


def prog_costs(ctx: MpcContext, n: int) -> dict[str, tuple[int, int]]:
    x = mpc.random(ctx, (n,))
    y = mpc.random(ctx, (n,))
    out: dict[str, tuple[int, int]] = {}

    def cost(name: str, fn: Any) -> Any:
        t = ctx.tag("sync")
        ctx.send(ctx.next, t, np.zeros(1, np.uint64))
        ctx.recv(ctx.prev, t, (1,))
        before = ctx.stats.snapshot()
        r = fn()
        d = ctx.stats - before
        out[name] = (d.rounds, d.bytes_sent)
        return r

    bits = cost("ltz", lambda: mpc.ltz_bits(ctx, x))
    cost("a2b", lambda: mpc.a2b(ctx, x))
    cost("eqz", lambda: mpc.eq_zero_bits(ctx, x))
    cost("b2a", lambda: mpc.b2a(ctx, bits))
    cost("less_than", lambda: mpc.less_than(ctx, x, y))
    cost("select", lambda: mpc.select(ctx, mpc.b2a(ctx, bits), x, y))
    return out


class TestComparisons:
    """Every boolean and comparison operation on both channels."""

    @SETTINGS
    @given(v=ints(st.integers(1, 150)))
    def test_bit_decomposition_roundtrip(self, channel: Any, v: np.ndarray) -> None:
        bits, back, sign, zero, anded, flipped = channel.run(prog_bits, v)[0]
        u = v.view(np.uint64)
        want = (u[None, :] >> np.arange(64, dtype=np.uint64)[:, None]) & np.uint64(1)
        np.testing.assert_array_equal(bits, want)
        np.testing.assert_array_equal(back, v)
        np.testing.assert_array_equal(sign[0], v < 0)
        np.testing.assert_array_equal(zero[0], v == 0)
        np.testing.assert_array_equal(anded[0], (v < 0) & (v == 0))
        np.testing.assert_array_equal(flipped[0], (v >= 0) ^ (v == 0))

    @SETTINGS
    @given(data=st.data(), n=st.integers(1, 130))
    def test_integer_comparisons(self, channel: Any, data: Any, n: int) -> None:
        x = data.draw(ints(n, -HALF, HALF))
        y = data.draw(st.one_of(ints(n, -HALF, HALF), st.just(x.copy())))
        (lt, gt, le, eq, sg), (mn, mx, sel) = channel.run(prog_compare, x, y, 0)[2]
        np.testing.assert_array_equal(lt, x < y)
        np.testing.assert_array_equal(gt, x > y)
        np.testing.assert_array_equal(le, x <= y)
        np.testing.assert_array_equal(eq, x == y)
        np.testing.assert_array_equal(sg, np.sign(x))
        np.testing.assert_array_equal(mn, np.minimum(x, y))
        np.testing.assert_array_equal(mx, np.maximum(x, y))
        np.testing.assert_array_equal(sel, np.minimum(x, y))

    @SETTINGS
    @given(data=st.data(), n=st.integers(1, 70))
    def test_fixed_point_comparisons_are_exact_on_encodings(self, channel: Any, data: Any,
                                                            n: int) -> None:
        x = F.decode(F.encode(data.draw(hnp.arrays(np.float64, n, elements=REALS))))
        y = F.decode(F.encode(data.draw(hnp.arrays(np.float64, n, elements=REALS))))
        y[: n // 3] = x[: n // 3]  # some ties
        (lt, gt, le, eq, sg), (mn, mx, _) = channel.run(prog_compare, x, y, 16)[0]
        np.testing.assert_array_equal(lt, x < y)
        np.testing.assert_array_equal(gt, x > y)
        np.testing.assert_array_equal(le, x <= y)
        np.testing.assert_array_equal(eq, x == y)
        np.testing.assert_array_equal(sg, np.sign(x))
        np.testing.assert_array_equal(mn, np.minimum(x, y))
        np.testing.assert_array_equal(mx, np.maximum(x, y))
        c = float(x[0])
        lt_c, eq_c = channel.run(prog_compare_public, x, c)[1]
        np.testing.assert_array_equal(lt_c, x < c)
        np.testing.assert_array_equal(eq_c, x == c)

    @SETTINGS
    @given(data=st.data(), rows=st.integers(1, 4), m=st.integers(1, 17))
    def test_argmax_argmin(self, channel: Any, data: Any, rows: int, m: int) -> None:
        x = data.draw(hnp.arrays(np.float64, (rows, m), elements=st.sampled_from(
            [-3.5, 0.0, 1.25, 2.0, 1e6, -1e6])))
        i, v, j, w = channel.run(prog_argmax, x)[1]
        np.testing.assert_array_equal(i, x.argmax(-1))
        np.testing.assert_array_equal(v, x.max(-1))
        np.testing.assert_array_equal(j, x.argmin(-1))
        np.testing.assert_array_equal(w, x.min(-1))

    def test_communication_costs(self, channel: Any) -> None:
        n = 64 * 50
        costs = channel.run(prog_costs, n)
        per = n // 64 * 8  # bytes of one bit plane
        for p in range(3):
            c = costs[p]
            # sign bit: 8 rounds; 63 maj + 62 generate + 117 tree planes = 30.25 B/element
            assert c["ltz"] == (8, 242 * per)
            assert c["a2b"] == (8, 706 * per)
            # zero test: 7 message latencies, 6 rounds by each party's count (party 0's
            # input and its first AND go out together); party 0 also inputs its 64 planes
            assert c["eqz"] == (6, (64 + 63) * per if p == 0 else 63 * per)
            # bit injection: 1 round; party 0 sends 32 B per bit, the others 8 B
            b2a = 32 * n if p == 0 else 8 * n
            assert c["b2a"] == (1, b2a)
            assert c["less_than"] == (9, 242 * per + b2a)
            # b2a then select: party 0 needs nothing from the b2a round, so by its count
            # both messages go out in one round; parties 1 and 2 count 2
            assert c["select"] == ((1 if p == 0 else 2), b2a + 8 * n)
