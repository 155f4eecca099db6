"""Fuzzing the network data node's extra route, ``POST /v1/chain-tasks/{task_id}`` (issue 12).

``test_api_schemathesis.py`` fuzzes the data node's own app; this file fuzzes the app a
network data node serves (the same app plus the chain-task router), on the embedded chain:

* schemathesis over the combined OpenAPI schema, with requests signed by the on-chain
  requester, so the chain-task route's generated path parameters reach the chain lookup;
* Hypothesis on the route's body (the spec JSON, which the schema cannot describe since
  the route reads raw bytes): garbage, arbitrary JSON and mutated real specs, posted for a
  real task. Never a server error; errors keep the API's error shape.

Bounded: a few dozen cases each.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from metisnet.api.app import create_app
from metisnet.api.netnode import chain_task_router
from metisnet.node.auth import sign_request
from metisnet.node.chaintrust import ChainTrust
from metisnet.node.identity import NodeKey
from metisnet.node.localnet import LocalNetwork
from metisnet.node.taskspec import TaskSpec
from metisnet.types import DatasetId

EXAMPLES = 15
ROUTE = "/v1/chain-tasks/{task_id}"


class _Sign(requests.auth.AuthBase):
    def __init__(self, key: NodeKey) -> None:
        self.key = key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        digest = hashlib.sha256(body if isinstance(body, bytes) else b"").hexdigest()
        r.headers.update(sign_request(self.key, r.method or "GET", r.path_url, digest))
        return r


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, LocalNetwork,
                                                                      int, TaskSpec]]:
    net = LocalNetwork(Path(tmp_path_factory.mktemp("chain-fuzz")), data_nodes=1,
                       compute_nodes=3, rows=30)
    agent = net.data[0]
    app = create_app(agent.node)
    app.include_router(chain_task_router(agent, ChainTrust(net.contracts.registry,
                                                           receiver_wait=0),
                                         threading.Lock()))
    me = net.requester_account.address
    spec = TaskSpec.new("mean", [(net.dataset_ids[0], ["age"])], [me], 10**15)
    tm = net.contracts.using(net.requester_account).tasks
    task_id = int(tm.create_task(spec.hash, [DatasetId(bytes.fromhex(net.dataset_ids[0][2:]))],
                                 [me], spec.fee_wei))
    yield app, net, task_id, spec
    net.close()


def test_every_route_of_the_network_node_is_fuzzed_without_server_error(world: Any) -> None:
    app, net, _, _ = world
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.auth.set_from_requests(_Sign(NodeKey(bytes(net.requester_account.key))))
    operations = [r.ok() for r in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert ROUTE in paths, paths
    seen: dict[int, int] = {}
    for op in operations:
        if op.path != ROUTE:
            continue  # the rest is fuzzed by test_api_schemathesis.py with the operator key
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                response = case.call()
                seen[response.status_code] = seen.get(response.status_code, 0) + 1
                assert response.status_code < 500, (case.path, response.text[:300])
                if response.status_code >= 400:
                    assert set(response.json()) == {"error", "message", "rule"}

            try:
                run()
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise
    assert seen and all(code < 500 for code in seen), seen


def _json_values() -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats(
        allow_nan=False)
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                        max_leaves=12)


@st.composite
def _bodies(draw: st.DrawFn, spec_doc: dict[str, Any]) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        return json.dumps(draw(_json_values())).encode()
    doc = json.loads(json.dumps(spec_doc))
    key = draw(st.sampled_from(sorted(doc)))
    if choice == 2:
        doc[key] = draw(_json_values())
    else:
        doc.pop(key)
    return json.dumps(doc).encode()


def test_chain_task_bodies_never_cause_a_server_error(world: Any) -> None:
    app, net, task_id, spec = world
    client = TestClient(app)
    key = NodeKey(bytes(net.requester_account.key))
    target = f"/v1/chain-tasks/{task_id}"
    seen: set[int] = set()

    @given(body=_bodies(json.loads(spec.canonical())) | st.just(spec.canonical()),
           task=st.just(task_id) | st.integers(-3, 2**70))
    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(body: bytes, task: int) -> None:
        target = f"/v1/chain-tasks/{task}"
        headers = sign_request(key, "POST", target, hashlib.sha256(body).hexdigest())
        resp = client.post(target, content=body, headers=headers)
        seen.add(resp.status_code)
        assert resp.status_code < 500, (body[:100], resp.text[:300])
        if resp.status_code >= 400:
            assert set(resp.json()) == {"error", "message", "rule"}

    run()
    assert len(seen - {401}) >= 2, seen  # signed requests reached validation and the chain
    # and the real spec still goes through afterwards
    body = spec.canonical()
    headers = sign_request(key, "POST", target, hashlib.sha256(body).hexdigest())
    resp = client.post(target, content=body, headers=headers)
    assert resp.status_code == 200 and resp.json()["approve"] is True


def test_an_unknown_task_id_is_404_not_a_chain_failure(world: Any) -> None:
    """Found by the fuzzer: a task id past the chain's count answered 502."""
    app, net, task_id, spec = world
    body = spec.canonical()
    target = f"/v1/chain-tasks/{task_id + 1000}"
    headers = sign_request(NodeKey(bytes(net.requester_account.key)), "POST", target,
                           hashlib.sha256(body).hexdigest())
    resp = TestClient(app).post(target, content=body, headers=headers)
    assert resp.status_code == 404, resp.text
