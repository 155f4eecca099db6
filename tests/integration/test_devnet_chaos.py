"""Issue 12 over real processes: faults on a multi-process devnet behind fault proxies.

A bounded sample (one devnet, five scenarios; ``metis chaos --devnet`` runs more): a bit
flipped in a committee member's TLS traffic, the chain node stopped, a data node killed
and restarted, a committee member killed and restarted, a committee member's process
equivocating in its signed claims (test-only misbehaviour, :mod:`metisnet.node.misbehave`).
Every task completes with the right mean (or, for the data node, fails cleanly with a
refund); only the equivocating member is slashed, with evidence, and its task fails
cleanly; no honest node is slashed (read from chain stakes); no dataset is lost (listed
by the nodes while they run, then read from their SQLite stores).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from metisnet.chain.anvil import find_anvil
from metisnet.cli import main
from metisnet.errors import ChainError, ConfigError
from metisnet.node.chaos import TOTAL_KEYS
from metisnet.node.chaos_devnet import DEVNET_KINDS, run_devnet_chaos
from metisnet.node.devnet import NodeProc, _node_env
from metisnet.node.misbehave import (
    MISBEHAVE_ENV,
    arm_compute,
    arm_data,
    fired_reports,
    write_order,
)

pytestmark = pytest.mark.integration

SAMPLE = ("devnet_corrupt", "devnet_chain_stopped", "devnet_data_restarted",
          "devnet_compute_restarted", "devnet_compute_equivocation")


def test_a_bounded_devnet_chaos_sample(tmp_path: Path) -> None:
    try:
        find_anvil()
    except ChainError as exc:
        pytest.fail(f"{exc} (run scripts/install-anvil.sh)")
    totals = run_devnet_chaos(tmp_path / "devnet", len(SAMPLE), seed=2, kinds=SAMPLE,
                              session_timeout=6.0, rows=200, chain_stop=(1.0, 2.0))
    for r in totals.scenarios:
        assert r.as_expected, (r.kind, r.outcome, r.state, r.verdict, r.problems)
        assert r.faults_injected >= 1, r
    doc = totals.totals()
    assert list(doc) == list(TOTAL_KEYS)
    assert doc["completed"] + doc["failed_cleanly"] == len(SAMPLE)
    # only the data node's may fail cleanly, and the equivocation's must
    assert doc["completed"] >= len(SAMPLE) - 2
    assert doc["honest_slashed"] == 0 and doc["data_lost"] == 0
    corrupt = totals.scenarios[0]
    assert corrupt.restarts >= 1  # the flipped bit failed the first committee's session
    # a compute node process equivocated: it alone was slashed, with keccak(evidence)
    # on chain (checked in the scenario), and the task failed with a refund
    equivocation = totals.scenarios[-1]
    assert equivocation.outcome == "failed_cleanly"
    assert equivocation.cheaters_slashed == 1 and equivocation.faulty_slashed == 1
    assert doc["cheaters_slashed"] == 1
    # the devnet is down and its stores were checked: no process is left behind
    assert not (tmp_path / "devnet" / "state.json").exists()


def test_metis_chaos_devnet_refuses_an_in_process_kind() -> None:
    res = CliRunner().invoke(main, ["chaos", "--devnet", "--runs", "1", "--kind", "no_show"])
    assert res.exit_code == 2 and "unknown kind" in res.output
    assert all(k.startswith("devnet_") for k in DEVNET_KINDS)


def test_misbehaviour_is_armed_only_for_a_chaos_devnets_nodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test-only hooks: no environment variable, no hook; only a proxied devnet's node
    processes (which only the chaos harness runs) get the variable."""
    monkeypatch.delenv(MISBEHAVE_ENV, raising=False)

    class Agent:
        sessions = poll = object()

    agent = Agent()
    arm_data(agent)  # type: ignore[arg-type]
    arm_compute(agent)  # type: ignore[arg-type]
    assert agent.sessions is Agent.sessions and agent.poll is Agent.poll
    plain = NodeProc("compute-0", "compute", 0, "log")
    proxied = NodeProc("compute-1", "compute", 0, "log", listen="127.0.0.1:1")
    leaked = {MISBEHAVE_ENV: "/elsewhere", "PATH": "/bin"}
    assert MISBEHAVE_ENV not in _node_env(tmp_path, plain, leaked)
    assert _node_env(tmp_path, proxied, leaked)[MISBEHAVE_ENV] == str(tmp_path / "misbehave")
    with pytest.raises(ConfigError):
        write_order(tmp_path, "rob_the_bank", 1)
    write_order(tmp_path, "data_double_vote", 7, node="0xAB")
    assert fired_reports(tmp_path, 7) == {}
