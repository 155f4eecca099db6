"""Bit-slicing: pack bit j of 64 consecutive elements into one uint64 word.

A vector of ``n`` ring elements becomes an array of shape ``(64, ceil(n/64))``: row ``j``
(a "plane") holds bit ``j`` of every element, element ``e`` at bit ``e % 64`` of word
``e // 64``. Boolean circuits then run on whole planes: one ``&`` of two planes evaluates
64 AND gates, and a boolean-shared AND costs 1 bit per element on the wire.

Padding bits (elements past ``n`` in the last word) are zero on the way in and ignored on
the way out. The transposition is the recursive 64x64 bit-matrix transpose (six stages of masked
block swaps), vectorised over all blocks at once: a few dozen passes over ``8n`` bytes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import ValidationError

__all__ = ["WORD_BITS", "from_planes", "n_words", "planes_to_bits", "to_planes"]

WORD_BITS = 64


def n_words(n: int) -> int:
    """How many uint64 words hold one plane of ``n`` elements."""
    return (n + WORD_BITS - 1) // WORD_BITS


_MASKS = {
    32: np.uint64(0x00000000FFFFFFFF), 16: np.uint64(0x0000FFFF0000FFFF),
    8: np.uint64(0x00FF00FF00FF00FF), 4: np.uint64(0x0F0F0F0F0F0F0F0F),
    2: np.uint64(0x3333333333333333), 1: np.uint64(0x5555555555555555),
}


def _transpose64(blocks: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Transpose every 64x64 bit matrix in ``blocks`` (shape ``(m, 64)``; row r, bit c) in
    place: afterwards row c holds bit c of the 64 original rows. Six stages of masked
    block swaps (the recursive transpose of Hacker's Delight, 7-3), each a few vectorised
    passes over the whole array."""
    m = blocks.shape[0]
    j = 32
    while j:
        view = blocks.reshape(m, 64 // (2 * j), 2, j)
        lo = view[:, :, 0, :]
        hi = view[:, :, 1, :]
        sh = np.uint64(j)
        t = ((lo >> sh) ^ hi) & _MASKS[j]
        hi ^= t
        lo ^= t << sh
        j //= 2
    return blocks


def to_planes(x: NDArray[np.uint64], nbits: int = WORD_BITS) -> NDArray[np.uint64]:
    """Bit planes 0..nbits-1 of the flattened ``x``: shape ``(nbits, n_words(x.size))``."""
    if not 1 <= nbits <= WORD_BITS:
        raise ValidationError("nbits must be between 1 and 64")
    flat = np.asarray(x, dtype=np.uint64).reshape(-1)
    n = flat.size
    nw = n_words(n)
    blocks = np.zeros((nw, WORD_BITS), dtype=np.uint64)
    blocks.reshape(-1)[:n] = flat
    _transpose64(blocks)
    return np.ascontiguousarray(blocks.T[:nbits])


def planes_to_bits(planes: NDArray[np.uint64], n: int) -> NDArray[np.uint8]:
    """The bits of ``planes`` (shape ``(k, words)``) as a ``(k, n)`` array of 0/1 bytes."""
    k = planes.shape[0]
    raw = np.ascontiguousarray(planes, dtype=np.uint64).view(np.uint8).reshape(k, -1)
    return np.unpackbits(raw, axis=1, bitorder="little")[:, :n]


def from_planes(planes: NDArray[np.uint64], n: int) -> NDArray[np.uint64]:
    """Inverse of :func:`to_planes`: ``n`` elements whose bit j is plane j (missing planes 0)."""
    k = planes.shape[0]
    if k > WORD_BITS:
        raise ValidationError("at most 64 planes fit in a uint64 element")
    nw = planes.shape[1] if planes.ndim == 2 else 0
    if nw * WORD_BITS < n:
        raise ValidationError(f"{nw} words cannot hold {n} elements")
    blocks = np.zeros((nw, WORD_BITS), dtype=np.uint64)
    blocks[:, :k] = planes.T
    _transpose64(blocks)
    return blocks.reshape(-1)[:n].copy()
