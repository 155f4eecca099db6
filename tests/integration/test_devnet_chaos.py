"""Issue 12 over real processes: a committee member killed mid-task on the devnet.

The task restarts with a fresh committee and completes; nobody is slashed; every data
node keeps its datasets and an audit log whose hash chain verifies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from metisnet.chain.anvil import find_anvil
from metisnet.errors import ChainError
from metisnet.node.chaos_devnet import devnet_kill_scenario

pytestmark = pytest.mark.integration


def test_a_killed_committee_member_is_replaced_and_the_task_completes(tmp_path: Path) -> None:
    try:
        find_anvil()
    except ChainError as exc:
        pytest.fail(f"{exc} (run scripts/install-anvil.sh)")
    r = devnet_kill_scenario(tmp_path / "devnet", seed=3, rows=500, session_timeout=10.0)
    assert r.faults_injected == 1
    assert r.outcome == "completed", (r.state, r.verdict, r.problems)
    assert r.restarts >= 1, r
    assert r.honest_slashed == 0 and r.data_lost == 0, r.problems
    assert not r.problems, r.problems
