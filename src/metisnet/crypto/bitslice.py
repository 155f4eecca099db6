"""Bit-slicing: pack bit j of 64 consecutive elements into one uint64 word.

A vector of ``n`` ring elements becomes an array of shape ``(64, ceil(n/64))``: row ``j``
(a "plane") holds bit ``j`` of every element, element ``e`` at bit ``e % 64`` of word
``e // 64``. Boolean circuits then run on whole planes: one ``&`` of two planes evaluates
64 AND gates, and a boolean-shared AND costs 1 bit per element on the wire.

Padding bits (elements past ``n`` in the last word) are zero on the way in and ignored on
the way out. The transposition uses ``numpy.unpackbits`` / ``packbits`` (little-endian bit
order) on the byte view, so it is vectorised and costs a few passes over ``8n`` bytes.
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


def to_planes(x: NDArray[np.uint64], nbits: int = WORD_BITS) -> NDArray[np.uint64]:
    """Bit planes 0..nbits-1 of the flattened ``x``: shape ``(nbits, n_words(x.size))``."""
    if not 1 <= nbits <= WORD_BITS:
        raise ValidationError("nbits must be between 1 and 64")
    flat = np.ascontiguousarray(x, dtype=np.uint64).reshape(-1)
    n = flat.size
    nw = n_words(n)
    bits = np.unpackbits(flat.view(np.uint8).reshape(n, 8), axis=1, bitorder="little")
    cols = np.zeros((nbits, nw * WORD_BITS), dtype=np.uint8)
    cols[:, :n] = bits[:, :nbits].T
    packed = np.packbits(cols, axis=1, bitorder="little")
    return packed.view(np.uint64).reshape(nbits, nw)


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
    bits = planes_to_bits(planes, n)
    cols = np.zeros((n, WORD_BITS), dtype=np.uint8)
    cols[:, :k] = bits.T
    return np.packbits(cols, axis=1, bitorder="little").view(np.uint64).reshape(n)
