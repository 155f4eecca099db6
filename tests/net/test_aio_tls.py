"""The native asyncio TLS endpoint: delivery, multiplexing, framing, pinning, failures.

Each test runs its own event loop with ``asyncio.run`` (pytest-asyncio is not a
dependency). Waits are bounded by ``asyncio.timeout`` guards so that a hang fails the test
instead of stalling the suite; no test asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import struct
import sys
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metisnet.errors import NetworkError, PeerRefused, PeerTimeout, WireError
from metisnet.net.aio_frames import FrameReceiver, FrameTruncated, _RecvPool
from metisnet.net.aio_link import HELLO_MAGIC, dial_link
from metisnet.net.aio_tls import AsyncTlsEndpoint, EndpointConfig
from metisnet.net.identity import NodeIdentity, create_node_files, new_node_identity
from metisnet.net.tls import TlsContexts
from metisnet.net.trust import FileTrustStore, MemoryTrustStore
from metisnet.net.wire import PREFIX_SIZE, VERSION, Frame, WireLimits, encode_frame

SID = b"session-1"
GUARD = 30.0  # a hang guard, not a timing assertion


def run(coro: Awaitable[Any]) -> Any:
    async def guarded() -> Any:
        async with asyncio.timeout(GUARD):
            return await coro

    return asyncio.run(guarded())


@contextlib.asynccontextmanager
async def endpoints(identities: list[NodeIdentity], n: int = 2,
                    **cfg: Any) -> AsyncIterator[tuple[list[AsyncTlsEndpoint],
                                                       MemoryTrustStore]]:
    trust = MemoryTrustStore({i.node_id: i.cert_hash for i in identities[:n]})
    config = EndpointConfig(**{"dial_grace": 0.2, **cfg})
    eps = [AsyncTlsEndpoint(i, trust, config) for i in identities[:n]]
    try:
        for e in eps:
            await e.start()
        for e in eps:
            for f in eps:
                e.set_address(f.node_id, *f.address)
        yield eps, trust
    finally:
        for e in eps:
            await e.close()


def _ids(eps: list[AsyncTlsEndpoint]) -> list:
    return [e.node_id for e in eps]


ARRAYS = [
    np.arange(12, dtype=np.uint64).reshape(3, 4),
    np.array(-7, dtype=np.int32),  # 0-d
    np.zeros((0, 5), dtype=np.float64),  # empty
    np.linspace(-1, 1, 33, dtype=np.float32),
    np.arange(1 << 18, dtype=np.int64).reshape(2, -1),  # 2 MiB: the chunked path
    np.arange(24, dtype=">u4").reshape(2, 3, 4),  # big endian goes out little endian
    np.asfortranarray(np.arange(20, dtype=np.int16).reshape(4, 5)),  # not C-contiguous
    np.frombuffer(b"\x00\xffab", dtype=np.uint8),
]


def test_round_trip_of_several_dtypes_and_shapes(identities) -> None:
    async def main() -> None:
        async with endpoints(identities) as (eps, _):
            a, b = (e.session(SID, _ids(eps)) for e in eps)
            for k, arr in enumerate(ARRAYS):
                await a.send(1, f"t{k}", arr)
            for k, arr in enumerate(ARRAYS):
                got = await b.recv(0, f"t{k}", timeout=10)
                assert got.shape == arr.shape and np.array_equal(got, arr)
                assert got.dtype == arr.dtype.newbyteorder("<")
                assert got.flags.writeable and got.flags.c_contiguous
            await b.send(0, "back", ARRAYS[0])
            assert np.array_equal(await a.recv(1, "back", timeout=10), ARRAYS[0])
            assert a.stats.messages_sent == len(ARRAYS) and b.stats.messages_received == 8
            assert a.stats.bytes_sent == sum(x.nbytes for x in ARRAYS) == b.stats.bytes_received
            assert a.party == 0 and b.party == 1 and a.parties == 2
            assert eps[0].connected_peers() == [eps[1].node_id]

    run(main())


def test_the_channel_has_the_shape_of_the_async_channel_wrapper() -> None:
    import inspect

    from metisnet.net.aio import AsyncChannel
    from metisnet.net.aio_session import AsyncTlsChannel

    for name in ("send", "recv", "close"):
        assert inspect.iscoroutinefunction(getattr(AsyncTlsChannel, name))
        assert (inspect.signature(getattr(AsyncTlsChannel, name)).parameters.keys()
                == inspect.signature(getattr(AsyncChannel, name)).parameters.keys())
    for name in ("party", "parties", "stats"):
        assert isinstance(getattr(AsyncTlsChannel, name), property)


def test_two_sessions_are_multiplexed_on_one_connection(identities) -> None:
    async def main() -> None:
        async with endpoints(identities) as (eps, _):
            pairs = [[e.session(f"s{k}".encode(), _ids(eps)) for e in eps] for k in range(2)]

            async def talk(a: Any, b: Any, k: int) -> None:
                for i in range(30):
                    await a.send(1, "x", np.full(3, k * 100 + i, dtype=np.int64))
                    assert (await b.recv(0, "x", timeout=10))[0] == k * 100 + i
                    await b.send(0, "y", np.full(2, -k, dtype=np.float64))
                    assert (await a.recv(1, "y", timeout=10))[0] == -k

            await asyncio.gather(*(talk(a, b, k) for k, (a, b) in enumerate(pairs)))
            assert eps[0].connected_peers() == [eps[1].node_id]
            assert eps[1].connected_peers() == [eps[0].node_id]
            assert len(eps[0]._spare) + len(eps[1]._spare) == 0  # one link, both ways

    run(main())


def test_three_parties_ring_and_early_frames(identities) -> None:
    async def main() -> None:
        async with endpoints(identities, 3) as (eps, _):
            a = eps[0].session(SID, _ids(eps))
            await a.send(1, "early", np.arange(4))  # party 1 has not joined yet
            chans = [a, *(e.session(SID, _ids(eps)) for e in eps[1:])]
            assert np.array_equal(await chans[1].recv(0, "early", timeout=10), np.arange(4))
            for step in range(3):
                for c in chans:
                    await c.send((c.party + 1) % 3, f"s{step}", np.full(2, c.party + step))
                for c in chans:
                    got = await c.recv((c.party - 1) % 3, f"s{step}", timeout=10)
                    assert got[0] == (c.party - 1) % 3 + step
            assert chans[0].stats.rounds == 3  # "early" and s0 share a round

    run(main())


# --------------------------------------------------------------------------- the frame parser


def _parse_pieces(pieces: list[bytes], limits: WireLimits | None = None,
                  full_every: int = 0) -> list[Any]:
    """Feed ``pieces`` to a FrameReceiver the way ``ssl`` does; frames, then the error.

    With ``full_every`` = k, frames whose sequence number k divides find their session full
    once (the frame is
    parked, then :meth:`FrameReceiver.retry` delivers it). A clean end of stream is not
    listed; a truncated one is.
    """
    out: list[Any] = []
    refused: set[int] = set()

    def deliver(header: Any, arr: Any) -> bool:
        if full_every and header.seq % full_every == 0 and header.seq not in refused:
            refused.add(header.seq)
            return False
        out.append(Frame(header, arr))
        return True

    parked: list[bool] = []
    rec = FrameReceiver(limits or WireLimits(), deliver, out.append,
                        lambda: parked.append(True))
    for piece in pieces:
        data = memoryview(piece)
        while data:
            while parked:
                parked.pop()
                assert rec.retry()
            buf = rec.get_buffer(len(data))
            assert len(buf) > 0
            k = min(len(buf), len(data))
            buf[:k] = data[:k]
            rec.buffer_updated(k)
            data = data[k:]
    while parked:
        parked.pop()
        assert rec.retry()
    rec.eof_received()
    if out and isinstance(out[-1], NetworkError) and not isinstance(out[-1], WireError):
        out.pop()  # the clean end of the stream
    return out


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[i:j] for i, j in zip([0, *points], [*points, len(data)], strict=True)
            if j > i]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["|u1", "<i4", "<u8", "<f8"]),
                          st.lists(st.integers(0, 5), max_size=3),
                          st.text(min_size=0, max_size=12).filter(str.isprintable)),
                min_size=1, max_size=4),
       st.lists(st.integers(0, 1 << 20), max_size=20),
       st.sampled_from([0, 1, 2, 3]),
       st.sampled_from([0, 1, 70_000, 200_000]))
def test_frames_fed_in_random_fragments_decode_exactly(specs, cuts, full_every,
                                                       big) -> None:
    arrays = []
    stream = b""
    if big:  # a payload large enough to be read straight into its array
        specs = [*specs, ("<u8", [big], "big")]
    for k, (dt, shape, tag) in enumerate(specs):
        arr = (np.arange(int(np.prod(shape)), dtype=dt) + k).reshape(shape)
        arrays.append((tag, arr))
        stream += encode_frame(b"sess", tag, arr, seq=k)
    out = _parse_pieces(_cut(stream, cuts), full_every=full_every)
    assert len(out) == len(arrays), out
    for k, (frame, (tag, arr)) in enumerate(zip(out, arrays, strict=True)):
        assert frame.header.tag == tag and frame.header.seq == k
        assert frame.header.session == b"sess"
        assert np.array_equal(frame.array, arr) and frame.array.dtype == arr.dtype


def test_large_payloads_keep_their_memory_while_held_and_reuse_it_after() -> None:
    big = [np.full(1 << 18, k, dtype=np.uint64) for k in range(4)]  # 2 MiB each: pooled
    stream = b"".join(encode_frame(b"s", "big", a, seq=k) for k, a in enumerate(big))
    frames = _parse_pieces(_cut(stream, [5000, 1 << 20, 3 << 20, 5 << 20]))
    assert [int(f.array[0]) for f in frames] == [0, 1, 2, 3]  # all held: none overwritten
    assert all(np.array_equal(f.array, a) for f, a in zip(frames, big, strict=True))
    addrs = {f.array.__array_interface__["data"][0] for f in frames}
    assert len(addrs) == 4
    pool = _RecvPool()
    h = frames[0].header
    first = pool.array(h)
    view = first[5:9]  # a view keeps the buffer in use
    addr = first.__array_interface__["data"][0]
    del first
    assert pool.array(h).__array_interface__["data"][0] != addr
    del view
    assert pool.array(h).__array_interface__["data"][0] == addr  # free again: reused


GOOD = encode_frame(b"s", "t", np.arange(6, dtype=np.uint32), seq=3)


def _with_version(version: int) -> bytes:
    import msgpack

    head = msgpack.packb([version, 0, b"s", "t", 0, "<u4", [2]], use_bin_type=True)
    return struct.pack(">2sHQ", b"MN", len(head), 8) + head + bytes(8)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_bad_frames_give_a_clear_error_and_never_hang(data) -> None:
    kind = data.draw(st.sampled_from(["truncated", "oversized", "version", "garbage"]))
    if kind == "truncated":
        stream = GOOD[:data.draw(st.integers(1, len(GOOD) - 1))]
        expect: type[Exception] = FrameTruncated
    elif kind == "oversized":
        size = data.draw(st.integers((1 << 16) + 1, (1 << 64) - 1))
        stream = struct.pack(">2sHQ", b"MN", 20, size) + bytes(20)
        expect = WireError
    elif kind == "version":
        v = data.draw(st.integers(0, 1 << 32).filter(lambda x: x != VERSION))
        stream = _with_version(v)
        expect = WireError
    else:
        stream = data.draw(st.binary(min_size=PREFIX_SIZE, max_size=200))
        expect = WireError
    prefix_ok = data.draw(st.booleans())  # a good frame first, then the bad one
    pieces = _cut((GOOD if prefix_ok else b"") + stream,
                  data.draw(st.lists(st.integers(0, 400), max_size=6)))
    out = _parse_pieces(pieces, WireLimits(max_payload=1 << 16))
    good = [f for f in out if not isinstance(f, Exception)]
    errors = [f for f in out if isinstance(f, Exception)]
    if kind == "garbage" and not errors:  # random bytes that happen to be a frame
        assert len(good) >= 1
        return
    assert len(errors) == 1 and isinstance(errors[0], expect), out
    assert str(errors[0])  # a message naming what is wrong
    assert len(good) == (1 if prefix_ok else 0) or kind == "garbage"
    if kind == "version":
        assert "version" in str(errors[0])
    if kind == "oversized":
        assert "cap" in str(errors[0])


# --------------------------------------------------------------------------- pinning


def test_unpinned_peer_is_refused_before_any_payload(identities, caplog) -> None:
    caplog.set_level(logging.INFO)

    async def main() -> None:
        async with endpoints(identities) as (eps, _):
            stranger = new_node_identity()
            its_trust = MemoryTrustStore({e.node_id: e._ctx.identity.cert_hash for e in eps})
            its_trust.pin(stranger.node_id, stranger.cert_hash)
            with pytest.raises(PeerRefused, match="closed the connection after our hello"):
                await dial_link(TlsContexts(stranger.tls), its_trust, eps[0].address,
                                eps[0].node_id, 5)
            # raw: a hello from the stranger followed at once by a frame; the node never
            # reads the frame, answers nothing and hangs up
            reader, writer = await asyncio.open_connection(*eps[0].address)
            der = stranger.tls.cert_der
            writer.write(struct.pack(">8sH", HELLO_MAGIC, len(der)) + der
                         + encode_frame(SID, "x", np.ones(4)))
            assert await reader.read() == b""
            writer.close()
            assert stranger.node_id not in eps[0].connected_peers()
            assert SID not in eps[0]._sessions.inboxes

    run(main())
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("not in the trust store" in m and "refused connection" in m for m in msgs) == 2


def test_session_with_an_unpinned_member_fails_clearly(identities) -> None:
    async def main() -> None:
        async with endpoints(identities, backoff_initial=0.01) as (eps, trust):
            trust.unpin(eps[1].node_id)
            chans = [e.session(SID, _ids(eps), timeout=20) for e in eps]
            for i in (0, 1):  # whichever side dials is refused; both fail, not time out
                with pytest.raises(PeerRefused):
                    await chans[i].send(1 - i, "x", np.zeros(1))
                    await chans[i].recv(1 - i, "x")

    run(main())


def test_a_threaded_style_hello_is_refused(identities) -> None:
    async def main() -> None:
        async with endpoints(identities) as (eps, _):
            reader, writer = await asyncio.open_connection(*eps[0].address)
            writer.write(b"MNHELLO2" + bytes(2) + b"GET / HTTP/1.1\r\n\r\n")
            assert await reader.read() == b""
            writer.close()
            a, b = (e.session(SID, _ids(eps)) for e in eps)  # still serving
            await a.send(1, "ok", np.arange(3))
            assert np.array_equal(await b.recv(0, "ok", timeout=10), np.arange(3))

    run(main())


# --------------------------------------------------------------------------- failures


def test_vanished_peer_fails_the_session_within_its_timeout(identities) -> None:
    async def main() -> None:
        async with endpoints(identities) as (eps, _):
            a, b = (e.session(SID, _ids(eps)) for e in eps)
            await a.send(1, "x", np.ones(2))
            await b.recv(0, "x", timeout=5)
            await b.send(0, "last words", np.ones(1))
            await eps[1].close()
            assert (await a.recv(1, "last words", timeout=5))[0] == 1
            with pytest.raises(NetworkError) as info:
                await a.recv(1, "never", timeout=10)
            assert not isinstance(info.value, PeerTimeout)  # failed, did not time out
            with pytest.raises(NetworkError):
                await a.send(1, "more", np.ones(1))

    run(main())


def test_silent_peer_times_out(identities) -> None:
    async def main() -> None:
        async with endpoints(identities) as (eps, _):
            a = eps[0].session(SID, _ids(eps))
            eps[1].session(SID, _ids(eps))
            await a.send(1, "hello", np.zeros(1))
            with pytest.raises(PeerTimeout, match="no message 'reply'"):
                await a.recv(1, "reply", timeout=0.3)

    run(main())


def test_bad_frame_closes_that_connection_fails_its_session_and_then_reconnects(
        identities, caplog) -> None:
    async def main() -> None:
        async with endpoints(identities, backoff_initial=0.01) as (eps, _):
            a, b = (e.session(b"one", _ids(eps)) for e in eps)
            await a.send(1, "x", np.ones(1))
            await b.recv(0, "x", timeout=5)
            eps[0]._links[eps[1].node_id].writer.write(
                b"MN\x00\x05" + bytes(8) + b"\xc1\xc1\xc1\xc1\xc1")  # a garbage header
            with pytest.raises(WireError, match="rejected"):
                await b.recv(0, "next", timeout=10)
            with pytest.raises(NetworkError):  # the sender's side of the link closes too
                await a.recv(1, "next", timeout=10)
            a2, b2 = (e.session(b"two", _ids(eps)) for e in eps)
            await a2.send(1, "x", np.full(1, 7))
            assert (await b2.recv(0, "x", timeout=10))[0] == 7
            await b2.send(0, "y", np.full(1, 8))
            assert (await a2.recv(1, "y", timeout=10))[0] == 8

    run(main())
    assert any("bad frame" in r.getMessage() for r in caplog.records)


def test_reconnects_after_a_dropped_connection(identities) -> None:
    async def main() -> None:
        async with endpoints(identities, backoff_initial=0.01) as (eps, _):
            a, b = (e.session(b"one", _ids(eps)) for e in eps)
            await a.send(1, "x", np.ones(1))
            await b.recv(0, "x", timeout=5)
            first = eps[0]._links[eps[1].node_id]
            first.writer.transport.abort()  # the connection drops under both
            with pytest.raises(NetworkError):
                await a.recv(1, "y", timeout=10)
            with pytest.raises(NetworkError):
                await b.recv(0, "y", timeout=10)
            a2, b2 = (e.session(b"two", _ids(eps)) for e in eps)
            await b2.send(0, "x", np.full(1, 7))  # the larger id may dial too, after a grace
            assert (await a2.recv(1, "x", timeout=10))[0] == 7
            assert eps[0]._links[eps[1].node_id] is not first

    run(main())


def test_dials_with_backoff_until_a_late_peer_listens(identities) -> None:
    import socket

    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        a_id, b_id = identities[0], identities[1]
        trust = MemoryTrustStore({a_id.node_id: a_id.cert_hash, b_id.node_id: b_id.cert_hash})
        cfg = EndpointConfig(backoff_initial=0.02, backoff_max=0.2, dial_grace=0.1)
        a = await AsyncTlsEndpoint(a_id, trust, cfg).start()
        b = AsyncTlsEndpoint(b_id, trust, EndpointConfig(port=port))
        try:
            a.set_address(b_id.node_id, "127.0.0.1", port)
            ids = [a_id.node_id, b_id.node_id]
            chan = a.session(SID, ids, timeout=10)
            sending = asyncio.ensure_future(chan.send(1, "x", np.full(2, 5)))
            await asyncio.sleep(0.5)  # a few failed dials
            assert not sending.done()
            await b.start()
            b.set_address(a_id.node_id, *a.address)
            await sending
            assert (await b.session(SID, ids).recv(0, "x", timeout=10))[0] == 5
        finally:
            await a.close()
            await b.close()

    run(main())


def test_full_session_buffer_holds_the_sender_back_not_the_memory(identities) -> None:
    async def main() -> None:
        cap = 1 << 20
        async with endpoints(identities, session_buffer=cap, send_timeout=20) as (eps, _):
            a, b = (e.session(SID, _ids(eps)) for e in eps)
            chunk = np.arange(1 << 17, dtype=np.uint64)  # 1 MiB
            n = 96  # 96 MiB: far more than every buffer on the way
            sent = 0

            async def flood() -> None:
                nonlocal sent
                for i in range(n):
                    await a.send(1, "data", chunk + i)
                    sent += 1

            task = asyncio.ensure_future(flood())
            done, _ = await asyncio.wait({task}, timeout=3)
            assert not done and sent < n  # the sender is held back...
            inbox = eps[1]._sessions.inboxes[SID]
            assert inbox.buffered <= cap + chunk.nbytes  # ...and the receiver stays bounded
            for i in range(n):  # reading releases it, in order, nothing lost
                got = await b.recv(0, "data", timeout=20)
                assert got[0] == i and got[-1] == chunk[-1] + i
                assert inbox.buffered <= cap + chunk.nbytes
            await task
            assert sent == n

    run(main())


def test_sender_to_a_peer_that_never_reads_fails_with_peer_timeout(identities) -> None:
    async def main() -> None:
        async with endpoints(identities, session_buffer=1 << 20, send_timeout=0.5) as (eps,
                                                                                     _):
            a = eps[0].session(SID, _ids(eps))
            eps[1].session(SID, _ids(eps))  # joined, never reads
            with pytest.raises(PeerTimeout, match="stalled"):
                for _ in range(512):
                    await a.send(1, "flood", np.zeros(1 << 17, dtype=np.uint64))
            with pytest.raises(NetworkError):  # the link was dropped: the session fails
                await a.recv(1, "x", timeout=10)

    run(main())


def test_invalid_use_is_refused(identities) -> None:
    async def main() -> None:
        async with endpoints(identities) as (eps, _):
            with pytest.raises(ValueError, match="appear once"):
                eps[0].session(SID, [eps[1].node_id, new_node_identity().node_id])
            c = eps[0].session(SID, _ids(eps))
            with pytest.raises(ValueError, match="already used"):
                eps[0].session(SID, _ids(eps))
            with pytest.raises(ValueError, match="invalid peer"):
                await c.send(0, "self", np.zeros(1))
            with pytest.raises(WireError, match="dtype"):
                await c.send(1, "obj", np.array([object()]))
            await c.close()
            with pytest.raises(NetworkError, match="closed"):
                await c.recv(1, "x")
            with pytest.raises(ValueError, match="already used"):
                eps[0].session(SID, _ids(eps))

    run(main())


def test_revalidate_drops_a_peer_that_lost_its_pin(identities) -> None:
    async def main() -> None:
        async with endpoints(identities) as (eps, trust):
            a, b = (e.session(SID, _ids(eps)) for e in eps)
            await a.send(1, "x", np.ones(1))
            await b.recv(0, "x", timeout=5)
            assert eps[0].revalidate() == []
            trust.unpin(eps[1].node_id)
            assert eps[0].revalidate() == [eps[1].node_id]
            with pytest.raises(PeerRefused, match="no longer pinned"):
                await a.recv(1, "y", timeout=5)

    run(main())



# --------------------------------------------------------------------------- two processes


@pytest.mark.integration
@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_a_peer_process_that_dies_or_freezes_fails_the_session(tmp_path, how) -> None:
    """Real TLS to a child process; SIGKILL fails the session at once, SIGSTOP times it out."""
    me = create_node_files(tmp_path / "me.keystore", "pw", scrypt_n=1024)
    peer = create_node_files(tmp_path / "peer.keystore", "pw", scrypt_n=1024)
    trust_path = tmp_path / "trust.json"
    FileTrustStore.write(trust_path, {me.node_id: (me.cert_hash, None),
                                      peer.node_id: (peer.cert_hash, None)})

    async def main() -> None:
        ep = await AsyncTlsEndpoint(me, FileTrustStore(trust_path),
                                    EndpointConfig(timeout=20)).start()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).with_name("aio_peer_node.py")),
            str(tmp_path / "peer.keystore"), str(trust_path), me.node_id,
            str(ep.address[1]), "3", stdout=asyncio.subprocess.PIPE)
        try:
            assert proc.stdout is not None
            line = (await proc.stdout.readline()).split()
            assert line and line[0] == b"PORT", line
            ep.set_address(peer.node_id, "127.0.0.1", int(line[1]))
            chan = ep.session(b"proc", [me.node_id, peer.node_id])
            for i in range(3):
                await chan.send(1, f"in{i}", np.full(4, i, dtype=np.int64))
                assert np.array_equal(await chan.recv(1, f"out{i}"), np.full(4, i + 1))
            if how == "killed":
                proc.kill()
                with pytest.raises(NetworkError) as info:
                    await chan.recv(1, "never", timeout=15)
                assert not isinstance(info.value, PeerTimeout)  # failed, not timed out
            else:
                os.kill(proc.pid, signal.SIGSTOP)
                with pytest.raises(PeerTimeout):
                    await chan.recv(1, "never", timeout=0.5)
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.kill()
            await proc.wait()
            await ep.close()

    run(main())
