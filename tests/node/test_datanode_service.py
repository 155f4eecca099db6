"""The DataNode service in process: add, host, policies, tasks, revoke, audit, recovery."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metisnet.errors import DecryptionError, IntegrityError, PolicyViolation, ValidationError
from metisnet.node.datanode import DataNode, NotFound
from metisnet.node.envelope import envelope_chunks, new_ephemeral_key
from metisnet.node.identity import NodeKey
from metisnet.node.policy import Policy

CSV = b"age,income,city\n" + b"".join(
    f"{20 + i % 50},{1000.5 + i},c{i % 7}\n".encode() for i in range(5000)
)
OWNER = NodeKey.generate()

Factory = Callable[..., DataNode]


def _open_policy(**kw: object) -> Policy:
    doc: dict[str, object] = {"allowed_programs": ["mean"], "allowed_columns": ["age", "income"],
                              "allowed_requesters": ["*"], "min_group_size": 10}
    doc.update(kw)
    return Policy.from_mapping(doc)


def _stored_files(node: DataNode) -> list[Path]:
    return sorted([*node.datasets_dir.iterdir(), *node.tmp_dir.iterdir()])


def test_add_csv_with_inferred_schema_and_read_columns(data_node_factory: Factory) -> None:
    node = data_node_factory()
    rec = node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="people")
    assert rec.status == "active" and rec.row_count == 5000
    assert rec.schema == (("age", "int64"), ("income", "float64"), ("city", "string"))
    assert len(rec.commitment) == 32 and len(rec.schema_hash) == 32
    assert node.registrar.is_active(bytes.fromhex(rec.id[2:]))
    sealed = (node.datasets_dir / rec.file_name).read_bytes()
    assert rec.sealed_bytes == len(sealed)
    assert b"income" not in sealed and b"c3\n" not in sealed  # encrypted at rest
    node.set_policy(rec.id, node.node_id, _open_policy())
    task = node.request_task(OWNER.address, rec.id, program="mean", columns=["age", "income"],
                             min_group_size=10)
    cols = node.read_columns(task.id)
    assert cols["age"].dtype == np.int64 and cols["age"].shape == (5000,)
    assert cols["income"][3] == pytest.approx(1003.5)
    assert node.get_dataset(rec.id).uses == 1


def test_add_parquet_with_declared_schema(data_node_factory: Factory) -> None:
    node = data_node_factory()
    table = pa.table({"x": pa.array([1, 2, 3], pa.int32()), "y": ["a", "b", "c"]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    rec = node.add_dataset(io.BytesIO(buf.getvalue()), owner=node.node_id, name="pq",
                           fmt="parquet", schema=(("y", "string"), ("x", "int64")))
    assert rec.schema == (("y", "string"), ("x", "int64")) and rec.row_count == 3


@pytest.mark.parametrize(
    ("data", "schema", "message"),
    [
        (b"", None, "empty"),
        (b"a,b\n1,2\n3,4,5\n", None, "fields where the header has"),
        (b"a,b\n1,2\nx,3\n", (("a", "int64"), ("b", "int64")), "schema mismatch"),
        (b"a,c\n1,2\n", (("a", "int64"), ("b", "int64")), "missing column"),
        (b"a,b\n", None, "no rows"),
        (b"a,a\n1,2\n", None, "duplicate column"),
        (b"\xff\xfe\x00a,b\n1,2\n", None, "UTF-8"),
    ],
)
def test_bad_csv_is_refused_and_nothing_is_stored(
    data_node_factory: Factory, data: bytes, schema: tuple[tuple[str, str], ...] | None,
    message: str,
) -> None:
    node = data_node_factory()
    with pytest.raises(ValidationError, match=message):
        node.add_dataset(io.BytesIO(data), owner=node.node_id, name="bad", schema=schema)
    assert node.list_datasets() == [] and _stored_files(node) == []


def test_bad_parquet_is_refused(data_node_factory: Factory) -> None:
    node = data_node_factory()
    with pytest.raises(ValidationError, match="Parquet"):
        node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="bad", fmt="parquet")
    assert node.list_datasets() == [] and _stored_files(node) == []


def test_a_failing_commit_check_stores_nothing(data_node_factory: Factory) -> None:
    node = data_node_factory()

    def refuse() -> None:
        raise IntegrityError("body hash mismatch")

    with pytest.raises(IntegrityError):
        node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="x", before_commit=refuse)
    assert node.list_datasets() == [] and _stored_files(node) == []


def _envelope(pub: bytes, data: bytes) -> bytes:
    return b"".join(envelope_chunks(pub, io.BytesIO(data), new_ephemeral_key(), 4096))


def test_hosted_dataset_owner_keeps_control(data_node_factory: Factory) -> None:
    node = data_node_factory()
    rec = node.host_dataset(io.BytesIO(_envelope(node.public_key, CSV)), owner=OWNER.address,
                            name="hosted")
    assert rec.hosted and rec.owner == OWNER.address and rec.row_count == 5000
    with pytest.raises(PolicyViolation) as exc:
        node.set_policy(rec.id, node.node_id, _open_policy())  # the node is not the owner
    assert exc.value.rule == "owner"
    node.set_policy(rec.id, OWNER.address, _open_policy())
    with pytest.raises(PolicyViolation):
        node.revoke(rec.id, node.node_id)
    node.revoke(rec.id, OWNER.address)
    assert node.get_dataset(rec.id).status == "revoked"
    assert node.get_dataset(rec.id).wrapped_key is None
    assert not (node.datasets_dir / rec.file_name).exists()
    assert not node.registrar.is_active(bytes.fromhex(rec.id[2:]))


def test_hosted_upload_for_another_key_is_refused(data_node_factory: Factory) -> None:
    node = data_node_factory()
    env = _envelope(NodeKey.generate().public_key, CSV)
    with pytest.raises(DecryptionError):
        node.host_dataset(io.BytesIO(env), owner=OWNER.address, name="wrong")
    assert node.list_datasets() == [] and _stored_files(node) == []


def test_refused_requests_compute_nothing_and_are_audited(data_node_factory: Factory) -> None:
    node = data_node_factory()
    rec = node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="p")
    node.set_policy(rec.id, node.node_id, _open_policy(max_uses=1))
    with pytest.raises(PolicyViolation) as exc:
        node.request_task(OWNER.address, rec.id, program="mean", columns=["city"],
                          min_group_size=10)
    assert exc.value.rule == "columns"
    rejected = node.list_tasks(node.node_id)[0]
    assert rejected.state == "rejected"
    with pytest.raises(PolicyViolation) as exc:
        node.read_columns(rejected.id)
    assert exc.value.rule == "task_state"
    ok = node.request_task(OWNER.address, rec.id, program="mean", columns=["age"],
                           min_group_size=10)
    with pytest.raises(PolicyViolation) as exc:
        node.request_task(OWNER.address, rec.id, program="mean", columns=["age"],
                          min_group_size=10)
    assert exc.value.rule == "max_uses"
    with pytest.raises(PolicyViolation) as exc:
        node.read_columns(ok.id, ["income"])  # not approved for this task
    assert exc.value.rule == "columns"
    # the owner narrows the policy after approval: the read is refused at read time
    node.set_policy(rec.id, node.node_id, _open_policy(allowed_programs=["sum"]))
    with pytest.raises(PolicyViolation) as exc:
        node.read_columns(ok.id)
    assert exc.value.rule == "program"
    rules = [e.rule for e in node.audit(node.node_id, limit=1000) if e.outcome == "refused"]
    assert rules == ["columns", "task_state", "max_uses", "columns", "program"]
    assert node.store.verify_audit_chain() > 0


def test_task_states_move_forward_only(data_node_factory: Factory) -> None:
    node = data_node_factory()
    rec = node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="p")
    node.set_policy(rec.id, node.node_id, _open_policy())
    t = node.request_task(OWNER.address, rec.id, program="mean", columns=["age"],
                          min_group_size=10)
    assert node.set_task_state(t.id, "running").state == "running"
    assert node.set_task_state(t.id, "done").state == "done"
    with pytest.raises(ValidationError):
        node.set_task_state(t.id, "running")
    with pytest.raises(NotFound):
        node.get_task("0x" + "00" * 16)


def test_audit_log_is_append_only(data_node_factory: Factory) -> None:
    node = data_node_factory()
    node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="p")
    with node.store.tx() as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit SET actor = 'mallory'")
    with node.store.tx() as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit")


def test_nonces_are_single_use(data_node_factory: Factory) -> None:
    node = data_node_factory()
    assert node.accept_request(OWNER.address, "n" * 20, node.now(), "GET /datasets")
    assert not node.accept_request(OWNER.address, "n" * 20, node.now(), "GET /datasets")
    assert node.accept_request(node.node_id, "n" * 20, node.now(), "GET /datasets")


def test_restart_keeps_everything_and_recovery_drops_debris(data_node_factory: Factory) -> None:
    node = data_node_factory()
    rec = node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="p")
    node.set_policy(rec.id, node.node_id, _open_policy())
    task = node.request_task(OWNER.address, rec.id, program="mean", columns=["age"],
                             min_group_size=10)
    node_id = node.node_id
    (node.tmp_dir / "half.part").write_bytes(b"partial upload")
    (node.datasets_dir / ("ab" * 32 + ".sealed")).write_bytes(b"renamed, never committed")
    node.close()
    again = data_node_factory()
    assert again.node_id == node_id
    assert [r.id for r in again.list_datasets()] == [rec.id]
    assert again.get_dataset(rec.id).policy == _open_policy()
    assert again.get_task(task.id).state == "approved"
    assert again.read_columns(task.id)["age"].shape == (5000,)
    assert _stored_files(again) == [again.datasets_dir / rec.file_name]


def test_policy_must_name_existing_columns(data_node_factory: Factory) -> None:
    node = data_node_factory()
    rec = node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="p")
    with pytest.raises(ValidationError, match="lacks"):
        node.set_policy(rec.id, node.node_id, _open_policy(allowed_columns=["ssn"]))
    with pytest.raises(ValidationError, match="no column"):
        node.request_task(OWNER.address, rec.id, program="mean", columns=["ssn"],
                          min_group_size=10)


def test_node_key_from_the_network_keystore(data_node_factory: Factory, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from metisnet.net.identity import NodeKey as NetKey
    from metisnet.net.identity import save_keystore

    key = NetKey.generate()
    store = tmp_path / "node.json"
    save_keystore(key, store, "pw-for-tests", scrypt_n=2**4)
    monkeypatch.setenv("METIS_KEY_PASSWORD", "pw-for-tests")
    node = data_node_factory(node_keystore=store)
    assert node.node_id == key.node_id


def test_a_task_spec_is_checked_input_by_input(data_node_factory: Factory) -> None:
    from metisnet.node.taskspec import TaskSpec

    node = data_node_factory()
    a = node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="a")
    b = node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="b")
    node.set_policy(a.id, node.node_id, _open_policy(max_uses=1))
    node.set_policy(b.id, node.node_id, _open_policy(allowed_columns=["income"]))
    elsewhere = "0x" + "cd" * 32
    spec = TaskSpec.new("mean", [(a.id, ["age"]), (b.id, ["age"]), (elsewhere, ["x"])],
                        [OWNER.address], 0, params={"min_group_size": 10})
    with pytest.raises(PolicyViolation) as exc:
        node.request_spec(OWNER.address, spec)
    assert exc.value.rule == "columns"
    assert node.get_dataset(a.id).uses == 0  # the refusal of b consumed nothing of a
    ok = TaskSpec.new("mean", [(a.id, ["age"]), (b.id, ["income"])], [OWNER.address], 0,
                      params={"min_group_size": 10})
    tasks = node.request_spec(OWNER.address, ok)
    assert [t.state for t in tasks] == ["approved", "approved"]


def test_one_node_per_data_directory(data_node_factory: Factory) -> None:
    from metisnet.errors import ConfigError

    first = data_node_factory()
    with pytest.raises(ConfigError, match="in use"):
        data_node_factory()
    first.close()
    data_node_factory().close()


def test_check_decides_without_recording(data_node_factory: Factory) -> None:
    from metisnet.node.policy import TaskRequest

    node = data_node_factory()
    rec = node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="p")
    node.set_policy(rec.id, node.node_id, _open_policy(max_uses=1))
    request = TaskRequest(rec.id, OWNER.address, "mean", ("age",), 10)
    assert node.check(request).allowed
    assert node.check(request).allowed  # nothing consumed
    with pytest.raises(PolicyViolation) as exc:
        node.check(TaskRequest(rec.id, OWNER.address, "mean", ("age",), 3))
    assert exc.value.rule == "min_group_size"
    assert node.get_dataset(rec.id).uses == 0 and node.list_tasks(node.node_id) == []


def test_hosted_parquet_with_declared_schema(data_node_factory: Factory) -> None:
    node = data_node_factory()
    buf = io.BytesIO()
    pq.write_table(pa.table({"k": [1, 2, 3, 4], "v": [0.5, 1.5, 2.5, 3.5]}), buf)
    rec = node.host_dataset(io.BytesIO(_envelope(node.public_key, buf.getvalue())),
                            owner=OWNER.address, name="hpq", fmt="parquet",
                            schema=(("k", "int64"), ("v", "float64")))
    assert rec.hosted and rec.row_count == 4 and rec.source_format == "parquet"
    assert _stored_files(node) == [node.datasets_dir / rec.file_name]  # no spool left


def test_node_info_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from metisnet.cli import main

    cfg = tmp_path / "data.toml"
    cfg.write_text(f'[node]\ndata_dir = "{tmp_path / "d"}"\nport = 8123\n')
    first = CliRunner().invoke(main, ["node", "info", "--config", str(cfg)])
    again = CliRunner().invoke(main, ["node", "info", "--config", str(cfg)])
    assert first.exit_code == 0 and first.output == again.output  # the key persists
    assert "http://127.0.0.1:8123" in first.output and "node_id     0x" in first.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[node]\nprot = 1\n")
    result = CliRunner().invoke(main, ["node", "start", "--config", str(bad)])
    assert result.exit_code != 0 and "unknown config key" in str(result.exception)


def test_the_commitment_opens_against_the_registered_root(data_node_factory: Factory) -> None:
    from metisnet.verify.merkle import verify_inclusion

    node = data_node_factory()
    rec = node.add_dataset(io.BytesIO(CSV), owner=node.node_id, name="p")
    n = node.open_commitment(rec.id, node.node_id, 0).count
    assert n > 2  # 4 KiB chunks in this fixture
    for i in (0, n // 2, n - 1):
        op = node.open_commitment(rec.id, node.node_id, i)
        assert op.root == rec.commitment
        assert verify_inclusion(op.root, op.count, i, op.chunk, op.proof, domain=op.salt)
        assert not verify_inclusion(op.root, op.count, i, op.chunk + b"x", op.proof,
                                    domain=op.salt)
    with pytest.raises(PolicyViolation):
        node.open_commitment(rec.id, OWNER.address, 0)
    with pytest.raises(ValidationError):
        node.open_commitment(rec.id, node.node_id, n)
