"""What the threaded and the asyncio TLS session channels share: who is who, the counters.

:class:`~metisnet.net.endpoint.TlsChannel` (synchronous) and
:class:`~metisnet.net.aio_session.AsyncTlsChannel` (coroutines) differ in how they move
frames, not in how a session names its parties, checks a peer index, counts bytes and
rounds, or numbers the frames it sends; that part lives here once.
"""

from __future__ import annotations

from typing import Any

from metisnet.errors import NetworkError, ValidationError
from metisnet.net.channel import ChannelStats, _RoundCounter
from metisnet.net.wire import HeadEncoder
from metisnet.types import NodeId

__all__ = ["SessionChannelBase"]


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
