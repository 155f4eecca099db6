"""Hypothesis stateful test: random sequences of staking and task operations.

Every step sends one transaction (which may legitimately revert) and then checks:

* money: the registry's balance equals the stakes it holds (active + unbonding) and the task
  manager's balance equals the escrowed fees plus the credited, not yet withdrawn, payments;
  both also match a model kept from the transactions and their receipts' events;
* nobody is paid twice: a task is closed at most once, a closed task has credited exactly its
  fee plus what was slashed for it, and every withdrawal pays exactly what was credited;
* no stake moves without its owner or proven evidence: each node's active and unbonding
  stake equal the model, which changes only on the node's own transactions and on slashes
  that come with a verdict naming the node with an evidence hash, or with a redraw after the
  node missed its acknowledgement deadline.

Runs on the embedded chain only; bounded (few examples, short runs) for a 2-core machine.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from metisnet.chain import ChainParams, Contracts, Role, TaskState, connect, deploy_contracts
from metisnet.chain.draw import seed_commitment
from metisnet.errors import TransactionReverted

E = 10**18
PARAMS = ChainParams(
    min_stake=E, unbond_delay=5_000, validator_set_size=3, committee_size=2, vote_window=1_000,
    reveal_window=100, ack_window=100, result_window=1_000, no_show_penalty=E // 4,
    cheat_penalty=E, max_redraws=1,
)
N_DATA, N_COMPUTE = 4, 4
pytestmark = pytest.mark.filterwarnings("ignore:The recursion limit will not be reset")
amounts = st.sampled_from([E, 2 * E, 3 * E])
index = st.integers(0, 63)
mostly_true = st.sampled_from([True, True, True, False])


class ChainMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain = connect("embedded")
        self.c = Contracts.attach(self.chain, deploy_contracts(self.chain, self.chain.account(0),
                                                               PARAMS))
        self.data = self.chain.accounts(N_DATA, 1)
        self.compute = self.chain.accounts(N_COMPUTE, 1 + N_DATA)
        self.requesters = self.chain.accounts(2, 1 + N_DATA + N_COMPUTE)
        self.people = self.data + self.compute + self.requesters
        self.by_address = {a.address: a for a in self.people}
        # the model
        self.active: dict[str, int] = {}
        self.unbonding: dict[str, int] = {}
        self.credited: dict[str, int] = {}
        self.withdrawn: dict[str, int] = {}
        self.datasets: list[bytes] = []
        self.tasks: list[int] = []
        self.fee: dict[int, int] = {}
        self.task_credited: dict[int, int] = {}
        self.task_slashed: dict[int, int] = {}
        self.closed: dict[int, int] = {}
        self.seeds: dict[tuple[int, str], bytes] = {}
        self.withdraw_due: dict[str, int] = {}

    # ---------------------------------------------------------------- plumbing
    def send(self, account: Any, client: str, method: str, *args: Any, **kw: Any) -> Any:
        """Send one transaction; a revert leaves the model unchanged. Returns the receipt."""
        contract = getattr(self.c.using(account), client)
        try:
            result = getattr(contract, method)(*args, **kw)
        except TransactionReverted as exc:
            assert exc.reason, "a revert must carry a reason"
            return None
        return result

    def absorb(self, receipt: Any, sender: str, *, redraw_of: tuple[int, set[str]] | None = None
               ) -> None:
        """Update the model from a task manager receipt's events and check the slashes."""
        tasks = self.c.tasks
        verdicts = tasks.events(receipt, "VerdictPosted")
        for ev in tasks.events(receipt, "MemberSlashed"):
            member, tid, amount = ev["member"], ev["task_id"], ev["amount"]
            proven = any(v["cheater"] == member and v["evidence_hash"] != b"\0" * 32
                         and v["task_id"] == tid for v in verdicts)
            no_show = redraw_of is not None and redraw_of[0] == tid and member in redraw_of[1]
            assert proven or no_show, f"stake of {member} moved without evidence"
            take = min(amount, self.active[member])
            self.active[member] -= take
            self.unbonding[member] -= amount - take
            self.task_slashed[tid] = self.task_slashed.get(tid, 0) + amount
        for ev in tasks.events(receipt, "Credited"):
            self.credited[ev["account"]] = self.credited.get(ev["account"], 0) + ev["amount"]
            self.task_credited[ev["task_id"]] = (
                self.task_credited.get(ev["task_id"], 0) + ev["amount"])
        for ev in tasks.events(receipt, "TaskClosed"):
            self.closed[ev["task_id"]] = self.closed.get(ev["task_id"], 0) + 1

    def pick(self, seq: list[Any], i: int) -> Any:
        return seq[i % len(seq)]

    # ---------------------------------------------------------------- staking
    @initialize()
    def bootstrap(self) -> None:
        for i in range(6):
            self.register_node(i if i < 3 else N_DATA + i - 3, E + (i % 2) * E)
        self.add_dataset(0)
        self.create_task(0, 0, False, 2 * E)

    @rule(i=st.integers(0, N_DATA + N_COMPUTE - 1), stake=amounts)
    def register_node(self, i: int, stake: int) -> None:
        acct = self.people[i]
        role = Role.DATA if i < N_DATA else Role.COMPUTE
        r = self.send(acct, "registry", "register", role, os.urandom(32), "tls://n:1", 1, stake)
        assert (r is None) == (acct.address in self.active)
        if r is not None:
            self.active[acct.address] = stake
            self.unbonding[acct.address] = 0

    @rule(i=index, amount=amounts)
    def top_up(self, i: int, amount: int) -> None:
        acct = self.pick(self.data + self.compute, i)
        if self.send(acct, "registry", "top_up", amount) is not None:
            self.active[acct.address] += amount

    @rule(i=index, everything=st.booleans())
    def unbond(self, i: int, everything: bool) -> None:
        acct = self.pick(self.data + self.compute, i)
        have = self.active.get(acct.address, 0)
        amount = have if everything else E
        if self.send(acct, "registry", "unbond", amount) is not None:
            self.active[acct.address] -= amount
            self.unbonding[acct.address] += amount

    @rule(i=index)
    def withdraw_stake(self, i: int) -> None:
        acct = self.pick(self.data + self.compute, i)
        if self.send(acct, "registry", "withdraw") is not None:
            self.unbonding[acct.address] = 0

    @rule(seconds=st.sampled_from([60, 150, 1_100, 5_001]))
    def advance_time(self, seconds: int) -> None:
        self.chain.advance_time(seconds)

    @rule(i=index)
    def add_dataset(self, i: int) -> None:
        acct = self.pick(self.data, i)
        ds = os.urandom(32)
        r = self.send(acct, "datasets", "register_dataset", ds, b"\1" * 32, 10, b"\2" * 32,
                      b"\3" * 32)
        if r is not None:
            self.datasets.append(ds)

    # ---------------------------------------------------------------- tasks
    @precondition(lambda self: self.datasets and len(self.tasks) < 4)
    @rule(j=st.integers(0, 1), i=index, two=st.booleans(), fee=amounts)
    def create_task(self, j: int, i: int, two: bool, fee: int) -> None:
        names = [self.pick(self.datasets, i)]
        if two and len(self.datasets) > 1:
            other = self.pick(self.datasets, i + 1)
            if other != names[0]:
                names.append(other)
        req = self.requesters[j]
        r = self.send(req, "tasks", "create_task_receipt", os.urandom(32), names,
                      [req.address], fee)
        if r is not None:
            tid = self.c.tasks.events(r, "TaskCreated")[0]["task_id"]
            self.tasks.append(tid)
            self.fee[tid] = fee

    def seed_for(self, tid: int, voter: str) -> bytes:
        return self.seeds.setdefault((tid, voter), os.urandom(32))

    @precondition(lambda self: self.tasks)
    @rule(t=index, d=index, honest=mostly_true, approve=mostly_true)
    def owner_vote(self, t: int, d: int, honest: bool, approve: bool) -> None:
        tid = self.pick(self.tasks, t)
        ds = self.pick(list(self.c.tasks.get_task(tid).datasets), d)
        owner = self.c.datasets.owner_of(ds)
        voter = self.by_address[owner] if honest else self.pick(self.people, d)
        commit = seed_commitment(self.seed_for(tid, voter.address), voter.address)
        r = self.send(voter, "tasks", "vote_dataset", tid, ds, approve, commit)
        if r is not None:
            assert voter.address == owner, "a non-owner voted for a dataset"
            self.absorb(r, voter.address)

    @precondition(lambda self: self.tasks)
    @rule(t=index, v=index, honest=mostly_true, approve=mostly_true)
    def validator_vote(self, t: int, v: int, honest: bool, approve: bool) -> None:
        tid = self.pick(self.tasks, t)
        validators = self.c.tasks.validators(tid)
        voter = (self.by_address[self.pick(validators, v)] if honest and validators
                 else self.pick(self.people, v))
        commit = seed_commitment(self.seed_for(tid, voter.address), voter.address)
        r = self.send(voter, "tasks", "vote", tid, approve, commit)
        if r is not None:
            assert voter.address in validators, "a non-validator voted"
            self.absorb(r, voter.address)

    @precondition(lambda self: self.tasks)
    @rule(t=index, v=index, correct=mostly_true)
    def reveal(self, t: int, v: int, correct: bool) -> None:
        tid = self.pick(self.tasks, t)
        voters = [a for (task, a) in self.seeds if task == tid] or [self.people[0].address]
        voter = self.by_address[self.pick(voters, v)]
        seed = self.seeds.get((tid, voter.address), b"") if correct else os.urandom(32)
        r = self.send(voter, "tasks", "reveal", tid, seed or os.urandom(32))
        assert r is None or correct

    @precondition(lambda self: self.tasks)
    @rule(t=index)
    def draw(self, t: int) -> None:
        tid = self.pick(self.tasks, t)
        self.send(self.requesters[0], "tasks", "draw_committee", tid)

    @precondition(lambda self: self.tasks)
    @rule(t=index, m=index)
    def acknowledge(self, t: int, m: int) -> None:
        tid = self.pick(self.tasks, t)
        committee = list(self.c.tasks.get_task(tid).committee) or [self.compute[0].address]
        self.send(self.by_address[self.pick(committee, m)], "tasks", "acknowledge", tid)

    @precondition(lambda self: self.tasks)
    @rule(t=index)
    def redraw(self, t: int) -> None:
        tid = self.pick(self.tasks, t)
        info = self.c.tasks.get_task(tid)
        absent = {m for m in info.committee if not self.c.tasks.has_acknowledged(tid, m)}
        tasks = self.c.using(self.requesters[1]).tasks
        try:
            tasks.redraw(tid)
        except TransactionReverted:
            return
        self.absorb(tasks.last_receipt, self.requesters[1].address, redraw_of=(tid, absent))

    @precondition(lambda self: self.tasks)
    @rule(t=index, by_receiver=mostly_true, success=st.booleans(), blame=st.booleans(),
          evidence=mostly_true, m=index)
    def verdict(self, t: int, by_receiver: bool, success: bool, blame: bool, evidence: bool,
                m: int) -> None:
        tid = self.pick(self.tasks, t)
        info = self.c.tasks.get_task(tid)
        sender = self.by_address[info.requester] if by_receiver else self.pick(self.people, m)
        cheater = self.pick(list(info.committee), m) if blame and info.committee else None
        ev = os.urandom(32) if evidence else None
        r = self.send(sender, "tasks", "submit_verdict", tid, os.urandom(32), success,
                      cheater=cheater, evidence_hash=ev)
        if r is not None:
            assert sender.address in info.receivers
            self.absorb(r, sender.address)

    @precondition(lambda self: self.tasks)
    @rule(t=index)
    def expire(self, t: int) -> None:
        tid = self.pick(self.tasks, t)
        r = self.send(self.requesters[1], "tasks", "expire", tid)
        if r is not None:
            self.absorb(r, self.requesters[1].address)

    @precondition(lambda self: self.tasks)
    @rule(t=index, steps=st.integers(1, 12), approve=st.sampled_from([True] * 7 + [False]),
          success=mostly_true)
    def progress(self, t: int, steps: int, approve: bool, success: bool) -> None:
        """Take the next ``steps`` honest steps of a task, so runs reach the later stages."""
        for _ in range(steps):
            self.step_task(t, approve, success)

    def step_task(self, t: int, approve: bool, success: bool) -> None:
        tid = self.pick(self.tasks, t)
        tm = self.c.tasks
        info = tm.get_task(tid)
        if info.state == TaskState.SUBMITTED:
            for ds in info.datasets:
                owner = self.by_address[self.c.datasets.owner_of(ds)]
                commit = seed_commitment(self.seed_for(tid, owner.address), owner.address)
                r = self.send(owner, "tasks", "vote_dataset", tid, ds, approve, commit)
                if r is not None:
                    self.absorb(r, owner.address)
                    return
            for v in tm.validators(tid):
                voter = self.by_address[v]
                commit = seed_commitment(self.seed_for(tid, v), v)
                r = self.send(voter, "tasks", "vote", tid, approve, commit)
                if r is not None:
                    self.absorb(r, v)
                    return
        elif info.state == TaskState.APPROVED:
            for (task, voter), seed in list(self.seeds.items()):
                if task == tid and tm.commitment_of(tid, voter) != b"\0" * 32 and not (
                        tm.has_revealed(tid, voter)):
                    self.send(self.by_address[voter], "tasks", "reveal", tid, seed)
                    return
            self.draw(t)
        elif info.state == TaskState.COMMITTEE_DRAWN:
            for m in info.committee:
                if not tm.has_acknowledged(tid, m) and self.chain.timestamp() < info.ack_deadline:
                    self.send(self.by_address[m], "tasks", "acknowledge", tid)
                    return
            self.redraw(t)
        elif info.state == TaskState.RUNNING:
            # a failure names a cheater with evidence: the path that slashes
            cheater = None if success else info.committee[t % len(info.committee)]
            r = self.send(self.by_address[info.requester], "tasks", "submit_verdict", tid,
                          os.urandom(32), success, cheater=cheater,
                          evidence_hash=None if success else os.urandom(32))
            if r is not None:
                self.absorb(r, info.requester)

    @rule(i=index)
    def withdraw_credit(self, i: int) -> None:
        owed = [a for a in self.people
                if self.credited.get(a.address, 0) > self.withdrawn.get(a.address, 0)]
        acct = self.pick(owed + self.people[:2], i)
        due = self.credited.get(acct.address, 0) - self.withdrawn.get(acct.address, 0)
        before = self.chain.balance(acct.address)
        tasks = self.c.using(acct).tasks
        try:
            tasks.withdraw()
        except TransactionReverted:
            assert due == 0
            return
        receipt = tasks.last_receipt
        paid = self.c.tasks.events(receipt, "Withdrawn")[0]["amount"]
        assert paid == due > 0, "a withdrawal paid other than what was credited"
        gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        assert self.chain.balance(acct.address) == before + paid - gas
        self.withdrawn[acct.address] = self.withdrawn.get(acct.address, 0) + paid

    # ---------------------------------------------------------------- invariants
    @invariant()
    def money_is_accounted_for(self) -> None:
        reg, tm = self.c.registry, self.c.tasks
        bonded = sum(self.active.values()) + sum(self.unbonding.values())
        assert self.chain.balance(reg.address) == reg.total_bonded() == bonded
        open_fees = sum(f for tid, f in self.fee.items() if not self.closed.get(tid))
        unpaid = sum(self.credited.values()) - sum(self.withdrawn.values())
        assert tm.escrow_total() == open_fees
        assert tm.credit_total() == unpaid
        assert self.chain.balance(tm.address) == open_fees + unpaid

    @invariant()
    def nobody_paid_twice(self) -> None:
        for tid in self.tasks:
            assert self.closed.get(tid, 0) <= 1
            expected = self.task_slashed.get(tid, 0) + (self.fee[tid] if self.closed.get(tid)
                                                       else 0)
            assert self.task_credited.get(tid, 0) == expected
        for a in self.credited:
            assert self.c.tasks.credits(a) == self.credited[a] - self.withdrawn.get(a, 0)

    @invariant()
    def stakes_move_only_with_owner_or_evidence(self) -> None:
        for a in self.active:
            node = self.c.registry.get_node(a)
            assert node is not None
            assert (node.stake, node.unbonding) == (self.active[a], self.unbonding[a])

    def teardown(self) -> None:
        for tid in self.tasks:  # shows how deep the runs got (--hypothesis-show-statistics)
            event(f"task ended {self.c.tasks.state(tid).name}")
        self.chain.close()


ChainMachine.TestCase.settings = settings(
    max_examples=8, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestChainMachine = ChainMachine.TestCase
