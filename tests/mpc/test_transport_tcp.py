"""The plain framed TCP channel and the local process cluster the MPC suite runs on."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

import numpy as np
import pytest

from metisnet.errors import NetworkError, PeerTimeout, ValidationError
from metisnet.net.channel import Channel
from metisnet.net.local_cluster import LocalCluster, free_ports
from metisnet.net.plain_tcp import PlainTcpChannel, connect_mesh


def _mesh(n: int = 3, timeout: float = 10.0) -> list[PlainTcpChannel]:
    addrs = free_ports(n)
    out: list[Any] = [None] * n

    def make(i: int) -> None:
        out[i] = connect_mesh(i, addrs, timeout=timeout)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.fixture()
def mesh() -> Any:
    chans = _mesh()
    yield chans
    for c in chans:
        c.close()


def test_delivery_by_tag_dtypes_and_counters(mesh: list[PlainTcpChannel]) -> None:
    a, b, _ = mesh
    assert isinstance(a, Channel)
    x = np.arange(10, dtype=np.uint64)
    a.send(1, "second", x * 2)
    a.send(1, "first", x.reshape(2, 5))
    a.send(1, "bytes", np.frombuffer(b"key", dtype=np.uint8))
    a.send(1, "empty", np.zeros(0, dtype=np.float64))
    x[:] = 0  # send returns after the bytes left: later writes never reach the peer
    np.testing.assert_array_equal(b.recv(0, "first"), np.arange(10).reshape(2, 5))
    np.testing.assert_array_equal(b.recv(0, "second"), np.arange(10) * 2)
    assert b.recv(0, "bytes").tobytes() == b"key"
    assert b.recv(0, "empty").shape == (0,)
    assert a.stats.bytes_sent == b.stats.bytes_received == 80 + 80 + 3
    assert a.stats.rounds == 1 and a.stats.messages_sent == 4


def test_large_messages_in_a_cycle_do_not_deadlock(mesh: list[PlainTcpChannel]) -> None:
    big = [np.full(3_000_000, i, dtype=np.uint64) for i in range(3)]  # 24 MB each
    got: list[Any] = [None] * 3

    def party(i: int) -> None:
        mesh[i].send((i - 1) % 3, "cycle", big[i])
        got[i] = mesh[i].recv((i + 1) % 3, "cycle")

    threads = [threading.Thread(target=party, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for i in range(3):
        assert got[i] is not None and got[i][0] == (i + 1) % 3 and got[i].size == 3_000_000


def test_timeout_bad_peer_bad_dtype_and_close(mesh: list[PlainTcpChannel]) -> None:
    a = mesh[0]
    with pytest.raises(PeerTimeout, match="no message 'x' from party 1"):
        a.recv(1, "x", timeout=0.05)
    with pytest.raises(ValidationError):
        a.send(0, "t", np.zeros(1))
    with pytest.raises(ValidationError):
        a.send(3, "t", np.zeros(1))
    with pytest.raises(ValidationError, match="dtype"):
        a.send(1, "t", np.zeros(1, dtype=np.complex128))
    mesh[1].close()
    with pytest.raises(NetworkError):
        a.recv(1, "never", timeout=5.0)
    a.close()
    with pytest.raises(NetworkError):
        a.send(2, "t", np.zeros(1))


def test_malformed_frame_closes_the_link() -> None:
    addrs = free_ports(2)
    result: dict[str, Any] = {}

    def server() -> None:
        result["chan"] = connect_mesh(0, addrs, timeout=5.0)

    t = threading.Thread(target=server)
    t.start()
    deadline = time.monotonic() + 10
    while True:  # the server thread may not be listening yet
        try:
            raw = socket.create_connection(addrs[0])
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    raw.sendall(b"MN" + bytes([1, 1]))  # hello from party 1
    t.join()
    chan: PlainTcpChannel = result["chan"]
    # a frame claiming 16 payload bytes for a (3,) uint64 array: refused, link closed
    raw.sendall(struct.pack("<2sBBBBHQ", b"MN", 1, 2, 1, 0, 1, 16) + struct.pack("<Q", 3)
                + b"t" + bytes(16))
    with pytest.raises(NetworkError, match="link to party 1 failed"):
        chan.recv(1, "t", timeout=5.0)
    raw.close()
    chan.close()


def job_echo(channel: Channel, value: int) -> tuple[int, int]:
    me = channel.party
    channel.send((me + 1) % 3, "ring", np.array([value + me], dtype=np.int64))
    got = channel.recv((me - 1) % 3, "ring")
    return me, int(got[0])


def job_fail(channel: Channel) -> None:
    if channel.party == 1:
        raise ValueError("party 1 refuses")


def test_local_cluster_runs_jobs_and_reports_failures() -> None:
    with LocalCluster(3, timeout=60.0) as cluster:
        assert cluster.run(job_echo, 10) == [(0, 12), (1, 10), (2, 11)]
        with pytest.raises(NetworkError, match="party 1 refuses"):
            cluster.run(job_fail)
        assert cluster.run(job_echo, 0) == [(0, 2), (1, 0), (2, 1)]  # still usable
