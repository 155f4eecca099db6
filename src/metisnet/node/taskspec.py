"""The task spec: what a requester asks the network to compute, and its hash.

The format is a JSON document described by ``schemas/taskspec.schema.json`` (JSON Schema
2020-12), the single source of truth: :func:`parse_spec` validates a document against it,
then checks what a schema cannot (committee size against the mode). :func:`spec_hash` is
keccak256 over the canonical encoding (keys sorted, no spaces, UTF-8), the value the task
manager contract records.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from eth_hash.auto import keccak

from metisnet.errors import ValidationError
from metisnet.types import SpecHash

__all__ = ["InputSpec", "ReceiverTls", "TaskSpec", "parse_spec", "schema", "spec_hash"]

MAX_SPEC_BYTES = 64 * 1024


@cache
def schema() -> dict[str, Any]:
    """The task spec's JSON Schema."""
    text = resources.files("metisnet.node").joinpath("schemas/taskspec.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@dataclass(frozen=True)
class InputSpec:
    dataset: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ReceiverTls:
    """Where a receiver that is not a registered node listens, and its pinned cert hash."""

    address: str
    cert_sha256: str
    endpoint: str

    def to_json(self) -> dict[str, str]:
        return {"address": self.address, "cert_sha256": self.cert_sha256,
                "endpoint": self.endpoint}


@dataclass(frozen=True)
class TaskSpec:
    """A validated task spec. Build one with :func:`parse_spec` or :meth:`new`."""

    program: str
    inputs: tuple[InputSpec, ...]
    receivers: tuple[str, ...]
    fee_wei: int
    nonce: str
    params: dict[str, Any] = field(default_factory=dict)
    mode: str = "mpc"
    security: str = "malicious"
    committee_size: int = 3
    deadline_s: int = 600
    receiver_tls: tuple[ReceiverTls, ...] = ()

    @classmethod
    def new(cls, program: str, inputs: list[tuple[str, list[str]]], receivers: list[str],
            fee_wei: int, **kw: Any) -> TaskSpec:
        """A fresh spec with a random nonce, validated like any other."""
        doc: dict[str, Any] = {
            "version": 1, "program": program,
            "inputs": [{"dataset": d, "columns": list(c)} for d, c in inputs],
            "receivers": list(receivers), "fee_wei": str(fee_wei),
            "nonce": secrets.token_hex(16), **kw,
        }
        return parse_spec(doc)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "version": 1, "program": self.program,
            "inputs": [{"dataset": i.dataset, "columns": list(i.columns)} for i in self.inputs],
            "params": self.params, "receivers": list(self.receivers), "mode": self.mode,
            "security": self.security, "committee_size": self.committee_size,
            "fee_wei": str(self.fee_wei), "deadline_s": self.deadline_s, "nonce": self.nonce,
        }
        if self.receiver_tls:  # optional: absent from (and not changing) the hash of others
            doc["receiver_tls"] = [r.to_json() for r in self.receiver_tls]
        return doc

    def canonical(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")

    @property
    def hash(self) -> SpecHash:
        return spec_hash(self)


def parse_spec(doc: dict[str, Any] | str | bytes) -> TaskSpec:
    """Validate a spec (a dict or its JSON text) and return it as a :class:`TaskSpec`."""
    if isinstance(doc, (str, bytes)):
        if len(doc) > MAX_SPEC_BYTES:
            raise ValidationError(f"task spec larger than {MAX_SPEC_BYTES} bytes")
        try:
            text = doc.decode("utf-8") if isinstance(doc, bytes) else doc
        except UnicodeDecodeError:
            raise ValidationError("task spec is not UTF-8") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"task spec is not valid JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise ValidationError("task spec must be a JSON object")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ValidationError(f"invalid task spec at {where}: {err.message}")
    mode = doc.get("mode", "mpc")
    size = doc.get("committee_size", 1 if mode == "he" else 3)
    if mode == "mpc" and size < 3:
        raise ValidationError("an mpc task needs a committee of at least 3 compute nodes")
    if mode == "he" and size != 1:
        raise ValidationError("an he task is outsourced to exactly one compute node")
    receivers = {r.lower() for r in doc["receivers"]}
    tls = tuple(ReceiverTls(r["address"], r["cert_sha256"], r["endpoint"])
                for r in doc.get("receiver_tls", ()))
    if any(r.address.lower() not in receivers for r in tls):
        raise ValidationError("receiver_tls names an address that is not a receiver")
    if len({r.address.lower() for r in tls}) != len(tls):
        raise ValidationError("receiver_tls names a receiver twice")
    return TaskSpec(
        program=doc["program"],
        inputs=tuple(InputSpec(i["dataset"].lower(), tuple(i["columns"])) for i in doc["inputs"]),
        receivers=tuple(doc["receivers"]),
        fee_wei=int(doc["fee_wei"]),
        nonce=doc["nonce"],
        params=dict(doc.get("params", {})),
        mode=mode,
        security=doc.get("security", "malicious"),
        committee_size=size,
        deadline_s=doc.get("deadline_s", 600),
        receiver_tls=tls,
    )


def spec_hash(spec: TaskSpec) -> SpecHash:
    """keccak256 of the spec's canonical JSON encoding."""
    return SpecHash(keccak(spec.canonical()))
