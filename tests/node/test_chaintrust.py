"""ChainTrust: pins and endpoints from the registry, cached; an overlay for spec receivers."""

from __future__ import annotations

import threading
import time

from metisnet.chain.registry import NodeInfo, Role
from metisnet.errors import ChainError
from metisnet.node.chaintrust import ChainTrust
from metisnet.node.taskspec import TaskSpec
from metisnet.types import NodeId, Wei

NODE = NodeId("0x" + "Ab" * 20)
RECV = "0x" + "12" * 20
DS = "0x" + "cd" * 32


class FakeRegistry:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.calls = 0
        self.fail = False

    def add(self, node: str, cert: bytes, endpoint: str, stake: int = 10) -> None:
        self.nodes[node.lower()] = NodeInfo(NodeId(node), Role.COMPUTE, cert, endpoint, 1,
                                            Wei(stake), Wei(0), 0, 1)

    def get_node(self, node: str) -> NodeInfo | None:
        self.calls += 1
        if self.fail:
            raise ChainError("node down")
        return self.nodes.get(node.lower())


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _trust(reg: FakeRegistry, clock: Clock | None = None, **kw: float) -> ChainTrust:
    return ChainTrust(reg, clock=clock or Clock(), **kw)  # type: ignore[arg-type]


def test_registered_nodes_are_pinned_and_cached() -> None:
    reg, clock = FakeRegistry(), Clock()
    reg.add(NODE, b"\x07" * 32, "127.0.0.1:7001")
    trust = _trust(reg, clock, ttl=30, receiver_wait=0)
    assert trust.pinned_hash(NODE) == b"\x07" * 32
    assert trust.address(NODE) == ("127.0.0.1", 7001)
    assert reg.calls == 1
    reg.add(NODE, b"\x08" * 32, "127.0.0.1:7002")  # re-registered: seen after the ttl
    assert trust.pinned_hash(NODE) == b"\x07" * 32
    clock.t = 31
    assert trust.pinned_hash(NODE) == b"\x08" * 32
    reg.fail = True  # a chain outage keeps the last answer
    clock.t = 62
    assert trust.pinned_hash(NODE) == b"\x08" * 32


def test_unknown_unstaked_or_unpinned_nodes_are_not_trusted() -> None:
    reg = FakeRegistry()
    reg.add(NODE, b"\x07" * 32, "127.0.0.1:7001", stake=0)
    reg.add(RECV, b"\x00" * 32, "127.0.0.1:7003")
    trust = _trust(reg, receiver_wait=0)
    assert trust.pinned_hash(NODE) is None
    assert trust.pinned_hash(NodeId(RECV)) is None
    assert trust.address(NodeId("0x" + "34" * 20)) is None


def _spec(cert: str = "ee" * 32) -> TaskSpec:
    return TaskSpec.new("mean", [(DS, ["age"])], [RECV], 1000, receiver_tls=[
        {"address": RECV, "cert_sha256": cert, "endpoint": "127.0.0.1:9001"}])


def test_receivers_from_a_verified_spec_are_pinned() -> None:
    trust = _trust(FakeRegistry(), receiver_wait=0)
    assert trust.pinned_hash(NodeId(RECV)) is None
    trust.pin_receivers(_spec())
    assert trust.pinned_hash(NodeId(RECV)) == b"\xee" * 32
    assert trust.address(NodeId(RECV)) == ("127.0.0.1", 9001)


def test_registration_wins_over_the_overlay() -> None:
    reg = FakeRegistry()
    reg.add(RECV, b"\x07" * 32, "127.0.0.1:7001")
    trust = _trust(reg, receiver_wait=0)
    trust.pin_receivers(_spec())
    assert trust.pinned_hash(NodeId(RECV)) == b"\x07" * 32


def test_a_lookup_waits_briefly_for_a_receiver_pin() -> None:
    trust = ChainTrust(FakeRegistry(), receiver_wait=5.0)  # type: ignore[arg-type]
    got: list[bytes | None] = []
    t = threading.Thread(target=lambda: got.append(trust.pinned_hash(NodeId(RECV))))
    t.start()
    time.sleep(0.1)
    trust.pin_receivers(_spec())
    t.join(5)
    assert got == [b"\xee" * 32]
    short = ChainTrust(FakeRegistry(), receiver_wait=0.05)  # type: ignore[arg-type]
    t0 = time.monotonic()
    assert short.pinned_hash(NodeId(RECV)) is None
    assert time.monotonic() - t0 < 2


def test_waiting_lookups_are_bounded() -> None:
    trust = ChainTrust(FakeRegistry(), receiver_wait=5.0, max_waiters=0)  # type: ignore[arg-type]
    t0 = time.monotonic()
    assert trust.pinned_hash(NodeId(RECV)) is None
    assert time.monotonic() - t0 < 3  # not the 5 s wait


def test_revalidate_drops_unpinned_peers_without_waiting() -> None:
    reg = FakeRegistry()
    reg.add(NODE, b"\x07" * 32, "127.0.0.1:7001")
    trust = ChainTrust(reg, receiver_wait=5.0, ttl=0)  # type: ignore[arg-type]

    class FakeEndpoint:
        def revalidate(self) -> list[NodeId]:
            peers = {NODE: b"\x07" * 32, NodeId(RECV): b"\xee" * 32}
            return [p for p, cert in peers.items() if trust.pinned_hash(p) != cert]

    t0 = time.monotonic()
    assert trust.revalidate(FakeEndpoint()) == [NodeId(RECV)]  # type: ignore[arg-type]
    assert time.monotonic() - t0 < 3  # not the 5 s wait
    reg.add(NODE, b"\x08" * 32, "127.0.0.1:7001")  # re-registered with another cert
    trust.pin_receivers(_spec())
    assert trust.revalidate(FakeEndpoint()) == [NODE]  # type: ignore[arg-type]
