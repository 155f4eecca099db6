#pragma version ~=0.4.3
#pragma evm-version shanghai
"""
@title metisnet dataset registry
@notice A registered, staked data node registers the datasets it holds: the schema hash, the
        number of rows, a commitment to the data (a Merkle root over its chunks) and the hash
        of its owner's usage policy. Only the owner (the registering node) may update or
        revoke a dataset; a dataset id is never reused.
"""

ROLE_DATA: constant(uint8) = 1

interface NodeRegistry:
    def is_active(node: address, role: uint8) -> bool: view

struct Dataset:
    owner: address
    schema_hash: bytes32
    row_count: uint256
    data_commitment: bytes32
    policy_hash: bytes32
    revoked: bool
    version: uint256

event DatasetRegistered:
    dataset_id: indexed(bytes32)
    owner: indexed(address)
    schema_hash: bytes32
    row_count: uint256
    data_commitment: bytes32
    policy_hash: bytes32

event DatasetUpdated:
    dataset_id: indexed(bytes32)
    version: uint256
    schema_hash: bytes32
    row_count: uint256
    data_commitment: bytes32
    policy_hash: bytes32

event DatasetRevoked:
    dataset_id: indexed(bytes32)

REGISTRY: public(immutable(address))
dataset_count: public(uint256)
datasets: HashMap[bytes32, Dataset]


@deploy
def __init__(registry: address):
    REGISTRY = registry


@external
def register_dataset(
    dataset_id: bytes32,
    schema_hash: bytes32,
    row_count: uint256,
    data_commitment: bytes32,
    policy_hash: bytes32,
):
    assert dataset_id != empty(bytes32), "empty dataset id"
    assert staticcall NodeRegistry(REGISTRY).is_active(msg.sender, ROLE_DATA), "not a data node"
    assert self.datasets[dataset_id].owner == empty(address), "dataset id already used"
    self.datasets[dataset_id] = Dataset(
        owner=msg.sender,
        schema_hash=schema_hash,
        row_count=row_count,
        data_commitment=data_commitment,
        policy_hash=policy_hash,
        revoked=False,
        version=1,
    )
    self.dataset_count += 1
    log DatasetRegistered(
        dataset_id=dataset_id,
        owner=msg.sender,
        schema_hash=schema_hash,
        row_count=row_count,
        data_commitment=data_commitment,
        policy_hash=policy_hash,
    )


@internal
def _check_owner(dataset_id: bytes32):
    owner: address = self.datasets[dataset_id].owner
    assert owner != empty(address), "unknown dataset"
    assert owner == msg.sender, "not the dataset owner"
    assert not self.datasets[dataset_id].revoked, "dataset revoked"


@external
def update_dataset(
    dataset_id: bytes32,
    schema_hash: bytes32,
    row_count: uint256,
    data_commitment: bytes32,
    policy_hash: bytes32,
):
    self._check_owner(dataset_id)
    version: uint256 = self.datasets[dataset_id].version + 1
    self.datasets[dataset_id].schema_hash = schema_hash
    self.datasets[dataset_id].row_count = row_count
    self.datasets[dataset_id].data_commitment = data_commitment
    self.datasets[dataset_id].policy_hash = policy_hash
    self.datasets[dataset_id].version = version
    log DatasetUpdated(
        dataset_id=dataset_id,
        version=version,
        schema_hash=schema_hash,
        row_count=row_count,
        data_commitment=data_commitment,
        policy_hash=policy_hash,
    )


@external
def revoke_dataset(dataset_id: bytes32):
    self._check_owner(dataset_id)
    self.datasets[dataset_id].revoked = True
    log DatasetRevoked(dataset_id=dataset_id)


@view
@external
def get_dataset(dataset_id: bytes32) -> Dataset:
    return self.datasets[dataset_id]


@view
@external
def owner_of(dataset_id: bytes32) -> address:
    return self.datasets[dataset_id].owner


@view
@external
def is_active(dataset_id: bytes32) -> bool:
    return self.datasets[dataset_id].owner != empty(address) and not self.datasets[dataset_id].revoked
