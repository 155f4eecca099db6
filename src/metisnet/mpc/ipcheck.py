"""Checking long inner products with communication independent of their length.

A semi-honest dot product or matrix product costs 8 B per *output* element (ABY3 §4), but
checking it product by product (Beaver or bucketing) costs per *input* pair. Here the
outputs are checked together by recursive compression of one inner-product claim, the
technique of Boyle, Gilboa, Ishai and Nof ("Practical fully secure three-party
computation via sublinear distributed zero-knowledge proofs", CCS 2019) as run jointly on
replicated shares by Goyal and Song ("Malicious security comes free in honest-majority
MPC", 2020), over the Galois ring ``GR(2^64, 48)`` (:mod:`metisnet.crypto.galois_ring`;
Boyle et al., ASIACRYPT 2020, for rings). The code is this project's own.

Claims. Each group is ``Z = A @ B`` (shapes ``(m, k)``, ``(k, n)``, ``(m, n)``), with
``Z`` the semi-honest product as computed. Public coins give exceptional ``alpha`` (m) and
``beta`` (n) per group; a wrong entry of any ``Z`` makes
``sum_groups alpha^T (A B - Z) beta`` non-zero except with probability 2/2^48.

Level 1 (base ring to extension; ``FOLD`` = 64 chunks of ``k``): with chunks ``A^a`` and
``B^b``, ``f(X) = sum_{i,a} alpha_i A_i^a X^a`` and ``g(X) = sum_{j,b} beta_j B_.j^b
X^(63-b)``, the coefficient of ``X^63`` in ``h = <f, g>`` is the claim. The parties compute
every other coefficient from the chunks' cross products (one integer matrix product,
``64 m n k`` multiply-adds), reshare them, draw a point ``r`` and continue with
``<f(r), g(r)> = h(r)``, vectors of length ``k / 64`` in the extension.

Further levels halve the length: ``f = F0 + F1 X``, ``g = G0 X + G1``; the coefficients
``<F0, G1>`` and ``<F1, G0>`` are reshared, a point drawn, and the claim becomes
``<F0 + r F1, r G0 + G1> = h(r)``. At length one a random pair ``(rho, sigma)`` and its
product join the claim (one more halving), so the two values opened at the end are
uniformly random, and ``h(r) - f(r) g(r)`` must be zero: it joins the zero values of the
check. Any error a cheater adds (to a ``Z``, a coefficient, or a product) leaves a non-zero
polynomial behind, caught at each point with probability ``1 - 2d/2^48`` (``d`` its degree).

Soundness: at most ``(2 + 126 + 2 (levels + 1)) / 2^48``, below 2^-40 for every length
up to 2^60. Cost per check, whatever the lengths: ``2 + 2 * ceil(log2(k/64)) + 3`` rounds;
126 extension elements (48 KB) at level 1, 2 per further level, 3 at the end, plus the
coins and one opening of 2 elements. Computation: ``64 m n k`` multiply-adds for the cross
products, ``4 * 48 (m + n) k`` to fold, and about ``8 * 48^2 k / 64`` for the later levels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from metisnet.crypto import galois_ring as gr
from metisnet.errors import ShapeError
from metisnet.mpc.context import MpcContext

__all__ = ["FOLD", "MAX_BATCH", "MIN_LENGTH", "Dots", "Group", "check_groups",
           "soundness_bound"]

U64 = NDArray[np.uint64]
Pair = tuple[U64, U64]
#: A claim group: this party's pairs of A (m, k), B (k, n) and Z = A @ B (m, n).
Group = tuple[Pair, Pair, Pair]
#: A batch of dot products: pairs of X (b, k), Y (b, k) and Z = rowwise <X, Y> (b,).
Dots = tuple[Pair, Pair, Pair]

#: Chunks per inner product at the first level.
FOLD = 64
#: Inner products shorter than this are checked product by product instead.
MIN_LENGTH = 4 * FOLD
#: Dot products per batch claim (its cross terms take ``64^2`` words per dot).
MAX_BATCH = 512

_D = gr.DEGREE


def soundness_bound(k: int) -> float:
    """Probability that a wrong claim passes, for inner products of length ``k``."""
    levels = max(0, int(np.ceil(np.log2(max(1, -(-k // FOLD))))))
    return (2 + 2 * (FOLD - 1) + 2 * (levels + 1)) / 2.0**gr.SOUNDNESS_BITS


def _reshare(ctx: MpcContext, local: U64, op: str) -> Pair:
    """A 3-out-of-3 share of extension elements (any shape) to a replicated pair."""
    z = local + ctx.zero_share(local.shape)
    tag = ctx.tag(op)
    ctx.send(ctx.prev, tag, z)
    return z, ctx.recv(ctx.next, tag, z.shape)


def _mul3(u: Pair, v: Pair) -> U64:
    """This party's 3-out-of-3 share of ``u * v`` for shared elements."""
    return gr.mul(u[0], v[0] + v[1]) + gr.mul(u[1], v[0])


def _inner3(u: Pair, v: Pair) -> U64:
    """This party's 3-out-of-3 share of ``<u, v>`` for shared planar vectors."""
    return gr.inner(u[0], v[0] + v[1]) + gr.inner(u[1], v[0])


def _apply(m: U64, v: U64) -> U64:
    """``m @ v`` for a coefficient matrix and a planar vector: numpy's einsum runs these
    integer products about twice as fast as its matmul (no BLAS for integers)."""
    out: U64 = np.einsum("ij,jl->il", m, v)
    return out


def _scale_pair(m: U64, x: Pair) -> Pair:
    """Multiply a shared planar vector by a coefficient matrix (each share)."""
    return _apply(m, x[0]), _apply(m, x[1])


class _Level1:
    """One group at the first level: its chunks, coins and local cross-term shares."""

    def __init__(self, group: Group, alpha: U64, beta: U64) -> None:
        (a0, a1), (b0, b1), (z0, z1) = group
        m, k = a0.shape
        n = b0.shape[1]
        if b0.shape[0] != k or z0.shape != (m, n):
            raise ShapeError(f"claim shapes {a0.shape} @ {b0.shape} = {z0.shape}")
        self.m, self.n = m, n
        kp = -(-k // FOLD) * FOLD
        self.length = kp // FOLD

        def chunks_a(a: U64) -> U64:  # (m * FOLD, L): row i*FOLD + a is A_i^a
            pad = np.zeros((m, kp), dtype=np.uint64)
            pad[:, :k] = a
            return pad.reshape(m * FOLD, self.length)

        def chunks_b(b: U64) -> U64:  # (FOLD * n, L): row b*n + j is B_.j^b
            pad = np.zeros((kp, n), dtype=np.uint64)
            pad[:k] = b
            return np.ascontiguousarray(pad.reshape(FOLD, self.length, n).transpose(0, 2, 1)
                                        ).reshape(FOLD * n, self.length)

        self.a = (chunks_a(a0), chunks_a(a1))
        self.b = (chunks_b(b0), chunks_b(b1))
        self.z = (z0, z1)
        self.alpha, self.beta = alpha, beta  # (D, m), (D, n)
        # w_ij = alpha_i beta_j, as a (D, m*n) planar vector
        self.w = gr.mul_many(np.repeat(alpha, n, axis=1), np.tile(beta, (1, m)))

    def coefficients(self) -> U64:
        """This party's 3-out-of-3 shares of the 2*FOLD-1 coefficients of ``h`` (the
        claim's own slot included, replaced later): shape ``(D, 2*FOLD-1)``."""
        (a0, a1), (b0, b1) = self.a, self.b
        cross = np.einsum("il,jl->ij", a0, b0 + b1)  # (about twice numpy's integer matmul)
        cross += np.einsum("il,jl->ij", a1, b0)
        c = cross.reshape(self.m, FOLD, FOLD, self.n)  # [i, a, b, j]
        diag = np.zeros((2 * FOLD - 1, self.m, self.n), dtype=np.uint64)
        back = FOLD - 1 - np.arange(FOLD)
        for a in range(FOLD):  # t = a - b + FOLD - 1
            diag[a + back] += c[:, a].transpose(1, 0, 2)
        return self.w @ diag.reshape(2 * FOLD - 1, self.m * self.n).T

    def claim(self) -> Pair:
        """``sum_ij w_ij Z_ij`` (shared, local)."""
        z0, z1 = self.z
        return self.w @ z0.reshape(-1), self.w @ z1.reshape(-1)

    def fold(self, rp: U64) -> tuple[Pair, Pair]:
        """``f(r)`` and ``g(r)`` as shared planar vectors ``(D, L)``; ``rp`` holds
        ``r^0 .. r^(FOLD-1)``."""
        # columns (i, a): alpha_i r^a; columns (b, j): beta_j r^(FOLD-1-b)
        ca = gr.mul_many(np.repeat(self.alpha, FOLD, axis=1), np.tile(rp, (1, self.m)))
        cb = gr.mul_many(np.tile(self.beta, (1, FOLD)),
                         np.repeat(rp[:, ::-1], self.n, axis=1))
        return _scale_pair(ca, self.a), _scale_pair(cb, self.b)


class _Batch:
    """A batch of ``b`` dot products of one length at the first level: claim ``i`` is
    weighted by ``theta_i`` on its ``f`` side; everything is vectorised over the batch."""

    def __init__(self, dots: Dots, theta: U64) -> None:
        (x0, x1), (y0, y1), (z0, z1) = dots
        b, k = x0.shape
        if y0.shape != (b, k) or z0.shape != (b,):
            raise ShapeError(f"dot claims of shapes {x0.shape}, {y0.shape}, {z0.shape}")
        self.b = b
        kp = -(-k // FOLD) * FOLD
        self.length = kp // FOLD

        def chunks(v: U64) -> U64:  # (b, FOLD, L): [i, a] is chunk a of dot i
            pad = np.zeros((b, kp), dtype=np.uint64)
            pad[:, :k] = v
            return pad.reshape(b, FOLD, self.length)

        self.x = (chunks(x0), chunks(x1))
        self.y = (chunks(y0), chunks(y1))
        self.z = (z0, z1)
        self.theta = theta  # (D, b)

    def coefficients(self) -> U64:
        (x0, x1), (y0, y1) = self.x, self.y
        cross = np.einsum("ial,ibl->iab", x0, y0 + y1)
        cross += np.einsum("ial,ibl->iab", x1, y0)
        diag = np.zeros((2 * FOLD - 1, self.b), dtype=np.uint64)
        back = FOLD - 1 - np.arange(FOLD)
        for a in range(FOLD):  # t = a - b + FOLD - 1
            diag[a + back] += cross[:, a].T
        out: U64 = self.theta @ diag.T
        return out

    def claim(self) -> Pair:
        return self.theta @ self.z[0], self.theta @ self.z[1]

    def fold(self, rp: U64) -> tuple[Pair, Pair]:
        # x side: theta_i * sum_a r^a x_i^a, weighted after the fold for short dots (b L
        # products) and through the b FOLD coefficients for long ones; y side:
        # sum_b r^(FOLD-1-b) y_i^b
        rev = np.ascontiguousarray(rp[:, ::-1])

        def flat(v: U64) -> U64:
            out: U64 = v.reshape(_D, self.b * self.length)
            return out

        if self.length > FOLD:  # long dots: weight the b FOLD coefficients instead
            ca = gr.mul_many(np.repeat(self.theta, FOLD, axis=1),
                             np.tile(rp, (1, self.b))).reshape(_D, self.b, FOLD)
            f = tuple(flat(np.einsum("dia,ial->dil", ca, xs)) for xs in self.x)
        else:
            weights = np.repeat(self.theta, self.length, axis=1)  # (D, b L)
            f = tuple(gr.mul_many(flat(np.einsum("da,ial->dil", rp, xs)), weights)
                      for xs in self.x)
        g = tuple(flat(np.einsum("da,ial->dil", rev, ys)) for ys in self.y)
        return (f[0], f[1]), (g[0], g[1])


def check_groups(ctx: MpcContext, groups: Sequence[Group], coins: Callable[[int], U64],
                 opener: Callable[[U64, U64], U64], dots: Sequence[Dots] = ()) -> Pair:
    """Run the compression on ``groups`` and return this party's pair of the value that
    must be zero (``h(r) - f(r) g(r)``, an extension element); the caller checks it with
    its other zero values. ``coins(n)`` returns ``n`` fresh public words (opened only when
    called); ``opener(a, b)`` opens a flat sharing to every party."""
    if not groups and not dots:
        raise ShapeError("no inner products to check")
    # coins for the random combination: drawn after every claim is fixed
    sizes = [(grp[0][0].shape[0], grp[1][0].shape[1]) for grp in groups]
    words = coins(sum(m + n for m, n in sizes) + sum(d[0][0].shape[0] for d in dots))
    levels: list[_Level1 | _Batch] = []
    at = 0
    for grp, (m, n) in zip(groups, sizes, strict=True):
        alpha = gr.exceptional(words[at:at + m])
        beta = gr.exceptional(words[at + m:at + m + n])
        at += m + n
        levels.append(_Level1(grp, alpha, beta))
    for batch in dots:
        b = batch[0][0].shape[0]
        levels.append(_Batch(batch, gr.exceptional(words[at:at + b])))
        at += b
    # level 1: every coefficient but the claim's own, reshared; then the point
    local = levels[0].coefficients()
    for lv in levels[1:]:
        local += lv.coefficients()
    local = np.delete(local, FOLD - 1, axis=1)
    ha, hb = _reshare(ctx, np.ascontiguousarray(local.T), "ipc_h1")  # (2F-2, D)
    claim0 = levels[0].claim()
    c0, c1 = claim0[0].copy(), claim0[1].copy()
    for lv in levels[1:]:
        ca, cb = lv.claim()
        c0 += ca
        c1 += cb
    h = (np.insert(ha, FOLD - 1, c0, axis=0), np.insert(hb, FOLD - 1, c1, axis=0))
    r = gr.exceptional(coins(1), nonzero=True)[:, 0]
    rp = gr.powers(r, 2 * FOLD - 1)
    w = (sum_powers(h[0], rp), sum_powers(h[1], rp))
    folded = [lv.fold(rp[:, :FOLD]) for lv in levels]
    f = (np.concatenate([fg[0][0] for fg in folded], axis=1),
         np.concatenate([fg[0][1] for fg in folded], axis=1))
    g = (np.concatenate([fg[1][0] for fg in folded], axis=1),
         np.concatenate([fg[1][1] for fg in folded], axis=1))
    # halving levels
    while f[0].shape[1] > 1:
        length = f[0].shape[1]
        if length % 2:
            zc = np.zeros((_D, 1), dtype=np.uint64)
            f = (np.hstack([f[0], zc]), np.hstack([f[1], zc]))
            g = (np.hstack([g[0], zc]), np.hstack([g[1], zc]))
            length += 1
        half = length // 2
        f0 = (f[0][:, :half], f[1][:, :half])
        f1 = (f[0][:, half:], f[1][:, half:])
        g0 = (g[0][:, :half], g[1][:, :half])
        g1 = (g[0][:, half:], g[1][:, half:])
        mine, succ = _reshare(ctx, np.stack([_inner3(f0, g1), _inner3(f1, g0)]), "ipc_h")
        h0, h2 = (mine[0], succ[0]), (mine[1], succ[1])
        r = gr.exceptional(coins(1), nonzero=True)[:, 0]
        mr = gr.mul_matrix(r)
        f = (f0[0] + _apply(mr, f1[0]), f0[1] + _apply(mr, f1[1]))
        g = (_apply(mr, g0[0]) + g1[0], _apply(mr, g0[1]) + g1[1])
        r2 = gr.mul(r, r)
        w = (h0[0] + gr.mul(w[0], r) + gr.mul(h2[0], r2),
             h0[1] + gr.mul(w[1], r) + gr.mul(h2[1], r2))
    # last level: a random pair and its product join, so the opened values are uniform
    fv = (f[0][:, 0], f[1][:, 0])
    gv = (g[0][:, 0], g[1][:, 0])
    rho = ctx.random_pair((_D,))
    sigma = ctx.random_pair((_D,))
    got = _reshare(ctx, np.stack([_mul3(rho, sigma), _mul3(fv, sigma), _mul3(rho, gv)]),
                   "ipc_last")
    tau, h0, h2 = [(got[0][i], got[1][i]) for i in range(3)]
    r = gr.exceptional(coins(1), nonzero=True)[:, 0]
    r2 = gr.mul(r, r)
    f_out = [fv[s] + gr.mul(r, rho[s]) for s in (0, 1)]
    g_out = [gr.mul(gv[s], r) + sigma[s] for s in (0, 1)]
    w_out = [h0[s] + gr.mul(w[s] + tau[s], r) + gr.mul(h2[s], r2) for s in (0, 1)]
    opened = opener(np.concatenate([f_out[0], g_out[0]]), np.concatenate([f_out[1], g_out[1]]))
    prod = gr.mul(opened[:_D], opened[_D:])
    # w_out - f g: the public product sits in share 0, held by parties 0 and 2
    za, zb = w_out[0].copy(), w_out[1].copy()
    if ctx.party == 0:
        za -= prod
    elif ctx.party == 2:
        zb -= prod
    return za, zb


def sum_powers(coeffs: U64, rp: U64) -> U64:
    """``sum_t coeffs[t] r^t`` for coefficients ``(T, D)`` and powers ``(D, >= T)``."""
    t = coeffs.shape[0]
    prods = gr.mul_many(np.ascontiguousarray(coeffs.T), np.ascontiguousarray(rp[:, :t]))
    out: U64 = prods.sum(axis=1, dtype=np.uint64)
    return out
