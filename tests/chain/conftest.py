"""Fixtures of the chain tests: one fixture parametrised over the embedded chain and anvil.

The anvil node is started once per session on a free loopback port and stopped at the end.
If its binary is missing the anvil-parametrised tests FAIL (run scripts/install-anvil.sh).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from eth_account.signers.local import LocalAccount

from metisnet.chain import (
    Chain,
    ChainParams,
    Contracts,
    Role,
    TaskState,
    connect,
    deploy_contracts,
    seed_commitment,
)
from metisnet.chain.anvil import AnvilNode, start_anvil
from metisnet.errors import ChainError
from metisnet.types import Address, DatasetId, SpecHash, TaskId, Wei

ETHER = 10**18

#: Short windows so tests can move past deadlines with one time jump.
TEST_PARAMS = ChainParams(
    min_stake=ETHER,
    unbond_delay=10_000,
    validator_set_size=7,
    committee_size=3,
    compute_share_bps=7000,
    vote_window=1_000,
    reveal_window=100,
    ack_window=100,
    result_window=1_000,
    no_show_penalty=ETHER // 10,
    cheat_penalty=ETHER,
    max_redraws=2,
)


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilNode]:
    try:
        node = start_anvil()
    except ChainError as exc:
        pytest.fail(f"cannot run the anvil tests: {exc}", pytrace=False)
    yield node
    node.stop()


@pytest.fixture(scope="session")
def anvil_chain(anvil_node: AnvilNode) -> Chain:
    return connect(anvil_node.url)


@pytest.fixture(params=["embedded", "anvil"])
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """A chain of each backend; the embedded one is fresh per test, anvil is shared."""
    if request.param == "embedded":
        c = connect("embedded")
        yield c
        c.close()
    else:
        yield request.getfixturevalue("anvil_chain")


@dataclass
class Net:
    """A freshly deployed set of contracts with named test actors.

    Accounts: 0 admin, 1-4 data nodes, 5-9 compute nodes, 10 requester, 11 outsider,
    12 second receiver.
    """

    chain: Chain
    params: ChainParams = TEST_PARAMS
    c: Contracts = field(init=False)

    def __post_init__(self) -> None:
        self.admin = self.chain.account(0)
        deployment = deploy_contracts(self.chain, self.admin, self.params)
        self.c = Contracts.attach(self.chain, deployment, self.admin)
        self.data = self.chain.accounts(4, 1)
        self.compute = self.chain.accounts(5, 5)
        self.requester = self.chain.account(10)
        self.outsider = self.chain.account(11)
        self.receiver2 = self.chain.account(12)
        self.by_address = {a.address: a for a in self.chain.accounts(13)}

    def as_(self, account: LocalAccount) -> Contracts:
        return self.c.using(account)

    def register_all(self) -> None:
        for i, a in enumerate(self.data):
            self.as_(a).registry.register(Role.DATA, bytes([i + 1]) * 32, f"tls://d{i}:1", 4,
                                          Wei((i + 2) * ETHER))
        for i, a in enumerate(self.compute):
            self.as_(a).registry.register(Role.COMPUTE, bytes([i + 9]) * 32, f"tls://c{i}:1",
                                          8, Wei((i + 1) * ETHER))

    def add_dataset(self, owner: LocalAccount, tag: int = 0) -> DatasetId:
        ds = DatasetId(os.urandom(31) + bytes([tag]))
        self.as_(owner).datasets.register_dataset(ds, b"\x01" * 32, 100, b"\x02" * 32,
                                                  b"\x03" * 32)
        return ds

    def create_task(self, datasets: list[DatasetId], fee: int = 3 * ETHER,
                    receivers: list[str] | None = None) -> TaskId:
        return self.as_(self.requester).tasks.create_task(
            SpecHash(os.urandom(32)), datasets, receivers or [self.requester.address], Wei(fee)
        )

    def approve(self, task_id: TaskId) -> dict[Address, bytes]:
        """Owners approve their datasets, validators approve until the task is approved."""
        seeds: dict[Address, bytes] = {}
        tasks = self.c.tasks
        info = tasks.get_task(task_id)

        def seed_of(a: LocalAccount) -> bytes:
            return seeds.setdefault(Address(a.address), os.urandom(32))

        for ds in info.datasets:
            owner = self.by_address[self.c.datasets.owner_of(ds)]
            s = seed_of(owner)
            self.as_(owner).tasks.vote_dataset(task_id, ds, True, seed_commitment(s, owner.address))
        for v in tasks.validators(task_id):
            if tasks.state(task_id) != TaskState.SUBMITTED:
                break
            acct = self.by_address[v]
            s = seed_of(acct)
            self.as_(acct).tasks.vote(task_id, True, seed_commitment(s, acct.address))
        if tasks.state(task_id) != TaskState.APPROVED:
            raise AssertionError("task was not approved")
        return seeds

    def reveal_all(self, task_id: TaskId, seeds: dict[Address, bytes]) -> None:
        for a, s in seeds.items():
            self.as_(self.by_address[a]).tasks.reveal(task_id, s)

    def to_running(self, task_id: TaskId) -> list[Address]:
        seeds = self.approve(task_id)
        self.reveal_all(task_id, seeds)
        committee = self.as_(self.requester).tasks.draw_committee(task_id)
        for m in committee:
            self.as_(self.by_address[m]).tasks.acknowledge(task_id)
        return committee


@pytest.fixture
def net(chain: Chain) -> Net:
    n = Net(chain)
    n.register_all()
    return n
