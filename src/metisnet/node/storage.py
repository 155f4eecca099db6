"""The data node's durable state in SQLite (WAL, ``synchronous=FULL``).

Tables: ``datasets`` (metadata, wrapped data key, policy, status, uses), ``tasks`` (each
data request and its state), ``audit`` (append-only, hash-chained: SQL triggers refuse any
UPDATE or DELETE, and each entry's hash covers the previous one, so an edit made outside
SQLite shows up in :meth:`Store.verify_audit_chain`), ``nonces`` (request nonces seen within
the clock-skew window, for replay protection), ``registrations`` (the local registrar) and
``chain_tasks`` (each on-chain task the node accepted a spec for, with its vote seed and
dealing key until the task ends, so that a restarted node resumes it; schema version 1,
``PRAGMA user_version``: a store made before it gains the table when it is opened).

One connection guarded by a lock; every write is one ``BEGIN IMMEDIATE`` transaction, so an
acknowledged write survives a crash and a crash leaves no partial write.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metisnet.errors import IntegrityError, StorageError
from metisnet.node.policy import Policy
from metisnet.node.schema import Schema

__all__ = ["AuditEntry", "ChainTaskRecord", "DatasetRecord", "Store", "TaskRecord"]

#: the schema version this code writes (``PRAGMA user_version``); 0 is the first layout
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    hosted INTEGER NOT NULL,
    source_format TEXT NOT NULL,
    schema_json TEXT NOT NULL,
    schema_hash BLOB NOT NULL,
    row_count INTEGER NOT NULL,
    commitment BLOB NOT NULL,
    salt BLOB NOT NULL,
    wrapped_key BLOB,
    file_name TEXT NOT NULL,
    sealed_bytes INTEGER NOT NULL,
    plaintext_bytes INTEGER NOT NULL,
    policy_json TEXT NOT NULL,
    policy_hash BLOB NOT NULL,
    status TEXT NOT NULL,
    uses INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL REFERENCES datasets(id),
    requester TEXT NOT NULL,
    program TEXT NOT NULL,
    columns_json TEXT NOT NULL,
    min_group_size INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_dataset ON tasks(dataset_id);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    dataset_id TEXT NOT NULL DEFAULT '',
    task_id TEXT NOT NULL DEFAULT '',
    rule TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS nonces (
    address TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (address, nonce)
);
CREATE INDEX IF NOT EXISTS nonces_by_ts ON nonces(ts);
CREATE TABLE IF NOT EXISTS registrations (
    dataset_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    schema_hash BLOB NOT NULL,
    row_count INTEGER NOT NULL,
    commitment BLOB NOT NULL,
    policy_hash BLOB NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1
);
"""

#: version 1: the on-chain tasks this node accepted (see :class:`ChainTaskRecord`)
_CHAIN_TASKS = """
CREATE TABLE IF NOT EXISTS chain_tasks (
    task_id INTEGER PRIMARY KEY,
    spec_json TEXT NOT NULL,
    spec_hash BLOB NOT NULL,
    requester TEXT NOT NULL,
    approve INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    rule TEXT NOT NULL DEFAULT '',
    local_ids_json TEXT NOT NULL,
    seed BLOB,
    deal_key BLOB,
    owner_votes_json TEXT NOT NULL DEFAULT '[]',
    voted INTEGER NOT NULL DEFAULT 0,
    revealed INTEGER NOT NULL DEFAULT 0,
    dealt_json TEXT NOT NULL DEFAULT '[]',
    closed INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chain_tasks_open ON chain_tasks(closed);
"""

GENESIS = b"\x00" * 32


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    name: str
    owner: str
    hosted: bool
    source_format: str
    schema: Schema
    schema_hash: bytes
    row_count: int
    commitment: bytes
    salt: bytes
    wrapped_key: bytes | None
    file_name: str
    sealed_bytes: int
    plaintext_bytes: int
    policy: Policy
    policy_hash: bytes
    status: str
    uses: int
    created_at: int
    updated_at: int

    def __repr__(self) -> str:  # keep key material out of logs and tracebacks
        return f"DatasetRecord(id={self.id!r}, name={self.name!r}, status={self.status!r})"


@dataclass(frozen=True)
class TaskRecord:
    id: str
    dataset_id: str
    requester: str
    program: str
    columns: tuple[str, ...]
    min_group_size: int
    state: str
    reason: str
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class ChainTaskRecord:
    """An on-chain task this node accepted a spec for, and how far its part went.

    ``seed`` is the vote's seed (its commitment is on chain once the node voted) and
    ``deal_key`` derives the randomness of this node's dealings (one stream per round, so a
    dealing sent again after a restart is the same dealing). Both are kept until the task
    ends, then erased; neither ever appears in a repr, log or exception.
    """

    task_id: int
    spec_json: str
    spec_hash: bytes
    requester: str
    approve: bool
    reason: str
    rule: str
    local_ids: tuple[str, ...]
    seed: bytes
    deal_key: bytes
    owner_votes: frozenset[bytes] = frozenset()
    voted: bool = False
    revealed: bool = False
    dealt: frozenset[int] = frozenset()
    closed: bool = False

    def __repr__(self) -> str:  # keep the seed and dealing key out of logs and tracebacks
        return (f"ChainTaskRecord(task_id={self.task_id}, approve={self.approve}, "
                f"voted={self.voted}, revealed={self.revealed}, "
                f"dealt={sorted(self.dealt)}, closed={self.closed})")


def _chain_task(row: sqlite3.Row) -> ChainTaskRecord:
    return ChainTaskRecord(
        task_id=row["task_id"], spec_json=row["spec_json"], spec_hash=row["spec_hash"],
        requester=row["requester"], approve=bool(row["approve"]), reason=row["reason"],
        rule=row["rule"], local_ids=tuple(json.loads(row["local_ids_json"])),
        seed=row["seed"] or b"", deal_key=row["deal_key"] or b"",
        owner_votes=frozenset(bytes.fromhex(v) for v in json.loads(row["owner_votes_json"])),
        voted=bool(row["voted"]), revealed=bool(row["revealed"]),
        dealt=frozenset(int(r) for r in json.loads(row["dealt_json"])),
        closed=bool(row["closed"]),
    )


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: int
    actor: str
    action: str
    outcome: str
    dataset_id: str
    task_id: str
    rule: str
    detail: str
    hash: bytes


def _dataset(row: sqlite3.Row) -> DatasetRecord:
    return DatasetRecord(
        id=row["id"], name=row["name"], owner=row["owner"], hosted=bool(row["hosted"]),
        source_format=row["source_format"],
        schema=tuple((n, t) for n, t in json.loads(row["schema_json"])),
        schema_hash=row["schema_hash"], row_count=row["row_count"],
        commitment=row["commitment"], salt=row["salt"], wrapped_key=row["wrapped_key"],
        file_name=row["file_name"], sealed_bytes=row["sealed_bytes"],
        plaintext_bytes=row["plaintext_bytes"],
        policy=Policy.from_mapping(json.loads(row["policy_json"])),
        policy_hash=row["policy_hash"], status=row["status"], uses=row["uses"],
        created_at=row["created_at"], updated_at=row["updated_at"],
    )


def _task(row: sqlite3.Row) -> TaskRecord:
    return TaskRecord(
        id=row["id"], dataset_id=row["dataset_id"], requester=row["requester"],
        program=row["program"], columns=tuple(json.loads(row["columns_json"])),
        min_group_size=row["min_group_size"], state=row["state"], reason=row["reason"],
        created_at=row["created_at"], updated_at=row["updated_at"],
    )


def _audit_hash(prev: bytes, fields: tuple[Any, ...]) -> bytes:
    return hashlib.sha256(prev + json.dumps(fields, separators=(",", ":")).encode()).digest()


class Store:
    """All of the data node's SQLite state; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.row_factory = sqlite3.Row
            # it holds wrapped keys and vote seeds: owner only (SQLite gives its -wal and
            # -shm files the database file's mode)
            os.chmod(path, 0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open the node database {path}: {exc}") from None
        self._lock = threading.RLock()
        self._nonce_inserts = 0

    def _migrate(self) -> None:
        """Bring a store of an older layout to :data:`SCHEMA_VERSION` (never down)."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StorageError(f"the node database has schema version {version}; this "
                               f"metisnet reads up to {SCHEMA_VERSION}")
        if version < 1:
            self._db.executescript("BEGIN IMMEDIATE;" + _CHAIN_TASKS
                                   + "PRAGMA user_version = 1; COMMIT;")

    @property
    def schema_version(self) -> int:
        row = self._one("PRAGMA user_version", ())
        return int(row[0]) if row is not None else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # -- datasets ---------------------------------------------------------------------
    def insert_dataset(self, rec: DatasetRecord, db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO datasets VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (rec.id, rec.name, rec.owner, int(rec.hosted), rec.source_format,
             json.dumps([list(p) for p in rec.schema]), rec.schema_hash, rec.row_count,
             rec.commitment, rec.salt, rec.wrapped_key, rec.file_name, rec.sealed_bytes,
             rec.plaintext_bytes, rec.policy.canonical_json(), rec.policy_hash, rec.status,
             rec.uses, rec.created_at, rec.updated_at),
        )

    def get_dataset(self, dataset_id: str) -> DatasetRecord | None:
        row = self._one("SELECT * FROM datasets WHERE id = ?", (dataset_id,))
        return _dataset(row) if row else None

    def list_datasets(self, *, status: str | None = None) -> list[DatasetRecord]:
        if status:
            rows = self._all("SELECT * FROM datasets WHERE status = ? ORDER BY created_at, id",
                             (status,))
        else:
            rows = self._all("SELECT * FROM datasets ORDER BY created_at, id")
        return [_dataset(r) for r in rows]

    def file_names(self) -> set[str]:
        return {r["file_name"] for r in self._all("SELECT file_name FROM datasets")}

    def set_dataset_status(self, db: sqlite3.Connection, dataset_id: str, status: str) -> None:
        db.execute("UPDATE datasets SET status = ?, updated_at = ? WHERE id = ?",
                   (status, int(time.time()), dataset_id))

    def set_policy(self, db: sqlite3.Connection, dataset_id: str, policy: Policy) -> None:
        db.execute(
            "UPDATE datasets SET policy_json = ?, policy_hash = ?, uses = 0, updated_at = ? "
            "WHERE id = ?",
            (policy.canonical_json(), policy.hash(), int(time.time()), dataset_id),
        )

    def shred(self, db: sqlite3.Connection, dataset_id: str) -> None:
        """Revoke: drop the wrapped data key, so the sealed file is unreadable for good."""
        db.execute(
            "UPDATE datasets SET status = 'revoked', wrapped_key = NULL, updated_at = ? "
            "WHERE id = ?",
            (int(time.time()), dataset_id),
        )

    def add_use(self, db: sqlite3.Connection, dataset_id: str) -> None:
        db.execute("UPDATE datasets SET uses = uses + 1 WHERE id = ?", (dataset_id,))

    # -- tasks ------------------------------------------------------------------------
    def insert_task(self, db: sqlite3.Connection, t: TaskRecord) -> None:
        db.execute(
            "INSERT INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?)",
            (t.id, t.dataset_id, t.requester, t.program, json.dumps(list(t.columns)),
             t.min_group_size, t.state, t.reason, t.created_at, t.updated_at),
        )

    def get_task(self, task_id: str) -> TaskRecord | None:
        row = self._one("SELECT * FROM tasks WHERE id = ?", (task_id,))
        return _task(row) if row else None

    def list_tasks(self, *, requester: str | None = None, owner: str | None = None,
                   limit: int = 100) -> list[TaskRecord]:
        sql = "SELECT t.* FROM tasks t JOIN datasets d ON d.id = t.dataset_id"
        args: tuple[Any, ...] = ()
        if requester is not None or owner is not None:
            sql += " WHERE t.requester = ? OR d.owner = ?"
            args = (requester or "", owner or "")
        sql += " ORDER BY t.created_at DESC, t.id LIMIT ?"
        return [_task(r) for r in self._all(sql, (*args, limit))]

    def set_task_state(self, db: sqlite3.Connection, task_id: str, state: str,
                       reason: str) -> None:
        db.execute("UPDATE tasks SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                   (state, reason, int(time.time()), task_id))

    # -- on-chain tasks ---------------------------------------------------------------
    def put_chain_task(self, rec: ChainTaskRecord) -> None:
        """Record a newly accepted on-chain task (kept as first recorded if known)."""
        now = int(time.time())
        with self.tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO chain_tasks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec.task_id, rec.spec_json, rec.spec_hash, rec.requester, int(rec.approve),
                 rec.reason, rec.rule, json.dumps(list(rec.local_ids)), rec.seed or None,
                 rec.deal_key or None, json.dumps(sorted(v.hex() for v in rec.owner_votes)),
                 int(rec.voted), int(rec.revealed), json.dumps(sorted(rec.dealt)),
                 int(rec.closed), now, now),
            )

    def get_chain_task(self, task_id: int) -> ChainTaskRecord | None:
        row = self._one("SELECT * FROM chain_tasks WHERE task_id = ?", (task_id,))
        return _chain_task(row) if row else None

    def open_chain_tasks(self) -> list[ChainTaskRecord]:
        """The on-chain tasks not yet closed, oldest first."""
        rows = self._all("SELECT * FROM chain_tasks WHERE closed = 0 ORDER BY task_id")
        return [_chain_task(r) for r in rows]

    def update_chain_task(self, task_id: int, *, owner_votes: frozenset[bytes] | None = None,
                          voted: bool | None = None, revealed: bool | None = None,
                          dealt: frozenset[int] | None = None,
                          closed: bool | None = None) -> None:
        """Record progress; closing erases the seed and the dealing key."""
        sets: list[str] = []
        args: list[Any] = []
        if owner_votes is not None:
            sets.append("owner_votes_json = ?")
            args.append(json.dumps(sorted(v.hex() for v in owner_votes)))
        for name, flag in (("voted", voted), ("revealed", revealed), ("closed", closed)):
            if flag is not None:
                sets.append(f"{name} = ?")
                args.append(int(flag))
        if dealt is not None:
            sets.append("dealt_json = ?")
            args.append(json.dumps(sorted(dealt)))
        if closed:
            sets.append("seed = NULL, deal_key = NULL")
        if not sets:
            return
        with self.tx() as db:
            cur = db.execute(  # the column names above are constants; values are bound
                f"UPDATE chain_tasks SET {', '.join(sets)}, updated_at = ? "  # noqa: S608
                "WHERE task_id = ?",
                (*args, int(time.time()), task_id))
            if cur.rowcount != 1:
                raise StorageError(f"no on-chain task {task_id} in the node database")

    # -- audit ------------------------------------------------------------------------
    def append_audit(
        self, db: sqlite3.Connection, *, actor: str, action: str, outcome: str,
        dataset_id: str = "", task_id: str = "", rule: str = "", detail: str = "",
    ) -> None:
        last = db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        prev = last["hash"] if last else GENESIS
        ts = int(time.time())
        fields = (ts, actor, action, outcome, dataset_id, task_id, rule, detail[:500])
        db.execute(
            "INSERT INTO audit (ts, actor, action, outcome, dataset_id, task_id, rule, detail,"
            " prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (*fields, prev, _audit_hash(prev, fields)),
        )

    def audit(self, *, after: int = 0, limit: int = 100,
              party: str | None = None) -> list[AuditEntry]:
        """Entries after ``after``; with ``party``, those it made or about its datasets."""
        sql = "SELECT a.* FROM audit a WHERE a.seq > ?"
        args: tuple[Any, ...] = (after,)
        if party is not None:
            sql += (" AND (a.actor = ? OR a.dataset_id IN "
                    "(SELECT id FROM datasets WHERE owner = ?))")
            args = (*args, party, party)
        rows = self._all(sql + " ORDER BY a.seq LIMIT ?", (*args, limit))
        return [AuditEntry(r["seq"], r["ts"], r["actor"], r["action"], r["outcome"],
                           r["dataset_id"], r["task_id"], r["rule"], r["detail"], r["hash"])
                for r in rows]

    def verify_audit_chain(self) -> int:
        """Recompute the hash chain; returns the number of entries or raises."""
        prev, n = GENESIS, 0
        for r in self._all("SELECT * FROM audit ORDER BY seq"):
            fields = (r["ts"], r["actor"], r["action"], r["outcome"], r["dataset_id"],
                      r["task_id"], r["rule"], r["detail"])
            if r["prev_hash"] != prev or r["hash"] != _audit_hash(prev, fields):
                raise IntegrityError(f"audit log entry {r['seq']} does not chain")
            prev, n = r["hash"], n + 1
        return n

    # -- nonces -----------------------------------------------------------------------
    def use_nonce(self, address: str, nonce: str, ts: int, *, keep_after: int,
                  audit_action: str = "") -> bool:
        """Record a nonce; ``False`` if ``address`` used it before (a replay)."""
        with self.tx() as db:
            try:
                db.execute("INSERT INTO nonces VALUES (?,?,?)", (address, nonce, ts))
            except sqlite3.IntegrityError:
                return False
            if audit_action:
                self.append_audit(db, actor=address, action=audit_action, outcome="accepted")
            self._nonce_inserts += 1
            if self._nonce_inserts % 256 == 0:
                db.execute("DELETE FROM nonces WHERE ts < ?", (keep_after,))
        return True

    # -- local registrations ------------------------------------------------------------
    def registration(self, dataset_id: str) -> sqlite3.Row | None:
        return self._one("SELECT * FROM registrations WHERE dataset_id = ?", (dataset_id,))
