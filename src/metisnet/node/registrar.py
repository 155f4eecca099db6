"""Where a data node registers its datasets: the :class:`DatasetRegistrar` interface.

The chain's dataset registry (``DatasetRegistry.vy``) records, per dataset id, the owner
(the registering node), the schema hash, the row count, the data commitment and the policy
hash; only the owner may update or revoke. :class:`LocalRegistrar` keeps the same record in
the node's SQLite file, for nodes run without a chain (tests, a single machine) and the
adapter over the chain layer's dataset-registry client is chosen by ``chain_url``.
"""

from __future__ import annotations

import sqlite3
from typing import Protocol, runtime_checkable

from metisnet.errors import ChainError, ConfigError
from metisnet.node.storage import Store

__all__ = ["DatasetRegistrar", "LocalRegistrar", "make_registrar"]


@runtime_checkable
class DatasetRegistrar(Protocol):
    """Registers, updates and revokes datasets; ids and hashes are 32 bytes."""

    def register(self, dataset_id: bytes, *, schema_hash: bytes, row_count: int,
                 commitment: bytes, policy_hash: bytes) -> None: ...

    def update_policy(self, dataset_id: bytes, policy_hash: bytes) -> None: ...

    def revoke(self, dataset_id: bytes) -> None: ...

    def is_active(self, dataset_id: bytes) -> bool: ...


class LocalRegistrar:
    """A registry in the node's own SQLite store, same rules as the contract."""

    def __init__(self, store: Store, owner: str) -> None:
        self._store = store
        self._owner = owner

    def register(self, dataset_id: bytes, *, schema_hash: bytes, row_count: int,
                 commitment: bytes, policy_hash: bytes) -> None:
        with self._store.tx() as db:
            try:
                db.execute(
                    "INSERT INTO registrations (dataset_id, owner, schema_hash, row_count,"
                    " commitment, policy_hash) VALUES (?,?,?,?,?,?)",
                    ("0x" + dataset_id.hex(), self._owner, schema_hash, row_count, commitment,
                     policy_hash),
                )
            except sqlite3.IntegrityError:
                raise ChainError("dataset id already used") from None

    def _active(self, db: sqlite3.Connection, dataset_id: bytes) -> None:
        row = db.execute("SELECT owner, revoked FROM registrations WHERE dataset_id = ?",
                         ("0x" + dataset_id.hex(),)).fetchone()
        if row is None:
            raise ChainError("unknown dataset")
        if row["owner"] != self._owner:
            raise ChainError("not the dataset owner")
        if row["revoked"]:
            raise ChainError("dataset revoked")

    def update_policy(self, dataset_id: bytes, policy_hash: bytes) -> None:
        with self._store.tx() as db:
            self._active(db, dataset_id)
            db.execute("UPDATE registrations SET policy_hash = ?, version = version + 1"
                       " WHERE dataset_id = ?", (policy_hash, "0x" + dataset_id.hex()))

    def revoke(self, dataset_id: bytes) -> None:
        with self._store.tx() as db:
            self._active(db, dataset_id)
            db.execute("UPDATE registrations SET revoked = 1 WHERE dataset_id = ?",
                       ("0x" + dataset_id.hex(),))

    def is_active(self, dataset_id: bytes) -> bool:
        row = self._store.registration("0x" + dataset_id.hex())
        return row is not None and not row["revoked"]


def make_registrar(chain_url: str, store: Store, owner: str) -> DatasetRegistrar:
    """``""``/``"local"``: :class:`LocalRegistrar`; otherwise the chain adapter."""
    if chain_url in ("", "local"):
        return LocalRegistrar(store, owner)
    raise ConfigError(
        f"chain_url {chain_url!r}: the chain dataset-registry adapter is not available in "
        "this build; use chain_url = \"local\""
    )
