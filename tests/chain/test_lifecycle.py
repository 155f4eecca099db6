"""The task lifecycle and the staking rules, end to end, on both backends."""

from __future__ import annotations

import dataclasses
import os

import pytest

from metisnet.chain import Role, TaskState, combine_seeds, draw_committee
from metisnet.chain.deploy import Contracts, deploy_contracts
from metisnet.errors import TransactionReverted
from metisnet.types import Wei

ETHER = 10**18


def contract_funds(net) -> int:
    return net.chain.balance(net.c.registry.address) + net.chain.balance(net.c.tasks.address)


def booked_funds(net) -> int:
    return (net.c.registry.total_bonded() + net.c.tasks.escrow_total()
            + net.c.tasks.credit_total())


def test_happy_path_pays_committee_and_owners_once(net) -> None:
    ds = net.add_dataset(net.data[0])
    fee = 3 * ETHER
    tid = net.create_task([ds], fee=fee, receivers=[net.requester.address,
                                                    net.receiver2.address])
    assert net.c.tasks.state(tid) == TaskState.SUBMITTED
    # 4 data nodes <= validator set size 7: every staked data node validates
    assert sorted(net.c.tasks.validators(tid)) == sorted(a.address for a in net.data)
    seeds = net.approve(tid)
    net.reveal_all(tid, seeds)
    nodes = net.c.registry.nodes(Role.COMPUTE)
    committee = net.as_(net.requester).tasks.draw_committee(tid)
    expected = draw_committee(combine_seeds(seeds.values()), tid, nodes, 3)
    assert committee == expected
    assert net.c.tasks.get_task(tid).seed == combine_seeds(seeds.values())
    for m in committee:
        net.as_(net.by_address[m]).tasks.acknowledge(tid)
    assert net.c.tasks.state(tid) == TaskState.RUNNING
    assert booked_funds(net) == contract_funds(net)
    net.as_(net.receiver2).tasks.submit_verdict(tid, b"\x07" * 32, True)
    info = net.c.tasks.get_task(tid)
    assert info.state == TaskState.SETTLED and info.result_commitment == b"\x07" * 32
    per_member = fee * 7000 // 10_000 // 3
    for m in committee:
        assert net.c.tasks.credits(m) == per_member
    owner_share = fee - 3 * per_member
    assert net.c.tasks.credits(net.data[0].address) == owner_share
    assert net.c.tasks.escrow_total() == 0
    assert booked_funds(net) == contract_funds(net)
    with pytest.raises(TransactionReverted, match="task is not running"):
        net.as_(net.requester).tasks.submit_verdict(tid, b"\x07" * 32, True)
    member = net.as_(net.by_address[committee[0]]).tasks
    before = net.chain.balance(committee[0])
    assert member.withdraw() == per_member
    assert net.chain.balance(committee[0]) > before
    with pytest.raises(TransactionReverted, match="nothing to withdraw"):
        member.withdraw()
    assert booked_funds(net) == contract_funds(net)


def test_owner_rejection_refunds(net) -> None:
    ds = net.add_dataset(net.data[1])
    tid = net.create_task([ds], fee=2 * ETHER)
    net.as_(net.data[1]).tasks.vote_dataset(tid, ds, False, os.urandom(32))
    assert net.c.tasks.state(tid) == TaskState.REJECTED
    assert net.c.tasks.credits(net.requester.address) == 2 * ETHER
    assert net.as_(net.requester).tasks.withdraw() == 2 * ETHER


def test_validator_rejection_and_vote_expiry(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds])
    # stakes 2, 3, 4, 5 ether: 2 rejecting leaves approval possible, 2 + 3 (> 14/3) not
    net.as_(net.data[0]).tasks.vote(tid, False, os.urandom(32))
    assert net.c.tasks.state(tid) == TaskState.SUBMITTED
    net.as_(net.data[1]).tasks.vote(tid, False, os.urandom(32))
    assert net.c.tasks.state(tid) == TaskState.REJECTED
    tid2 = net.create_task([ds])
    net.chain.advance_time(net.params.vote_window + 1)
    with pytest.raises(TransactionReverted, match="voting deadline passed"):
        net.as_(net.data[0]).tasks.vote(tid2, True, os.urandom(32))
    net.as_(net.outsider).tasks.expire(tid2)
    assert net.c.tasks.state(tid2) == TaskState.REJECTED
    assert net.c.tasks.credits(net.requester.address) == 6 * ETHER


def test_cheater_named_with_evidence_is_slashed(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds], fee=2 * ETHER)
    committee = net.to_running(tid)
    cheater = committee[1]
    stake_before = net.c.registry.stake_of(cheater)
    others = {a: net.c.registry.stake_of(a) for a in committee if a != cheater}
    receipt = net.as_(net.requester).tasks.submit_verdict(
        tid, b"\x00" * 32, False, cheater=cheater, evidence_hash=b"\xee" * 32
    )
    slashed = net.c.tasks.events(receipt, "MemberSlashed")
    assert slashed == [{"task_id": tid, "member": cheater,
                        "amount": min(ETHER, stake_before), "evidence_hash": b"\xee" * 32}]
    assert net.c.registry.stake_of(cheater) == stake_before - min(ETHER, stake_before)
    assert {a: net.c.registry.stake_of(a) for a in others} == others
    assert net.c.tasks.state(tid) == TaskState.FAILED
    assert net.c.tasks.credits(net.requester.address) == 2 * ETHER + min(ETHER, stake_before)
    assert booked_funds(net) == contract_funds(net)


def test_no_show_is_slashed_and_replaced(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds])
    seeds = net.approve(tid)
    net.reveal_all(tid, seeds)
    committee = net.as_(net.requester).tasks.draw_committee(tid)
    no_show = committee[2]
    for m in committee[:2]:
        net.as_(net.by_address[m]).tasks.acknowledge(tid)
    net.chain.advance_time(net.params.ack_window + 1)
    with pytest.raises(TransactionReverted, match="acknowledgement deadline passed"):
        net.as_(net.by_address[no_show]).tasks.acknowledge(tid)
    stake = net.c.registry.stake_of(no_show)
    nodes_after = [(a, s - net.params.no_show_penalty if a == no_show else s)
                   for a, s in net.c.registry.nodes(Role.COMPUTE)]
    new = net.as_(net.outsider).tasks.redraw(tid)
    assert net.c.registry.stake_of(no_show) == stake - net.params.no_show_penalty
    fresh = draw_committee(combine_seeds(seeds.values()), tid, nodes_after, 1, round=1,
                           exclude=committee)
    assert new == committee[:2] + fresh
    assert no_show not in new
    net.as_(net.by_address[new[2]]).tasks.acknowledge(tid)
    assert net.c.tasks.state(tid) == TaskState.RUNNING
    assert booked_funds(net) == contract_funds(net)


def test_redraws_exhausted_fail_the_task(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds], fee=ETHER)
    net.reveal_all(tid, net.approve(tid))
    committee = net.as_(net.requester).tasks.draw_committee(tid)
    for _ in range(net.params.max_redraws):
        for m in committee[:-1]:  # the last member never shows up
            if not net.c.tasks.has_acknowledged(tid, m):
                net.as_(net.by_address[m]).tasks.acknowledge(tid)
        net.chain.advance_time(net.params.ack_window + 1)
        new = net.as_(net.outsider).tasks.redraw(tid)
        assert new is not None and new[:-1] == committee[:-1] and new[-1] != committee[-1]
        committee = new
    net.chain.advance_time(net.params.ack_window + 1)
    assert net.as_(net.outsider).tasks.redraw(tid) is None
    assert net.c.tasks.state(tid) == TaskState.FAILED
    assert net.c.tasks.credits(net.requester.address) >= ETHER
    assert booked_funds(net) == contract_funds(net)


def test_result_deadline_expiry_refunds(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds], fee=ETHER)
    net.to_running(tid)
    with pytest.raises(TransactionReverted, match="task cannot expire now"):
        net.as_(net.outsider).tasks.expire(tid)
    net.chain.advance_time(net.params.result_window + 1)
    net.as_(net.outsider).tasks.expire(tid)
    assert net.c.tasks.state(tid) == TaskState.FAILED
    assert net.c.tasks.credits(net.requester.address) == ETHER


def test_stake_lifecycle(net) -> None:
    a = net.compute[1]
    reg = net.as_(a).registry
    info = reg.get_node(a.address)
    assert info is not None and info.role == Role.COMPUTE and info.stake == 2 * ETHER
    assert info.endpoint == "tls://c1:1" and info.cert_hash == bytes([10]) * 32
    reg.top_up(Wei(ETHER))
    assert reg.stake_of(a.address) == 3 * ETHER
    reg.unbond(Wei(ETHER))
    assert reg.stake_of(a.address) == 2 * ETHER
    assert reg.total_stake(Role.COMPUTE) == (1 + 2 + 3 + 4 + 5) * ETHER
    net.chain.advance_time(net.params.unbond_delay + 1)
    before = net.chain.balance(a.address)
    reg.withdraw()
    assert net.chain.balance(a.address) > before + ETHER - 10**16
    reg.update_node(b"\x55" * 32, "tls://new:2", 16)
    info = reg.get_node(a.address)
    assert info is not None and (info.cert_hash, info.endpoint, info.capacity) == (
        b"\x55" * 32, "tls://new:2", 16)
    assert reg.get_node(net.outsider.address) is None
    assert booked_funds(net) == contract_funds(net)


def test_dataset_update_and_revoke(net) -> None:
    ds = net.add_dataset(net.data[2])
    owner = net.as_(net.data[2]).datasets
    info = owner.get_dataset(ds)
    assert info is not None and info.owner == net.data[2].address and info.version == 1
    owner.update_dataset(ds, b"\x0a" * 32, 500, b"\x0b" * 32, b"\x0c" * 32)
    info = owner.get_dataset(ds)
    assert info is not None
    assert (info.row_count, info.data_commitment, info.version) == (500, b"\x0b" * 32, 2)
    owner.revoke_dataset(ds)
    assert not owner.is_active(ds)
    with pytest.raises(TransactionReverted, match="dataset revoked"):
        owner.update_dataset(ds, b"\x0a" * 32, 1, b"\x0b" * 32, b"\x0c" * 32)
    assert owner.get_dataset(os.urandom(32)) is None


def test_contract_draw_matches_python(net) -> None:
    reg = net.c.registry
    for _ in range(12):
        r = int.from_bytes(os.urandom(32), "big")
        assert reg.draw(Role.COMPUTE, r) == reg.draw_offchain(Role.COMPUTE, r)
        assert reg.draw(Role.DATA, r) == reg.draw_offchain(Role.DATA, r)


def test_validator_set_is_bounded(net) -> None:
    chain = net.chain
    params = dataclasses.replace(net.params, validator_set_size=2)
    deployment = deploy_contracts(chain, chain.account(0), params)
    c = Contracts.attach(chain, deployment)
    data = chain.accounts(6, 1)
    for i, a in enumerate(data):
        c.using(a).registry.register(Role.DATA, b"\x01" * 32, "tls://d:1", 1,
                                     Wei((i + 1) * ETHER))
    ds = os.urandom(32)
    c.using(data[0]).datasets.register_dataset(ds, b"\x01" * 32, 1, b"\x02" * 32, b"\x03" * 32)
    req = c.using(chain.account(10)).tasks
    tid = req.create_task(os.urandom(32), [ds], [chain.account(10).address], Wei(ETHER))
    validators = c.tasks.validators(tid)
    assert len(validators) == 2 and len(set(validators)) == 2
    total = sum(c.registry.stake_of(v) for v in validators)
    assert c.tasks.get_task(tid).validator_total == total
    outsider = next(a for a in data if a.address not in validators)
    with pytest.raises(TransactionReverted, match="not a validator for this task"):
        c.using(outsider).tasks.vote(tid, True, os.urandom(32))



def test_redraw_without_enough_compute_nodes_fails_the_task(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds], fee=ETHER)
    net.reveal_all(tid, net.approve(tid))
    committee = net.as_(net.requester).tasks.draw_committee(tid)
    net.chain.advance_time(net.params.ack_window + 1)
    # nobody acknowledged: 3 replacements needed, only 2 compute nodes were not drawn
    assert net.as_(net.outsider).tasks.redraw(tid) is None
    assert net.c.tasks.state(tid) == TaskState.FAILED
    penalty = net.params.no_show_penalty
    assert net.c.tasks.credits(net.requester.address) == ETHER + 3 * penalty
    for m in committee:
        assert net.c.registry.get_node(m).stake % ETHER == ETHER - penalty
    assert booked_funds(net) == contract_funds(net)


def test_unexpected_payment_to_task_manager_refused(net) -> None:
    with pytest.raises(Exception, match=r"unexpected payment"):
        net.chain.w3.eth.call({"from": net.outsider.address, "to": net.c.tasks.address,
                               "value": 1})


def test_approved_task_without_committee_expires(net) -> None:
    ds = net.add_dataset(net.data[0])
    req = net.as_(net.requester).tasks
    tid = req.create_task(os.urandom(32), [ds], [net.requester.address], Wei(ETHER),
                          committee_size=6)  # only 5 compute nodes are registered
    seeds = net.approve(tid)
    net.reveal_all(tid, seeds)
    with pytest.raises(TransactionReverted, match="not enough compute nodes"):
        req.draw_committee(tid)
    net.chain.advance_time(net.params.reveal_window + 1)
    with pytest.raises(TransactionReverted, match="task cannot expire now"):
        req.expire(tid)
    net.chain.advance_time(net.params.ack_window)
    req.expire(tid)
    assert net.c.tasks.state(tid) == TaskState.FAILED
    assert net.c.tasks.credits(net.requester.address) == ETHER


def test_task_without_reveals_expires(net) -> None:
    ds = net.add_dataset(net.data[0])
    tid = net.create_task([ds], fee=ETHER)
    net.approve(tid)
    net.chain.advance_time(net.params.reveal_window + 1)
    with pytest.raises(TransactionReverted, match="not enough seed reveals"):
        net.as_(net.requester).tasks.draw_committee(tid)
    net.as_(net.outsider).tasks.expire(tid)
    assert net.c.tasks.state(tid) == TaskState.FAILED


def test_nodes_discover_tasks_by_polling(net) -> None:
    ds = net.add_dataset(net.data[0])
    assert net.c.tasks.tasks_after(0) == []
    t1 = net.create_task([ds])
    t2 = net.create_task([ds])
    found = net.c.tasks.tasks_after(0)
    assert [t.task_id for t in found] == [t1, t2]
    assert [t.task_id for t in net.c.tasks.tasks_after(t1)] == [t2]
    assert net.c.tasks.tasks_after(0, limit=1)[0].datasets == (ds,)
    assert net.c.tasks.is_validator(t1, net.data[0].address)
    assert not net.c.tasks.is_validator(t1, net.compute[0].address)
