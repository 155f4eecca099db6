"""Issue 12: faults on the in-process network; nothing lost, nobody honest slashed."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from metisnet.cli import main
from metisnet.errors import NetworkError, ProtocolError, WireError
from metisnet.net.channel import InMemoryNetwork
from metisnet.node.chaos import (
    EXPECTED,
    KINDS,
    RESTARTED,
    TOTAL_KEYS,
    BitFlipChannel,
    CorruptFrameChannel,
    DropChannel,
    EquivocatingDealer,
    LostChannel,
    run_chaos,
)


def test_a_bounded_chaos_sample_keeps_the_invariants(tmp_path: Path) -> None:
    """Every kind once (13 scenarios): each ends as its kind requires; the equivocating
    member is slashed on chain with the evidence's hash, nobody else ever is."""
    totals = run_chaos(tmp_path, len(KINDS), seed=12, kinds=KINDS, timeout=1.0)
    assert [r.kind for r in totals.scenarios] == list(KINDS)
    for r in totals.scenarios:
        assert r.as_expected, (r.kind, r.outcome, r.state, r.verdict, r.problems)
        assert r.faults_injected == (0 if r.kind == "honest" else 1), r.kind
    t = totals.totals()
    assert t["honest_slashed"] == 0
    assert t["data_lost"] == 0
    assert t["completed"] == sum(v == "completed" for v in EXPECTED.values())
    assert t["failed_cleanly"] == sum(v == "failed_cleanly" for v in EXPECTED.values())
    # the MPC cheat, the dealer's equivocation, the member's equivocation, its false claim
    assert t["cheats_detected"] == 4
    assert t["cheaters_slashed"] == 1
    by = {r.kind: r for r in totals.scenarios}
    assert by["equivocation"].cheaters_slashed == 1 and by["equivocation"].state == "FAILED"
    assert by["false_claim"].faulty_slashed == 0 and by["false_claim"].restarts == 1
    assert by["no_show"].redraws == 1 and by["no_show"].faulty_slashed == 1
    assert by["policy_refusal"].state == "REJECTED"
    for kind in RESTARTED:  # the first committee delivered nothing: a fresh one finished
        assert by[kind].state == "SETTLED" and by[kind].restarts >= 1, kind
    for kind in ("dealer_equivocation", "data_node_lost"):  # a data node at fault: refund
        assert by[kind].state == "FAILED", kind
    assert by["honest"].restarts == 0 and by["delays"].restarts == 0


def test_the_same_seed_draws_the_same_scenarios(tmp_path: Path) -> None:
    from metisnet.node.chaos import ChaosRunner
    a = ChaosRunner(tmp_path / "a", seed=5)
    b = ChaosRunner(tmp_path / "b", seed=5)
    assert [a.rng.choice(KINDS) for _ in range(20)] == [b.rng.choice(KINDS) for _ in range(20)]


# -- the channel wrappers alone --------------------------------------------------------------
def _pair() -> tuple[InMemoryNetwork, list[int]]:
    return InMemoryNetwork(2, timeout=0.2), []


def test_bit_flip_changes_mpc_messages_only() -> None:
    net, fired = _pair()
    ch = BitFlipChannel(net.channel(0), lambda: fired.append(1), random.Random(1), start=0)
    x = np.arange(4, dtype=np.uint64)
    ch.send(1, "spec", x)
    ch.send(1, "mpc:open", x)
    assert np.array_equal(net.channel(1).recv(0, "spec"), x)
    got = net.channel(1).recv(0, "mpc:open")
    assert int(np.count_nonzero(got != x)) == 1 and fired == [1]


def test_equivocating_dealer_changes_one_copy() -> None:
    fired: list[int] = []
    ch = EquivocatingDealer(InMemoryNetwork(3).channel(2), lambda: fired.append(1))
    ch.send(0, "in:0:a", np.zeros(3, dtype=np.uint64))
    assert fired == []
    ch.send(0, "in:0:b", np.zeros(3, dtype=np.uint64))
    assert fired == [1]


def test_a_lost_node_fails_every_later_call() -> None:
    net, fired = _pair()
    ch = LostChannel(net.channel(0), lambda: fired.append(1), after=1)
    ch.send(1, "a", np.zeros(1))
    with pytest.raises(NetworkError):
        ch.send(1, "b", np.zeros(1))
    with pytest.raises(NetworkError):
        ch.recv(1, "c")
    assert fired == [1]


def test_a_dropped_message_times_out_the_receiver() -> None:
    net, fired = _pair()
    ch = DropChannel(net.channel(0), lambda: fired.append(1), which=0)
    ch.send(1, "mpc:x", np.zeros(2, dtype=np.uint64))
    with pytest.raises(TimeoutError):
        net.channel(1).recv(0, "mpc:x")
    assert fired == [1]


@pytest.mark.parametrize("seed", range(40))
def test_a_corrupted_frame_is_refused_or_delivered_with_its_header_intact(seed: int) -> None:
    net, fired = _pair()
    x = np.arange(16, dtype=np.uint64)
    net.channel(0).send(1, "mpc:m", x)
    ch = CorruptFrameChannel(net.channel(1), lambda: fired.append(1), random.Random(seed),
                             which=0)
    try:
        got = ch.recv(0, "mpc:m")
    except (WireError, ProtocolError):
        pass
    else:  # only the payload changed: same shape and dtype, one bit off
        assert got.dtype == x.dtype and got.shape == x.shape
        assert int(np.count_nonzero(got != x)) <= 1
    assert fired == [1]


def test_cli_chaos_writes_the_totals(tmp_path: Path) -> None:
    out = tmp_path / "totals.json"
    res = CliRunner().invoke(main, ["chaos", "--runs", "2", "--seed", "1", "--kind", "honest",
                                    "--kind", "policy_refusal", "--timeout", "1",
                                    "--json", str(out), "--data-dir", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert list(doc) == list(TOTAL_KEYS)
    assert doc == {"completed": 1, "failed_cleanly": 1, "faults_injected": 1,
                   "cheats_detected": 0, "honest_slashed": 0, "data_lost": 0,
                   "cheaters_slashed": 0}
    assert "honest" in res.output and "total" in res.output


def test_cli_chaos_refuses_an_unknown_kind() -> None:
    res = CliRunner().invoke(main, ["chaos", "--runs", "1", "--kind", "meteor"])
    assert res.exit_code == 2 and "unknown kind" in res.output
