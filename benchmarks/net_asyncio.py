"""Network layer, asyncio transport: throughput and round trip beside the threaded one and raw TCP.

Two OS processes (this one and a child it starts) exchange arrays, alternating in the same
run and on the same inputs, over:

* the native asyncio TLS endpoint (``metisnet.net.aio_tls``: asyncio streams over pinned
  TLS 1.3, every byte inside TLS, one event loop per process);
* the threaded TLS endpoint (``metisnet.net.endpoint``: blocking sockets driven by the
  waiting thread, payloads of 64 KiB or more in AES-256-GCM bulk records keyed inside TLS);
* for the round trip only, the threaded endpoint behind ``metisnet.net.aio.AsyncChannel``
  (each call in a worker thread): what event-loop code uses without the native transport;
* a plain TCP socket on loopback carrying the same sizes (the peer, "raw socket");
* ``..., bare asyncio ssl (floor)``: asyncio streams opened with ``ssl=`` (TLS 1.3, no
  pinning, no framing, ``readexactly``) in the same run: what asyncio and TLS alone cost
  here, so the gap between the asyncio rows and the floor is what metisnet adds.

Rows (``ratio`` oriented so that higher is better):

* ``throughput, asyncio`` / ``throughput, threaded``: one-way arrays of 64 MiB
  (``--quick``: 16 MiB), each acknowledged; bytes/s, ratio against the raw socket.
* ``round trip, asyncio`` / ``round trip, threaded`` / ``round trip, AsyncChannel over
  threaded``: a one-element uint64 array sent and echoed; seconds, ratio = raw / metisnet.
* ``throughput, asyncio vs threaded`` and ``round trip, asyncio vs threaded``: the same
  measurements with the threaded endpoint as the peer (ratio > 1: asyncio is faster).

Run: ``python benchmarks/net_asyncio.py [--quick] [--json FILE] [--reps N]``.
"""

from __future__ import annotations

import asyncio
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
from _netcommon import LEN, MIB, PASSWORD, bare_server_context, raw_recv, raw_send, tune
from _report import emit, parser, peak_rss_mib, row
from metisnet.net.aio import AsyncChannel
from metisnet.net.aio_tls import AsyncTlsEndpoint
from metisnet.net.endpoint import Endpoint, EndpointConfig
from metisnet.net.identity import create_node_files, load_node_identity
from metisnet.net.trust import FileTrustStore

SESSION = b"bench-net-aio"
CONFIG = EndpointConfig(timeout=120.0, send_timeout=120.0)










async def _bare_send(w: asyncio.StreamWriter, arr: np.ndarray) -> None:
    w.write(LEN.pack(arr.nbytes))
    w.write(memoryview(arr.reshape(-1).view(np.uint8)))
    await w.drain()


async def _bare_recv(r: asyncio.StreamReader) -> np.ndarray:
    (n,) = LEN.unpack(await r.readexactly(LEN.size))
    return np.frombuffer(await r.readexactly(n), dtype=np.uint8)




# --------------------------------------------------------------------------- child


async def child(argv: list[str]) -> None:
    keystore, trust_path, parent_id, aio_port, thr_port, reps, size, msgs, iters = argv
    ident = load_node_identity(keystore, PASSWORD)
    trust = FileTrustStore(trust_path)
    aep = await AsyncTlsEndpoint(ident, trust, CONFIG).start()
    aep.set_address(parent_id, "127.0.0.1", int(aio_port))  # type: ignore[arg-type]
    tep = Endpoint(ident, trust, CONFIG).start()
    tep.set_address(parent_id, "127.0.0.1", int(thr_port))  # type: ignore[arg-type]
    listener = socket.create_server(("127.0.0.1", 0))
    bare_conn: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()

    async def on_bare(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        bare_conn.set_result((r, w))

    bare_server = await asyncio.start_server(on_bare, "127.0.0.1", 0,
                                             ssl=bare_server_context(ident.tls))
    bare_port = bare_server.sockets[0].getsockname()[1]
    print(f"READY {aep.address[1]} {tep.address[1]} {listener.getsockname()[1]} {bare_port}",
          flush=True)
    raw, _ = listener.accept()
    tune(raw)
    br, bw = await bare_conn
    members = [parent_id, ident.node_id]
    achan = aep.session(SESSION, members)  # type: ignore[arg-type]
    tchan = tep.session(SESSION, members)  # type: ignore[arg-type]
    ack = np.zeros(1, dtype=np.uint64)
    rawbuf = np.empty(int(size), dtype=np.uint8)
    small = np.empty(1, dtype=np.uint64)
    for _ in range(int(reps)):
        for _ in range(int(msgs)):
            await achan.recv(0, "bulk")
            await achan.send(0, "ack", ack)
        for _ in range(int(msgs)):
            tchan.recv(0, "bulk")
            tchan.send(0, "ack", ack)
        for _ in range(int(msgs)):
            raw_recv(raw, rawbuf)
            raw_send(raw, ack)
        for _ in range(int(msgs)):
            await _bare_recv(br)
            await _bare_send(bw, ack)
        for _ in range(int(iters)):
            await achan.send(0, "pong", await achan.recv(0, "ping"))
        for tag in ("ping", "wping"):
            for _ in range(int(iters)):
                tchan.send(0, tag.replace("ping", "pong"), tchan.recv(0, tag))
        for _ in range(int(iters)):
            raw_send(raw, raw_recv(raw, small))
        for _ in range(int(iters)):
            await _bare_send(bw, await _bare_recv(br))
    await achan.close()
    bw.close()
    bare_server.close()
    tchan.close()
    raw.close()
    await aep.close()
    tep.close()


# --------------------------------------------------------------------------- parent


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    size = (16 if args.quick else 64) * MIB
    msgs = 2 if args.quick else 4
    iters = 300 if args.quick else 2000
    reps = max(3, args.reps)
    with tempfile.TemporaryDirectory(prefix="metis-bench-aio-") as tmp:
        a = create_node_files(Path(tmp) / "a.keystore", PASSWORD, scrypt_n=1024)
        b = create_node_files(Path(tmp) / "b.keystore", PASSWORD, scrypt_n=1024)
        trust_path = Path(tmp) / "trust.json"
        FileTrustStore.write(trust_path, {a.node_id: (a.cert_hash, None),
                                          b.node_id: (b.cert_hash, None)})
        rows = asyncio.run(_parent(a, b, trust_path, Path(tmp) / "b.keystore", size, msgs,
                                   iters, reps))
    emit(rows, args.json)


async def _parent(a: Any, b: Any, trust_path: Path, b_keystore: Path, size: int, msgs: int,
                  iters: int, reps: int) -> list[dict[str, Any]]:
    trust = FileTrustStore(trust_path)
    aep = await AsyncTlsEndpoint(a, trust, CONFIG).start()
    tep = Endpoint(a, trust, CONFIG).start()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(b_keystore), str(trust_path), a.node_id,
         str(aep.address[1]), str(tep.address[1]), str(reps), str(size), str(msgs),
         str(iters)],
        stdout=subprocess.PIPE, text=True)
    try:
        return await _measure(aep, tep, a.node_id, b.node_id, proc, size, msgs, iters, reps)
    finally:
        await aep.close()
        tep.close()
        proc.wait(timeout=60)


async def _measure(aep: AsyncTlsEndpoint, tep: Endpoint, me: Any, peer: Any,
                   proc: subprocess.Popen[str], size: int, msgs: int, iters: int,
                   reps: int) -> list[dict[str, Any]]:
    if proc.stdout is None:
        raise RuntimeError("child has no stdout")
    ready = proc.stdout.readline().split()
    if not ready or ready[0] != "READY":
        raise RuntimeError(f"child failed to start: {ready}")
    aep.set_address(peer, "127.0.0.1", int(ready[1]))
    tep.set_address(peer, "127.0.0.1", int(ready[2]))
    raw = socket.create_connection(("127.0.0.1", int(ready[3])))
    tune(raw)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE  # a floor measurement only: no authentication
    br, bw_ = await asyncio.open_connection("127.0.0.1", int(ready[4]), ssl=client)
    achan = aep.session(SESSION, [me, peer])
    tchan = tep.session(SESSION, [me, peer])
    wchan = AsyncChannel(tchan)
    data = np.frombuffer(os.urandom(size), dtype=np.uint64).copy()
    small = np.ones(1, dtype=np.uint64)
    ackbuf = np.empty(1, dtype=np.uint64)
    bw: dict[str, list[float]] = {"aio": [], "thr": [], "raw": [], "bare": []}
    rtt: dict[str, list[float]] = {"aio": [], "thr": [], "wrap": [], "raw": [], "bare": []}
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(msgs):
            await achan.send(1, "bulk", data)
            await achan.recv(1, "ack")
        bw["aio"].append(size * msgs / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(msgs):
            tchan.send(1, "bulk", data)
            tchan.recv(1, "ack")
        bw["thr"].append(size * msgs / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(msgs):
            raw_send(raw, data)
            raw_recv(raw, ackbuf)
        bw["raw"].append(size * msgs / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(msgs):
            await _bare_send(bw_, data)
            await _bare_recv(br)
        bw["bare"].append(size * msgs / (time.perf_counter() - t0))
        samples = []
        for _ in range(iters):
            t0 = time.perf_counter()
            await achan.send(1, "ping", small)
            await achan.recv(1, "pong")
            samples.append(time.perf_counter() - t0)
        rtt["aio"].append(statistics.median(samples))
        samples = []
        for _ in range(iters):
            t0 = time.perf_counter()
            tchan.send(1, "ping", small)
            tchan.recv(1, "pong")
            samples.append(time.perf_counter() - t0)
        rtt["thr"].append(statistics.median(samples))
        samples = []
        for _ in range(iters):
            t0 = time.perf_counter()
            await wchan.send(1, "wping", small)
            await wchan.recv(1, "wpong")
            samples.append(time.perf_counter() - t0)
        rtt["wrap"].append(statistics.median(samples))
        samples = []
        for _ in range(iters):
            t0 = time.perf_counter()
            raw_send(raw, small)
            raw_recv(raw, ackbuf)
            samples.append(time.perf_counter() - t0)
        rtt["raw"].append(statistics.median(samples))
        samples = []
        for _ in range(iters):
            t0 = time.perf_counter()
            await _bare_send(bw_, small)
            await _bare_recv(br)
            samples.append(time.perf_counter() - t0)
        rtt["bare"].append(statistics.median(samples))
    await achan.close()
    bw_.close()
    tchan.close()
    raw.close()
    await asyncio.to_thread(proc.wait, 60)
    rss = peak_rss_mib()
    fsize = float(size)
    per = f"{msgs} one-way arrays per repetition, each acknowledged; 2 processes, loopback"
    ping = f"median of {iters} ping-pongs of one uint64 per repetition; 2 processes"
    aio_note = "asyncio streams, pinned TLS 1.3, every byte inside TLS"
    thr_note = "threaded endpoint, payloads >= 64 KiB in AES-256-GCM bulk records"
    return [
        row("throughput, asyncio", size, "bytes/s", bw["aio"], peer="raw socket",
            peer_values=bw["raw"], bytes_per_party=fsize, peak_rss=rss,
            note=f"{per}; {aio_note}"),
        row("throughput, threaded", size, "bytes/s", bw["thr"], peer="raw socket",
            peer_values=bw["raw"], bytes_per_party=fsize, peak_rss=rss,
            note=f"{per}; {thr_note}"),
        row("throughput, asyncio vs threaded", size, "bytes/s", bw["aio"],
            peer="metisnet threaded Endpoint", peer_values=bw["thr"],
            bytes_per_party=fsize, peak_rss=rss, note=f"same run; {per}"),
        row("round trip, asyncio", 8, "s", rtt["aio"], peer="raw socket",
            peer_values=rtt["raw"], bytes_per_party=8.0, rounds=1, peak_rss=rss,
            note=f"{ping}; {aio_note}"),
        row("round trip, threaded", 8, "s", rtt["thr"], peer="raw socket",
            peer_values=rtt["raw"], bytes_per_party=8.0, rounds=1, peak_rss=rss,
            note=f"{ping}; threaded endpoint, blocking calls"),
        row("round trip, AsyncChannel over threaded", 8, "s", rtt["wrap"],
            peer="raw socket", peer_values=rtt["raw"], bytes_per_party=8.0, rounds=1,
            peak_rss=rss, note=f"{ping}; net.aio.AsyncChannel: each call in a worker thread"),
        row("round trip, asyncio vs threaded", 8, "s", rtt["aio"],
            peer="metisnet threaded Endpoint", peer_values=rtt["thr"], bytes_per_party=8.0,
            rounds=1, peak_rss=rss, note=f"same run; {ping}"),
        row("throughput, bare asyncio ssl (floor)", size, "bytes/s", bw["bare"],
            peer="raw socket", peer_values=bw["raw"], bytes_per_party=fsize, peak_rss=rss,
            note=f"not metisnet: asyncio streams with ssl=, readexactly, no pinning, no "
                 f"framing; what asyncio + TLS alone cost here; {per}"),
        row("round trip, bare asyncio ssl (floor)", 8, "s", rtt["bare"], peer="raw socket",
            peer_values=rtt["raw"], bytes_per_party=8.0, rounds=1, peak_rss=rss,
            note=f"not metisnet: asyncio streams with ssl=, no pinning, no framing; {ping}"),
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        asyncio.run(child(sys.argv[2:]))
    else:
        main()
