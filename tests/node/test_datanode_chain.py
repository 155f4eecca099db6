"""The data node registering datasets on the embedded chain (ChainRegistrar)."""

from __future__ import annotations

import io
from collections.abc import Callable

from metisnet.chain.datasets import DatasetRegistry
from metisnet.node.datanode import DataNode
from metisnet.node.policy import Policy
from metisnet.node.registrar import ChainRegistrar, DatasetRegistrar
from metisnet.types import DatasetId

CSV = b"a,b\n" + b"".join(f"{i},{i * 2}\n".encode() for i in range(100))


def test_datasets_are_registered_updated_and_revoked_on_chain(
        data_node_factory: Callable[..., DataNode]) -> None:
    node = data_node_factory(chain_url="embedded")
    assert isinstance(node.registrar, ChainRegistrar)
    assert isinstance(node.registrar, DatasetRegistrar)
    client: DatasetRegistry = node.registrar.client
    rec = node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="onchain")
    ident = DatasetId(bytes.fromhex(rec.id[2:]))
    info = client.get_dataset(ident)
    assert info is not None and info.owner == node.node_id
    assert (info.schema_hash, info.row_count, info.data_commitment, info.policy_hash) == (
        rec.schema_hash, 100, rec.commitment, rec.policy_hash)
    policy = Policy.from_mapping({"allowed_programs": ["sum"], "allowed_columns": ["a"]})
    node.set_policy(rec.id, node.node_id, policy)
    updated = client.get_dataset(ident)
    assert updated is not None and updated.policy_hash == policy.hash() and updated.version == 2
    node.revoke(rec.id, node.node_id)
    assert not client.is_active(ident)
