"""Hosted mode: a dataset encrypted by its owner to a data node's public key.

Hybrid encryption, ECIES over secp256k1 (SEC 1 v2, section 5.1, with HKDF and an AEAD):

1. the owner draws an ephemeral secp256k1 key ``e`` and computes the ECDH secret
   ``z = SHA-256(compressed(e * P_node))`` (libsecp256k1's ECDH, via coincurve);
2. ``k = HKDF-SHA256(z, salt = E || P_node, info = "metisnet/hosted-upload/v1")``, with
   ``E`` and ``P_node`` the 33-byte compressed public keys (binds both keys to ``k``);
3. the file is encrypted with AES-256-GCM in chunks, STREAM nonces ``u88(i) || final``
   (as at rest, :mod:`metisnet.node.sealed`), the header as AAD.

``envelope = b"MTSH" || version(1) || chunk_bytes(u32) || E(33) || chunks``. A key is used
for one envelope only, so counter nonces are safe; reordering, truncation or a wrong node
key makes a tag fail. Encryption is deterministic given ``e``, which lets the owner hash the
envelope in one pass and send it in a second (the request signature covers the body hash)
without holding it in memory or on disk.

secp256k1 rather than X25519: the node's only key is its secp256k1 chain identity, whose
public key is registered on chain with the node, so an owner needs no second key to trust.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator

from coincurve import PrivateKey, PublicKey
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from metisnet.errors import DecryptionError, ValidationError
from metisnet.node.identity import NodeKey
from metisnet.node.ingest import ByteSource
from metisnet.node.sealed import stream_nonce

__all__ = ["EnvelopeReader", "envelope_chunks", "new_ephemeral_key"]

MAGIC = b"MTSH"
VERSION = 1
HEADER_LEN = 4 + 1 + 4 + 33
TAG_LEN = 16
_INFO = b"metisnet/hosted-upload/v1"
MAX_CHUNK = 64 * 1024 * 1024


def _derive(shared: bytes, eph_pub: bytes, node_pub: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, eph_pub + node_pub, _INFO).derive(shared)


def new_ephemeral_key() -> bytes:
    """A fresh secret for :func:`envelope_chunks` (reuse it only to re-run the same file)."""
    return bytes(PrivateKey().secret)


def envelope_chunks(
    node_public_key: bytes, source: ByteSource, ephemeral: bytes, chunk_bytes: int = 1 << 20
) -> Iterator[bytes]:
    """Yield the envelope of ``source`` for ``node_public_key``, header first."""
    try:
        node_pub = PublicKey(node_public_key).format(compressed=True)
    except (ValueError, TypeError):
        raise ValidationError("the node public key is not a secp256k1 point") from None
    eph = PrivateKey(ephemeral)
    eph_pub = eph.public_key.format(compressed=True)
    key = _derive(bytes(eph.ecdh(node_pub)), eph_pub, node_pub)
    header = MAGIC + bytes([VERSION]) + struct.pack(">I", chunk_bytes) + eph_pub
    aead = AESGCM(key)
    yield header
    index = 0
    current = source.read(chunk_bytes)
    while True:
        nxt = source.read(chunk_bytes)
        final = not nxt
        yield aead.encrypt(stream_nonce(index, final), current, header)
        if final:
            return
        current, index = nxt, index + 1


class EnvelopeReader(io.RawIOBase):
    """Reads the plaintext of an envelope from a stream, checking every chunk's tag.

    A wrong node key or a corrupted envelope is a :class:`DecryptionError` on the first
    chunk; a stream cut short is one at its end.
    """

    def __init__(self, source: ByteSource, node_key: NodeKey) -> None:
        super().__init__()
        self._src = source
        header = self._read_exact(HEADER_LEN)
        if len(header) != HEADER_LEN or header[:4] != MAGIC:
            raise ValidationError("the upload is not a metisnet hosted envelope")
        if header[4] != VERSION:
            raise ValidationError("unsupported hosted envelope version")
        (self._chunk,) = struct.unpack(">I", header[5:9])
        if not 16 <= self._chunk <= MAX_CHUNK:
            raise ValidationError("hosted envelope chunk size out of range")
        eph_pub = header[9:]
        try:
            shared = node_key.ecdh(eph_pub)
        except (ValueError, TypeError):
            raise ValidationError("hosted envelope has an invalid ephemeral key") from None
        self._aead = AESGCM(_derive(shared, eph_pub, node_key.public_key))
        self._header = header
        self._index = 0
        self._pending = b""
        self._plain = b""
        self._plain_off = 0
        self._done = False

    def _read_exact(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            part = self._src.read(n - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def _next_chunk(self) -> None:
        full = self._chunk + TAG_LEN
        # read one byte beyond a full chunk to learn whether this chunk is the last
        need = full + 1 - len(self._pending)
        if need > 0:
            self._pending += self._read_exact(need)
        final = len(self._pending) <= full
        ct = self._pending[:full]
        self._pending = self._pending[full:]
        if len(ct) < TAG_LEN:
            raise DecryptionError("the hosted envelope is truncated")
        try:
            self._plain = self._aead.decrypt(stream_nonce(self._index, final), ct, self._header)
        except InvalidTag:
            raise DecryptionError(
                "cannot decrypt the hosted upload: it was not encrypted to this node's key, "
                "or it is corrupted"
            ) from None
        self._plain_off = 0
        self._index += 1
        self._done = final

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        out = memoryview(b).cast("B")
        while self._plain_off >= len(self._plain):
            if self._done:
                return 0
            self._next_chunk()
        take = min(len(out), len(self._plain) - self._plain_off)
        out[:take] = memoryview(self._plain)[self._plain_off : self._plain_off + take]
        self._plain_off += take
        return take
