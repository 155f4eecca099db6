"""The data node's REST API: :func:`create_app` builds a FastAPI app over a ``DataNode``.

Every route but ``/health`` and ``/node`` needs a signed request
(:mod:`metisnet.node.auth`); the signer's address is the caller. Plaintext datasets are
added by the node's operators; hosted (encrypted) datasets by any owner the node accepts;
policy changes and revocation by the dataset's owner only. Uploads are raw request bodies
(``text/csv``, Parquet, or a hosted envelope as ``application/octet-stream``) streamed into
the ingest pipeline, so their size is bounded only by ``max_upload_bytes``.
OpenAPI is served at ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from metisnet import __version__
from metisnet.api.body import StreamedBody, UploadTooLarge, drain
from metisnet.api.errors import Busy, Unauthorized, install_error_handlers
from metisnet.api.schemas import (
    AuditOut,
    DatasetOut,
    ErrorOut,
    HealthOut,
    NodeInfoOut,
    PolicyIn,
    TaskIn,
    TaskOut,
)
from metisnet.errors import IntegrityError, MetisError, PolicyViolation, ValidationError
from metisnet.node.auth import parse_signed_headers, verify_signature
from metisnet.node.datanode import DataNode
from metisnet.node.policy import Policy
from metisnet.node.schema import parse_schema
from metisnet.types import Address

__all__ = ["create_app"]

_ID = r"^0x[0-9a-fA-F]{64}$"
_TASK = r"^0x[0-9a-f]{32}$"
DatasetIdPath = Annotated[str, Path(pattern=_ID, description="0x + 64 hex digits")]
TaskIdPath = Annotated[str, Path(pattern=_TASK, description="0x + 32 hex digits")]
NameQuery = Annotated[str, Query(min_length=1, max_length=128, description="dataset name")]
FormatQuery = Annotated[
    Literal["csv", "parquet"], Query(alias="format", description="format of the upload")
]
SchemaQuery = Annotated[
    str | None, Query(max_length=65536, description='declared schema, JSON {"col": "int64"}')
]
AfterQuery = Annotated[int, Query(ge=0, lt=2**63)]
LimitQuery = Annotated[int, Query(ge=1, le=1000)]
#: On a refused upload, read (and drop) at most this much of the body before answering,
#: so that a client still sending gets the error rather than a reset connection.
DRAIN_LIMIT = 8 << 20

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 413, 422, 429, 502, 503)
}
_RAW_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _node(request: Request) -> DataNode:
    node: DataNode = request.app.state.node
    return node


def _target(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    qs = request.scope.get("query_string") or b""
    return raw.decode("latin-1") + ("?" + qs.decode("latin-1") if qs else "")


async def authenticate(request: Request, *, body_sha256: str | None = None,
                       streamed: bool = False) -> tuple[Address, str]:
    """Check signature, clock skew and nonce; returns the caller and the signed body hash."""
    node = _node(request)
    action = f"{request.method} {request.url.path}"[:200]
    claimed = request.headers.get("x-metis-address", "")[:42]
    try:
        try:
            signed = parse_signed_headers(request.headers)
        except ValidationError as exc:
            raise Unauthorized(str(exc)) from None
        if abs(node.now() - signed.timestamp) > node.config.clock_skew_s:
            raise Unauthorized("stale request: the signed timestamp is outside the allowed "
                               f"{node.config.clock_skew_s} s window")
        caller = verify_signature(signed, request.method, _target(request))
        if not streamed:
            digest = body_sha256 or hashlib.sha256(await request.body()).hexdigest()
            if digest != signed.body_sha256:
                raise IntegrityError("the body does not match x-metis-content-sha256")
        fresh = await run_in_threadpool(node.accept_request, caller, signed.nonce,
                                        signed.timestamp, action)
        if not fresh:
            raise Unauthorized("replayed request: this nonce was already used")
    except MetisError as exc:
        await run_in_threadpool(node.audit_refusal, claimed, action, exc)
        raise
    return caller, signed.body_sha256


def _check_length(request: Request, node: DataNode) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > node.config.max_upload_bytes:
        raise UploadTooLarge(
            f"the upload exceeds this node's cap of {node.config.max_upload_bytes} bytes"
        )


def create_app(node: DataNode) -> FastAPI:
    """The REST app for ``node`` (which the caller opens and closes)."""
    app = FastAPI(
        title="metisnet data node",
        version=__version__,
        description="Datasets, policies, tasks and the audit log of one metisnet data node. "
        "Requests are signed (EIP-191) by the caller's key; see metisnet.node.auth.",
        responses=_ERRORS,
    )
    app.state.node = node
    install_error_handlers(app)
    uploads = {"running": 0}  # touched on the event loop only, so no lock is needed

    @app.get("/health", response_model=HealthOut, tags=["node"])
    def health() -> HealthOut:
        return HealthOut(status="ok", node_id=node.node_id,
                         datasets=len(node.list_datasets()))

    @app.get("/node", response_model=NodeInfoOut, tags=["node"])
    def node_info() -> NodeInfoOut:
        return NodeInfoOut(node_id=node.node_id, name=node.config.name,
                           public_key=node.public_key.hex(),
                           max_upload_bytes=node.config.max_upload_bytes,
                           hosting=node.config.allow_hosting, version=__version__)

    async def _upload(request: Request, *, hosted: bool, name: str, fmt: str,
                      schema: str | None) -> DatasetOut:
        stream = request.stream()
        try:
            caller, body_hash = await authenticate(request, streamed=True)
        except MetisError:
            await drain(stream, DRAIN_LIMIT)
            raise
        action = "host" if hosted else "add"
        try:
            if not hosted and not node.is_operator(caller):
                raise PolicyViolation("only this node's operators may add plaintext datasets; "
                                      "owners without a node host encrypted ones",
                                      rule="operator")
            _check_length(request, node)
            declared = parse_schema(schema, node.config.max_columns) if schema else None
            if uploads["running"] >= node.config.max_concurrent_uploads:
                raise Busy("this node is ingesting as many uploads as it can; retry later")
            body = StreamedBody(stream, asyncio.get_running_loop(),
                                expected_sha256=body_hash, cap=node.config.max_upload_bytes,
                                idle_timeout=node.config.upload_idle_timeout_s)
            fn = node.host_dataset if hosted else node.add_dataset
            uploads["running"] += 1
            try:
                rec = await run_in_threadpool(lambda: fn(body, owner=caller, name=name,
                                                         fmt=fmt, schema=declared,
                                                         before_commit=body.verify))
            finally:
                uploads["running"] -= 1
        except MetisError as exc:
            await run_in_threadpool(node.audit_refusal, caller, action, exc)
            await drain(stream, DRAIN_LIMIT)
            raise
        return DatasetOut.of(rec)

    @app.post("/datasets", status_code=201, response_model=DatasetOut, tags=["datasets"],
              openapi_extra=_RAW_BODY)
    async def add_dataset(
        request: Request,
        name: NameQuery,
        fmt: FormatQuery = "csv",
        schema: SchemaQuery = None,
    ) -> DatasetOut:
        """Operators: add a plaintext CSV or Parquet dataset (stored encrypted)."""
        return await _upload(request, hosted=False, name=name, fmt=fmt, schema=schema)

    @app.post("/datasets/hosted", status_code=201, response_model=DatasetOut,
              tags=["datasets"], openapi_extra=_RAW_BODY)
    async def host_dataset(
        request: Request,
        name: NameQuery,
        fmt: FormatQuery = "csv",
        schema: SchemaQuery = None,
    ) -> DatasetOut:
        """Owners: host a dataset encrypted to this node's public key."""
        return await _upload(request, hosted=True, name=name, fmt=fmt, schema=schema)

    @app.get("/datasets", response_model=list[DatasetOut], tags=["datasets"])
    async def list_datasets(request: Request) -> list[DatasetOut]:
        await authenticate(request)
        recs = await run_in_threadpool(node.list_datasets)
        return [DatasetOut.of(r) for r in recs]

    @app.get("/datasets/{dataset_id}", response_model=DatasetOut, tags=["datasets"])
    async def get_dataset(request: Request, dataset_id: DatasetIdPath) -> DatasetOut:
        await authenticate(request)
        return DatasetOut.of(await run_in_threadpool(node.get_dataset, dataset_id.lower()))

    @app.get("/datasets/{dataset_id}/policy", response_model=PolicyIn, tags=["policies"])
    async def get_policy(request: Request, dataset_id: DatasetIdPath) -> PolicyIn:
        await authenticate(request)
        rec = await run_in_threadpool(node.get_dataset, dataset_id.lower())
        return PolicyIn(**rec.policy.to_dict())

    @app.put("/datasets/{dataset_id}/policy", response_model=DatasetOut, tags=["policies"])
    async def set_policy(request: Request, dataset_id: DatasetIdPath,
                         policy: PolicyIn) -> DatasetOut:
        """Owner only: replace the dataset's policy (its use counter restarts)."""
        caller, _ = await authenticate(request)
        try:
            p = Policy.from_mapping(policy.model_dump())
            rec = await run_in_threadpool(node.set_policy, dataset_id.lower(), caller, p)
        except MetisError as exc:
            await run_in_threadpool(node.audit_refusal, caller, "set_policy", exc,
                                    dataset_id=dataset_id.lower())
            raise
        return DatasetOut.of(rec)

    @app.post("/datasets/{dataset_id}/revoke", response_model=DatasetOut, tags=["datasets"])
    async def revoke(request: Request, dataset_id: DatasetIdPath) -> DatasetOut:
        """Owner only: revoke the dataset for good (its key and file are destroyed)."""
        caller, _ = await authenticate(request)
        try:
            rec = await run_in_threadpool(node.revoke, dataset_id.lower(), caller)
        except MetisError as exc:
            await run_in_threadpool(node.audit_refusal, caller, "revoke", exc,
                                    dataset_id=dataset_id.lower())
            raise
        return DatasetOut.of(rec)

    @app.post("/tasks", status_code=201, response_model=TaskOut, tags=["tasks"])
    async def request_task(request: Request, task: TaskIn) -> TaskOut:
        """Ask to use a dataset's columns in a program; refused (403) by its policy or not."""
        caller, _ = await authenticate(request)
        rec = await run_in_threadpool(
            lambda: node.request_task(caller, task.dataset_id.lower(), program=task.program,
                                      columns=task.columns,
                                      min_group_size=task.min_group_size))
        return TaskOut.of(rec)

    @app.get("/tasks", response_model=list[TaskOut], tags=["tasks"])
    async def list_tasks(request: Request,
                         limit: LimitQuery = 100) -> list[TaskOut]:
        caller, _ = await authenticate(request)
        return [TaskOut.of(t) for t in await run_in_threadpool(node.list_tasks, caller, limit)]

    @app.get("/tasks/{task_id}", response_model=TaskOut, tags=["tasks"])
    async def get_task(request: Request,
                       task_id: TaskIdPath) -> TaskOut:
        caller, _ = await authenticate(request)
        t = await run_in_threadpool(node.get_task, task_id)
        owner = (await run_in_threadpool(node.get_dataset, t.dataset_id)).owner
        if caller not in (t.requester, owner) and not node.is_operator(caller):
            raise PolicyViolation("only the requester, the dataset owner or an operator may "
                                  "see a task", rule="owner")
        return TaskOut.of(t)

    @app.get("/audit", response_model=list[AuditOut], tags=["audit"])
    async def audit(
        request: Request,
        after: AfterQuery = 0,
        limit: LimitQuery = 100,
    ) -> list[AuditOut]:
        """The audit log: everything for operators, one's own entries for others."""
        caller, _ = await authenticate(request)
        entries = await run_in_threadpool(lambda: node.audit(caller, after=after, limit=limit))
        return [AuditOut.of(e) for e in entries]

    return app
