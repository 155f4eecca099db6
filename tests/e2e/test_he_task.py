"""The outsourcing path as a task: one drawn compute node aggregates Paillier ciphertexts.

Keys are 512-bit (tests only; MIN_KEY_BITS): the cryptography is the same at 2048 bits,
only slower (see tests/verify for the soundness tests, benchmarks/he.py for the costs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import msgpack
import numpy as np
import pytest
from eth_hash.auto import keccak
from gmpy2 import mpz
from web3 import Web3

from metisnet.chain.tasks import TaskState
from metisnet.errors import ValidationError
from metisnet.he.paillier import PaillierKeypair, PaillierPublicKey, generate_keypair
from metisnet.node.agents import ComputeAgent
from metisnet.node.localnet import STAKE, LocalNetwork
from metisnet.node.outsource_task import (
    OutsourceVerifier,
    check_dispute,
    he_error_bound,
    he_params,
)
from metisnet.node.taskspec import TaskSpec
from metisnet.types import TaskId
from metisnet.verify import evaluate
from metisnet.verify.programs import LinearProgram


@pytest.fixture(scope="module")
def keypair() -> PaillierKeypair:
    return generate_keypair(512)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork(tmp_path_factory.mktemp("he-localnet"), rows=[120, 90, 150],
                           compute_nodes=4)
    yield network
    network.close()


def _spec(net: LocalNetwork, program: str, kp: PaillierKeypair) -> TaskSpec:
    me = net.requester_account.address
    return TaskSpec.new(program, [(d, ["age"]) for d in net.dataset_ids], [me], 10**16,
                        mode="he", committee_size=1, params=he_params(kp.public_key))


def _stakes(net: LocalNetwork) -> dict[str, int]:
    nodes = [a.address for a in net.compute_accounts] + [d.address for d in net.data]
    return {a.lower(): int(net.contracts.registry.stake_of(Web3.to_checksum_address(a)))
            for a in nodes}


def _honest_evaluators(net: LocalNetwork) -> None:
    for agent in net.compute:
        agent.he_evaluate = None


@pytest.mark.parametrize("program", ["mean", "sum", "variance", "count"])
def test_an_honest_he_task_settles_with_the_plaintext_answer(
        net: LocalNetwork, keypair: PaillierKeypair, program: str) -> None:
    _honest_evaluators(net)
    stakes = _stakes(net)
    before = {a.address: net.contracts.tasks.credits(a.address) for a in net.compute_accounts}
    res = net.requester(he=OutsourceVerifier(keypair)).run(_spec(net, program, keypair))
    assert res.verdict == "verified", res.verdict
    assert res.state == TaskState.SETTLED
    assert len(res.committee) == 1  # one drawn compute node
    union = np.concatenate(list(net.columns.values()))
    expected = {"mean": union.mean(), "sum": union.sum(), "variance": union.var(),
                "count": float(union.size)}[program]
    assert res.values is not None
    assert abs(res.values[0] - expected) <= he_error_bound(program, union), res.values
    (worker,) = res.committee
    assert res.payouts[worker] > before[worker]  # the compute node was paid
    assert {a for a, v in before.items() if net.contracts.tasks.credits(a) > v} == {worker}
    assert _stakes(net) == stakes  # nobody slashed
    for agent in net.data:  # the data nodes read their columns for it
        assert "read_columns" in [e.action for e in agent.node.store.audit(limit=500)]


def test_a_task_under_a_2048_bit_key(net: LocalNetwork) -> None:
    _honest_evaluators(net)
    kp = generate_keypair(2048)
    res = net.requester(he=OutsourceVerifier(kp)).run(_spec(net, "mean", kp))
    assert res.verdict == "verified", res.verdict
    union = np.concatenate(list(net.columns.values()))
    assert res.values is not None
    assert abs(res.values[0] - union.mean()) <= he_error_bound("mean", union)


def test_a_silent_compute_node_is_redrawn_and_the_task_prepared_again(
        net: LocalNetwork, keypair: PaillierKeypair) -> None:
    _honest_evaluators(net)
    first: dict[int, str] = {}

    def refuse_if_first(agent: ComputeAgent) -> Callable[[int], bool]:
        def accept(task_id: int) -> bool:
            info = net.contracts.tasks.get_task(TaskId(task_id))
            if info.round == 0:
                first.setdefault(task_id, info.committee[0].lower())
            return agent.me != first.get(task_id)
        return accept

    try:
        for agent in net.compute:
            agent.accept = refuse_if_first(agent)
        res = net.requester(he=OutsourceVerifier(keypair), ack_wait=0.5).run(
            _spec(net, "mean", keypair))
    finally:
        for agent in net.compute:
            agent.accept = lambda task_id: True
    assert res.verdict == "verified", res.verdict
    assert res.redraws == 1 and first[res.task_id] not in {c.lower() for c in res.committee}
    union = np.concatenate(list(net.columns.values()))
    assert res.values is not None
    assert abs(res.values[0] - union.mean()) <= he_error_bound("mean", union)


def _altered(program: LinearProgram, batches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Adds 1 to the first output (a result the node could compute for any value)."""
    result = evaluate(program, batches)
    key = PaillierPublicKey.from_dict(batches[0]["key"])
    out = result["outputs"][0]
    c = key.raw_add_plain(key.check_ciphertext(mpz.from_bytes(out["values"][0], "big")), 1)
    out["values"][0] = bytes(c.to_bytes(key.nsquare_bytes, "big"))
    return result


def _dropped(program: LinearProgram, batches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Leaves out one owner's last row (less work, a result that looks plausible)."""
    first = dict(batches[0])
    first["values"], first["tags"] = first["values"][:-1], first["tags"][:-1]
    first["rows"] = int(first["rows"]) - 1
    return evaluate(program, [first, *batches[1:]])


def _skipped_owner(program: LinearProgram,
                   batches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregates all owners but the last."""
    return evaluate(program, batches[:-1])


_STASH: list[dict[str, Any]] = []


def _replayed(program: LinearProgram, batches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Returns the result of an earlier task (recorded by a first, honest run)."""
    if not _STASH:
        _STASH.append(evaluate(program, batches))
        return _STASH[0]
    return _STASH[0]


@pytest.mark.parametrize(("cheat", "reason"), [
    (_altered, "MAC check failed"),
    (_dropped, "inputs differ from the committed ones"),
    (_skipped_owner, "result does not cover exactly the committed owners"),
    (_replayed, "result names another task"),
])
def test_a_cheating_compute_node_is_caught_and_slashed(
        net: LocalNetwork, keypair: PaillierKeypair, cheat: Any, reason: str) -> None:
    if cheat is _replayed:  # an honest first task whose result the node keeps
        _STASH.clear()
        for agent in net.compute:
            agent.he_evaluate = _replayed
        first = net.requester(he=OutsourceVerifier(keypair)).run(_spec(net, "sum", keypair))
        assert first.verdict == "verified", first.verdict
    for agent in net.compute:
        agent.he_evaluate = cheat
    stakes = _stakes(net)
    me = net.requester_account.address
    credit_before = net.contracts.tasks.credits(me)
    requester = net.requester(he=OutsourceVerifier(keypair))
    res = requester.run(_spec(net, "sum", keypair))
    _honest_evaluators(net)
    assert res.verdict.startswith("failed verification"), res.verdict
    assert reason in res.verdict
    assert res.state == TaskState.FAILED
    (cheater,) = (c.lower() for c in res.committee)
    after = _stakes(net)
    assert after[cheater] < stakes[cheater] <= STAKE
    # the fee is refunded, and the slashed stake goes to the requester
    slashed = stakes[cheater] - after[cheater]
    assert net.contracts.tasks.credits(me) - credit_before == 10**16 + slashed
    assert {a: s for a, s in after.items() if a != cheater} == \
        {a: s for a, s in stakes.items() if a != cheater}
    # the evidence is on chain by hash and checkable by anyone from public data
    (posted,) = requester.contracts.tasks.events(requester.contracts.tasks.last_receipt,
                                                 "VerdictPosted")
    assert posted["cheater"].lower() == cheater and not posted["success"]
    assert bytes(posted["evidence_hash"]) == keccak(res.evidence)
    owners = [d.me for d in net.data]
    assert check_dispute(res.evidence, keypair.public_key, cheater, owners)
    # ... and names nobody else
    assert not check_dispute(res.evidence, keypair.public_key, owners[0], owners)


def test_a_dispute_does_not_survive_tampering(net: LocalNetwork,
                                              keypair: PaillierKeypair) -> None:
    for agent in net.compute:
        agent.he_evaluate = _altered
    try:
        res = net.requester(he=OutsourceVerifier(keypair)).run(_spec(net, "mean", keypair))
    finally:
        _honest_evaluators(net)
    assert res.state == TaskState.FAILED
    owners = [d.me for d in net.data]
    (cheater,) = (c.lower() for c in res.committee)
    d = msgpack.unpackb(res.evidence, raw=False)
    # replace the signed result by another one: the signature no longer matches
    forged = dict(d, result=msgpack.packb({"v": 1}, use_bin_type=True))
    assert not check_dispute(msgpack.packb(forged, use_bin_type=True), keypair.public_key,
                             cheater, owners)
    # drop the commitments: the owners' signed data is missing
    forged = dict(d, commitments=[])
    assert not check_dispute(msgpack.packb(forged, use_bin_type=True), keypair.public_key,
                             cheater, owners)
    assert not check_dispute(b"\x00garbage", keypair.public_key, cheater, owners)


def test_he_specs_are_checked(net: LocalNetwork, keypair: PaillierKeypair) -> None:
    other = generate_keypair(512)
    with pytest.raises(ValidationError, match="other than this requester"):
        net.requester(he=OutsourceVerifier(other)).run(_spec(net, "mean", keypair))
    with pytest.raises(ValidationError, match="Paillier key pair"):
        net.requester().run(_spec(net, "mean", keypair))
    me = net.requester_account.address
    with pytest.raises(ValidationError, match="no he form"):
        bad = TaskSpec.new("median", [(net.dataset_ids[0], ["age"])], [me], 10**16,
                           mode="he", params=he_params(keypair.public_key))
        OutsourceVerifier(keypair).check_spec(bad)
    with pytest.raises(ValidationError, match="at least 512"):
        small = PaillierPublicKey((1 << 383) + 1, 4, r_bits=64)  # a 384-bit modulus
        OutsourceVerifier(keypair).check_spec(
            TaskSpec.new("sum", [(net.dataset_ids[0], ["age"])], [me], 10**16,
                         mode="he", params=he_params(small)))
