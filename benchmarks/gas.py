"""Gas of every public contract function, and of a whole task, as the network grows.

Registers up to 200 data nodes and 200 compute nodes (the issue's sizes) on the embedded
chain and runs complete tasks at several network sizes. Shows that the stake-weighted draws
(validator set at create_task, committee at draw_committee) cost O(log n) gas and that the
number of transactions per task does not depend on how many nodes are registered.

Gas is deterministic for a given path; the spread (min/max) comes from the random draws.
There is no peer library for this: ``peer`` is null. Usage:

    .venv/bin/python benchmarks/gas.py [--quick] [--json FILE] [--reps N] [--chain URL]
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import emit, parser, peak_rss_mib, row
from metisnet.chain import (
    ChainParams,
    Contracts,
    NodeRegistry,
    Role,
    TaskState,
    connect,
    deploy_contracts,
    seed_commitment,
)
from metisnet.chain.artifacts import load_artifact

ETHER = 10**18
PARAMS = ChainParams(unbond_delay=10 * 86_400)


class Bench:
    def __init__(self, url: str, max_nodes: int) -> None:
        n_accounts = 2 + 2 * max_nodes
        self.chain = connect(url, accounts=n_accounts)
        if url != "embedded":
            self.chain.ensure_funded([a.address for a in self.chain.accounts(n_accounts)],
                                     100 * ETHER)
        self.gas: dict[tuple[str, int], list[int]] = defaultdict(list)
        admin = self.chain.account(0)
        t0 = time.perf_counter()
        deployment = deploy_contracts(self.chain, admin, PARAMS)
        self.deploy_s = time.perf_counter() - t0
        self.c = Contracts.attach(self.chain, deployment, admin)
        self.requester = self.chain.account(1)
        self.data: list[Any] = []
        self.compute: list[Any] = []
        self.max_nodes = max_nodes
        self.rng = random.Random(7)
        self.datasets: list[tuple[bytes, Any]] = []
        self.size = 0

    def deployment_rows(self) -> list[dict[str, Any]]:
        """Gas of deploying each contract (a second, unwired copy) and of wiring them."""
        admin = self.chain.account(0)
        reg = load_artifact("NodeRegistry")
        address, r1 = self.chain.deploy(reg.abi, reg.bytecode, admin, ETHER, 86_400)
        ds = load_artifact("DatasetRegistry")
        _, r2 = self.chain.deploy(ds.abi, ds.bytecode, admin, address)
        tm = load_artifact("TaskManager")
        _, r3 = self.chain.deploy(tm.abi, tm.bytecode, admin, address, address, 7, 3, 7000,
                                  [1, 1, 1, 1], 1, 1, 2)
        wire = NodeRegistry(self.chain, address, admin).set_task_manager(admin.address)
        note = "one-off"
        return [
            row("gas deploy NodeRegistry", 1, "gas", [int(r1["gasUsed"])], note=note),
            row("gas deploy DatasetRegistry", 1, "gas", [int(r2["gasUsed"])], note=note),
            row("gas deploy TaskManager", 1, "gas", [int(r3["gasUsed"])], note=note),
            row("gas set_task_manager", 1, "gas", [int(wire["gasUsed"])], note=note),
        ]

    def record(self, name: str, receipt: Any) -> None:
        self.gas[(name, self.size)].append(int(receipt["gasUsed"]))

    def grow_to(self, n: int) -> None:
        """Register data and compute nodes until there are ``n`` of each."""
        self.size = n
        while len(self.data) < n:
            a = self.chain.account(2 + len(self.data))
            stake = self.rng.randint(1, 10) * ETHER
            self.record("register (data)", self.c.using(a).registry.register(
                Role.DATA, os.urandom(32), f"tls://data{len(self.data)}:7000", 4, stake))
            self.data.append(a)
        while len(self.compute) < n:
            a = self.chain.account(2 + self.max_nodes + len(self.compute))
            stake = self.rng.randint(1, 10) * ETHER
            self.record("register (compute)", self.c.using(a).registry.register(
                Role.COMPUTE, os.urandom(32), f"tls://comp{len(self.compute)}:7000", 8, stake))
            self.compute.append(a)
        if not self.datasets:
            for owner in self.data[:2]:
                ds = os.urandom(32)
                self.record("register_dataset", self.c.using(owner).datasets.register_dataset(
                    ds, os.urandom(32), 10_000, os.urandom(32), os.urandom(32)))
                self.datasets.append((ds, owner))

    def by_address(self, address: str) -> Any:
        for a in self.data + self.compute:
            if a.address == address:
                return a
        raise KeyError(address)

    def approved_task(self, count: list[int]) -> tuple[int, dict[str, bytes]]:
        req = self.c.using(self.requester).tasks
        names = [d for d, _ in self.datasets]
        receipt = req.create_task_receipt(os.urandom(32), names, [self.requester.address],
                                          3 * ETHER)
        count[0] += 1
        self.record("create_task", receipt)
        tid = self.c.tasks.events(receipt, "TaskCreated")[0]["task_id"]
        seeds: dict[str, bytes] = {}
        for ds, owner in self.datasets:
            s = seeds.setdefault(owner.address, os.urandom(32))
            self.record("vote_dataset", self.c.using(owner).tasks.vote_dataset(
                tid, ds, True, seed_commitment(s, owner.address)))
            count[0] += 1
        for v in self.c.tasks.validators(tid):
            if self.c.tasks.state(tid) != TaskState.SUBMITTED:
                break
            s = seeds.setdefault(v, os.urandom(32))
            self.record("vote", self.c.using(self.by_address(v)).tasks.vote(
                tid, True, seed_commitment(s, v)))
            count[0] += 1
        for v, s in seeds.items():
            self.record("reveal", self.c.using(self.by_address(v)).tasks.reveal(tid, s))
            count[0] += 1
        return tid, seeds

    def full_task(self) -> tuple[int, int]:
        """One task from submission to withdrawn payments; returns (transactions, gas)."""
        count = [0]
        before = sum(sum(v) for v in self.gas.values())
        tid, _ = self.approved_task(count)
        tm = self.c.using(self.requester).tasks
        committee = tm.draw_committee(tid)
        self.record("draw_committee", tm.last_receipt)
        count[0] += 1
        for m in committee:
            self.record("acknowledge", self.c.using(self.by_address(m)).tasks.acknowledge(tid))
            count[0] += 1
        self.record("submit_verdict (success)", tm.submit_verdict(tid, os.urandom(32), True))
        count[0] += 1
        payees = list(dict.fromkeys(committee + [o.address for _, o in self.datasets]))
        for p in payees:
            payee = self.c.using(self.by_address(p)).tasks
            payee.withdraw()
            self.record("withdraw (payments)", payee.last_receipt)
            count[0] += 1
        after = sum(sum(v) for v in self.gas.values())
        return count[0], after - before

    def side_paths(self) -> None:
        """redraw (a no-show), a failed verdict naming a cheater, expiry, restart, staking ops."""
        count = [0]
        tm = self.c.using(self.requester).tasks
        tid, _ = self.approved_task(count)
        committee = tm.draw_committee(tid)
        for m in committee[:-1]:
            self.c.using(self.by_address(m)).tasks.acknowledge(tid)
        self.chain.advance_time(PARAMS.ack_window + 1)
        tm.redraw(tid)
        self.record("redraw (1 no-show)", tm.last_receipt)
        new = self.c.tasks.get_task(tid).committee
        self.c.using(self.by_address(new[-1])).tasks.acknowledge(tid)
        self.record("submit_verdict (cheater)", tm.submit_verdict(
            tid, os.urandom(32), False, cheater=new[0], evidence_hash=os.urandom(32)))
        tid2, _ = self.approved_task(count)
        committee = tm.draw_committee(tid2)
        for m in committee:
            self.c.using(self.by_address(m)).tasks.acknowledge(tid2)
        self.chain.advance_time(PARAMS.result_window + 1)
        self.record("expire", tm.expire(tid2))
        tid3, _ = self.approved_task(count)
        for m in tm.draw_committee(tid3):
            self.c.using(self.by_address(m)).tasks.acknowledge(tid3)
        tm.restart(tid3)  # the receiver replaces a running committee that delivered nothing
        self.record("restart (running task)", tm.last_receipt)
        node = self.c.using(self.compute[-1]).registry
        self.record("top_up", node.top_up(ETHER))
        self.record("update_node", node.update_node(os.urandom(32), "tls://moved:7000", 16))
        self.record("unbond", node.unbond(ETHER))
        self.chain.advance_time(PARAMS.unbond_delay + 1)
        self.record("withdraw (stake)", node.withdraw())
        ds, owner = self.datasets[0]
        self.record("update_dataset", self.c.using(owner).datasets.update_dataset(
            ds, os.urandom(32), 20_000, os.urandom(32), os.urandom(32)))
        extra = os.urandom(32)
        self.c.using(owner).datasets.register_dataset(extra, os.urandom(32), 1, os.urandom(32),
                                                      os.urandom(32))
        self.record("revoke_dataset", self.c.using(owner).datasets.revoke_dataset(extra))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--chain", default="embedded", help="'embedded' or a JSON-RPC URL")
    args = p.parse_args()
    sizes = [10, 50] if args.quick else [10, 50, 100, 200]
    reps = 1 if args.quick else max(1, args.reps)
    t0 = time.perf_counter()
    bench = Bench(args.chain, max(sizes))
    rows: list[dict[str, Any]] = []
    rows += bench.deployment_rows()
    per_task: dict[int, tuple[list[int], list[int]]] = {}
    for n in sizes:
        bench.grow_to(n)
        txs, gas = [], []
        for _ in range(reps):
            t, g = bench.full_task()
            txs.append(t)
            gas.append(g)
        per_task[n] = (txs, gas)
        if n == max(sizes):
            bench.side_paths()
    order = ["register (data)", "register (compute)", "update_node", "top_up", "unbond",
             "withdraw (stake)", "register_dataset", "update_dataset", "revoke_dataset",
             "create_task", "vote_dataset", "vote", "reveal", "draw_committee", "acknowledge",
             "redraw (1 no-show)", "restart (running task)", "submit_verdict (success)",
             "submit_verdict (cheater)", "expire", "withdraw (payments)"]
    for name in order:
        for n in sizes:
            values = bench.gas.get((name, n))
            if values:
                rows.append(row(f"gas {name}", n, "gas", values,
                                note=f"{n} data + {n} compute nodes registered"))
    for n in sizes:
        txs, gas = per_task[n]
        note = ("2 datasets, validator set 7, committee 3, withdrawals included; "
                f"{n} data + {n} compute nodes registered")
        rows.append(row("transactions per task", n, "tx", txs, note=note))
        rows.append(row("gas per task", n, "gas", gas, note=note))
    rows.append(row("benchmark wall time", max(sizes), "s", [time.perf_counter() - t0],
                    peak_rss=peak_rss_mib(), note=f"chain={args.chain}"))
    for r in rows:
        r["peak_rss_mib"] = r["peak_rss_mib"] if r["op"] == "benchmark wall time" else None
    emit(rows, args.json)


if __name__ == "__main__":
    main()
