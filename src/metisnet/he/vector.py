"""Paillier behind the :class:`~metisnet.he.scheme.Scheme` interface: one ciphertext per
element, fixed-point reals with the encoding shared with MPC.

A vector carries one scale (fractional bits) for all its elements; a product with a
plaintext real adds ``frac_bits`` to the scale (exact, no truncation needed since the
plaintext space is ~2^2048). Everything is exact: decryption returns what the same
fixed-point computation on plaintexts returns.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
from gmpy2 import mpz
from numpy.typing import NDArray

from metisnet.crypto.fixedpoint import FixedPoint
from metisnet.crypto.prg import Csprng
from metisnet.errors import DecryptionError, ShapeError, ValidationError
from metisnet.he.paillier import PaillierPrivateKey, PaillierPublicKey
from metisnet.he.scheme import Plain

__all__ = ["PaillierScheme", "PaillierVector"]


class PaillierVector:
    """Ciphertexts (raw integers mod n^2) under one key, with one fixed-point scale."""

    __slots__ = ("cts", "key", "scale")

    def __init__(self, key: PaillierPublicKey, cts: list[mpz], scale: int) -> None:
        self.key = key
        self.cts = cts
        self.scale = scale

    def __len__(self) -> int:
        return len(self.cts)

    def __repr__(self) -> str:
        return f"PaillierVector(len={len(self.cts)}, scale={self.scale})"


class PaillierScheme:
    """Paillier as a :class:`Scheme`; ``private_key`` is needed only to decrypt."""

    name = "paillier"
    exact = True

    def __init__(self, public_key: PaillierPublicKey,
                 private_key: PaillierPrivateKey | None = None, *,
                 fixed_point: FixedPoint | None = None, rng: Csprng | None = None) -> None:
        if private_key is not None and private_key.public_key != public_key:
            raise ValidationError("private key does not belong to the public key")
        self.public_key = public_key
        self._sk = private_key
        self.fp = fixed_point or public_key.fixed_point
        self._rng = rng

    def __repr__(self) -> str:
        return f"PaillierScheme({self.public_key!r}, can_decrypt={self._sk is not None})"

    def _check(self, *vs: PaillierVector) -> None:
        for v in vs:
            if not isinstance(v, PaillierVector):
                raise ShapeError("expected a PaillierVector")
            if v.key is not self.public_key and v.key != self.public_key:
                raise ShapeError("the vector was encrypted under a different Paillier key")

    def _encode(self, values: Plain | float) -> list[int]:
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
        return [self.fp.encode_int(float(x)) for x in arr]

    def encrypt(self, values: Plain) -> PaillierVector:
        ms = self._encode(values)
        return PaillierVector(self.public_key,
                              self.public_key.raw_encrypt_many(ms, rng=self._rng),
                              self.fp.frac_bits)

    def decrypt(self, ct: PaillierVector) -> NDArray[np.float64]:
        if self._sk is None:
            raise DecryptionError("this scheme holds no private key")
        self._check(ct)
        scale = float(1 << ct.scale)
        return np.array([self._sk.raw_decrypt_signed(c) / scale for c in ct.cts],
                        dtype=np.float64)

    def add(self, a: PaillierVector, b: PaillierVector) -> PaillierVector:
        self._check(a, b)
        if len(a) != len(b):
            raise ShapeError(f"lengths differ ({len(a)} vs {len(b)})")
        if a.scale != b.scale:
            raise ShapeError(f"fixed-point scales differ ({a.scale} vs {b.scale} bits)")
        n2 = self.public_key.nsquare
        return PaillierVector(self.public_key,
                              [x * y % n2 for x, y in zip(a.cts, b.cts, strict=True)],
                              a.scale)

    def add_plain(self, a: PaillierVector, values: Plain) -> PaillierVector:
        self._check(a)
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
        if arr.size != len(a):
            raise ShapeError(f"lengths differ ({len(a)} vs {arr.size})")
        pk = self.public_key
        ms = [round(float(x) * float(1 << a.scale)) for x in arr]
        return PaillierVector(pk, [pk.raw_add_plain(c, m) for c, m in
                                   zip(a.cts, ms, strict=True)], a.scale)

    def mul_plain(self, a: PaillierVector, values: Plain | float) -> PaillierVector:
        self._check(a)
        ks = self._encode(values)
        if len(ks) == 1 and len(a) != 1:
            ks = ks * len(a)
        if len(ks) != len(a):
            raise ShapeError(f"lengths differ ({len(a)} vs {len(ks)})")
        pk = self.public_key
        return PaillierVector(pk, [pk.raw_mul(c, k) for c, k in zip(a.cts, ks, strict=True)],
                              a.scale + self.fp.frac_bits)

    def sum(self, a: PaillierVector) -> PaillierVector:
        self._check(a)
        return PaillierVector(self.public_key, [self.public_key.raw_sum(a.cts)], a.scale)

    def dot_plain(self, a: PaillierVector, weights: Plain) -> PaillierVector:
        self._check(a)
        ws = self._encode(weights)
        return PaillierVector(self.public_key, [self.public_key.raw_weighted_sum(a.cts, ws)],
                              a.scale + self.fp.frac_bits)

    def matvec_plain(self, matrix: NDArray[np.float64], a: PaillierVector) -> PaillierVector:
        self._check(a)
        mat = np.asarray(matrix, dtype=np.float64)
        if mat.ndim != 2 or mat.shape[1] != len(a):
            raise ShapeError(f"matrix of shape {mat.shape} does not fit a vector of {len(a)}")
        pk = self.public_key
        rows = [pk.raw_weighted_sum(a.cts, self._encode(row)) for row in mat]
        return PaillierVector(pk, rows, a.scale + self.fp.frac_bits)

    def serialize(self, a: PaillierVector) -> bytes:
        self._check(a)
        nb = self.public_key.nsquare_bytes
        msg: dict[str, Any] = {"scheme": self.name, "key": self.public_key.key_id,
                               "scale": a.scale, "cts": [bytes(c.to_bytes(nb, "big"))
                                                         for c in a.cts]}
        return bytes(msgpack.packb(msg, use_bin_type=True))

    def deserialize(self, data: bytes) -> PaillierVector:
        try:
            msg = msgpack.unpackb(data, raw=False)
            if msg["scheme"] != self.name or msg["key"] != self.public_key.key_id:
                raise ShapeError("serialized vector belongs to another scheme or key")
            scale = int(msg["scale"])
            cts = [self.public_key.check_ciphertext(mpz.from_bytes(b, "big"))
                   for b in msg["cts"]]
        except (KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
            if isinstance(exc, ShapeError | ValidationError):
                raise
            raise ValidationError("malformed serialized Paillier vector") from exc
        return PaillierVector(self.public_key, cts, scale)


