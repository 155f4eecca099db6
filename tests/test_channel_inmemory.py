"""The in-memory channel: delivery by tag, copies, counters, timeouts, bad peers."""

from __future__ import annotations

import numpy as np
import pytest

from metisnet.errors import NetworkError, PeerTimeout, ValidationError
from metisnet.net.channel import Channel, InMemoryNetwork


def test_delivery_by_tag_and_copy_semantics() -> None:
    net = InMemoryNetwork(3)
    a, b = net.channel(0), net.channel(1)
    assert isinstance(a, Channel)
    x = np.arange(10, dtype=np.uint64)
    a.send(1, "second", x * 2)
    a.send(1, "first", x)
    x[:] = 0  # the sender's later writes never reach the receiver
    assert np.array_equal(b.recv(0, "first"), np.arange(10, dtype=np.uint64))
    assert np.array_equal(b.recv(0, "second"), np.arange(10, dtype=np.uint64) * 2)


def test_counters_bytes_messages_rounds() -> None:
    net = InMemoryNetwork(3)
    chans = [net.channel(i) for i in range(3)]
    for step in range(4):  # four one-round steps: each sends to the next, receives from prev
        for i, c in enumerate(chans):
            c.send((i + 1) % 3, f"s{step}", np.zeros(5, dtype=np.uint64))
        for i, c in enumerate(chans):
            c.recv((i - 1) % 3, f"s{step}")
    for c in chans:
        assert c.stats.rounds == 4
        assert c.stats.bytes_sent == c.stats.bytes_received == 4 * 5 * 8
        assert c.stats.messages_sent == 4


def test_timeout_and_bad_peer_and_closed() -> None:
    net = InMemoryNetwork(3, timeout=0.05)
    c = net.channel(0)
    with pytest.raises(PeerTimeout, match="no message 'x' from party 1"):
        c.recv(1, "x")
    with pytest.raises(ValidationError):
        c.send(0, "t", np.zeros(1))
    with pytest.raises(ValidationError):
        c.send(3, "t", np.zeros(1))
    c.close()
    with pytest.raises(NetworkError):
        c.send(1, "t", np.zeros(1))
    with pytest.raises(ValidationError):
        InMemoryNetwork(1)
