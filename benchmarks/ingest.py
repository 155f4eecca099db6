"""Data node ingest: a generated 10-column CSV added to a running node, end to end.

Rows (see ../../shared/BENCHMARKS.md):

* ``ingest csv``: ``metis node start`` runs as its own process; the operator's SDK client
  hashes the file, streams it over loopback HTTP, and the node parses it (pyarrow CSV),
  writes Parquet, encrypts it with AES-256-GCM in chunks, builds the Merkle commitment,
  fsyncs, commits to SQLite and registers it. Timed from the call to the 201 answer.
* ``host csv``: the same file encrypted by the owner to the node's key (ECIES secp256k1 +
  AES-256-GCM envelope) and hosted, so the node also decrypts it.

Peer, in the same run, alternating: DuckDB (``COPY (SELECT * FROM read_csv(...)) TO ...
(FORMAT parquet)``) in its own process: CSV to Parquet, unencrypted, no network, no
commitment: the plain cost of the conversion the node does.

``peak_rss_mib`` is the node process's peak resident memory (``VmHWM``) over all its
repetitions; the note gives the peer's. Usage::

    .venv/bin/python benchmarks/ingest.py [--quick] [--json FILE] [--rows N]
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import emit, parser, row

METIS = str(Path(sys.executable).parent / "metis")
FULL_ROWS = 10_000_000
QUICK_ROWS = 400_000


def generate_csv(path: Path, rows: int, seed: int = 7) -> int:
    """A 10-column CSV (6 integer, 3 float, 1 string column), written in slices."""
    gen = np.random.default_rng(seed)  # synthetic benchmark data, not key material
    cities = np.array(["amsterdam", "berlin", "chicago", "delhi", "essen", "fukuoka"])
    with pacsv.CSVWriter(path, pa.schema(
        [("id", pa.int64()), ("age", pa.int64()), ("visits", pa.int64()),
         ("zip", pa.int64()), ("score", pa.int64()), ("flag", pa.int64()),
         ("income", pa.float64()), ("weight", pa.float64()), ("ratio", pa.float64()),
         ("city", pa.string())])) as w:
        step = 500_000
        for start in range(0, rows, step):
            n = min(step, rows - start)
            w.write_table(pa.table({
                "id": np.arange(start, start + n, dtype=np.int64),
                "age": gen.integers(18, 90, n),
                "visits": gen.integers(0, 1000, n),
                "zip": gen.integers(10000, 99999, n),
                "score": gen.integers(-500, 500, n),
                "flag": gen.integers(0, 2, n),
                "income": np.round(gen.normal(50_000, 15_000, n), 2),
                "weight": np.round(gen.normal(70, 12, n), 3),
                "ratio": np.round(gen.random(n), 4),
                "city": cities[gen.integers(0, len(cities), n)],
            }))
    return path.stat().st_size


class Node:
    """A ``metis node start`` process over a temporary data directory."""

    def __init__(self, work: Path, cap: int) -> None:
        cfg = work / "data.toml"
        cfg.write_text(f'[node]\ndata_dir = "{work / "node"}"\nport = 0\n'
                       f"max_upload_bytes = {cap}\nlog_level = \"warning\"\n")
        self.config = cfg
        self.proc = subprocess.Popen([METIS, "node", "start", "--config", str(cfg)],
                                     stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline().decode()
                if "listening on" in line:
                    self.url = line.split("listening on ")[1].strip()
                    break
            if self.proc.poll() is not None:
                raise RuntimeError("the node exited during start-up")
        else:
            raise TimeoutError("the node did not start")
        import httpx

        while True:
            try:
                httpx.get(self.url + "/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.05)

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def run_duckdb(csv: Path, out: Path) -> tuple[float, float]:
    """CSV -> Parquet with DuckDB in a child process; (seconds, peak RSS MiB)."""
    code = (
        "import duckdb, resource, sys, time\n"
        "con = duckdb.connect()\n"
        "con.execute('SET enable_progress_bar = false')\n"
        "t = time.perf_counter()\n"
        "con.execute(f\"COPY (SELECT * FROM read_csv('{sys.argv[1]}')) TO '{sys.argv[2]}' "
        "(FORMAT parquet)\")\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(csv), str(out)], check=True,
                         capture_output=True, text=True)
    secs, rss = res.stdout.strip().splitlines()[-1].split()
    out.unlink(missing_ok=True)
    return float(secs), int(rss) / 1024.0


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=None, help="rows of the generated CSV")
    args = p.parse_args()
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    reps = max(1, args.reps)

    import duckdb

    from metisnet.node.config import load_data_node_config
    from metisnet.node.identity import NodeKey, load_signing_key
    from metisnet.sdk.client import NodeClient

    work = Path(tempfile.mkdtemp(prefix="metis-ingest-"))
    try:
        csv = work / "data.csv"
        t = time.perf_counter()
        size = generate_csv(csv, rows)
        print(f"generated {rows} rows, {size / 2**20:.0f} MiB in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
        node = Node(work, cap=size * 2 + (1 << 20))
        cfg = load_data_node_config(node.config)
        operator = NodeClient(node.url, load_signing_key(cfg.node_key_path), timeout=3600)
        owner = NodeClient(node.url, NodeKey.generate(), timeout=3600)
        add_s: list[float] = []
        host_s: list[float] = []
        peer_s: list[float] = []
        peer_rss = 0.0
        try:
            for i in range(reps):
                t = time.perf_counter()
                rec = operator.add_dataset(csv, name=f"bench{i}")
                add_s.append(time.perf_counter() - t)
                if rec["row_count"] != rows:
                    raise RuntimeError("row count mismatch")
                operator.revoke(rec["dataset_id"])  # frees the disk
                secs, rss = run_duckdb(csv, work / "peer.parquet")
                peer_s.append(secs)
                peer_rss = max(peer_rss, rss)
                t = time.perf_counter()
                rec = owner.host_dataset(csv, name=f"hosted{i}")
                host_s.append(time.perf_counter() - t)
                owner.revoke(rec["dataset_id"])
                print(f"rep {i}: add {add_s[-1]:.1f} s, duckdb {peer_s[-1]:.1f} s, host "
                      f"{host_s[-1]:.1f} s", file=sys.stderr)
            node_rss = node.peak_rss_mib()
        finally:
            operator.close()
            owner.close()
            node.stop()
        peer = f"duckdb {duckdb.__version__} COPY CSV->Parquet (unencrypted, own process)"
        mib = size / 2**20
        note = (f"{mib:.0f} MiB CSV, 10 columns; end to end over loopback HTTP incl. client "
                f"hash, parse, Parquet, AES-256-GCM, Merkle root, fsync, SQLite; node peak "
                f"RSS {node_rss:.0f} MiB (limit 1024); duckdb peak RSS {peer_rss:.0f} MiB")
        rows_out = [
            row("ingest csv", rows, "rows/s", [rows / s for s in add_s], peer=peer,
                peer_values=[rows / s for s in peer_s], peak_rss=round(node_rss, 1),
                note=note),
            row("host csv", rows, "rows/s", [rows / s for s in host_s], peer=peer,
                peer_values=[rows / s for s in peer_s], peak_rss=round(node_rss, 1),
                note="owner encrypts to the node key (ECIES secp256k1 + AES-256-GCM), node "
                     "decrypts and ingests as above"),
        ]
        emit(rows_out, args.json)
        if node_rss >= 1024:
            print(f"warning: node peak RSS {node_rss:.0f} MiB is over 1 GiB", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("METIS_LOG_LEVEL", "warning")
    main()
