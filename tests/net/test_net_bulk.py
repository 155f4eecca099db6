"""The bulk record layer: known answers, tampering, reordering, truncation, and its use
by the TLS endpoint (large frames, the receive-buffer pool, key exhaustion)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import threading

import numpy as np
import pytest
from Crypto.Cipher import AES  # pycryptodome: an independent AES-GCM for the known answers
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from metisnet.errors import NetworkError, WireError
from metisnet.net import bulk
from metisnet.net.bulk import (
    BULK_MIN,
    LABEL,
    RECORD,
    TAG_SIZE,
    BulkOpener,
    BulkSealer,
    derive_keys,
    record_count,
)
from metisnet.net.endpoint import Endpoint
from metisnet.net.identity import new_node_identity
from metisnet.net.tls import TlsContexts, TlsLink, dial_tls
from metisnet.net.trust import MemoryTrustStore
from metisnet.net.wire import KIND_BULK, encode_head

# RFC 7748 section 6.1
ALICE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
BOB = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
ALICE_PUB = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
BOB_PUB = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
D_HASH = hashlib.sha256(b"dialer cert").digest()
A_HASH = hashlib.sha256(b"acceptor cert").digest()
# this module's answers, checked below against an independent HKDF and AES-GCM
D2A = "a7d5dc509c101726f888fc9c3e9937845ac0c4d5ad047e81cf82780768c8db66"
A2D = "5b422803c274419d117128cc05c5e62c2ada94ea6dd78ed3148c38eb65b54ae5"
RECORD0 = ("a586286a21fec219fc5ec6f7df5569aa9a9f1345eae9a0ec62965fd2ba95c7f207184bbcd265d041"
           "e7b70ac3f5af585c75eb941c80ed4e38e1114161ba902068b00e643e3581bde514cdb2aa6fda31c4")
SID = b"bulk-session"


def _keys() -> tuple[bulk.BulkKeys, bulk.BulkKeys]:
    alice = X25519PrivateKey.from_private_bytes(ALICE)
    bob = X25519PrivateKey.from_private_bytes(BOB)
    dialer = derive_keys(alice, bytes.fromhex(BOB_PUB), dialer=True,
                         dialer_cert_hash=D_HASH, acceptor_cert_hash=A_HASH)
    acceptor = derive_keys(bob, bytes.fromhex(ALICE_PUB), dialer=False,
                           dialer_cert_hash=D_HASH, acceptor_cert_hash=A_HASH)
    return dialer, acceptor


def _hkdf_sha256(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 written out with hmac, independent of ``cryptography``."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
    return out[:length]


def test_key_derivation_known_answers() -> None:
    alice = X25519PrivateKey.from_private_bytes(ALICE)
    bob = X25519PrivateKey.from_private_bytes(BOB)
    assert alice.public_key().public_bytes_raw().hex() == ALICE_PUB
    assert alice.exchange(bob.public_key()).hex() == SHARED
    dialer, acceptor = _keys()
    assert dialer.send.hex() == D2A and dialer.recv.hex() == A2D
    assert acceptor.send == dialer.recv and acceptor.recv == dialer.send
    salt = hashlib.sha256(LABEL + D_HASH + A_HASH + bytes.fromhex(ALICE_PUB)
                          + bytes.fromhex(BOB_PUB)).digest()
    okm = _hkdf_sha256(salt, bytes.fromhex(SHARED), LABEL + b" keys", 64)
    assert okm.hex() == D2A + A2D
    assert "secret" in repr(dialer) and D2A not in repr(dialer)


def test_keys_depend_on_both_certificates() -> None:
    alice = X25519PrivateKey.from_private_bytes(ALICE)
    base = derive_keys(alice, bytes.fromhex(BOB_PUB), dialer=True, dialer_cert_hash=D_HASH,
                       acceptor_cert_hash=A_HASH)
    other = derive_keys(alice, bytes.fromhex(BOB_PUB), dialer=True, dialer_cert_hash=A_HASH,
                        acceptor_cert_hash=D_HASH)
    assert base.send != other.send and base.recv != other.recv


def test_low_order_and_malformed_public_values_are_refused() -> None:
    alice = X25519PrivateKey.from_private_bytes(ALICE)
    with pytest.raises(NetworkError, match="low-order"):
        derive_keys(alice, bytes(32), dialer=True, dialer_cert_hash=D_HASH,
                    acceptor_cert_hash=A_HASH)
    with pytest.raises(NetworkError, match="size"):
        derive_keys(alice, bytes(31), dialer=True, dialer_cert_hash=D_HASH,
                    acceptor_cert_hash=A_HASH)


def test_record_known_answer_and_independent_aes_gcm() -> None:
    dialer, _ = _keys()
    sealer = BulkSealer(dialer.send)
    digest = hashlib.sha256(b"head").digest()
    plain = bytes(range(64))
    r0 = bytes(sealer.seal(memoryview(plain), digest, 0, 2))
    r1 = bytes(sealer.seal(memoryview(plain), digest, 1, 2))
    assert r0.hex() == RECORD0
    for counter, index, got in ((0, 0, r0), (1, 1, r1)):
        c = AES.new(dialer.send, AES.MODE_GCM, nonce=counter.to_bytes(12, "big"))
        c.update(LABEL + digest + index.to_bytes(4, "big") + (2).to_bytes(4, "big"))
        ct, tag = c.encrypt_and_digest(plain)
        assert got == ct + tag
    assert r0 != r1  # the counter changes the nonce


def _sealed(n: int = 3, size: int = 100) -> tuple[list[bytes], bytes, bulk.BulkKeys]:
    dialer, acceptor = _keys()
    sealer = BulkSealer(dialer.send)
    digest = hashlib.sha256(b"frame").digest()
    recs = [bytes(sealer.seal(memoryview(bytes([i]) * size), digest, i, n)) for i in range(n)]
    return recs, digest, acceptor


def _open_all(opener: BulkOpener, recs: list[bytes], digest: bytes, n: int,
              order: list[int] | None = None) -> list[bytes]:
    out = []
    for pos, i in enumerate(order if order is not None else range(len(recs))):
        dest = bytearray(len(recs[i]) - TAG_SIZE)
        opener.open_into(memoryview(recs[i]), digest, pos, n, memoryview(dest))
        out.append(bytes(dest))
    return out


def test_records_open_in_order() -> None:
    recs, digest, acceptor = _sealed()
    assert _open_all(BulkOpener(acceptor.recv), recs, digest, 3) == [
        bytes([i]) * 100 for i in range(3)]


@pytest.mark.parametrize("mutate", ["flip", "reorder", "replay", "drop", "index", "count",
                                    "digest", "reflect", "truncate"])
def test_tampered_records_fail_authentication(mutate: str) -> None:
    recs, digest, acceptor = _sealed()
    opener, n, order = BulkOpener(acceptor.recv), 3, None
    if mutate == "flip":
        recs[1] = recs[1][:5] + bytes([recs[1][5] ^ 1]) + recs[1][6:]
    elif mutate == "reorder":
        order = [0, 2, 1]
    elif mutate == "replay":
        order = [0, 0, 1]
    elif mutate == "drop":
        order = [0, 2]
    elif mutate == "index":  # a record presented at another position of the frame
        opener.open_into(memoryview(recs[0]), digest, 0, n, memoryview(bytearray(100)))
        with pytest.raises(WireError, match="authentication"):
            opener.open_into(memoryview(recs[1]), digest, 2, n, memoryview(bytearray(100)))
        return
    elif mutate == "count":
        n = 4
    elif mutate == "digest":
        digest = hashlib.sha256(b"another frame").digest()
    elif mutate == "reflect":  # a record sent back to its sender
        opener = BulkOpener(acceptor.send)
    elif mutate == "truncate":
        with pytest.raises(WireError, match="length"):
            opener.open_into(memoryview(recs[0][:-1]), digest, 0, n,
                             memoryview(bytearray(100)))
        return
    with pytest.raises(WireError, match="authentication"):
        _open_all(opener, recs, digest, n, order)


def test_keys_move_on_in_step_after_their_byte_limit(monkeypatch) -> None:
    monkeypatch.setattr(bulk, "MAX_BYTES", 150)
    dialer, acceptor = _keys()
    sealer, opener = BulkSealer(dialer.send), BulkOpener(acceptor.recv)
    digest = bytes(32)
    for k in range(5):
        rec = bytes(sealer.seal(memoryview(bytes([k]) * 100), digest, 0, 1))
        dest = bytearray(100)
        opener.open_into(memoryview(rec), digest, 0, 1, memoryview(dest))
        assert dest == bytes([k]) * 100
    assert sealer.epoch == opener.epoch == 4
    assert bulk.next_key(dialer.send) != dialer.send
    # a receiver that did not move on cannot open records under the next key
    stale = BulkOpener(acceptor.recv)
    stale._counter = 4
    with pytest.raises(WireError, match="authentication"):
        stale.open_into(memoryview(rec), digest, 0, 1, memoryview(bytearray(100)))


def test_record_count() -> None:
    assert [record_count(n) for n in (0, 1, RECORD, RECORD + 1, 3 * RECORD)] == [1, 1, 1, 2, 3]


# --------------------------------------------------------------------------- over TLS


def _ids(eps: list[Endpoint]) -> list:
    return [e.node_id for e in eps]


@pytest.mark.parametrize("n", [BULK_MIN - 8, BULK_MIN, RECORD, RECORD + 8, 2 * RECORD + 24])
def test_large_frames_cross_tls_and_bulk_paths(make_endpoints, n: int) -> None:
    eps, _ = make_endpoints(2)
    a, b = (e.session(SID, _ids(eps)) for e in eps)
    rng = np.random.default_rng(n)
    sent = rng.integers(0, 2**63, n // 8, dtype=np.uint64).reshape(-1, 1)
    big_endian = sent.astype(">u8")
    a.send(1, "x", sent)
    a.send(1, "y", big_endian)
    b.send(0, "z", sent[::-1])
    got_x, got_y = b.recv(0, "x", timeout=20), b.recv(0, "y", timeout=20)
    assert got_x.shape == sent.shape and np.array_equal(got_x, sent)
    assert got_y.dtype == np.dtype("<u8") and np.array_equal(got_y, sent)
    assert np.array_equal(a.recv(1, "z", timeout=20), sent[::-1])
    got_x[0, 0] = 1  # writable


def test_pooled_receive_buffers_never_overwrite_held_arrays(make_endpoints) -> None:
    eps, _ = make_endpoints(2)
    a, b = (e.session(SID, _ids(eps)) for e in eps)
    held = []
    for k in range(4):
        a.send(1, "x", np.full(RECORD // 8, k, dtype=np.uint64))
        held.append(b.recv(0, "x", timeout=20))
    view = held[1][10:20]  # a view alone keeps its buffer out of the pool
    del held[1]
    for k in range(4, 8):  # dropped arrays get reused, held ones never
        a.send(1, "x", np.full(RECORD // 8, k, dtype=np.uint64))
        assert int(b.recv(0, "x", timeout=20)[0]) == k
    assert [int(h[0]) for h in held] == [0, 2, 3] and all(
        np.all(h == h[0]) for h in held)
    assert np.all(view == 1)


def test_ring_of_large_frames_does_not_deadlock(make_endpoints) -> None:
    eps, _ = make_endpoints(3)
    chans = [e.session(SID, _ids(eps)) for e in eps]
    size = 3 * RECORD // 8
    out: dict[int, np.ndarray] = {}

    def party(c) -> None:
        c.send((c.party + 1) % 3, "ring", np.full(size, c.party, dtype=np.uint64))
        out[c.party] = c.recv((c.party - 1) % 3, "ring", timeout=30)

    ts = [threading.Thread(target=party, args=(c,)) for c in chans]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert {p: int(a[0]) for p, a in out.items()} == {0: 2, 1: 0, 2: 1}


def test_links_move_to_the_next_key_without_a_hitch(make_endpoints, monkeypatch) -> None:
    monkeypatch.setattr(bulk, "MAX_BYTES", 3 * BULK_MIN)
    eps, _ = make_endpoints(2)
    a, b = (e.session(SID, _ids(eps)) for e in eps)
    for k in range(7):
        a.send(1, "x", np.full(BULK_MIN // 8, k, dtype=np.uint64))
        assert int(b.recv(0, "x", timeout=20)[-1]) == k
    conn = eps[0]._conns[eps[1].node_id]
    assert conn._sealer.epoch == 2 and len(eps[0].connected_peers()) == 1


# ---- a pinned peer that sends what it likes


def _intruder(ep: Endpoint, trust: MemoryTrustStore) -> tuple[str, TlsLink]:
    """A pinned peer whose id sorts below ``ep``'s (so it may dial), and its link."""
    while True:
        ident = new_node_identity()
        if ident.node_id.lower() < ep.node_id.lower():
            break
    trust.pin(ident.node_id, ident.cert_hash)
    return ident.node_id, dial_tls(TlsContexts(ident.tls), trust, ep.address, ep.node_id, 5)


def _tls_send(link: TlsLink, data: bytes) -> None:
    link.tls.write(data)
    link.sock.sendall(link.outgoing.read())


def _bulk_frame(sealer: BulkSealer, arr: np.ndarray, *,
                seq: int = 0) -> tuple[bytes, list[bytes]]:
    head, _ = encode_head(SID, "x", arr, seq=seq, kind=KIND_BULK)
    view = memoryview(arr.reshape(-1).view(np.uint8))
    n = record_count(len(view))
    digest = hashlib.sha256(head).digest()
    return head, [bytes(sealer.seal(view[i * RECORD:(i + 1) * RECORD], digest, i, n))
                  for i in range(n)]


def _send_until_refused(link: TlsLink, data: bytes) -> None:
    """Send the rest of an attack; the node may close the link as soon as it sees the
    bad part (any thread waiting on the endpoint reads it), so a refused send is fine."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        link.sock.sendall(data)


MESSAGES = {"flip": "authentication", "swap": "authentication", "replay": "authentication",
            "trailing": "bytes after a bulk frame header", "small": "below the bulk minimum",
            "cut": "closed by the peer"}


@pytest.mark.parametrize("attack", ["none", "flip", "swap", "replay", "trailing", "small",
                                    "cut"])
def test_bulk_attacks_by_a_pinned_peer_fail_only_its_session(make_endpoints, attack) -> None:
    eps, trust = make_endpoints(2)
    intruder, link = _intruder(eps[0], trust)
    chan = eps[0].session(SID, [eps[0].node_id, intruder], timeout=10)  # type: ignore[list-item]
    good = [e.session(b"good", _ids(eps)) for e in eps]
    arr = np.arange(2 * RECORD // 8 + 3, dtype=np.uint64)
    sealer = BulkSealer(link.bulk.send)
    head, recs = _bulk_frame(sealer, arr)
    if attack == "none":
        _tls_send(link, head)
        link.sock.sendall(b"".join(recs))
        assert np.array_equal(chan.recv(1, "x"), arr)
        return
    if attack == "flip":
        recs[1] = recs[1][:9] + bytes([recs[1][9] ^ 0x80]) + recs[1][10:]
    elif attack == "swap":
        recs[0], recs[1] = recs[1], recs[0]
    elif attack == "replay":
        recs[1] = recs[0]
    if attack == "trailing":  # payload bytes inside the header's TLS record
        _tls_send(link, head + b"\x00")
        _send_until_refused(link, b"".join(recs))
        expect: type[Exception] = WireError
    elif attack == "small":
        small = np.arange(4, dtype=np.uint64)
        h2, r2 = _bulk_frame(sealer, small)
        _tls_send(link, h2)
        _send_until_refused(link, b"".join(r2))
        expect = WireError
    elif attack == "cut":
        _tls_send(link, head)
        link.sock.sendall(recs[0] + recs[1][:100])
        link.sock.close()
        expect = NetworkError
    else:
        _tls_send(link, head)
        _send_until_refused(link, b"".join(recs))
        expect = WireError
    with pytest.raises(expect, match=MESSAGES[attack]):
        chan.recv(1, "x")
    good[0].send(1, "still", np.arange(3))  # the node and its other sessions carry on
    assert np.array_equal(good[1].recv(0, "still", timeout=10), np.arange(3))
