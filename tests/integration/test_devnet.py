"""The whole task flow over real processes: anvil, 3 data nodes, 6 compute nodes, TLS.

``metis devnet`` starts every node as its own OS process; a requester in this process hands
the spec to the data nodes over REST and receives the result over its own TLS endpoint.
Checked: the result against the plaintext, the on-chain state (task settled, fee split
between committee and data owners, escrow empty), a data owner's refusal (the task is
rejected before any share leaves a node, the fee refunded) and the data nodes' audit logs
(read from their SQLite files, read-only, after shutdown).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from metisnet.chain.tasks import TaskState
from metisnet.cli import main
from metisnet.errors import ChainError
from metisnet.node.devnet import (
    DevnetRequester,
    DevnetState,
    NodeProc,
    devnet_down,
    devnet_status,
    devnet_up,
    load_state,
)
from metisnet.node.localnet import synthetic_column
from metisnet.types import TaskId

pytestmark = pytest.mark.integration

ROWS = 2000
FEE = 10**16


def _require_anvil() -> None:
    """The devnet needs anvil (``make test`` installs it); its absence is a failure."""
    from metisnet.chain.anvil import find_anvil

    try:
        find_anvil()
    except ChainError as exc:
        pytest.fail(f"{exc} (run scripts/install-anvil.sh)")


def test_joint_mean_over_the_devnet(tmp_path: Path) -> None:
    _require_anvil()
    root = tmp_path / "devnet"
    state, started = devnet_up(root, rows=ROWS)
    try:
        assert started and len(state.by_role("data")) == 3
        assert len(state.by_role("compute")) == 6
        assert all(r["alive"] for r in devnet_status(root))
        again, started_again = devnet_up(root, rows=ROWS)  # idempotent while it runs
        assert not started_again and again.chain_url == state.chain_url
        union = np.concatenate([synthetic_column(d["seed"], d["rows"])
                                for d in state.datasets.values()])

        with DevnetRequester(state, account_index=3) as dr:
            balance0 = dr.chain.balance(dr.address)
            spec = dr.spec("mean", [(d, ["age"]) for d in state.datasets], FEE)
            res = dr.requester(timeout=90).run(spec)
            assert res.verdict == "verified", res.verdict
            assert res.values is not None
            assert abs(float(res.values[0]) - float(union.mean())) < 1e-3
            assert set(res.timings) >= {"consensus", "sharing+computing", "verifying",
                                        "settling", "total"}

            tm = dr.contracts.tasks
            info = tm.get_task(TaskId(res.task_id))
            assert info.state == TaskState.SETTLED
            assert tm.escrow_total() == 0
            computes = {p.address.lower() for p in state.by_role("compute")}
            owners = {p.address for p in state.by_role("data")}
            assert {c.lower() for c in info.committee} <= computes
            credits = {a.lower(): int(tm.credits(a)) for a in (*info.committee, *owners)}
            share = FEE * 7000 // 10000
            for c in info.committee:
                assert credits[c.lower()] == share // 3
            for o in owners:
                assert credits[o.lower()] == (FEE - share) // 3
            paid = sum(credits.values()) + int(tm.credits(dr.address))
            assert paid == FEE  # the whole fee, nothing more, nothing less
            assert balance0 - dr.chain.balance(dr.address) >= FEE

            # only the task's requester may hand its spec to a data node
            with DevnetRequester(state, account_index=6) as other:
                owner = state.by_role("data")[0].address
                decision = other.deliver(owner, res.task_id, spec)
                assert not decision.approve and decision.rule == "requester"

            # the data nodes close their local tasks once they see the settlement
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if all(_local_states(dr, p.rest_url) == {"done"}
                       for p in state.by_role("data")):
                    break
                time.sleep(0.2)

            # an owner who no longer admits this requester stops the next task before any
            # share leaves any node; the fee comes back
            refuser = state.by_role("data")[1]
            _restrict_policy(root, refuser, state)
            credit0 = int(tm.credits(dr.address))
            spec = dr.spec("sum", [(d, ["age"]) for d in state.datasets], FEE)
            refused = dr.requester(timeout=90).run(spec)
            assert refused.verdict == "rejected" and refused.values is None
            assert refused.state == TaskState.REJECTED
            assert list(refused.refusals) == [refuser.address]
            assert "requester" in refused.refusals[refuser.address]
            assert int(tm.credits(dr.address)) - credit0 == FEE
            assert tm.escrow_total() == 0
            rejected_id = refused.task_id
    finally:
        stopped = devnet_down(root)
    assert len(stopped) == 10
    assert rejected_id == res.task_id + 1
    assert load_state(root) is None and devnet_status(root) == []

    requester = dr.address
    for p in state.by_role("data"):
        db = Path(root / "nodes" / p.name / "node.db")
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT actor, action, outcome, dataset_id FROM audit "
                               "ORDER BY seq").fetchall()
        finally:
            con.close()
        actions = [(a, o) for _, a, o, _ in rows]
        assert ("request", "ok") in actions
        requests = [(r[0], r[2]) for r in rows if r[1] == "request"]
        if p.name == "data-1":  # the refusal is recorded with its rule
            assert requests == [(requester, "ok"), (requester, "refused")]
        else:  # the others approved the second task too; it never ran
            assert requests == [(requester, "ok"), (requester, "ok")]
        assert sum(1 for r in rows if r[1] == "read_columns") == 1  # the first task only
        for action in ("read_columns", "task_running", "task_done"):
            assert (action, "ok") in actions, (p.name, action, actions)
        held = {d for d, meta in state.datasets.items() if meta["node"] == p.address}
        assert {r[3] for r in rows if r[1] == "read_columns"} == held


def _local_states(dr: DevnetRequester, rest_url: str) -> set[str]:
    import hashlib

    from metisnet.node.auth import sign_request

    target = "/tasks?limit=100"
    resp = dr._http.get(rest_url + target,
                        headers=sign_request(dr._signing, "GET", target,
                                             hashlib.sha256(b"").hexdigest()))
    return {t["state"] for t in resp.json()} if resp.status_code == 200 else set()


def _restrict_policy(root: Path, node: NodeProc, state: DevnetState) -> None:
    """As the owner of ``node``'s dataset: admit one other requester only."""
    import hashlib
    import json

    import httpx

    from metisnet.net.identity import load_keystore
    from metisnet.node.auth import sign_request
    from metisnet.node.identity import NodeKey as SigningKey

    password = (root / "password").read_text().strip()
    owner = SigningKey(load_keystore(root / "keys" / f"{node.name}.keystore",
                                     password).secret_bytes())
    (dataset,) = [d for d, m in state.datasets.items() if m["node"] == node.address]
    body = json.dumps({"allowed_programs": ["*"], "allowed_columns": ["*"],
                       "allowed_requesters": ["0x" + "11" * 20]}).encode()
    target = f"/datasets/{dataset}/policy"
    headers = sign_request(owner, "PUT", target, hashlib.sha256(body).hexdigest())
    resp = httpx.put(node.rest_url + target, content=body,
                     headers={**headers, "content-type": "application/json"}, timeout=30)
    assert resp.status_code == 200, resp.text


def test_a_no_show_is_redrawn_and_slashed(tmp_path: Path) -> None:
    _require_anvil()
    root = tmp_path / "devnet"
    state, _ = devnet_up(root, rows=500, no_shows=1)
    no_show = state.by_role("compute")[0].address
    try:
        with DevnetRequester(state, account_index=5) as dr:
            registry, tm = dr.contracts.registry, dr.contracts.tasks
            stake0 = int(registry.stake_of(no_show))
            penalty = 10**17  # ChainParams.no_show_penalty
            union = np.concatenate([synthetic_column(d["seed"], d["rows"])
                                    for d in state.datasets.values()])
            for _ in range(10):  # in a given draw with probability 3/5; never: 1e-4
                credit0 = int(tm.credits(dr.address))
                spec = dr.spec("mean", [(d, ["age"]) for d in state.datasets], FEE)
                res = dr.requester(timeout=90, ack_wait=2.0).run(spec)
                assert res.verdict == "verified", res.verdict
                assert res.values is not None
                assert abs(float(res.values[0]) - float(union.mean())) < 1e-3
                assert no_show.lower() not in {c.lower() for c in res.committee}
                if res.redraws:
                    break
            else:
                pytest.fail("the no-show was never drawn")
            assert res.redraws == 1
            assert int(registry.stake_of(no_show)) == stake0 - penalty
            # the penalty goes to the requester (beside the fee's rounding remainder)
            assert int(tm.credits(dr.address)) - credit0 >= penalty
        # the same network through the CLI: `metis task submit`
        out = CliRunner().invoke(main, ["task", "submit", "--data-dir", str(root),
                                        "--program", "count", "--account", "6", "--json"])
        assert out.exit_code == 0, out.output
        doc = json.loads(out.stdout)
        assert doc["verdict"] == "verified" and doc["state"] == "settled"
        assert doc["values"] == [float(union.size)]
    finally:
        devnet_down(root)
