"""Request and response bodies of the data node's REST API (pydantic models)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from metisnet.node.storage import AuditEntry, DatasetRecord, TaskRecord

__all__ = [
    "AuditOut",
    "ColumnOut",
    "DatasetOut",
    "ErrorOut",
    "HealthOut",
    "NodeInfoOut",
    "PolicyIn",
    "TaskIn",
    "TaskOut",
]

_Str = Annotated[str, Field(min_length=1, max_length=128)]


class ErrorOut(BaseModel):
    error: str
    message: str
    rule: str | None = None


class HealthOut(BaseModel):
    status: str
    node_id: str
    datasets: int


class NodeInfoOut(BaseModel):
    node_id: str
    name: str
    public_key: str = Field(description="33-byte compressed secp256k1 key, hex; for hosting")
    max_upload_bytes: int
    hosting: bool
    version: str


class PolicyIn(BaseModel):
    """A usage policy; ``"*"`` in a list allows anything; empty lists allow nothing."""

    model_config = ConfigDict(extra="forbid")

    allowed_programs: list[_Str] = Field(default_factory=list, max_length=1024)
    allowed_columns: list[_Str] = Field(default_factory=list, max_length=1024)
    allowed_requesters: list[_Str] = Field(default_factory=list, max_length=1024)
    min_group_size: int = Field(default=1, ge=1, le=10**9)
    expires_at: int | None = Field(default=None, ge=0, lt=2**63)
    max_uses: int | None = Field(default=None, ge=0, lt=2**63)


class ColumnOut(BaseModel):
    name: str
    type: str


class DatasetOut(BaseModel):
    dataset_id: str
    name: str
    owner: str
    hosted: bool
    source_format: str
    columns: list[ColumnOut]
    schema_hash: str
    row_count: int
    commitment: str
    policy: PolicyIn
    policy_hash: str
    status: str
    uses: int
    sealed_bytes: int
    created_at: int
    updated_at: int

    @classmethod
    def of(cls, rec: DatasetRecord) -> DatasetOut:
        return cls(
            dataset_id=rec.id, name=rec.name, owner=rec.owner, hosted=rec.hosted,
            source_format=rec.source_format,
            columns=[ColumnOut(name=n, type=t) for n, t in rec.schema],
            schema_hash="0x" + rec.schema_hash.hex(), row_count=rec.row_count,
            commitment="0x" + rec.commitment.hex(), policy=PolicyIn(**rec.policy.to_dict()),
            policy_hash="0x" + rec.policy_hash.hex(), status=rec.status, uses=rec.uses,
            sealed_bytes=rec.sealed_bytes, created_at=rec.created_at,
            updated_at=rec.updated_at,
        )


class TaskIn(BaseModel):
    """A request to use columns of one dataset in a program."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    program: _Str
    columns: list[_Str] = Field(min_length=1, max_length=1024)
    min_group_size: int = Field(default=1, ge=1, le=10**9)


class TaskOut(BaseModel):
    task_id: str
    dataset_id: str
    requester: str
    program: str
    columns: list[str]
    min_group_size: int
    state: str
    reason: str
    created_at: int
    updated_at: int

    @classmethod
    def of(cls, t: TaskRecord) -> TaskOut:
        return cls(task_id=t.id, dataset_id=t.dataset_id, requester=t.requester,
                   program=t.program, columns=list(t.columns), min_group_size=t.min_group_size,
                   state=t.state, reason=t.reason, created_at=t.created_at,
                   updated_at=t.updated_at)


class AuditOut(BaseModel):
    seq: int
    ts: int
    actor: str
    action: str
    outcome: str
    dataset_id: str
    task_id: str
    rule: str
    detail: str
    hash: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(seq=e.seq, ts=e.ts, actor=e.actor, action=e.action, outcome=e.outcome,
                   dataset_id=e.dataset_id, task_id=e.task_id, rule=e.rule, detail=e.detail,
                   hash="0x" + e.hash.hex())
