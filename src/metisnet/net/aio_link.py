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
to a :class:`~metisnet.net.aio_frames.FrameReceiver` (an ``asyncio.BufferedProtocol``),
with whatever the stream had buffered: ``ssl`` then decrypts straight into the receiver's
buffers, and the rest of a large payload straight into the numpy array handed to the
session (writable, never copied after receipt; arrays of 1..64 MiB reuse one of two pooled
buffers once nothing refers to it). Every frame (:mod:`metisnet.net.wire`: 12-byte prefix,
msgpack header, raw array bytes) travels inside TLS: there is no bulk record layer here. A
frame is validated prefix first (caps), header second (every field), before its payload is
read. Writes go through the stream writer, serialized per link.

Interoperability with the threaded :class:`metisnet.net.endpoint.Endpoint` is **not**
provided: the hello magic differs (``MNAIO001`` here, ``MNHELLO2`` there), so each refuses
the other's hello cleanly, and this link never carries the threaded link's bulk records.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import NetworkError, PeerRefused, PeerTimeout
from metisnet.net.aio_frames import FrameReceiver
from metisnet.net.identity import cert_hash
from metisnet.net.tls import RefusedByPeer, TlsContexts, _check_pin, tune_socket
from metisnet.net.trust import TrustStore
from metisnet.types import NodeId

__all__ = [
    "HELLO_MAGIC",
    "STREAM_LIMIT",
    "AioLink",
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
