"""An asyncio face for any :class:`~metisnet.net.channel.Channel`.

The transports are synchronous by design (the MPC engine calls them from numpy code, and
the TLS endpoint drives its sockets from the waiting thread, see
:mod:`metisnet.net.endpoint`). Code running in an event loop (node services, the REST
API) wraps a channel in :class:`AsyncChannel`: each blocking call runs in a worker thread,
so the loop never blocks on the network.
"""

from __future__ import annotations

import asyncio
from typing import Any

from numpy.typing import NDArray

from metisnet.net.channel import Channel, ChannelStats

__all__ = ["AsyncChannel"]


class AsyncChannel:
    """``await``-able ``send``/``recv`` over a synchronous channel."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    @property
    def party(self) -> int:
        return self.channel.party

    @property
    def parties(self) -> int:
        return self.channel.parties

    @property
    def stats(self) -> ChannelStats:
        return self.channel.stats

    async def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        await asyncio.to_thread(self.channel.send, peer, tag, array)

    async def recv(self, peer: int, tag: str, timeout: float | None = None) -> NDArray[Any]:
        return await asyncio.to_thread(self.channel.recv, peer, tag, timeout)

    async def close(self) -> None:
        await asyncio.to_thread(self.channel.close)
