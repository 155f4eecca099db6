"""Homomorphic encryption schemes (Paillier, CKKS adapter) behind one Scheme interface.

* :mod:`metisnet.he.paillier`: keys, ciphertexts, the safe API and the ``raw_*`` escape
  hatch; fast fixed-base encryption and short-exponent CRT decryption.
* :mod:`metisnet.he.vector`: Paillier as a :class:`Scheme` over encrypted vectors.
* :mod:`metisnet.he.ckks`: CKKS through TenSEAL (the ``he`` extra), imported lazily.
"""

from __future__ import annotations

from metisnet.he.paillier import (
    DEFAULT_KEY_BITS,
    PaillierCiphertext,
    PaillierKeypair,
    PaillierPrivateKey,
    PaillierPublicKey,
    check_randomness_proof,
    generate_keypair,
)
from metisnet.he.scheme import EncryptedVector, Scheme
from metisnet.he.vector import PaillierScheme, PaillierVector

__all__ = [
    "DEFAULT_KEY_BITS",
    "EncryptedVector",
    "PaillierCiphertext",
    "PaillierKeypair",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "PaillierScheme",
    "PaillierVector",
    "Scheme",
    "check_randomness_proof",
    "generate_keypair",
]
