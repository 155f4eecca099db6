"""Typed client of the DatasetRegistry contract."""

from __future__ import annotations

from dataclasses import dataclass

from web3.types import TxReceipt

from metisnet.chain._base import ContractClient, bytes32
from metisnet.types import Address, DatasetId

__all__ = ["DatasetInfo", "DatasetRegistry"]


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's registry entry."""

    dataset_id: DatasetId
    owner: Address
    schema_hash: bytes
    row_count: int
    data_commitment: bytes
    policy_hash: bytes
    revoked: bool
    version: int


class DatasetRegistry(ContractClient):
    """Client of ``DatasetRegistry.vy``; the bound account must be a staked data node."""

    ARTIFACT = "DatasetRegistry"

    def register_dataset(
        self,
        dataset_id: DatasetId,
        schema_hash: bytes,
        row_count: int,
        data_commitment: bytes,
        policy_hash: bytes,
    ) -> TxReceipt:
        return self._send(
            "register_dataset",
            bytes32(dataset_id, "dataset_id"),
            bytes32(schema_hash, "schema_hash"),
            row_count,
            bytes32(data_commitment, "data_commitment"),
            bytes32(policy_hash, "policy_hash"),
        )

    def update_dataset(
        self,
        dataset_id: DatasetId,
        schema_hash: bytes,
        row_count: int,
        data_commitment: bytes,
        policy_hash: bytes,
    ) -> TxReceipt:
        return self._send(
            "update_dataset",
            bytes32(dataset_id, "dataset_id"),
            bytes32(schema_hash, "schema_hash"),
            row_count,
            bytes32(data_commitment, "data_commitment"),
            bytes32(policy_hash, "policy_hash"),
        )

    def revoke_dataset(self, dataset_id: DatasetId) -> TxReceipt:
        return self._send("revoke_dataset", bytes32(dataset_id, "dataset_id"))

    def get_dataset(self, dataset_id: DatasetId) -> DatasetInfo | None:
        raw = self._call("get_dataset", bytes32(dataset_id, "dataset_id"))
        owner, schema, rows, commitment, policy, revoked, version = raw
        if int(owner, 16) == 0:
            return None
        return DatasetInfo(
            dataset_id, Address(owner), bytes(schema), rows, bytes(commitment), bytes(policy),
            bool(revoked), version,
        )

    def owner_of(self, dataset_id: DatasetId) -> Address:
        return Address(self._call("owner_of", bytes32(dataset_id, "dataset_id")))

    def is_active(self, dataset_id: DatasetId) -> bool:
        return bool(self._call("is_active", bytes32(dataset_id, "dataset_id")))

    def dataset_count(self) -> int:
        return int(self._call("dataset_count"))
