"""Bucket sizes and the sacrifice algebra for checking products with random triples.

Pure functions: no messages, no randomness of their own. The protocol that uses them is
:mod:`metisnet.mpc.malicious`, in two places: to verify triples made ahead (the "checked
products" below are then candidate triples, Araki et al., S&P 2017, §3: a bucket of
``k + 1``), and to check recorded products directly when no verified triples are in stock.

Sacrifice (Furukawa, Lindell, Nof and Weinstein, EUROCRYPT 2017, §2.3; over Z_2^k as in
Eerikson, Keller, Orlandi, Pullonen, Puura and Simkin, "Use your brain! Arithmetic 3PC for
any modulus with active security", ITC 2020): to check that shared ``z`` equals ``x * y``
with a random triple ``(a, b, c)``, open ``rho = x - a`` and ``sigma = y - b`` and check
that ``v = z - c - sigma*a - rho*b - rho*sigma`` is zero. Expanding gives
``v = (z - x*y) - (c - a*b)``: the check passes iff both errors are equal. It needs no
division, so it holds over any commutative ring: Z_2^64 for arithmetic, and GF(2)^64
(XOR, AND on uint64 words) for boolean gates.

Bucketing: each checked product is sacrificed against ``k`` triples drawn by a random
permutation (chosen after every error is committed) from a pool of ``M = k*n + c``; the
``c`` triples left over are checked directly (cut-and-choose: their ``a`` and ``b`` are
opened and ``c - a*b`` must be zero). Say the cheater spoils ``B`` pool triples and ``B/k``
products. It passes only if no spoiled triple is left over and the spoiled ones land exactly
in the buckets of the spoiled products (with the matching errors): the permutation must map
the spoiled set onto one fixed set of ``B`` of the ``M`` positions, probability
``1 / C(M, B)``. Over ``k <= B <= k*n`` that is at most ``1 / min(C(M, k), C(M, c))``: the
buckets handle few spoiled triples, the left-over ones the case where (nearly) all are
spoiled with one common error, which every sacrifice would accept. :func:`plan` picks the
cheapest ``(k, M)`` with both at least ``2^s`` (``s = 40`` by default).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import ValidationError

__all__ = ["STATISTICAL_BITS", "min_pool", "plan", "sacrifice_arith", "sacrifice_bool"]

U64 = NDArray[np.uint64]

#: Default statistical security: a cheat passes one check with probability below 2^-40.
STATISTICAL_BITS = 40

#: Bytes on the wire per party: a pool triple (8), a sacrifice (2 openings: 16), a left-over
#: triple checked against the public zero triple (its a and b opened: 16).
_COST_TRIPLE, _COST_SACRIFICE, _COST_OPENED = 8, 16, 16


@lru_cache(maxsize=64)
def min_pool(k: int, bits: int = STATISTICAL_BITS) -> int:
    """The smallest pool ``M`` with ``C(M, k) >= 2^bits``."""
    if k < 1:
        raise ValidationError("a bucket needs at least one triple")
    target = 1 << bits
    lo, hi = k, k
    while math.comb(hi, k) < target:
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if math.comb(mid, k) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _opened(used: int, bits: int) -> int:
    """The fewest opened triples ``c`` with ``C(used + c, c) >= 2^bits``."""
    target = 1 << bits
    c = 1
    while math.comb(used + c, c) < target:
        c += 1
    return c


def plan(n: int, bits: int = STATISTICAL_BITS) -> tuple[int, int]:
    """``(k, M)``: triples per checked product and pool size, the cheapest on the wire;
    ``M - k*n`` triples are opened (at least enough that ``C(M, M - k*n) >= 2^bits``)."""
    if n < 1:
        raise ValidationError("nothing to check")
    best: tuple[int, int, int] | None = None
    for k in range(2, 9):
        m = max(k * n + _opened(k * n, bits), min_pool(k, bits))
        cost = _COST_TRIPLE * m + _COST_SACRIFICE * k * n + _COST_OPENED * (m - k * n)
        if best is None or cost < best[0]:
            best = (cost, k, m)
    if best is None:  # pragma: no cover - the loop always runs
        raise ValidationError("no bucket plan")
    return best[1], best[2]


def sacrifice_arith(party: int, z: tuple[U64, U64], c: tuple[U64, U64], a: tuple[U64, U64],
                    b: tuple[U64, U64], rho: U64, sigma: U64, *, overwrite: bool = False
                    ) -> tuple[U64, U64]:
    """This party's pair of ``v = z - c - sigma*a - rho*b - rho*sigma`` over Z_2^64 (local;
    the public term goes into share 0, held by parties 0 and 2). With ``overwrite`` the
    result is written into ``c``'s arrays and ``a[0]`` is used as scratch (the caller owns
    them and needs them no more): no fresh memory, which on large pools saves the page
    faults of three new arrays."""
    if overwrite:
        va, vb, t = c[0], c[1], a[0]
        np.subtract(z[0], va, out=va)
    else:
        va, vb, t = z[0] - c[0], z[1] - c[1], np.empty_like(rho)
    # a[0] is read before it becomes scratch
    np.multiply(sigma, a[0], out=t)
    va -= t
    np.multiply(rho, b[0], out=t)
    va -= t
    if overwrite:
        np.subtract(z[1], vb, out=vb)
    np.multiply(sigma, a[1], out=t)
    vb -= t
    np.multiply(rho, b[1], out=t)
    vb -= t
    if party in (0, 2):
        np.multiply(rho, sigma, out=t)
        if party == 0:
            va -= t
        else:
            vb -= t
    return va, vb


def sacrifice_bool(party: int, z: tuple[U64, U64], c: tuple[U64, U64], a: tuple[U64, U64],
                   b: tuple[U64, U64], rho: U64, sigma: U64, *, overwrite: bool = False
                   ) -> tuple[U64, U64]:
    """The same over GF(2)^64 words: ``v = z ^ c ^ (sigma & a) ^ (rho & b) ^ (rho & sigma)``
    (``overwrite`` as for :func:`sacrifice_arith`)."""
    if overwrite:
        va, vb, t = c[0], c[1], a[0]
        np.bitwise_xor(z[0], va, out=va)
        np.bitwise_xor(z[1], vb, out=vb)
    else:
        va, vb, t = z[0] ^ c[0], z[1] ^ c[1], np.empty_like(rho)
    np.bitwise_and(sigma, a[0], out=t)
    va ^= t
    np.bitwise_and(rho, b[0], out=t)
    va ^= t
    np.bitwise_and(sigma, a[1], out=t)
    vb ^= t
    np.bitwise_and(rho, b[1], out=t)
    vb ^= t
    if party in (0, 2):
        np.bitwise_and(rho, sigma, out=t)
        if party == 0:
            va ^= t
        else:
            vb ^= t
    return va, vb
