"""Descriptive statistics on a secret-shared table held by the 3-member committee.

Inputs are a :class:`~metisnet.mpc.SharedArray` ``x`` of shape ``(n, d)`` (fixed point), the
rows of every data node stacked (:func:`stack_rows`, horizontal split) or the columns of
every data node aligned on a join key (:func:`metisnet.algorithms.psi.private_join`, or
:func:`stack_columns` when the rows are already aligned). ``n`` is public (registered row
counts, or the released size of a join). Every function is called by all three members and
returns the result at the receivers ``to`` (see :mod:`metisnet.algorithms.common`), ``None``
elsewhere.

Minimum group size ``k``: whole-table statistics check the public ``n`` and refuse below
``k``; histograms and group statistics suppress small groups obliviously.

Error (f fractional bits, u = 2^-f): inputs are rounded to u/2 each. Sums are exact in the
ring. A mean or a division by a public count ``m`` (:func:`div_public`) has error below
3u; an interpolated quantile below 4u (an order statistic itself is exact). Sums of
squares and cross products (:func:`cross_products`) are within 2 ulps. Every truncation of
a value whose raw magnitude is ``M`` fails with probability ``M / 2^64`` (the engine's
probabilistic truncation, :func:`metisnet.mpc.trunc`); the functions here only truncate
values of magnitude about ``n max|x| 2^(3f/2)`` or ``|result| 2^(2f+2)``, so for f = 16 a
failure has probability about ``n max|x| 2^-40`` (below 2^-20 for 10^4 rows of |x| < 100).

Costs (rounds): sum 0 (+1 to open); mean 3; variance / covariance 9; min / max
``10 ceil(log2 n)``; quantiles ``18 ceil(bits / log2 radix)`` with no intermediate
opening; histogram 9 (+10 with suppression); group statistics 1 (+10).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from metisnet import mpc
from metisnet.algorithms.common import Receivers, check_min_rows, output, suppress_small
from metisnet.algorithms.numeric import mul_public_exact
from metisnet.crypto.fixedpoint import split_bits
from metisnet.errors import ShapeError, ValidationError
from metisnet.mpc import MpcContext, SharedArray
from metisnet.mpc.shares import encode_public

__all__ = [
    "column_sums",
    "correlation",
    "count",
    "covariance",
    "cross_products",
    "div_public",
    "group_stats",
    "histogram",
    "maximum",
    "mean",
    "median",
    "minimum",
    "quantiles",
    "shared_mean",
    "stack_columns",
    "stack_rows",
    "std",
    "variance",
]

F64 = NDArray[np.float64]


def _table(x: SharedArray) -> SharedArray:
    if x.ndim == 1:
        return x.reshape(-1, 1)
    if x.ndim != 2:
        raise ShapeError(f"statistics need a table (n, d), got shape {x.shape}")
    if x.frac_bits == 0:
        raise ShapeError("statistics take fixed-point values (deal them with frac_bits > 0)")
    return x


def stack_rows(parts: Sequence[SharedArray]) -> SharedArray:
    """Horizontal split: the tables of several data nodes, one below the other (local)."""
    return mpc.concat([p.reshape(-1, 1) if p.ndim == 1 else p for p in parts], axis=0)


def stack_columns(parts: Sequence[SharedArray]) -> SharedArray:
    """Vertical split with rows already aligned on the key: columns side by side (local)."""
    tables = [p.reshape(-1, 1) if p.ndim == 1 else p for p in parts]
    if len({t.shape[0] for t in tables}) != 1:
        raise ShapeError("vertically split parts must have the same rows; join them first")
    return mpc.concat(tables, axis=1)


def div_public(ctx: MpcContext, x: SharedArray, m: int) -> SharedArray:
    """``x / m`` for a public positive integer ``m`` (2 rounds; error in the module doc).

    Truncations keep every intermediate small: first by ``L = ceil(log2 m)`` bits (the
    raw value is read at ``f + L`` fractional bits, so this divides by ``2^L``), then an
    exact product with ``c = 2^L / m`` in (1/2, 1]
    (:func:`~metisnet.algorithms.numeric.mul_public_exact`). Raw magnitudes stay about
    ``|x / m| 2^(2f)``, so a truncation failure has probability about ``|x / m| 2^(2f-64)``,
    whatever ``m``; the error is below 3 ulps. 3 rounds.
    """
    if m <= 0:
        raise ValidationError("division by a non-positive count")
    if m == 1:
        return x
    f = x.frac_bits
    big = math.ceil(math.log2(m))
    if f + big > 62:
        raise ValidationError(f"count {m} too large for division at {f} fractional bits")
    y = mpc.trunc(ctx, x.like(x.a, x.b, frac_bits=f + big), big) if big else x
    return mul_public_exact(ctx, y, 2.0**big / m)


def _rescale(ctx: MpcContext, x: SharedArray, f: int) -> SharedArray:
    if x.frac_bits > f:
        return mpc.trunc(ctx, x, x.frac_bits - f)
    return x.like(x.a << np.uint64(f - x.frac_bits), x.b << np.uint64(f - x.frac_bits),
                  frac_bits=f)


def cross_products(ctx: MpcContext, a: SharedArray, b: SharedArray, *,
                   columnwise: bool = False,
                   highs: tuple[SharedArray, SharedArray] | None = None) -> SharedArray:
    """``a^T b`` (or, with ``columnwise``, the per-column sums ``sum_rows a*b``) at scale f,
    without ever truncating a large value.

    A plain fixed-point product truncates ``sum a*b`` at 2f fractional bits, which fails
    with probability ``|sum a*b| 2^(2f-64)`` (2^-11 for a sum of squares of 2^21). Here each
    factor is split as ``hi + lo`` with ``hi`` on ``f/2`` fractional bits (one truncation of
    a small value) and ``|lo| < 2^-(f/2)``: ``hi^T hi`` lands exactly on f bits with no
    truncation, and only the small cross and low terms are truncated (raw magnitudes about
    ``n max|a| 2^(3f/2)`` and ``n 2^f``). Error below 2 ulps; 3 rounds plus the products.

    ``highs``: the high parts of ``a`` and ``b`` (on ``f - s`` fractional bits,
    :func:`metisnet.crypto.fixedpoint.high_part`) when the inputs' owners dealt them, so
    no element is truncated: the per-element truncation is most of the cost of a sum of
    squares in malicious mode. An owner's high parts only shape its own input's split, as
    its values do (a wrong one moves that input's ``lo`` out of range, which is no more
    than choosing other values).
    """
    f = a.frac_bits
    if f != b.frac_bits or f < 2:
        raise ShapeError("cross products need two fixed-point tables at one scale")
    s = split_bits(f)

    def split(x: SharedArray, hi: SharedArray | None) -> tuple[SharedArray, SharedArray]:
        if hi is None:
            hi = mpc.trunc(ctx, x, s)  # f - s fractional bits
        elif hi.shape != x.shape or hi.frac_bits != f - s:
            raise ShapeError(f"high parts of shape {hi.shape} on {hi.frac_bits} fractional "
                             f"bits for a table of shape {x.shape} on {f}")
        lo = x - hi.like(hi.a << np.uint64(s), hi.b << np.uint64(s), frac_bits=f)
        return hi, lo

    ha, la = split(a, highs[0] if highs is not None else None)
    hb, lb = split(b, highs[1] if highs is not None else None) if b is not a else (ha, la)
    if columnwise and a.shape[1] == 1 and ctx.security == "malicious":
        return _one_column(ctx, (ha, la), (hb, lb), f)  # one claim for the check, not 3

    def prod(u: SharedArray, v: SharedArray) -> SharedArray:
        if columnwise:
            return mpc.dot(ctx, u.T, v.T, truncate=False)
        return mpc.matmul(ctx, u.T, v, truncate=False)

    t1 = _rescale(ctx, prod(ha, hb), f)
    if b is a:  # la^T ha is the transpose of ha^T la: one product fewer
        m = prod(ha, la)
        mixed = m * 2 if columnwise else m + m.T
    else:
        mixed = prod(ha, lb) + prod(la, hb)
    t23 = _rescale(ctx, mixed, f)
    t4 = _rescale(ctx, prod(la, lb), f)
    return t1 + t23 + t4


def _one_column(ctx: MpcContext, a: tuple[SharedArray, SharedArray],
                b: tuple[SharedArray, SharedArray], f: int) -> SharedArray:
    """The cross products of two split columns as one raw ``(2, n) @ (n, 2)`` product:
    the same ring values as four dot products, but one claim for the malicious check
    (:mod:`metisnet.mpc.ipcheck`), whose cost grows with the number of claims."""
    def rows(pair: tuple[SharedArray, SharedArray]) -> SharedArray:  # (2, n): hi, lo
        hi, lo = pair
        return hi.like(np.stack([hi.a.reshape(-1), lo.a.reshape(-1)]),
                       np.stack([hi.b.reshape(-1), lo.b.reshape(-1)]), frac_bits=0)

    m = mpc.matmul(ctx, rows(a), rows(b).T, truncate=False)  # [[hh, hl], [lh, ll]] raw
    fh, fa, fb = a[0].frac_bits, a[1].frac_bits, b[1].frac_bits

    def entry(i: int, j: int, frac: int) -> SharedArray:
        return m.like(m.a[i, j:j + 1], m.b[i, j:j + 1], frac_bits=frac)

    t1 = _rescale(ctx, entry(0, 0, fh + b[0].frac_bits), f)
    t23 = _rescale(ctx, entry(0, 1, fh + fb) + entry(1, 0, fa + b[0].frac_bits), f)
    t4 = _rescale(ctx, entry(1, 1, fa + fb), f)
    return t1 + t23 + t4


# -- moments ---------------------------------------------------------------------------------
def count(ctx: MpcContext, x: SharedArray, *, mask: SharedArray | None = None, k: int = 1,
          to: Receivers = None) -> int | None:
    """Number of rows: the public ``n``, or with ``mask`` (shared 0/1 integers per row, e.g.
    a filter) the secret count, released as 0 when below ``k`` (oblivious; 10 rounds)."""
    n = x.shape[0]
    if mask is None:
        check_min_rows(n, k)
        return n if to is None or ctx.party in ({to} if isinstance(to, int) else set(to)) \
            else None
    if mask.frac_bits != 0 or mask.shape != (n,):
        raise ShapeError("a row mask must be (n,) shared integers 0/1")
    c, _ = suppress_small(ctx, mpc.arith.sum(mask).reshape(1), k)
    got = output(ctx, c, to)
    return None if got is None else int(got[0])


def column_sums(ctx: MpcContext, x: SharedArray, *, k: int = 1, to: Receivers = None) -> F64 | None:
    """Sum of each column (exact in the ring; 1 round to open)."""
    t = _table(x)
    check_min_rows(t.shape[0], k)
    return output(ctx, mpc.arith.sum(t, axis=0), to)


def shared_mean(ctx: MpcContext, x: SharedArray) -> SharedArray:
    """Column means, kept secret-shared (shape ``(d,)``; 1 round)."""
    t = _table(x)
    return div_public(ctx, mpc.arith.sum(t, axis=0), t.shape[0])


def mean(ctx: MpcContext, x: SharedArray, *, k: int = 1, to: Receivers = None) -> F64 | None:
    """Column means (2 rounds with the opening)."""
    t = _table(x)
    check_min_rows(t.shape[0], k)
    return output(ctx, shared_mean(ctx, t), to)


def _centered(ctx: MpcContext, t: SharedArray) -> SharedArray:
    mu = shared_mean(ctx, t)
    return t - mu.like(np.broadcast_to(mu.a, t.shape).copy(), np.broadcast_to(mu.b, t.shape).copy())


def shared_variance(ctx: MpcContext, x: SharedArray, *, ddof: int = 1) -> SharedArray:
    """Column variances, secret-shared (3 rounds): centred sums of squares over ``n - ddof``."""
    t = _table(x)
    n = t.shape[0]
    if n - ddof <= 0:
        raise ValidationError(f"variance with ddof={ddof} needs more than {ddof} rows")
    dev = _centered(ctx, t)
    return div_public(ctx, cross_products(ctx, dev, dev, columnwise=True), n - ddof)


def variance(ctx: MpcContext, x: SharedArray, *, ddof: int = 1, k: int = 1,
             to: Receivers = None) -> F64 | None:
    """Column variances (numpy's ``var(ddof=...)``; default the sample variance)."""
    t = _table(x)
    check_min_rows(t.shape[0], k)
    return output(ctx, shared_variance(ctx, t, ddof=ddof), to)


def std(ctx: MpcContext, x: SharedArray, *, ddof: int = 1, k: int = 1,
        to: Receivers = None) -> F64 | None:
    """Column standard deviations: the variance is opened to the receivers only, who take the
    square root themselves (the variance and the deviation carry the same information)."""
    var = variance(ctx, x, ddof=ddof, k=k, to=to)
    return None if var is None else np.sqrt(np.maximum(var, 0.0))


def shared_covariance(ctx: MpcContext, x: SharedArray, *, ddof: int = 1) -> SharedArray:
    """The (d, d) covariance matrix, secret-shared (3 rounds)."""
    t = _table(x)
    n = t.shape[0]
    if n - ddof <= 0:
        raise ValidationError(f"covariance with ddof={ddof} needs more than {ddof} rows")
    dev = _centered(ctx, t)
    return div_public(ctx, cross_products(ctx, dev, dev), n - ddof)


def covariance(ctx: MpcContext, x: SharedArray, *, ddof: int = 1, k: int = 1,
               to: Receivers = None) -> F64 | None:
    """Covariance matrix of the columns (``numpy.cov(x, rowvar=False, ddof=...)``)."""
    t = _table(x)
    check_min_rows(t.shape[0], k)
    return output(ctx, shared_covariance(ctx, t, ddof=ddof), to)


def _outer(x: SharedArray) -> tuple[SharedArray, SharedArray]:
    """``(x_i)`` and ``(x_j)`` broadcast to (d, d), for the elementwise outer product."""
    d = x.shape[0]
    rows = x.like(np.repeat(x.a.reshape(d, 1), d, 1), np.repeat(x.b.reshape(d, 1), d, 1))
    cols = x.like(np.tile(x.a, (d, 1)), np.tile(x.b, (d, 1)))
    return rows, cols


def correlation(ctx: MpcContext, x: SharedArray, *, k: int = 1, to: Receivers = None,
                var_bits: int = 24, iterations: int = 4) -> F64 | None:
    """Pearson correlation matrix, without opening the variances.

    ``corr_ij = cov_ij r_i r_j`` with ``r = 1/sqrt(var)``. The inverse square roots come
    normalised from :func:`metisnet.algorithms.numeric.inv_sqrt_parts` as ``r = r' T``
    with ``T`` a secret power of two and ``r'`` in (1/2, 1]; the scales are applied to the
    covariances first, so the result keeps ~f bits whatever the columns' magnitudes.
    Variances must lie in ``[2^-f, 2^var_bits)``; a constant column gives 0. About 60 rounds.
    """
    from metisnet.algorithms.numeric import NORM_BITS, inv_sqrt_parts

    t = _table(x)
    check_min_rows(t.shape[0], k)
    cov = shared_covariance(ctx, t, ddof=1)
    diag = cov.like(np.ascontiguousarray(np.diagonal(cov.a)),
                    np.ascontiguousarray(np.diagonal(cov.b)))
    r, scale = inv_sqrt_parts(ctx, diag, hi=var_bits, iterations=iterations)
    w = mpc.trunc(ctx, mpc.mul_raw(ctx, *_outer(scale)), NORM_BITS)
    covn = mpc.trunc(ctx, mpc.mul_raw(ctx, cov, w), NORM_BITS)
    return output(ctx, mpc.mul(ctx, covn, mpc.mul(ctx, *_outer(r))), to)


# -- order statistics ------------------------------------------------------------------------
def _tournament(ctx: MpcContext, t: SharedArray, largest: bool) -> SharedArray:
    vals = t
    while vals.shape[0] > 1:
        m = vals.shape[0]
        half = m // 2
        a, b = vals[0:2 * half:2], vals[1:2 * half:2]
        c = mpc.less_than(ctx, a, b)
        win = mpc.select(ctx, c, b, a) if largest else mpc.select(ctx, c, a, b)
        vals = mpc.concat([win, vals[m - 1:]]) if m % 2 else win
    return vals[0]


def minimum(ctx: MpcContext, x: SharedArray, *, k: int = 1, to: Receivers = None) -> F64 | None:
    """Column minima: a tournament of comparisons (10 rounds per halving)."""
    t = _table(x)
    check_min_rows(t.shape[0], k)
    return output(ctx, _tournament(ctx, t, largest=False), to)


def maximum(ctx: MpcContext, x: SharedArray, *, k: int = 1, to: Receivers = None) -> F64 | None:
    """Column maxima: a tournament of comparisons (10 rounds per halving)."""
    t = _table(x)
    check_min_rows(t.shape[0], k)
    return output(ctx, _tournament(ctx, t, largest=True), to)


def select_ranks(ctx: MpcContext, x: SharedArray, ranks: Sequence[int], *,
                 bound_bits: int = 20, radix: int = 8) -> SharedArray:
    """The order statistics of each column at 1-based ``ranks``, secret-shared ``(R, d)``.

    Secure selection by a radix-``radix`` search over the fixed-point grid, with every
    intermediate value secret: the search keeps a shared lower end ``lo`` and a public step.
    Each step compares every element with ``radix - 1`` shared thresholds
    ``lo + j*step - 1``, counts ``c_j = #{x <= t_j}`` (local sums), and compares the counts
    with the public rank: ``z = #{j : c_j < rank}`` moves ``lo`` to ``lo + z*step``. After
    ``ceil((bound_bits + f + 1) / log2 radix)`` steps the step is one unit and ``lo`` is the
    order statistic exactly. Nothing is opened. Values must satisfy ``|x| < 2^bound_bits``.

    Cost per step: 2 comparisons in sequence (18 rounds), ``n (radix-1) R d`` element
    comparisons plus ``(radix-1) R d`` for the counts.
    """
    t = _table(x)
    n, d = t.shape
    if radix < 2 or radix & (radix - 1):
        raise ValidationError("radix must be a power of two")
    if any(not 1 <= r <= n for r in ranks):
        raise ValidationError(f"ranks must lie in 1..{n}")
    f = t.frac_bits
    total = bound_bits + f + 1
    if total > 62:
        raise ValidationError("bound_bits + frac_bits must stay below 62")
    rb = int(math.log2(radix))
    steps = math.ceil(total / rb)
    nr = len(ranks)
    lo_raw = np.full((nr, d), -(1 << (bound_bits + f)), dtype=np.int64)
    lo = mpc.public(ctx, lo_raw.view(np.uint64), frac_bits=0)
    lo = lo.like(lo.a, lo.b, frac_bits=f)
    js = np.arange(1, radix, dtype=np.int64)
    rank_arr = np.broadcast_to(np.asarray(ranks, dtype=np.int64).reshape(nr, 1, 1),
                               (nr, radix - 1, d))
    for s in range(steps - 1, -1, -1):
        step = 1 << (rb * s)
        # thresholds t_j = lo + j*step - 1, shape (R, radix-1, d)
        offs = (js * step - 1).reshape(1, radix - 1, 1)
        offs_ring = np.broadcast_to(offs, (nr, radix - 1, d)).astype(np.int64).view(np.uint64)
        thr_a = np.repeat(lo.a[:, None, :], radix - 1, axis=1)
        thr_b = np.repeat(lo.b[:, None, :], radix - 1, axis=1)
        thr = lo.like(thr_a, thr_b).add_ring(np.ascontiguousarray(offs_ring))
        # x > t  <=>  t - x < 0, for every row: shape (n, R, radix-1, d)
        big = (nr, radix - 1, d)
        xa = np.broadcast_to(t.a[:, None, None, :], (n, *big))
        xb = np.broadcast_to(t.b[:, None, None, :], (n, *big))
        diff = thr.like(np.broadcast_to(thr.a, (n, *big)) - xa,
                        np.broadcast_to(thr.b, (n, *big)) - xb)
        gt = mpc.less_than(ctx, diff, 0)  # 1 where x > t
        cnt_le = n - mpc.arith.sum(gt, axis=0)  # shared integers, shape (R, radix-1, d)
        below = mpc.less_than(ctx, cnt_le, rank_arr)  # 1 where fewer than rank are <= t
        z = mpc.arith.sum(below, axis=1)  # (R, d)
        lo = lo + lo.like(z.a * np.uint64(step), z.b * np.uint64(step))
    return lo


def quantiles(ctx: MpcContext, x: SharedArray, qs: ArrayLike, *, k: int = 1,
              to: Receivers = None, bound_bits: int = 20, radix: int = 8) -> F64 | None:
    """Quantiles of each column with numpy's default linear interpolation, shape ``(len(qs), d)``.

    The two neighbouring order statistics are selected in secret (:func:`select_ranks`) and
    interpolated in MPC; only the quantiles are opened.
    """
    t = _table(x)
    n = t.shape[0]
    check_min_rows(n, k)
    q = np.atleast_1d(np.asarray(qs, dtype=np.float64))
    if np.any((q < 0) | (q > 1)):
        raise ValidationError("quantiles must lie in [0, 1]")
    h = (n - 1) * q
    lo_idx = np.floor(h).astype(np.int64)
    frac = h - lo_idx
    hi_idx = np.minimum(lo_idx + 1, n - 1)
    ranks = sorted(set((lo_idx + 1).tolist()) | set((hi_idx + 1).tolist()))
    pos = {r: i for i, r in enumerate(ranks)}
    sel = select_ranks(ctx, t, ranks, bound_bits=bound_bits, radix=radix)
    a = mpc.stack([sel[pos[int(r) + 1]] for r in lo_idx])
    b = mpc.stack([sel[pos[int(r) + 1]] for r in hi_idx])
    g = np.broadcast_to(frac.reshape(-1, 1), a.shape)
    res = a + mul_public_exact(ctx, b - a, g)
    return output(ctx, res, to)


def median(ctx: MpcContext, x: SharedArray, *, k: int = 1, to: Receivers = None,
           bound_bits: int = 20) -> F64 | None:
    """Column medians (numpy's ``median``: the mean of the middle pair for even n)."""
    res = quantiles(ctx, x, [0.5], k=k, to=to, bound_bits=bound_bits)
    return None if res is None else res[0]


# -- histograms and groups ---------------------------------------------------------------------
def histogram(ctx: MpcContext, x: SharedArray, edges: ArrayLike, *, k: int = 1,
              to: Receivers = None) -> F64 | None:
    """Counts per bin for public ``edges`` (numpy semantics: ``[e_j, e_{j+1})``, the last bin
    closed), per column: shape ``(bins, d)``. Bins with fewer than ``k`` rows are released as
    0, decided obliviously (:func:`~metisnet.algorithms.common.suppress_small`).

    One batch of ``n (bins + 1) d`` comparisons: 9 rounds (+10 for the suppression).
    """
    t = _table(x)
    n, d = t.shape
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValidationError("edges must be a strictly increasing vector of at least 2")
    m = e.size - 1
    enc = encode_public(e, t.frac_bits)
    xa = np.broadcast_to(t.a[:, None, :], (n, m + 1, d))
    xb = np.broadcast_to(t.b[:, None, :], (n, m + 1, d))
    xs = t.like(np.ascontiguousarray(xa), np.ascontiguousarray(xb))
    # x - e_j < 0 for j < m (x below the edge), e_m - x < 0 for the last (x above the top)
    sign = np.ones(m + 1, dtype=np.int64)
    sign[m] = -1
    diff = xs.add_ring(np.negative(np.broadcast_to(enc.reshape(1, m + 1, 1), (n, m + 1, d))))
    diff = diff.mul_public_int(np.broadcast_to(sign.reshape(1, m + 1, 1), (n, m + 1, d)))
    lt = mpc.arith.sum(mpc.less_than(ctx, diff, 0), axis=0)  # (m+1, d)
    below = lt[:m]  # count x < e_j
    le_top = n - lt[m]  # count x <= e_m
    upper = mpc.concat([below[1:m], le_top.reshape(1, d)], axis=0)
    counts = upper - below
    counts, _ = suppress_small(ctx, counts, k)
    return output(ctx, counts, to)


def group_stats(ctx: MpcContext, onehot: SharedArray, x: SharedArray, *, k: int = 1,
                to: Receivers = None) -> tuple[F64, F64, F64] | None:
    """Count, sum and mean of each column per group, groups given as secret one-hot rows.

    ``onehot`` is ``(n, g)`` shared integers 0/1 (a data node one-hot encodes its group
    column); counts are column sums and per-group sums one product ``onehot^T x`` (1 round).
    Groups smaller than ``k`` are suppressed obliviously: released as count 0 and sums 0,
    means NaN. The means are the released sums over the released counts (post-processing).
    """
    t = _table(x)
    if onehot.frac_bits != 0 or onehot.ndim != 2 or onehot.shape[0] != t.shape[0]:
        raise ShapeError("onehot must be (n, groups) shared integers with the rows of x")
    counts = mpc.arith.sum(onehot, axis=0)
    sums = mpc.matmul(ctx, onehot.T, t, truncate=False)
    sums = sums.like(sums.a, sums.b, frac_bits=t.frac_bits)
    counts, (sums,) = suppress_small(ctx, counts, k, [sums])
    c = output(ctx, counts.like(counts.a, counts.b, frac_bits=0), to)
    s = output(ctx, sums, to)
    if c is None or s is None:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(c[:, None] > 0, s / np.maximum(c[:, None], 1), np.nan)
    return c, s, means
