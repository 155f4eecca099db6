"""The REST API over HTTP: signed requests, owners' rights, and every bad input a 4xx."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metisnet.errors import PolicyViolation
from metisnet.node.auth import sign_request
from metisnet.node.identity import NodeKey
from metisnet.sdk.client import NodeRequestError

CSV = b"age,income\n" + b"".join(f"{20 + i % 60},{i * 1.5}\n".encode() for i in range(2000))
OPEN = {"allowed_programs": ["mean"], "allowed_columns": ["age"],
        "allowed_requesters": ["*"], "min_group_size": 5}

Served = Any
Start = Callable[..., Any]


def _write(tmp_path: Path, data: bytes, name: str = "d.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _nothing_stored(s: Served) -> None:
    assert s.node.list_datasets() == []
    assert list(s.node.datasets_dir.iterdir()) == [] and list(s.node.tmp_dir.iterdir()) == []


def _signed(key: NodeKey, method: str, target: str, body: bytes = b"",
            **kw: object) -> dict[str, str]:
    return sign_request(key, method, target, hashlib.sha256(body).hexdigest(), **kw)  # type: ignore[arg-type]


def test_add_host_list_policy_task_revoke(serve_node: Start, tmp_path: Path) -> None:
    s = serve_node()
    op = s.client()
    info = op.node_info()
    assert info["node_id"] == s.node.node_id and len(bytes.fromhex(info["public_key"])) == 33
    rec = op.add_dataset(_write(tmp_path, CSV), name="people")
    assert rec["row_count"] == 2000 and rec["status"] == "active" and not rec["hosted"]
    owner = NodeKey.generate()
    oc = s.client(owner)
    hosted = oc.host_dataset(_write(tmp_path, CSV, "h.csv"), name="hosted",
                             schema={"age": "int64", "income": "float64"})
    assert hosted["hosted"] and hosted["owner"] == owner.address
    assert {d["name"] for d in oc.list_datasets()} == {"people", "hosted"}
    updated = oc.set_policy(hosted["dataset_id"], OPEN)
    assert updated["policy"]["allowed_programs"] == ["mean"]
    assert updated["policy_hash"] != hosted["policy_hash"]
    with pytest.raises(PolicyViolation) as exc:  # the node operator does not own it
        op.set_policy(hosted["dataset_id"], OPEN)
    assert exc.value.rule == "owner"
    requester = s.client(NodeKey.generate())
    task = requester.request_task(hosted["dataset_id"], program="mean", columns=["age"],
                                  min_group_size=5)
    assert task["state"] == "approved"
    assert requester.get_task(task["task_id"])["task_id"] == task["task_id"]
    assert s.node.read_columns(task["task_id"])["age"].sum() == sum(
        20 + i % 60 for i in range(2000))
    with pytest.raises(PolicyViolation) as exc:
        requester.request_task(hosted["dataset_id"], program="dump", columns=["age"],
                               min_group_size=5)
    assert exc.value.rule == "program"
    with pytest.raises(PolicyViolation) as exc:
        requester.request_task(hosted["dataset_id"], program="mean", columns=["income"],
                               min_group_size=5)
    assert exc.value.rule == "columns"
    with pytest.raises(PolicyViolation) as exc:
        requester.request_task(hosted["dataset_id"], program="mean", columns=["age"],
                               min_group_size=2)
    assert exc.value.rule == "min_group_size"
    assert oc.revoke(hosted["dataset_id"])["status"] == "revoked"
    with pytest.raises(PolicyViolation) as exc:
        requester.request_task(hosted["dataset_id"], program="mean", columns=["age"],
                               min_group_size=5)
    assert exc.value.rule == "revoked"
    mine = [e for e in oc.audit(limit=1000)]
    assert any(e["action"] == "revoke" for e in mine)
    assert all(e["actor"] == owner.address or e["dataset_id"] == hosted["dataset_id"]
               for e in mine)
    assert len(op.audit(limit=1000)) > len(mine)


def test_parquet_upload(serve_node: Start, tmp_path: Path) -> None:
    s = serve_node()
    buf = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]}), buf)
    rec = s.client().add_dataset(_write(tmp_path, buf.getvalue(), "d.parquet"), name="pq")
    assert rec["source_format"] == "parquet" and rec["row_count"] == 3


@pytest.mark.parametrize(
    ("data", "schema", "status", "fragment"),
    [
        (b"a,b\n1,2\n3\n", None, 400, "fields where the header"),
        (b"", None, 400, "empty"),
        (b"age,income\nx,1\n", {"age": "int64", "income": "float64"}, 400, "schema mismatch"),
        (b"age\n1\n", {"age": "int64", "income": "float64"}, 400, "missing column"),
        (b"a\n1\n", {"a": "complex"}, 400, "unsupported type"),
    ],
)
def test_bad_uploads_are_4xx_and_store_nothing(serve_node: Start, tmp_path: Path, data: bytes,
                                               schema: dict[str, str] | None, status: int,
                                               fragment: str) -> None:
    s = serve_node()
    with pytest.raises(NodeRequestError) as exc:
        s.client().add_dataset(_write(tmp_path, data), name="bad", schema=schema)
    assert exc.value.status == status and fragment in str(exc.value)
    _nothing_stored(s)


def test_oversized_upload_is_413(serve_node: Start, tmp_path: Path) -> None:
    s = serve_node(max_upload_bytes=10_000)
    with pytest.raises(NodeRequestError) as exc:
        s.client().add_dataset(_write(tmp_path, CSV), name="big")
    assert exc.value.status == 413
    # a body sent without a length (chunked) is cut off at the cap while streaming
    target = "/datasets?name=big&format=csv"
    chunks = [CSV[i : i + 4096] for i in range(0, len(CSV), 4096)]
    headers = _signed(s.node.key, "POST", target, CSV)
    r = httpx.post(s.url + target, content=iter(chunks), headers=headers)
    assert r.status_code == 413 and r.json()["error"] == "upload_too_large"
    _nothing_stored(s)


def test_hosted_upload_for_the_wrong_key_is_400(serve_node: Start, tmp_path: Path) -> None:
    s = serve_node()
    other = NodeKey.generate()
    with pytest.raises(NodeRequestError) as exc:
        s.client(NodeKey.generate()).host_dataset(_write(tmp_path, CSV), name="h",
                                                  node_public_key=other.public_key)
    assert exc.value.status == 400 and exc.value.kind == "decryption_failed"
    _nothing_stored(s)


def test_plaintext_add_is_for_operators_only(serve_node: Start, tmp_path: Path) -> None:
    s = serve_node()
    with pytest.raises(PolicyViolation) as exc:
        s.client(NodeKey.generate()).add_dataset(_write(tmp_path, CSV), name="x")
    assert exc.value.rule == "operator"
    _nothing_stored(s)


def test_signatures_timestamps_and_nonces(serve_node: Start) -> None:
    s = serve_node()
    key = s.node.key
    url = s.url + "/datasets"
    assert httpx.get(url).status_code == 401  # unsigned
    good = _signed(key, "GET", "/datasets")
    assert httpx.get(url, headers=good).status_code == 200
    replay = httpx.get(url, headers=good)
    assert replay.status_code == 401 and "replayed" in replay.json()["message"]
    other = _signed(key, "GET", "/audit")  # signed for another path
    assert httpx.get(url, headers=other).status_code == 401
    stale = _signed(key, "GET", "/datasets", timestamp=s.node.now() - 3600)
    r = httpx.get(url, headers=stale)
    assert r.status_code == 401 and "stale" in r.json()["message"]
    forged = dict(_signed(key, "GET", "/datasets"))
    forged["x-metis-address"] = NodeKey.generate().address
    assert httpx.get(url, headers=forged).status_code == 401
    garbage = dict(_signed(key, "GET", "/datasets"))
    garbage["x-metis-signature"] = "0x" + "00" * 65
    assert httpx.get(url, headers=garbage).status_code == 401
    # a JSON body that differs from the signed hash
    body = json.dumps(OPEN).encode()
    target = "/datasets/0x" + "00" * 32 + "/policy"
    h = _signed(key, "PUT", target, b"{}")
    r = httpx.put(s.url + target, content=body,
                  headers={**h, "content-type": "application/json"})
    assert r.status_code == 401 and r.json()["error"] == "bad_signature"
    refused = [e for e in s.node.audit(key.address, limit=1000) if e.outcome == "refused"]
    assert len(refused) == 7  # unsigned, replay, path, stale, forged, garbage, body


def test_upload_with_a_tampered_body_stores_nothing(serve_node: Start) -> None:
    s = serve_node()
    target = "/datasets?name=t&format=csv"
    headers = _signed(s.node.key, "POST", target, CSV)
    r = httpx.post(s.url + target, content=CSV.replace(b"20,", b"99,"), headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "bad_signature"
    _nothing_stored(s)


def test_unknown_ids_are_404_and_bad_ids_422(serve_node: Start) -> None:
    s = serve_node()
    c = s.client()
    with pytest.raises(NodeRequestError) as exc:
        c.get_dataset("0x" + "ab" * 32)
    assert exc.value.status == 404
    with pytest.raises(NodeRequestError) as exc:
        c.get_dataset("not-an-id")
    assert exc.value.status == 422
    with pytest.raises(NodeRequestError) as exc:
        c.set_policy("0x" + "ab" * 32, {"min_group_size": 0})
    assert exc.value.status == 422


def test_uploads_beyond_the_concurrency_cap_get_429(serve_node: Start) -> None:
    import threading
    import time

    s = serve_node(max_concurrent_uploads=1)
    gate = threading.Event()
    target = "/datasets?name=slow&format=csv"
    headers = _signed(s.node.key, "POST", target, CSV)

    def body() -> Any:
        yield CSV[:100]
        gate.wait(10)  # hold the upload open
        yield CSV[100:]

    results: list[int] = []
    t = threading.Thread(target=lambda: results.append(
        httpx.post(s.url + target, content=body(), headers=headers, timeout=30).status_code))
    t.start()
    deadline = time.monotonic() + 10
    while not any(s.node.tmp_dir.iterdir()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    second = "/datasets?name=second&format=csv"
    r = httpx.post(s.url + second, content=CSV, headers=_signed(s.node.key, "POST", second, CSV))
    assert r.status_code == 429 and r.json()["error"] == "busy"
    gate.set()
    t.join(timeout=20)
    assert results == [201] and [d.name for d in s.node.list_datasets()] == ["slow"]
