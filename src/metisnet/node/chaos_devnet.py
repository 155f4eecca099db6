"""Fault injection over the multi-process devnet (issue 12): real processes, real sockets.

:class:`DevnetChaos` starts one devnet (anvil, 3 data nodes, 6 compute nodes, each its
own process) whose nodes sit behind a :class:`~metisnet.node.faultproxy.FaultFabric`, then
runs one task per scenario (``mean`` over every data node's dataset) with one fault:

=================================== ============================================= ===============
kind                                fault                                         expected end
=================================== ============================================= ===============
``devnet_honest``                   none (control)                                completed
``devnet_delay``                    a committee member's traffic is delayed       completed
                                    (every chunk, 10-80 ms) by its proxy
``devnet_drop``                     a committee member's connections are cut and  completed (after
                                    it is partitioned for 1-4 s                   a restart when
                                                                                  the cut failed
                                                                                  the session)
``devnet_corrupt``                  one bit flipped in a TLS record to or from a  completed after
                                    committee member (the AEAD tag catches it:    a restart
                                    the link and its sessions fail)
``devnet_chain_stopped``            anvil is stopped (SIGSTOP) for 2-6 s while    completed, with
                                    votes, acknowledgements or the computation    no redraw
                                    are under way, then continued (SIGCONT); the
                                    requester's acknowledgement wait (5 s) may
                                    be shorter than the stop
``devnet_data_restarted``           a data node's process is killed (SIGKILL)     completed, or
                                    once the committee is drawn or while it       failed cleanly
                                    computes, and started again from its config   with a refund
                                    and SQLite store, from which it resumes the
                                    task (the requester hands it nothing again)
``devnet_data_lost``                a data node's process is killed once the      failed cleanly
                                    committee is drawn, before it deals, and      with a refund
                                    started again only after the task ended: no   after the
                                    committee gets its inputs                     restarts;
                                                                                  nobody slashed
``devnet_compute_killed``           a committee member's process is killed        completed after
                                    mid-task (started again after the scenario)   a restart
``devnet_compute_restarted``        a committee member's process is killed and    completed (after
                                    started again 0.5-2 s later                   a restart, or in
                                                                                  the same round
                                                                                  when it was back
                                                                                  before its
                                                                                  peers' data
                                                                                  reached it)
``devnet_compute_bitflip``          a committee member's own process flips bits   cheat detected;
                                    in the MPC messages it sends (first round)    completed after
                                                                                  a restart;
                                                                                  nobody slashed
``devnet_compute_equivocation``     a committee member's process signs a lie      cheat detected;
                                    about ``dealt:key/all`` to one peer, then     the cheater
                                    stays silent towards the receivers            slashed, the
                                                                                  keccak of its
                                                                                  evidence on
                                                                                  chain; failed
                                                                                  cleanly
``devnet_data_double_vote``         a data node's process votes a second time,    completed; the
                                    the other way, once it voted                  chain refuses
                                                                                  the second vote
``devnet_data_inconsistent_shares`` a data node's process deals committee         cheat detected;
                                    member 0 a share its other holder lacks       completed after
                                    (first round)                                 a restart, or
                                                                                  failed cleanly;
                                                                                  nobody slashed
=================================== ============================================= ===============

The four cheats run inside the node processes (:mod:`metisnet.node.misbehave`, test only):
before the task is submitted the harness writes an order naming the task, the committee
position or the data node that is to cheat; the nodes of this (proxied) devnet read it,
the one named carries it out and says so in a file the harness reads, which makes it the
scenario's faulty node. The cheats are the in-process harness's (:mod:`metisnet.node.chaos`).

A data node restarted mid-task may make the task fail with a refund (its shares for
that round may be lost with it), so both ends count as expected there. A chain stop
shorter than the JSON-RPC timeout (30 s) only blocks the nodes' calls; a longer one is
ridden out by web3's retries of read calls (5, with exponential backoff): 40 s stops
during the acknowledgements and during the computation were.

After every scenario: a completed task settled with the plaintext mean; a failed one
ended Failed or Rejected with the fee back in the requester's credits and the escrow
released; no node outside the scenario's faulty set (the victim) lost stake on chain
(``honest_slashed``, from ``NodeRegistry.stake_of``); every data node still lists all its
datasets, active, with their row counts and commitments (``data_lost``); every killed
node is started again before the next scenario. When the devnet stops, every data node's
SQLite store is opened: its datasets, sealed files and audit hash chain must be intact.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from eth_hash.auto import keccak

from metisnet.chain.tasks import TaskState
from metisnet.errors import ConfigError, MetisError
from metisnet.node.chaos import COMPLETED, FAILED_CLEANLY, ChaosTotals, ScenarioResult
from metisnet.node.devnet import (
    MISBEHAVE_DIR,
    DevnetRequester,
    DevnetState,
    _alive,
    devnet_down,
    devnet_up,
    load_state,
    restart_node,
    stop_node,
    top_up_node,
)
from metisnet.node.faultproxy import Fault, FaultFabric
from metisnet.node.localnet import synthetic_column
from metisnet.node.misbehave import clear_order, fired_reports, write_order
from metisnet.node.storage import Store
from metisnet.types import TaskId

__all__ = [
    "DEVNET_EXPECTED",
    "DEVNET_KINDS",
    "DevnetChaos",
    "run_devnet_chaos",
]

log = logging.getLogger("metisnet.chaos")

FEE = 10**16
EITHER = f"{COMPLETED} or {FAILED_CLEANLY}"

#: Every devnet scenario kind and how its task must end.
DEVNET_EXPECTED: dict[str, str] = {
    "devnet_honest": COMPLETED,
    "devnet_delay": COMPLETED,
    "devnet_drop": COMPLETED,
    "devnet_corrupt": COMPLETED,
    "devnet_chain_stopped": COMPLETED,
    "devnet_data_restarted": EITHER,
    "devnet_data_lost": FAILED_CLEANLY,
    "devnet_compute_killed": COMPLETED,
    "devnet_compute_restarted": COMPLETED,
    "devnet_compute_bitflip": COMPLETED,
    "devnet_compute_equivocation": FAILED_CLEANLY,
    "devnet_data_double_vote": COMPLETED,
    "devnet_data_inconsistent_shares": EITHER,
}
DEVNET_KINDS: tuple[str, ...] = tuple(DEVNET_EXPECTED)
#: kinds whose first committee cannot deliver: the task must have been restarted
_RESTARTED = ("devnet_corrupt", "devnet_compute_killed", "devnet_compute_bitflip")
#: kinds whose fault a node process carries out (kind -> misbehaviour order)
_MISBEHAVE = {"devnet_compute_bitflip": "compute_bitflip",
              "devnet_compute_equivocation": "compute_equivocation",
              "devnet_data_double_vote": "data_double_vote",
              "devnet_data_inconsistent_shares": "data_inconsistent_shares"}
#: kinds in which nobody may lose stake (a disagreement names a pair at most)
_NOBODY_SLASHED = ("devnet_compute_bitflip", "devnet_data_double_vote",
                   "devnet_data_inconsistent_shares")


class _Result(ScenarioResult):
    """A scenario whose expected end may be either of two."""

    @property
    def as_expected(self) -> bool:
        return (self.outcome == self.expected or self.outcome in self.expected.split(" or ")) \
            and not self.problems


def _data_intact(root: Path, state: DevnetState) -> list[str]:
    """After shutdown: every data node's dataset is there and its audit chain verifies."""
    problems = []
    for p in state.by_role("data"):
        db = root / "nodes" / p.name / "node.db"
        try:
            store = Store(db)
        except MetisError as exc:
            problems.append(f"{p.name}: store unreadable: {exc}")
            continue
        try:
            store.verify_audit_chain()
            mine = {d for d, m in state.datasets.items() if m["node"].lower()
                    == p.address.lower()}
            have = {r.id for r in store.list_datasets()}
            if not mine <= have:
                problems.append(f"{p.name}: datasets missing: {sorted(mine - have)}")
            for r in store.list_datasets():
                if not (root / "nodes" / p.name / "datasets" / r.file_name).is_file():
                    problems.append(f"{p.name}: sealed file of {r.id} missing")
        except MetisError as exc:
            problems.append(f"{p.name}: {exc}")
        finally:
            store.close()
    return problems


def _host_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


class DevnetChaos:
    """One proxied devnet in ``root`` and the scenarios run on it (a context manager).

    ``session_timeout`` is how long the requester waits for a committee's output before
    it restarts the task; ``chain_stop`` the range of seconds anvil is stopped for.
    """

    def __init__(self, root: Path, *, seed: int = 0, rows: int = 500,
                 session_timeout: float = 10.0,
                 chain_stop: tuple[float, float] = (2.0, 6.0)) -> None:
        if not 0 < chain_stop[0] <= chain_stop[1] <= 120:
            raise ConfigError("chain_stop must be a range of seconds within (0, 120]")
        self.root = Path(root).resolve()
        self.seed = seed
        self.rows = rows
        self.session_timeout = session_timeout
        self.chain_stop = chain_stop
        self.fabric = FaultFabric(seed)
        self.orders = self.root / MISBEHAVE_DIR
        # the members' session timeout is the requester's: a member a cheater left waiting
        # reports (with its signed claims) while the requester still listens
        self.state, started = devnet_up(self.root, rows=rows, compute_nodes=6, proxied=True,
                                        session_timeout=session_timeout)
        if not started:
            raise MetisError(f"a devnet already runs in {self.root}; chaos needs its own")
        try:
            for p in self.state.procs:
                if p.role != "chain":
                    self.fabric.add(p.address, _host_port(p.listen), _host_port(p.tls))
            self.dr = DevnetRequester(self.state, account_index=5,
                                      session_timeout=session_timeout)
        except BaseException:
            self.fabric.close()
            devnet_down(self.root)
            raise
        self.columns = np.concatenate([synthetic_column(m["seed"], m["rows"])
                                       for m in self.state.datasets.values()])
        self._listed = self._datasets()
        self.final_problems: list[str] = []

    # -- helpers ----------------------------------------------------------------------------
    def _stakes(self) -> dict[str, int]:
        reg = self.dr.contracts.registry
        return {p.address.lower(): int(reg.stake_of(p.address))
                for p in self.state.procs if p.role in ("data", "compute")}

    def _datasets(self) -> dict[str, tuple[int, str, str]]:
        """dataset id -> (rows, commitment, status), as the data nodes list them."""
        out: dict[str, tuple[int, str, str]] = {}
        for p in self.state.by_role("data"):
            for d in self.dr.datasets(p.rest_url):
                out[d["dataset_id"].lower()] = (int(d["row_count"]), d["commitment"],
                                                d["status"])
        return out

    def _lost(self) -> list[str]:
        try:
            now = self._datasets()
        except MetisError as exc:
            return [f"datasets could not be listed: {exc}"]
        return [f"dataset {d}: {'missing' if d not in now else 'changed'}"
                for d, v in self._listed.items() if now.get(d) != v]

    def _recover(self) -> list[str]:
        """Start again every node that is down (the chain must be up)."""
        chain = self.state.by_role("chain")[0]
        os.kill(chain.pid, signal.SIGCONT)  # harmless when it runs
        self._reload()  # pids of nodes restarted during the scenario
        done = []
        for p in self.state.procs:
            if p.role != "chain" and not _alive(p.pid):
                restart_node(self.root, p.name)
                done.append(p.name)
        self._reload()
        return done

    def _reload(self) -> None:
        fresh = load_state(self.root)
        if fresh is not None:
            self.state = fresh

    # -- one scenario -----------------------------------------------------------------------
    def run(self, index: int, kind: str) -> ScenarioResult:
        if kind not in DEVNET_EXPECTED:
            raise ConfigError(f"unknown devnet scenario {kind!r}; known: "
                              f"{', '.join(DEVNET_KINDS)}")
        rng = random.Random(self.seed * 1_000_003 + index)
        res = _Result(index, kind, DEVNET_EXPECTED[kind])
        t0 = time.perf_counter()
        self.fabric.reset()
        tm = self.dr.contracts.tasks
        stakes = self._stakes()
        escrow, credit = int(tm.escrow_total()), int(tm.credits(self.dr.address))
        faulty: set[str] = set()
        workers: list[threading.Thread] = []
        errors: list[str] = []
        stop_s = rng.uniform(*self.chain_stop)
        stage = {"devnet_chain_stopped": rng.choice(["voting", "committee drawn",
                                                     "computing"]),
                 "devnet_data_restarted": rng.choice(["committee drawn", "computing"]),
                 "devnet_data_lost": "committee drawn",
                 }.get(kind, "computing")
        spec = self.dr.spec("mean", [(d, ["age"]) for d in self.state.datasets], FEE)
        fired: dict[str, Any] = {}

        def background(fn: Callable[[], None]) -> None:
            def run() -> None:
                try:
                    fn()
                except Exception as exc:  # reported in the scenario's problems
                    errors.append(f"{type(exc).__name__}: {exc}")
            t = threading.Thread(target=run, daemon=True, name=f"chaos-{kind}")
            t.start()
            workers.append(t)

        def progress(task_id: int, now: str) -> None:
            if now != stage or fired:
                return
            fired["task"] = task_id
            if kind == "devnet_honest":
                return
            if kind == "devnet_chain_stopped":
                background(lambda: self._stop_chain(stop_s))
                res.faults_injected = 1
                return
            if kind == "devnet_data_restarted":
                victim = self.state.by_role("data")[rng.randrange(len(self.state.by_role("data")))]
                faulty.add(victim.address.lower())
                pause = rng.uniform(0.0, 1.0)
                background(lambda: self._restart_data(victim.name, task_id, pause))
                res.faults_injected = 1
                return
            if kind == "devnet_data_lost":
                # killed before it deals, and started again only once the task has ended
                # (by _recover): no committee can ever get its inputs, so the task must
                # fail with a refund after its restarts, and nobody may be slashed
                data = self.state.by_role("data")
                victim = data[rng.randrange(len(data))]
                faulty.add(victim.address.lower())
                stop_node(self.root, victim.name)
                res.faults_injected = 1
                return
            committee = [c.lower() for c in tm.get_task(TaskId(task_id)).committee]
            member = committee[rng.randrange(len(committee))]
            faulty.add(member)
            name = next(p.name for p in self.state.by_role("compute")
                        if p.address.lower() == member)
            if kind == "devnet_delay":
                self.fabric.arm(Fault("delay", member, delay_s=rng.uniform(0.01, 0.08)))
            elif kind == "devnet_drop":
                self.fabric.arm(Fault("drop", member, partition_s=rng.uniform(1.0, 4.0)))
            elif kind == "devnet_corrupt":
                self.fabric.arm(Fault("corrupt", member, after_bytes=4096))
            elif kind == "devnet_compute_killed":
                stop_node(self.root, name)
                res.faults_injected = 1
            elif kind == "devnet_compute_restarted":
                pause = rng.uniform(0.5, 2.0)
                stop_node(self.root, name)
                res.faults_injected = 1
                background(lambda: self._restart_compute(name, pause))

        order = _MISBEHAVE.get(kind)
        task_next = int(tm.task_count()) + 1  # this harness is the devnet's only requester
        if order is not None:
            data = self.state.by_role("data")
            write_order(self.orders, order, task_next, pos=rng.randrange(3),
                        node=data[rng.randrange(len(data))].address,
                        seed=rng.getrandbits(32))

        # no scenario here has a no-show, so a generous wait costs nothing; a short one
        # would redraw (and slash) members that are merely slow on a loaded machine. A
        # chain stop may outlast the wait: the requester must not count the stall against
        # the members (a devnet requester advances chain time past the deadline to redraw)
        ack_wait = 5.0 if kind == "devnet_chain_stopped" else 10.0
        try:
            result = self.dr.requester(timeout=120, ack_wait=ack_wait,
                                       progress=progress).run(spec)
        except MetisError as exc:
            res.problems.append(f"the requester raised {type(exc).__name__}: {exc}")
            result = None
        for t in workers:
            t.join(60.0)
        self.fabric.disarm()
        if kind in ("devnet_delay", "devnet_drop", "devnet_corrupt"):
            res.faults_injected = self.fabric.fired
        res.problems.extend(errors)
        reports: dict[str, dict[str, Any]] = {}
        if order is not None:
            clear_order(self.orders)
            reports = fired_reports(self.orders, task_next)
            faulty.update(reports)
            res.faults_injected = int(bool(reports))
        if result is not None:
            self._judge(res, result, escrow, credit)
        restarted = self._recover()
        log.info("scenario %d (%s): %s; restarted %s", index, kind, res.outcome, restarted)
        if kind in _RESTARTED and res.faults_injected and not res.restarts \
                and res.outcome == COMPLETED:
            res.problems.append("the faulty committee's task was not restarted")
        for node, stake in self._stakes().items():
            if stake < stakes[node]:
                if node in faulty:
                    res.faulty_slashed += 1
                else:
                    res.honest_slashed += 1
                    res.problems.append(f"honest node {node} was slashed")
        if order is not None:
            self._cheats(res, result, faulty, reports, stakes)
        self._rebond(stakes)
        lost = self._lost()
        res.data_lost = len(lost)
        res.problems.extend(lost)
        res.seconds = time.perf_counter() - t0
        return res

    def _cheats(self, res: ScenarioResult, result: Any, faulty: set[str],
                reports: dict[str, dict[str, Any]], before: dict[str, int]) -> None:
        """What the chain and the requester made of a node process's misbehaviour."""
        if not reports:
            res.problems.append("the ordered misbehaviour was not carried out")
            return
        after = self._stakes()
        slashed = {n for n, stake in before.items() if after.get(n, 0) < stake}
        if res.kind in _NOBODY_SLASHED and slashed:
            res.problems.append(f"slashed without proof of a cheat: {sorted(slashed)}")
        if res.kind == "devnet_data_double_vote":
            refused = [r for doc in reports.values() for r in doc.get("refused", [])]
            if not refused or not all(refused):
                res.problems.append(f"the chain accepted a second vote ({refused})")
            return
        if result is None:
            return
        if res.kind == "devnet_compute_equivocation":
            named = (result.slashed or "").lower()
            if not named:
                res.problems.append("the equivocating member was not slashed (judged: "
                                    f"{'; '.join(result.judgements) or 'nothing'})")
            elif named not in faulty:
                res.problems.append(f"the verdict slashed {named}, not the cheater")
            elif named not in slashed:
                res.problems.append(f"the verdict named {named}, whose stake did not drop")
            elif keccak(result.evidence) != result.evidence_hash:
                res.problems.append("the evidence hash on chain is not keccak(evidence)")
            else:
                res.cheaters_slashed = 1
                res.cheats_detected = 1
            return
        # a bit flip or an inconsistent deal: the first committee's session must fail
        # (its checks abort it) and the task restart or fail; the result is never wrong
        if result.restarts or str(result.verdict).startswith("failed verification"):
            res.cheats_detected = 1
        else:
            res.problems.append("the cheat went undetected")

    def _rebond(self, before: dict[str, int]) -> None:
        """A slashed node's operator bonds again what it lost, so the next scenarios still
        draw from every node (a restart needs a committee disjoint from the first)."""
        for node, stake in self._stakes().items():
            if stake < before[node]:
                name = next(p.name for p in self.state.procs if p.address.lower() == node)
                top_up_node(self.root, name, before[node] - stake)
                log.info("%s bonded %d wei again after its slash", name, before[node] - stake)

    def _judge(self, res: ScenarioResult, result: Any, escrow: int, credit: int) -> None:
        tm = self.dr.contracts.tasks
        info = tm.get_task(TaskId(result.task_id))
        res.state, res.verdict = info.state.name, result.verdict
        res.redraws, res.restarts = result.redraws, result.restarts
        released = int(tm.escrow_total()) == escrow
        if (info.state == TaskState.SETTLED and result.values is not None and released
                and abs(float(result.values[0]) - float(self.columns.mean())) < 1e-3):
            res.outcome = COMPLETED
        elif info.state in (TaskState.FAILED, TaskState.REJECTED) and released and \
                int(tm.credits(self.dr.address)) - credit >= FEE:
            res.outcome = FAILED_CLEANLY
        elif info.state == TaskState.SETTLED and result.values is not None:
            res.problems.append(f"WRONG RESULT {float(result.values[0])!r}, expected "
                                f"{float(self.columns.mean())!r}")

    def _stop_chain(self, seconds: float) -> None:
        pid = self.state.by_role("chain")[0].pid
        log.info("stopping the chain (pid %d) for %.1f s", pid, seconds)
        os.kill(pid, signal.SIGSTOP)  # the anvil this devnet started
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        log.info("chain continued")

    def _restart_compute(self, name: str, pause: float) -> None:
        time.sleep(pause)
        restart_node(self.root, name)

    def _restart_data(self, name: str, task_id: int, pause: float) -> None:
        time.sleep(pause)
        stop_node(self.root, name)
        restart_node(self.root, name)
        self._reload()
        # nothing is handed again: the node resumes the task from its store
        log.info("%s restarted; it resumes task %d from its store", name, task_id)

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Stop the devnet; the problems found in the data nodes' stores (none expected)."""
        self.fabric.close()
        self.dr.close()
        chain = self.state.by_role("chain")[0]
        if _alive(chain.pid):
            os.kill(chain.pid, signal.SIGCONT)
        devnet_down(self.root)
        self.final_problems = _data_intact(self.root, self.state)
        return self.final_problems

    def __enter__(self) -> DevnetChaos:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_devnet_chaos(root: Path, runs: int, *, seed: int = 0,
                     kinds: Sequence[str] | None = None,
                     progress: Callable[[ScenarioResult], None] | None = None,
                     session_timeout: float = 10.0, rows: int = 500,
                     chain_stop: tuple[float, float] = (2.0, 6.0)) -> ChaosTotals:
    """``runs`` scenarios on one proxied devnet; kinds cycled if given, else drawn."""
    unknown = sorted(set(kinds or ()) - set(DEVNET_KINDS))
    if unknown:
        raise ConfigError(f"unknown devnet scenario(s) {', '.join(unknown)}; known: "
                          f"{', '.join(DEVNET_KINDS)}")
    rng = random.Random(seed)
    totals = ChaosTotals()
    chaos = DevnetChaos(root, seed=seed, rows=rows, session_timeout=session_timeout,
                        chain_stop=chain_stop)
    results: list[ScenarioResult] = []
    try:
        for i in range(runs):
            kind = kinds[i % len(kinds)] if kinds else rng.choice(DEVNET_KINDS)
            r = chaos.run(i, kind)
            results.append(r)
            totals.add(r)
            if progress is not None:
                progress(r)
    finally:
        lost = chaos.close()
    if lost and results:  # found in the stores once the devnet stopped
        results[-1].problems.extend(lost)
        results[-1].data_lost += len(lost)
        totals.data_lost += len(lost)
    return totals

