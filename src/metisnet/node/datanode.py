"""The data node service: datasets in, policy-checked columns out.

:class:`DataNode` owns the store, the keys and the registrar, and is what the REST API and a
task runner call. It does no networking of its own.

Crash safety of an upload: the sealed Parquet file is written to ``tmp/``, fsynced, renamed
into ``datasets/`` and the directory fsynced; only then is the dataset's row committed to
SQLite (status ``pending``), registered, and marked ``active``. On start, :meth:`recover`
deletes anything in ``tmp/``, deletes files in ``datasets/`` that no committed row names,
and finishes registrations left ``pending``. So a crash at any point leaves the whole
dataset or nothing.

Data commitment: a Merkle root over the *plaintext* Parquet bytes in ``chunk_bytes`` chunks,
salted (hiding), see :mod:`metisnet.node.commitment`. Plaintext rather than ciphertext,
because the commitment must bind the data a task will use, not one random encryption of
it: it stays valid across key rotation or re-encryption, and the node can prove what it
holds by opening single chunks to an auditor; a ciphertext root would only show that some
blob is unchanged. The salt keeps low-entropy data from being guessed from the root.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from metisnet.errors import ConfigError, MetisError, PolicyViolation, StorageError, ValidationError
from metisnet.node.commitment import leaf_hash, merkle_proof
from metisnet.node.config import DataNodeConfig
from metisnet.node.envelope import EnvelopeReader
from metisnet.node.identity import (
    NodeKey,
    load_keystore_key,
    load_or_create_master_key,
    load_or_create_node_key,
    normalize_address,
)
from metisnet.node.ingest import FORMATS, ByteSource, ingest
from metisnet.node.policy import Decision, Policy, TaskRequest, check, evaluate
from metisnet.node.registrar import DatasetRegistrar, make_registrar
from metisnet.node.schema import Schema, schema_hash
from metisnet.node.sealed import SealedReader, SealingWriter, unwrap_key, wrap_key
from metisnet.node.storage import AuditEntry, DatasetRecord, Store, TaskRecord
from metisnet.node.taskspec import TaskSpec

__all__ = ["TASK_STATES", "DataNode", "NotFound", "Opening", "parse_dataset_id"]

log = logging.getLogger("metisnet.node")

TASK_STATES = ("approved", "running", "done", "failed", "rejected")
_NEXT_STATES = {"approved": {"running", "done", "failed"}, "running": {"done", "failed"}}
_ID = re.compile(r"^0x[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}$")


@dataclass(frozen=True)
class Opening:
    """One chunk of a dataset's commitment, opened (see :meth:`DataNode.open_commitment`)."""

    root: bytes
    count: int
    index: int
    chunk: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    proof: list[bytes]


class NotFound(MetisError, LookupError):
    """No dataset or task with that id on this node."""


def parse_dataset_id(value: str) -> str:
    if not isinstance(value, str) or not _ID.match(value.lower()):
        raise ValidationError("a dataset id is 0x followed by 64 hex digits")
    return value.lower()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_data_dir(root: Path) -> int:
    """Hold an exclusive lock on ``root`` for the node's life (one node per directory).

    Recovery deletes unfinished uploads, so a second node on the same directory would
    destroy the first one's work; the kernel drops the lock when the process dies.
    """
    fd = os.open(root / "node.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(f"data directory {root} is in use by another data node") from None
    return fd


class DataNode:
    """One data node: its keys, store, registrar and datasets."""

    def __init__(self, config: DataNodeConfig, *, registrar: DatasetRegistrar | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        root = config.data_dir
        self.datasets_dir = root / "datasets"
        self.tmp_dir = root / "tmp"
        for d in (root, self.datasets_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = _lock_data_dir(root)
        self.key: NodeKey = (load_keystore_key(config.node_keystore) if config.node_keystore
                             else load_or_create_node_key(config.node_key_path))
        self._master = load_or_create_master_key(config.master_key_path)
        self.store = Store(root / "node.db")
        self.registrar = registrar or make_registrar(
            config.chain_url, self.store, self.key, deployment_file=config.chain_deployment)
        self._operators = {self.key.address, *(normalize_address(a) for a in config.operators)}
        self._hosting_owners = {normalize_address(a) for a in config.hosting_owners}
        self.recover()

    # -- identity ---------------------------------------------------------------------
    @property
    def node_id(self) -> str:
        return self.key.address

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    def is_operator(self, address: str) -> bool:
        return address in self._operators

    def now(self) -> int:
        return int(self._clock())

    def close(self) -> None:
        """Close the store and release the data directory (idempotent)."""
        if self._lock_fd >= 0:
            self.store.close()
            os.close(self._lock_fd)
            self._lock_fd = -1

    # -- recovery ---------------------------------------------------------------------
    def recover(self) -> None:
        """Finish or undo whatever a crash interrupted (see the module docstring)."""
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)
        keep = {r.file_name for r in self.store.list_datasets() if r.status in
                ("pending", "active")}
        for f in self.datasets_dir.iterdir():
            if f.name not in keep:
                f.unlink(missing_ok=True)
        for rec in self.store.list_datasets(status="pending"):
            if not (self.datasets_dir / rec.file_name).exists():
                raise StorageError(f"dataset {rec.id} is committed but its file is missing")
            try:
                self._register(rec)
            except MetisError as exc:
                log.warning("dataset %s still unregistered: %s", rec.id, exc)

    def _register(self, rec: DatasetRecord) -> None:
        ident = bytes.fromhex(rec.id[2:])
        if not self.registrar.is_active(ident):
            self.registrar.register(ident, schema_hash=rec.schema_hash,
                                    row_count=rec.row_count, commitment=rec.commitment,
                                    policy_hash=rec.policy_hash)
        with self.store.tx() as db:
            self.store.set_dataset_status(db, rec.id, "active")
            self.store.append_audit(db, actor=self.node_id, action="register", outcome="ok",
                                    dataset_id=rec.id)

    # -- audit helpers ------------------------------------------------------------------
    def audit_refusal(self, actor: str, action: str, exc: BaseException, *,
                      dataset_id: str = "", task_id: str = "") -> None:
        """Record a refused or failed request (the message holds no secret by design)."""
        rule = getattr(exc, "rule", "") or ""
        detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, MetisError) else \
            type(exc).__name__
        with self.store.tx() as db:
            self.store.append_audit(db, actor=actor, action=action, outcome="refused",
                                    dataset_id=dataset_id, task_id=task_id, rule=rule,
                                    detail=detail)

    def accept_request(self, address: str, nonce: str, timestamp: int, action: str) -> bool:
        """Record a signed request's nonce and its audit entry in one transaction.

        ``False`` (and nothing recorded) if ``address`` used ``nonce`` before: a replay.
        """
        keep_after = self.now() - 2 * self.config.clock_skew_s
        return self.store.use_nonce(address, nonce, timestamp, keep_after=keep_after,
                                    audit_action=action)

    def audit(self, caller: str, *, after: int = 0, limit: int = 100) -> list[AuditEntry]:
        party = None if self.is_operator(caller) else caller
        return self.store.audit(after=after, limit=limit, party=party)

    # -- datasets -----------------------------------------------------------------------
    def add_dataset(
        self,
        source: ByteSource,
        *,
        owner: str,
        name: str,
        fmt: str = "csv",
        schema: Schema | None = None,
        policy: Policy | None = None,
        hosted: bool = False,
        before_commit: Callable[[], None] | None = None,
    ) -> DatasetRecord:
        """Ingest ``source`` and store it sealed; the whole dataset or nothing is kept.

        ``before_commit`` runs after the last byte was read and before anything is made
        durable (the API checks the body hash there).
        """
        owner = normalize_address(owner)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError("a dataset name is 1-128 characters of [A-Za-z0-9 ._-]")
        if fmt not in FORMATS:
            raise ValidationError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        policy = policy or Policy()
        ident = secrets.token_bytes(32)
        dataset_id = "0x" + ident.hex()
        data_key, salt = secrets.token_bytes(32), secrets.token_bytes(32)
        file_name = f"{ident.hex()}.sealed"
        part = self.tmp_dir / f"{ident.hex()}.part"
        spool = self.tmp_dir / f"{ident.hex()}.spool"
        try:
            with open(part, "xb") as out:
                os.chmod(part, 0o600)
                writer = SealingWriter(out, data_key, ident, self.config.chunk_bytes, salt)
                src: ByteSource = source
                if fmt == "parquet":
                    src = self._spool(source, spool)
                try:
                    result = ingest(src, fmt, schema, writer,
                                    rows_per_group=self.config.row_group_rows,
                                    max_columns=self.config.max_columns)
                finally:
                    if src is not source:
                        src.close()
                while source.read(1 << 16):
                    pass  # drain: the caller's checks (size, body hash) run at EOF
                policy.check_columns_exist([n for n, _ in result.schema])
                if before_commit is not None:
                    before_commit()
                seal = writer.finish()
            final = self.datasets_dir / file_name
            os.replace(part, final)
            _fsync_dir(self.datasets_dir)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        finally:
            spool.unlink(missing_ok=True)
        now = self.now()
        rec = DatasetRecord(
            id=dataset_id, name=name, owner=owner, hosted=hosted, source_format=fmt,
            schema=result.schema, schema_hash=schema_hash(result.schema),
            row_count=result.rows, commitment=seal.merkle_root, salt=salt,
            wrapped_key=wrap_key(self._master, data_key, ident), file_name=file_name,
            sealed_bytes=seal.sealed_bytes, plaintext_bytes=seal.plaintext_bytes,
            policy=policy, policy_hash=policy.hash(), status="pending", uses=0,
            created_at=now, updated_at=now,
        )
        try:
            with self.store.tx() as db:
                self.store.insert_dataset(rec, db)
                self.store.append_audit(
                    db, actor=owner, action="host" if hosted else "add", outcome="ok",
                    dataset_id=dataset_id, detail=f"rows={rec.row_count}",
                )
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        log.info("dataset %s stored: %d rows, %d columns%s", dataset_id, rec.row_count,
                 len(rec.schema), " (hosted)" if hosted else "")
        self._register(rec)
        return self.get_dataset(dataset_id)

    def host_dataset(self, envelope: ByteSource, *, owner: str, name: str, fmt: str = "csv",
                     schema: Schema | None = None, policy: Policy | None = None,
                     before_commit: Callable[[], None] | None = None) -> DatasetRecord:
        """Ingest a dataset encrypted to this node's key (:mod:`metisnet.node.envelope`)."""
        owner = normalize_address(owner)
        if not self.config.allow_hosting:
            raise PolicyViolation("this node does not host datasets", rule="hosting")
        if self._hosting_owners and owner not in self._hosting_owners:
            raise PolicyViolation("this owner may not host datasets here", rule="hosting")
        plain = EnvelopeReader(envelope, self.key)

        def finish() -> None:
            while envelope.read(1 << 16):
                raise ValidationError("trailing bytes after the hosted envelope")
            if before_commit is not None:
                before_commit()

        return self.add_dataset(plain, owner=owner, name=name, fmt=fmt, schema=schema,
                                policy=policy, hosted=True, before_commit=finish)

    def _spool(self, source: ByteSource, path: Path) -> SealedReader:
        """Copy a stream to a temporary sealed file (ephemeral key) to get random access."""
        key, bind = secrets.token_bytes(32), secrets.token_bytes(32)
        with open(path, "xb") as f:
            w = SealingWriter(f, key, bind, self.config.chunk_bytes, b"")
            while chunk := source.read(1 << 20):
                w.write(chunk)
            w.finish()
        return SealedReader(path, key, bind)

    def get_dataset(self, dataset_id: str) -> DatasetRecord:
        rec = self.store.get_dataset(parse_dataset_id(dataset_id))
        if rec is None:
            raise NotFound("no such dataset on this node")
        return rec

    def list_datasets(self) -> list[DatasetRecord]:
        return self.store.list_datasets()

    def _owned(self, dataset_id: str, caller: str, action: str) -> DatasetRecord:
        rec = self.get_dataset(dataset_id)
        if rec.owner != caller:
            raise PolicyViolation(f"only the dataset's owner may {action} it", rule="owner")
        if rec.status == "revoked":
            raise PolicyViolation("the dataset has been revoked", rule="revoked")
        return rec

    def set_policy(self, dataset_id: str, caller: str, policy: Policy) -> DatasetRecord:
        """Owner only: replace the policy (and reset its use counter)."""
        rec = self._owned(dataset_id, caller, "change the policy of")
        policy.check_columns_exist([n for n, _ in rec.schema])
        if rec.status == "active":
            self.registrar.update_policy(bytes.fromhex(rec.id[2:]), policy.hash())
        with self.store.tx() as db:
            self.store.set_policy(db, rec.id, policy)
            self.store.append_audit(db, actor=caller, action="set_policy", outcome="ok",
                                    dataset_id=rec.id, detail=policy.hash().hex())
        return self.get_dataset(rec.id)

    def revoke(self, dataset_id: str, caller: str) -> DatasetRecord:
        """Owner only: revoke for good; the data key is dropped and the file deleted."""
        rec = self._owned(dataset_id, caller, "revoke")
        if rec.status == "active":
            self.registrar.revoke(bytes.fromhex(rec.id[2:]))
        with self.store.tx() as db:
            self.store.shred(db, rec.id)
            db.execute("UPDATE tasks SET state = 'failed', reason = 'dataset revoked', "
                       "updated_at = ? WHERE dataset_id = ? AND state IN ('approved', "
                       "'running')", (self.now(), rec.id))
            self.store.append_audit(db, actor=caller, action="revoke", outcome="ok",
                                    dataset_id=rec.id)
        (self.datasets_dir / rec.file_name).unlink(missing_ok=True)
        log.info("dataset %s revoked", rec.id)
        return self.get_dataset(rec.id)

    def open_commitment(self, dataset_id: str, caller: str, index: int) -> Opening:
        """Owner or operator: open chunk ``index`` of the data commitment.

        Returns the plaintext chunk (Parquet bytes), the salt and the Merkle path, which
        ``metisnet.verify.merkle.verify_inclusion(root, count, index, chunk, proof,
        domain=salt)`` checks against the registered root. Reads the whole file once.
        """
        rec = self.get_dataset(dataset_id)
        if caller != rec.owner and not self.is_operator(caller):
            raise PolicyViolation("only the owner or an operator may open the commitment",
                                  rule="owner")
        if rec.wrapped_key is None:
            raise PolicyViolation("the dataset has been revoked", rule="revoked")
        ident = bytes.fromhex(rec.id[2:])
        key = unwrap_key(self._master, rec.wrapped_key, ident)
        leaves: list[bytes] = []
        chunk = b""
        with SealedReader(self.datasets_dir / rec.file_name, key, ident) as reader:
            for i in range(reader.chunk_count):
                plain = reader.chunk(i)
                leaves.append(leaf_hash(rec.salt, i, plain))
                if i == index:
                    chunk = plain
        if not 0 <= index < len(leaves):
            raise ValidationError(f"chunk index must be in [0, {len(leaves)})")
        return Opening(rec.commitment, len(leaves), index, chunk, rec.salt,
                       merkle_proof(leaves, index))

    # -- tasks --------------------------------------------------------------------------
    def request_task(self, caller: str, dataset_id: str, *, program: str,
                     columns: Sequence[str], min_group_size: int) -> TaskRecord:
        """Check a data request against the policy; record it approved, or refuse it.

        On approval one use is consumed. On refusal the task is recorded ``rejected`` with
        the rule, the audit log says why, and :class:`PolicyViolation` is raised.
        """
        caller = normalize_address(caller)
        rec = self.get_dataset(dataset_id)
        names = [n for n, _ in rec.schema]
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise ValidationError(
                f"the dataset has no column(s) {', '.join(map(repr, unknown[:10]))}"
            )
        request = TaskRequest(rec.id, caller, program, tuple(columns), min_group_size)
        task_id = "0x" + secrets.token_hex(16)
        now = self.now()
        with self.store.tx() as db:
            fresh = self.get_dataset(rec.id)  # under the write lock: uses are exact
            decision = evaluate(fresh.policy, request, now=now,
                                revoked=fresh.status != "active", row_count=fresh.row_count,
                                uses=fresh.uses)
            state = "approved" if decision.allowed else "rejected"
            task = TaskRecord(task_id, rec.id, caller, program, tuple(columns),
                              min_group_size, state, decision.reason, now, now)
            self.store.insert_task(db, task)
            if decision.allowed:
                self.store.add_use(db, rec.id)
            self.store.append_audit(
                db, actor=caller, action="request", outcome="ok" if decision.allowed else
                "refused", dataset_id=rec.id, task_id=task_id, rule=decision.rule,
                detail=f"program={program!r} columns={list(columns)!r}"[:500],
            )
        if not decision.allowed:
            raise PolicyViolation(f"refused by rule {decision.rule!r}: {decision.reason}",
                                  rule=decision.rule)
        return task

    def check(self, request: TaskRequest) -> Decision:
        """Decide ``request`` against its dataset's current policy and state, recording
        nothing; raises :class:`PolicyViolation` (naming the rule) on refusal."""
        rec = self.get_dataset(request.dataset_id)
        return check(rec.policy, request, now=self.now(), revoked=rec.status != "active",
                     row_count=rec.row_count, uses=rec.uses)

    def request_spec(self, requester: str, spec: TaskSpec, *,
                     min_group_size: int | None = None) -> list[TaskRecord]:
        """The data node's vote on a task spec: check every input held here.

        All held inputs are evaluated before any is recorded, so a spec refused on one input
        consumes no use of another. ``min_group_size`` defaults to the spec's
        ``params["min_group_size"]`` (else 1). Returns one approved task per held input.
        """
        k = min_group_size or int(spec.params.get("min_group_size", 1))
        held = [i for i in spec.inputs if self.store.get_dataset(i.dataset.lower())]
        now = self.now()
        for inp in held:
            rec = self.get_dataset(inp.dataset)
            request = TaskRequest(rec.id, normalize_address(requester), spec.program,
                                  tuple(inp.columns), k)
            decision = evaluate(rec.policy, request, now=now, revoked=rec.status != "active",
                                row_count=rec.row_count, uses=rec.uses)
            if not decision.allowed:  # record this input's rejection (raises)
                self.request_task(requester, inp.dataset, program=spec.program,
                                  columns=inp.columns, min_group_size=k)
        return [self.request_task(requester, i.dataset, program=spec.program,
                                  columns=i.columns, min_group_size=k) for i in held]

    def get_task(self, task_id: str) -> TaskRecord:
        task = self.store.get_task(task_id)
        if task is None:
            raise NotFound("no such task on this node")
        return task

    def list_tasks(self, caller: str, limit: int = 100) -> list[TaskRecord]:
        if self.is_operator(caller):
            return self.store.list_tasks(limit=limit)
        return self.store.list_tasks(requester=caller, owner=caller, limit=limit)

    def set_task_state(self, task_id: str, state: str, reason: str = "") -> TaskRecord:
        """For the task runner: move a task along ``approved -> running -> done|failed``."""
        task = self.get_task(task_id)
        if state not in _NEXT_STATES.get(task.state, set()):
            raise ValidationError(f"a task cannot go from {task.state!r} to {state!r}")
        with self.store.tx() as db:
            self.store.set_task_state(db, task_id, state, reason[:500])
            self.store.append_audit(db, actor=self.node_id, action=f"task_{state}",
                                    outcome="ok", dataset_id=task.dataset_id, task_id=task_id)
        return self.get_task(task_id)

    def read_columns(self, task_id: str,
                     columns: Sequence[str] | None = None) -> dict[str, np.ndarray[Any, Any]]:
        """For the task runner: an approved task's columns as numpy arrays.

        Re-checks the policy (it may have changed or the dataset been revoked since the
        approval) before any byte is decrypted; a refusal raises :class:`PolicyViolation`.
        Strings come back as object arrays, timestamps as ``datetime64[s]``.
        """
        task = self.get_task(task_id)
        cols = tuple(columns) if columns is not None else task.columns
        try:
            if task.state not in ("approved", "running"):
                raise PolicyViolation(f"task is {task.state}, not approved", rule="task_state")
            if not set(cols) <= set(task.columns):
                raise PolicyViolation("columns beyond those approved for the task",
                                      rule="columns")
            rec = self.get_dataset(task.dataset_id)
            request = TaskRequest(rec.id, task.requester, task.program, cols,
                                  task.min_group_size)
            decision = evaluate(rec.policy, request, now=self.now(),
                                revoked=rec.status != "active", row_count=rec.row_count,
                                uses=max(0, rec.uses - 1))
            if not decision.allowed:
                raise PolicyViolation(f"refused by rule {decision.rule!r}: {decision.reason}",
                                      rule=decision.rule)
        except PolicyViolation as exc:
            self.audit_refusal(self.node_id, "read_columns", exc, dataset_id=task.dataset_id,
                               task_id=task_id)
            raise
        if rec.wrapped_key is None:
            raise StorageError("the dataset's key is gone")
        key = unwrap_key(self._master, rec.wrapped_key, bytes.fromhex(rec.id[2:]))
        with SealedReader(self.datasets_dir / rec.file_name, key,
                          bytes.fromhex(rec.id[2:])) as reader:
            table = pq.ParquetFile(reader).read(columns=list(cols))
        with self.store.tx() as db:
            self.store.append_audit(db, actor=self.node_id, action="read_columns",
                                    outcome="ok", dataset_id=rec.id, task_id=task_id,
                                    detail=f"columns={list(cols)!r}"[:500])
        return {c: table.column(c).to_numpy() for c in cols}
