"""What the threaded and the asyncio TLS endpoints share: sessions and their channels.

:class:`~metisnet.net.endpoint.TlsChannel` (synchronous) and
:class:`~metisnet.net.aio_session.AsyncTlsChannel` (coroutines) differ in how they move
frames, not in how a session names its parties, checks a peer index, counts bytes and
rounds, or numbers the frames it sends; that part lives here once
(:class:`SessionChannelBase`). So does each endpoint's table of sessions: joined, opened
early by a peer, or closed (:class:`SessionTable`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from metisnet.errors import NetworkError, ValidationError, WireError
from metisnet.net.channel import ChannelStats, _RoundCounter
from metisnet.net.wire import HeadEncoder
from metisnet.types import NodeId

__all__ = ["CLOSED_MEMORY", "SessionChannelBase", "SessionTable"]

#: Closed session ids an endpoint remembers (late frames for them are dropped).
CLOSED_MEMORY: Final = 4096

_I = TypeVar("_I")


class SessionTable(Generic[_I]):
    """An endpoint's sessions: each one's inbox and members, the ids peers opened before
    this node joined (at most ``pending_limit``), and the ids recently closed.

    Both endpoints keep theirs in one of these; the threaded one calls it under its lock,
    the asyncio one from its loop. ``inboxes`` and ``members`` may be read directly on a
    fast path.
    """

    def __init__(self, make_inbox: Callable[[], _I], pending_limit: int) -> None:
        self._make = make_inbox
        self._limit = pending_limit
        self.inboxes: dict[bytes, _I] = {}
        self.members: dict[bytes, tuple[NodeId, ...]] = {}
        self._pending: set[bytes] = set()
        self._closed_ids: deque[bytes] = deque(maxlen=CLOSED_MEMORY)
        self._closed: set[bytes] = set()

    def join(self, session_id: bytes, members: tuple[NodeId, ...]) -> _I:
        """This node joins ``session_id``: its inbox (made now, or by early frames)."""
        if session_id in self.members or session_id in self._closed:
            raise ValidationError("session id already used on this endpoint")
        inbox = self.inboxes.get(session_id)
        if inbox is None:
            inbox = self.inboxes[session_id] = self._make()
        self._pending.discard(session_id)
        self.members[session_id] = members
        return inbox

    def close(self, session_id: bytes) -> _I | None:
        """Forget ``session_id`` (remembered as closed); its inbox, if it had one."""
        inbox = self.inboxes.pop(session_id, None)
        self.members.pop(session_id, None)
        self._pending.discard(session_id)
        if len(self._closed_ids) == self._closed_ids.maxlen:
            self._closed.discard(self._closed_ids[0])
        self._closed_ids.append(session_id)
        self._closed.add(session_id)
        return inbox

    def route(self, session_id: bytes, peer: NodeId) -> _I | None:
        """The inbox a frame from ``peer`` goes to, or None to drop it (a closed session).
        A session not yet joined gets an inbox now, up to the pending limit; a frame from
        a node that is not a member raises :class:`WireError`."""
        if session_id in self._closed:
            return None
        inbox = self.inboxes.get(session_id)
        if inbox is None:
            if len(self._pending) >= self._limit:
                raise WireError(f"peer opened more than {self._limit} sessions this node "
                                "has not joined")
            inbox = self.inboxes[session_id] = self._make()
            self._pending.add(session_id)
        members = self.members.get(session_id)
        if members is not None and peer not in members:
            raise WireError(f"{peer} sent to a session it is not a member of")
        return inbox

    def of_peer(self, peer: NodeId) -> list[_I]:
        """The inboxes of the joined sessions ``peer`` is a member of."""
        return [self.inboxes[s] for s, m in self.members.items()
                if peer in m and s in self.inboxes]


class SessionChannelBase:
    """One party's view of one session: its peers by index, stats, header encoder."""

    def __init__(self, endpoint: Any, session: bytes, peers: tuple[NodeId, ...],
                 party: int, inbox: Any, timeout: float) -> None:
        self._ep = endpoint
        self._session = session
        self._peers = peers
        self._party = party
        self._inbox = inbox
        self._timeout = timeout
        self._stats = ChannelStats()
        self._rounds = _RoundCounter(self._stats)
        self._closed = False
        self._heads = HeadEncoder(session, endpoint.config.limits())
        self._seq: dict[tuple[int, str], int] = {}

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
