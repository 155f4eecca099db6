"""The fault proxy between two real TLS endpoints: forwards, delays, cuts, corrupts.

A corrupted byte must never become a wrong array: TLS's record tag catches it and the
session fails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from metisnet.errors import ConfigError, MetisError, NetworkError, PeerTimeout
from metisnet.net.endpoint import Endpoint, EndpointConfig
from metisnet.net.identity import NodeIdentity, new_node_identity
from metisnet.net.trust import MemoryTrustStore
from metisnet.node.faultproxy import Fault, FaultFabric


@pytest.fixture(scope="module")
def idents() -> list[NodeIdentity]:
    return [new_node_identity() for _ in range(2)]


@pytest.fixture
def net(idents: list[NodeIdentity]) -> Iterator[tuple[list[Endpoint], FaultFabric]]:
    """Two endpoints that reach each other only through their proxies."""
    trust = MemoryTrustStore({i.node_id: i.cert_hash for i in idents})
    cfg = EndpointConfig(backoff_initial=0.02, backoff_max=0.2, dial_grace=0.1,
                         connect_timeout=2.0)
    eps = [Endpoint(i, trust, cfg).start() for i in idents]
    fabric = FaultFabric(seed=7)
    for e in eps:
        proxy = fabric.add(str(e.node_id), e.address, ("127.0.0.1", 0))
        for f in eps:
            f.set_address(e.node_id, *proxy.address)
    yield eps, fabric
    fabric.close()
    for e in eps:
        e.close()


def _pair(eps: list[Endpoint], sid: bytes) -> tuple[object, object]:
    ids = [e.node_id for e in eps]
    return eps[0].session(sid, ids), eps[1].session(sid, ids)


def test_traffic_goes_through_the_proxy_unchanged(net) -> None:
    eps, fabric = net
    a, b = _pair(eps, b"clean")
    x = np.arange(50_000, dtype=np.uint64)
    a.send(1, "x", x)
    assert np.array_equal(b.recv(0, "x", timeout=10), x)
    b.send(0, "y", x[::-1].copy())
    assert np.array_equal(a.recv(1, "y", timeout=10), x[::-1])
    assert fabric._conns and all(c.carried > x.nbytes for c in fabric._conns)
    assert fabric.fired == 0


def test_a_delay_slows_the_victim_but_delivers_everything(net) -> None:
    eps, fabric = net
    fabric.arm(Fault("delay", str(eps[1].node_id), delay_s=0.05))
    a, b = _pair(eps, b"slow")
    for k in range(3):
        a.send(1, f"x{k}", np.full(4, k, dtype=np.uint64))
        assert b.recv(0, f"x{k}", timeout=10)[0] == k
    assert fabric.fired == 1 and fabric.delayed >= 1


def test_a_flipped_bit_fails_the_session_and_never_yields_a_wrong_array(net) -> None:
    eps, fabric = net
    a, b = _pair(eps, b"warm")
    a.send(1, "w", np.ones(2048, dtype=np.uint64))  # the link is up, past its handshake
    b.recv(0, "w", timeout=10)
    fabric.arm(Fault("corrupt", str(eps[1].node_id), after_bytes=4096))
    a2, b2 = _pair(eps, b"hit")
    x = np.arange(100_000, dtype=np.uint64)
    a2.send(1, "x", x)
    with pytest.raises(MetisError):
        got = b2.recv(0, "x", timeout=5)
        assert not np.array_equal(got, x), "a corrupted array was delivered"
        pytest.fail("a flipped bit went through unnoticed")  # pragma: no cover
    assert fabric.fired == 1 and any("flipped a bit" in e for e in fabric.events)


def test_a_cut_fails_the_session_and_the_link_comes_back_after_the_partition(net) -> None:
    eps, fabric = net
    a, b = _pair(eps, b"before")
    a.send(1, "x", np.ones(4))
    b.recv(0, "x", timeout=10)
    fabric.arm(Fault("drop", str(eps[0].node_id), partition_s=0.6))
    with pytest.raises(NetworkError) as info:
        b.recv(0, "never", timeout=5)
    assert not isinstance(info.value, PeerTimeout)  # the cut, not a silence
    assert fabric.fired == 1
    time.sleep(0.7)
    a2, b2 = _pair(eps, b"after")
    a2.send(1, "x", np.full(3, 9))
    assert b2.recv(0, "x", timeout=10)[0] == 9


def test_faults_are_validated() -> None:
    with pytest.raises(ConfigError):
        Fault("meteor", "0xabc")
    with pytest.raises(ConfigError):
        Fault("delay", "0xabc", delay_s=-1)
