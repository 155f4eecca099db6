"""A metisnet node on the asyncio TLS endpoint in its own OS process (not a test module).

Usage: python aio_peer_node.py KEYSTORE TRUST_JSON PARENT_ID PARENT_PORT ROUNDS
Prints ``PORT <n>``, then echoes ``in<i>`` + 1 back as ``out<i>`` for ROUNDS rounds in
session ``b"proc"``, then waits for ``bye``.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np

from metisnet.net.aio_tls import AsyncTlsEndpoint, EndpointConfig
from metisnet.net.identity import load_node_identity
from metisnet.net.trust import FileTrustStore


async def main(argv: list[str]) -> None:
    keystore, trust_path, parent_id, parent_port, rounds = argv
    ident = load_node_identity(keystore, "pw")
    trust = FileTrustStore(trust_path)
    async with AsyncTlsEndpoint(ident, trust, EndpointConfig(timeout=60)) as ep:
        ep.set_address(parent_id, "127.0.0.1", int(parent_port))  # type: ignore[arg-type]
        print(f"PORT {ep.address[1]}", flush=True)
        chan = ep.session(b"proc", [parent_id, ident.node_id])  # type: ignore[list-item]
        for i in range(int(rounds)):
            x = await chan.recv(0, f"in{i}")
            await chan.send(0, f"out{i}", x + np.ones(1, dtype=x.dtype))
        await chan.recv(0, "bye")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
