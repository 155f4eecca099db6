"""Policies: each rule refuses by name, in a fixed order; validation of policy documents."""

from __future__ import annotations

import pytest

from metisnet.errors import PolicyViolation, ValidationError
from metisnet.node.policy import Policy, TaskRequest, check, enforce_group_sizes, evaluate

ALICE = "0x" + "aa" * 20
BOB = "0x" + "bb" * 20


def _policy(**kw: object) -> Policy:
    base: dict[str, object] = {
        "allowed_programs": ["mean"], "allowed_columns": ["age", "income"],
        "allowed_requesters": [ALICE], "min_group_size": 5, "expires_at": 2000,
        "max_uses": 2,
    }
    base.update(kw)
    return Policy.from_mapping(base)


def _req(**kw: object) -> TaskRequest:
    base: dict[str, object] = {"dataset_id": "0x" + "00" * 32,
                               "requester": Policy.from_mapping(
                                   {"allowed_requesters": [ALICE]}).allowed_requesters[0],
                               "program": "mean", "columns": ("age",), "min_group_size": 5}
    base.update(kw)
    return TaskRequest(**base)  # type: ignore[arg-type]


STATE = {"now": 1000, "revoked": False, "row_count": 100, "uses": 0}


def test_an_allowed_request_passes() -> None:
    assert check(_policy(), _req(), **STATE).allowed  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "request_", "state", "rule"),
    [
        ({}, {}, {"revoked": True}, "revoked"),
        ({}, {}, {"now": 2000}, "expiry"),
        ({}, {"requester": BOB}, {}, "requester"),
        ({}, {"program": "dump"}, {}, "program"),
        ({}, {"columns": ("age", "ssn")}, {}, "columns"),
        ({}, {"columns": ()}, {}, "columns"),
        ({}, {"min_group_size": 2}, {}, "min_group_size"),
        ({}, {}, {"row_count": 3}, "min_group_size"),
        ({}, {}, {"uses": 2}, "max_uses"),
        ({"max_uses": 0}, {}, {}, "max_uses"),
    ],
)
def test_each_rule_refuses_by_name(policy: dict[str, object], request_: dict[str, object],
                                   state: dict[str, object], rule: str) -> None:
    st = {**STATE, **state}
    decision = evaluate(_policy(**policy), _req(**request_), **st)  # type: ignore[arg-type]
    assert not decision.allowed and decision.rule == rule
    with pytest.raises(PolicyViolation) as exc:
        check(_policy(**policy), _req(**request_), **st)  # type: ignore[arg-type]
    assert exc.value.rule == rule and rule in str(exc.value)


def test_default_policy_denies_everything_and_wildcards_allow() -> None:
    assert evaluate(Policy(), _req(), **STATE).rule == "requester"  # type: ignore[arg-type]
    anyone = Policy.from_mapping({"allowed_programs": ["*"], "allowed_columns": ["*"],
                                  "allowed_requesters": ["*"]})
    assert evaluate(anyone, _req(requester=BOB, program="x"),
                    **STATE).allowed  # type: ignore[arg-type]


def test_policy_hash_is_canonical() -> None:
    a = Policy.from_mapping({"allowed_programs": ["a", "b"], "min_group_size": 3})
    b = Policy.from_mapping({"min_group_size": 3, "allowed_programs": ["a", "b"]})
    assert a.hash() == b.hash() and len(a.hash()) == 32
    assert a.hash() != Policy.from_mapping({"allowed_programs": ["a"]}).hash()


@pytest.mark.parametrize(
    "doc",
    [
        {"allowed_programs": "mean"},
        {"allowed_requesters": ["not-an-address"]},
        {"min_group_size": 0},
        {"min_group_size": True},
        {"expires_at": -1},
        {"max_uses": "3"},
        {"surprise": 1},
        {"allowed_columns": [""]},
    ],
)
def test_bad_policy_documents_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Policy.from_mapping(doc)


def test_output_groups_below_k_are_refused() -> None:
    enforce_group_sizes([5, 9], 5)
    with pytest.raises(PolicyViolation) as exc:
        enforce_group_sizes([5, 4], 5)
    assert exc.value.rule == "min_group_size"
