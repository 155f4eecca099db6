"""One authenticated TLS link to a peer: frame decoding on receipt, whole frames on send.

A :class:`Connection` owns no thread. Whoever holds its ``token`` may call :meth:`pump`,
which reads what the socket has now (non-blocking), decrypts it and hands every whole
frame to ``deliver``; :meth:`send` writes one frame, calling ``wait_io`` while the socket
is full (the endpoint reads all connections meanwhile, see :mod:`metisnet.net.endpoint`).

Two layers share the TCP stream: TLS 1.3 records, and after a ``KIND_BULK`` frame header
(which itself comes in TLS) the payload of that frame in bulk records
(:mod:`metisnet.net.bulk`). Sending: frames with a payload of at least ``BULK_MIN`` bytes
go as a TLS header then bulk records sealed straight from the array (one system call
per record); smaller frames go whole through TLS.

Receiving: bytes from the socket are split into TLS records, which are fed to TLS one at
a time, so that TLS never swallows the bulk bytes that follow a bulk header. Frames are
validated prefix first, header second, before a payload byte is accepted. Small frames
are parsed from a staging buffer of decrypted bytes; bulk records are received into one
record buffer and opened straight into the ``numpy`` array that the session will hand
out (as is the rest of a large TLS-carried payload). A frame whose session is full is
*parked*: nothing more is read from the link until it fits (TCP flow control then slows
the sender). The latency path of small round trips, :meth:`Connection.recv_small`, is the
common case of all this in one routine: one blocking read that brings exactly one TLS
record holding exactly one small data frame, decrypted, checked and handed to the waiting
thread; whatever else the read brings goes through the general decoding.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import NetworkError, PeerTimeout, WireError
from metisnet.net.bulk import (
    BULK_MIN,
    RECORD,
    TAG_SIZE,
    BulkOpener,
    BulkSealer,
    record_count,
)
from metisnet.net.identity import cert_hash
from metisnet.net.tls import MAX_RECORD, TlsLink
from metisnet.net.wire import (
    KIND_BULK,
    KIND_DATA,
    PREFIX_SIZE,
    HeadDecoder,
    Header,
    WireLimits,
    decode_prefix,
)

__all__ = ["Connection", "Eof"]

_PREFIX: Final = struct.Struct(">2sHQ")  # the frame prefix (wire.decode_prefix validates it)
_SMALL: Final = 64 << 10  # frames below this go out in one write
_RAW_BUF: Final = 256 << 10  # socket reads of up to this many bytes (TLS records)
_STAGE: Final = 64 << 10  # decrypted bytes of small frames are parsed from a buffer this big
_CHUNK: Final = 1 << 20  # large payloads are encrypted and written in chunks of this size
_LOWAT_MAX: Final = 256 << 10  # largest receive low-water mark while a payload streams in
#: longest single blocking read (SO_RCVTIMEO) of :meth:`Connection.pump` with ``block``
BLOCK_SLICE: Final = 0.25
#: every socket call is non-blocking by flag except the one blocking read of ``pump``
_NOWAIT: Final = getattr(socket, "MSG_DONTWAIT", 0)

Deliver = Callable[["Connection", bytes, str, int, NDArray[Any]], bool]
Fail = Callable[["Connection", BaseException], None]
WaitIo = Callable[[float, "Connection"], None]


class _RecvPool:
    """Receive buffers for large payloads, reused once nothing refers to them any more.

    A fresh multi-MiB array costs a page fault per page when it is first written, which
    on the 2-core test machines is about as much as the copy itself. The arrays handed to
    sessions are views of pooled ``bytearray`` objects; a buffer is reused only when its
    reference count is back to what it was when nothing else held it (every numpy view and
    memoryview of the array keeps a reference to it). At most :attr:`SLOTS` buffers of
    :attr:`MIN`..:attr:`MAX` bytes are kept per link, released with the link.
    """

    SLOTS: Final = 2
    MIN: Final = 1 << 20
    MAX: Final = 64 << 20  # so a link keeps at most 128 MiB for reuse

    def __init__(self) -> None:
        self._bufs: list[bytearray] = []
        self._idle: list[int] = []  # reference count of each buffer when nothing uses it

    def _refs(self, i: int) -> int:
        return sys.getrefcount(self._bufs[i])

    def array(self, header: Header) -> NDArray[Any]:
        n = header.nbytes
        if not self.MIN <= n <= self.MAX:
            return np.empty(header.shape, dtype=header.dtype)
        slot = -1
        for i in range(len(self._bufs)):  # (no local name may hold a buffer here)
            if self._refs(i) == self._idle[i]:
                if len(self._bufs[i]) == n:
                    slot = i
                    break
                slot = i  # free but of another size: replace it if nothing fits
        if slot < 0 or len(self._bufs[slot]) != n:
            if slot < 0 and len(self._bufs) >= self.SLOTS:
                return np.empty(header.shape, dtype=header.dtype)
            if slot < 0:
                self._bufs.append(bytearray(0))
                self._idle.append(0)
                slot = len(self._bufs) - 1
            self._bufs[slot] = bytearray(n)
            self._idle[slot] = self._refs(slot)
        return np.frombuffer(self._bufs[slot], dtype=header.dtype).reshape(header.shape)

    def clear(self) -> None:
        self._bufs.clear()
        self._idle.clear()


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
        self._blocking = _NOWAIT != 0 and _set_rcvtimeo(self.sock, BLOCK_SLICE)
        self.sock.settimeout(None if self._blocking else 0.0)
        self.fd = self.sock.fileno()
        self._tls = link.tls
        self._inc = link.incoming
        self._out = link.outgoing
        self.token = threading.Lock()
        self.send_lock = threading.Lock()
        self.tls_lock = threading.Lock()
        self.alive = True
        self._limits = limits
        self._heads = HeadDecoder(limits)
        self._send_timeout = send_timeout
        self._rx = bytearray(max(_RAW_BUF, len(link.leftover)))  # raw bytes not fed yet:
        self._rxview = memoryview(self._rx)  # self._rx[self._r0:self._r1]
        self._rxview[:len(link.leftover)] = link.leftover
        self._r0, self._r1 = 0, len(link.leftover)
        self._sealer = BulkSealer(link.bulk.send)
        self._opener = BulkOpener(link.bulk.recv)
        #: TLS may hold input or plaintext not read yet (records were fed since it ran dry)
        self._fed = True
        #: a bulk frame is being received: its payload arrives as bulk records
        self._bulk = False
        self._bdigest = b""  # SHA-256 of its prefix and header
        self._bindex = self._bcount = 0  # record being received, records in the frame
        self._brec = bytearray(0)  # one sealed record, filled from the socket
        self._brecview = memoryview(self._brec)
        self._bfill = self._bneed = 0
        self._pool = _RecvPool()
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
        #: set by the thread that holds ``token`` and waits for one frame: (session id,
        #: tag, claim); a decoded frame of that session and tag for which ``claim(seq)``
        #: says yes is kept in :attr:`caught` for that thread instead of being delivered
        #: (no inbox round trip on the latency path)
        self.want: tuple[bytes, str, Callable[[int], bool]] | None = None
        self.caught: NDArray[Any] | None = None

    # ---- receiving (token held)

    def unpark(self) -> bool:
        """Try to hand over the parked frame; True if nothing is parked any more."""
        if self.parked is not None and self._deliver(self, *self.parked):
            self.parked = None
        return self.parked is None

    @property
    def can_block(self) -> bool:
        """Whether :meth:`pump` may wait in a blocking read (of at most ``BLOCK_SLICE``).

        Not in the middle of a large payload: a blocking read that waits for a receive
        low-water mark of a whole bulk record stalls on Linux loopback now and then (the
        receive window update is delayed); ``poll`` plus non-blocking reads does not.
        """
        return (self._blocking and self._lowat == 1 and not self.dirty
                and self.parked is None and not self._bulk and self._target is None
                and self.alive)

    def pump(self, block: bool = False) -> None:
        """Read and decode everything available now; deliver whole frames.

        Non-blocking, except that with ``block`` (only when :attr:`can_block`) the first
        read waits up to ``BLOCK_SLICE`` for bytes: one system call instead of a poll and
        a read, for a thread that waits on this connection alone (the latency path).
        Stops reading while a frame is parked (its session is full): TCP flow control then
        holds the sender back, which is the backpressure.
        """
        if self.parked is not None and not self.unpark():
            return
        if self.dirty:
            if not self._process():
                return
            self.dirty = False
        flags = 0 if block and self._blocking else _NOWAIT
        while True:
            view = self._recv_view()
            try:
                n = self.sock.recv_into(view, 0, flags)
            except (BlockingIOError, InterruptedError):
                break
            flags = _NOWAIT
            if n == 0:
                raise Eof
            if self._bulk:
                self._bfill += n
            else:
                self._r1 += n
            if not self._process():
                self.dirty = True  # bytes wait behind the parked frame
                return
            if n < len(view):  # the socket is drained; poll reports more later
                break
        if self._bulk or self._target is not None or self._lowat != 1:
            self._set_lowat()

    def recv_small(self, session: bytes, tag: str,
                   claim: Callable[[int], bool]) -> NDArray[Any] | None:
        """One blocking read (at most ``BLOCK_SLICE``) by a thread waiting for a frame of
        ``session`` under ``tag`` (token held): that frame if it came and ``claim(seq)``
        took it, else None (every other frame is delivered as usual).

        The latency path of small round trips, in one routine: when nothing is buffered
        and the read brings exactly one whole TLS record holding exactly one whole small
        ``KIND_DATA`` frame, the record is decrypted, the prefix checked against the caps,
        the header decoded and validated (:class:`~metisnet.net.wire.HeadDecoder`) and the
        payload length matched here, without the general state machine. Anything else
        (partial or several records, other kinds, a bulk header, bytes left over) goes
        through :meth:`pump`'s general decoding, which applies the same checks.
        """
        if not self.can_block:
            return None
        if self._r0 != self._r1 or self._fed or self._s1 != self._s0:
            return self._pump_for(session, tag, claim, True)
        rx = self._rxview
        try:
            n = self.sock.recv_into(rx, 0, 0)  # blocking, bounded by SO_RCVTIMEO
        except (BlockingIOError, InterruptedError):
            self._r0 = self._r1 = 0
            return None
        self._r0, self._r1 = 0, n
        if n == 0:
            raise Eof
        if n < 5 or n != 5 + (rx[3] << 8 | rx[4]) or n > MAX_RECORD:
            self.dirty = True  # not one whole record: the general decoder takes over
            return self._pump_for(session, tag, claim, False)
        dest = self._sview
        with self.tls_lock:
            self._inc.write(rx[:n])
            self._r0 = n
            try:
                k: int = self._tls.read(len(dest), dest)  # type: ignore[assignment]
            except ssl.SSLWantReadError:  # a record without application data
                return None
            except ssl.SSLZeroReturnError:
                raise Eof from None
            self._fed = k == len(dest) or self._inc.pending > 0
        if k == 0:
            raise Eof
        self._s0, self._s1 = 0, k
        magic, hlen, plen = _PREFIX.unpack_from(dest, 0)
        body = PREFIX_SIZE + hlen
        lim = self._limits
        if (magic != b"MN" or not 0 < hlen <= lim.max_header or plen > lim.max_payload
                or body + plen != k or self._fed):
            self.dirty = True  # not exactly one small frame: the general decoder decides
            return self._pump_for(session, tag, claim, False)
        header = self._heads.decode_in(self._sbuf, PREFIX_SIZE, body, plen)
        if header.kind != KIND_DATA:
            self.dirty = True
            return self._pump_for(session, tag, claim, False)
        self._s1 = 0
        arr = np.frombuffer(self._sbuf[body:k], header.dtype)
        if len(header.shape) != 1:
            arr = arr.reshape(header.shape)
        if header.session == session and header.tag == tag and claim(header.seq):
            return arr
        if not self._deliver(self, header.session, header.tag, header.seq, arr):
            self.parked = (header.session, header.tag, header.seq, arr)
        return None

    def _pump_for(self, session: bytes, tag: str, claim: Callable[[int], bool],
                  block: bool) -> NDArray[Any] | None:
        """:meth:`pump` (blocking or not) keeping a frame of ``session`` and ``tag`` that
        ``claim`` takes for the caller: that frame, else None."""
        self.want = (session, tag, claim)
        try:
            self.pump(block)
            return self.caught
        finally:
            self.want = None
            self.caught = None

    def _recv_view(self) -> memoryview:
        """Where the next socket read goes: the bulk record buffer, or the raw buffer."""
        if self._bulk:  # the raw buffer is empty here (_process drained it into the record)
            return self._brecview[self._bfill:self._bneed]
        if self._r0 == self._r1:
            self._r0 = self._r1 = 0
        elif len(self._rx) - self._r1 < MAX_RECORD:
            left = self._r1 - self._r0
            self._rxview[:left] = self._rxview[self._r0:self._r1]
            self._r0, self._r1 = 0, left
        return self._rxview[self._r1:]

    def _process(self) -> bool:
        """Decode what was received; False if a frame got parked."""
        while True:
            if not (self._bulk or self._fed or self._target is not None
                    or self._s1 > self._s0):
                # the common case, small frames: TLS and staging are empty, so the next
                # whole record is fed and decrypted under one lock, then parsed
                r0 = self._r0
                avail = self._r1 - r0
                if avail < 5:
                    return True
                rx = self._rxview
                size = 5 + int.from_bytes(rx[r0 + 3:r0 + 5], "big")
                if size > MAX_RECORD:
                    raise WireError(f"TLS record of {size} bytes: the stream is out of sync")
                if avail < size:
                    return True
                dest = self._sview[self._s1:]
                with self.tls_lock:
                    self._inc.write(rx[r0:r0 + size])
                    self._r0 = r0 + size
                    try:
                        k: int = self._tls.read(len(dest), dest)  # type: ignore[assignment]
                    except ssl.SSLWantReadError:  # a record without application data
                        continue
                    except ssl.SSLZeroReturnError:
                        raise Eof from None
                    # the record's plaintext fits the staging buffer, so TLS holds more
                    # only if the record was not whole (then more input is needed anyway)
                    self._fed = k == len(dest) or self._inc.pending > 0
                if k == 0:
                    raise Eof
                self._s1 += k
                if not self._parse_staged():
                    return False
                continue
            if self._bulk:
                step = self._bulk_step()
                if step is None:
                    return True  # the record needs more bytes from the socket
                if not step:
                    return False
                continue
            if self._fed or self._s1 > self._s0 or self._target is not None:
                if not self._decrypt_available():
                    return False
                if self._bulk:
                    continue
            if not self._feed_record():
                return True

    def _feed_record(self) -> bool:
        """Feed the next whole TLS record from the raw buffer to TLS; False if none."""
        r0, avail = self._r0, self._r1 - self._r0
        if avail < 5:
            return False
        size = 5 + int.from_bytes(self._rxview[r0 + 3:r0 + 5], "big")
        if size > MAX_RECORD:
            raise WireError(f"TLS record of {size} bytes: the stream is out of sync")
        if avail < size:
            return False
        with self.tls_lock:
            self._inc.write(self._rxview[r0:r0 + size])
        self._r0 = r0 + size
        self._fed = True
        return True

    def _start_bulk(self, header: Header, head: memoryview) -> None:
        """A bulk header was decoded: its payload follows on the stream in bulk records."""
        with self.tls_lock:
            trailing = self._inc.pending + self._tls.pending()
        if trailing:
            raise WireError("bytes after a bulk frame header in its TLS record")
        plen = header.nbytes
        if plen < BULK_MIN:
            raise WireError(f"bulk frame of {plen} bytes, below the bulk minimum {BULK_MIN}")
        self._header = header
        self._arr = self._pool.array(header)
        self._target = self._arr.reshape(-1).view(np.uint8).data
        self._got = 0
        self._bulk = True
        self._bdigest = hashlib.sha256(head).digest()
        self._bindex, self._bcount = 0, record_count(plen)
        self._next_record()

    def _next_record(self) -> None:
        if self._target is None:  # pragma: no cover - set by _start_bulk
            raise RuntimeError("no bulk frame")
        need = min(RECORD, len(self._target) - self._got) + TAG_SIZE
        if len(self._brec) < need:
            self._brec = bytearray(RECORD + TAG_SIZE)
            self._brecview = memoryview(self._brec)
        self._bfill, self._bneed = 0, need

    def _bulk_step(self) -> bool | None:
        """Advance the bulk frame: None if bytes are missing, False if it got parked."""
        avail = self._r1 - self._r0
        if avail and self._bfill < self._bneed:  # raw bytes read before the header decoded
            k = min(avail, self._bneed - self._bfill)
            self._brecview[self._bfill:self._bfill + k] = self._rxview[self._r0:self._r0 + k]
            self._bfill += k
            self._r0 += k
        if self._bfill < self._bneed:
            return None
        target = self._target
        if target is None:  # pragma: no cover - set by _start_bulk
            raise RuntimeError("no bulk frame")
        n = self._bneed - TAG_SIZE
        self._opener.open_into(self._brecview[:self._bneed], self._bdigest, self._bindex,
                               self._bcount, target[self._got:self._got + n])
        self._got += n
        self._bindex += 1
        if self._got < len(target):
            self._next_record()
            return True
        header, arr = self._header, self._arr
        self._bulk = False
        self._target = self._header = self._arr = None
        self._bfill = self._bneed = 0
        if header is None or arr is None:  # pragma: no cover - set by _start_bulk
            raise RuntimeError("no bulk frame")
        return self._hand_over(header, arr)

    def _set_lowat(self) -> None:
        """In the middle of a large payload, let poll wake us only for a good-sized chunk.

        The mark never exceeds what must still arrive (the rest of the bulk record, or of
        a TLS-carried payload minus what TLS already holds), so a wait for it always ends.
        """
        want = 1
        if self._bulk:  # (Linux caps the mark at half the receive buffer)
            want = max(1, min(RECORD, self._bneed - self._bfill))
        elif self._target is not None:
            with self.tls_lock:
                held = self._inc.pending + self._tls.pending() + self._r1 - self._r0
            want = max(1, min(_LOWAT_MAX, len(self._target) - self._got - held))
        if want != self._lowat:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, want)
            self._lowat = want

    def _tls_read(self, dest: memoryview) -> int:
        """Decrypt into ``dest``; -1 if TLS needs more bytes from the socket."""
        if not self._fed:
            return -1
        with self.tls_lock:
            try:
                k: int = self._tls.read(len(dest), dest)  # type: ignore[assignment]
            except ssl.SSLWantReadError:
                self._fed = False
                return -1
            except ssl.SSLZeroReturnError:
                raise Eof from None
            if k < len(dest) and not self._inc.pending:  # that was all TLS held
                self._fed = False
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
                if self._bulk:
                    return True
                if self._target is not None:
                    continue
            k = self._tls_read(self._sview[self._s1:])
            if k < 0:
                return True
            self._s1 += k

    def _read_payload(self) -> bool:
        """Decrypt records straight into the payload being received; False if none came."""
        target, got, end = self._target, self._got, 0
        if target is None or not self._fed:
            return False
        end = len(target)
        tls = self._tls
        with self.tls_lock:  # one lock for a run of records: this is the bulk path
            while got < end:
                try:
                    k: int = tls.read(end - got, target[got:])  # type: ignore[assignment]
                except ssl.SSLWantReadError:
                    self._fed = False
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
        buf, s0, s1, lim = self._sview, self._s0, self._s1, self._limits
        while s1 - s0 >= PREFIX_SIZE:
            magic, hlen, plen = _PREFIX.unpack_from(buf, s0)
            if magic != b"MN" or not 0 < hlen <= lim.max_header or plen > lim.max_payload:
                decode_prefix(buf[s0:s0 + PREFIX_SIZE], lim)  # raises the WireError
            body = s0 + PREFIX_SIZE + hlen
            if body > s1:
                break
            header = self._heads.decode(buf[s0 + PREFIX_SIZE:body], plen)
            if header.kind == KIND_BULK:
                if body != s1:
                    raise WireError("bytes after a bulk frame header in its TLS record")
                self._s0 = self._s1 = 0
                self._start_bulk(header, buf[s0:body])
                return True
            have = min(plen, s1 - body)
            if have == plen:  # the whole payload is staged: copy it into a new array
                arr = np.frombuffer(bytearray(buf[body:body + plen]),
                                    header.dtype).reshape(header.shape)
            else:  # the rest comes straight from TLS into the array
                arr = np.empty(header.shape, dtype=header.dtype)
                target = arr.reshape(-1).view(np.uint8).data
                target[:have] = buf[body:body + have]
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
        if header.kind not in (KIND_DATA, KIND_BULK):
            return True
        want = self.want
        if (want is not None and header.session == want[0] and header.tag == want[1]
                and want[2](header.seq)):
            self.want = None
            self.caught = arr
            return True
        frame = (header.session, header.tag, header.seq, arr)
        if not self._deliver(self, *frame):
            self.parked = frame
            return False
        return True

    # ---- sending

    def send_small(self, frame: bytes) -> None:
        """Write one whole frame below ``BULK_MIN`` bytes (prefix, header and payload)."""
        with self.send_lock:
            if not self.alive:
                raise NetworkError(f"connection to {self.peer} is closed")
            try:
                with self.tls_lock:
                    self._tls.write(frame)
                    data = self._out.read()
                try:  # the common case: the kernel takes it all at once
                    off = self.sock.send(data, _NOWAIT)
                except (BlockingIOError, InterruptedError):
                    off = 0
                if off != len(data):
                    self._write_all(data, off)
            except NetworkError:
                raise
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise self._send_failed(exc) from None

    def send(self, head: bytes, arr: NDArray[Any] | None, *, bulk: bool = False) -> None:
        """Write one frame: ``head`` (prefix and header) and the array's bytes.

        ``bulk`` (the header's kind is ``KIND_BULK``, for payloads of at least
        ``BULK_MIN`` bytes): the header goes through TLS and the payload follows in bulk
        records.
        """
        nbytes = 0 if arr is None else arr.nbytes
        if bulk and (arr is None or nbytes < BULK_MIN):
            raise ValueError(f"bulk frames carry at least {BULK_MIN} bytes")
        view = None
        if arr is None or nbytes == 0:
            pieces: list[bytes | memoryview] = [head]
        elif nbytes < _SMALL and not bulk:
            pieces = [head + arr.tobytes()]
        else:
            view = arr.reshape(-1).view(np.uint8).data
            pieces = [head] if bulk else [
                head, *(view[o:o + _CHUNK] for o in range(0, len(view), _CHUNK))]
        with self.send_lock:
            if not self.alive:
                raise NetworkError(f"connection to {self.peer} is closed")
            try:
                for piece in pieces:
                    with self.tls_lock:
                        self._tls.write(piece)
                        data = self._out.read()
                    self._write_all(data)
                if bulk and view is not None:
                    digest = hashlib.sha256(head).digest()
                    count = record_count(nbytes)
                    for i in range(count):
                        self._write_all(self._sealer.seal(
                            view[i * RECORD:(i + 1) * RECORD], digest, i, count))
            except NetworkError:
                raise
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise self._send_failed(exc) from None

    def _send_failed(self, exc: BaseException) -> NetworkError:
        """A failed write: the link is failed (its sessions learn why) and the error made."""
        err = NetworkError(f"send to {self.peer} failed: {exc}")
        self._fail(self, err)
        return err

    def _write_all(self, data: bytes | memoryview, off: int = -1) -> None:
        """Write ``data`` from ``off`` on (-1: try all of it at once first)."""
        if off < 0:
            try:  # the common case: the kernel takes it all at once
                off = self.sock.send(data, _NOWAIT)
            except (BlockingIOError, InterruptedError):
                off = 0
        if off == len(data):
            return
        view = memoryview(data)
        last = time.monotonic()
        while off < len(view):
            try:
                n = self.sock.send(view[off:], _NOWAIT)
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


def _set_rcvtimeo(sock: socket.socket, seconds: float) -> bool:
    """Bound every blocking read of ``sock`` by ``seconds``; False if that is not possible."""
    sec = int(seconds)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("ll", sec, int((seconds - sec) * 1e6)))
    except (OSError, struct.error):
        return False
    return True


def reap(conn: Connection) -> None:
    """Close the descriptor once no thread can be using it any more."""
    with conn.send_lock, conn.token:
        conn._pool.clear()
        with contextlib.suppress(OSError):
            conn.sock.close()
