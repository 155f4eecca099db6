"""The whole task flow in one process: embedded chain, data nodes, committee, requester."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from web3 import Web3

from metisnet.chain.tasks import TaskState
from metisnet.node.agents import ComputeAgent
from metisnet.node.localnet import LocalNetwork
from metisnet.node.policy import Policy
from metisnet.node.programs import get_program
from metisnet.node.taskspec import TaskSpec
from metisnet.types import TaskId


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork(tmp_path_factory.mktemp("localnet"), rows=[400, 300, 500])
    yield network
    network.close()


def _spec(net: LocalNetwork, program: str, security: str = "malicious") -> TaskSpec:
    me = net.requester_account.address
    return TaskSpec.new(program, [(d, ["age"]) for d in net.dataset_ids], [me], 10**16,
                        security=security)


@pytest.mark.parametrize(("program", "security"), [("mean", "malicious"),
                                                   ("variance", "semi-honest")])
def test_task_settles_with_the_plaintext_answer(net: LocalNetwork, program: str,
                                                security: str) -> None:
    before = {a.address: net.contracts.tasks.credits(a.address) for a in net.compute_accounts}
    res = net.requester().run(_spec(net, program, security))
    assert res.verdict == "verified", res.verdict
    assert res.state == TaskState.SETTLED
    union = np.concatenate(list(net.columns.values()))
    prog = get_program(program)
    assert res.values is not None
    assert abs(res.values[0] - prog.plain(union)[0]) <= prog.error_bound(union, 16)
    # the committee was paid; the others were not
    for member in res.committee:
        assert res.payouts[member] > before.get(member, 0)
    paid = {a for a, v in before.items()
            if net.contracts.tasks.credits(a) > v}
    assert paid == set(res.committee)
    # the data nodes' audit logs show the reads
    for agent in net.data:
        actions = [e.action for e in agent.node.store.audit(limit=500)]
        assert "read_columns" in actions


def test_a_refusing_owner_stops_the_task_before_any_share_moves(tmp_path: Path) -> None:
    strict = Policy(allowed_programs=("sum",), allowed_columns=("*",),
                    allowed_requesters=("*",))
    network = LocalNetwork(tmp_path, rows=50, policy=strict, compute_nodes=3)
    try:
        res = network.requester().run(_spec(network, "mean"))
        assert res.state == TaskState.REJECTED and res.verdict == "rejected"
        assert len(res.refusals) == 3
        assert all("program" in r for r in res.refusals.values()), res.refusals
        assert network.sessions._nets == {}  # no session was ever opened
        assert res.payouts[network.requester_account.address] > 0  # refund credited
    finally:
        network.close()


def test_a_silent_member_is_redrawn_and_slashed(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, rows=40, compute_nodes=5)
    first: dict[int, str] = {}

    def refuse_if_first_drawn(agent: ComputeAgent) -> Callable[[int], bool]:
        def accept(task_id: int) -> bool:
            info = network.contracts.tasks.get_task(TaskId(task_id))
            if info.round == 0:
                first.setdefault(task_id, info.committee[0].lower())
            return agent.me != first.get(task_id)
        return accept

    try:
        for agent in network.compute:
            agent.accept = refuse_if_first_drawn(agent)
        res = network.requester(ack_wait=0.5).run(_spec(network, "sum", "semi-honest"))
        assert res.verdict == "verified", res.verdict
        lazy = first[res.task_id]
        assert res.redraws == 1
        assert lazy not in {c.lower() for c in res.committee}
        stake = network.contracts.registry.stake_of(Web3.to_checksum_address(lazy))
        assert stake < 2 * 10**18  # slashed for the no-show
    finally:
        network.close()
