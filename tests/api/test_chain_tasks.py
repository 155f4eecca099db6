"""POST /v1/chain-tasks/{id}: the requester hands an on-chain task's spec to a data node.

On the embedded chain (one process): the route is signed like every other, only the task's
on-chain requester may use it, the spec must match the task's hash, and a verified spec's
receivers are pinned in the node's trust store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metisnet.api.app import create_app
from metisnet.api.netnode import chain_task_router
from metisnet.node.auth import sign_request
from metisnet.node.chaintrust import ChainTrust
from metisnet.node.identity import NodeKey
from metisnet.node.localnet import LocalNetwork
from metisnet.node.taskspec import TaskSpec
from metisnet.types import DatasetId, NodeId

CERT = "ab" * 32


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    n = LocalNetwork(Path(tmp_path_factory.mktemp("chain-tasks")), data_nodes=1,
                     compute_nodes=3, rows=50)
    yield n
    n.close()


def _client(net: LocalNetwork) -> tuple[TestClient, ChainTrust]:
    import threading

    agent = net.data[0]
    trust = ChainTrust(net.contracts.registry, receiver_wait=0)
    app = create_app(agent.node)
    app.include_router(chain_task_router(agent, trust, threading.Lock()))
    return TestClient(app), trust


def _task(net: LocalNetwork) -> tuple[int, TaskSpec]:
    me = net.requester_account.address
    spec = TaskSpec.new("mean", [(net.dataset_ids[0], ["age"])], [me], 10**15,
                        receiver_tls=[{"address": me, "cert_sha256": CERT,
                                       "endpoint": "127.0.0.1:9009"}])
    tm = net.contracts.using(net.requester_account).tasks
    task_id = int(tm.create_task(spec.hash, [DatasetId(bytes.fromhex(net.dataset_ids[0][2:]))],
                                 [me], spec.fee_wei))
    return task_id, spec


def _post(client: TestClient, key: bytes, task_id: int, body: bytes) -> tuple[int, dict]:
    target = f"/v1/chain-tasks/{task_id}"
    headers = sign_request(NodeKey(key), "POST", target, hashlib.sha256(body).hexdigest())
    resp = client.post(target, content=body, headers=headers)
    return resp.status_code, resp.json()


def test_the_requester_hands_over_a_matching_spec(net: LocalNetwork) -> None:
    client, trust = _client(net)
    task_id, spec = _task(net)
    me = net.requester_account
    assert trust.pinned_hash(NodeId(me.address)) is None
    code, doc = _post(client, bytes(me.key), task_id, spec.canonical())
    assert code == 200 and doc == {"task_id": task_id, "approve": True, "reason": "",
                                   "rule": ""}
    assert trust.pinned_hash(NodeId(me.address)) == bytes.fromhex(CERT)
    assert trust.address(NodeId(me.address)) == ("127.0.0.1", 9009)


def test_only_the_tasks_requester_may_hand_it_over(net: LocalNetwork) -> None:
    client, trust = _client(net)
    task_id, spec = _task(net)
    stranger = net.chain.account(7)
    code, doc = _post(client, bytes(stranger.key), task_id, spec.canonical())
    assert code == 403 and doc["rule"] == "requester"
    assert trust.pinned_hash(NodeId(net.requester_account.address)) is None


def test_a_spec_that_is_not_the_tasks_is_refused(net: LocalNetwork) -> None:
    client, _ = _client(net)
    task_id, spec = _task(net)
    other = TaskSpec.new("sum", [(net.dataset_ids[0], ["age"])],
                         [net.requester_account.address], spec.fee_wei)
    code, doc = _post(client, bytes(net.requester_account.key), task_id, other.canonical())
    assert code in (400, 422) and "spec hash" in doc["message"]
    code, doc = _post(client, bytes(net.requester_account.key), task_id, b"{not json")
    assert code in (400, 422)


def test_the_route_is_signed(net: LocalNetwork) -> None:
    client, _ = _client(net)
    task_id, spec = _task(net)
    resp = client.post(f"/v1/chain-tasks/{task_id}", content=spec.canonical())
    assert resp.status_code == 401
