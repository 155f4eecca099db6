"""Deploying the three contracts and binding typed clients to a deployment."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Self

from eth_account.signers.local import LocalAccount

from metisnet.chain.artifacts import load_artifact
from metisnet.chain.backend import Chain
from metisnet.chain.datasets import DatasetRegistry
from metisnet.chain.registry import NodeRegistry
from metisnet.chain.tasks import TaskManager
from metisnet.errors import ChainError
from metisnet.types import Address

__all__ = ["ChainParams", "Contracts", "Deployment", "deploy_contracts"]

ETHER = 10**18
HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class ChainParams:
    """Constructor parameters of the contracts (immutable once deployed)."""

    min_stake: int = ETHER
    unbond_delay: int = 7 * DAY
    validator_set_size: int = 7
    committee_size: int = 3
    compute_share_bps: int = 7000
    vote_window: int = DAY
    reveal_window: int = HOUR
    ack_window: int = HOUR
    result_window: int = DAY
    no_show_penalty: int = ETHER // 10
    cheat_penalty: int = ETHER
    max_redraws: int = 2

    def __post_init__(self) -> None:
        # every draw round (the first, each no-show redraw, each restart of a running task)
        # may use an acknowledgement window and a result window
        lifetime = (self.vote_window + self.reveal_window + self.ack_window
                    + (self.ack_window + self.result_window) * (self.max_redraws + 1))
        if self.unbond_delay <= lifetime:
            raise ChainError(
                "unbond_delay must exceed a task's lifetime so that stake cannot leave "
                "before it can be slashed"
            )


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live; serialisable so other processes can attach."""

    registry: Address
    datasets: Address
    tasks: Address

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Self:
        doc = json.loads(text)
        return cls(Address(doc["registry"]), Address(doc["datasets"]), Address(doc["tasks"]))


@dataclass(frozen=True)
class Contracts:
    """The three clients of one deployment, bound to one account."""

    registry: NodeRegistry
    datasets: DatasetRegistry
    tasks: TaskManager

    @classmethod
    def attach(cls, chain: Chain, deployment: Deployment, account: LocalAccount | None = None
               ) -> Contracts:
        return cls(
            NodeRegistry(chain, deployment.registry, account),
            DatasetRegistry(chain, deployment.datasets, account),
            TaskManager(chain, deployment.tasks, account),
        )

    def using(self, account: LocalAccount) -> Contracts:
        return Contracts(
            self.registry.using(account), self.datasets.using(account), self.tasks.using(account)
        )

    @property
    def deployment(self) -> Deployment:
        return Deployment(self.registry.address, self.datasets.address, self.tasks.address)


def deploy_contracts(
    chain: Chain, deployer: LocalAccount, params: ChainParams | None = None
) -> Deployment:
    """Deploy registry, dataset registry and task manager, and wire them together."""
    p = params or ChainParams()
    reg = load_artifact("NodeRegistry")
    registry, _ = chain.deploy(reg.abi, reg.bytecode, deployer, p.min_stake, p.unbond_delay)
    ds = load_artifact("DatasetRegistry")
    datasets, _ = chain.deploy(ds.abi, ds.bytecode, deployer, registry)
    tm = load_artifact("TaskManager")
    tasks, _ = chain.deploy(
        tm.abi, tm.bytecode, deployer, registry, datasets, p.validator_set_size,
        p.committee_size, p.compute_share_bps,
        [p.vote_window, p.reveal_window, p.ack_window, p.result_window],
        p.no_show_penalty, p.cheat_penalty, p.max_redraws,
    )
    NodeRegistry(chain, registry, deployer).set_task_manager(tasks)
    return Deployment(registry, datasets, tasks)
