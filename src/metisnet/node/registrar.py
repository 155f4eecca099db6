"""Where a data node registers its datasets: the :class:`DatasetRegistrar` interface.

The chain's dataset registry (``DatasetRegistry.vy``) records, per dataset id, the owner
(the registering node), the schema hash, the row count, the data commitment and the policy
hash; only the owner may update or revoke. Two implementations:

* :class:`ChainRegistrar`, over the chain layer's typed client
  (:class:`metisnet.chain.datasets.DatasetRegistry`), sending from the node's own account;
* :class:`LocalRegistrar`, the same record and rules in the node's SQLite file, for nodes
  run without a chain (tests, a single machine).

:func:`make_registrar` picks one from ``chain_url``: ``""``/``"local"``, ``"embedded"`` (a
private in-process chain: contracts deployed and this node registered and staked on start;
for single-process runs and tests), or a JSON-RPC URL with a deployment file, where the
node must already be registered as a data node (the devnet does that).

On chain, the dataset's owner is the data node that registered it, also for hosted
datasets; the hosting owner's rights (policy, revoke) are enforced by the node, which
checks the owner's signature on every such request before it sends the transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from metisnet.errors import ChainError, ConfigError
from metisnet.node.identity import NodeKey
from metisnet.node.storage import Store
from metisnet.types import DatasetId

if TYPE_CHECKING:
    from metisnet.chain.datasets import DatasetRegistry

__all__ = ["ChainRegistrar", "DatasetRegistrar", "LocalRegistrar", "make_registrar"]


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


class ChainRegistrar:
    """The registrar over the chain's ``DatasetRegistry`` client (bound to the node).

    Calls are serialised by a lock: the node serves requests from several threads, and
    transactions from one account must not race for the same nonce.
    """

    def __init__(self, client: DatasetRegistry) -> None:
        self.client = client
        self._lock = threading.Lock()

    def register(self, dataset_id: bytes, *, schema_hash: bytes, row_count: int,
                 commitment: bytes, policy_hash: bytes) -> None:
        with self._lock:
            self.client.register_dataset(DatasetId(dataset_id), schema_hash, row_count,
                                         commitment, policy_hash)

    def update_policy(self, dataset_id: bytes, policy_hash: bytes) -> None:
        with self._lock:
            info = self.client.get_dataset(DatasetId(dataset_id))
            if info is None:
                raise ChainError("unknown dataset")
            self.client.update_dataset(DatasetId(dataset_id), info.schema_hash,
                                       info.row_count, info.data_commitment, policy_hash)

    def revoke(self, dataset_id: bytes) -> None:
        with self._lock:
            self.client.revoke_dataset(DatasetId(dataset_id))

    def is_active(self, dataset_id: bytes) -> bool:
        with self._lock:
            return self.client.is_active(DatasetId(dataset_id))


def _embedded(key: NodeKey) -> ChainRegistrar:
    """A private in-process chain with the contracts deployed and this node staked."""
    from eth_account import Account

    from metisnet.chain.backend import connect
    from metisnet.chain.datasets import DatasetRegistry
    from metisnet.chain.deploy import deploy_contracts
    from metisnet.chain.registry import NodeRegistry, Role
    from metisnet.types import Wei

    chain = connect("embedded")
    deployment = deploy_contracts(chain, chain.account(0))
    account = Account.from_key(key.private)
    registry = NodeRegistry(chain, deployment.registry, account)
    stake = registry.min_stake()
    chain.fund(account.address, Wei(stake + 10**18))
    registry.register(Role.DATA, b"\x00" * 32, "embedded", 1, stake)
    return ChainRegistrar(DatasetRegistry(chain, deployment.datasets, account))


def make_registrar(chain_url: str, store: Store, key: NodeKey, *,
                   deployment_file: Path | None = None) -> DatasetRegistrar:
    """The registrar named by ``chain_url`` (see the module docstring)."""
    if chain_url in ("", "local"):
        return LocalRegistrar(store, key.address)
    if chain_url == "embedded":
        return _embedded(key)
    if chain_url.startswith(("http://", "https://")):
        if deployment_file is None:
            raise ConfigError("chain_url is a JSON-RPC URL: set chain_deployment to the "
                              "deployment file")
        from eth_account import Account

        from metisnet.chain.backend import connect
        from metisnet.chain.datasets import DatasetRegistry
        from metisnet.chain.deploy import Deployment

        try:
            deployment = Deployment.from_json(deployment_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError):
            raise ConfigError(f"cannot read the deployment file {deployment_file}") from None
        chain = connect(chain_url)
        return ChainRegistrar(DatasetRegistry(chain, deployment.datasets,
                                              Account.from_key(key.private)))
    raise ConfigError(f"chain_url {chain_url!r}: use \"local\", \"embedded\" or an http(s) URL")
