"""Attacks on the contracts: each must revert, with a reason a user can act on.

Runs on both backends (the ``net`` fixture is parametrised over embedded and anvil).
"""

from __future__ import annotations

import os

import pytest

from metisnet.chain import Role, TaskState, seed_commitment
from metisnet.errors import TransactionReverted
from metisnet.types import Wei

ETHER = 10**18


def reverts(reason: str) -> pytest.RaisesExc[TransactionReverted]:
    return pytest.raises(TransactionReverted, match=reason)


def test_double_vote_refused(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds])
    v = net.data[1]
    c = seed_commitment(os.urandom(32), v.address)
    net.as_(v).tasks.vote(tid, True, c)
    with reverts("already voted") as exc:
        net.as_(v).tasks.vote(tid, True, c)
    assert exc.value.reason == "already voted"
    owner = net.data[0]
    oc = seed_commitment(os.urandom(32), owner.address)
    net.as_(owner).tasks.vote_dataset(tid, ds, True, oc)
    with reverts("already voted"):
        net.as_(owner).tasks.vote_dataset(tid, ds, True, oc)


def test_vote_by_non_data_node_refused(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds])
    for intruder in (net.compute[0], net.outsider):
        c = seed_commitment(os.urandom(32), intruder.address)
        with reverts("not a data node"):
            net.as_(intruder).tasks.vote(tid, True, c)
        with reverts("not a data node"):
            net.as_(intruder).tasks.vote_dataset(tid, ds, True, c)


def test_owner_vote_on_someone_elses_dataset_refused(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds])
    thief = net.data[1]
    with reverts("not the dataset owner"):
        net.as_(thief).tasks.vote_dataset(tid, ds, True, seed_commitment(os.urandom(32),
                                                                          thief.address))
    other = net.add_dataset(net.data[1])
    with reverts("dataset not named by this task"):
        net.as_(thief).tasks.vote_dataset(tid, other, True, seed_commitment(os.urandom(32),
                                                                           thief.address))


def test_reveal_not_matching_commitment_refused(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds])
    seeds = net.approve(tid)
    voter = next(iter(seeds))
    with reverts("reveal does not match commitment"):
        net.as_(net.by_address[voter]).tasks.reveal(tid, os.urandom(32))
    net.as_(net.by_address[voter]).tasks.reveal(tid, seeds[voter])
    with reverts("seed already revealed"):
        net.as_(net.by_address[voter]).tasks.reveal(tid, seeds[voter])
    with reverts("no seed commitment from this voter"):
        net.as_(net.outsider).tasks.reveal(tid, os.urandom(32))


def test_draw_before_enough_reveals_refused(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds])
    with reverts("task is not approved"):
        net.as_(net.requester).tasks.draw_committee(tid)
    seeds = net.approve(tid)
    with reverts("not enough seed reveals"):
        net.as_(net.requester).tasks.draw_committee(tid)
    voters = list(seeds)
    assert len(voters) >= 3
    net.as_(net.by_address[voters[0]]).tasks.reveal(tid, seeds[voters[0]])
    # before the reveal deadline every committed voter must reveal ...
    with reverts("not enough seed reveals"):
        net.as_(net.requester).tasks.draw_committee(tid)
    # ... after it, more than 2/3 of them
    net.chain.advance_time(net.params.reveal_window + 1)
    revealed = 1
    while revealed * 3 <= len(voters) * 2:
        with reverts("not enough seed reveals"):
            net.as_(net.requester).tasks.draw_committee(tid)
        net.as_(net.by_address[voters[revealed]]).tasks.reveal(tid, seeds[voters[revealed]])
        revealed += 1
    assert revealed < len(voters)
    assert len(net.as_(net.requester).tasks.draw_committee(tid)) == 3


def test_settlement_by_non_receiver_refused(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds])
    committee = net.to_running(tid)
    for intruder in (net.outsider, net.by_address[committee[0]], net.data[0]):
        with reverts("not a result receiver"):
            net.as_(intruder).tasks.submit_verdict(tid, b"\x07" * 32, True)
    assert net.c.tasks.state(tid) == TaskState.RUNNING


def test_slash_without_evidence_refused(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds])
    committee = net.to_running(tid)
    victim = committee[0]
    # nobody but the task manager may slash, not even the registry's admin
    for intruder in (net.admin, net.requester):
        with reverts("only the task manager may slash"):
            net.as_(intruder).registry.slash(victim, Wei(ETHER))
    req = net.as_(net.requester).tasks
    with reverts("slashing needs evidence"):
        req.submit_verdict(tid, b"\x07" * 32, False, cheater=victim)
    with reverts("cheater is not a committee member"):
        req.submit_verdict(tid, b"\x07" * 32, False, cheater=net.outsider.address,
                           evidence_hash=b"\x09" * 32)
    with reverts("a successful verdict cannot name a cheater"):
        req.submit_verdict(tid, b"\x07" * 32, True, cheater=victim, evidence_hash=b"\x09" * 32)
    assert net.c.registry.stake_of(victim) == net.c.registry.get_node(victim).stake > 0


def test_withdraw_during_unbonding_refused(net) -> None:
    node = net.as_(net.compute[2]).registry
    with reverts("nothing to withdraw"):
        node.withdraw()
    node.unbond(Wei(ETHER))
    with reverts("stake is still unbonding"):
        node.withdraw()
    net.chain.advance_time(net.params.unbond_delay // 2)
    with reverts("stake is still unbonding"):
        node.withdraw()
    with reverts("remaining stake below minimum"):
        node.unbond(Wei(ETHER + 1))
    with reverts("amount exceeds stake"):
        node.unbond(Wei(100 * ETHER))


def test_reregistration_under_used_id_refused(net) -> None:
    a = net.data[0]
    with reverts("node id already used"):
        net.as_(a).registry.register(Role.DATA, b"\x01" * 32, "tls://x:1", 1, Wei(ETHER))
    with reverts("node id already used"):
        net.as_(a).registry.register(Role.COMPUTE, b"\x01" * 32, "tls://x:1", 1, Wei(ETHER))
    # a fully unbonded and withdrawn node cannot come back under the same id either
    reg = net.as_(net.compute[0]).registry
    reg.unbond(reg.stake_of(net.compute[0].address))
    net.chain.advance_time(net.params.unbond_delay + 1)
    reg.withdraw()
    with reverts("node id already used"):
        reg.register(Role.COMPUTE, b"\x01" * 32, "tls://x:1", 1, Wei(ETHER))
    ds = net.add_dataset(net.data[0])
    with reverts("dataset id already used"):
        net.as_(net.data[1]).datasets.register_dataset(ds, b"\x01" * 32, 1, b"\x02" * 32,
                                                       b"\x03" * 32)


def test_dataset_changes_by_non_owner_refused(net) -> None:
    ds = net.add_dataset(net.data[0])
    other = net.as_(net.data[1]).datasets
    with reverts("not the dataset owner"):
        other.update_dataset(ds, b"\x01" * 32, 5, b"\x02" * 32, b"\x03" * 32)
    with reverts("not the dataset owner"):
        other.revoke_dataset(ds)
    with reverts("not a data node"):
        net.as_(net.compute[0]).datasets.register_dataset(os.urandom(32), b"\x01" * 32, 1,
                                                          b"\x02" * 32, b"\x03" * 32)


def test_committee_acknowledgement_rules(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds])
    seeds = net.approve(tid)
    net.reveal_all(tid, seeds)
    committee = net.as_(net.requester).tasks.draw_committee(tid)
    outsider = next(a for a in net.compute if a.address not in committee)
    with reverts("not a committee member"):
        net.as_(outsider).tasks.acknowledge(tid)
    member = net.as_(net.by_address[committee[0]]).tasks
    member.acknowledge(tid)
    with reverts("already acknowledged"):
        member.acknowledge(tid)
    with reverts("acknowledgement window still open"):
        net.as_(net.outsider).tasks.redraw(tid)
    with reverts("task is not running"):
        net.as_(net.requester).tasks.submit_verdict(tid, b"\x07" * 32, True)
    with reverts("task cannot expire now"):
        net.as_(net.outsider).tasks.expire(tid)


def test_task_creation_checks(net) -> None:
    ds = net.add_dataset(net.data[0])
    req = net.as_(net.requester).tasks
    with reverts("fee required"):
        req.create_task(os.urandom(32), [ds], [net.requester.address], Wei(0))
    with reverts("dataset named twice"):
        req.create_task(os.urandom(32), [ds, ds], [net.requester.address], Wei(ETHER))
    with reverts("dataset not active"):
        req.create_task(os.urandom(32), [os.urandom(32)], [net.requester.address], Wei(ETHER))
    net.as_(net.data[0]).datasets.revoke_dataset(ds)
    with reverts("dataset not active"):
        req.create_task(os.urandom(32), [ds], [net.requester.address], Wei(ETHER))
    with reverts("nothing to withdraw"):
        req.withdraw()
