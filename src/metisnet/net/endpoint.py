"""A node's TLS endpoint: pinned connections to peers, sessions multiplexed over them.

Design: no reader threads; the waiting thread drives the I/O
------------------------------------------------------------
The MPC engine calls ``send``/``recv`` synchronously from numpy code, so the transport is
synchronous too (no event loop to hop into; :mod:`metisnet.net.aio` gives coroutines a
face over it). A thread that waits -- in ``recv`` for a message, or in a send for a
socket to drain -- polls *every* connection it can lock and decodes what arrives, handing
frames to the sessions they belong to. The thread that receives a message is then
usually the one that read it: no hand-off between threads on the latency path. When the
endpoint has a single connection, a thread waiting for a frame on it reads with one
blocking ``recv`` (bounded by ``SO_RCVTIMEO``, every other socket call passes
``MSG_DONTWAIT``) instead of a poll and a read: one system call per small message; the
frame it waits for (its session and tag, the next sequence number) is then returned to it
directly rather than queued in the session's inbox and taken out again. Because a
waiting sender reads too, parties that all send large arrays before they receive (a ring)
cannot deadlock. A background thread looks at idle connections every 50 ms, so closed
peers, bad frames and early frames are noticed when nobody waits.

* :class:`Endpoint` listens on one port and hands out per-session channels
  (:meth:`Endpoint.session`). Between two nodes there is normally one TLS connection: the
  node with the smaller id (compared in lower case) dials at once; the other dials too if
  none came within ``dial_grace``. Dialling retries with exponential backoff; a lost
  connection is re-dialled the same way when a session next needs it. If two connections
  come up, both are read and sends use the newer; a sequence number per (session, sender,
  tag) keeps every stream in order regardless.
* TLS runs over memory BIOs (:mod:`metisnet.net.tls`). Payloads of at least 64 KiB
  travel in bulk records of up to 1 MiB after their TLS-carried header, under AES-256-GCM
  keys agreed inside the pinned TLS session (:mod:`metisnet.net.bulk`, a stated deviation
  from TLS-only payloads, for throughput): one system call and one AEAD call per record,
  sealed straight from the caller's array and opened straight into the ``numpy`` array
  handed to the receiver. Frames (:mod:`metisnet.net.wire`) are validated prefix first,
  header second, before their payload is read.
* Backpressure: a session's inbox holds at most ``session_buffer`` bytes. A frame that does
  not fit is parked and its connection is not read any further, so TCP flow control holds
  the sender back; a send that makes no progress for ``send_timeout`` fails with
  :class:`PeerTimeout`. Frames for sessions not opened yet are kept, within
  ``pending_sessions`` sessions.
* Failures stay local: a bad frame closes that connection with a logged reason and fails
  the sessions that use it with a :class:`WireError`; a lost connection fails them with a
  :class:`NetworkError` (data already received is still delivered first); a silent peer
  makes ``recv`` raise :class:`PeerTimeout` after its timeout. No error in an acceptor,
  dialler or background thread escapes the thread.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import (
    ConfigError,
    NetworkError,
    PeerRefused,
    PeerTimeout,
    ValidationError,
    WireError,
)
from metisnet.net.bulk import BULK_MIN
from metisnet.net.channel import DEFAULT_TIMEOUT
from metisnet.net.identity import (
    NodeIdentity,
    TlsIdentity,
    create_node_files,
    load_node_identity,
)
from metisnet.net.link import BLOCK_SLICE, Connection, Eof, reap
from metisnet.net.session_base import SessionChannelBase, SessionTable
from metisnet.net.tls import RefusedByPeer, TlsContexts, TlsLink, accept_tls, dial_tls
from metisnet.net.trust import FileTrustStore, PeerDirectory, TrustStore
from metisnet.net.wire import (
    KIND_BULK,
    SESSION_ID_MAX,
    WireLimits,
)
from metisnet.types import NodeId

__all__ = ["Endpoint", "EndpointConfig", "TlsChannel", "create_local_committee", "open_endpoint"]

log = logging.getLogger(__name__)

_IDLE_SLICE: Final = 0.25  # longest single wait of a thread driving I/O
_BUSY_SLICE: Final = 0.002  # ... when another thread holds some connection's token
_PARKED_SLICE: Final = 0.02  # ... when every readable connection waits for a full session
_IDLE_PERIOD: Final = 0.05  # how often the background reader looks at idle connections


@dataclass(frozen=True)
class EndpointConfig:
    """Settings of one endpoint; every wait has a bound.

    Loadable from a node's TOML file with ``metisnet.config.load_config(EndpointConfig,
    path, table="net")`` (``METIS_<FIELD>`` environment variables override).
    """

    host: str = "127.0.0.1"
    port: int = 0
    #: default ``recv`` timeout of the sessions (seconds)
    timeout: float = DEFAULT_TIMEOUT
    #: one dial attempt, or one incoming hello plus handshake (seconds)
    connect_timeout: float = 10.0
    #: a send that makes no progress for this long fails with PeerTimeout (seconds)
    send_timeout: float = 30.0
    #: bytes queued per session before its connection stops being read (backpressure)
    session_buffer: int = 256 << 20
    #: sessions a peer may send to before they are opened here
    pending_sessions: int = 16
    #: the node with the larger id dials too if no connection came within this (seconds)
    dial_grace: float = 1.0
    #: first and longest pause between dial attempts (seconds)
    backoff_initial: float = 0.05
    backoff_max: float = 2.0
    #: caps on one frame's header and payload (bytes)
    max_header: int = 1024
    max_payload: int = 1 << 30

    def __post_init__(self) -> None:
        for name in ("timeout", "connect_timeout", "send_timeout", "backoff_initial",
                     "backoff_max"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"net config: {name} must be positive")
        if self.dial_grace < 0 or not 0 <= self.port < 65536:
            raise ConfigError("net config: dial_grace must be >= 0 and port in 0..65535")
        if self.session_buffer <= 0 or self.pending_sessions < 0:
            raise ConfigError("net config: session_buffer must be positive")
        self.limits()  # validates the frame caps

    def limits(self) -> WireLimits:
        return WireLimits(max_header=self.max_header, max_payload=self.max_payload)


_pollers = threading.local()  # per thread: registrations -> a poll object made for them


def _poller(regs: list[tuple[int, int]]) -> select.poll:
    """A poll object for these (fd, events) registrations, reused by the calling thread."""
    key = tuple(regs)
    cache: dict[tuple[tuple[int, int], ...], select.poll] | None = getattr(
        _pollers, "cache", None)
    if cache is None:
        cache = _pollers.cache = {}
    poller = cache.get(key)
    if poller is None:
        if len(cache) >= 64:
            cache.clear()
        poller = cache[key] = select.poll()
        for fd, mask in regs:
            poller.register(fd, mask)
    return poller


# --------------------------------------------------------------------------- sessions


@dataclass
class _Inbox:
    """What has arrived for one session, keyed by (peer node id, tag), in sequence order.

    Bounded by ``capacity`` bytes, except that the frame a reader waits for next (the next
    sequence number of its key) is always admitted, so reordering cannot wedge a session.
    """

    capacity: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    queues: dict[tuple[NodeId, str], dict[int, NDArray[Any]]] = field(default_factory=dict)
    next_seq: dict[tuple[NodeId, str], int] = field(default_factory=dict)
    buffered: int = 0
    error: BaseException | None = None
    peer_errors: dict[NodeId, BaseException] = field(default_factory=dict)
    closed: bool = False

    def put(self, peer: NodeId, tag: str, seq: int, arr: NDArray[Any]) -> bool:
        """Queue ``arr`` unless the inbox is full (then False: the caller holds on to it).

        An empty inbox always takes a frame, however large (the frame cap bounds it); a
        failed or closed session swallows frames. A repeated sequence number is a
        protocol violation by the peer (WireError).
        """
        n = arr.nbytes
        key = (peer, tag)
        with self.lock:
            if self.closed or self.error is not None:
                return True
            expected = self.next_seq.get(key, 0)
            q = self.queues.get(key)
            if seq < expected or (q is not None and seq in q):
                raise WireError(f"repeated message {tag!r} (sequence number {seq})")
            if seq != expected and self.buffered and self.buffered + n > self.capacity:
                return False
            self.queues.setdefault(key, {})[seq] = arr
            self.buffered += n
            return True

    def claim(self, peer: NodeId, tag: str, seq: int) -> bool:
        """Whether the frame ``seq`` from ``peer`` under ``tag`` goes straight to a reader.

        Yes only if it is the next one the reader takes, nothing is queued under that
        sequence number and the session is open and not failed; the reader's position then
        moves past it as :meth:`take` would. Otherwise the frame goes through :meth:`put`
        (which queues it, swallows it, or rejects a repeated sequence number).
        """
        key = (peer, tag)
        with self.lock:
            if self.closed or self.error is not None or self.next_seq.get(key, 0) != seq:
                return False
            q = self.queues.get(key)
            if q is not None and seq in q:
                return False
            self.next_seq[key] = seq + 1
            return True

    def take(self, peer: NodeId, tag: str) -> NDArray[Any] | None:
        """The next array from ``peer`` under ``tag``, None if none yet; raises if failed."""
        key = (peer, tag)
        with self.lock:
            q = self.queues.get(key)
            seq = self.next_seq.get(key, 0)
            if q and seq in q:
                arr = q.pop(seq)
                if not q:
                    del self.queues[key]
                self.next_seq[key] = seq + 1
                self.buffered -= arr.nbytes
                return arr
            if self.error is not None:
                raise _again(self.error)
            if peer in self.peer_errors:
                raise _again(self.peer_errors[peer])
            if self.closed:
                raise NetworkError("channel is closed")
            return None

    def ready(self, peer: NodeId, tag: str) -> bool:
        """Whether ``take`` would return or raise rather than return None."""
        if self.queues:
            q = self.queues.get((peer, tag))
            if q is not None and self.next_seq.get((peer, tag), 0) in q:
                return True
        return self.error is not None or peer in self.peer_errors or self.closed

    def fail(self, exc: BaseException, peer: NodeId | None = None) -> None:
        with self.lock:
            if peer is None:
                if self.error is None:
                    self.error = exc
                self.queues.clear()
                self.buffered = 0
            else:
                self.peer_errors.setdefault(peer, exc)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.queues.clear()
            self.buffered = 0


def _again(exc: BaseException) -> BaseException:
    """A fresh exception with the same message (raised in the caller's thread).

    Its type is the nearest class of ``exc`` whose constructor takes just a message.
    """
    cls: type[BaseException] = type(exc)
    while "__init__" in vars(cls) and cls.__mro__[1] is not Exception:
        cls = cls.__mro__[1]
    return cls(str(exc))


class TlsChannel(SessionChannelBase):
    """One party's channel in one session over an :class:`Endpoint` (a ``Channel``)."""

    _ep: Endpoint
    _inbox: _Inbox

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        node = self._peer(peer)
        err = self._inbox.error or self._inbox.peer_errors.get(node)
        if err is not None:  # the session already failed for this peer: fail cleanly
            raise _again(err)
        seq = self._seq.get((peer, tag), 0)
        array = np.asarray(array)
        nbytes = array.nbytes
        if nbytes < BULK_MIN:  # one TLS write of the whole frame (the latency path)
            frame = self._heads.frame(tag, array, seq=seq)
            conn = self._ep._conns.get(node)
            if conn is None or not conn.alive:
                conn = self._ep._connection(node, self._timeout, self._inbox)
            conn.send_small(frame)
        else:
            head, arr = self._heads.encode(tag, array, seq=seq, kind=KIND_BULK)
            conn = self._ep._conns.get(node)
            if conn is None or not conn.alive:
                conn = self._ep._connection(node, self._timeout, self._inbox)
            conn.send(head, arr, bulk=True)
        self._seq[(peer, tag)] = seq + 1
        self._rounds.on_send(nbytes)

    def recv(self, peer: int, tag: str, timeout: float | None = None) -> NDArray[Any]:
        node = self._peer(peer)
        wait = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        inbox, ep = self._inbox, self._ep
        conn = ep._conns.get(node)
        if wait > BLOCK_SLICE and conn is not None:
            # the latency path, tried first: this thread alone waits on the one connection
            # and reads it with one blocking call; the frame it waits for, if that is what
            # arrives, comes back directly instead of through the inbox (which is checked
            # first, with the connection's token held)
            conns = ep._readable()
            if len(conns) == 1 and conns[0] is conn and conn.token.acquire(blocking=False):
                arr = ep._read_for(conn, self._session, tag, inbox, node)
                if arr is not None:
                    self._rounds.on_recv(arr.nbytes)
                    return arr
        while True:
            arr = inbox.take(node, tag)
            if arr is not None:
                self._rounds.on_recv(arr.nbytes)
                return arr
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerTimeout(f"party {self._party}: no message {tag!r} from party {peer} "
                                  f"within {wait:g} s")
            conn = ep._conns.get(node)
            if conn is None or not conn.alive:
                with ep._lock:  # not connected (yet): wait for a connection to appear
                    ep._want_locked(node, left)
                    ep._lock.wait(min(left, 0.05))
                continue
            conns = ep._readable()
            if (left > BLOCK_SLICE and len(conns) == 1 and conns[0] is conn
                    and conn.can_block and conn.token.acquire(blocking=False)):
                # the latency path: this thread alone waits on the one connection and
                # reads it with one blocking call; the frame it waits for, if that is
                # what arrives, comes back directly instead of through the inbox
                arr = ep._read_for(conn, self._session, tag, inbox, node)
                if arr is not None:
                    self._rounds.on_recv(arr.nbytes)
                    return arr
                continue
            ep._progress(deadline, until=lambda: inbox.ready(node, tag))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._ep._close_session(self._session)


# --------------------------------------------------------------------------- endpoint


class Endpoint:
    """A node's network endpoint: TLS listener, peer connections, session channels.

    Typical use by a compute node::

        ident = load_node_identity("node.keystore")          # or new_node_identity()
        trust = FileTrustStore("committee.json")              # pins and addresses
        with Endpoint(ident, trust, EndpointConfig(port=7001)) as ep:
            chan = ep.session(session_id, committee_node_ids)   # a Channel
            chan.send(1, "step", array); x = chan.recv(2, "step")
    """

    def __init__(self, identity: NodeIdentity | TlsIdentity, trust: TrustStore,
                 config: EndpointConfig | None = None, *,
                 directory: PeerDirectory | None = None) -> None:
        tls = identity.tls if isinstance(identity, NodeIdentity) else identity
        self.node_id: NodeId = tls.node_id
        self.config = config or EndpointConfig()
        self._trust = trust
        self._directory = directory if directory is not None else (
            trust if isinstance(trust, PeerDirectory) else None)
        self._addresses: dict[NodeId, tuple[str, int]] = {}
        self._ctx = TlsContexts(tls)
        self._lock = threading.Condition(threading.Lock())
        self._conns: dict[NodeId, Connection] = {}  # the connection sends go over
        self._spare: list[Connection] = []  # older live connections, still read
        self._readable_cache: list[Connection] | None = None  # reset when they change
        self._dialling: dict[NodeId, float] = {}  # peer -> dial wanted until (monotonic)
        self._sessions: SessionTable[_Inbox] = SessionTable(
            lambda: _Inbox(self.config.session_buffer), self.config.pending_sessions)
        self._closing = False
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    # ---- lifecycle

    def start(self) -> Endpoint:
        """Bind the listening socket and start the acceptor and background-reader threads."""
        if self._listener is not None:
            return self
        cfg = self.config
        self._listener = socket.create_server((cfg.host, cfg.port))
        for target, name in ((self._accept_loop, "accept"), (self._idle_loop, "idle")):
            t = threading.Thread(target=target, daemon=True, name=f"metis-{name}")
            t.start()
            self._threads.append(t)
        log.info("node %s listening on %s:%d", self.node_id, *self.address)
        return self

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the endpoint listens on."""
        if self._listener is None:
            raise NetworkError("endpoint not started")
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def close(self) -> None:
        """Close every connection and session; idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            conns = list(self._conns.values())
            inboxes = list(self._sessions.inboxes.values())
            self._lock.notify_all()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._listener.close()
        for c in conns:
            self._fail(c, NetworkError("endpoint closed"))
        for ib in inboxes:
            ib.fail(NetworkError("endpoint closed"))
        for t in self._threads:
            t.join(timeout=2.0)

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_address(self, node_id: NodeId, host: str, port: int) -> None:
        """Tell the endpoint where ``node_id`` listens (overrides the directory)."""
        with self._lock:
            self._addresses[node_id] = (host, port)

    def revalidate(self) -> list[NodeId]:
        """Drop connections whose peer is no longer pinned to the certificate it showed.

        Call it when the trust store changes (a node deregistered or was slashed); the
        sessions with a dropped peer fail with :class:`PeerRefused`. Returns the dropped
        peers.
        """
        dropped = []
        for c in self._readable():
            pin = self._trust.pinned_hash(c.peer)
            if pin is None or not secrets.compare_digest(pin, c.cert_hash):
                self._fail(c, PeerRefused(f"{c.peer} is no longer pinned to its certificate"))
                dropped.append(c.peer)
        return dropped

    def connected_peers(self) -> list[NodeId]:
        with self._lock:
            return [p for p, c in self._conns.items() if c.alive]

    # ---- sessions

    def session(self, session_id: bytes, node_ids: Sequence[NodeId], *,
                timeout: float | None = None) -> TlsChannel:
        """This node's channel in session ``session_id`` among ``node_ids`` (party order).

        The party index of this node is its position in ``node_ids``. Connections to the
        other members are started at once (dialled in the background where this node is
        the dialling side); ``send``/``recv`` wait for them up to their timeouts.
        """
        if not isinstance(session_id, bytes) or not 0 < len(session_id) <= SESSION_ID_MAX:
            raise ValidationError(f"session id must be 1..{SESSION_ID_MAX} bytes")
        members = tuple(node_ids)
        if members.count(self.node_id) != 1:
            raise ValidationError(f"this node {self.node_id} must appear once in the session")
        if len(set(members)) != len(members) or len(members) < 2:
            raise ValidationError("a session needs at least 2 distinct nodes")
        wait = self.config.timeout if timeout is None else timeout
        with self._lock:
            if self._closing:
                raise NetworkError("endpoint is closed")
            inbox = self._sessions.join(session_id, members)
            for peer in members:
                if peer != self.node_id:
                    conn = self._conns.get(peer)
                    if conn is None or not conn.alive:
                        self._want_locked(peer, wait)
        return TlsChannel(self, session_id, members, members.index(self.node_id), inbox, wait)

    def _close_session(self, session_id: bytes) -> None:
        with self._lock:
            inbox = self._sessions.close(session_id)
        if inbox is not None:
            inbox.close()

    def _deliver(self, conn: Connection, session_id: bytes, tag: str, seq: int,
                 arr: NDArray[Any]) -> bool:
        """Route one frame to its session inbox; False if the inbox is full."""
        table = self._sessions
        inbox = table.inboxes.get(session_id)  # fast path: an open session (a closed
        members = table.members.get(session_id)  # one's inbox swallows frames)
        if inbox is not None and members is not None:
            if conn.peer not in members:
                raise WireError(f"{conn.peer} sent to a session it is not a member of")
            return inbox.put(conn.peer, tag, seq, arr)
        with self._lock:
            inbox = table.route(session_id, conn.peer)
        return True if inbox is None else inbox.put(conn.peer, tag, seq, arr)

    # ---- the I/O engine

    def _progress(self, deadline: float, *, write: Connection | None = None,
                  until: Callable[[], bool] | None = None) -> None:
        """Wait for I/O once, reading every connection this thread can take the token of.

        Called by a thread blocked in ``recv`` (``until`` says when it is satisfied) or in
        a send (``write`` is the connection waiting to become writable). Reading all
        connections while waiting keeps every peer's sends flowing, so a ring of parties
        that all send before they receive cannot deadlock.
        """
        conns = self._readable()
        if until is not None and write is None and len(conns) == 1:
            # the latency path: one connection, and this thread waits for a frame on it.
            # A blocking read (bounded by BLOCK_SLICE) replaces a poll and a read.
            c = conns[0]
            if (c.can_block and deadline - time.monotonic() > BLOCK_SLICE
                    and c.token.acquire(blocking=False)):
                try:
                    if c.can_block:
                        self._pump(c, block=True)
                        return
                finally:
                    c.token.release()
        held = [c for c in conns if c.token.acquire(blocking=False)]
        try:
            if until is not None:
                # what has arrived already needs no poll: a reply often comes in while this
                # thread was still sending the request
                for c in held:
                    self._pump(c)
                if until():
                    return
            regs: list[tuple[int, int]] = []
            by_fd: dict[int, Connection] = {}
            for c in held:
                if until is None and (c.dirty or c.parked is not None):
                    self._pump(c)  # bytes a socket poll would not report
                if c.parked is not None or not c.alive:  # a full session: do not read it
                    if c is write:
                        regs.append((c.fd, select.POLLOUT))
                    continue
                mask = select.POLLIN
                if c is write:
                    mask |= select.POLLOUT
                regs.append((c.fd, mask))
                by_fd[c.fd] = c
            if until is not None and until():
                return
            if write is not None and write not in held:
                regs.append((write.fd, select.POLLOUT))
            elif write is None and not by_fd:  # others are reading, or every session is full
                pause = _BUSY_SLICE if len(held) < len(conns) else _PARKED_SLICE
                with self._lock:
                    self._lock.wait(min(max(deadline - time.monotonic(), 0.0), pause))
                return
            slice_s = _BUSY_SLICE if len(held) < len(conns) else _IDLE_SLICE
            wait = min(max(deadline - time.monotonic(), 0.0), slice_s)
            for fd, ev in _poller(regs).poll(wait * 1000.0):
                ready = by_fd.get(fd)
                if ready is not None and ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    self._pump(ready)
        finally:
            for c in held:
                c.token.release()

    def _read_for(self, conn: Connection, session: bytes, tag: str, inbox: _Inbox,
                  peer: NodeId) -> NDArray[Any] | None:
        """One blocking read of ``conn`` (at most ``BLOCK_SLICE``; the caller holds its
        token, released here) by a thread waiting for the next frame from ``peer`` in
        ``session`` under ``tag``: that frame if it came and ``inbox`` let it go straight
        to the reader (:meth:`_Inbox.claim`), else None.

        Every other frame is delivered as usual. Nothing is read if the inbox already has
        the frame, or an error, for the reader (checked with the token held, so no other
        thread is delivering from ``conn`` meanwhile).
        """
        try:
            if inbox.ready(peer, tag):
                return None
            return conn.recv_small(session, tag, lambda seq: inbox.claim(peer, tag, seq))
        except Exception as exc:  # _io_failed sorts and logs it
            self._io_failed(conn, exc)
            return None
        finally:
            conn.token.release()

    def _readable(self) -> list[Connection]:
        conns = self._readable_cache
        if conns is None:
            with self._lock:
                conns = [c for c in (*self._conns.values(), *self._spare) if c.alive]
                self._readable_cache = conns
        return conns

    def _pump(self, conn: Connection, block: bool = False) -> None:
        """Run ``conn.pump`` (token held); a failure closes the connection, never raises."""
        try:
            conn.pump(block)
        except Exception as exc:  # _io_failed sorts and logs it
            self._io_failed(conn, exc)

    def _io_failed(self, conn: Connection, exc: Exception) -> None:
        """Close ``conn`` after reading it raised ``exc``, with the matching session error."""
        if isinstance(exc, Eof):
            self._fail(conn, NetworkError(f"connection to {conn.peer} closed by the peer"))
        elif isinstance(exc, WireError):
            log.warning("bad frame from %s, closing the connection: %s", conn.peer, exc)
            self._fail(conn, WireError(f"frame from {conn.peer} rejected ({exc}); "
                                       "connection closed"))
        elif isinstance(exc, (OSError, ssl.SSLError, ValueError)):
            self._fail(conn, NetworkError(f"connection to {conn.peer} lost: {exc}"))
        else:  # never let I/O on one connection crash the node
            log.error("unexpected error reading from %s", conn.peer, exc_info=exc)
            self._fail(conn, NetworkError(f"connection to {conn.peer} failed: {exc}"))

    def _fail(self, conn: Connection, err: BaseException) -> None:
        """Close ``conn`` once and fail the sessions that need its peer."""
        with self._lock:
            if not conn.alive:
                return
            conn.alive = False
            self._readable_cache = None
            inboxes = []
            if conn in self._spare:  # a superseded duplicate: its sessions use the other
                self._spare.remove(conn)
            else:
                if self._conns.get(conn.peer) is conn:
                    del self._conns[conn.peer]
                inboxes = self._sessions.of_peer(conn.peer)
            self._lock.notify_all()
        if not self._closing:
            log.info("connection to %s closed: %s", conn.peer, err)
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_RDWR)
        for ib in inboxes:
            if isinstance(err, WireError):
                ib.fail(err)
            else:
                ib.fail(err, conn.peer)
        # close the descriptor once no thread can be using it any more
        threading.Thread(target=reap, args=(conn,), daemon=True, name="metis-reap").start()

    def _idle_loop(self) -> None:
        """Background reader for connections nobody is waiting on.

        It notices closed peers and bad frames on idle connections and keeps frames for
        sessions not opened yet flowing (slowly: the waiting threads read at full speed).
        """
        while not self._closing:
            time.sleep(_IDLE_PERIOD)
            for c in self._readable():
                if c.token.acquire(blocking=False):
                    try:
                        self._pump(c)
                    finally:
                        c.token.release()

    # ---- connections

    def _dials(self, peer: NodeId) -> bool:
        return self.node_id.lower() < peer.lower()

    def _peer_address(self, peer: NodeId) -> tuple[str, int] | None:
        with self._lock:
            addr = self._addresses.get(peer)
        if addr is None and self._directory is not None:
            addr = self._directory.address(peer)
        return addr

    def _want_locked(self, peer: NodeId, wait: float) -> None:
        """Make sure a connection to ``peer`` is being established (lock held).

        The node with the smaller id dials at once; the other waits ``dial_grace`` for
        it (the peer may not have joined the session yet) and then dials as well. Should
        both connections come up, both are kept: sends use the newer one, both are read,
        and sequence numbers keep each (session, tag) stream in order.
        """
        until = time.monotonic() + wait
        if peer in self._dialling:
            self._dialling[peer] = max(self._dialling[peer], until)
            return
        self._dialling[peer] = until
        delay = 0.0 if self._dials(peer) else self.config.dial_grace
        t = threading.Thread(target=self._dial_loop, args=(peer, delay), daemon=True,
                             name=f"metis-dial-{peer[:10]}")
        t.start()

    def _connection(self, peer: NodeId, timeout: float,
                    inbox: _Inbox | None = None) -> Connection:
        """The live connection to ``peer``, waiting up to ``timeout`` for it.

        Gives up early if ``inbox`` (the caller's session) has failed for that peer, e.g.
        because the peer refused this node.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closing:
                    raise NetworkError("endpoint is closed")
                if inbox is not None:
                    err = inbox.error or inbox.peer_errors.get(peer)
                    if err is not None:
                        raise _again(err)
                conn = self._conns.get(peer)
                if conn is not None and conn.alive:
                    return conn
                self._want_locked(peer, timeout)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerTimeout(f"no connection to {peer} within {timeout:g} s")
                self._lock.wait(min(left, 0.5))

    def _dial_loop(self, peer: NodeId, delay: float) -> None:
        cfg = self.config
        pause = cfg.backoff_initial
        last_error = ""
        if delay:
            time.sleep(delay)
        while True:
            with self._lock:
                until = self._dialling.get(peer, 0.0)
                conn = self._conns.get(peer)
                if (self._closing or time.monotonic() > until
                        or (conn is not None and conn.alive)):
                    self._dialling.pop(peer, None)
                    if last_error and not self._closing and (conn is None or not conn.alive):
                        log.warning("giving up dialling %s: %s", peer, last_error)
                    return
            addr = self._peer_address(peer)
            try:
                if addr is None:
                    raise NetworkError(f"no address known for {peer}")
                link = dial_tls(self._ctx, self._trust, addr, peer, cfg.connect_timeout)
            except PeerRefused as exc:
                last_error = str(exc)
                log.warning("dial %s refused: %s", peer, exc)
                self._fail_peer_sessions(peer, exc)
            except (NetworkError, OSError) as exc:
                last_error = str(exc)
                log.debug("dial %s failed: %s", peer, exc)
            else:
                self._install(link)
                continue
            time.sleep(pause)
            pause = min(pause * 2, cfg.backoff_max)

    def _accept_loop(self) -> None:
        listener = self._listener
        if listener is None:  # pragma: no cover
            return
        while not self._closing:
            try:
                raw, addr = listener.accept()
            except OSError:
                if self._closing:
                    return
                time.sleep(0.05)
                continue
            try:
                threading.Thread(target=self._handshake_incoming, args=(raw, addr),
                                 daemon=True, name="metis-handshake").start()
            except RuntimeError:  # no thread to spare: drop this one caller, keep serving
                log.exception("cannot handle an incoming connection from %s", addr)
                with contextlib.suppress(OSError):
                    raw.close()

    def _handshake_incoming(self, raw: socket.socket, addr: Any) -> None:
        try:
            link = accept_tls(self._ctx, self._trust, raw, self.config.connect_timeout)
        except RefusedByPeer as exc:
            log.warning("connection from %s failed: %s", addr, exc)
            self._fail_peer_sessions(exc.node_id, exc)
            return
        except PeerRefused as exc:
            log.warning("refused connection from %s: %s", addr, exc)
            return
        except (NetworkError, OSError) as exc:
            log.info("incoming connection from %s failed: %s", addr, exc)
            return
        except Exception:  # pragma: no cover - never let a handshake thread crash the node
            log.exception("unexpected error in an incoming handshake from %s", addr)
            with contextlib.suppress(OSError):
                raw.close()
            return
        self._install(link)

    def _install(self, link: TlsLink) -> None:
        cfg = self.config
        conn = Connection(link, limits=cfg.limits(), send_timeout=cfg.send_timeout,
                          deliver=self._deliver, fail=self._fail,
                          wait_io=lambda deadline, c: self._progress(deadline, write=c))
        with self._lock:
            if self._closing:
                with contextlib.suppress(OSError):
                    link.sock.close()
                return
            old = self._conns.get(conn.peer)
            self._conns[conn.peer] = conn
            self._readable_cache = None
            if old is not None and old.alive:
                self._spare.append(old)  # still read: frames may be in flight on it
            self._lock.notify_all()
        log.info("connected to %s", conn.peer)

    def _fail_peer_sessions(self, peer: NodeId, err: BaseException) -> None:
        with self._lock:
            inboxes = self._sessions.of_peer(peer)
        for ib in inboxes:
            ib.fail(err, peer)
        with self._lock:
            self._lock.notify_all()


def open_endpoint(keystore: str | Path, trust: str | Path | TrustStore, *,
                  password: str | None = None,
                  config: EndpointConfig | None = None) -> Endpoint:
    """Load a node identity and a trust store from files and start an endpoint.

    ``password`` defaults to ``$METIS_KEY_PASSWORD``; ``trust`` is a JSON trust store file
    (pins and addresses, see :mod:`metisnet.net.trust`) or any :class:`TrustStore`.
    """
    ident = load_node_identity(keystore, password)
    store = trust if isinstance(trust, TrustStore) else FileTrustStore(trust)
    return Endpoint(ident, store, config).start()


def create_local_committee(directory: str | Path, ports: Sequence[int], *,
                           password: str, host: str = "127.0.0.1",
                           scrypt_n: int | None = None) -> tuple[list[Path], Path]:
    """Keystores for ``len(ports)`` nodes and one trust file pinning all of them.

    For local multi-process runs: node ``i`` listens on ``host:ports[i]``; every node
    loads the same ``trust.json``. Returns (keystore paths in party order, trust path).
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    entries: dict[NodeId, tuple[bytes, str | None]] = {}
    for i, port in enumerate(ports):
        path = root / f"node{i}.keystore"
        ident = create_node_files(path, password, scrypt_n=scrypt_n, overwrite=True)
        paths.append(path)
        entries[ident.node_id] = (ident.cert_hash, f"{host}:{port}")
    trust_path = root / "trust.json"
    FileTrustStore.write(trust_path, entries)
    return paths, trust_path
