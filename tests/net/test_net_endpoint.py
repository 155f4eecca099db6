"""TLS endpoints in one process: delivery, sessions, pinning, failures, backpressure."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest

from metisnet.errors import NetworkError, PeerRefused, PeerTimeout, WireError
from metisnet.net.channel import Channel, InMemoryNetwork
from metisnet.net.endpoint import Endpoint, EndpointConfig, _Inbox
from metisnet.net.identity import new_node_identity
from metisnet.net.tls import TlsContexts, dial_tls
from metisnet.net.trust import MemoryTrustStore
from metisnet.net.wire import KIND_PING, encode_frame

SID = b"session-1"


def _ids(eps: list[Endpoint]) -> list:
    return [e.node_id for e in eps]


def _ring_steps(chans: list, steps: int = 3) -> list[np.ndarray]:
    got = []
    for step in range(steps):
        for c in chans:
            c.send((c.party + 1) % c.parties, f"s{step}",
                   np.arange(5, dtype=np.uint64) + c.party + step)
        for c in chans:
            got.append(c.recv((c.party - 1) % c.parties, f"s{step}", timeout=10))
    return got


def test_three_parties_exchange_and_count_like_the_in_memory_channel(make_endpoints) -> None:
    eps, _ = make_endpoints(3)
    chans = [e.session(SID, _ids(eps)) for e in eps]
    assert all(isinstance(c, Channel) for c in chans)
    got = _ring_steps(chans)
    for k, arr in enumerate(got):
        step, party = divmod(k, 3)
        assert np.array_equal(arr, np.arange(5, dtype=np.uint64) + (party - 1) % 3 + step)
    mem = [InMemoryNetwork(3).channel(i) for i in range(3)]
    net = InMemoryNetwork(3)
    mem = [net.channel(i) for i in range(3)]
    _ring_steps(mem)
    assert [c.stats for c in chans] == [c.stats for c in mem]
    assert chans[0].stats.rounds == 3 and chans[0].stats.bytes_sent == 3 * 40


def test_one_connection_per_pair_carries_many_sessions(make_endpoints) -> None:
    eps, _ = make_endpoints(2)
    sessions = [[e.session(f"s{k}".encode(), _ids(eps)) for e in eps] for k in range(4)]

    def run(pair: list, k: int) -> None:
        a, b = pair
        for i in range(20):
            a.send(1, "x", np.full(3, k * 100 + i, dtype=np.int64))
            assert b.recv(0, "x", timeout=10)[0] == k * 100 + i
            b.send(0, "y", np.full(2, -k, dtype=np.float64))
            assert a.recv(1, "y", timeout=10)[0] == -k

    threads = [threading.Thread(target=run, args=(p, k)) for k, p in enumerate(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert eps[0].connected_peers() == [eps[1].node_id]
    assert eps[1].connected_peers() == [eps[0].node_id]


def test_messages_sent_before_the_session_is_opened_are_kept(make_endpoints) -> None:
    eps, _ = make_endpoints(2)
    a = eps[0].session(SID, _ids(eps))
    a.send(1, "early", np.arange(4, dtype=np.uint32).reshape(2, 2))
    time.sleep(0.3)  # the receiver's background reader takes it in
    b = eps[1].session(SID, _ids(eps))
    assert np.array_equal(b.recv(0, "early", timeout=5), np.arange(4).reshape(2, 2))


def test_large_arrays_both_ways_at_once_do_not_deadlock(make_endpoints) -> None:
    eps, _ = make_endpoints(3)
    chans = [e.session(SID, _ids(eps)) for e in eps]
    big = [np.full(3 << 20, i, dtype=np.uint64) for i in range(3)]  # 24 MiB each

    def party(c) -> None:
        c.send((c.party + 1) % 3, "big", big[c.party])
        c.send((c.party + 2) % 3, "big", big[c.party])
        for p in ((c.party + 1) % 3, (c.party + 2) % 3):
            x = c.recv(p, "big", timeout=30)
            assert x.shape == big[p].shape and x[0] == p and x[-1] == p

    threads = [threading.Thread(target=party, args=(c,)) for c in chans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert all(c.stats.bytes_received == 2 * big[0].nbytes for c in chans)


def test_unpinned_peer_is_refused_before_any_payload(make_endpoints, caplog) -> None:
    eps, _ = make_endpoints(2)
    stranger = new_node_identity()
    # the stranger trusts everyone, but nobody trusts the stranger
    its_trust = MemoryTrustStore({e.node_id: e._ctx.identity.cert_hash for e in eps})
    its_trust.pin(stranger.node_id, stranger.cert_hash)
    target = eps[0]
    with pytest.raises(PeerRefused):
        dial_tls(TlsContexts(stranger.tls), its_trust, target.address, target.node_id, 5)
    assert stranger.node_id not in target.connected_peers()
    deadline = time.monotonic() + 3  # the acceptor logs from its handshake thread
    while not any("not in the trust store" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "refusal was not logged"
        time.sleep(0.02)


def test_wrong_certificate_for_a_pinned_node_is_refused(make_endpoints) -> None:
    eps, trust = make_endpoints(2)
    impostor = new_node_identity()
    # same node id as eps[1]? impossible without its key, so: a pinned id, a different cert
    trust.pin(impostor.node_id, bytes(32))
    with pytest.raises(PeerRefused):
        dial_tls(TlsContexts(impostor.tls), trust, eps[0].address, eps[0].node_id, 5)
    # and a dialler that finds someone else at the address refuses too
    with pytest.raises(PeerRefused, match="answered"):
        dial_tls(TlsContexts(eps[1]._ctx.identity), trust, eps[0].address, eps[1].node_id, 5)


def test_session_with_an_unpinned_member_fails_clearly(make_endpoints) -> None:
    eps, trust = make_endpoints(2)
    trust.unpin(eps[1].node_id)
    chans = [e.session(SID, _ids(eps), timeout=20) for e in eps]
    t0 = time.monotonic()
    for i in (0, 1):  # whichever side dials is refused; both fail well before the timeout
        with pytest.raises(PeerRefused):
            chans[i].send(1 - i, "x", np.zeros(1))
            chans[i].recv(1 - i, "x")
    assert time.monotonic() - t0 < 10


def test_silent_peer_times_out_within_the_timeout(make_endpoints) -> None:
    eps, _ = make_endpoints(2)
    a = eps[0].session(SID, _ids(eps))
    eps[1].session(SID, _ids(eps))
    a.send(1, "hello", np.zeros(1))
    t0 = time.monotonic()
    with pytest.raises(PeerTimeout, match="no message 'reply'"):
        a.recv(1, "reply", timeout=0.5)
    assert 0.45 <= time.monotonic() - t0 < 4.0


def test_vanished_peer_fails_the_session_quickly(make_endpoints) -> None:
    eps, _ = make_endpoints(2)
    a = eps[0].session(SID, _ids(eps))
    b = eps[1].session(SID, _ids(eps))
    a.send(1, "x", np.ones(2))
    b.recv(0, "x", timeout=5)
    b.send(0, "last words", np.ones(1))
    eps[1].close()
    t0 = time.monotonic()
    assert a.recv(1, "last words", timeout=5)[0] == 1  # what arrived is still delivered
    with pytest.raises(NetworkError) as info:
        a.recv(1, "never", timeout=10)
    assert not isinstance(info.value, PeerTimeout)
    assert time.monotonic() - t0 < 5


def test_reconnects_for_a_new_session_after_the_connection_dropped(make_endpoints) -> None:
    eps, _ = make_endpoints(2, backoff_initial=0.01)
    a = eps[0].session(b"one", _ids(eps))
    b = eps[1].session(b"one", _ids(eps))
    a.send(1, "x", np.ones(1))
    b.recv(0, "x", timeout=5)
    for e in eps:  # drop the link under both
        for c in list(e._conns.values()):
            e._fail(c, NetworkError("test drops the link"))
    with pytest.raises(NetworkError):
        a.recv(1, "y", timeout=2)
    a2 = eps[0].session(b"two", _ids(eps))
    b2 = eps[1].session(b"two", _ids(eps))
    a2.send(1, "x", np.full(1, 7))
    assert b2.recv(0, "x", timeout=10)[0] == 7
    b2.send(0, "y", np.full(1, 8))
    assert a2.recv(1, "y", timeout=10)[0] == 8


def test_dials_with_backoff_until_a_late_peer_starts_listening(identities) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    a_id, b_id = identities[0], identities[1]
    trust = MemoryTrustStore({a_id.node_id: a_id.cert_hash, b_id.node_id: b_id.cert_hash})
    cfg = EndpointConfig(backoff_initial=0.02, backoff_max=0.2, dial_grace=0.1)
    a = Endpoint(a_id, trust, cfg).start()
    b = Endpoint(b_id, trust, EndpointConfig(port=port))
    try:
        a.set_address(b_id.node_id, "127.0.0.1", port)
        ids = [a_id.node_id, b_id.node_id]
        chan = a.session(SID, ids, timeout=10)
        threading.Timer(0.7, b.start).start()  # b comes up late
        chan.send(1, "x", np.full(2, 5))  # waits for the connection, then goes
        b.set_address(a_id.node_id, *a.address)
        assert b.session(SID, ids).recv(0, "x", timeout=10)[0] == 5
    finally:
        a.close()
        b.close()


def _authenticated_intruder(ep: Endpoint, trust: MemoryTrustStore):
    """A pinned peer whose id sorts below ``ep``'s, so it may dial ``ep``."""
    while True:
        ident = new_node_identity()
        if ident.node_id.lower() < ep.node_id.lower():
            break
    trust.pin(ident.node_id, ident.cert_hash)
    link = dial_tls(TlsContexts(ident.tls), trust, ep.address, ep.node_id, 5)
    return ident, link


def _link_send(link, data: bytes) -> None:
    link.tls.write(data)
    link.sock.sendall(link.outgoing.read())


def test_bad_frame_closes_that_connection_and_fails_its_session_only(make_endpoints,
                                                                    caplog) -> None:
    eps, trust = make_endpoints(2)
    ident, link = _authenticated_intruder(eps[0], trust)
    bad = eps[0].session(b"bad", [eps[0].node_id, ident.node_id], timeout=5)
    good = [e.session(b"good", _ids(eps)) for e in eps]
    _link_send(link, encode_frame(b"bad", "ok", np.ones(2, dtype=np.uint64)))
    assert bad.recv(1, "ok")[1] == 1
    _link_send(link, b"MN\x00\x05" + bytes(8) + b"\xc1\xc1\xc1\xc1\xc1")  # garbage header
    with pytest.raises(WireError, match="rejected"):
        bad.recv(1, "next")
    assert any("bad frame" in r.getMessage() for r in caplog.records)
    good[0].send(1, "still", np.arange(3))  # the node and its other sessions carry on
    assert np.array_equal(good[1].recv(0, "still", timeout=5), np.arange(3))


def _small(session: bytes, tag: str, seq: int, value: object, dtype: object = np.uint64,
           shape: tuple[int, ...] = (1,)) -> bytes:
    return encode_frame(session, tag, np.full(shape, value, dtype=dtype), seq=seq)


def test_small_frames_in_any_packing_reach_the_waiting_reader(make_endpoints) -> None:
    """The one-record latency path and the general decoder hand out the same frames."""
    eps, trust = make_endpoints(1)
    ident, link = _authenticated_intruder(eps[0], trust)
    chan = eps[0].session(b"s", [eps[0].node_id, ident.node_id], timeout=5)
    for seq in (0, 1, 2):  # one frame per record: the latency path, cold then warm
        _link_send(link, _small(b"s", "t", seq, seq))
        got = chan.recv(1, "t")
        assert got.tolist() == [seq] and got.flags.writeable
    _link_send(link, _small(b"s", "u", 0, 10) + _small(b"s", "t", 3, 3))  # one record
    assert chan.recv(1, "t").tolist() == [3]
    assert chan.recv(1, "u").tolist() == [10]
    frame = _small(b"s", "t", 4, 4)
    _link_send(link, frame[:7])  # one frame over two records
    _link_send(link, frame[7:])
    assert chan.recv(1, "t").tolist() == [4]
    _link_send(link, _small(b"s", "t", 6, 6))  # out of order: kept until its turn
    _link_send(link, _small(b"s", "t", 5, 5))
    assert chan.recv(1, "t").tolist() == [5]
    assert chan.recv(1, "t").tolist() == [6]
    _link_send(link, _small(b"s", "m", 0, 2, np.int32, (2, 3)))  # other shapes, alone
    assert chan.recv(1, "m").tolist() == [[2, 2, 2], [2, 2, 2]]
    _link_send(link, _small(b"s", "z", 0, 7, np.int64, ()))
    z = chan.recv(1, "z")
    assert z.shape == () and z == 7
    _link_send(link, _small(b"s", "e", 0, 0, np.float64, (0,)))
    assert chan.recv(1, "e").shape == (0,)
    # alone in a record while the reader waits for another: a ping (ignored), a frame for
    # a session not opened yet (kept), one for another tag (queued)
    seq = 7
    for other in (encode_frame(b"s", "p", None, kind=KIND_PING), _small(b"later", "t", 0, 9),
                  _small(b"s", "u", 1, 11)):
        _link_send(link, other)  # comes alone: the awaited frame follows 0.1 s later
        timer = threading.Timer(0.1, _link_send, (link, _small(b"s", "t", seq, seq)))
        timer.start()
        assert chan.recv(1, "t").tolist() == [seq]
        timer.join()
        seq += 1
    assert chan.recv(1, "u").tolist() == [11]
    later = eps[0].session(b"later", [eps[0].node_id, ident.node_id], timeout=5)
    assert later.recv(1, "t").tolist() == [9]
    _link_send(link, _small(b"s", "t", seq - 1, 0))  # a repeat closes the connection
    with pytest.raises(WireError, match="repeated"):
        chan.recv(1, "t")


def test_known_header_layout_with_a_wrong_payload_length_is_refused(make_endpoints) -> None:
    eps, trust = make_endpoints(1)
    ident, link = _authenticated_intruder(eps[0], trust)
    chan = eps[0].session(b"s", [eps[0].node_id, ident.node_id], timeout=5)
    for seq in (0, 1):  # the layout is known now
        _link_send(link, _small(b"s", "t", seq, seq))
        assert chan.recv(1, "t").tolist() == [seq]
    frame = bytearray(_small(b"s", "t", 2, 2))
    frame[4:12] = (16).to_bytes(8, "big")  # the prefix announces 16 payload bytes
    _link_send(link, bytes(frame) + bytes(8))  # and 16 come: the shape needs 8
    with pytest.raises(WireError, match="needs 8 bytes"):
        chan.recv(1, "t")


def test_oversized_frame_is_refused_from_its_prefix(make_endpoints) -> None:
    eps, trust = make_endpoints(1, max_payload=1 << 16)
    ident, link = _authenticated_intruder(eps[0], trust)
    chan = eps[0].session(b"s", [eps[0].node_id, ident.node_id], timeout=5)
    _link_send(link, b"MN\x00\x10" + (1 << 40).to_bytes(8, "big"))
    with pytest.raises(WireError, match="frame cap"):
        chan.recv(1, "x")


def test_sender_to_a_peer_that_never_reads_fails_with_peer_timeout(make_endpoints) -> None:
    eps, trust = make_endpoints(1, send_timeout=1.0)
    ident, link = _authenticated_intruder(eps[0], trust)  # connected, never reads
    chan = eps[0].session(b"s", [eps[0].node_id, ident.node_id], timeout=5)
    t0 = time.monotonic()
    with pytest.raises(PeerTimeout, match="stalled"):
        for _ in range(64):
            chan.send(1, "flood", np.zeros(1 << 20, dtype=np.uint64))
    assert time.monotonic() - t0 < 10
    link.sock.close()


def test_full_session_buffer_holds_the_sender_back_until_it_times_out(make_endpoints) -> None:
    eps, _ = make_endpoints(2, session_buffer=1 << 20, send_timeout=1.0)
    a = eps[0].session(SID, _ids(eps))
    b = eps[1].session(SID, _ids(eps))
    chunk = np.zeros(1 << 16, dtype=np.uint64)  # 512 KiB
    for _ in range(6):  # more than the session buffer: fine while the receiver drains
        a.send(1, "data", chunk)
    for _ in range(6):
        assert b.recv(0, "data", timeout=5).nbytes == chunk.nbytes
    assert eps[1]._sessions.inboxes[SID].buffered == 0
    t0 = time.monotonic()
    with pytest.raises(PeerTimeout, match="stalled"):  # now b's session never reads
        for _ in range(200):
            a.send(1, "data", chunk)
    assert time.monotonic() - t0 < 10
    assert eps[1]._sessions.inboxes[SID].buffered <= 1 << 20  # the receiver stayed within its bound


def test_invalid_use_is_refused(make_endpoints) -> None:
    eps, _ = make_endpoints(2)
    with pytest.raises(ValueError, match="appear once"):
        eps[0].session(SID, [eps[1].node_id, new_node_identity().node_id])
    c = eps[0].session(SID, _ids(eps))
    with pytest.raises(ValueError, match="already used"):
        eps[0].session(SID, _ids(eps))
    with pytest.raises(ValueError, match="invalid peer"):
        c.send(0, "self", np.zeros(1))
    c.close()
    with pytest.raises(NetworkError, match="closed"):
        c.recv(1, "x")
    with pytest.raises(ValueError, match="already used"):
        eps[0].session(SID, _ids(eps))


def test_endpoint_config_is_frozen_validated_and_loadable(tmp_path, monkeypatch) -> None:
    from metisnet.config import load_config
    from metisnet.errors import ConfigError

    cfg = EndpointConfig(port=0, timeout=1.5)
    with pytest.raises(AttributeError):
        cfg.timeout = 3  # type: ignore[misc]
    assert cfg.limits().max_payload == 1 << 30
    for bad in ({"timeout": 0}, {"port": 70000}, {"session_buffer": 0}):
        with pytest.raises(ConfigError):
            EndpointConfig(**bad)
    with pytest.raises(ValueError):
        EndpointConfig(max_header=4)
    path = tmp_path / "node.toml"
    path.write_text("[net]\nport = 7001\nsend_timeout = 5\n")
    monkeypatch.setenv("METIS_TIMEOUT", "7.5")
    loaded = load_config(EndpointConfig, path, table="net")
    assert (loaded.port, loaded.send_timeout, loaded.timeout) == (7001, 5.0, 7.5)


def test_local_committee_files_open_endpoints_that_find_each_other(tmp_path) -> None:
    import socket

    from metisnet.net.endpoint import create_local_committee, open_endpoint

    ports = []
    for _ in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    keystores, trust = create_local_committee(tmp_path, ports, password="pw", scrypt_n=1024)
    eps = [open_endpoint(k, trust, password="pw", config=EndpointConfig(port=p))
           for k, p in zip(keystores, ports, strict=True)]
    try:
        chans = [e.session(SID, _ids(eps)) for e in eps]
        got = _ring_steps(chans, steps=1)
        assert [int(g[0]) for g in got] == [2, 0, 1]
    finally:
        for e in eps:
            e.close()


def test_async_face_over_tls_channels(make_endpoints) -> None:
    import asyncio

    from metisnet.net.aio import AsyncChannel

    eps, _ = make_endpoints(2)
    a, b = (AsyncChannel(e.session(SID, _ids(eps))) for e in eps)

    async def run() -> np.ndarray:
        await a.send(1, "x", np.arange(4))
        got = await b.recv(0, "x", timeout=5)
        await b.send(0, "y", got * 2)
        return await a.recv(1, "y", timeout=5)

    assert np.array_equal(asyncio.run(run()), np.arange(4) * 2)
    assert a.party == 0 and b.parties == 2 and a.stats.messages_sent == 1


def test_garbage_and_silent_callers_do_not_disturb_the_node(make_endpoints, caplog) -> None:
    import socket

    eps, _ = make_endpoints(2, connect_timeout=1.0)
    silent = socket.create_connection(eps[0].address)  # says nothing at all
    noisy = socket.create_connection(eps[0].address)
    noisy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 8)
    chans = [e.session(SID, _ids(eps)) for e in eps]
    chans[1].send(0, "ok", np.arange(3))  # the node keeps serving its real peers
    assert np.array_equal(chans[0].recv(1, "ok", timeout=10), np.arange(3))
    deadline = time.monotonic() + 5
    while not any("hello" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the garbage caller was not refused"
        time.sleep(0.02)
    with contextlib.suppress(ConnectionResetError):  # closed on it (or reset: unread bytes)
        assert noisy.recv(10) == b""
    silent.close()
    noisy.close()


def test_revalidate_drops_a_peer_that_lost_its_pin(make_endpoints) -> None:
    eps, trust = make_endpoints(2)
    chans = [e.session(SID, _ids(eps)) for e in eps]
    chans[0].send(1, "x", np.ones(1))
    chans[1].recv(0, "x", timeout=5)
    assert eps[0].revalidate() == []
    trust.unpin(eps[1].node_id)  # e.g. deregistered on chain
    assert eps[0].revalidate() == [eps[1].node_id]
    with pytest.raises(PeerRefused, match="no longer pinned"):
        chans[0].recv(1, "y", timeout=5)
    with pytest.raises(PeerRefused):
        chans[0].send(1, "y", np.ones(1))


def test_inbox_claim_keeps_sequence_and_checks() -> None:
    """A frame claimed straight by a waiting reader advances the stream like ``take``."""
    ib = _Inbox(capacity=1 << 20)
    peer = "n" * 64
    a = np.arange(3, dtype=np.int64)
    assert not ib.claim(peer, "t", 1)  # not the next one: goes through put
    assert ib.put(peer, "t", 1, a + 1)
    assert ib.claim(peer, "t", 0)  # the next one, nothing queued under it
    with pytest.raises(WireError, match="repeated"):
        ib.put(peer, "t", 0, a)  # a repeat of a claimed frame is still refused
    got = ib.take(peer, "t")
    assert got is not None and got.tolist() == [1, 2, 3]  # then the queued seq 1
    assert ib.take(peer, "t") is None
    assert ib.claim(peer, "u", 0)  # other tags keep their own position
    assert ib.take(peer, "u") is None
    ib.fail(NetworkError("gone"))
    assert not ib.claim(peer, "t", 2)  # a failed session claims nothing
    ib2 = _Inbox(capacity=1 << 20)
    ib2.close()
    assert not ib2.claim(peer, "t", 0)
