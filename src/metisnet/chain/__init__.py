"""Chain layer: Vyper contracts, compiled artifacts, typed clients and chain backends.

``connect(url)`` gives a :class:`Chain` (``"embedded"`` or a JSON-RPC URL);
``deploy_contracts`` puts the registry, dataset registry and task manager on it;
``Contracts.attach`` binds the typed clients; :mod:`metisnet.chain.draw` reproduces the
committee draw in Python.
"""

from metisnet.chain.backend import DEFAULT_MNEMONIC, HD_PATH, Chain, connect, derive_accounts
from metisnet.chain.datasets import DatasetInfo, DatasetRegistry
from metisnet.chain.deploy import ChainParams, Contracts, Deployment, deploy_contracts
from metisnet.chain.draw import combine_seeds, draw_committee, seed_commitment
from metisnet.chain.registry import NodeInfo, NodeRegistry, Role
from metisnet.chain.tasks import TaskInfo, TaskManager, TaskState

__all__ = [
    "DEFAULT_MNEMONIC",
    "HD_PATH",
    "Chain",
    "ChainParams",
    "Contracts",
    "DatasetInfo",
    "DatasetRegistry",
    "Deployment",
    "NodeInfo",
    "NodeRegistry",
    "Role",
    "TaskInfo",
    "TaskManager",
    "TaskState",
    "combine_seeds",
    "connect",
    "deploy_contracts",
    "derive_accounts",
    "draw_committee",
    "seed_commitment",
]
