"""``restart``: a running task whose committee delivered nothing gets a fresh committee.

DESIGN.md §5: a lost peer fails the session cleanly and the task is re-drawn. The receiver
cannot tell on chain which member went silent (its peers stop too), so the whole running
committee is replaced by one disjoint from it, nobody is slashed, and the draw rounds are
bounded by ``max_redraws`` like no-show redraws.
"""

from __future__ import annotations

import pytest

from metisnet.chain import Role, TaskState
from metisnet.errors import TransactionReverted
from metisnet.types import Wei

ETHER = 10**18


def _more_compute_nodes(net, n: int = 3) -> None:
    for i, a in enumerate(net.chain.accounts(n, 13)):
        net.as_(a).registry.register(Role.COMPUTE, bytes([i + 40]) * 32, f"tls://x{i}:1", 8,
                                     Wei(ETHER))
        net.by_address[a.address] = a


def _stakes(net) -> dict[str, int]:
    return {a: int(s) for a, s in net.c.registry.nodes(Role.COMPUTE)}


def test_a_receiver_restarts_a_running_task_with_a_disjoint_committee(net) -> None:
    _more_compute_nodes(net)
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds], fee=ETHER)
    old = net.to_running(tid)
    stakes = _stakes(net)
    new = net.as_(net.requester).tasks.restart(tid)
    assert new is not None and len(new) == 3 and not set(new) & set(old)
    info = net.c.tasks.get_task(tid)
    assert info.state == TaskState.COMMITTEE_DRAWN and info.round == 1
    assert _stakes(net) == stakes  # nobody slashed
    for m in old:  # the old committee cannot come back in
        with pytest.raises(TransactionReverted, match="not a committee member"):
            net.as_(net.by_address[m]).tasks.acknowledge(tid)
    for m in new:
        net.as_(net.by_address[m]).tasks.acknowledge(tid)
    assert net.c.tasks.state(tid) == TaskState.RUNNING
    net.as_(net.requester).tasks.submit_verdict(tid, b"\x01" * 32, True)
    assert all(net.c.tasks.credits(m) > 0 for m in new)
    assert all(net.c.tasks.credits(m) == 0 for m in old)
    assert net.c.tasks.escrow_total() == 0


def test_only_a_receiver_restarts_and_only_a_running_task(net) -> None:
    _more_compute_nodes(net)
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds], fee=ETHER)
    with pytest.raises(TransactionReverted, match="task is not running"):
        net.as_(net.requester).tasks.restart(tid)
    net.to_running(tid)
    with pytest.raises(TransactionReverted, match="not a result receiver"):
        net.as_(net.outsider).tasks.restart(tid)
    member = net.c.tasks.get_task(tid).committee[0]
    with pytest.raises(TransactionReverted, match="not a result receiver"):
        net.as_(net.by_address[member]).tasks.restart(tid)


def test_restarts_are_bounded_and_then_refund(net) -> None:
    _more_compute_nodes(net, 4)
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds], fee=ETHER)
    net.to_running(tid)
    for _ in range(net.params.max_redraws):
        new = net.as_(net.requester).tasks.restart(tid)
        assert new is not None
        for m in new:
            net.as_(net.by_address[m]).tasks.acknowledge(tid)
        assert net.c.tasks.state(tid) == TaskState.RUNNING
    assert net.as_(net.requester).tasks.restart(tid) is None
    assert net.c.tasks.state(tid) == TaskState.FAILED
    assert net.c.tasks.credits(net.requester.address) == ETHER
    assert net.c.tasks.escrow_total() == 0


def test_too_few_compute_nodes_to_restart_fails_with_a_refund(net) -> None:
    ds = net.add_dataset(net.data[0])  # 5 compute nodes: no disjoint committee of 3
    tid = net.create_task([ds], fee=ETHER)
    net.to_running(tid)
    assert net.as_(net.requester).tasks.restart(tid) is None
    assert net.c.tasks.state(tid) == TaskState.FAILED
    assert net.c.tasks.credits(net.requester.address) == ETHER
