"""Issue 12 over real processes: faults on a multi-process devnet behind fault proxies.

A bounded sample (one devnet, four scenarios; ``metis chaos --devnet`` runs more): a bit
flipped in a committee member's TLS traffic, the chain node stopped, a data node killed
and restarted, a committee member killed and restarted. Every task completes with the
right mean (or, for the data node, fails cleanly with a refund); nobody is slashed (read
from chain stakes); no dataset is lost (listed by the nodes while they run, then read
from their SQLite stores).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from metisnet.chain.anvil import find_anvil
from metisnet.cli import main
from metisnet.errors import ChainError
from metisnet.node.chaos import TOTAL_KEYS
from metisnet.node.chaos_devnet import DEVNET_KINDS, run_devnet_chaos

pytestmark = pytest.mark.integration

SAMPLE = ("devnet_corrupt", "devnet_chain_stopped", "devnet_data_restarted",
          "devnet_compute_restarted")


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
    assert doc["completed"] >= len(SAMPLE) - 1  # only the data node's may fail cleanly
    assert doc["honest_slashed"] == 0 and doc["data_lost"] == 0
    corrupt = totals.scenarios[0]
    assert corrupt.restarts >= 1  # the flipped bit failed the first committee's session
    # the devnet is down and its stores were checked: no process is left behind
    assert not (tmp_path / "devnet" / "state.json").exists()


def test_metis_chaos_devnet_refuses_an_in_process_kind() -> None:
    res = CliRunner().invoke(main, ["chaos", "--devnet", "--runs", "1", "--kind", "no_show"])
    assert res.exit_code == 2 and "unknown kind" in res.output
    assert all(k.startswith("devnet_") for k in DEVNET_KINDS)
