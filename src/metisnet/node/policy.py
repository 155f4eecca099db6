"""Per-dataset usage policies and the check every data request goes through.

A :class:`Policy` says which programs may run on a dataset, which of its columns they may
read, which requesters (addresses) may ask, the minimum number of rows behind any output
group (k), an expiry time and a maximum number of uses. Lists hold ``"*"`` to allow any;
a fresh dataset's default policy allows nothing (default deny).

:func:`evaluate` is pure: policy, dataset state and request in, :class:`Decision` out.
:func:`check` raises :class:`PolicyViolation` naming the first rule broken, in a fixed
order (revoked, expiry, requester, program, columns, min_group_size, max_uses), so a
refusal is deterministic and explains itself. The caller computes nothing on refusal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metisnet.errors import PolicyViolation, ValidationError
from metisnet.node.identity import normalize_address

__all__ = [
    "ANY",
    "RULES",
    "Decision",
    "Policy",
    "TaskRequest",
    "check",
    "enforce_group_sizes",
    "evaluate",
]

ANY = "*"
RULES = ("revoked", "expiry", "requester", "program", "columns", "min_group_size", "max_uses")
MAX_ITEMS = 1024
MAX_PROGRAM = 128


def _strings(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_ITEMS:
        raise ValidationError(f"policy field {name!r} must be a list of at most {MAX_ITEMS}")
    if not all(isinstance(v, str) and 0 < len(v) <= MAX_PROGRAM for v in value):
        raise ValidationError(f"policy field {name!r} must hold non-empty strings")
    return tuple(dict.fromkeys(value))


@dataclass(frozen=True)
class Policy:
    allowed_programs: tuple[str, ...] = ()
    allowed_columns: tuple[str, ...] = ()
    allowed_requesters: tuple[str, ...] = ()
    min_group_size: int = 1
    expires_at: int | None = None
    max_uses: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Policy:
        """Validate a JSON-like mapping (unknown keys are refused)."""
        if not isinstance(data, Mapping):
            raise ValidationError("a policy is a JSON object")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValidationError(f"unknown policy field(s): {', '.join(unknown)}")
        requesters = _strings("allowed_requesters", data.get("allowed_requesters", ()))
        requesters = tuple(r if r == ANY else normalize_address(r) for r in requesters)
        k = data.get("min_group_size", 1)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 10**9:
            raise ValidationError("min_group_size must be an integer from 1 to 10^9")
        exp = data.get("expires_at")
        if exp is not None and (not isinstance(exp, int) or isinstance(exp, bool)
                                or not 0 <= exp < 2**63):
            raise ValidationError("expires_at must be a unix time in seconds, or null")
        uses = data.get("max_uses")
        if uses is not None and (not isinstance(uses, int) or isinstance(uses, bool)
                                 or not 0 <= uses < 2**63):
            raise ValidationError("max_uses must be a non-negative integer, or null")
        return cls(
            allowed_programs=_strings("allowed_programs", data.get("allowed_programs", ())),
            allowed_columns=_strings("allowed_columns", data.get("allowed_columns", ())),
            allowed_requesters=requesters,
            min_group_size=k,
            expires_at=exp,
            max_uses=uses,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("allowed_programs", "allowed_columns", "allowed_requesters"):
            d[key] = list(d[key])
        return d

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def hash(self) -> bytes:
        """SHA-256 of the canonical JSON (sorted keys, no spaces): the on-chain policy hash."""
        return hashlib.sha256(self.canonical_json().encode()).digest()

    def check_columns_exist(self, columns: Sequence[str]) -> None:
        unknown = [c for c in self.allowed_columns if c != ANY and c not in columns]
        if unknown:
            raise ValidationError(
                f"policy names column(s) the dataset lacks: {', '.join(map(repr, unknown[:10]))}"
            )


@dataclass(frozen=True)
class TaskRequest:
    """What a requester asks of one dataset."""

    dataset_id: str
    requester: str
    program: str
    columns: tuple[str, ...]
    min_group_size: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str = ""
    reason: str = ""


def _allows(allowed: Sequence[str], value: str) -> bool:
    return ANY in allowed or value in allowed


def evaluate(
    policy: Policy,
    request: TaskRequest,
    *,
    now: int,
    revoked: bool,
    row_count: int,
    uses: int,
) -> Decision:
    """Decide ``request`` against ``policy`` and the dataset's state; never raises."""
    if revoked:
        return Decision(False, "revoked", "the dataset has been revoked by its owner")
    if policy.expires_at is not None and now >= policy.expires_at:
        return Decision(False, "expiry", "the dataset's policy has expired")
    if not _allows(policy.allowed_requesters, request.requester):
        return Decision(False, "requester", "the requester is not allowed by the policy")
    if not _allows(policy.allowed_programs, request.program):
        return Decision(False, "program", f"program {request.program!r} is not allowed")
    denied = [c for c in request.columns if not _allows(policy.allowed_columns, c)]
    if denied or not request.columns:
        what = ", ".join(map(repr, denied[:10])) if denied else "no columns"
        return Decision(False, "columns", f"column(s) not allowed: {what}")
    if request.min_group_size < policy.min_group_size:
        return Decision(
            False,
            "min_group_size",
            f"outputs must cover at least {policy.min_group_size} rows per group; the "
            f"request asks for {request.min_group_size}",
        )
    if row_count < policy.min_group_size:
        return Decision(False, "min_group_size", "the dataset has fewer rows than k")
    if policy.max_uses is not None and uses >= policy.max_uses:
        return Decision(False, "max_uses", f"the dataset's {policy.max_uses} use(s) are spent")
    return Decision(True)


def check(
    policy: Policy, request: TaskRequest, *, now: int, revoked: bool, row_count: int, uses: int
) -> Decision:
    """:func:`evaluate`, raising :class:`PolicyViolation` (with ``rule``) on refusal."""
    decision = evaluate(policy, request, now=now, revoked=revoked, row_count=row_count, uses=uses)
    if not decision.allowed:
        raise PolicyViolation(
            f"refused by rule {decision.rule!r}: {decision.reason}", rule=decision.rule
        )
    return decision


def enforce_group_sizes(counts: Sequence[int], min_group_size: int) -> None:
    """For a task runner: refuse to release outputs whose groups hold fewer than k rows."""
    small = sum(1 for c in counts if c < min_group_size)
    if small:
        raise PolicyViolation(
            f"{small} output group(s) have fewer than {min_group_size} rows",
            rule="min_group_size",
        )
