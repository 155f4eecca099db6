"""Small numeric kernels the algorithms need on shares: power-of-two normalisation, 1/sqrt.

These live here (not in :mod:`metisnet.mpc`) to keep the algorithms independent of the
engine's nonlinear module; they use only comparisons, local products with public constants
and fixed-point multiplications.

Normalisation (the usual first step of Newton methods on fixed point, e.g. Catrina and
Saxena, FC 2010, §3.4; Aly and Smart, ACNS 2019): for ``v > 0`` in ``[2^lo, 2^hi)``, one
batch of comparisons ``[v >= 2^e]`` (9 rounds) gives a secret one-hot exponent; local
sums of it times public constants give ``T = 2^-m`` and ``T^2`` for ``m = floor(e/2)``, so
that ``v T^2`` lies in ``[1, 4)``. Newton's iteration for the inverse square root,
``y <- y (3 - v y^2) / 2``, then starts from a linear first guess on ``[1, 4)`` (relative
error below 0.2) and gains a factor ~ error^2 per iteration (3 multiplications, 6 rounds).
"""

from __future__ import annotations

import numpy as np

from metisnet import mpc
from metisnet.errors import ShapeError, ValidationError
from metisnet.mpc import MpcContext, SharedArray

__all__ = ["NORM_BITS", "inv_sqrt", "inv_sqrt_parts", "mul_public_exact"]

#: Fractional bits of the secret power-of-two scales.
NORM_BITS = 24


def mul_public_exact(ctx: MpcContext, x: SharedArray, c: np.ndarray | float) -> SharedArray:
    """``x * c`` for public reals ``c`` with ``|c| < 2^(62 - 2f)``, to within 2 ulps.

    :func:`metisnet.mpc.mul_public` encodes ``c`` on f bits, an error of ``|x| 2^-(f+1)``
    (0.03 for x = 4000 at f = 16). Here ``c`` is encoded on 2f bits as two limbs
    ``C = C1 2^f + C0`` (``0 <= C0 < 2^f``): ``x C1`` and ``trunc(x C0, f)`` are added and
    truncated by f. Both truncated values have raw magnitude about ``|x| 2^(2f)``, as for
    an ordinary fixed-point product. 2 rounds.
    """
    f = x.frac_bits
    if f == 0:
        raise ShapeError("mul_public_exact takes fixed-point values")
    cc = np.broadcast_to(np.asarray(c, dtype=np.float64), x.shape)
    if np.any(np.abs(cc) >= 2.0 ** (62 - 2 * f)):
        raise ValidationError("constant too large for an exact product")
    big = np.rint(cc * 2.0 ** (2 * f)).astype(np.int64)
    c1 = (big >> np.int64(f)).view(np.uint64)
    c0 = (big & np.int64((1 << f) - 1)).view(np.uint64)
    # raw: x*c at scale f = (X C1 + X C0 / 2^f) / 2^f
    low = mpc.trunc(ctx, x.like(x.a * c0, x.b * c0, frac_bits=2 * f), f)  # X C0 / 2^f
    total = x.like(x.a * c1 + low.a, x.b * c1 + low.b, frac_bits=2 * f)
    return mpc.trunc(ctx, total, f)


def _exponent_onehot(ctx: MpcContext, v: SharedArray, lo: int, hi: int) -> SharedArray:
    """Shared one-hot of ``e`` with ``2^e <= v < 2^(e+1)``, for ``e`` in ``lo..hi-1``
    (all zeros when ``v < 2^lo``); shape ``(*v.shape, hi - lo)``."""
    es = np.arange(lo, hi, dtype=np.float64)
    k = es.size
    flat = v.flatten()
    rep = flat.like(np.repeat(flat.a, k), np.repeat(flat.b, k))
    thr = np.tile(2.0 ** es, flat.size)
    below = mpc.less_than(ctx, rep, thr).reshape(*v.shape, k)  # [v < 2^e]
    ge = 1 - below
    nxt = mpc.concat([ge[..., 1:], mpc.public(ctx, np.zeros((*v.shape, 1), np.int64),
                                              frac_bits=0)], axis=-1)
    return ge - nxt


def _weighted(onehot: SharedArray, weights: np.ndarray, frac_bits: int) -> SharedArray:
    """``sum_e onehot_e * w_e`` with public reals ``w`` encoded at ``frac_bits`` (local)."""
    enc = np.rint(weights * float(1 << frac_bits)).astype(np.int64).view(np.uint64)
    a = (onehot.a * enc).sum(axis=-1, dtype=np.uint64)
    b = (onehot.b * enc).sum(axis=-1, dtype=np.uint64)
    return onehot.like(np.asarray(a), np.asarray(b), frac_bits=frac_bits)


def inv_sqrt_parts(ctx: MpcContext, v: SharedArray, *, lo: int | None = None, hi: int = 24,
                   iterations: int = 4) -> tuple[SharedArray, SharedArray]:
    """``(r, T)`` with ``1/sqrt(v) = r * T``: ``r`` in ``(1/2, 1]`` at the context's scale,
    ``T = 2^-m`` at :data:`NORM_BITS` fractional bits. Both secret.

    ``v`` must lie in ``[2^lo, 2^hi)`` (default ``lo = -f``); values below give ``T = 0``.
    Cost: 9 + 2 + 6 ``iterations`` rounds.
    """
    if v.frac_bits == 0:
        raise ShapeError("inv_sqrt takes fixed-point values")
    f = v.frac_bits
    lo = -f if lo is None else lo
    if not lo < hi or hi - lo > 80 or hi > 2 * NORM_BITS - 2 or lo < -2 * NORM_BITS + 2:
        raise ValidationError("inv_sqrt: invalid exponent range")
    onehot = _exponent_onehot(ctx, v, lo, hi)
    m = np.floor(np.arange(lo, hi) / 2.0)
    t = _weighted(onehot, 2.0 ** -m, NORM_BITS)
    t2 = _weighted(onehot, 4.0 ** -m, NORM_BITS)
    vn = mpc.trunc(ctx, mpc.mul_raw(ctx, v, t2), NORM_BITS)  # in [1, 4)
    y = 1.2 - mpc.mul_public(ctx, vn, 0.2)
    for _ in range(iterations):
        y2 = mpc.mul(ctx, y, y)
        e = 3.0 - mpc.mul(ctx, vn, y2)
        y = mpc.mul_public(ctx, mpc.mul(ctx, y, e), 0.5)
    return y, t


def inv_sqrt(ctx: MpcContext, v: SharedArray, *, lo: int | None = None, hi: int = 24,
             iterations: int = 4) -> SharedArray:
    """``1 / sqrt(v)`` elementwise for secret ``v > 0`` in ``[2^lo, 2^hi)``, at ``v``'s scale.

    Relative error about ``2^-f`` for results near 1; absolute error about ``2^-f`` below.
    """
    r, t = inv_sqrt_parts(ctx, v, lo=lo, hi=hi, iterations=iterations)
    return mpc.trunc(ctx, mpc.mul_raw(ctx, r, t), NORM_BITS)
