"""The one interface every homomorphic scheme offers: encrypted vectors of reals.

Paillier (exact integers mod n, fixed-point reals, linear operations only) and CKKS
(approximate reals in SIMD slots) both implement :class:`Scheme`, so a program written
against it runs on either. Scheme-specific power (raw integers, MAC tags, rotations) stays
on the concrete classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["EncryptedVector", "Scheme"]

Plain = Sequence[float] | NDArray[np.float64]


@runtime_checkable
class EncryptedVector(Protocol):
    """An encrypted vector; ``len`` is its number of elements."""

    def __len__(self) -> int: ...


V = TypeVar("V", bound=EncryptedVector)


@runtime_checkable
class Scheme(Protocol[V]):
    """A homomorphic scheme over encrypted vectors ``V``.

    ``exact`` tells whether decryption returns exactly what the plaintext computation
    would (Paillier on fixed-point values) or an approximation (CKKS).
    """

    name: str
    exact: bool

    def encrypt(self, values: Plain) -> V:
        """Encrypt a vector of reals."""
        ...

    def decrypt(self, ct: V) -> NDArray[np.float64]:
        """Decrypt (needs the secret key)."""
        ...

    def add(self, a: V, b: V) -> V:
        """Element-wise sum of two encrypted vectors of one key and length."""
        ...

    def add_plain(self, a: V, values: Plain) -> V:
        """Element-wise sum with a plaintext vector."""
        ...

    def mul_plain(self, a: V, values: Plain | float) -> V:
        """Element-wise product with a plaintext vector, or a scalar."""
        ...

    def sum(self, a: V) -> V:
        """The sum of all elements, as a vector of length 1."""
        ...

    def dot_plain(self, a: V, weights: Plain) -> V:
        """The weighted sum ``sum(w_i * a_i)``, as a vector of length 1."""
        ...

    def matvec_plain(self, matrix: NDArray[np.float64], a: V) -> V:
        """``matrix @ a`` for a plaintext matrix of shape ``(m, len(a))``."""
        ...

    def serialize(self, a: V) -> bytes:
        """Bytes that :meth:`deserialize` turns back into ``a`` (never pickle)."""
        ...

    def deserialize(self, data: bytes) -> V:
        ...
