"""One authenticated TLS link to a peer: frame decoding on receipt, whole frames on send.

A :class:`Connection` owns no thread. Whoever holds its ``token`` may call :meth:`pump`,
which reads what the socket has now (non-blocking), decrypts it and hands every whole
frame to ``deliver``; :meth:`send` writes one frame, calling ``wait_io`` while the socket
is full (the endpoint reads all connections meanwhile, see :mod:`metisnet.net.endpoint`).

Receiving: frames are validated prefix first, header second, before a payload byte is
accepted. Small frames are decrypted a TLS record at a time into a staging buffer and
parsed from there; the rest of a large payload is decrypted straight into the ``numpy``
array that the session will hand out. A frame whose session is full is *parked*: nothing
more is read from the link until it fits (TCP flow control then slows the sender).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import NetworkError, PeerTimeout
from metisnet.net.identity import cert_hash
from metisnet.net.tls import TlsLink
from metisnet.net.wire import (
    KIND_DATA,
    PREFIX_SIZE,
    Header,
    WireLimits,
    decode_header,
    decode_prefix,
)

__all__ = ["Connection", "Eof"]

_SMALL: Final = 64 << 10  # frames below this go out in one write
_RAW_BUF: Final = 1 << 20  # socket reads of up to this many bytes
_STAGE: Final = 64 << 10  # decrypted bytes of small frames are parsed from a buffer this big
_CHUNK: Final = 1 << 20  # large payloads are encrypted and written in chunks of this size
_LOWAT_MAX: Final = 256 << 10  # largest receive low-water mark while a payload streams in

Deliver = Callable[["Connection", bytes, str, int, NDArray[Any]], bool]
Fail = Callable[["Connection", BaseException], None]
WaitIo = Callable[[float, "Connection"], None]


class Eof(Exception):
    """The peer closed the connection."""


class Connection:
    """One TLS link to a peer; I/O is driven by whichever thread holds ``token``.

    ``token`` guards the receive side (socket reads and the frame state machine),
    ``send_lock`` keeps frames whole on the wire, ``tls_lock`` guards the TLS object and its
    buffers (held only for single TLS calls).
    """

    def __init__(self, link: TlsLink, *, limits: WireLimits, send_timeout: float,
                 deliver: Deliver, fail: Fail, wait_io: WaitIo) -> None:
        self._deliver = deliver
        self._fail = fail
        self._wait_io = wait_io
        self.peer = link.peer
        self.cert_hash = cert_hash(link.tls.getpeercert(binary_form=True) or b"")
        self.sock = link.sock
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self._tls = link.tls
        self._inc = link.incoming
        self._out = link.outgoing
        self.token = threading.Lock()
        self.send_lock = threading.Lock()
        self.tls_lock = threading.Lock()
        self.alive = True
        self._limits = limits
        self._send_timeout = send_timeout
        self._raw = bytearray(_RAW_BUF)
        self._rawview = memoryview(self._raw)
        self._sbuf = bytearray(max(_STAGE, 2 * (PREFIX_SIZE + self._limits.max_header)))
        self._sview = memoryview(self._sbuf)
        self._s0 = self._s1 = 0  # staged plaintext not parsed yet: _sbuf[_s0:_s1]
        self._header: Header | None = None  # a large frame being received directly ...
        self._arr: NDArray[Any] | None = None  # ... into this array
        self._target: memoryview | None = None  # ... through this byte view of it
        self._got = 0
        #: received bytes may wait in TLS or staging that a socket poll would not report
        #: (left over by the handshake, or behind a parked frame)
        self.dirty = True
        self._lowat = 1  # the socket's SO_RCVLOWAT
        #: a decoded frame its session had no room for; nothing more is read until it fits
        self.parked: tuple[bytes, str, int, NDArray[Any]] | None = None

    # ---- receiving (token held)

    def unpark(self) -> bool:
        """Try to hand over the parked frame; True if nothing is parked any more."""
        if self.parked is not None and self._deliver(self, *self.parked):
            self.parked = None
        return self.parked is None

    def pump(self) -> None:
        """Read and decode everything available now; deliver whole frames. Non-blocking.

        Stops reading while a frame is parked (its session is full): TCP flow control then
        holds the sender back, which is the backpressure.
        """
        if not self.unpark():
            return
        if self.dirty:
            if not self._decrypt_available():
                return
            self.dirty = False
        raw = self._rawview
        while True:
            try:
                n = self.sock.recv_into(raw)
            except (BlockingIOError, InterruptedError):
                break
            if n == 0:
                raise Eof
            with self.tls_lock:
                self._inc.write(raw[:n])
            if not self._decrypt_available():
                self.dirty = True  # bytes wait behind the parked frame
                return
            if n < len(raw):  # the socket is drained; poll reports more later
                break
        self._set_lowat()

    def _set_lowat(self) -> None:
        """In the middle of a large payload, let poll wake us only for a good-sized chunk.

        The mark never exceeds what must still arrive (the rest of the payload minus what
        TLS already holds), so a wait for it always ends.
        """
        want = 1
        if self._target is not None:
            with self.tls_lock:
                held = self._inc.pending + self._tls.pending()
            want = max(1, min(_LOWAT_MAX, len(self._target) - self._got - held))
        if want != self._lowat:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, want)
            self._lowat = want

    def _tls_read(self, dest: memoryview) -> int:
        """Decrypt into ``dest``; -1 if TLS needs more bytes from the socket."""
        with self.tls_lock:
            if not self._inc.pending and not self._tls.pending():
                return -1
            try:
                k: int = self._tls.read(len(dest), dest)  # type: ignore[assignment]
            except ssl.SSLWantReadError:
                return -1
            except ssl.SSLZeroReturnError:
                raise Eof from None
        if k == 0:
            raise Eof
        return k

    def _decrypt_available(self) -> bool:
        """Decode what TLS has buffered; False if a frame got parked.

        Small frames are decrypted a record at a time into a staging buffer and parsed
        from there; the rest of a large payload is decrypted straight into its array.
        """
        while True:
            if self._target is not None:
                if not self._read_payload():
                    return True
                if self._got == len(self._target):
                    header, arr = self._header, self._arr
                    self._target = self._header = self._arr = None
                    if header is not None and arr is not None and not self._hand_over(
                            header, arr):
                        return False
                continue
            if self._s1 > self._s0:
                if not self._parse_staged():
                    return False
                if self._target is not None:
                    continue
            k = self._tls_read(self._sview[self._s1:])
            if k < 0:
                return True
            self._s1 += k

    def _read_payload(self) -> bool:
        """Decrypt records straight into the payload being received; False if none came."""
        target, got, end = self._target, self._got, 0
        if target is None:  # pragma: no cover - caller checks
            return False
        end = len(target)
        tls = self._tls
        with self.tls_lock:  # one lock for a run of records: this is the bulk path
            while got < end:
                try:
                    k: int = tls.read(end - got, target[got:])  # type: ignore[assignment]
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    raise Eof from None
                if k == 0:
                    raise Eof
                got += k
        progressed = got > self._got
        self._got = got
        return progressed

    def _parse_staged(self) -> bool:
        """Deliver the whole frames in the staging buffer; False if one got parked."""
        buf, s0, s1 = self._sview, self._s0, self._s1
        while s1 - s0 >= PREFIX_SIZE:
            hlen, plen = decode_prefix(buf[s0:s0 + PREFIX_SIZE], self._limits)
            body = s0 + PREFIX_SIZE + hlen
            if body > s1:
                break
            header = decode_header(buf[s0 + PREFIX_SIZE:body], plen, self._limits)
            arr = np.empty(header.shape, dtype=header.dtype)
            have = min(plen, s1 - body)
            if plen:
                target = arr.reshape(-1).view(np.uint8).data
                target[:have] = buf[body:body + have]
                if have < plen:  # the rest comes straight from TLS into the array
                    self._target, self._got = target, have
                    self._header, self._arr = header, arr
                    self._s0 = self._s1 = 0
                    return True
            s0 = body + have
            self._s0 = s0
            if not self._hand_over(header, arr):
                return False
        if s0 == s1:
            s0 = s1 = 0
        elif len(buf) - s1 < PREFIX_SIZE + self._limits.max_header:
            buf[:s1 - s0] = buf[s0:s1]
            s0, s1 = 0, s1 - s0
        self._s0, self._s1 = s0, s1
        return True

    def _hand_over(self, header: Header, arr: NDArray[Any]) -> bool:
        if header.kind != KIND_DATA:
            return True
        frame = (header.session, header.tag, header.seq, arr)
        if not self._deliver(self, *frame):
            self.parked = frame
            return False
        return True

    # ---- sending

    def send(self, head: bytes, arr: NDArray[Any] | None) -> None:
        if arr is None or arr.nbytes == 0:
            pieces: list[bytes | memoryview] = [head]
        elif arr.nbytes < _SMALL:
            pieces = [head + arr.tobytes()]
        else:
            view = arr.reshape(-1).view(np.uint8).data
            pieces = [head, *(view[o:o + _CHUNK] for o in range(0, len(view), _CHUNK))]
        with self.send_lock:
            if not self.alive:
                raise NetworkError(f"connection to {self.peer} is closed")
            try:
                for piece in pieces:
                    with self.tls_lock:
                        self._tls.write(piece)
                        data = self._out.read()
                    self._write_all(data)
            except NetworkError:
                raise
            except (OSError, ssl.SSLError, ValueError) as exc:
                err = NetworkError(f"send to {self.peer} failed: {exc}")
                self._fail(self, err)
                raise err from None

    def _write_all(self, data: bytes) -> None:
        try:  # the common case: the kernel takes it all at once
            off = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            off = 0
        if off == len(data):
            return
        view = memoryview(data)
        last = time.monotonic()
        while off < len(view):
            try:
                n = self.sock.send(view[off:])
            except (BlockingIOError, InterruptedError):
                n = 0
            if n:
                off += n
                last = time.monotonic()
                continue
            if not self.alive:
                raise NetworkError(f"connection to {self.peer} closed during a send")
            if time.monotonic() - last > self._send_timeout:
                err = PeerTimeout(f"send to {self.peer} stalled: the peer read nothing for "
                                  f"{self._send_timeout:g} s")
                self._fail(self, err)
                raise err
            self._wait_io(last + self._send_timeout, self)


def reap(conn: Connection) -> None:
    """Close the descriptor once no thread can be using it any more."""
    with conn.send_lock, conn.token, contextlib.suppress(OSError):
        conn.sock.close()
