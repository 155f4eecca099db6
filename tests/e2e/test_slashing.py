"""Issue 12: a caught cheater is slashed with evidence anyone can check; nobody else ever is.

On the in-process network (embedded chain, real MPC in malicious mode, claims signed with
the members' node keys): the members of an aborted session report to the requester, who
judges their signed claims. Every stake is read from the chain before and after.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eth_hash.auto import keccak

from metisnet.chain.deploy import ChainParams
from metisnet.chain.registry import Role
from metisnet.mpc.evidence import Evidence, proven_suspects, slashable
from metisnet.node.chaos import claim_cheater, run_chaos
from metisnet.node.claims import claim_checker
from metisnet.node.localnet import LocalNetwork
from metisnet.node.programs import get_program
from metisnet.node.taskspec import TaskSpec


def _stakes(net: LocalNetwork) -> dict[str, int]:
    reg = net.contracts.registry
    return {str(a).lower(): int(s) for role in (Role.COMPUTE, Role.DATA)
            for a, s in reg.nodes(role)}


@pytest.fixture
def net(tmp_path: Path) -> LocalNetwork:
    n = LocalNetwork(tmp_path / "net", rows=40, compute_nodes=6)
    n.sessions.timeout = 2.0
    yield n
    n.close()


def _run_with_cheat(net: LocalNetwork, items: tuple[str, ...], pos: int):  # type: ignore[no-untyped-def]
    faulty: set[str] = set()
    fired: list[int] = []
    spec = TaskSpec.new("mean", [(d, ["age"]) for d in net.dataset_ids],
                        [net.requester_account.address], 10**16, security="malicious")
    before = _stakes(net)
    credit = net.contracts.tasks.credits(net.requester_account.address)
    undo = claim_cheater(net, pos, items, faulty, lambda: fired.append(1))
    req = net.requester(ack_wait=0.2, timeout=30.0)
    try:
        result = req.run(spec)
    finally:
        undo()
    assert fired == [1] and len(faulty) == 1
    return req, result, before, _stakes(net), faulty.pop(), credit, spec


def test_an_equivocating_member_is_slashed_with_evidence_whose_hash_matches(
        net: LocalNetwork) -> None:
    req, result, before, after, cheater, credit, spec = _run_with_cheat(
        net, ("dealt:key/all",), pos=1)
    assert result.state.name == "FAILED", result.verdict
    # on chain: the verdict's MemberSlashed event names the cheater with the evidence hash
    receipt = req.contracts.tasks.last_receipt
    assert receipt is not None
    events = net.contracts.tasks.events(receipt, "MemberSlashed")
    assert [e["member"].lower() for e in events] == [cheater]
    logged = bytes(events[0]["evidence_hash"])
    assert logged == keccak(result.evidence) == result.evidence_hash
    assert req.evidence[logged] == result.evidence  # the bytes stay retrievable
    # anyone can check the evidence against the committee's registered addresses
    ev = Evidence.from_bytes(result.evidence)
    committee = [c.lower() for c in result.committee]
    check = claim_checker(committee)
    assert ev.kind == "equivocation"
    assert slashable(ev, check) == committee.index(cheater) == 1
    assert {c.party for c in ev.claims} == {1} and len({c.digest for c in ev.claims}) == 2
    assert all(check(c.party, c.message(), c.signature) for c in ev.claims)
    # a tampered record proves nothing
    forged = Evidence(ev.kind, ev.session, ev.step, ev.reporter, ev.suspects,
                      (ev.claims[0],), ev.note)
    assert slashable(forged, check) is None
    # stakes from the chain: the cheater lost the penalty, nobody else lost anything
    assert before[cheater] - after[cheater] == ChainParams().cheat_penalty
    assert {n: s for n, s in after.items() if n != cheater} == \
        {n: s for n, s in before.items() if n != cheater}
    # the requester was refunded
    assert net.contracts.tasks.credits(net.requester_account.address) - credit >= spec.fee_wei


def test_a_disagreement_only_cheat_slashes_nobody_and_the_task_completes(
        net: LocalNetwork) -> None:
    req, result, before, after, _, _, _ = _run_with_cheat(net, ("share:key/",), pos=0)
    assert result.state.name == "SETTLED" and result.verified, result.verdict
    assert result.restarts == 1 and not result.slashed and not req.evidence
    assert len(result.judgements) == 1 and "nobody slashed" in result.judgements[0]
    assert after == before  # read from the chain: not even the cheater (a pair at most)
    union = np.concatenate(list(net.columns.values()))
    prog = get_program("mean")
    assert result.values is not None
    assert abs(float(result.values[0]) - float(prog.plain(union)[0])) <= \
        prog.error_bound(union, 16)


def test_no_honest_node_is_slashed_across_a_random_sample(tmp_path: Path) -> None:
    """Five scenarios drawn at random (any kind, cheats included), beside the every-kind
    sample of tests/e2e/test_chaos.py."""
    totals = run_chaos(tmp_path, 5, seed=4242, timeout=2.0)
    for r in totals.scenarios:
        assert r.honest_slashed == 0 and r.as_expected, (r.kind, r.outcome, r.problems)
    assert totals.totals()["honest_slashed"] == 0


def test_pooled_honest_reports_alone_prove_the_equivocation() -> None:
    """The record of one member's two signed digests proves it; a pair never does."""
    from eth_account import Account

    from metisnet.mpc.evidence import Claim
    from metisnet.node.claims import NodeSigner

    accts = [Account.create() for _ in range(3)]
    committee = [a.address for a in accts]
    signers = [NodeSigner(bytes(a.key), committee) for a in accts]
    lie = Claim("t1r0", "s", "dealt:key/all", 2, b"\1" * 32).signed(signers[2])
    truth = Claim("t1r0", "s", "dealt:key/all", 2, b"\2" * 32).signed(signers[2])
    pair = Evidence("x", "t1r0", "s", 0, (), (lie, truth))
    check = claim_checker(committee)
    assert proven_suspects(pair, check) == (2,)
    other = Claim("t1r0", "s", "share:key/k2", 1, b"\3" * 32).signed(signers[1])
    assert slashable(Evidence("x", "t1r0", "s", 0, (), (lie, other)), check) is None
