"""Real TLS between two OS processes: exchange, a killed peer, a frozen peer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from metisnet.errors import NetworkError, PeerTimeout
from metisnet.net.endpoint import Endpoint, EndpointConfig
from metisnet.net.identity import create_node_files
from metisnet.net.trust import FileTrustStore

pytestmark = pytest.mark.integration
PEER = Path(__file__).with_name("peer_node.py")


@pytest.fixture
def two_processes(tmp_path) -> Iterator:
    """This process's endpoint and a child process running ``peer_node.py``."""
    procs: list[subprocess.Popen[str]] = []
    eps: list[Endpoint] = []

    def start(rounds: int):
        me = create_node_files(tmp_path / "me.keystore", "pw", scrypt_n=1024)
        peer = create_node_files(tmp_path / "peer.keystore", "pw", scrypt_n=1024)
        trust = tmp_path / "trust.json"
        FileTrustStore.write(trust, {me.node_id: (me.cert_hash, None),
                                     peer.node_id: (peer.cert_hash, None)})
        ep = Endpoint(me, FileTrustStore(trust), EndpointConfig(timeout=30)).start()
        eps.append(ep)
        proc = subprocess.Popen(
            [sys.executable, str(PEER), str(tmp_path / "peer.keystore"), str(trust),
             me.node_id, str(ep.address[1]), str(rounds)],
            stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line and line[0] == "PORT", line
        ep.set_address(peer.node_id, "127.0.0.1", int(line[1]))
        return ep.session(b"proc", [me.node_id, peer.node_id]), proc

    yield start
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
        p.wait(timeout=10)
    for ep in eps:
        ep.close()


def test_arrays_cross_a_real_tls_connection_between_processes(two_processes) -> None:
    chan, proc = two_processes(3)
    arrays = [np.arange(10, dtype=np.uint64), np.linspace(0, 1, 7).reshape(7, 1),
              np.full(1 << 20, 41, dtype=np.int64)]  # 8 MiB
    for i, x in enumerate(arrays):
        chan.send(1, f"in{i}", x)
        y = chan.recv(1, f"out{i}", timeout=20)
        assert y.dtype == x.dtype and np.array_equal(y, x + 1)
    chan.send(1, "bye", np.zeros(1))
    assert proc.wait(timeout=20) == 0
    assert chan.stats.messages_sent == 4 and chan.stats.rounds == 4


def test_a_killed_peer_fails_the_session_well_within_its_timeout(two_processes) -> None:
    chan, proc = two_processes(5)
    chan.send(1, "in0", np.zeros(3))
    chan.recv(1, "out0", timeout=20)
    proc.kill()
    proc.wait(timeout=10)
    t0 = time.monotonic()
    with pytest.raises(NetworkError) as info:
        # the send may still succeed (the kernel takes it) or fail at once if the session
        # already saw the connection close; either way the receive cannot wait it out
        chan.send(1, "in1", np.zeros(3))
        chan.recv(1, "out1", timeout=20)
    assert not isinstance(info.value, PeerTimeout)
    assert time.monotonic() - t0 < 15  # well within the 20 s timeout, even on a busy machine


def test_a_frozen_peer_times_out_within_the_timeout(two_processes) -> None:
    chan, proc = two_processes(5)
    chan.send(1, "in0", np.zeros(3))
    chan.recv(1, "out0", timeout=20)
    os.kill(proc.pid, signal.SIGSTOP)
    chan.send(1, "in1", np.zeros(3))
    t0 = time.monotonic()
    with pytest.raises(PeerTimeout):
        chan.recv(1, "out1", timeout=1.0)
    assert 0.95 <= time.monotonic() - t0 < 4
