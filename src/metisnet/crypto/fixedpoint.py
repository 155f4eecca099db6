"""Fixed-point encoding shared by MPC (ring Z_2^64) and HE (Paillier plaintexts).

A real number x is represented by the integer round(x * 2^f), where f is the number of
fractional bits (default 16). In the ring Z_2^64 negative integers wrap around (two's
complement), so the representable range is |x| < 2^(63-f). A product of two encodings
carries 2f fractional bits and must be truncated back by f bits; it stays correct while
|x*y| < 2^(63-2f) (2^31 for f = 16), which :attr:`FixedPoint.mul_bound` states.

The encoding error of one value is at most 2^-(f+1) (round to nearest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from metisnet.errors import ValidationError

__all__ = ["DEFAULT_FRAC_BITS", "FixedPoint", "high_part", "split_bits", "to_ring", "to_signed"]

DEFAULT_FRAC_BITS = 16
RING_BITS = 64


def to_ring(x: ArrayLike) -> NDArray[np.uint64]:
    """Signed int64 values (or anything castable) as ring elements of Z_2^64."""
    return np.asarray(x, dtype=np.int64).view(np.uint64)


def to_signed(r: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Ring elements read as two's-complement signed integers."""
    return np.asarray(r, dtype=np.uint64).view(np.int64)


def split_bits(frac_bits: int) -> int:
    """Bits ``s`` below a value's high part in the hi/lo split of exact sums of products:
    ``x = hi 2^s + lo`` with ``hi`` on ``f - s`` fractional bits and ``0 <= lo < 2^s``
    (raw), so ``hi * hi`` lands on exactly ``f`` bits
    (:func:`metisnet.algorithms.stats.cross_products`)."""
    return frac_bits // 2


def high_part(encoded: NDArray[np.uint64], frac_bits: int) -> NDArray[np.uint64]:
    """The high parts of encoded values (``floor(x / 2^s)``, two's complement): what an
    input's owner deals beside the value so that the committee need not truncate it."""
    shift = np.int64(split_bits(frac_bits))
    return (np.asarray(encoded, dtype=np.uint64).view(np.int64) >> shift).view(np.uint64)


@dataclass(frozen=True)
class FixedPoint:
    """Fixed-point encoding with ``frac_bits`` fractional bits over Z_2^64."""

    frac_bits: int = DEFAULT_FRAC_BITS

    def __post_init__(self) -> None:
        if not 0 <= self.frac_bits <= 30:
            raise ValidationError("frac_bits must be between 0 and 30")

    @property
    def scale(self) -> int:
        return 1 << self.frac_bits

    @property
    def max_abs(self) -> float:
        """Largest magnitude one encoded value may have: 2^(63-f)."""
        return float(2 ** (RING_BITS - 1 - self.frac_bits))

    @property
    def mul_bound(self) -> float:
        """A product of two encoded values is exact only while |x*y| < 2^(63-2f)."""
        return float(2 ** (RING_BITS - 1 - 2 * self.frac_bits))

    @property
    def resolution(self) -> float:
        """The value of the least significant bit, 2^-f."""
        return 1.0 / self.scale

    def encode(self, x: ArrayLike) -> NDArray[np.uint64]:
        """Encode reals into ring elements; refuses NaN, infinities and out-of-range values."""
        arr = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValidationError("cannot encode NaN or infinite values")
        if arr.size and float(np.max(np.abs(arr))) >= self.max_abs:
            raise ValidationError(
                f"value out of fixed-point range: |x| must be below 2^{63 - self.frac_bits}"
            )
        return np.rint(arr * self.scale).astype(np.int64).view(np.uint64)

    def decode(self, r: ArrayLike) -> NDArray[np.float64]:
        """Decode ring elements back to reals."""
        return np.asarray(r, dtype=np.uint64).view(np.int64).astype(np.float64) / self.scale

    def encode_int(self, x: float) -> int:
        """Encode one real as a signed Python integer (for HE plaintext spaces)."""
        if not np.isfinite(x):
            raise ValidationError("cannot encode NaN or infinite values")
        return round(x * self.scale)

    def decode_int(self, v: int, frac_bits: int | None = None) -> float:
        """Decode a signed integer carrying ``frac_bits`` (default f) fractional bits."""
        f = self.frac_bits if frac_bits is None else frac_bits
        return v / float(1 << f)
