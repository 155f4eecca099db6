"""One pinned TLS 1.3 connection on asyncio streams: set-up, frame reading, frame writing.

The pieces :mod:`metisnet.net.aio_tls` builds its endpoint from. Set-up follows
:mod:`metisnet.net.tls` (same identities, same TLS contexts, same pin check), adapted to
asyncio streams (``asyncio.open_connection`` / ``asyncio.start_server`` and
``StreamWriter.start_tls``):

1. The dialer sends a cleartext hello carrying its certificate. The acceptor checks the
   certificate's node binding and its pin (:func:`metisnet.net.tls._check_pin`) and closes
   the connection on an unpinned or unregistered peer before any TLS byte, let alone a
   payload. A pinned dialer gets one cleartext "go" byte back.
2. Only after "go" does the dialer start TLS. (A stream reads greedily: had the dialer sent
   its ClientHello right behind the hello, the acceptor's plain stream could swallow it
   before ``start_tls`` took over the socket. The threaded acceptor reads the hello with
   exact-size ``recv`` calls instead.) TLS 1.3 only, no tickets; the acceptor trusts exactly
   the announced certificate as a partial-chain anchor, the dialer pins the acceptor's.
3. Both sides re-check the TLS peer certificate against the pin and exchange an accept
   message inside TLS, so a refusal by either side is known to both at once.

After set-up, :meth:`AioLink.start_reading` hands the TLS transport over from the stream
to a :class:`FrameReceiver` (an ``asyncio.BufferedProtocol``), with whatever the stream had
buffered: ``ssl`` then decrypts straight into the receiver's buffers, and the rest of a
large payload straight into the numpy array handed to the session (``np.frombuffer`` over
a ``bytearray``: writable, never copied after receipt; arrays of 1..64 MiB reuse one of two
pooled buffers once nothing refers to it). Every frame (:mod:`metisnet.net.wire`: 12-byte
prefix, msgpack header, raw array bytes) travels inside TLS: there is no bulk record layer
here. A frame is validated prefix first (caps), header second (every field), before its
payload is read. Writes go through the stream writer, serialized per link.

Interoperability with the threaded :class:`metisnet.net.endpoint.Endpoint` is **not**
provided: the hello magic differs (``MNAIO001`` here, ``MNHELLO2`` there), so each refuses
the other's hello cleanly, and this link never carries the threaded link's bulk records.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import sys
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import NetworkError, PeerRefused, PeerTimeout, WireError
from metisnet.net.identity import cert_hash
from metisnet.net.tls import RefusedByPeer, TlsContexts, _check_pin, tune_socket
from metisnet.net.trust import TrustStore
from metisnet.net.wire import (
    KIND_BULK,
    PREFIX_SIZE,
    HeadDecoder,
    Header,
    WireLimits,
    decode_prefix,
)
from metisnet.types import NodeId

__all__ = [
    "HELLO_MAGIC",
    "STREAM_LIMIT",
    "AioLink",
    "FrameReceiver",
    "FrameTruncated",
    "accept_link",
    "dial_link",
]

HELLO_MAGIC: Final = b"MNAIO001"
_HELLO = struct.Struct(">8sH")
_MAX_CERT: Final = 4096
_GO: Final = b"\x01"
_ACCEPT: Final = b"MNAIOOK1"
#: StreamReader limit during set-up (the stream stops reading past twice this much).
STREAM_LIMIT: Final = 1 << 20
#: Largest piece of a large payload written (then drained) at once.
_CHUNK: Final = 1 << 20
#: Payloads up to this size go out with their header in one synchronous write.
_SMALL: Final = 64 << 10
#: Outgoing buffer above which a writer waits for the transport to drain.
_WRITE_HIGH: Final = 4 << 20


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


class AioLink:
    """An authenticated TLS 1.3 stream to one peer; writes are serialized by a lock."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 peer: NodeId, peer_cert_hash: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.cert_hash = peer_cert_hash
        self.alive = True
        self.receiver: FrameReceiver | None = None
        self.parked_task: asyncio.Task[None] | None = None  # owner's: waits for room
        self.parked_inbox: Any = None  # owner's: the session a parked frame waits for
        self._wlock = asyncio.Lock()
        with contextlib.suppress(AttributeError, NotImplementedError):
            writer.transport.set_write_buffer_limits(high=_WRITE_HIGH)

    async def start_reading(self, receiver: FrameReceiver) -> None:
        """Hand the TLS transport from the set-up stream over to ``receiver``.

        Reading is paused across the swap; whatever the stream had buffered past the
        accept message is handed to the receiver first, so no byte is lost or reordered.
        """
        tr = self.writer.transport
        if not isinstance(tr, asyncio.Transport):
            raise NetworkError("link has no bidirectional transport")
        tr.pause_reading()
        tr.set_protocol(receiver)
        receiver.transport = tr
        self.receiver = receiver
        self.reader.feed_eof()
        leftover = await self.reader.read()  # returns at once: the stream is at its end
        if leftover:
            receiver.feed(leftover)
        if tr.is_closing():  # the connection ended before the hand-over
            receiver.connection_lost(None)
        else:
            tr.resume_reading()

    def abort(self) -> None:
        """Drop the connection at once (no TLS close_notify, no waiting)."""
        self.alive = False
        with contextlib.suppress(Exception):
            self.writer.transport.abort()

    async def send(self, head: bytes, arr: NDArray[Any], timeout: float) -> None:
        """Write one frame (``head`` then the bytes of the C-contiguous ``arr``).

        Each wait (for the write lock, for the transport to drain) is bounded by
        ``timeout``: a stalled peer raises :class:`PeerTimeout`. A frame cut short by a
        timeout, a cancellation or an error leaves the stream out of sync, so the link is
        aborted then (the owner's reader notices and fails the sessions on it).
        """
        n = arr.nbytes
        if n <= _SMALL and not self._wlock.locked():
            # the latency path: one synchronous write, nothing can come between its parts
            if not self.alive:
                raise NetworkError(f"connection to {self.peer} is closed")
            self.writer.write(head + arr.tobytes() if n else head)
            await self._drain(timeout)
            return
        try:
            async with asyncio.timeout(timeout):
                await self._wlock.acquire()
        except TimeoutError:
            raise PeerTimeout(f"send to {self.peer} waited {timeout:g} s for the "
                              "connection (another send stalled)") from None
        try:
            if not self.alive:
                raise NetworkError(f"connection to {self.peer} is closed")
            w = self.writer
            complete = False
            try:
                if n <= _SMALL:
                    w.write(head + arr.tobytes() if n else head)
                    complete = True
                    await self._drain(timeout)
                else:
                    # ssl encrypts each write at once into its outgoing buffer, so the
                    # caller's memory is not referenced after write() returns
                    w.write(head)
                    view = arr.reshape(-1).view(np.uint8).data
                    for off in range(0, n, _CHUNK):
                        w.write(view[off:off + _CHUNK])
                        complete = off + _CHUNK >= n
                        await self._drain(timeout)
            except BaseException:
                if not complete:
                    self.abort()
                raise
        finally:
            self._wlock.release()

    async def _drain(self, timeout: float) -> None:
        if self.writer.transport.get_write_buffer_size() < _WRITE_HIGH:
            return  # drain() would return at once: skip the timeout machinery
        waiter = self.receiver.drain() if self.receiver is not None else self.writer.drain()
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            self.abort()
            raise PeerTimeout(f"send to {self.peer} stalled for {timeout:g} s "
                              "(the peer does not read)") from None
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            self.abort()
            raise NetworkError(f"connection to {self.peer} lost while sending: "
                               f"{type(exc).__name__}") from None


def _tune(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            tune_socket(sock)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Send our accept message, read the peer's; False if the peer hung up instead."""
    writer.write(_ACCEPT)
    try:
        msg = await reader.readexactly(len(_ACCEPT))
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return False
        raise NetworkError("peer sent a truncated accept message") from None
    if msg != _ACCEPT:
        raise NetworkError("peer sent a malformed accept message")
    return True


def _peer_der(writer: asyncio.StreamWriter) -> bytes | None:
    obj = writer.get_extra_info("ssl_object")
    if obj is None:
        return None
    der = obj.getpeercert(binary_form=True)
    return bytes(der) if der is not None else None


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()


async def dial_link(ctx: TlsContexts, trust: TrustStore, address: tuple[str, int],
                    expected: NodeId, timeout: float) -> AioLink:
    """Connect to ``expected`` at ``address``; a pinned, accepted link, within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(*address, limit=STREAM_LIMIT)
    except TimeoutError:
        raise PeerTimeout(f"connecting to {expected} at {address} timed out") from None
    except OSError as exc:
        raise NetworkError(f"cannot connect to {expected} at {address}: "
                           f"{type(exc).__name__}") from None
    try:
        async with asyncio.timeout(timeout):
            _tune(writer)
            der = ctx.identity.cert_der
            writer.write(_HELLO.pack(HELLO_MAGIC, len(der)) + der)
            try:
                go = await reader.readexactly(1)
            except asyncio.IncompleteReadError:
                raise PeerRefused(f"{expected} at {address} closed the connection after our "
                                  "hello (is this node in its trust store?)") from None
            if go != _GO:
                raise NetworkError(f"{expected} at {address} did not answer with a metisnet "
                                   "asyncio hello (a threaded endpoint?)")
            await writer.start_tls(ctx.client)
            peer_der = _peer_der(writer)
            if peer_der is None:
                raise PeerRefused(f"{expected} presented no certificate")
            got = _check_pin(trust, peer_der, "dialled peer")
            if got != expected:
                raise PeerRefused(f"dialled {expected} at {address} but {got} answered")
            if not await _exchange(reader, writer):
                raise PeerRefused(f"{expected} refused us after the TLS handshake "
                                  "(is this node in its trust store?)")
            return AioLink(reader, writer, got, cert_hash(peer_der))
    except TimeoutError:
        _abort(writer)
        raise PeerTimeout(f"set-up with {expected} at {address} timed out") from None
    except NetworkError:
        _abort(writer)
        raise
    except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
        _abort(writer)
        raise PeerRefused(f"{expected} at {address} closed the connection during the "
                          "handshake (is this node in its trust store?)") from None
    except (ssl.SSLError, OSError, asyncio.IncompleteReadError) as exc:
        _abort(writer)
        raise NetworkError(f"TLS set-up with {expected} at {address} failed: "
                           f"{type(exc).__name__}") from None
    except BaseException:
        _abort(writer)
        raise


async def accept_link(ctx: TlsContexts, trust: TrustStore, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, timeout: float) -> AioLink:
    """Authenticate an accepted stream within ``timeout``; the link's ``peer`` is pinned.

    Raises :class:`PeerRefused` (an unpinned peer, checked from the hello before any TLS
    or payload byte) and :class:`RefusedByPeer` when a pinned peer hangs up on us after
    the handshake. The stream is aborted on any failure.
    """
    node_id: NodeId | None = None
    try:
        async with asyncio.timeout(timeout):
            _tune(writer)
            try:
                magic, length = _HELLO.unpack(await reader.readexactly(_HELLO.size))
            except asyncio.IncompleteReadError:
                raise PeerRefused("connection closed before a metisnet hello") from None
            if magic != HELLO_MAGIC or not 0 < length <= _MAX_CERT:
                raise PeerRefused("connection did not start with a metisnet asyncio hello")
            try:
                der = await reader.readexactly(length)
            except asyncio.IncompleteReadError:
                raise PeerRefused("connection closed inside its hello") from None
            node_id = _check_pin(trust, der, "incoming peer")
            ctx.trust_client_cert(der)
            writer.write(_GO)  # no await before start_tls takes the socket over
            await writer.start_tls(ctx.server)
            if _peer_der(writer) != der:
                raise PeerRefused(f"incoming peer {node_id} switched certificates "
                                  "in the handshake")
            _check_pin(trust, der, "incoming peer")
            if not await _exchange(reader, writer):
                raise RefusedByPeer(node_id)
            return AioLink(reader, writer, node_id, cert_hash(der))
    except TimeoutError:
        _abort(writer)
        raise PeerTimeout("incoming peer did not complete its hello and handshake "
                          "in time") from None
    except NetworkError:
        _abort(writer)
        raise
    except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError,
            asyncio.IncompleteReadError) as exc:
        _abort(writer)
        if node_id is not None:
            raise RefusedByPeer(node_id) from None
        raise NetworkError(f"incoming connection failed: {type(exc).__name__}") from None
    except (ssl.SSLError, OSError) as exc:
        _abort(writer)
        raise NetworkError(f"TLS handshake with incoming peer failed: "
                           f"{type(exc).__name__}") from None
    except BaseException:
        _abort(writer)
        raise
