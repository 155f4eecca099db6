"""Network layer: TLS channel throughput and round-trip latency beside a raw loopback socket.

Two OS processes (this one and a child it starts) exchange arrays over metisnet's pinned
TLS 1.3 channel and, alternating in the same run, over a plain TCP socket on loopback
carrying the same bytes (the peer, "raw socket"). On the metisnet channel, frames with a
payload of 64 KiB or more carry it in the bulk record layer (AES-256-GCM, keys agreed
inside the pinned TLS 1.3 session, see ``metisnet.net.bulk``); headers and small frames
go through TLS. The raw peer receives into one reused buffer; metisnet hands out a new
array per message (from its receive-buffer pool when the previous one was dropped).
Rows:

* ``throughput``: one-way arrays of 64 MiB (``--quick``: 16 MiB), each acknowledged by the
  receiver; bytes/s, ratio = tls / raw (target: at least 0.5).
* ``round trip``: a one-element uint64 array sent and echoed back; seconds per round trip,
  ratio = raw / tls (target: at least 1/3).
* ``..., bare ssl (floor)``: the same two measurements over Python's plain ``ssl.SSLSocket``
  (TLS 1.3, no pinning, no framing) in the same run: what TLS alone costs on this machine,
  so the gap between metisnet and the floor is what the network layer itself adds.

Run: ``python benchmarks/net.py [--quick] [--json FILE] [--reps N]``.
"""

from __future__ import annotations

import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import emit, parser, peak_rss_mib, row
from metisnet.net.endpoint import Endpoint, EndpointConfig
from metisnet.net.identity import create_node_files, load_node_identity
from metisnet.net.trust import FileTrustStore

MIB = 1 << 20
PASSWORD = "bench-only-password"  # noqa: S105 - throwaway keys in a temporary directory
SESSION = b"bench-net"
_LEN = struct.Struct(">Q")


def _recv_exact_into(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        k = sock.recv_into(view[got:])
        if k == 0:
            raise ConnectionError("raw peer closed")
        got += k


def _raw_send(sock: socket.socket, arr: np.ndarray) -> None:
    sock.sendall(_LEN.pack(arr.nbytes))
    sock.sendall(memoryview(arr.reshape(-1).view(np.uint8)))


def _raw_recv(sock: socket.socket, buf: np.ndarray | None = None) -> np.ndarray:
    head = bytearray(_LEN.size)
    _recv_exact_into(sock, memoryview(head))
    (n,) = _LEN.unpack(head)
    out = buf if buf is not None and buf.nbytes == n else np.empty(n, dtype=np.uint8)
    _recv_exact_into(sock, memoryview(out.reshape(-1).view(np.uint8)))
    return out


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        sock.setsockopt(socket.SOL_SOCKET, opt, 4 * MIB)


# --------------------------------------------------------------------------- child


def child(argv: list[str]) -> None:
    keystore, trust_path, parent_id, parent_port, reps, size, msgs, iters = argv
    ident = load_node_identity(keystore, PASSWORD)
    trust = FileTrustStore(trust_path)
    ep = Endpoint(ident, trust, EndpointConfig(timeout=120.0)).start()
    ep.set_address(parent_id, "127.0.0.1", int(parent_port))  # type: ignore[arg-type]
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"READY {ep.address[1]} {listener.getsockname()[1]}", flush=True)
    raw, _ = listener.accept()
    _tune(raw)
    bare_sock, _ = listener.accept()
    _tune(bare_sock)
    bare = _bare_server_context(ident.tls).wrap_socket(bare_sock, server_side=True)
    chan = ep.session(SESSION, [parent_id, ident.node_id])  # type: ignore[list-item]
    ack = np.zeros(1, dtype=np.uint64)
    rawbuf = np.empty(int(size), dtype=np.uint8)
    for _ in range(int(reps)):
        for _ in range(int(msgs)):
            chan.recv(0, "bulk")
            chan.send(0, "ack", ack)
        for sock in (raw, bare):
            for _ in range(int(msgs)):
                _raw_recv(sock, rawbuf)
                _raw_send(sock, ack)
        for _ in range(int(iters)):
            chan.send(0, "pong", chan.recv(0, "ping"))
        small = np.empty(1, dtype=np.uint64)
        for sock in (raw, bare):
            for _ in range(int(iters)):
                _raw_send(sock, _raw_recv(sock, small))
    chan.close()
    raw.close()
    bare.close()
    ep.close()


def _bare_server_context(tls: Any) -> ssl.SSLContext:
    """A plain TLS 1.3 server context from the node's certificate (no pinning, no framing)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "c.pem").write_bytes(tls.cert_pem())
        (Path(tmp) / "k.pem").write_bytes(tls.key_pem(PASSWORD.encode()))
        ctx.load_cert_chain(Path(tmp) / "c.pem", Path(tmp) / "k.pem", password=PASSWORD)
    return ctx


# --------------------------------------------------------------------------- parent


def main() -> None:
    p = parser(__doc__ or "")
    args = p.parse_args()
    size = (16 if args.quick else 64) * MIB
    msgs = 2 if args.quick else 4
    iters = 300 if args.quick else 2000
    reps = max(3, args.reps)
    with tempfile.TemporaryDirectory(prefix="metis-bench-net-") as tmp:
        a = create_node_files(Path(tmp) / "a.keystore", PASSWORD, scrypt_n=1024)
        b = create_node_files(Path(tmp) / "b.keystore", PASSWORD, scrypt_n=1024)
        trust_path = Path(tmp) / "trust.json"
        FileTrustStore.write(trust_path, {a.node_id: (a.cert_hash, None),
                                          b.node_id: (b.cert_hash, None)})
        trust = FileTrustStore(trust_path)
        ep = Endpoint(a, trust, EndpointConfig(timeout=120.0)).start()
        env = dict(os.environ)
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(Path(tmp) / "b.keystore"),
             str(trust_path), a.node_id, str(ep.address[1]), str(reps), str(size), str(msgs),
             str(iters)],
            stdout=subprocess.PIPE, text=True, env=env)
        try:
            rows = _measure(ep, a.node_id, b.node_id, proc, size, msgs, iters, reps)
        finally:
            ep.close()
            proc.wait(timeout=60)
    emit(rows, args.json)


def _measure(ep: Endpoint, me: Any, peer: Any, proc: subprocess.Popen[str], size: int,
             msgs: int, iters: int, reps: int) -> list[dict[str, Any]]:
    if proc.stdout is None:
        raise RuntimeError("child has no stdout")
    ready = proc.stdout.readline().split()
    if not ready or ready[0] != "READY":
        raise RuntimeError(f"child failed to start: {ready}")
    tls_port, raw_port = int(ready[1]), int(ready[2])
    ep.set_address(peer, "127.0.0.1", tls_port)
    raw = socket.create_connection(("127.0.0.1", raw_port))
    _tune(raw)
    bare_sock = socket.create_connection(("127.0.0.1", raw_port))
    _tune(bare_sock)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE  # a floor measurement only: no authentication
    bare = client.wrap_socket(bare_sock)
    chan = ep.session(SESSION, [me, peer])
    data = np.frombuffer(os.urandom(size), dtype=np.uint64).copy()
    small = np.ones(1, dtype=np.uint64)
    ackbuf = np.empty(1, dtype=np.uint64)
    tls_bw: list[float] = []
    raw_bw: list[float] = []
    tls_rtt: list[float] = []
    raw_rtt: list[float] = []
    bare_bw: list[float] = []
    bare_rtt: list[float] = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(msgs):
            chan.send(1, "bulk", data)
            chan.recv(1, "ack")
        tls_bw.append(size * msgs / (time.perf_counter() - t0))
        for sock, out in ((raw, raw_bw), (bare, bare_bw)):
            t0 = time.perf_counter()
            for _ in range(msgs):
                _raw_send(sock, data)
                _raw_recv(sock, ackbuf)
            out.append(size * msgs / (time.perf_counter() - t0))
        samples = []
        for _ in range(iters):
            t0 = time.perf_counter()
            chan.send(1, "ping", small)
            chan.recv(1, "pong")
            samples.append(time.perf_counter() - t0)
        tls_rtt.append(statistics.median(samples))
        for sock, out in ((raw, raw_rtt), (bare, bare_rtt)):
            samples = []
            for _ in range(iters):
                t0 = time.perf_counter()
                _raw_send(sock, small)
                _raw_recv(sock, ackbuf)
                samples.append(time.perf_counter() - t0)
            out.append(statistics.median(samples))
    chan.close()
    raw.close()
    bare.close()
    proc.wait(timeout=60)
    rss = peak_rss_mib()
    note = ("2 processes, loopback, TLS 1.3 (pinned, mutual; payloads >= 64 KiB in "
            "AES-256-GCM bulk records keyed inside TLS) vs plain TCP, same framing sizes")
    return [
        row("throughput", size, "bytes/s", tls_bw, peer="raw socket", peer_values=raw_bw,
            bytes_per_party=float(size), peak_rss=rss,
            note=f"{msgs} one-way arrays per repetition, each acknowledged; {note}"),
        row("round trip", 8, "s", tls_rtt, peer="raw socket", peer_values=raw_rtt,
            bytes_per_party=8.0, rounds=1, peak_rss=rss,
            note=f"median of {iters} ping-pongs of one uint64 per repetition; {note}"),
        row("throughput, bare ssl (floor)", size, "bytes/s", bare_bw, peer="raw socket",
            peer_values=raw_bw, bytes_per_party=float(size), peak_rss=rss,
            note="not metisnet: Python's ssl.SSLSocket with no pinning and no framing, "
                 "same run; what TLS alone costs here"),
        row("round trip, bare ssl (floor)", 8, "s", bare_rtt, peer="raw socket",
            peer_values=raw_rtt, bytes_per_party=8.0, rounds=1, peak_rss=rss,
            note="not metisnet: Python's ssl.SSLSocket with no pinning and no framing"),
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
