"""Datasets at rest: a file encrypted with AES-256-GCM in fixed-size chunks.

Format (all integers big-endian)::

    header  = b"MTSD" || version(1) || chunk_bytes(u32) || binding(32)
    chunk_i = AES-256-GCM(data_key, nonce_i, plaintext_i, aad=header)   # ciphertext || tag

``nonce_i = u88(i) || final_flag`` follows the STREAM construction (Hoang, Reyhanitabar,
Rogaway and Vizar, CRYPTO 2015): chunks cannot be reordered, dropped, or the file cut
short without a tag failing. Every data key is fresh, random and used for one file only,
so counter nonces never repeat under a key. Each chunk but the last holds exactly
``chunk_bytes`` of plaintext, which gives O(1) random access: Parquet readers seek to the
footer and to single column chunks, and only those chunks are decrypted.

The header (with the dataset id as ``binding``) is authenticated in every chunk, so a chunk
or a whole file moved to another dataset fails to decrypt. Data keys are wrapped by the
node's master key with AES-256-GCM (:func:`wrap_key`).

Cost: one AES-GCM pass (GB/s with AES-NI) plus, while writing, one SHA-256 per chunk for the
Merkle leaves of :mod:`metisnet.node.commitment`.
"""

from __future__ import annotations

import io
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from metisnet.errors import DecryptionError, IntegrityError, StorageError
from metisnet.node.commitment import leaf_hash, merkle_root

__all__ = ["SealResult", "SealedReader", "SealingWriter", "unwrap_key", "wrap_key"]

MAGIC = b"MTSD"
VERSION = 1
HEADER_LEN = 4 + 1 + 4 + 32
TAG_LEN = 16
_WRAP_AAD = b"metisnet/data-key/v1:"


def stream_nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def wrap_key(master: bytes, data_key: bytes, binding: bytes) -> bytes:
    """Encrypt ``data_key`` under the master key; ``binding`` (the dataset id) is the AAD."""
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(master).encrypt(nonce, data_key, _WRAP_AAD + binding)


def unwrap_key(master: bytes, wrapped: bytes, binding: bytes) -> bytes:
    try:
        return AESGCM(master).decrypt(wrapped[:12], wrapped[12:], _WRAP_AAD + binding)
    except (InvalidTag, ValueError):
        raise DecryptionError(
            "a dataset key does not unwrap under this node's master key"
        ) from None


@dataclass(frozen=True)
class SealResult:
    plaintext_bytes: int
    sealed_bytes: int
    chunks: int
    merkle_root: bytes


class SealingWriter(io.RawIOBase):
    """A write-only file object that encrypts what it is given, chunk by chunk.

    Call :meth:`finish` once after the last write; it writes the final chunk, fsyncs the
    underlying file and returns the sizes and the Merkle root over the plaintext chunks.
    ``close()`` (which pyarrow may call) does not finish the file.
    """

    def __init__(
        self, sink: BinaryIO, key: bytes, binding: bytes, chunk_bytes: int, salt: bytes
    ) -> None:
        super().__init__()
        if len(key) != 32 or len(binding) != 32:
            raise ValueError("key and binding must be 32 bytes")
        self._sink = sink
        self._aead = AESGCM(key)
        self._header = MAGIC + bytes([VERSION]) + struct.pack(">I", chunk_bytes) + binding
        self._chunk = chunk_bytes
        self._salt = salt
        self._buf = bytearray()
        self._index = 0
        self._written = 0
        self._sealed = HEADER_LEN
        self._leaves: list[bytes] = []
        self._finished = False
        sink.write(self._header)

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self._finished:
            raise ValueError("write after finish")
        n = len(data)
        self._buf += data
        self._written += n
        while len(self._buf) > self._chunk:
            self._emit(bytes(self._buf[: self._chunk]), final=False)
            del self._buf[: self._chunk]
        return n

    def _emit(self, plain: bytes, *, final: bool) -> None:
        self._leaves.append(leaf_hash(self._salt, self._index, plain))
        ct = self._aead.encrypt(stream_nonce(self._index, final), plain, self._header)
        self._sink.write(ct)
        self._sealed += len(ct)
        self._index += 1

    def flush(self) -> None:
        pass

    def finish(self) -> SealResult:
        if self._finished:
            raise ValueError("already finished")
        self._emit(bytes(self._buf), final=True)
        self._buf.clear()
        self._finished = True
        self._sink.flush()
        os.fsync(self._sink.fileno())
        root = merkle_root(self._leaves, self._salt)
        return SealResult(self._written, self._sealed, self._index, root)


class SealedReader(io.RawIOBase):
    """A read-only, seekable view of a sealed file's plaintext (decrypts on demand)."""

    def __init__(self, path: Path, key: bytes, binding: bytes) -> None:
        super().__init__()
        self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        try:
            header = self._f.read(HEADER_LEN)
            if len(header) != HEADER_LEN or header[:4] != MAGIC or header[4] != VERSION:
                raise StorageError("a stored dataset file has a bad header")
            self._chunk: int = struct.unpack(">I", header[5:9])[0]
            if header[9:] != binding:
                raise IntegrityError("a stored dataset file belongs to another dataset")
            self._header = header
            self._aead = AESGCM(key)
            body = os.fstat(self._f.fileno()).st_size - HEADER_LEN
            full = self._chunk + TAG_LEN
            if body < TAG_LEN:
                raise IntegrityError("a stored dataset file is truncated")
            rem = body % full
            if rem == 0:
                self._n, self._last_len = body // full, self._chunk
            elif rem >= TAG_LEN:
                self._n, self._last_len = body // full + 1, rem - TAG_LEN
            else:
                raise IntegrityError("a stored dataset file is truncated")
            self._size: int = (self._n - 1) * self._chunk + self._last_len
        except BaseException:
            self._f.close()
            raise
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def chunk_count(self) -> int:
        return int(self._n)

    def chunk(self, index: int) -> bytes:
        """The plaintext of chunk ``index`` (authenticated)."""
        if not 0 <= index < self._n:
            raise IndexError("chunk index out of range")
        return self._chunk_plain(index)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base: int = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return int(self._pos)

    def _chunk_plain(self, i: int) -> bytes:
        if self._cached is not None and self._cached[0] == i:
            return self._cached[1]
        final = i == self._n - 1
        length = (self._last_len if final else self._chunk) + TAG_LEN
        self._f.seek(HEADER_LEN + i * (self._chunk + TAG_LEN))
        ct = self._f.read(length)
        try:
            plain = self._aead.decrypt(stream_nonce(i, final), ct, self._header)
        except InvalidTag:
            raise DecryptionError(
                "a stored dataset chunk failed authentication (wrong key or tampered file)"
            ) from None
        self._cached = (i, plain)
        return plain

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        out = memoryview(b).cast("B")
        done = 0
        while done < len(out) and self._pos < self._size:
            i, off = divmod(self._pos, self._chunk)
            plain = self._chunk_plain(i)
            take = min(len(plain) - off, len(out) - done)
            out[done : done + take] = plain[off : off + take]
            done += take
            self._pos += take
        return done

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        buf = bytearray(max(0, min(size, self._size - self._pos)))
        n = self.readinto(buf)
        return bytes(buf[:n])

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()
