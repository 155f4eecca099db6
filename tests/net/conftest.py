"""Fixtures for the network tests: identities, trust stores and started endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from metisnet.net.endpoint import Endpoint, EndpointConfig
from metisnet.net.identity import NodeIdentity, new_node_identity
from metisnet.net.trust import MemoryTrustStore


@pytest.fixture(scope="session")
def identities() -> list[NodeIdentity]:
    """Five node identities, reused across tests (key generation is the slow part)."""
    return [new_node_identity() for _ in range(5)]


@pytest.fixture
def make_endpoints(
    identities: list[NodeIdentity],
) -> Iterator[Callable[..., tuple[list[Endpoint], MemoryTrustStore]]]:
    """Start ``n`` endpoints that pin each other and know each other's addresses."""
    started: list[Endpoint] = []

    def make(n: int = 3, **cfg: float) -> tuple[list[Endpoint], MemoryTrustStore]:
        trust = MemoryTrustStore({i.node_id: i.cert_hash for i in identities[:n]})
        config = EndpointConfig(**cfg)  # type: ignore[arg-type]
        eps = [Endpoint(i, trust, config).start() for i in identities[:n]]
        for e in eps:
            started.append(e)
            for f in eps:
                e.set_address(f.node_id, *f.address)
        return eps, trust

    yield make
    for e in started:
        e.close()
