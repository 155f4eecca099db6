"""Task spec: schema validation, clear errors, canonical hashing."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metisnet.errors import ValidationError
from metisnet.node.taskspec import TaskSpec, parse_spec, schema, spec_hash

DS = "0x" + "ab" * 32
RECV = "0x" + "12" * 20


def _doc(**kw: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "version": 1, "program": "mean", "inputs": [{"dataset": DS, "columns": ["age"]}],
        "receivers": [RECV], "fee_wei": "1000", "nonce": "0" * 32,
    }
    doc.update(kw)
    return doc


def test_defaults_and_roundtrip() -> None:
    spec = parse_spec(_doc())
    assert spec.mode == "mpc" and spec.security == "malicious" and spec.committee_size == 3
    again = parse_spec(spec.to_json())
    assert again == spec and spec_hash(again) == spec.hash and len(spec.hash) == 32


def test_hash_is_canonical_and_binds_every_field() -> None:
    a = parse_spec(json.dumps(_doc(), indent=4))
    b = parse_spec(json.dumps(dict(reversed(list(_doc().items())))))
    assert a.hash == b.hash
    assert parse_spec(_doc(fee_wei="1001")).hash != a.hash
    assert parse_spec(_doc(nonce="1" + "0" * 31)).hash != a.hash
    # a known answer: keccak256 of the canonical bytes
    from eth_hash.auto import keccak
    assert a.hash == keccak(a.canonical())
    assert a.canonical().startswith(b'{"committee_size":3,"deadline_s":600,"fee_wei":"1000"')


def test_new_draws_a_fresh_nonce() -> None:
    s1 = TaskSpec.new("sum", [(DS, ["x"])], [RECV], 5)
    s2 = TaskSpec.new("sum", [(DS, ["x"])], [RECV], 5)
    assert s1.nonce != s2.nonce and s1.hash != s2.hash


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_doc(program="Bad Name"), "at program"),
        (_doc(inputs=[]), "at inputs"),
        (_doc(inputs=[{"dataset": "0x12", "columns": ["a"]}]), "at inputs/0/dataset"),
        (_doc(receivers=["not-an-address"]), "at receivers/0"),
        (_doc(fee_wei="-1"), "at fee_wei"),
        (_doc(extra=1), "Additional properties"),
        (_doc(version=2), "at version"),
        (_doc(mode="he", committee_size=3), "exactly one compute node"),
        (_doc(committee_size=2), "at least 3"),
    ],
)
def test_invalid_specs_are_refused_clearly(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_spec(doc)


def test_malformed_json_and_non_objects() -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_spec("{")
    with pytest.raises(ValidationError, match="JSON object"):
        parse_spec("[1]")
    with pytest.raises(ValidationError, match="larger than"):
        parse_spec(" " * 70_000)
    with pytest.raises(ValidationError, match="UTF-8"):
        parse_spec(b"\xff\xfe")


def test_schema_is_draft_2020_12() -> None:
    assert schema()["$schema"].endswith("2020-12/schema")


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                        max_size=3),
                    max_leaves=10))
def test_arbitrary_json_never_crashes(doc: object) -> None:
    with contextlib.suppress(ValidationError):
        parse_spec(json.dumps(doc))


TLS = {"address": RECV, "cert_sha256": "cd" * 32, "endpoint": "127.0.0.1:7001"}


def test_receiver_tls_is_optional_and_covered_by_the_hash() -> None:
    plain = parse_spec(_doc())
    assert plain.receiver_tls == () and "receiver_tls" not in plain.to_json()
    pinned = parse_spec(_doc(receiver_tls=[TLS]))
    assert pinned.receiver_tls[0].cert_sha256 == "cd" * 32
    assert pinned.receiver_tls[0].endpoint == "127.0.0.1:7001"
    assert spec_hash(pinned) != spec_hash(plain)
    assert parse_spec(pinned.canonical()) == pinned
    moved = parse_spec(_doc(receiver_tls=[{**TLS, "endpoint": "127.0.0.1:7002"}]))
    assert spec_hash(moved) != spec_hash(pinned)


@pytest.mark.parametrize(("entry", "message"), [
    ({**TLS, "address": "0x" + "34" * 20}, "not a receiver"),
    ({**TLS, "cert_sha256": "zz"}, "receiver_tls"),
    ({**TLS, "endpoint": "no port"}, "receiver_tls"),
    ({k: v for k, v in TLS.items() if k != "endpoint"}, "receiver_tls"),
])
def test_receiver_tls_is_validated(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_spec(_doc(receiver_tls=[entry]))
    with pytest.raises(ValidationError, match="twice"):
        parse_spec(_doc(receiver_tls=[TLS, TLS]))
