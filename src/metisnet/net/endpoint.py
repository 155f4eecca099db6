"""A node's TLS endpoint: one pinned connection per peer, sessions multiplexed over it.

Design (blocking sockets, one reader thread per connection)
-----------------------------------------------------------
The MPC engine calls ``send``/``recv`` synchronously from numpy code, so the transport is
built from blocking sockets rather than asyncio: no event loop to hop into, and the large
``SSL_write``/``SSL_read`` calls run with the GIL released.

* :class:`Endpoint` listens on one port, dials peers, and hands out per-session channels
  (:meth:`Endpoint.session`). Between two nodes there is exactly one TLS connection: the
  node with the smaller id (compared in lower case) dials, the other accepts. Dialling
  retries with exponential backoff until the peer answers or nobody needs it any more; a
  lost connection is re-dialled the same way when a session next needs it.
* Each connection has a reader thread that decodes frames (:mod:`metisnet.net.wire`):
  the 12-byte prefix and the header are validated before the payload is read, and the
  payload is received straight into the ``numpy`` array handed to the caller (no copy).
  Sends happen in the caller's thread under a per-connection lock (one ``sendall`` of the
  head, one of the array's memory; small frames go out in one write).
* Frames are routed by session id into a per-session inbox keyed by (peer, tag). Inboxes
  are bounded (``session_buffer`` bytes): when one is full, the reader thread stops
  reading that connection, TCP flow control stops the sender, and if nothing drains it
  within ``send_timeout`` the session fails with a clear error. A send blocked longer than
  ``send_timeout`` on a peer that does not read fails with :class:`PeerTimeout` (a monitor
  thread shuts the stalled connection down). Frames for a session not opened yet are
  buffered, within ``pending_sessions`` sessions.
* Failures stay local: a bad frame closes that connection with a logged reason and fails
  the sessions that use it with a :class:`WireError`; a lost connection fails them with a
  :class:`NetworkError` (data already received is still delivered first); a silent peer
  makes ``recv`` raise :class:`PeerTimeout` after its timeout. No error in a reader,
  acceptor or dialler thread ever escapes the thread.

Known limit: one reader and one writer thread share each ``SSLSocket`` (full duplex).
TLS 1.3 session tickets are disabled so that reads never need to write; key updates are
never requested. This is the usual way of using OpenSSL full duplex from Python.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import (
    NetworkError,
    PeerRefused,
    PeerTimeout,
    ValidationError,
    WireError,
)
from metisnet.net.channel import DEFAULT_TIMEOUT, ChannelStats, _RoundCounter
from metisnet.net.identity import NodeIdentity, TlsIdentity
from metisnet.net.tls import TlsContexts, accept_tls, dial_tls
from metisnet.net.trust import PeerDirectory, TrustStore
from metisnet.net.wire import (
    KIND_DATA,
    PREFIX_SIZE,
    SESSION_ID_MAX,
    WireLimits,
    decode_header,
    decode_prefix,
    encode_head,
)
from metisnet.types import NodeId

__all__ = ["Endpoint", "EndpointConfig", "TlsChannel"]

log = logging.getLogger(__name__)

_SMALL: Final = 64 << 10  # frames below this go out in one write
_READ_BUF: Final = 256 << 10
_CHUNK: Final = 8 << 20  # large payloads are written in chunks; each one is progress
_CLOSED_MEMORY: Final = 4096  # closed session ids remembered (late frames are dropped)


@dataclass(frozen=True)
class EndpointConfig:
    """Settings of one endpoint; every wait has a bound."""

    host: str = "127.0.0.1"
    port: int = 0
    #: default ``recv`` timeout of the sessions (seconds)
    timeout: float = DEFAULT_TIMEOUT
    #: one dial attempt, or one incoming hello plus handshake (seconds)
    connect_timeout: float = 10.0
    #: a send (or a full inbox) that makes no progress for this long fails (seconds)
    send_timeout: float = 30.0
    #: bytes buffered per session before the connection's reader stops reading
    session_buffer: int = 512 << 20
    #: sessions a peer may send to before they are opened here
    pending_sessions: int = 64
    #: first and longest pause between dial attempts (seconds)
    backoff_initial: float = 0.05
    backoff_max: float = 2.0
    max_header: int = 1024
    max_payload: int = 1 << 30

    def limits(self) -> WireLimits:
        return WireLimits(max_header=self.max_header, max_payload=self.max_payload)


# --------------------------------------------------------------------------- sessions


@dataclass
class _Inbox:
    """What has arrived for one session, keyed by (peer node id, tag); bounded."""

    capacity: int
    cond: threading.Condition = field(default_factory=threading.Condition)
    queues: dict[tuple[NodeId, str], deque[NDArray[Any]]] = field(default_factory=dict)
    buffered: int = 0
    error: BaseException | None = None
    peer_errors: dict[NodeId, BaseException] = field(default_factory=dict)
    closed: bool = False

    def put(self, peer: NodeId, tag: str, arr: NDArray[Any], wait: float) -> bool:
        """Queue ``arr``; block while full. False if the session failed or closed."""
        n = arr.nbytes
        deadline = time.monotonic() + wait
        with self.cond:
            while (self.buffered and self.buffered + n > self.capacity
                   and not self.closed and self.error is None):
                left = deadline - time.monotonic()
                if left <= 0:
                    self.fail(NetworkError(
                        f"session receive buffer ({self.capacity} bytes) stayed full for "
                        f"{wait:g} s: the session is not reading what peers send"))
                    return False
                self.cond.wait(left)
            if self.closed or self.error is not None:
                return False
            self.queues.setdefault((peer, tag), deque()).append(arr)
            self.buffered += n
            self.cond.notify_all()
            return True

    def get(self, peer: NodeId, tag: str, timeout: float, who: str) -> NDArray[Any]:
        deadline = time.monotonic() + timeout
        key = (peer, tag)
        with self.cond:
            while True:
                q = self.queues.get(key)
                if q:
                    arr = q.popleft()
                    if not q:
                        del self.queues[key]
                    self.buffered -= arr.nbytes
                    self.cond.notify_all()
                    return arr
                if self.error is not None:
                    raise _again(self.error)
                if peer in self.peer_errors:
                    raise _again(self.peer_errors[peer])
                if self.closed:
                    raise NetworkError("channel is closed")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerTimeout(f"{who}: no message {tag!r} within {timeout:g} s")
                self.cond.wait(left)

    def fail(self, exc: BaseException, peer: NodeId | None = None) -> None:
        with self.cond:
            if peer is None:
                if self.error is None:
                    self.error = exc
                self.queues.clear()
                self.buffered = 0
            else:
                self.peer_errors.setdefault(peer, exc)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.queues.clear()
            self.buffered = 0
            self.cond.notify_all()


def _again(exc: BaseException) -> BaseException:
    """A fresh exception of the same type and message (raised in the caller's thread)."""
    try:
        return type(exc)(*exc.args)
    except TypeError:  # pragma: no cover - exception types with keyword-only init
        return NetworkError(str(exc))


class TlsChannel:
    """One party's channel in one session over an :class:`Endpoint` (a ``Channel``)."""

    def __init__(self, endpoint: Endpoint, session: bytes, peers: tuple[NodeId, ...],
                 party: int, inbox: _Inbox, timeout: float) -> None:
        self._ep = endpoint
        self._session = session
        self._peers = peers
        self._party = party
        self._inbox = inbox
        self._timeout = timeout
        self._stats = ChannelStats()
        self._rounds = _RoundCounter(self._stats)
        self._closed = False

    @property
    def party(self) -> int:
        return self._party

    @property
    def parties(self) -> int:
        return len(self._peers)

    @property
    def stats(self) -> ChannelStats:
        return self._stats

    @property
    def session_id(self) -> bytes:
        return self._session

    @property
    def node_ids(self) -> tuple[NodeId, ...]:
        """Node id of each party, by party index."""
        return self._peers

    def _peer(self, peer: int) -> NodeId:
        if self._closed:
            raise NetworkError("channel is closed")
        if not 0 <= peer < len(self._peers) or peer == self._party:
            raise ValidationError(f"invalid peer index {peer} for party {self._party}")
        return self._peers[peer]

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        node = self._peer(peer)
        err = self._inbox.error
        if err is not None:
            raise _again(err)
        head, arr = encode_head(self._session, tag, np.asarray(array),
                                limits=self._ep.config.limits())
        conn = self._ep._connection(node, self._timeout)
        conn.send(head, arr)
        self._rounds.on_send(0 if arr is None else arr.nbytes)

    def recv(self, peer: int, tag: str, timeout: float | None = None) -> NDArray[Any]:
        node = self._peer(peer)
        wait = self._timeout if timeout is None else timeout
        arr = self._inbox.get(node, tag, wait, f"party {self._party}: from party {peer}")
        self._rounds.on_recv(arr.nbytes)
        return arr

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._ep._close_session(self._session)


# --------------------------------------------------------------------------- connections


class _Connection:
    """One TLS connection to a peer: a reader thread and a locked sender."""

    def __init__(self, endpoint: Endpoint, sock: ssl.SSLSocket, peer: NodeId) -> None:
        self._ep = endpoint
        self.sock = sock
        self.peer = peer
        self._send_lock = threading.Lock()
        self.sending_since: float | None = None
        self.alive = True
        self._stall_reason = ""
        sock.settimeout(None)  # blocking; stalls are bounded by the endpoint's monitor
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"metis-read-{peer[:10]}")

    def start(self) -> None:
        self._reader.start()

    def send(self, head: bytes, arr: NDArray[Any] | None) -> None:
        with self._send_lock:
            if not self.alive:
                raise NetworkError(f"connection to {self.peer} is closed")
            self.sending_since = time.monotonic()
            try:
                if arr is None or arr.nbytes == 0:
                    self.sock.sendall(head)
                elif arr.nbytes < _SMALL:
                    self.sock.sendall(head + arr.tobytes())
                else:
                    self.sock.sendall(head)
                    view = arr.reshape(-1).view(np.uint8).data
                    for off in range(0, len(view), _CHUNK):
                        self.sock.sendall(view[off:off + _CHUNK])
                        self.sending_since = time.monotonic()  # progress was made
            except (OSError, ValueError) as exc:
                stalled = self._stall_reason
                self.shutdown(f"send failed: {exc}")
                if stalled:
                    raise PeerTimeout(f"send to {self.peer}: {stalled}") from None
                raise NetworkError(f"send to {self.peer} failed: {exc}") from None
            finally:
                self.sending_since = None

    def stall(self, reason: str) -> None:
        """Called by the monitor when a send made no progress for too long."""
        self._stall_reason = reason
        self.shutdown(reason)

    def shutdown(self, reason: str) -> None:
        """Stop the connection; the reader thread notices and cleans up."""
        if self.alive:
            self.alive = False
            log.info("closing connection to %s: %s", self.peer, reason)
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    # ---- reader thread

    def _read_loop(self) -> None:
        err: BaseException
        try:
            self._read_frames()
            err = NetworkError(f"connection to {self.peer} closed by the peer")
        except WireError as exc:
            log.warning("bad frame from %s, closing the connection: %s", self.peer, exc)
            err = WireError(f"frame from {self.peer} rejected ({exc}); connection closed")
        except (OSError, ValueError, ssl.SSLError) as exc:
            if self._stall_reason:
                err = PeerTimeout(f"connection to {self.peer}: {self._stall_reason}")
            elif self.alive:
                err = NetworkError(f"connection to {self.peer} lost: {exc}")
            else:
                err = NetworkError(f"connection to {self.peer} closed")
        except Exception as exc:  # never let a reader thread die with a traceback
            log.exception("unexpected error reading from %s", self.peer)
            err = NetworkError(f"connection to {self.peer} failed: {exc}")
        self.alive = False
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        self._ep._connection_lost(self, err)
        with self._send_lock, contextlib.suppress(OSError):  # a stuck send fails at once
            self.sock.close()

    def _read_frames(self) -> None:
        limits = self._ep.config.limits()
        sock = self.sock
        buf = bytearray(_READ_BUF)
        view = memoryview(buf)
        start = end = 0

        def fill(need: int) -> bool:
            """Make at least ``need`` bytes available in buf[start:end]; False on EOF."""
            nonlocal start, end
            if end - start >= need:
                return True
            if start and len(buf) - start < need:
                buf[: end - start] = buf[start:end]
                end -= start
                start = 0
            while end - start < need:
                k = sock.recv_into(view[end:])
                if k == 0:
                    return False
                end += k
            return True

        while True:
            if not fill(PREFIX_SIZE):
                if end > start:
                    raise WireError("stream ended inside a frame prefix")
                return
            hlen, plen = decode_prefix(view[start:start + PREFIX_SIZE], limits)
            start += PREFIX_SIZE
            if not fill(hlen):
                raise WireError("stream ended inside a frame header")
            header = decode_header(view[start:start + hlen], plen, limits)
            start += hlen
            arr = np.empty(header.shape, dtype=header.dtype)
            if plen:
                target = arr.reshape(-1).view(np.uint8).data
                have = min(end - start, plen)
                target[:have] = view[start:start + have]
                start += have
                got = have
                while got < plen:
                    k = sock.recv_into(target[got:])
                    if k == 0:
                        raise WireError("stream ended inside a frame payload")
                    got += k
            if start == end:
                start = end = 0
            if header.kind == KIND_DATA:
                self._ep._deliver(self, header.session, header.tag, arr)


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
        self._lock = threading.Condition()
        self._conns: dict[NodeId, _Connection] = {}
        self._dialling: dict[NodeId, float] = {}  # peer -> dial wanted until (monotonic)
        self._inboxes: dict[bytes, _Inbox] = {}
        self._members: dict[bytes, tuple[NodeId, ...]] = {}
        self._pending: set[bytes] = set()
        self._closed_ids: deque[bytes] = deque(maxlen=_CLOSED_MEMORY)
        self._closed_set: set[bytes] = set()
        self._closing = False
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    # ---- lifecycle

    def start(self) -> Endpoint:
        """Bind the listening socket and start the acceptor and monitor threads."""
        if self._listener is not None:
            return self
        cfg = self.config
        self._listener = socket.create_server((cfg.host, cfg.port), reuse_port=False)
        for target, name in ((self._accept_loop, "accept"), (self._monitor_loop, "monitor")):
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
            inboxes = list(self._inboxes.values())
            self._lock.notify_all()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._listener.close()
        for c in conns:
            c.shutdown("endpoint closing")
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
            if session_id in self._members or session_id in self._closed_set:
                raise ValidationError("session id already used on this endpoint")
            inbox = self._inboxes.get(session_id)
            if inbox is None:
                inbox = self._inboxes[session_id] = _Inbox(self.config.session_buffer)
            self._pending.discard(session_id)
            self._members[session_id] = members
            for peer in members:
                if peer != self.node_id:
                    conn = self._conns.get(peer)
                    if conn is None or not conn.alive:
                        self._want_locked(peer, wait)
        return TlsChannel(self, session_id, members, members.index(self.node_id), inbox, wait)

    def _close_session(self, session_id: bytes) -> None:
        with self._lock:
            inbox = self._inboxes.pop(session_id, None)
            self._members.pop(session_id, None)
            self._remember_closed(session_id)
        if inbox is not None:
            inbox.close()

    def _remember_closed(self, session_id: bytes) -> None:
        if len(self._closed_ids) == self._closed_ids.maxlen:
            self._closed_set.discard(self._closed_ids[0])
        self._closed_ids.append(session_id)
        self._closed_set.add(session_id)

    def _deliver(self, conn: _Connection, session_id: bytes, tag: str,
                 arr: NDArray[Any]) -> None:
        """Reader thread: route one frame to its session inbox (may block: backpressure)."""
        with self._lock:
            if session_id in self._closed_set:
                return
            inbox = self._inboxes.get(session_id)
            if inbox is None:
                if len(self._pending) >= self.config.pending_sessions:
                    raise WireError(f"peer opened more than {self.config.pending_sessions} "
                                    "sessions this node has not joined")
                inbox = self._inboxes[session_id] = _Inbox(self.config.session_buffer)
                self._pending.add(session_id)
            members = self._members.get(session_id)
        if members is not None and conn.peer not in members:
            raise WireError(f"{conn.peer} sent to a session it is not a member of")
        inbox.put(conn.peer, tag, arr, self.config.send_timeout)

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
        """Make sure a connection to ``peer`` is being established (lock held)."""
        if not self._dials(peer):
            return  # the peer dials us
        until = time.monotonic() + wait
        if peer in self._dialling:
            self._dialling[peer] = max(self._dialling[peer], until)
            return
        self._dialling[peer] = until
        t = threading.Thread(target=self._dial_loop, args=(peer,), daemon=True,
                             name=f"metis-dial-{peer[:10]}")
        t.start()

    def _connection(self, peer: NodeId, timeout: float) -> _Connection:
        """The live connection to ``peer``, waiting up to ``timeout`` for it."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closing:
                    raise NetworkError("endpoint is closed")
                conn = self._conns.get(peer)
                if conn is not None and conn.alive:
                    return conn
                self._want_locked(peer, timeout)
                left = deadline - time.monotonic()
                if left <= 0:
                    how = "dialling" if self._dials(peer) else "waiting for it to dial us"
                    raise PeerTimeout(f"no connection to {peer} within {timeout:g} s ({how})")
                self._lock.wait(min(left, 1.0))

    def _dial_loop(self, peer: NodeId) -> None:
        cfg = self.config
        pause = cfg.backoff_initial
        last_error = ""
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
                sock = dial_tls(self._ctx, self._trust, addr, peer, cfg.connect_timeout)
            except PeerRefused as exc:
                last_error = str(exc)
                log.warning("dial %s refused: %s", peer, exc)
                self._fail_peer_sessions(peer, exc)
            except (NetworkError, OSError) as exc:
                last_error = str(exc)
                log.debug("dial %s failed: %s", peer, exc)
            else:
                self._install(sock, peer)
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
            t = threading.Thread(target=self._handshake_incoming, args=(raw, addr),
                                 daemon=True, name="metis-handshake")
            t.start()

    def _handshake_incoming(self, raw: socket.socket, addr: Any) -> None:
        try:
            sock, peer = accept_tls(self._ctx, self._trust, raw, self.config.connect_timeout)
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
        self._install(sock, peer)

    def _install(self, sock: ssl.SSLSocket, peer: NodeId) -> None:
        conn = _Connection(self, sock, peer)
        with self._lock:
            if self._closing:
                with contextlib.suppress(OSError):
                    sock.close()
                return
            old = self._conns.get(peer)
            self._conns[peer] = conn
            self._lock.notify_all()
        if old is not None and old.alive:
            old.shutdown("replaced by a new connection from the same peer")
        log.info("connected to %s", peer)
        conn.start()

    def _connection_lost(self, conn: _Connection, err: BaseException) -> None:
        with self._lock:
            if self._conns.get(conn.peer) is conn:
                del self._conns[conn.peer]
            inboxes = [self._inboxes[s] for s, m in self._members.items()
                       if conn.peer in m and s in self._inboxes]
            self._lock.notify_all()
        for ib in inboxes:
            if isinstance(err, WireError):
                ib.fail(err)
            else:
                ib.fail(err, conn.peer)

    def _fail_peer_sessions(self, peer: NodeId, err: BaseException) -> None:
        with self._lock:
            inboxes = [self._inboxes[s] for s, m in self._members.items()
                       if peer in m and s in self._inboxes]
        for ib in inboxes:
            ib.fail(err, peer)

    def _monitor_loop(self) -> None:
        """Shut down connections whose current send has stalled past ``send_timeout``."""
        limit = self.config.send_timeout
        period = max(0.02, min(1.0, limit / 4))
        while not self._closing:
            time.sleep(period)
            now = time.monotonic()
            with self._lock:
                conns = list(self._conns.values())
            for c in conns:
                since = c.sending_since
                if since is not None and now - since > limit:
                    c.stall(f"peer did not read for {limit:g} s (send stalled)")
