"""Sealed files at rest, hosted envelopes and the Merkle commitment."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metisnet.errors import DecryptionError, IntegrityError, ValidationError
from metisnet.node.commitment import leaf_hash, merkle_proof, merkle_root
from metisnet.node.envelope import EnvelopeReader, envelope_chunks, new_ephemeral_key
from metisnet.node.identity import NodeKey
from metisnet.node.sealed import SealedReader, SealingWriter, unwrap_key, wrap_key
from metisnet.verify.merkle import MerkleTree, verify_inclusion

KEY, BIND, SALT = b"k" * 32, b"b" * 32, b"s" * 32


def _seal(path: Path, data: bytes, chunk: int = 4096) -> None:
    with open(path, "wb") as f:
        w = SealingWriter(f, KEY, BIND, chunk, SALT)
        for i in range(0, len(data), 1000):
            w.write(data[i : i + 1000])
        res = w.finish()
    assert res.plaintext_bytes == len(data)
    assert res.sealed_bytes == path.stat().st_size


@settings(max_examples=25)
@given(size=st.integers(0, 20_000), offsets=st.lists(st.integers(0, 20_000), max_size=5))
def test_sealed_round_trip_and_random_access(tmp_path_factory: pytest.TempPathFactory,
                                             size: int, offsets: list[int]) -> None:
    path = tmp_path_factory.mktemp("s") / "f"
    data = secrets.token_bytes(size)
    _seal(path, data)
    with SealedReader(path, KEY, BIND) as r:
        assert r.size == size
        assert r.read() == data
        for off in offsets:
            r.seek(off)
            assert r.read(777) == data[off : off + 777]


def test_sealed_file_is_not_plaintext_and_tamper_is_caught(tmp_path: Path) -> None:
    data = b"secret-row," * 2000
    path = tmp_path / "f"
    _seal(path, data)
    assert b"secret-row" not in path.read_bytes()
    raw = bytearray(path.read_bytes())
    raw[100] ^= 1
    path.write_bytes(bytes(raw))
    with SealedReader(path, KEY, BIND) as r, pytest.raises(DecryptionError):
        r.read()


def test_sealed_truncation_and_wrong_binding_are_caught(tmp_path: Path) -> None:
    data = secrets.token_bytes(3 * 4096 + 10)
    path = tmp_path / "f"
    _seal(path, data)
    full = path.read_bytes()
    path.write_bytes(full[: 41 + 2 * (4096 + 16)])  # drop the last chunks: no final flag
    with SealedReader(path, KEY, BIND) as r, pytest.raises(DecryptionError):
        r.read()
    path.write_bytes(full)
    with pytest.raises(IntegrityError):
        SealedReader(path, KEY, b"x" * 32)
    with SealedReader(path, b"w" * 32, BIND) as r, pytest.raises(DecryptionError):
        r.read(1)


def test_key_wrap_is_bound_to_master_and_dataset() -> None:
    master, dk = secrets.token_bytes(32), secrets.token_bytes(32)
    wrapped = wrap_key(master, dk, BIND)
    assert unwrap_key(master, wrapped, BIND) == dk
    with pytest.raises(DecryptionError):
        unwrap_key(secrets.token_bytes(32), wrapped, BIND)
    with pytest.raises(DecryptionError):
        unwrap_key(master, wrapped, b"c" * 32)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 50_000])
def test_envelope_round_trip(size: int) -> None:
    node = NodeKey.generate()
    data = secrets.token_bytes(size)
    env = b"".join(envelope_chunks(node.public_key, io.BytesIO(data), new_ephemeral_key(),
                                   chunk_bytes=4096))
    assert EnvelopeReader(io.BytesIO(env), node).read() == data


def test_envelope_is_deterministic_given_the_ephemeral_key() -> None:
    node, eph = NodeKey.generate(), new_ephemeral_key()
    data = secrets.token_bytes(10_000)
    a = b"".join(envelope_chunks(node.public_key, io.BytesIO(data), eph, 4096))
    b = b"".join(envelope_chunks(node.public_key, io.BytesIO(data), eph, 4096))
    assert a == b


def test_envelope_refuses_wrong_key_truncation_and_garbage() -> None:
    node, other = NodeKey.generate(), NodeKey.generate()
    data = secrets.token_bytes(20_000)
    env = b"".join(envelope_chunks(other.public_key, io.BytesIO(data), new_ephemeral_key(),
                                   4096))
    with pytest.raises(DecryptionError):
        EnvelopeReader(io.BytesIO(env), node).read()
    good = b"".join(envelope_chunks(node.public_key, io.BytesIO(data), new_ephemeral_key(),
                                    4096))
    with pytest.raises(DecryptionError):
        EnvelopeReader(io.BytesIO(good[: len(good) - 5000]), node).read()
    with pytest.raises(ValidationError):
        EnvelopeReader(io.BytesIO(b"a,b\n1,2\n" * 20), node)


@given(n=st.integers(0, 40), data=st.data())
def test_merkle_matches_the_verify_layer_and_proofs_verify(n: int, data: st.DataObject) -> None:
    chunks = [bytes([i]) * (i + 1) for i in range(n)]
    leaves = [leaf_hash(SALT, i, c) for i, c in enumerate(chunks)]
    root = merkle_root(leaves, SALT)
    assert root == MerkleTree(chunks, domain=SALT).root
    if n:
        i = data.draw(st.integers(0, n - 1))
        proof = merkle_proof(leaves, i)
        assert verify_inclusion(root, n, i, chunks[i], proof, domain=SALT)
        assert not verify_inclusion(root, n, i, b"other", proof, domain=SALT)


def test_merkle_root_is_salted() -> None:
    assert merkle_root([leaf_hash(b"a" * 32, 0, b"x")], b"a" * 32) != merkle_root(
        [leaf_hash(b"b" * 32, 0, b"x")], b"b" * 32
    )


def test_a_sealed_file_opens_chunk_by_chunk_against_its_commitment(tmp_path: Path) -> None:
    data = secrets.token_bytes(5 * 4096 + 123)
    path = tmp_path / "f"
    with open(path, "wb") as f:
        w = SealingWriter(f, KEY, BIND, 4096, SALT)
        w.write(data)
        res = w.finish()
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    assert res.chunks == len(chunks) and res.merkle_root == MerkleTree(chunks, SALT).root
