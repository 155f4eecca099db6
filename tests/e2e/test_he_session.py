"""One outsourcing session in one process, without a chain: owners, one compute node, receiver."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from metisnet.crypto.prg import random_bytes
from metisnet.errors import CheatingDetected, ValidationError
from metisnet.he.paillier import PaillierKeypair, generate_keypair
from metisnet.net.channel import InMemoryNetwork
from metisnet.node.outsource_task import (
    OutsourceLayout,
    OutsourceVerifier,
    attempt_id,
    check_dispute,
    contribute,
    he_params,
    serve,
)
from metisnet.node.taskspec import TaskSpec, parse_spec
from metisnet.verify import evaluate

DATASETS = ["0x" + f"{i:02x}" * 32 for i in (1, 2)]


@pytest.fixture(scope="module")
def keypair() -> PaillierKeypair:
    return generate_keypair(512)


def _accounts(n: int) -> list[LocalAccount]:
    return [Account.create(random_bytes(32)) for _ in range(n)]


def _run(kp: PaillierKeypair, columns: list[np.ndarray], program: str = "mean", *,
         compute_signs_with: LocalAccount | None = None,
         evaluate_fn: Callable[..., dict[str, Any]] | None = None,
         ) -> tuple[np.ndarray | None, BaseException | None, OutsourceLayout,
                    OutsourceVerifier]:
    compute, receiver, *owners = _accounts(2 + len(columns))
    layout = OutsourceLayout(compute.address.lower(),
                             tuple(o.address.lower() for o in owners),
                             receiver.address.lower())
    spec = TaskSpec.new(program, [(d, ["age"]) for d in DATASETS[:len(columns)]],
                        [receiver.address], 10**16, mode="he",
                        params=he_params(kp.public_key))
    net = InMemoryNetwork(len(layout.members), timeout=30)
    attempt = attempt_id(7, 0)
    errors: list[BaseException] = []

    def guard(fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        try:
            fn(*args, **kw)
        except BaseException as exc:  # collected and checked by the test
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(
        serve, net.channel(0), layout, spec.hash, compute_signs_with or compute),
        kwargs={"parse": parse_spec, "evaluate_fn": evaluate_fn})]
    for j, (owner, col) in enumerate(zip(owners, columns, strict=True)):
        threads.append(threading.Thread(target=guard, args=(
            contribute, net.channel(1 + j), layout, owner.address.lower(), spec, [col],
            attempt, owner)))
    for t in threads:
        t.start()
    verifier = OutsourceVerifier(kp)
    values, error = None, None
    try:
        values = verifier.receive(net.channel(len(layout.members) - 1), layout, spec, attempt)
    except CheatingDetected as exc:
        error = exc
    for t in threads:
        t.join(timeout=30)
    if errors:
        raise errors[0]
    return values, error, layout, verifier


def test_an_honest_session_gives_the_mean_of_the_union(keypair: PaillierKeypair) -> None:
    cols = [np.array([1.5, 2.25, 3.0]), np.array([10.0, -4.5])]
    values, error, _, verifier = _run(keypair, cols)
    assert error is None and values is not None
    union = np.concatenate(cols)
    assert abs(values[0] - union.mean()) <= 2.0**-17
    assert verifier.last_verify_s > 0
    assert "secrets hidden" in repr(verifier)


def test_an_unsigned_result_fails_without_naming_anyone(keypair: PaillierKeypair) -> None:
    (stranger,) = _accounts(1)
    _, error, _, _ = _run(keypair, [np.array([1.0, 2.0])], compute_signs_with=stranger)
    assert isinstance(error, CheatingDetected)
    assert error.suspects == () and "not signed" in str(error)


def test_a_forged_answer_names_the_compute_node(keypair: PaillierKeypair) -> None:
    def drop_last(program: Any, batches: Any) -> dict[str, Any]:
        b = dict(batches[1])
        b["values"], b["tags"], b["rows"] = b["values"][:-1], b["tags"][:-1], b["rows"] - 1
        return evaluate(program, [batches[0], b])

    _, error, layout, verifier = _run(keypair, [np.array([1.0, 2.0]),
                                                np.array([3.0, 4.0, 5.0])],
                                      evaluate_fn=drop_last)
    assert isinstance(error, CheatingDetected) and error.suspects == (0,)
    assert verifier.disputes[attempt_id(7, 0)] == error.evidence
    pk = keypair.public_key
    assert check_dispute(error.evidence, pk, layout.compute, layout.data_nodes)
    # the owners must be the chain's, in session order
    assert not check_dispute(error.evidence, pk, layout.compute, layout.data_nodes[::-1])
    # ... and the key must be the spec's
    assert not check_dispute(error.evidence, generate_keypair(512).public_key,
                             layout.compute, layout.data_nodes)


def test_layouts_and_specs_are_checked(keypair: PaillierKeypair) -> None:
    a, b, c = (x.address.lower() for x in _accounts(3))
    with pytest.raises(ValidationError, match="compute node"):
        OutsourceLayout(a, (a, b), c)
    with pytest.raises(ValidationError, match="receiver"):
        OutsourceLayout(a, (b, c), c)
    doc = TaskSpec.new("sum", [(DATASETS[0], ["age"])], [a], 1, mode="he",
                       params=he_params(keypair.public_key)).to_json()
    with pytest.raises(ValidationError, match="exactly one parameter"):
        OutsourceVerifier(keypair).check_spec(parse_spec({**doc, "params": {}}))
    with pytest.raises(ValidationError, match="one receiver"):
        OutsourceVerifier(keypair).check_spec(parse_spec({**doc, "receivers": [a, b]}))
    with pytest.raises(ValidationError, match="malformed Paillier key"):
        OutsourceVerifier(keypair).check_spec(parse_spec(
            {**doc, "params": {"paillier": {"n": "zz"}}}))
