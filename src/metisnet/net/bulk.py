"""Bulk record layer: large array payloads under AES-256-GCM keys agreed inside TLS.

Why
---
TLS 1.3 cuts every payload into records of at most 16 KiB. Driven from Python (``ssl``
has no read-ahead, no vectored writes and no kernel TLS here), each record costs one or
two system calls and a Python call on each side, plus memory-BIO copies; on the project's
2-core machines this held a 64 MiB transfer to 0.2-0.35 of a raw socket even for bare
``ssl.SSLSocket`` (benchmarks/net.py, "bare ssl (floor)" rows). This module carries the
*payload* of a large frame in records of up to :data:`RECORD` bytes, each sealed with one
AES-256-GCM call straight from the caller's array and opened straight into the receiving
numpy array, with one ``send``/``recv`` per record. Everything else -- the handshake, the
pins, every frame header and every small frame -- still goes through TLS 1.3.

This is a stated deviation from "TLS everywhere" (DESIGN §5): bulk payload bytes are
protected by this construction, whose keys come out of the pinned TLS 1.3 session.

Construction
------------
1. After the mutually pinned TLS 1.3 handshake (:mod:`metisnet.net.tls`) each side makes
   an ephemeral X25519 key pair (RFC 7748) and sends its public value *inside* TLS, in the
   message that confirms the handshake.
2. ``ikm = X25519(own secret, peer public)``; an all-zero result (a low-order point) is
   refused. With ``transcript = LABEL || dialer cert hash || acceptor cert hash ||
   dialer public || acceptor public``, HKDF-SHA256 (RFC 5869) with
   ``salt = SHA-256(transcript)`` and ``info = LABEL + b" keys"`` yields 64 bytes: the
   first 32 are the dialer-to-acceptor key, the last 32 the acceptor-to-dialer key.
3. A frame whose payload goes in bulk has kind ``KIND_BULK`` in its header, which travels
   in TLS as usual; the payload follows on the same TCP stream immediately after that TLS
   record, as ``ceil(n / RECORD)`` records of ``min(RECORD, rest) + 16`` bytes
   (ciphertext and GCM tag; no length field: the authenticated header fixes every length).
4. Record ``i`` of a frame is ``AES-256-GCM(key, nonce, plaintext, aad)`` with ``nonce =
   0^32 || counter`` (a 64-bit big-endian count of records sent in that direction on this
   connection, starting at 0) and ``aad = LABEL || SHA-256(frame prefix || header) ||
   u32 i || u32 count``.

Security argument
-----------------
* Authenticity of the keys: the X25519 public values travel inside a TLS 1.3 session
  whose two certificates are pinned (``sha256(DER)``) on both sides and which is refused
  before any payload otherwise; an active attacker can neither read nor replace them, so
  only the two pinned endpoints know ``ikm`` (the CDH assumption on Curve25519). Fresh
  ephemeral keys per connection give forward secrecy, as TLS 1.3 does; the transcript in
  the salt binds the keys to both certificates and both public values.
* Confidentiality and integrity of each record: AES-256-GCM under a key used by one
  sender only (one key per direction, so reflection fails) with a nonce that never
  repeats under that key (a strictly increasing counter). After :data:`MAX_BYTES` of
  plaintext under one key -- far below the GCM bounds of NIST SP 800-38D -- both sides
  replace it, in step, by ``HKDF-Expand(key, LABEL || " next", 32)`` (they count the same
  records, so no message is needed; the old key is dropped).
* Order, replay, splicing and truncation: the receiver expects exactly the counter it
  has reached, so a dropped, repeated, reordered or replayed record fails its tag; the AAD
  binds each record to its frame header (itself authenticated by TLS), its index and the
  record count, so records cannot move between frames; a record from another connection or
  direction is under another key. The switch between TLS and bulk bytes on the stream is
  made only by an authenticated header, so bytes cannot be moved between the two layers
  without a tag or TLS MAC failing. A stream cut inside a frame ends in EOF before the
  frame is complete, an error like a truncated TLS frame. Any failure closes the
  connection (a :class:`~metisnet.errors.WireError` for its sessions), as a TLS MAC failure
  does.
* What is not hidden beyond TLS: record lengths (TLS shows them too) and that a frame is
  bulk. Keys live only in memory, in ``cryptography``'s AESGCM objects.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from metisnet.errors import NetworkError, WireError

__all__ = [
    "BULK_MIN",
    "LABEL",
    "MAX_BYTES",
    "PUBLIC_SIZE",
    "RECORD",
    "TAG_SIZE",
    "BulkKeys",
    "BulkOpener",
    "BulkSealer",
    "derive_keys",
    "next_key",
    "record_count",
]

LABEL: Final = b"metisnet bulk v1"
#: plaintext bytes per bulk record (the last record of a frame may be shorter)
RECORD: Final = 1 << 20
#: payloads of at least this many bytes go in bulk records when the link agreed keys
BULK_MIN: Final = 64 << 10
#: GCM tag bytes after each record's ciphertext
TAG_SIZE: Final = 16
#: X25519 public value size
PUBLIC_SIZE: Final = 32
#: plaintext bytes sealed under one key before both sides move to the next key
MAX_BYTES = 1 << 36
_IDX = struct.Struct(">II")


@dataclass(frozen=True)
class BulkKeys:
    """The two directional keys of one link (secret: never logged or pickled)."""

    send: bytes
    recv: bytes

    def __repr__(self) -> str:  # keep keys out of logs and tracebacks
        return "BulkKeys(<secret>)"


def derive_keys(own: X25519PrivateKey, peer_public: bytes, *, dialer: bool,
                dialer_cert_hash: bytes, acceptor_cert_hash: bytes) -> BulkKeys:
    """The link's two keys from this side's ephemeral secret and the peer's public value."""
    if len(peer_public) != PUBLIC_SIZE:
        raise NetworkError("bulk key exchange: the peer's public value has a wrong size")
    own_public = own.public_key().public_bytes_raw()
    try:
        ikm = own.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:  # cryptography refuses an all-zero shared secret
        raise NetworkError("bulk key exchange: the peer sent a low-order point") from None
    if ikm == bytes(32):  # pragma: no cover - cryptography already refuses it
        raise NetworkError("bulk key exchange: the peer sent a low-order point")
    d_pub, a_pub = (own_public, peer_public) if dialer else (peer_public, own_public)
    transcript = LABEL + dialer_cert_hash + acceptor_cert_hash + d_pub + a_pub
    okm = HKDF(algorithm=hashes.SHA256(), length=64,
               salt=hashlib.sha256(transcript).digest(), info=LABEL + b" keys").derive(ikm)
    d2a, a2d = okm[:32], okm[32:]
    return BulkKeys(send=d2a, recv=a2d) if dialer else BulkKeys(send=a2d, recv=d2a)


def record_count(nbytes: int) -> int:
    """How many bulk records carry a payload of ``nbytes`` (at least one)."""
    return max(1, math.ceil(nbytes / RECORD))


def _nonce(counter: int) -> bytes:
    return counter.to_bytes(12, "big")


def _aad(head_digest: bytes, index: int, count: int) -> bytes:
    return LABEL + head_digest + _IDX.pack(index, count)


def next_key(key: bytes) -> bytes:
    """The key that follows ``key`` after :data:`MAX_BYTES` (a one-way step)."""
    return HKDFExpand(algorithm=hashes.SHA256(), length=32, info=LABEL + b" next").derive(key)


class _Direction:
    """One direction's key, record counter and the bytes sealed under the current key."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._aead = AESGCM(key)
        self._counter = 0
        self._bytes = 0
        #: how many times the key was replaced
        self.epoch = 0

    def _account(self, n: int) -> None:
        if self._bytes + n > MAX_BYTES:
            self._key = next_key(self._key)
            self._aead = AESGCM(self._key)
            self._bytes = 0
            self.epoch += 1
        self._bytes += n


class BulkSealer(_Direction):
    """The sending half: seals records in order into one reused buffer."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self._buf = bytearray(0)

    def seal(self, plain: memoryview, head_digest: bytes, index: int,
             count: int) -> memoryview:
        """Record ``index`` of ``count`` of the frame whose header hashes to ``head_digest``.

        The returned view points into a buffer that the next call overwrites.
        """
        n = len(plain)
        self._account(n)
        if len(self._buf) < n + TAG_SIZE:
            self._buf = bytearray(max(n, min(RECORD, 1 << 16)) + TAG_SIZE)
        out = memoryview(self._buf)[:n + TAG_SIZE]
        self._aead.encrypt_into(_nonce(self._counter), plain, _aad(head_digest, index, count),
                                out)
        self._counter += 1
        return out


class BulkOpener(_Direction):
    """The receiving half: opens records in the order they were sealed."""

    def open_into(self, sealed: memoryview, head_digest: bytes, index: int, count: int,
                  dest: memoryview) -> None:
        """Authenticate and decrypt one record into ``dest`` (its plaintext length).

        On failure ``dest`` may hold unauthenticated bytes; the caller discards it.
        """
        if len(sealed) != len(dest) + TAG_SIZE:
            raise WireError("bulk record has the wrong length")
        self._account(len(dest))
        try:
            self._aead.decrypt_into(_nonce(self._counter), sealed,
                                    _aad(head_digest, index, count), dest)
        except InvalidTag:
            raise WireError("bulk record failed authentication (tampered, reordered, "
                            "replayed or truncated)") from None
        self._counter += 1
