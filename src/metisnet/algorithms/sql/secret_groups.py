"""GROUP BY a key whose domain is secret: oblivious sort, segmented scans, shuffled release.

Semi-honest only (it sorts with :func:`metisnet.mpc.shuffle_sort`, Hamada et al., ICISC
2012, and shuffles with :func:`metisnet.mpc.shuffle`).

1. The rows (key, WHERE mask ``m``, the masked values ``m x`` to sum, and ``m (x - B) + B``
   for MIN; MAX as ``-MIN(-x)``) are sorted by key: rows of one group become adjacent.
2. Group starts ``s_i = [key_i != key_{i-1}]`` (one batch of equalities) and ends
   ``e_i = s_{i+1}``.
3. A segmented inclusive scan (Hillis-Steele, ``ceil(log2 n)`` steps): at step ``d``,
   ``v_i += (1 - s_i) v_{i-d}`` and ``s_i |= s_{i-d}`` - one product round per step for the
   counts and sums; MIN adds a comparison and two selections per step. At each group's last
   row the scan holds the group's count, sums and minima.
4. ``keep_i = e_i [count_i >= k]`` (the k policy, oblivious); every output column is
   multiplied by ``keep``, the ``n`` rows are shuffled (so the positions of groups in key
   order, which would tell the sizes of filtered or suppressed runs, are hidden) and opened
   to the receiver, who keeps the rows with a positive count.

The receiver learns the per-group results (and counts) of the kept groups and ``n``; the
committee learns nothing beyond ``n`` (the sort opens only comparisons of distinct,
shuffled composite keys). Cost: the sort (3 + 9 L rounds, ~1.6 n log2 n comparisons), 8
rounds for the starts, ``ceil(log2 n)`` rounds for the scans (11 more per step with MIN/MAX),
10 for the k policy, 1 for ``keep``, 3 for the shuffle, 1 to open.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from metisnet import mpc
from metisnet.algorithms.common import output
from metisnet.mpc import MpcContext, SharedArray

__all__ = ["grouped_by_secret_key", "scan_rounds"]

F64 = NDArray[np.float64]


def scan_rounds(n: int) -> int:
    """Steps of the segmented scan over ``n`` rows."""
    return max(math.ceil(math.log2(max(n, 1))), 0)


def _relabel(x: SharedArray, f: int) -> SharedArray:
    return x.like(x.a, x.b, frac_bits=f)


def _cols(x: SharedArray, w: int) -> SharedArray:
    """A (n,) column repeated into (n, w)."""
    return x.like(np.ascontiguousarray(np.repeat(x.a[:, None], w, axis=1)),
                  np.ascontiguousarray(np.repeat(x.b[:, None], w, axis=1)))


def grouped_by_secret_key(ctx: MpcContext, key: SharedArray, mask: SharedArray,
                          sums: Sequence[SharedArray], mins: Sequence[SharedArray], *,
                          big: float, k: int, to: int) -> dict[str, F64] | None:
    """Per-group count, sums and minima for a secret-domain key (see the module doc).

    ``key`` (n,) fixed point; ``mask`` (n,) shared 0/1 integers; ``sums`` and ``mins`` (n,)
    fixed-point columns (unmasked). Returns at ``to`` the arrays ``keys``, ``counts``,
    ``sums`` (G, len(sums)), ``ext`` (G, len(mins)) of the kept groups; ``None`` elsewhere.
    """
    n = key.shape[0]
    f = key.frac_bits
    # masked values: count and sums at scale f (raw products of 0/1 with x are exact)
    m_f = mask.like(mask.a << np.uint64(f), mask.b << np.uint64(f), frac_bits=f)
    w = [m_f]
    if sums:
        x = mpc.stack(list(sums), axis=1)
        prod = mpc.mul_raw(ctx, _relabel(_cols(mask, len(sums)), 0), _relabel(x, 0))
        w.extend(_relabel(prod, f)[:, j] for j in range(len(sums)))
    if mins:
        e = mpc.stack([v - big for v in mins], axis=1)
        prod = mpc.mul_raw(ctx, _relabel(_cols(mask, len(mins)), 0), _relabel(e, 0))
        low = _relabel(prod, f) + big
        ext = [low[:, j] for j in range(len(mins))]
    else:
        ext = []
    payload = [c.like(np.ascontiguousarray(c.a), np.ascontiguousarray(c.b)) for c in w + ext]
    skey, cols = mpc.shuffle_sort(ctx, key, payload)
    vals = mpc.stack(cols[:len(w)], axis=1)  # (n, 1 + len(sums)) at scale f
    mn = mpc.stack(cols[len(w):], axis=1) if ext else None
    # group starts: s_0 = 1, s_i = [key_i == key_{i-1}] negated
    same = mpc.equal(ctx, skey[1:] - skey[:-1], 0) if n > 1 else None
    one = mpc.public(ctx, np.ones(1, dtype=np.int64), frac_bits=0)
    start = one if same is None else mpc.concat([one, 1 - same])
    end = mpc.concat([start[1:], one]) if n > 1 else one
    s = start
    d = 1
    while d < n:
        notf = 1 - s[d:]
        prods = mpc.mul_raw(ctx,
                            _relabel(mpc.concat([_cols(notf, vals.shape[1]),
                                                 s[d:].reshape(-1, 1)], axis=1), 0),
                            _relabel(mpc.concat([_relabel(vals[:n - d], 0),
                                                 s[:n - d].reshape(-1, 1)], axis=1), 0))
        add = _relabel(prods[:, :vals.shape[1]], f)
        both = _relabel(prods[:, vals.shape[1]], 0)
        if mn is not None:
            prev, cur = mn[:n - d], mn[d:]
            lt = mpc.less_than(ctx, prev, cur)
            cand = mpc.select(ctx, lt, prev, cur)
            keep_cur = _cols(s[d:], mn.shape[1])
            newer = mpc.select(ctx, keep_cur, cur, cand)
            mn = mpc.concat([mn[:d], newer])
        vals = mpc.concat([vals[:d], vals[d:] + add])
        s = mpc.concat([s[:d], s[d:] + s[:n - d] - both])
        d *= 2
    counts = vals[:, 0]
    big_enough = 1 - mpc.less_than(ctx, counts, float(k)) if k > 1 else None
    keep = end if big_enough is None else mpc.mul_raw(ctx, end, big_enough)
    outs = [skey.reshape(-1, 1), vals] + ([mn] if mn is not None else [])
    table = mpc.concat(outs, axis=1)
    prod = mpc.mul_raw(ctx, _relabel(_cols(keep, table.shape[1]), 0), _relabel(table, 0))
    table = _relabel(prod, f)
    (table,) = mpc.shuffle(ctx, [table])
    got = output(ctx, table, to)
    if got is None:
        return None
    counts_r = np.rint(got[:, 1])
    rows = got[counts_r > 0]
    ns = len(sums)
    return {"keys": rows[:, 0], "counts": np.rint(rows[:, 1]), "sums": rows[:, 2:2 + ns],
            "ext": rows[:, 2 + ns:]}
