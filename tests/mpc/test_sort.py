"""Oblivious bitonic sort with payload, on both channels, against numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metisnet import mpc
from metisnet.crypto.fixedpoint import FixedPoint
from metisnet.errors import ShapeError
from metisnet.mpc import MpcContext
from metisnet.mpc.sort import argsort, bitonic_layers, sort

F = FixedPoint(16)
SETTINGS = settings(max_examples=12, deadline=None)
KEY = 2**62 - 2  # |key| < 2^62 - 1 (the padding sentinel)


def prog_sort(ctx: MpcContext, keys: np.ndarray, payload: np.ndarray, f: int,
              descending: bool) -> Any:
    k = mpc.share(ctx, keys if ctx.party == 0 else None, owner=0, shape=keys.shape,
                  frac_bits=f)
    p = mpc.share(ctx, payload if ctx.party == 2 else None, owner=2, shape=payload.shape,
                  frac_bits=0)
    sk, (sp,) = sort(ctx, k, [p], descending=descending)
    return mpc.reveal(ctx, sk), mpc.reveal(ctx, sp), mpc.reveal(ctx, argsort(ctx, k))


def prog_cost(ctx: MpcContext, n: int) -> tuple[int, int]:
    k = mpc.random(ctx, (n,))
    k = k.like(k.a >> np.uint64(4), k.b >> np.uint64(4))
    t = ctx.tag("sync")
    ctx.send(ctx.next, t, np.zeros(1, np.uint64))
    ctx.recv(ctx.prev, t, (1,))
    before = ctx.stats.snapshot()
    sort(ctx, k)
    d = ctx.stats - before
    return d.rounds, d.bytes_sent


def prog_cost_semi_honest(ctx: MpcContext, n: int) -> tuple[int, int]:
    """:func:`prog_cost` on a semi-honest context, whatever mode the base suite runs in."""
    if ctx.security != "semi-honest":
        ctx = MpcContext.setup(ctx.channel, session=f"{ctx.session}:sh", security="semi-honest")
    return prog_cost(ctx, n)


def prog_bad(ctx: MpcContext) -> str:
    k = mpc.public(ctx, np.zeros((2, 2)))
    try:
        sort(ctx, k)
    except ShapeError as exc:
        return str(exc)
    return "no error"


class TestSort:
    @SETTINGS
    @given(keys=hnp.arrays(np.int64, st.integers(0, 70), elements=st.integers(-KEY, KEY)
                           | st.integers(-3, 3)), descending=st.booleans())
    def test_integer_keys_with_payload(self, channel: Any, keys: np.ndarray,
                                       descending: bool) -> None:
        payload = np.arange(keys.size, dtype=np.int64) * 10
        sk, sp, perm = channel.run(prog_sort, keys, payload, 0, descending)[1]
        want = np.sort(keys)[::-1] if descending else np.sort(keys)
        np.testing.assert_array_equal(sk, want)
        np.testing.assert_array_equal(keys[sp // 10], sk)  # payload moved with its key
        assert sorted(sp.tolist()) == payload.tolist()
        np.testing.assert_array_equal(keys[perm], np.sort(keys))

    @SETTINGS
    @given(keys=hnp.arrays(np.float64, st.integers(1, 40),
                           elements=st.floats(-(2.0**45), 2.0**45, allow_nan=False)))
    def test_fixed_point_keys(self, channel: Any, keys: np.ndarray) -> None:
        keys = F.decode(F.encode(keys))
        sk, _, _ = channel.run(prog_sort, keys, np.zeros(keys.size, np.int64), 16, False)[2]
        np.testing.assert_array_equal(sk, np.sort(keys))

    def test_cost_per_layer(self, channel: Any) -> None:
        n = 128
        layers = len(bitonic_layers(n))
        assert layers == 7 * 8 // 2
        res = channel.run(prog_cost, n)
        # per layer: 64 pairs -> one word per bit plane; 242 planes for the sign bit,
        # bit injection (32 B per pair from party 0, 8 from the others), one select (8 B)
        per_layer = [242 * 8 + 32 * 64 + 8 * 64, 242 * 8 + 8 * 64 + 8 * 64,
                     242 * 8 + 8 * 64 + 8 * 64]
        for p, (rounds, sent) in enumerate(res):
            assert sent == layers * per_layer[p]
            assert 9 * layers <= rounds <= 10 * layers

    def test_sentinel_comparators_cost_nothing(self, channel: Any) -> None:
        """Comparators that meet a padding sentinel have public outcomes: n = 65 (padded
        to 128) evaluates 865 of the 1,792 comparators of n = 128. Bit planes hold 64
        elements per word, so the bytes fall less: to about 70% (party 0) and 82%."""
        full = channel.run(prog_cost_semi_honest, 128)
        padded = channel.run(prog_cost_semi_honest, 65)
        for (_, sent_full), (rounds, sent) in zip(full, padded, strict=True):
            assert sent < 0.85 * sent_full
            assert rounds <= 10 * len(bitonic_layers(128))

    def test_refuses_a_matrix(self, channel: Any) -> None:
        assert "1-D" in channel.run(prog_bad)[0]


def test_layers_sort_every_zero_one_input_in_plaintext() -> None:
    """By the 0-1 principle, a network that sorts every 0/1 input sorts every input."""
    for n in (2, 4, 8, 16):
        v = (np.arange(2**n)[:, None] >> np.arange(n)) & 1  # all 2^n inputs, one per row
        for first, second in bitonic_layers(n):
            lo = np.minimum(v[:, first], v[:, second])
            hi = np.maximum(v[:, first], v[:, second])
            v[:, first], v[:, second] = lo, hi
        assert np.all(np.diff(v, axis=1) >= 0)
