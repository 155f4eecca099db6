"""A whole metisnet network in one process: embedded chain, data and compute nodes.

For fast tests and ``metis demo --embedded``. Everything is real except the distances:
the contracts run on py-evm (web3's EthereumTesterProvider), the data nodes are
:class:`~metisnet.node.datanode.DataNode` services with sealed storage and policies, the
secure sessions move real shares, only over in-memory channels instead of TLS sockets.
Agents are polled round-robin by :meth:`LocalNetwork.pump` from the calling thread (the
chain is only ever touched from that thread); secure sessions run in worker threads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount
from numpy.typing import NDArray

from metisnet.chain.backend import Chain, connect
from metisnet.chain.deploy import ChainParams, Contracts, deploy_contracts
from metisnet.chain.registry import Role
from metisnet.crypto.prg import random_bytes
from metisnet.node.agents import ComputeAgent, DataNodeAgent, Decision
from metisnet.node.config import DataNodeConfig
from metisnet.node.datanode import DataNode
from metisnet.node.identity import load_or_create_node_key
from metisnet.node.policy import Policy
from metisnet.node.registrar import ChainRegistrar
from metisnet.node.requester import Requester
from metisnet.node.session import InMemorySessions
from metisnet.node.taskspec import TaskSpec
from metisnet.types import Wei

__all__ = ["ETHER", "LocalNetwork", "NodeAccount", "synthetic_column"]

ETHER = 10**18
STAKE = Wei(2 * ETHER)


@dataclass(frozen=True)
class NodeAccount:
    name: str
    account: LocalAccount

    @property
    def address(self) -> str:
        return str(self.account.address)


def synthetic_column(seed: int, rows: int) -> NDArray[np.float64]:
    """Deterministic synthetic ages (demo data; not key material)."""
    gen = np.random.default_rng(seed)
    return np.round(gen.normal(45.0 + 5 * seed, 12.0, size=rows).clip(18, 90), 2)


class LocalNetwork:
    """Data nodes, compute nodes and a requester on one embedded chain."""

    def __init__(self, root: Path, *, data_nodes: int = 3, compute_nodes: int = 5,
                 rows: int | Sequence[int] = 1000, params: ChainParams | None = None,
                 chain: Chain | None = None, policy: Policy | None = None) -> None:
        self.root = Path(root)
        self.chain = chain or connect("embedded")
        self.deployer = self.chain.account(0)
        self.deployment = deploy_contracts(self.chain, self.deployer, params or ChainParams())
        self.contracts = Contracts.attach(self.chain, self.deployment, self.deployer)
        self.sessions = InMemorySessions()
        sizes = [rows] * data_nodes if isinstance(rows, int) else list(rows)
        self.columns: dict[str, NDArray[np.float64]] = {}
        self.data: list[DataNodeAgent] = []
        for i in range(data_nodes):
            self.data.append(self._data_node(i, sizes[i], policy))
        self.compute: list[ComputeAgent] = []
        self.compute_accounts: list[NodeAccount] = []
        for i in range(compute_nodes):
            acct = NodeAccount(f"compute-{i}", Account.create(random_bytes(32)))
            self._register(acct.account, Role.COMPUTE)
            self.compute_accounts.append(acct)
            c = self.contracts.using(acct.account)
            self.compute.append(ComputeAgent(c, self.sessions.opener(acct.address)))
        self.requester_account = Account.create(random_bytes(32))
        self.chain.fund(self.requester_account.address, Wei(10 * ETHER))

    def _register(self, account: LocalAccount, role: Role) -> None:
        self.chain.fund(account.address, Wei(3 * ETHER))
        self.contracts.registry.using(account).register(
            role, random_bytes(32), f"inproc://{account.address}", 1, STAKE)

    def _data_node(self, i: int, rows: int, policy: Policy | None) -> DataNodeAgent:
        cfg = DataNodeConfig(name=f"data-{i}", data_dir=self.root / f"data-{i}", port=0)
        key = load_or_create_node_key(cfg.node_key_path)
        account = Account.from_key(key.private)
        self._register(account, Role.DATA)
        c = self.contracts.using(account)
        node = DataNode(cfg, registrar=ChainRegistrar(c.datasets))
        col = synthetic_column(i, rows)
        csv = "age\n" + "\n".join(f"{v:.2f}" for v in col) + "\n"
        rec = node.add_dataset(io.BytesIO(csv.encode()), owner=key.address, name=f"ages-{i}",
                               policy=policy or Policy(allowed_programs=("*",),
                                                       allowed_columns=("*",),
                                                       allowed_requesters=("*",)))
        self.columns[rec.id] = col
        return DataNodeAgent(node, c, self.sessions.opener(account.address))

    # -- driving ------------------------------------------------------------------------
    def pump(self) -> None:
        """One poll of every agent."""
        for d in self.data:
            d.poll()
        for c in self.compute:
            c.poll()

    def deliver(self, owner: str, task_id: int, spec: TaskSpec) -> Decision:
        for d in self.data:
            if d.me == owner.lower():
                return d.submit(task_id, spec)
        return Decision(False, "no such data node")

    @property
    def dataset_ids(self) -> list[str]:
        return list(self.columns)

    def requester(self, **kw: Any) -> Requester:
        c = self.contracts.using(self.requester_account)
        return Requester(c, self.sessions.opener(self.requester_account.address),
                         self.deliver, pump=self.pump, advance_time=self.chain.advance_time,
                         now=self.chain.timestamp, **kw)

    def close(self) -> None:
        for d in self.data:
            d.node.close()
