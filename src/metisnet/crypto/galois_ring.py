"""The Galois ring GR(2^64, 48) = Z_2^64[X] / (F(X)): an extension of the share ring with
2^48 "exceptional" elements, for checks whose soundness Z_2^64 alone cannot give.

Over Z_2^64 a random linear combination catches an error of 2^63 with probability 1/2
only, and a polynomial cannot be evaluated at more than two points whose differences are
units. In the extension, ``F = X^48 + X^17 + X^2 + X + 1`` is irreducible modulo 2 (checked
by Rabin's test in the tests), so ``GR = Z_2^64[X]/(F)`` is a Galois ring. Its elements
with 0/1 coefficients form an exceptional set of size 2^48: their differences reduce to
non-zero elements of GF(2^48) and are therefore units. Two facts follow (Abspoel, Cramer,
Damgard, Escudero and Yuan, TCC 2019, "Efficient information-theoretic secure multiparty
computation over Z/p^kZ via Galois rings", Lemma 2 and its use):

* for a non-zero ``e`` in Z_2^64 (or GR), ``theta * e = 0`` for at most one exceptional
  ``theta``;
* a non-zero polynomial of degree ``k`` over GR vanishes on at most ``k`` exceptional points.

Layout: an element is a uint64 array of shape ``(D,)`` (coefficient i of X^i); a vector of
``n`` elements is *planar*, shape ``(D, n)``, so that folding and inner products are integer
matrix products with contiguous inner dimensions. All arithmetic wraps modulo 2^64, as
numpy's uint64 does. Pure functions, no randomness of their own.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import ShapeError, ValidationError

__all__ = ["DEGREE", "MODULUS_TAPS", "SOUNDNESS_BITS", "embed", "exceptional", "inner", "mul",
           "mul_many", "mul_matrix", "powers", "reduce"]

U64 = NDArray[np.uint64]

#: Extension degree: the exceptional set has 2^DEGREE elements.
DEGREE = 48
#: ``F = X^48 + sum(X^i for i in MODULUS_TAPS)``, irreducible modulo 2.
MODULUS_TAPS = (0, 1, 2, 17)
#: log2 of the exceptional set's size (the per-point soundness of one evaluation).
SOUNDNESS_BITS = DEGREE

_D = DEGREE


def _reduction_matrix() -> U64:
    """``R`` with ``R @ c`` the reduction of coefficients ``c`` (2D-1 of them) modulo F."""
    r = np.zeros((_D, 2 * _D - 1), dtype=np.uint64)
    r[:, :_D] = np.eye(_D, dtype=np.uint64)
    col = np.zeros(_D, dtype=np.uint64)
    col[list(MODULUS_TAPS)] = 1
    col = -col  # X^D = -(sum of the taps)
    for k in range(_D, 2 * _D - 1):
        r[:, k] = col
        # X^(k+1) = X * X^k: shift up, the top coefficient folds back through F
        top = col[_D - 1:_D].copy()
        col = np.concatenate([np.zeros(1, dtype=np.uint64), col[:-1]])
        for t in MODULUS_TAPS:
            col[t:t + 1] -= top
    return r


_R = _reduction_matrix()
# _TOE[k, i] = k - i where that is a coefficient index, else D (a zero pad)
_K = np.arange(2 * _D - 1)[:, None] - np.arange(_D)[None, :]
_TOE = np.where((_K >= 0) & (_K < _D), _K, _D)
# rows and columns that place row i of a (D, D) matrix at columns i..i+D-1
_ROWS = np.arange(_D)[:, None]
_COLS = _ROWS + np.arange(_D)[None, :]


def reduce(c: U64) -> U64:
    """Reduce coefficients ``c`` of shape ``(T, ...)`` (``T <= 2D-1``) modulo ``F``."""
    rows = c.shape[0]
    if rows > 2 * _D - 1:
        raise ShapeError(f"cannot reduce {rows} coefficients (at most {2 * _D - 1})")
    flat = c.reshape(rows, -1)
    out: U64 = (_R[:, :rows] @ flat).reshape((_D, *c.shape[1:]))
    return out


def _antidiagonals(p: U64) -> U64:
    """``c_k = sum_{i+j=k} p[i, j]`` for a ``(D, D)`` matrix: 2D-1 coefficients."""
    spread = np.zeros((_D, 2 * _D - 1), dtype=np.uint64)
    spread[_ROWS, _COLS] = p
    out: U64 = spread.sum(axis=0, dtype=np.uint64)
    return out


def mul_matrix(b: U64) -> U64:
    """The ``(D, D)`` matrix of multiplication by ``b``: ``mul_matrix(b) @ v`` is ``b * v``
    for every column ``v`` of a planar vector (one integer matrix product)."""
    if b.shape != (_D,):
        raise ShapeError(f"a ring element has shape ({_D},), not {b.shape}")
    toeplitz = np.append(b, np.uint64(0))[_TOE]  # (2D-1, D): the full product's matrix
    out: U64 = _R @ toeplitz
    return out


def mul(a: U64, b: U64) -> U64:
    """The product of two elements (shape ``(D,)`` each)."""
    if a.shape != (_D,):
        raise ShapeError(f"ring elements have shape ({_D},), not {a.shape}")
    out: U64 = mul_matrix(b) @ a
    return out


def mul_many(a: U64, b: U64) -> U64:
    """Elementwise products of two planar vectors ``(D, n)``: D shifted multiply-adds over
    the whole batch, then one reduction (memory ``(2D-1) n`` words)."""
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != _D:
        raise ShapeError(f"elementwise product of planar vectors {a.shape} and {b.shape}")
    full = np.zeros((2 * _D - 1, a.shape[1]), dtype=np.uint64)
    for i in range(_D):
        full[i:i + _D] += a[i] * b
    out: U64 = _R @ full
    return out


def inner(a: U64, b: U64) -> U64:
    """``sum_l a_l * b_l`` for two planar vectors of shape ``(D, n)``: one element. The
    ``(D, D)`` matrix of coefficient products is one integer matrix product."""
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != _D:
        raise ShapeError(f"inner product of planar vectors {a.shape} and {b.shape}")
    return reduce(_antidiagonals(np.einsum("il,jl->ij", a, b)))


def embed(x: U64) -> U64:
    """Base-ring values ``(n,)`` as a planar vector ``(D, n)`` (constant polynomials)."""
    out = np.zeros((_D, x.size), dtype=np.uint64)
    out[0] = x
    return out


def powers(r: U64, k: int) -> U64:
    """``r^0 .. r^(k-1)`` as a ``(D, k)`` planar vector."""
    if k < 1:
        raise ValidationError("need at least one power")
    out = np.zeros((_D, k), dtype=np.uint64)
    out[0, 0] = 1
    m = mul_matrix(r)
    for i in range(1, k):
        out[:, i] = m @ out[:, i - 1]
    return out


def exceptional(words: U64, nonzero: bool = False) -> U64:
    """Elements of the exceptional set from public coins: the low ``D`` bits of each word
    are the 0/1 coefficients. Shape ``(D, n)`` for ``n`` words; with ``nonzero`` the zero
    element (probability 2^-48) is replaced by 1, so every element is a unit."""
    words = np.asarray(words, dtype=np.uint64).reshape(-1)
    bits = (words[None, :] >> np.arange(_D, dtype=np.uint64)[:, None]) & np.uint64(1)
    if nonzero:
        zero = ~bits.any(axis=0)
        bits[0, zero] = 1
    return np.ascontiguousarray(bits)
