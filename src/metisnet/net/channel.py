"""The one Channel interface every transport implements, and the in-memory transport.

A :class:`Channel` belongs to one party of one session. It sends numpy arrays to a named
peer under a step tag and receives the array a peer sent under a tag, blocking up to a
timeout. Every channel counts what crosses it in :class:`ChannelStats`, so protocols and
benchmarks can report bytes and rounds.

Rounds are counted from the party's own view: a new round starts with the first ``send``
after a ``recv`` (or the first ``send`` of all). A protocol step that sends its messages,
then waits for its peers' messages, therefore costs exactly one round.

:class:`InMemoryNetwork` connects ``n`` parties inside one process (tests, single-process
simulation); the TCP/TLS transports live in sibling modules and implement the same
protocol.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from metisnet.errors import NetworkError, PeerTimeout, ValidationError

__all__ = ["DEFAULT_TIMEOUT", "Channel", "ChannelStats", "InMemoryChannel", "InMemoryNetwork"]

#: Seconds a ``recv`` waits when the caller gives no timeout.
DEFAULT_TIMEOUT = 60.0


@dataclass
class ChannelStats:
    """What one party's channel has moved so far."""

    bytes_sent: int = 0
    bytes_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    rounds: int = 0

    def snapshot(self) -> ChannelStats:
        return ChannelStats(self.bytes_sent, self.bytes_received, self.messages_sent,
                            self.messages_received, self.rounds)

    def __sub__(self, other: ChannelStats) -> ChannelStats:
        return ChannelStats(
            self.bytes_sent - other.bytes_sent,
            self.bytes_received - other.bytes_received,
            self.messages_sent - other.messages_sent,
            self.messages_received - other.messages_received,
            self.rounds - other.rounds,
        )


@runtime_checkable
class Channel(Protocol):
    """Send and receive tagged arrays between the parties of one session."""

    @property
    def party(self) -> int:
        """This party's index."""
        ...

    @property
    def parties(self) -> int:
        """How many parties the session has."""
        ...

    @property
    def stats(self) -> ChannelStats:
        """Counters of this party's traffic."""
        ...

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        """Send ``array`` to ``peer`` under ``tag``; does not wait for delivery."""
        ...

    def recv(self, peer: int, tag: str, timeout: float | None = None) -> NDArray[Any]:
        """Receive what ``peer`` sent under ``tag``; raises PeerTimeout after ``timeout``."""
        ...

    def close(self) -> None:
        """Release the channel; later calls raise NetworkError."""
        ...


class _RoundCounter:
    """Counts rounds from one party's view (see the module docstring)."""

    def __init__(self, stats: ChannelStats) -> None:
        self._stats = stats
        self._received_since_send = True

    def on_send(self, nbytes: int) -> None:
        if self._received_since_send:
            self._stats.rounds += 1
            self._received_since_send = False
        self._stats.bytes_sent += nbytes
        self._stats.messages_sent += 1

    def on_recv(self, nbytes: int) -> None:
        self._received_since_send = True
        self._stats.bytes_received += nbytes
        self._stats.messages_received += 1


class InMemoryNetwork:
    """``n`` parties connected by in-process queues; ``channel(i)`` is party i's end."""

    def __init__(self, parties: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if parties < 2:
            raise ValidationError("a network needs at least 2 parties")
        self.parties = parties
        self.timeout = timeout
        self._lock = threading.Lock()
        self._queues: dict[tuple[int, int, str], queue.Queue[NDArray[Any]]] = {}
        self._channels = [InMemoryChannel(self, i) for i in range(parties)]

    def channel(self, party: int) -> InMemoryChannel:
        return self._channels[party]

    def _queue(self, src: int, dst: int, tag: str) -> queue.Queue[NDArray[Any]]:
        key = (src, dst, tag)
        with self._lock:
            q = self._queues.get(key)
            if q is None:
                q = self._queues[key] = queue.Queue()
            return q

    def _drop(self, src: int, dst: int, tag: str) -> None:
        with self._lock:
            q = self._queues.get((src, dst, tag))
            if q is not None and q.empty():
                del self._queues[(src, dst, tag)]


class InMemoryChannel:
    """One party's end of an :class:`InMemoryNetwork`. Arrays are copied, as on a wire."""

    def __init__(self, network: InMemoryNetwork, party: int) -> None:
        self._net = network
        self._party = party
        self._stats = ChannelStats()
        self._rounds = _RoundCounter(self._stats)
        self._closed = False

    @property
    def party(self) -> int:
        return self._party

    @property
    def parties(self) -> int:
        return self._net.parties

    @property
    def stats(self) -> ChannelStats:
        return self._stats

    def _check_peer(self, peer: int) -> None:
        if self._closed:
            raise NetworkError("channel is closed")
        if not 0 <= peer < self._net.parties or peer == self._party:
            raise ValidationError(f"invalid peer index {peer} for party {self._party}")

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        self._check_peer(peer)
        data = np.array(array, copy=True, order="C")
        self._rounds.on_send(data.nbytes)
        self._net._queue(self._party, peer, tag).put(data)

    def recv(self, peer: int, tag: str, timeout: float | None = None) -> NDArray[Any]:
        self._check_peer(peer)
        wait = self._net.timeout if timeout is None else timeout
        q = self._net._queue(peer, self._party, tag)
        try:
            data = q.get(timeout=wait)
        except queue.Empty:
            raise PeerTimeout(
                f"party {self._party}: no message {tag!r} from party {peer} within {wait:g} s"
            ) from None
        self._net._drop(peer, self._party, tag)
        self._rounds.on_recv(data.nbytes)
        return data

    def close(self) -> None:
        self._closed = True
