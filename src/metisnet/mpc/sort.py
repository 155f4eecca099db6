"""Oblivious sorting of a shared column, carrying payload columns along.

Batcher's bitonic sorting network (Batcher, AFIPS 1968), the usual data-oblivious choice in
MPC (e.g. Hamada et al., ICISC 2012 compare it with shuffle-based sorts): its sequence of
compare-exchange positions is public and independent of the data, so running it on shares
reveals nothing. The column is padded to a power of two ``N`` with a public sentinel above
every admissible key; where the sentinels are is public, so a comparator that meets one
has a public outcome and is done by a local exchange (no message): for n = 10^4
(N = 2^14) only 60% of the comparators are evaluated.

Each of the ``log2 N (log2 N + 1) / 2`` layers compares up to ``N/2`` disjoint pairs at once:
``c = [b < a]`` (:func:`~metisnet.mpc.compare.less_than`, 9 rounds) and one batched
selection for the key and every payload column (1 round): ``min = a + c (b - a)`` and
``max = a + b - min`` (local). Cost: 10 rounds per layer (105 layers for N = 2^14);
per layer and pair about 63 + 8 (1 + payloads) bytes from party 0, 38 + 8 (1 + payloads)
from the others. The sort is not stable. Keys must satisfy ``|key| < 2^62`` in the ring
(any encodable fixed-point value below 2^46 does).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import ShapeError
from metisnet.mpc.arith import concat, public
from metisnet.mpc.compare import less_than, select_many
from metisnet.mpc.context import MpcContext
from metisnet.mpc.shares import SharedArray

__all__ = ["argsort", "bitonic_layers", "sort"]

_SENTINEL = np.uint64(2**62 - 1)


def bitonic_layers(n: int) -> list[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """The public compare-exchange layers for ``n`` (a power of two) positions: for each
    layer, positions ``first`` and ``second`` such that after the layer
    ``x[first] <= x[second]``."""
    layers = []
    idx = np.arange(n, dtype=np.int64)
    k = 2
    while k <= n:
        j = k // 2
        while j >= 1:
            partner = idx ^ j
            lo = idx[partner > idx]
            hi = lo ^ j
            ascending = (lo & k) == 0
            layers.append((np.where(ascending, lo, hi), np.where(ascending, hi, lo)))
            j //= 2
        k *= 2
    return layers


def _pad(ctx: MpcContext, x: SharedArray, size: int, sentinel: bool) -> SharedArray:
    extra = size - x.shape[0]
    if extra == 0:
        return x
    fill = public(ctx, np.zeros(extra, dtype=np.int64), frac_bits=0)
    fill = SharedArray(fill.a, fill.b, party=x.party, frac_bits=x.frac_bits)
    if sentinel:
        fill = fill.add_ring(np.full(extra, _SENTINEL, dtype=np.uint64))
    return concat([x, fill])


def sort(
    ctx: MpcContext,
    keys: SharedArray,
    payload: Sequence[SharedArray] = (),
    *,
    descending: bool = False,
) -> tuple[SharedArray, list[SharedArray]]:
    """Sort the 1-D ``keys`` (ascending unless ``descending``); each payload column (same
    length, any scale) is permuted the same way. Returns ``(sorted keys, payloads)``."""
    if keys.ndim != 1:
        raise ShapeError("sort takes a 1-D key column")
    n = keys.shape[0]
    for p in payload:
        if p.shape != keys.shape or p.party != keys.party:
            raise ShapeError("payload columns must have the key column's shape and party")
    if n <= 1:
        return keys, list(payload)
    if descending:
        ks, ps = sort(ctx, -keys, payload)
        return -ks, ps
    size = 1 << (n - 1).bit_length()
    cols = [_pad(ctx, keys, size, True)] + [_pad(ctx, p, size, False) for p in payload]
    pad = np.arange(size) >= n  # public: where the +inf sentinels are
    for first, second in bitonic_layers(size):
        pad_first, pad_second = pad[first], pad[second]
        # a comparator with a sentinel has a public outcome: the sentinel goes to ``second``
        move = pad_first & ~pad_second
        if move.any():
            cols = [_swap(c, first[move], second[move]) for c in cols]
            pad[first[move]], pad[second[move]] = False, True
        real = ~pad_first & ~pad_second
        if not real.any():
            continue
        first, second = first[real], second[real]
        a = [c[first] for c in cols]
        b = [c[second] for c in cols]
        swap = less_than(ctx, b[0], a[0])
        lows = select_many(ctx, swap, list(zip(b, a, strict=True)))
        new_cols = []
        for c, lo, ai, bi in zip(cols, lows, a, b, strict=True):
            hi = ai + bi - lo
            na, nb = c.a.copy(), c.b.copy()
            na[first], nb[first] = lo.a, lo.b
            na[second], nb[second] = hi.a, hi.b
            new_cols.append(c.like(na, nb))
        cols = new_cols
    return cols[0][:n], [c[:n] for c in cols[1:]]


def _swap(c: SharedArray, i: NDArray[np.int64], j: NDArray[np.int64]) -> SharedArray:
    """Exchange positions ``i`` and ``j`` (public; local)."""
    na, nb = c.a.copy(), c.b.copy()
    na[i], na[j] = c.a[j], c.a[i]
    nb[i], nb[j] = c.b[j], c.b[i]
    return c.like(na, nb)


def argsort(ctx: MpcContext, keys: SharedArray) -> SharedArray:
    """The shared permutation that sorts ``keys`` (shared integer positions)."""
    idx = public(ctx, np.arange(keys.shape[0], dtype=np.int64), frac_bits=0)
    return sort(ctx, keys, [idx])[1][0]
