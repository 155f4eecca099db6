"""CKKS (Cheon, Kim, Kim and Song, ASIACRYPT 2017) through TenSEAL, behind :class:`Scheme`.

TenSEAL (Benaissa et al., 2021; Microsoft SEAL underneath) is an optional dependency, the
``he`` extra; without it, constructing :class:`CkksScheme` raises
:class:`~metisnet.errors.DependencyMissing`.

CKKS is approximate: decryption returns the result with an error around 2^-20 relative
to the values at the default scale 2^40, and a ciphertext decrypted under a wrong secret
key gives noise rather than an error. Use Paillier where exact results or verification by
MACs are needed. Parameters (defaults): ring degree N = 8192 (4096 slots), coefficient
moduli of 60+40+40+60 bits (about 128-bit security per the HE standard's tables), scale
2^40, one ciphertext-plaintext multiplication deep; Galois keys for sums, dot products and
matrix-vector products (rotations).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import DecryptionError, DependencyMissing, ShapeError, ValidationError
from metisnet.he.scheme import Plain

__all__ = ["CkksScheme", "CkksVector", "load_tenseal"]


def load_tenseal() -> Any:
    """The ``tenseal`` module, or :class:`DependencyMissing` naming the extra."""
    try:
        import tenseal
    except ImportError as exc:
        raise DependencyMissing("tenseal", "he") from exc
    return tenseal


class CkksVector:
    """A TenSEAL CKKS vector with its length."""

    __slots__ = ("inner",)

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return int(self.inner.size())

    def __repr__(self) -> str:
        return f"CkksVector(len={len(self)})"


class CkksScheme:
    """CKKS as a :class:`Scheme`. ``CkksScheme()`` makes a fresh context with a secret key;
    :meth:`public` returns a copy without it (for a compute node)."""

    name = "ckks"
    exact = False

    def __init__(self, *, poly_modulus_degree: int = 8192,
                 coeff_mod_bit_sizes: tuple[int, ...] = (60, 40, 40, 60),
                 scale_bits: int = 40, context: Any = None) -> None:
        self._ts = load_tenseal()
        if context is None:
            context = self._ts.context(self._ts.SCHEME_TYPE.CKKS,
                                       poly_modulus_degree=poly_modulus_degree,
                                       coeff_mod_bit_sizes=list(coeff_mod_bit_sizes))
            context.global_scale = float(2**scale_bits)
            context.generate_galois_keys()
        self.context = context
        self.slots = poly_modulus_degree // 2  # for an adopted context: its own degree

    def __repr__(self) -> str:
        return f"CkksScheme(private={self.context.is_private()})"

    def public(self) -> CkksScheme:
        """The same scheme without the secret key (what a compute node gets)."""
        ctx = self.context.copy()
        ctx.make_context_public()
        return CkksScheme(context=ctx, poly_modulus_degree=2 * self.slots)

    def serialize_context(self) -> bytes:
        """The public context (keys for evaluation, no secret key) as bytes."""
        return bytes(self.context.serialize(save_secret_key=False))

    @classmethod
    def from_context_bytes(cls, data: bytes) -> CkksScheme:
        ts = load_tenseal()
        try:
            ctx = ts.context_from(data)
        except Exception as exc:  # TenSEAL raises plain exceptions on bad input
            raise ValidationError("malformed CKKS context") from exc
        return cls(context=ctx)

    def _plain(self, values: Plain | float, length: int | None = None) -> list[float]:
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
        if arr.ndim != 1:
            raise ShapeError("CKKS vectors are one-dimensional")
        if not np.isfinite(arr).all():
            raise ValidationError("cannot encode NaN or infinite values")
        if length is not None and arr.size == 1 and length != 1:
            arr = np.full(length, arr[0])
        if length is not None and arr.size != length:
            raise ShapeError(f"lengths differ ({length} vs {arr.size})")
        out: list[float] = arr.tolist()
        return out

    def _check(self, *vs: CkksVector) -> None:
        for v in vs:
            if not isinstance(v, CkksVector):
                raise ShapeError("expected a CkksVector")

    def encrypt(self, values: Plain) -> CkksVector:
        vals = self._plain(values)
        if len(vals) > self.slots:
            raise ShapeError(f"at most {self.slots} values fit one CKKS vector")
        try:
            return CkksVector(self._ts.ckks_vector(self.context, vals))
        except ValueError as exc:
            raise ShapeError("too many values for one CKKS vector") from exc

    def decrypt(self, ct: CkksVector) -> NDArray[np.float64]:
        self._check(ct)
        if not self.context.is_private():
            raise DecryptionError("this CKKS context holds no secret key")
        return np.asarray(ct.inner.decrypt(), dtype=np.float64)

    def add(self, a: CkksVector, b: CkksVector) -> CkksVector:
        self._check(a, b)
        if len(a) != len(b):
            raise ShapeError(f"lengths differ ({len(a)} vs {len(b)})")
        return CkksVector(a.inner + b.inner)

    def add_plain(self, a: CkksVector, values: Plain) -> CkksVector:
        self._check(a)
        return CkksVector(a.inner + self._plain(values, len(a)))

    def mul_plain(self, a: CkksVector, values: Plain | float) -> CkksVector:
        self._check(a)
        return CkksVector(a.inner * self._plain(values, len(a)))

    def sum(self, a: CkksVector) -> CkksVector:
        self._check(a)
        return CkksVector(a.inner.sum())

    def dot_plain(self, a: CkksVector, weights: Plain) -> CkksVector:
        self._check(a)
        return CkksVector(a.inner.dot(self._plain(weights, len(a))))

    def matvec_plain(self, matrix: NDArray[np.float64], a: CkksVector) -> CkksVector:
        self._check(a)
        mat = np.asarray(matrix, dtype=np.float64)
        if mat.ndim != 2 or mat.shape[1] != len(a):
            raise ShapeError(f"matrix of shape {mat.shape} does not fit a vector of {len(a)}")
        # TenSEAL computes vector @ matrix; M @ a is a @ M^T.
        return CkksVector(a.inner.mm(mat.T.tolist()))

    def serialize(self, a: CkksVector) -> bytes:
        self._check(a)
        return bytes(a.inner.serialize())

    def deserialize(self, data: bytes) -> CkksVector:
        try:
            return CkksVector(self._ts.ckks_vector_from(self.context, data))
        except Exception as exc:  # TenSEAL raises plain exceptions on bad input
            raise ValidationError("malformed serialized CKKS vector") from exc
