"""Property-based run of the node's own OpenAPI schema (schemathesis): no server error.

Every generated request is signed by the node operator's key (a ``requests`` auth hook
signs the exact bytes sent), so the generated inputs reach validation and the service
instead of stopping at the signature check. Bounded for CI: a few hundred examples in all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from metisnet.api.app import create_app
from metisnet.node.auth import sign_request
from metisnet.node.config import DataNodeConfig
from metisnet.node.datanode import DataNode
from metisnet.node.identity import NodeKey

EXAMPLES_PER_OPERATION = 12
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


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
def node_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    cfg = DataNodeConfig(data_dir=Path(tmp_path_factory.mktemp("fuzz")) / "node",
                         chunk_bytes=4096, max_upload_bytes=1 << 20)
    node = DataNode(cfg)
    yield create_app(node), node
    node.close()


def _operations(app: Any, key: NodeKey) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.auth.set_from_requests(_Sign(key))
    return [result.ok() for result in schema.get_all_operations()]


def test_no_server_error(node_app: Any) -> None:
    app, node = node_app
    operations = _operations(app, node.key)
    assert len(operations) >= 12
    seen: dict[int, int] = {}

    cases = [(op, mode) for op in operations for mode in MODES]
    for op, mode in cases:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            response = case.call()
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error", "message", "rule"}, body

        try:
            run()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                raise  # only an operation without inputs has no negative cases
    assert sum(seen.values()) <= EXAMPLES_PER_OPERATION * len(cases)
    assert any(200 <= code < 300 for code in seen), seen  # signed requests got through
    assert 422 in seen, seen  # and malformed ones were generated
