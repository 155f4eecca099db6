"""Sessions of the asyncio TLS endpoint: bounded inboxes and the channel handed to callers.

:class:`AsyncTlsChannel` is one party's channel in one session of a
:class:`metisnet.net.aio_tls.AsyncTlsEndpoint`; :class:`_Inbox` holds what arrived for a
session, bounded in bytes (backpressure); :class:`_Waiters` wakes coroutines on a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import NetworkError, PeerTimeout, WireError
from metisnet.net.session_base import SessionChannelBase
from metisnet.types import NodeId

if TYPE_CHECKING:
    from metisnet.net.aio_tls import AsyncTlsEndpoint

__all__ = ["AsyncTlsChannel"]


def _release(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


class _Waiters:
    """Coroutines waiting for "something changed"; :meth:`wake` releases all of them."""

    def __init__(self) -> None:
        self._futs: list[asyncio.Future[bool]] = []

    async def wait(self, timeout: float | None) -> None:
        """Wait until the next :meth:`wake` or ``timeout`` seconds (None: no bound)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._futs.append(fut)
        # a plain timer is cheaper than asyncio.timeout on this, the latency path
        timer = None if timeout is None else loop.call_later(timeout, _release, fut)
        try:
            woken = await fut
        except BaseException:
            woken = False
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not woken:  # timed out or cancelled: still listed
                fut.cancel()
                with contextlib.suppress(ValueError):
                    self._futs.remove(fut)

    def wake(self) -> None:
        futs, self._futs = self._futs, []
        for f in futs:
            if not f.done():
                f.set_result(True)


class _Inbox:
    """What has arrived for one session, keyed by (peer node id, tag), in sequence order.

    As :class:`metisnet.net.endpoint._Inbox`, for one event loop (no locks): bounded by
    ``capacity`` bytes except for the frame a reader waits for next.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.queues: dict[tuple[NodeId, str], dict[int, NDArray[Any]]] = {}
        self.next_seq: dict[tuple[NodeId, str], int] = {}
        self.buffered = 0
        self.error: BaseException | None = None
        self.peer_errors: dict[NodeId, BaseException] = {}
        self.closed = False
        self.changed = _Waiters()

    def put(self, peer: NodeId, tag: str, seq: int, arr: NDArray[Any]) -> bool:
        """Queue ``arr`` unless the inbox is full (False: the link's reader waits).

        A failed or closed session swallows frames; a repeated sequence number is a
        protocol violation by the peer (WireError).
        """
        if self.closed or self.error is not None:
            return True
        key = (peer, tag)
        expected = self.next_seq.get(key, 0)
        q = self.queues.get(key)
        if seq < expected or (q is not None and seq in q):
            raise WireError(f"repeated message {tag!r} (sequence number {seq})")
        n = arr.nbytes
        if seq != expected and self.buffered and self.buffered + n > self.capacity:
            return False
        if q is None:
            q = self.queues[key] = {}
        q[seq] = arr
        self.buffered += n
        self.changed.wake()
        return True

    def take(self, peer: NodeId, tag: str) -> NDArray[Any] | None:
        """The next array from ``peer`` under ``tag``, None if none yet; raises if failed."""
        key = (peer, tag)
        q = self.queues.get(key)
        seq = self.next_seq.get(key, 0)
        if q and seq in q:
            arr = q.pop(seq)
            if not q:
                del self.queues[key]
            self.next_seq[key] = seq + 1
            self.buffered -= arr.nbytes
            self.changed.wake()  # room for a parked frame
            return arr
        if self.error is not None:
            raise _again(self.error)
        if peer in self.peer_errors:
            raise _again(self.peer_errors[peer])
        if self.closed:
            raise NetworkError("channel is closed")
        return None

    def fail(self, exc: BaseException, peer: NodeId | None = None) -> None:
        if peer is None:
            if self.error is None:
                self.error = exc
            self.queues.clear()
            self.buffered = 0
        else:
            self.peer_errors.setdefault(peer, exc)
        self.changed.wake()

    def close(self) -> None:
        self.closed = True
        self.queues.clear()
        self.buffered = 0
        self.changed.wake()


def _again(exc: BaseException) -> BaseException:
    """A fresh exception with the same message; its type is the nearest class of ``exc``
    whose constructor takes just a message."""
    cls: type[BaseException] = type(exc)
    while "__init__" in vars(cls) and cls.__mro__[1] is not Exception:
        cls = cls.__mro__[1]
    return cls(str(exc))


class AsyncTlsChannel(SessionChannelBase):
    """One party's channel in one session over an :class:`AsyncTlsEndpoint`.

    The shape of :class:`metisnet.net.aio.AsyncChannel`: ``party``, ``parties``,
    ``stats`` and coroutines ``send``, ``recv``, ``close``.
    """

    _ep: AsyncTlsEndpoint
    _inbox: _Inbox

    async def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        """Send ``array`` to ``peer`` under ``tag``; returns once it is handed to TLS."""
        node = self._peer(peer)
        err = self._inbox.error or self._inbox.peer_errors.get(node)
        if err is not None:
            raise _again(err)
        seq = self._seq.get((peer, tag), 0)
        head, arr = self._heads.encode(tag, np.asarray(array), seq=seq)
        link = self._ep._links.get(node)
        if link is None or not link.alive:
            link = await self._ep._link_for(node, self._timeout, self._inbox)
        await link.send(head, arr, self._ep.config.send_timeout)
        self._seq[(peer, tag)] = seq + 1
        self._rounds.on_send(arr.nbytes)

    async def recv(self, peer: int, tag: str, timeout: float | None = None) -> NDArray[Any]:
        """What ``peer`` sent under ``tag``; PeerTimeout after ``timeout`` seconds."""
        node = self._peer(peer)
        wait = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        inbox = self._inbox
        while True:
            arr = inbox.take(node, tag)
            if arr is not None:
                self._rounds.on_recv(arr.nbytes)
                return arr
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerTimeout(f"party {self._party}: no message {tag!r} from party {peer} "
                                  f"within {wait:g} s")
            if not self._ep._has_link(node):
                self._ep._want(node, left)  # e.g. re-dial after a drop, for a late sender
            await inbox.changed.wait(left)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._ep._close_session(self._session)
