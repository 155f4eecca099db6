"""A native asyncio TLS endpoint: pinned connections, sessions multiplexed over them.

The asyncio counterpart of :class:`metisnet.net.endpoint.Endpoint`, for event-loop code
(node services, the REST API) that should not spend a thread per blocked call the way
:class:`metisnet.net.aio.AsyncChannel` does. Built on asyncio streams over TLS 1.3
(:mod:`metisnet.net.aio_link`) with the same identities, TLS contexts, pin check, wire
format (:mod:`metisnet.net.wire`) and configuration (:class:`EndpointConfig`) as the
threaded endpoint, and the same behaviour:

* One connection per peer pair: the node with the smaller id (lower case) dials at once,
  the other after ``dial_grace`` if none came; dialling retries with exponential backoff
  (``backoff_initial`` doubling up to ``backoff_max``) for as long as a session waits. If
  both dials succeed, both links are read and sends use the newer; a sequence number per
  (session, sender, tag) keeps each stream in order.
* An unpinned or unregistered peer is refused from its cleartext hello, before TLS and
  before any payload is read (:func:`metisnet.net.aio_link.accept_link`).
* Sessions are multiplexed by session id. Each link's receiver (a protocol on the TLS
  transport, :class:`metisnet.net.aio_frames.FrameReceiver`) decodes frames as ``ssl``
  hands over the bytes and puts them in the session inboxes. An inbox holds at most
  ``session_buffer`` bytes (the next frame a reader waits for is always admitted); a frame
  that does not fit is parked and the link's transport paused, so TLS's and the kernel's
  buffers fill and TCP flow control holds the sender back until the session is read; a
  send that makes no progress for ``send_timeout`` fails with :class:`PeerTimeout`.
* Timeouts on every wait: ``recv`` (the session timeout unless given), waiting for a
  connection, each drain of a send, each set-up (``connect_timeout``).
* Failures stay local: a bad frame closes that link with a logged reason and fails the
  sessions using that peer with :class:`WireError`; a lost link fails them with
  :class:`NetworkError` for that peer (what arrived before is still delivered); later
  sessions re-dial. Nothing raised while reading a link escapes into the event loop.

Not interoperable with the threaded endpoint: the two refuse each other's hello (see
:mod:`metisnet.net.aio_link`), and large payloads travel inside TLS here rather than in
the threaded link's bulk records. One event loop owns an endpoint: call it from that loop
only (nothing here is thread-safe). The MPC engine, which calls its channel synchronously
from numpy code, stays on the threaded endpoint (``benchmarks/net_asyncio.py`` measures
both side by side).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Sequence
from typing import Any, Final

from numpy.typing import NDArray

from metisnet.errors import NetworkError, PeerRefused, PeerTimeout, ValidationError, WireError
from metisnet.net.aio_frames import FrameReceiver, FrameTruncated
from metisnet.net.aio_link import STREAM_LIMIT, AioLink, accept_link, dial_link
from metisnet.net.aio_session import AsyncTlsChannel, _again, _Inbox, _Waiters
from metisnet.net.endpoint import EndpointConfig
from metisnet.net.identity import NodeIdentity, TlsIdentity
from metisnet.net.session_base import SessionTable
from metisnet.net.tls import RefusedByPeer, TlsContexts
from metisnet.net.trust import PeerDirectory, TrustStore
from metisnet.net.wire import KIND_PING, SESSION_ID_MAX, Header
from metisnet.types import NodeId

__all__ = ["AsyncTlsChannel", "AsyncTlsEndpoint", "EndpointConfig"]

log = logging.getLogger(__name__)

_LINK_POLL: Final = 0.5  # longest single wait for a connection before re-checking


class AsyncTlsEndpoint:
    """A node's asyncio network endpoint: TLS listener, peer links, session channels.

    Typical use inside an event loop::

        ep = await AsyncTlsEndpoint(identity, trust, EndpointConfig(port=7001)).start()
        chan = ep.session(session_id, committee_node_ids)
        await chan.send(1, "step", array); x = await chan.recv(2, "step")
        await ep.close()
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
        self._links: dict[NodeId, AioLink] = {}  # the link sends go over
        self._spare: list[AioLink] = []  # older live links, still read
        self._dialling: dict[NodeId, float] = {}  # peer -> dial wanted until (monotonic)
        self._sessions: SessionTable[_Inbox] = SessionTable(
            lambda: _Inbox(self.config.session_buffer), self.config.pending_sessions)
        self._closing = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._links_changed = _Waiters()

    # ---- lifecycle

    async def start(self) -> AsyncTlsEndpoint:
        """Listen on ``config.host:config.port``."""
        if self._server is None:
            cfg = self.config
            self._server = await asyncio.start_server(self._on_incoming, cfg.host, cfg.port,
                                                      limit=STREAM_LIMIT)
            log.info("node %s listening on %s:%d (asyncio)", self.node_id, *self.address)
        return self

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the endpoint listens on."""
        if self._server is None or not self._server.sockets:
            raise NetworkError("endpoint not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def close(self) -> None:
        """Close every link and session and stop listening; idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for link in [*self._links.values(), *self._spare]:
            self._fail(link, NetworkError("endpoint closed"))
        for ib in self._sessions.inboxes.values():
            ib.fail(NetworkError("endpoint closed"))
        self._links_changed.wake()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()

    async def __aenter__(self) -> AsyncTlsEndpoint:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def set_address(self, node_id: NodeId, host: str, port: int) -> None:
        """Tell the endpoint where ``node_id`` listens (overrides the directory)."""
        self._addresses[node_id] = (host, port)

    def connected_peers(self) -> list[NodeId]:
        return [p for p, c in self._links.items() if c.alive]

    def revalidate(self) -> list[NodeId]:
        """Drop links whose peer is no longer pinned to the certificate it showed.

        Call it when the trust store changes; sessions with a dropped peer fail with
        :class:`PeerRefused`. Returns the dropped peers.
        """
        dropped = []
        for c in [*self._links.values(), *self._spare]:
            pin = self._trust.pinned_hash(c.peer)
            if c.alive and (pin is None or not secrets.compare_digest(pin, c.cert_hash)):
                self._fail(c, PeerRefused(f"{c.peer} is no longer pinned to its certificate"))
                dropped.append(c.peer)
        return dropped

    # ---- sessions

    def session(self, session_id: bytes, node_ids: Sequence[NodeId], *,
                timeout: float | None = None) -> AsyncTlsChannel:
        """This node's channel in session ``session_id`` among ``node_ids`` (party order).

        Must be called from the endpoint's event loop: links to the other members are
        started at once (dialled where this node is the dialling side).
        """
        if not isinstance(session_id, bytes) or not 0 < len(session_id) <= SESSION_ID_MAX:
            raise ValidationError(f"session id must be 1..{SESSION_ID_MAX} bytes")
        members = tuple(node_ids)
        if members.count(self.node_id) != 1:
            raise ValidationError(f"this node {self.node_id} must appear once in the session")
        if len(set(members)) != len(members) or len(members) < 2:
            raise ValidationError("a session needs at least 2 distinct nodes")
        if self._closing:
            raise NetworkError("endpoint is closed")
        wait = self.config.timeout if timeout is None else timeout
        inbox = self._sessions.join(session_id, members)
        for peer in members:
            if peer != self.node_id and not self._has_link(peer):
                self._want(peer, wait)
        return AsyncTlsChannel(self, session_id, members, members.index(self.node_id),
                               inbox, wait)

    def _close_session(self, session_id: bytes) -> None:
        inbox = self._sessions.close(session_id)
        if inbox is not None:
            inbox.close()

    def _deliver(self, link: AioLink, header: Header, arr: NDArray[Any]) -> bool:
        """Route one frame to its session inbox; False if the inbox is full (the link's
        receiver then parks the frame and stops reading: backpressure)."""
        if header.kind == KIND_PING:
            return True
        inbox = self._sessions.route(header.session, link.peer)
        if inbox is None:  # a closed session: late frames are dropped
            return True
        if inbox.put(link.peer, header.tag, header.seq, arr):
            return True
        link.parked_inbox = inbox
        return False

    def _on_parked(self, link: AioLink) -> None:
        inbox = link.parked_inbox
        if inbox is not None:
            link.parked_task = self._spawn(self._unpark(link, inbox),
                                           f"metis-aio-park-{link.peer[:10]}")

    async def _unpark(self, link: AioLink, inbox: _Inbox) -> None:
        """Wait (without reading the link) until the parked frame fits its session."""
        receiver = link.receiver
        while receiver is not None and link.alive and not self._closing:
            await inbox.changed.wait(None)  # a take, a close or a failure wakes it
            if receiver.retry():
                return

    # ---- links

    def _has_link(self, peer: NodeId) -> bool:
        link = self._links.get(peer)
        return link is not None and link.alive

    def _dials(self, peer: NodeId) -> bool:
        return self.node_id.lower() < peer.lower()

    def _peer_address(self, peer: NodeId) -> tuple[str, int] | None:
        addr = self._addresses.get(peer)
        if addr is None and self._directory is not None:
            addr = self._directory.address(peer)
        return addr

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _want(self, peer: NodeId, wait: float) -> None:
        """Make sure a link to ``peer`` is being set up, for ``wait`` more seconds."""
        if self._closing:
            return
        until = time.monotonic() + wait
        if peer in self._dialling:
            self._dialling[peer] = max(self._dialling[peer], until)
            return
        self._dialling[peer] = until
        delay = 0.0 if self._dials(peer) else self.config.dial_grace
        self._spawn(self._dial_loop(peer, delay), f"metis-aio-dial-{peer[:10]}")

    async def _link_for(self, peer: NodeId, timeout: float, inbox: _Inbox) -> AioLink:
        """The live link to ``peer``, waiting up to ``timeout``; gives up early if the
        caller's session failed for that peer (e.g. the peer refused this node)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._closing:
                raise NetworkError("endpoint is closed")
            err = inbox.error or inbox.peer_errors.get(peer)
            if err is not None:
                raise _again(err)
            link = self._links.get(peer)
            if link is not None and link.alive:
                return link
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerTimeout(f"no connection to {peer} within {timeout:g} s")
            self._want(peer, left)
            await self._links_changed.wait(min(left, _LINK_POLL))

    async def _dial_loop(self, peer: NodeId, delay: float) -> None:
        cfg = self.config
        pause = cfg.backoff_initial
        last_error = ""
        try:
            if delay:
                await asyncio.sleep(delay)
            while True:
                until = self._dialling.get(peer, 0.0)
                if self._closing or time.monotonic() > until or self._has_link(peer):
                    if last_error and not self._closing and not self._has_link(peer):
                        log.warning("giving up dialling %s: %s", peer, last_error)
                    return
                addr = self._peer_address(peer)
                try:
                    if addr is None:
                        raise NetworkError(f"no address known for {peer}")
                    link = await dial_link(self._ctx, self._trust, addr, peer,
                                           cfg.connect_timeout)
                except PeerRefused as exc:
                    last_error = str(exc)
                    log.warning("dial %s refused: %s", peer, exc)
                    self._fail_peer_sessions(peer, exc)
                except NetworkError as exc:
                    last_error = str(exc)
                    log.debug("dial %s failed: %s", peer, exc)
                else:
                    await self._install(link)
                    continue
                await asyncio.sleep(pause)
                pause = min(pause * 2, cfg.backoff_max)
        except asyncio.CancelledError:
            raise
        except Exception:  # never let a dial task die with an unlogged error
            log.exception("unexpected error dialling %s", peer)
        finally:
            self._dialling.pop(peer, None)

    async def _on_incoming(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        addr = writer.get_extra_info("peername")
        try:
            if self._closing:
                writer.transport.abort()
                return
            link = await accept_link(self._ctx, self._trust, reader, writer,
                                     self.config.connect_timeout)
        except RefusedByPeer as exc:
            log.warning("connection from %s failed: %s", addr, exc)
            self._fail_peer_sessions(exc.node_id, exc)
            return
        except PeerRefused as exc:
            log.warning("refused connection from %s: %s", addr, exc)
            return
        except NetworkError as exc:
            log.info("incoming connection from %s failed: %s", addr, exc)
            return
        except Exception:  # never let a handshake crash the node
            log.exception("unexpected error in an incoming handshake from %s", addr)
            with contextlib.suppress(Exception):
                writer.transport.abort()
            return
        await self._install(link)

    async def _install(self, link: AioLink) -> None:
        if self._closing:
            link.abort()
            return
        old = self._links.get(link.peer)
        self._links[link.peer] = link
        if old is not None and old.alive:
            self._spare.append(old)  # still read: frames may be in flight on it
        receiver = FrameReceiver(
            self.config.limits(),
            deliver=lambda header, arr: self._deliver(link, header, arr),
            fail=lambda exc: self._link_error(link, exc),
            parked=lambda: self._on_parked(link))
        try:
            await link.start_reading(receiver)
        except Exception as exc:
            self._link_error(link, exc)
            return
        self._links_changed.wake()
        log.info("connected to %s (asyncio)", link.peer)

    def _link_error(self, link: AioLink, exc: BaseException) -> None:
        """What a link's receiver reports when it stops: fail the link with a clear error."""
        peer = link.peer
        err: BaseException
        if not link.alive:
            err = NetworkError(f"connection to {peer} was dropped by this node")
        elif isinstance(exc, FrameTruncated):
            err = NetworkError(f"connection to {peer} closed by the peer inside a frame")
        elif isinstance(exc, WireError):
            log.warning("bad frame from %s, closing the connection: %s", peer, exc)
            err = WireError(f"frame from {peer} rejected ({exc}); connection closed")
        elif isinstance(exc, NetworkError):
            err = NetworkError(f"connection to {peer} closed by the peer")
        elif isinstance(exc, (ConnectionError, OSError, ssl.SSLError)):
            err = NetworkError(f"connection to {peer} lost: {type(exc).__name__}")
        else:  # a bug: log it, keep the node up
            log.error("unexpected error reading from %s: %r", peer, exc)
            err = NetworkError(f"connection to {peer} failed: {type(exc).__name__}")
        self._fail(link, err)

    def _fail(self, link: AioLink, err: BaseException) -> None:
        """Close ``link`` once and fail the sessions that need its peer."""
        if not link.alive and link not in self._spare and self._links.get(link.peer) is not link:
            return
        link.abort()
        inboxes: list[_Inbox] = []
        if link in self._spare:  # a superseded duplicate: its sessions use the newer link
            self._spare.remove(link)
        elif self._links.get(link.peer) is link:
            del self._links[link.peer]
            inboxes = self._sessions.of_peer(link.peer)
        if not self._closing:
            log.info("connection to %s closed: %s", link.peer, err)
        for ib in inboxes:
            if isinstance(err, WireError):
                ib.fail(err)
            else:
                ib.fail(err, link.peer)
        task = link.parked_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._links_changed.wake()

    def _fail_peer_sessions(self, peer: NodeId, err: BaseException) -> None:
        for ib in self._sessions.of_peer(peer):
            ib.fail(err, peer)
        self._links_changed.wake()
