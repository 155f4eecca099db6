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
  receiver; bytes/s, ratio = tls / raw (target: at least 0.5). The kinds take turns array
  by array (order rotating); the ratio is the median over repetitions of the median over
  adjacent (metisnet, raw) arrays.
* ``round trip``: a one-element uint64 array sent and echoed back; seconds per round trip,
  ratio = raw / tls (target: at least 1/3). The three round-trip kinds (metisnet, raw, bare
  ssl) run in short alternating blocks (``--block`` ping-pongs each, the order rotating
  from block to block), so a load spike hits all of them alike: each block's value is the
  median of its ping-pongs, each adjacent (metisnet, raw) block pair gives one ratio, a
  repetition's ratio is the median of its pairs, and the row's ``ratio`` is the median of
  the repetitions' ratios (their min and max are in the note).
* ``..., bare ssl (floor)``: the same two measurements over Python's plain ``ssl.SSLSocket``
  (TLS 1.3, no pinning, no framing) in the same run: what TLS alone costs on this machine,
  so the gap between metisnet and the floor is what the network layer itself adds.

``--load K`` runs K CPU-burning child processes (busy loops, killed at the end) during the
measurement, so that contention for the cores is reproducible; the notes give K and the
load average (``os.getloadavg``) at the start and end of the measurement.

Run: ``python benchmarks/net.py [--quick] [--json FILE] [--reps N] [--load K] [--block N]``.
"""

from __future__ import annotations

import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _netcommon import MIB, PASSWORD, bare_server_context, raw_recv, raw_send, tune
from _report import emit, parser, peak_rss_mib, row
from metisnet.net.endpoint import Endpoint, EndpointConfig
from metisnet.net.identity import create_node_files, load_node_identity
from metisnet.net.trust import FileTrustStore

SESSION = b"bench-net"
_KINDS = ("tls", "raw", "bare")  # the round-trip kinds, run in alternating blocks


def _order(block: int) -> tuple[str, ...]:
    """The order of the round-trip kinds in block ``block`` (rotates, so none is always first)."""
    k = block % len(_KINDS)
    return _KINDS[k:] + _KINDS[:k]










# --------------------------------------------------------------------------- child


def child(argv: list[str]) -> None:
    keystore, trust_path, parent_id, parent_port, reps, size, msgs, blocks, block = argv
    ident = load_node_identity(keystore, PASSWORD)
    trust = FileTrustStore(trust_path)
    ep = Endpoint(ident, trust, EndpointConfig(timeout=120.0)).start()
    ep.set_address(parent_id, "127.0.0.1", int(parent_port))  # type: ignore[arg-type]
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"READY {ep.address[1]} {listener.getsockname()[1]}", flush=True)
    raw, _ = listener.accept()
    tune(raw)
    bare_sock, _ = listener.accept()
    tune(bare_sock)
    bare = bare_server_context(ident.tls).wrap_socket(bare_sock, server_side=True)
    chan = ep.session(SESSION, [parent_id, ident.node_id])  # type: ignore[list-item]
    ack = np.zeros(1, dtype=np.uint64)
    rawbuf = np.empty(int(size), dtype=np.uint8)
    for _ in range(int(reps)):
        for m in range(int(msgs)):
            for kind in _order(m):
                if kind == "tls":
                    chan.recv(0, "bulk")
                    chan.send(0, "ack", ack)
                else:
                    sock = raw if kind == "raw" else bare
                    raw_recv(sock, rawbuf)
                    raw_send(sock, ack)
        small = np.empty(1, dtype=np.uint64)
        for b in range(int(blocks)):
            for kind in _order(b):
                if kind == "tls":
                    for _ in range(int(block)):
                        chan.send(0, "pong", chan.recv(0, "ping"))
                else:
                    sock = raw if kind == "raw" else bare
                    for _ in range(int(block)):
                        raw_send(sock, raw_recv(sock, small))
    chan.close()
    raw.close()
    bare.close()
    ep.close()




# --------------------------------------------------------------------------- parent


def _start_load(k: int) -> list[subprocess.Popen[bytes]]:
    """``k`` child processes that each keep one core busy (plain Python busy loops)."""
    code = "while True:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(k)]


def _stop_load(procs: list[subprocess.Popen[bytes]]) -> None:
    for q in procs:
        q.kill()
    for q in procs:
        q.wait(timeout=10)


def _loadavg() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--load", type=int, default=0, metavar="K",
                   help="run K CPU-burning processes during the measurement")
    p.add_argument("--block", type=int, default=50, metavar="N",
                   help="ping-pongs per block of one round-trip kind")
    args = p.parse_args()
    if args.load < 0 or args.block < 1:
        p.error("--load must be >= 0 and --block >= 1")
    size = (16 if args.quick else 64) * MIB
    msgs = 2 if args.quick else 4
    iters = 1000 if args.quick else 4000  # ping-pongs per kind and repetition
    blocks = max(1, iters // args.block)
    reps = max(3, args.reps)
    burners = _start_load(args.load)
    try:
        rows = _run(size, msgs, blocks, args.block, reps, args.load)
    finally:
        _stop_load(burners)
    emit(rows, args.json)


def _run(size: int, msgs: int, blocks: int, block: int, reps: int,
         load: int) -> list[dict[str, Any]]:
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
             str(blocks), str(block)],
            stdout=subprocess.PIPE, text=True, env=env)
        try:
            load_before = _loadavg()
            rows = _measure(ep, a.node_id, b.node_id, proc, size, msgs, blocks, block, reps)
            load_note = (f"; load: {load} busy-loop processes, load average (1/5 min) "
                         f"{load_before} before, {_loadavg()} after, {os.cpu_count()} cores")
            for r in rows:
                r["note"] += load_note
        finally:
            ep.close()
            proc.wait(timeout=60)
    return rows


def _measure(ep: Endpoint, me: Any, peer: Any, proc: subprocess.Popen[str], size: int,
             msgs: int, blocks: int, block: int, reps: int) -> list[dict[str, Any]]:
    if proc.stdout is None:
        raise RuntimeError("child has no stdout")
    ready = proc.stdout.readline().split()
    if not ready or ready[0] != "READY":
        raise RuntimeError(f"child failed to start: {ready}")
    tls_port, raw_port = int(ready[1]), int(ready[2])
    ep.set_address(peer, "127.0.0.1", tls_port)
    raw = socket.create_connection(("127.0.0.1", raw_port))
    tune(raw)
    bare_sock = socket.create_connection(("127.0.0.1", raw_port))
    tune(bare_sock)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE  # a floor measurement only: no authentication
    bare = client.wrap_socket(bare_sock)
    chan = ep.session(SESSION, [me, peer])
    data = np.frombuffer(os.urandom(size), dtype=np.uint64).copy()
    small = np.ones(1, dtype=np.uint64)
    ackbuf = np.empty(1, dtype=np.uint64)
    bw: dict[str, list[float]] = {k: [] for k in _KINDS}  # per repetition
    tls_bw_ratio: list[float] = []  # per repetition: median over messages of tls / raw
    bare_bw_ratio: list[float] = []  # ... of bare / raw
    rtt: dict[str, list[float]] = {k: [] for k in _KINDS}  # per repetition
    tls_ratio: list[float] = []  # per repetition: median over blocks of raw / tls
    bare_ratio: list[float] = []  # ... of raw / bare
    for _ in range(reps):
        secs: dict[str, list[float]] = {k: [] for k in _KINDS}
        for m in range(msgs):  # one array of each kind in turn, the order rotating
            for kind in _order(m):
                t0 = time.perf_counter()
                if kind == "tls":
                    chan.send(1, "bulk", data)
                    chan.recv(1, "ack")
                else:
                    sock = raw if kind == "raw" else bare
                    raw_send(sock, data)
                    raw_recv(sock, ackbuf)
                secs[kind].append(time.perf_counter() - t0)
        for kind in _KINDS:
            bw[kind].append(size * msgs / sum(secs[kind]))
        tls_bw_ratio.append(statistics.median(
            r / t for r, t in zip(secs["raw"], secs["tls"], strict=True)))
        bare_bw_ratio.append(statistics.median(
            r / t for r, t in zip(secs["raw"], secs["bare"], strict=True)))
        per_block: dict[str, list[float]] = {k: [] for k in _KINDS}
        for b in range(blocks):
            for kind in _order(b):
                per_block[kind].append(
                    _tls_block(chan, small, block) if kind == "tls" else
                    _raw_block(raw if kind == "raw" else bare, small, ackbuf, block))
        for kind in _KINDS:
            rtt[kind].append(statistics.median(per_block[kind]))
        tls_ratio.append(statistics.median(
            r / t for r, t in zip(per_block["raw"], per_block["tls"], strict=True)))
        bare_ratio.append(statistics.median(
            r / t for r, t in zip(per_block["raw"], per_block["bare"], strict=True)))
    chan.close()
    raw.close()
    bare.close()
    proc.wait(timeout=60)
    rss = peak_rss_mib()
    note = ("2 processes, loopback, TLS 1.3 (pinned, mutual; payloads >= 64 KiB in "
            "AES-256-GCM bulk records keyed inside TLS) vs plain TCP, same framing sizes")
    method = (f"{blocks} blocks of {block} ping-pongs of one uint64 per kind and repetition, "
              "metisnet / raw / bare ssl blocks alternating (order rotating); value: median "
              "over blocks of the block medians; ratio: median over repetitions of the "
              "median over adjacent block pairs of raw / this")
    rtt_row = row("round trip", 8, "s", rtt["tls"], peer="raw socket", peer_values=rtt["raw"],
                  bytes_per_party=8.0, rounds=1, peak_rss=rss,
                  note=f"{method} (per repetition {_spread(tls_ratio)}); {note}")
    rtt_row["ratio"] = statistics.median(tls_ratio)
    bare_row = row("round trip, bare ssl (floor)", 8, "s", rtt["bare"], peer="raw socket",
                   peer_values=rtt["raw"], bytes_per_party=8.0, rounds=1, peak_rss=rss,
                   note="not metisnet: Python's ssl.SSLSocket with no pinning and no "
                        f"framing; same blocks (per repetition {_spread(bare_ratio)})")
    bare_row["ratio"] = statistics.median(bare_ratio)
    bw_method = (f"{msgs} one-way arrays per kind and repetition, each acknowledged, one "
                 "of each kind in turn (order rotating); value: bytes over the summed "
                 "seconds; ratio: median over repetitions of the median over adjacent "
                 "(metisnet, raw) arrays of this / raw")
    bw_row = row("throughput", size, "bytes/s", bw["tls"], peer="raw socket",
                 peer_values=bw["raw"], bytes_per_party=float(size), peak_rss=rss,
                 note=f"{bw_method} (per repetition {_spread(tls_bw_ratio)}); {note}")
    bw_row["ratio"] = statistics.median(tls_bw_ratio)
    bare_bw_row = row("throughput, bare ssl (floor)", size, "bytes/s", bw["bare"],
                      peer="raw socket", peer_values=bw["raw"], bytes_per_party=float(size),
                      peak_rss=rss,
                      note="not metisnet: Python's ssl.SSLSocket with no pinning and no "
                           "framing, same run and turns; what TLS alone costs here (per "
                           f"repetition {_spread(bare_bw_ratio)})")
    bare_bw_row["ratio"] = statistics.median(bare_bw_ratio)
    return [bw_row, rtt_row, bare_bw_row, bare_row]


def _spread(ratios: list[float]) -> str:
    return "ratio min " + f"{min(ratios):.3f} max {max(ratios):.3f} over {len(ratios)}"


def _tls_block(chan: Any, small: np.ndarray, n: int) -> float:
    """Median seconds of ``n`` metisnet ping-pongs."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        chan.send(1, "ping", small)
        chan.recv(1, "pong")
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _raw_block(sock: socket.socket, small: np.ndarray, buf: np.ndarray, n: int) -> float:
    """Median seconds of ``n`` ping-pongs over a plain or bare-ssl socket."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        raw_send(sock, small)
        raw_recv(sock, buf)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
