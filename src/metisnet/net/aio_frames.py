"""Receiving frames on an asyncio TLS link: a protocol that ``ssl`` decrypts straight into.

:class:`FrameReceiver` takes a link's TLS transport over from the stream used for set-up
(:meth:`metisnet.net.aio_link.AioLink.start_reading`) and turns the bytes into validated
frames (:mod:`metisnet.net.wire`), with backpressure by pausing the transport.
:class:`_RecvPool` lends large payloads reusable memory.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import NetworkError, WireError
from metisnet.net.wire import (
    KIND_BULK,
    PREFIX_SIZE,
    HeadDecoder,
    Header,
    WireLimits,
    decode_prefix,
)

__all__ = ["FrameReceiver", "FrameTruncated"]


class FrameTruncated(WireError):
    """The stream ended inside a frame (the peer hung up or the stream was cut)."""


class _RecvPool:
    """Up to two reusable receive buffers (1..64 MiB) per link, for large payloads.

    Writing a fresh multi-MiB array costs a page fault per page, a good part of a copy.
    A pooled ``bytearray`` is lent out as the array's memory and taken back once its
    reference count is down to what it was when only the pool held it: any array, view
    or memoryview over it holds a reference, so a buffer still in use is never reused.
    """

    SLOTS: Final = 2
    MIN: Final = 1 << 20
    MAX: Final = 64 << 20

    def __init__(self) -> None:
        self._bufs: list[bytearray] = []
        self._free_refs: list[int] = []

    def array(self, header: Header) -> NDArray[Any]:
        """A writable C-contiguous array for ``header``'s payload (pooled if large)."""
        n = header.nbytes
        if self.MIN <= n <= self.MAX:
            spare = -1
            bufs = self._bufs
            for i in range(len(bufs)):  # no local name may hold a buffer while counting
                if sys.getrefcount(bufs[i]) == self._free_refs[i]:
                    if len(bufs[i]) == n:
                        return np.frombuffer(bufs[i], dtype=header.dtype).reshape(
                            header.shape)
                    spare = i
            if spare >= 0 or len(self._bufs) < self.SLOTS:
                if spare < 0:
                    self._bufs.append(bytearray(0))
                    self._free_refs.append(0)
                    spare = len(self._bufs) - 1
                self._bufs[spare] = bytearray(n)
                self._free_refs[spare] = sys.getrefcount(self._bufs[spare])
                return np.frombuffer(self._bufs[spare], dtype=header.dtype).reshape(
                    header.shape)
        return np.empty(header.shape, dtype=header.dtype)


class FrameReceiver(asyncio.BufferedProtocol):
    """The receiving side of a link once it is set up: TLS decrypts straight into it.

    An ``asyncio.BufferedProtocol`` that takes over the TLS transport from the stream used
    for set-up (:meth:`AioLink.start_reading`). Prefixes and headers are read into a
    scratch buffer and validated there (prefix first, against the caps, then every header
    field) before any of the payload is read; a payload is copied out of the scratch buffer
    as far as it arrived with its header, and the rest of one of 64 KiB or more is
    decrypted by ``ssl`` directly into the memory of the array that is delivered
    (writable, C-contiguous, never copied after receipt).

    ``deliver(header, array)`` hands a frame on and returns False when its session is full;
    the frame is then parked and the transport paused (TLS and the kernel buffers fill up,
    then TCP holds the sender back) until :meth:`retry` delivers it. ``fail(exc)`` is
    called once, with a :class:`~metisnet.errors.WireError` for a bad frame (a
    :class:`FrameTruncated` if the stream ended inside one), a
    :class:`~metisnet.errors.NetworkError` at a clean end of stream, or the transport's
    error. The receiver never raises into the event loop.
    """

    SCRATCH: Final = 256 << 10
    #: the rest of a payload at least this large is read straight into its array
    DIRECT: Final = 64 << 10

    def __init__(self, limits: WireLimits,
                 deliver: Callable[[Header, NDArray[Any]], bool],
                 fail: Callable[[BaseException], None],
                 parked: Callable[[], None]) -> None:
        self._limits = limits
        self._decoder = HeadDecoder(limits)
        self._deliver = deliver
        self._fail_cb = fail
        self._parked_cb = parked
        self._scratch = bytearray(self.SCRATCH)
        self._view = memoryview(self._scratch)
        self._r0 = self._r1 = 0  # unparsed bytes: scratch[r0:r1]
        self._need: tuple[int, int] | None = None  # (header len, payload len) of the prefix
        self._header: Header | None = None  # once decoded, while its payload arrives
        self._pool = _RecvPool()
        self._target: NDArray[Any] | None = None  # the array the payload arrives in
        self._pview = memoryview(b"")  # its bytes (writable, unless empty)
        self._pgot = 0
        self._direct = False  # the last get_buffer handed out the payload itself
        self._parked: tuple[Header, NDArray[Any]] | None = None
        self._done = False
        self.transport: asyncio.Transport | None = None
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None

    # ---- reading

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._header is not None and len(self._pview) - self._pgot >= self.DIRECT:
            self._direct = True
            return self._pview[self._pgot:]
        self._direct = False
        if self._r0 == self._r1:
            self._r0 = self._r1 = 0
        elif len(self._scratch) - self._r1 < self.SCRATCH // 4:
            n = self._r1 - self._r0
            self._scratch[:n] = self._scratch[self._r0:self._r1]
            self._r0, self._r1 = 0, n
        return self._view[self._r1:]

    def buffer_updated(self, nbytes: int) -> None:
        try:
            if self._direct:
                self._pgot += nbytes
            else:
                self._r1 += nbytes
            self._parse()
        except Exception as exc:  # a bad frame, or a bug: never into the event loop
            self._fail(exc)

    def feed(self, data: bytes) -> None:
        """Bytes that arrived before this receiver took over the transport."""
        free = len(self._scratch) - self._r1
        if len(data) > free:  # once, at hand-over: grow the scratch buffer to fit
            self._scratch = self._scratch[self._r0:self._r1] + data + bytearray(self.SCRATCH)
            self._view = memoryview(self._scratch)
            self._r1 -= self._r0
            self._r0 = 0
        else:
            self._scratch[self._r1:self._r1 + len(data)] = data
        self._r1 += len(data)
        try:
            self._parse()
        except Exception as exc:
            self._fail(exc)

    def _parse(self) -> None:
        view = self._view
        while self._parked is None and not self._done:
            header = self._header
            if header is None:
                r0 = self._r0
                if self._need is None:
                    if self._r1 - r0 < PREFIX_SIZE:
                        return
                    self._need = decode_prefix(view[r0:r0 + PREFIX_SIZE], self._limits)
                    r0 = self._r0 = r0 + PREFIX_SIZE
                hlen, plen = self._need
                if self._r1 - r0 < hlen:
                    return
                header = self._decoder.decode(view[r0:r0 + hlen], plen)
                if header.kind == KIND_BULK:
                    raise WireError("a bulk frame on an asyncio link "
                                    "(this transport has no bulk records)")
                r0 += hlen
                self._need = None
                if self._r1 - r0 >= plen:  # the whole payload is here: one copy out
                    self._r0 = r0 + plen
                    whole = np.frombuffer(bytearray(view[r0:r0 + plen]), dtype=header.dtype)
                    if not self._hand_on(header, whole.reshape(header.shape)):
                        return
                    continue
                self._r0 = r0
                self._header = header
                self._target = self._pool.array(header)
                self._pview = self._target.reshape(-1).view(np.uint8).data
            plen = len(self._pview)
            k = min(self._r1 - self._r0, plen - self._pgot)
            if k:
                self._pview[self._pgot:self._pgot + k] = view[self._r0:self._r0 + k]
                self._r0 += k
                self._pgot += k
            if self._pgot < plen:
                return
            target, self._target = self._target, None
            self._header = None
            self._pview = memoryview(b"")
            self._pgot = 0
            if target is None or not self._hand_on(header, target):
                return

    def _hand_on(self, header: Header, arr: NDArray[Any]) -> bool:
        """Deliver a complete frame; False if it was parked (reading is paused then)."""
        if self._deliver(header, arr):
            return True
        self._parked = (header, arr)
        if self.transport is not None:
            self.transport.pause_reading()
        self._parked_cb()
        return False

    def retry(self) -> bool:
        """Deliver the parked frame if its session has room now; True once it is gone."""
        if self._parked is None:
            return True
        if self._done:
            return True
        header, arr = self._parked
        try:
            if not self._deliver(header, arr):
                return False
            self._parked = None
            self._parse()
        except Exception as exc:
            self._fail(exc)
            return True
        if self._parked is None and not self._done and self.transport is not None:
            self.transport.resume_reading()
        return True

    @property
    def mid_frame(self) -> bool:
        return (self._need is not None or self._header is not None
                or self._r1 > self._r0)

    def eof_received(self) -> bool:
        if self.mid_frame:
            self._fail(FrameTruncated("stream ended inside a frame"))
        else:
            self._fail(NetworkError("connection closed by the peer"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self.eof_received()
        else:
            self._fail(exc)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)  # drain() then sees the link is done

    def _fail(self, exc: BaseException) -> None:
        if self._done:
            return
        self._done = True
        self._parked = None
        self._fail_cb(exc)

    # ---- writing: flow control of the transport

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    async def drain(self) -> None:
        """Wait until the transport takes more data (no bound here: the caller's)."""
        if self._done:
            raise NetworkError("connection is closed")
        if not self._write_paused:
            return
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drain)
        if self._done:
            raise NetworkError("connection closed while sending")
