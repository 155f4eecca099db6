"""A real data node process (``metis node start``): lifecycle, restart, SIGTERM, SIGKILL.

Each test starts the node as a subprocess on a free loopback port over a temporary data
directory and talks to it over HTTP, as an operator, an owner and a requester would.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from metisnet.errors import PolicyViolation
from metisnet.node.config import DataNodeConfig, load_data_node_config
from metisnet.node.datanode import DataNode
from metisnet.node.identity import NodeKey, load_signing_key
from metisnet.sdk.client import NodeClient

pytestmark = pytest.mark.integration

METIS = str(Path(sys.executable).parent / "metis")
ROWS = 3000
CSV = b"age,income\n" + b"".join(f"{20 + i % 60},{i * 0.25}\n".encode() for i in range(ROWS))
POLICY = {"allowed_programs": ["mean"], "allowed_columns": ["age"],
          "allowed_requesters": ["*"], "min_group_size": 5}


class NodeProcess:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.log = ""
        self.proc = subprocess.Popen(
            [METIS, "node", "start", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
        )
        self.url = self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if b"listening on" in line:
                    url = line.decode().split("listening on ")[1].strip()
                    break
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        else:
            raise TimeoutError("the node did not announce itself")
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/health", timeout=1).raise_for_status()
                return url
            except httpx.HTTPError:
                time.sleep(0.05)
        raise TimeoutError("the node did not become healthy")

    def client(self, key: NodeKey) -> NodeClient:
        return NodeClient(self.url, key, timeout=30)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=20)
            if self.proc.stderr is not None:
                self.log = self.proc.stderr.read().decode(errors="replace")
            return rc
        finally:
            for f in (self.proc.stdout, self.proc.stderr):
                if f is not None:
                    f.close()


@pytest.fixture
def node_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "data.toml"
    cfg.write_text(f'[node]\nname = "it"\ndata_dir = "{tmp_path / "data"}"\nport = 0\n'
                   f"chunk_bytes = 4096\nrow_group_rows = 2000\n", encoding="utf-8")
    return cfg


@pytest.fixture
def processes() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.stop(signal.SIGKILL)


def _start(config: Path, started: list[NodeProcess]) -> NodeProcess:
    p = NodeProcess(config)
    started.append(p)
    return p


def _cli(*args: str) -> str:
    out = subprocess.run([METIS, *args], capture_output=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"metis {args[:2]} failed: {out.stderr.decode()[-1000:]}")
    return out.stdout.decode()


def _operator_key(config: Path) -> NodeKey:
    return load_signing_key(load_data_node_config(config).node_key_path)


def test_add_host_list_policy_revoke_and_restart(node_config: Path, tmp_path: Path,
                                                 processes: list[NodeProcess]) -> None:
    node = _start(node_config, processes)
    csv = tmp_path / "people.csv"
    csv.write_bytes(CSV)
    # the operator adds through the CLI
    out = subprocess.run(
        [METIS, "dataset", "add", str(csv), "--name", "people", "--config", str(node_config),
         "--node", node.url, "--policy", json.dumps(POLICY)],
        capture_output=True, check=True, timeout=60,
    )
    added = json.loads(out.stdout)
    assert added["row_count"] == ROWS and added["policy"]["allowed_programs"] == ["mean"]
    # an owner without a node: key, host, policy, list, all through the CLI
    key_file = tmp_path / "owner.key"
    owner_address = _cli("dataset", "keygen", "--out", str(key_file)).strip()
    owner = load_signing_key(key_file)
    assert owner.address == owner_address
    as_owner = ("--node", node.url, "--key", str(key_file))
    hosted = json.loads(_cli("dataset", "host", str(csv), "--name", "hosted", "--schema",
                             '{"age": "int64", "income": "float64"}', *as_owner))
    assert hosted["hosted"] and hosted["owner"] == owner.address
    policy = json.loads(_cli("dataset", "policy", hosted["dataset_id"], "--set",
                             json.dumps(POLICY), *as_owner))
    assert policy["allowed_columns"] == ["age"]
    refused = subprocess.run(  # the node's operator is not the owner of a hosted dataset
        [METIS, "dataset", "policy", hosted["dataset_id"], "--set", "{}", "--config",
         str(node_config), "--node", node.url], capture_output=True, timeout=60)
    assert refused.returncode == 2 and b"owner" in refused.stderr
    listed = {d["name"]: d for d in json.loads(_cli("dataset", "list", "--json", *as_owner))}
    assert set(listed) == {"people", "hosted"} and listed["hosted"]["hosted"]
    requester = NodeKey.generate()
    with node.client(requester) as rc:
        task = rc.request_task(hosted["dataset_id"], program="mean", columns=["age"],
                               min_group_size=5)
        with pytest.raises(PolicyViolation):
            rc.request_task(hosted["dataset_id"], program="mean", columns=["income"],
                            min_group_size=5)
    with node.client(owner) as oc:
        victim = oc.host_dataset(csv, name="to-revoke")
    revoked = json.loads(_cli("dataset", "revoke", victim["dataset_id"], "--yes", *as_owner))
    assert revoked["status"] == "revoked"
    with node.client(_operator_key(node_config)) as op:
        audit_before = len(op.audit(limit=1000))
    owner_audit = _cli("dataset", "audit", "--limit", "1000", *as_owner)
    assert "revoke" in owner_audit and owner_audit.count("\n") < audit_before
    assert node.stop(signal.SIGTERM) == 0  # graceful

    again = _start(node_config, processes)
    with again.client(owner) as oc:
        listed = {d["name"]: d for d in oc.list_datasets()}
        assert listed["hosted"]["policy"]["allowed_columns"] == ["age"]
        assert listed["to-revoke"]["status"] == "revoked"
        assert listed["people"]["commitment"] == added["commitment"]
        assert oc.get_task(task["task_id"])["state"] == "approved"
    with again.client(_operator_key(node_config)) as op:
        assert len(op.audit(limit=1000)) > audit_before
    assert again.stop() == 0
    # no key material in the node's logs
    cfg = load_data_node_config(node_config)
    secrets_hex = [cfg.node_key_path.read_text().strip(), cfg.master_key_path.read_bytes().hex()]
    for log in (node.log, again.log):
        assert "listening on" in log and not any(k in log for k in secrets_hex)
    assert "stored: 3000 rows" in node.log
    # the data itself survived: read it back through a policy-checked task
    dn = DataNode(load_data_node_config(node_config))
    try:
        ages = dn.read_columns(task["task_id"])["age"]
        assert ages.shape == (ROWS,) and int(ages.sum()) == sum(20 + i % 60 for i in range(ROWS))
        assert dn.store.verify_audit_chain() > 0
    finally:
        dn.close()


def _slow_upload(url: str, key: NodeKey, data: bytes, stop: threading.Event) -> None:
    import hashlib

    from metisnet.node.auth import sign_request

    target = "/datasets?name=slow&format=csv"
    headers = sign_request(key, "POST", target, hashlib.sha256(data).hexdigest())

    def body() -> Iterator[bytes]:
        for i in range(0, len(data), 65536):
            if stop.is_set():
                return
            yield data[i : i + 65536]
            time.sleep(0.03)  # about 1.5 s for the whole body

    with contextlib.suppress(Exception):  # the node is killed under us, or we stop early
        httpx.post(url + target, content=body(),
                   headers={**headers, "content-length": str(len(data))}, timeout=30)


def _bytes_in(folder: Path) -> int:
    total = 0
    for f in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            total += f.stat().st_size
    return total


def _assert_whole_or_nothing(config: Path) -> list[str]:
    cfg: DataNodeConfig = load_data_node_config(config)
    dn = DataNode(cfg)  # runs crash recovery
    try:
        recs = dn.list_datasets()
        for rec in recs:
            assert rec.status == "active" and rec.row_count == BIG_ROWS
        names = {f.name for f in dn.datasets_dir.iterdir()}
        assert names == {r.file_name for r in recs}
        assert list(dn.tmp_dir.iterdir()) == []
        return [r.id for r in recs]
    finally:
        dn.close()


BIG_ROWS = ROWS * 100
BIG = CSV + CSV.split(b"\n", 1)[1] * 99  # ~3 MB


def test_sigkill_during_upload_leaves_nothing(node_config: Path,
                                              processes: list[NodeProcess]) -> None:
    node = _start(node_config, processes)
    key = _operator_key(node_config)
    stop = threading.Event()
    t = threading.Thread(target=_slow_upload, args=(node.url, key, BIG, stop), daemon=True)
    t.start()
    tmp_dir = load_data_node_config(node_config).data_dir / "tmp"
    deadline = time.monotonic() + 20
    while _bytes_in(tmp_dir) < 50_000:
        assert time.monotonic() < deadline, "the upload never started"  # sealed data flows
        time.sleep(0.02)
    node.stop(signal.SIGKILL)
    stop.set()
    t.join(timeout=10)
    assert any(tmp_dir.iterdir())  # debris of the interrupted upload
    assert _assert_whole_or_nothing(node_config) == []
    again = _start(node_config, processes)
    with again.client(key) as c:
        assert c.list_datasets() == []
        assert c.add_dataset(_write(node_config.parent, BIG), name="retry")["row_count"] == \
            BIG_ROWS
    again.stop()


def _write(folder: Path, data: bytes) -> Path:
    p = folder / "big.csv"
    p.write_bytes(data)
    return p


def test_sigkill_after_acknowledgement_keeps_the_whole_dataset(
        node_config: Path, processes: list[NodeProcess]) -> None:
    node = _start(node_config, processes)
    key = _operator_key(node_config)
    with node.client(key) as c:
        rec = c.add_dataset(_write(node_config.parent, BIG), name="acked")
    node.stop(signal.SIGKILL)
    assert _assert_whole_or_nothing(node_config) == [rec["dataset_id"]]
