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
4. The caller computes the final aggregates at every row
   (:func:`metisnet.algorithms.sql.aggregates.final_table` with ``gate = e``, so
   ``present_i = e_i [count_i >= max(k, 1)]``), shuffles the ``n`` rows (so the positions of
   groups in key order, which would tell the sizes of filtered or suppressed runs, are
   hidden) and opens them to the receiver, who keeps the rows marked present.

The receiver learns the requested aggregates of the kept groups and ``n``; the
committee learns nothing beyond ``n`` (the sort opens only comparisons of distinct,
shuffled composite keys). Cost: the sort (3 + 9 L rounds, ~1.6 n log2 n comparisons), 8
rounds for the starts, ``ceil(log2 n)`` rounds for the scans (11 more per step with MIN/MAX),
then the final aggregates, 3 for the shuffle, 1 to open.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from metisnet import mpc
from metisnet.mpc import MpcContext, SharedArray

__all__ = ["grouped_by_secret_key", "scan_rounds"]


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
                          big: float) -> tuple[SharedArray, SharedArray, SharedArray,
                                               SharedArray | None, SharedArray | None]:
    """Sorted keys and per-group scans for a secret-domain key (see the module doc).

    ``key`` (n,) fixed point; ``mask`` (n,) shared 0/1 integers; ``sums`` and ``mins`` (n,)
    fixed-point columns (unmasked). Returns, all still shared and in key order:
    ``(keys, ends, counts, sums (n, len(sums)), minima (n, len(mins)))``, where ``ends`` marks
    each group's last row (shared 0/1) and ``counts`` (integers), ``sums`` and ``minima`` hold
    the group's totals at that row.
    """
    n = key.shape[0]
    f = key.frac_bits
    # the mask itself is the count column: raw integers (labelled f only to be stacked;
    # every product below is on raw values, so the scan keeps them exact)
    w = [_relabel(mask, f)]
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
    counts = _relabel(vals[:, 0], 0)
    return skey, end, counts, (vals[:, 1:] if sums else None), mn
