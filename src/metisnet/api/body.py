"""A blocking reader over a streaming request body, for ingest in a worker thread.

The worker pulls the body chunk by chunk from the event loop
(``asyncio.run_coroutine_threadsafe``), so an upload of any size flows through the parser
and the encryptor with bounded memory and natural back-pressure. The reader counts bytes
against the configured cap (413 past it), hashes what it passes on, and at the end checks
the hash against the one the caller signed; :meth:`StreamedBody.verify` is the last check
before a dataset is made durable.

The worker takes the body in batches of up to :data:`BATCH` bytes; a batch (or the end of
the body) that does not arrive within ``idle_timeout`` aborts the upload, so a client must
send at least ``BATCH`` bytes per ``upload_idle_timeout_s``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import io
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect

from metisnet.errors import IntegrityError, ValidationError

__all__ = ["StreamedBody", "UploadTooLarge", "drain"]


BATCH = 1 << 20


class UploadTooLarge(ValidationError):
    """The upload is larger than the node's ``max_upload_bytes``."""


class StreamedBody(io.RawIOBase):
    def __init__(self, stream: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop, *,
                 expected_sha256: str, cap: int, idle_timeout: float) -> None:
        super().__init__()
        self._stream = stream
        self._loop = loop
        self._expected = expected_sha256
        self._cap = cap
        self._idle = idle_timeout
        self._hash = hashlib.sha256()
        self._buf = b""
        self._off = 0
        self._eof = False
        self.size = 0

    async def _next(self) -> bytes | None:
        """The next ~``BATCH`` bytes (fewer at the end); ``None`` at the end of the body.

        Batching the server's small receive chunks saves thread hand-offs per byte.
        """
        parts: list[bytes] = []
        size = 0
        try:
            while size < BATCH:
                chunk = await self._stream.__anext__()
                if chunk:
                    parts.append(chunk)
                    size += len(chunk)
        except StopAsyncIteration:
            if not parts:
                return None
        return b"".join(parts)

    def _pull(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
        try:
            chunk = fut.result(timeout=self._idle)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise ValidationError("the upload stalled; aborted") from None
        except ClientDisconnect:
            raise ValidationError("the client disconnected during the upload") from None
        if chunk is None:
            self._eof = True
            return
        self.size += len(chunk)
        if self.size > self._cap:
            raise UploadTooLarge(f"the upload exceeds this node's cap of {self._cap} bytes")
        self._hash.update(chunk)
        self._buf, self._off = chunk, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        out = memoryview(b).cast("B")
        while self._off >= len(self._buf):
            if self._eof:
                return 0
            self._pull()
        take = min(len(out), len(self._buf) - self._off)
        out[:take] = memoryview(self._buf)[self._off : self._off + take]
        self._off += take
        return take

    def verify(self) -> None:
        """Drain what is left and check the body hash the caller signed."""
        while not self._eof:
            self._pull()
        if self._hash.hexdigest() != self._expected:
            raise IntegrityError(
                "the body does not match x-metis-content-sha256 (bad signature)"
            )


async def drain(stream: AsyncIterator[bytes], limit: int) -> None:
    """Read and drop up to ``limit`` more bytes of a body; give up quietly on any error."""
    seen = 0
    try:
        async for chunk in stream:
            seen += len(chunk)
            if seen > limit:
                return
    except Exception:  # noqa: S110 - best effort: the connection may already be gone
        pass
