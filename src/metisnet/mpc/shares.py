"""Typed secret-shared values: arithmetic (:class:`SharedArray`) and boolean (:class:`SharedBits`).

Both are one party's pair of 2-out-of-3 replicated shares (Araki et al., CCS 2016, §2):
party ``i`` holds ``(x_i, x_{i+1})``. The types carry what a secret must not lose track of:

* :class:`SharedArray` - ring Z_2^64 (``RING_BITS``), ``frac_bits`` (0 for integers, f for
  fixed point), the element ``shape``, and the ``party`` holding it. Sums and differences
  with each other or with public constants are local (0 rounds, 0 bytes) and offered as
  operators; everything that talks lives in :mod:`metisnet.mpc.arith` and takes a context.
* :class:`SharedBits` - XOR shares of ``nbits`` bit planes of ``count`` elements, bit-sliced
  (plane j holds bit j of 64 elements per uint64 word; :mod:`metisnet.crypto.bitslice`).
  XOR and NOT are local; AND lives in :mod:`metisnet.mpc.boolean`.

Mixing values of different shapes, scales, parties or plane counts raises
:class:`~metisnet.errors.ShapeError`. ``bool(secret)`` raises ``TypeError``: a secret can
never steer an ``if`` by accident. ``repr`` never shows shares.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from metisnet.crypto.bitslice import n_words
from metisnet.crypto.fixedpoint import FixedPoint, to_ring
from metisnet.errors import ShapeError, ValidationError

__all__ = ["RING_BITS", "SharedArray", "SharedBits", "encode_public"]

#: The ring is Z_2^64: numpy uint64 arithmetic wraps around exactly like the ring.
RING_BITS = 64

U64 = NDArray[np.uint64]


def encode_public(value: ArrayLike, frac_bits: int) -> U64:
    """Encode a public constant at ``frac_bits`` (integers must be integral when f = 0)."""
    if frac_bits > 0:
        return FixedPoint(frac_bits).encode(value)
    arr = np.asarray(value)
    if arr.dtype == np.uint64:
        return arr
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.rint(arr)):
            raise ValidationError("an integer secret only combines with integral constants")
        return to_ring(arr.astype(np.int64))
    if arr.dtype.kind not in "iub":
        raise ValidationError(f"cannot use a {arr.dtype} constant with a secret")
    return to_ring(arr)


class SharedArray:
    """One party's replicated shares ``(x_i, x_{i+1})`` of an array over Z_2^64."""

    __slots__ = ("a", "b", "frac_bits", "party")

    ring_bits = RING_BITS

    def __init__(self, a: U64, b: U64, *, party: int, frac_bits: int = 0) -> None:
        if a.dtype != np.uint64 or b.dtype != np.uint64:
            raise ShapeError("shares must be uint64 arrays")
        if a.shape != b.shape:
            raise ShapeError(f"share shapes differ: {a.shape} and {b.shape}")
        if not 0 <= party < 3:
            raise ShapeError(f"invalid party index {party}")
        if not 0 <= frac_bits <= 62:
            raise ShapeError("frac_bits must be between 0 and 62")
        self.a = a
        self.b = b
        self.party = party
        self.frac_bits = frac_bits

    # -- description ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.a.shape)

    @property
    def size(self) -> int:
        return int(self.a.size)

    @property
    def ndim(self) -> int:
        return int(self.a.ndim)

    @property
    def is_fixed(self) -> bool:
        return self.frac_bits > 0

    def __len__(self) -> int:
        return int(self.a.shape[0])

    def __repr__(self) -> str:
        kind = f"fixed f={self.frac_bits}" if self.frac_bits else "int"
        return f"SharedArray(Z_2^64, {kind}, shape={self.shape}, party={self.party})"

    def __bool__(self) -> bool:
        raise TypeError("a secret-shared value has no truth value; reveal it or use select()")

    # -- structure (local) ------------------------------------------------------------------
    def like(self, a: U64, b: U64, frac_bits: int | None = None) -> SharedArray:
        f = self.frac_bits if frac_bits is None else frac_bits
        return SharedArray(a, b, party=self.party, frac_bits=f)

    def __getitem__(self, key: Any) -> SharedArray:
        return self.like(np.asarray(self.a[key]), np.asarray(self.b[key]))

    def reshape(self, *shape: Any) -> SharedArray:
        return self.like(self.a.reshape(*shape), self.b.reshape(*shape))

    def flatten(self) -> SharedArray:
        return self.reshape(-1)

    @property
    def T(self) -> SharedArray:
        return self.like(self.a.T, self.b.T)

    def check_compatible(self, other: SharedArray) -> None:
        """Raise :class:`ShapeError` unless ``other`` has this value's party, scale and shape."""
        if not isinstance(other, SharedArray):
            raise ShapeError(f"expected a SharedArray, got {type(other).__name__}")
        if other.party != self.party:
            raise ShapeError(f"shares of party {self.party} and party {other.party} mixed")
        if other.frac_bits != self.frac_bits:
            raise ShapeError(
                f"fixed-point scales differ: {self.frac_bits} and {other.frac_bits} "
                "fractional bits"
            )
        if other.shape != self.shape:
            raise ShapeError(f"shapes differ: {self.shape} and {other.shape}")

    # -- local arithmetic -------------------------------------------------------------------
    def add_public(self, value: ArrayLike) -> SharedArray:
        """``x + c`` for public ``c`` (added into share x_0, held by parties 0 and 2)."""
        return self.add_ring(encode_public(value, self.frac_bits))

    def add_ring(self, c: U64) -> SharedArray:
        """``x + c`` for a public constant already encoded in the ring at this scale."""
        if np.broadcast_shapes(c.shape, self.shape) != self.shape:
            raise ShapeError(f"a constant of shape {c.shape} does not fit {self.shape}")
        a, b = self.a, self.b
        if self.party == 0:
            a = a + c
        elif self.party == 2:
            b = b + c
        return self.like(a, b)

    def mul_public_int(self, value: ArrayLike) -> SharedArray:
        """``x * k`` for public integers ``k`` (local; the scale is unchanged)."""
        k = encode_public(value, 0)
        if np.broadcast_shapes(k.shape, self.shape) != self.shape:
            raise ShapeError(f"a constant of shape {k.shape} does not fit {self.shape}")
        return self.like(self.a * k, self.b * k)

    def __add__(self, other: object) -> SharedArray:
        if isinstance(other, SharedArray):
            self.check_compatible(other)
            return self.like(self.a + other.a, self.b + other.b)
        if isinstance(other, SharedBits):
            raise ShapeError("cannot add boolean shares to arithmetic shares; use b2a()")
        return self.add_public(other)  # type: ignore[arg-type]

    __radd__ = __add__

    def __neg__(self) -> SharedArray:
        return self.like(np.negative(self.a), np.negative(self.b))

    def __sub__(self, other: object) -> SharedArray:
        if isinstance(other, SharedArray):
            self.check_compatible(other)
            return self.like(self.a - other.a, self.b - other.b)
        if isinstance(other, SharedBits):
            raise ShapeError("cannot subtract boolean shares from arithmetic shares")
        c = encode_public(other, self.frac_bits)  # type: ignore[arg-type]
        return self.add_ring(np.negative(c))

    def __rsub__(self, other: object) -> SharedArray:
        return (-self).__add__(other)

    def __mul__(self, other: object) -> SharedArray:
        if isinstance(other, (SharedArray, SharedBits)):
            raise TypeError("multiplying secrets needs a context: use metisnet.mpc.mul(ctx, x, y)")
        if isinstance(other, float) or (
            isinstance(other, np.ndarray) and other.dtype.kind == "f"
        ):
            raise TypeError("multiplying by a real constant truncates: use mpc.mul_public()")
        return self.mul_public_int(other)  # type: ignore[arg-type]

    __rmul__ = __mul__

    def __lshift__(self, bits: int) -> SharedArray:
        return self.like(self.a << np.uint64(bits), self.b << np.uint64(bits))


class SharedBits:
    """One party's XOR shares of ``nbits`` bit planes for ``count`` elements (bit-sliced).

    ``a`` and ``b`` have shape ``(nbits, n_words(count))``. ``shape`` is the shape of the
    elements the planes describe (its product is ``count``).
    """

    __slots__ = ("a", "b", "party", "shape")

    def __init__(self, a: U64, b: U64, *, party: int, shape: tuple[int, ...]) -> None:
        if a.dtype != np.uint64 or b.dtype != np.uint64:
            raise ShapeError("bit-plane shares must be uint64 arrays")
        if a.shape != b.shape or a.ndim != 2:
            raise ShapeError(f"bit-plane shares must be 2-D and equal: {a.shape}, {b.shape}")
        count = int(np.prod(shape, dtype=np.int64))
        if a.shape[1] != n_words(count):
            raise ShapeError(f"{a.shape[1]} words cannot hold {count} elements")
        if not 0 <= party < 3:
            raise ShapeError(f"invalid party index {party}")
        self.a = a
        self.b = b
        self.party = party
        self.shape = tuple(shape)

    @property
    def nbits(self) -> int:
        return int(self.a.shape[0])

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def words(self) -> int:
        return int(self.a.shape[1])

    def __repr__(self) -> str:
        return f"SharedBits(nbits={self.nbits}, shape={self.shape}, party={self.party})"

    def __bool__(self) -> bool:
        raise TypeError("a secret-shared bit has no truth value; reveal it or use select()")

    def like(self, a: U64, b: U64) -> SharedBits:
        return SharedBits(a, b, party=self.party, shape=self.shape)

    def planes(self, index: Any) -> SharedBits:
        """A subset of the planes (``index`` selects rows), same elements."""
        a = np.atleast_2d(self.a[index])
        b = np.atleast_2d(self.b[index])
        return self.like(a, b)

    def check_compatible(self, other: SharedBits) -> None:
        if not isinstance(other, SharedBits):
            raise ShapeError(f"expected SharedBits, got {type(other).__name__}")
        if other.party != self.party:
            raise ShapeError(f"shares of party {self.party} and party {other.party} mixed")
        if other.shape != self.shape or other.nbits != self.nbits:
            raise ShapeError(
                f"bit shares differ: {self.nbits} planes of {self.shape} and "
                f"{other.nbits} planes of {other.shape}"
            )

    def __xor__(self, other: object) -> SharedBits:
        if not isinstance(other, SharedBits):
            raise ShapeError("XOR needs two SharedBits")
        self.check_compatible(other)
        return self.like(self.a ^ other.a, self.b ^ other.b)

    def xor_public(self, planes: U64) -> SharedBits:
        """XOR public planes (shape ``(nbits, words)``) into share 0 (parties 0 and 2)."""
        if planes.shape != self.a.shape:
            raise ShapeError(f"public planes {planes.shape} do not fit {self.a.shape}")
        a, b = self.a, self.b
        if self.party == 0:
            a = a ^ planes
        elif self.party == 2:
            b = b ^ planes
        return self.like(a, b)

    def __invert__(self) -> SharedBits:
        return self.xor_public(np.full(self.a.shape, np.uint64(0xFFFFFFFFFFFFFFFF)))
