"""Homomorphic encryption beside python-paillier (phe, gmpy2) and raw TenSEAL.

Rows (see ../shared/BENCHMARKS.md; metisnet and the peer alternate within each repetition,
on the same inputs, in this one process unless a row says otherwise):

* Paillier 2048-bit encryption, one value at a time on one core, and in batches on both
  cores through a process pool (the peer stays on one core: it has no batch API);
* Paillier 2048-bit decryption; homomorphic addition of two ciphertexts;
* outsourced sum of 10^4 values with verification: the compute node's evaluation (values
  and MAC tags, Merkle root of the inputs), the requester's verification, and their ratio;
* an outsourced mean as a task (``mode: "he"``) on the embedded chain: submit to settled;
* CKKS (N = 8192, 4096 slots) through metisnet's Scheme adapter beside the same calls on
  raw TenSEAL: encryption, ct+ct, ct*plain, sum, decryption.

Run: ``.venv/bin/python benchmarks/he.py [--quick] [--json FILE] [--reps N]``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report
from metisnet.crypto.prg import Csprng
from metisnet.he.ckks import CkksScheme
from metisnet.he.paillier import PaillierPublicKey, generate_keypair
from metisnet.verify.mac import TaskKeys
from metisnet.verify.outsource import evaluate, prepare, verify_result
from metisnet.verify.programs import LinearProgram

BITS = 2048


def _rate(count: int, fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return count / (time.perf_counter() - t)


def _seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


# -- process pool for batch encryption (workers build the fixed-base table once) ----------
_WORKER_KEY: PaillierPublicKey | None = None


def _worker_init(key: dict[str, Any]) -> None:
    global _WORKER_KEY
    _WORKER_KEY = PaillierPublicKey.from_dict(key)
    _WORKER_KEY.precompute()


def _worker_encrypt(ms: Sequence[int]) -> list[bytes]:
    key = _WORKER_KEY
    if key is None:
        raise RuntimeError("worker not initialised")
    nb = key.nsquare_bytes
    return [bytes(c.to_bytes(nb, "big")) for c in key.raw_encrypt_many(ms)]


def pool_encrypt(pool: ProcessPoolExecutor, ms: list[int], workers: int) -> list[bytes]:
    chunk = -(-len(ms) // (workers * 4))
    parts = [ms[i:i + chunk] for i in range(0, len(ms), chunk)]
    out: list[bytes] = []
    for res in pool.map(_worker_encrypt, parts):
        out.extend(res)
    return out


def paillier_rows(quick: bool, reps: int) -> list[dict[str, Any]]:
    from phe import __version__ as phe_version
    from phe import paillier

    peer = f"python-paillier {phe_version} (gmpy2)"
    kp = generate_keypair(BITS)
    pk, sk = kp.public_key, kp.private_key
    t_table, _ = _seconds(pk.precompute)
    ppk, psk = paillier.generate_paillier_keypair(n_length=BITS)
    rng = Csprng()
    n_enc_peer = 12 if quick else 60
    n_enc = 300 if quick else 2000
    n_dec = 100 if quick else 600
    n_add = 20000 if quick else 100000
    workers = min(2, os.cpu_count() or 1)
    values = [int(v) for v in rng.below(2**32, n_enc)]

    rows: list[dict[str, Any]] = []
    enc1, enc_pool, enc_peer = [], [], []
    with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                             initargs=(pk.to_dict(),)) as pool:
        pool_encrypt(pool, values[:workers * 8], workers)  # warm-up: tables built
        for _ in range(reps):
            enc1.append(_rate(n_enc, lambda: [pk.encrypt(v) for v in values]))
            enc_peer.append(_rate(n_enc_peer,
                                  lambda: [ppk.encrypt(v) for v in values[:n_enc_peer]]))
            enc_pool.append(_rate(n_enc, lambda: pool_encrypt(pool, values, workers)))
    rss = _report.peak_rss_mib()
    rows.append(_report.row(
        "paillier-2048 encrypt (1 core)", n_enc, "ops/s", enc1, peer=peer,
        peer_values=enc_peer, peak_rss=rss,
        note=f"safe API, one value per call; fixed-base table built once per key in "
             f"{t_table:.2f} s (8 MiB); in process"))
    rows.append(_report.row(
        f"paillier-2048 encrypt (batch, {workers} processes)", n_enc, "ops/s", enc_pool,
        peer=peer, peer_values=enc_peer, peak_rss=rss,
        note=f"process pool of {workers} workers (both cores), ciphertexts returned as "
             f"bytes; the peer runs on one core (no batch API)"))

    cts = [pk.encrypt(v) for v in values[:n_dec]]
    pcts = [ppk.encrypt(v) for v in values[:min(n_dec, 40)]]
    dec, dec_peer = [], []
    for _ in range(reps):
        dec.append(_rate(n_dec, lambda: [sk.decrypt(c) for c in cts]))
        dec_peer.append(_rate(len(pcts), lambda: [psk.decrypt(c) for c in pcts]))
    rows.append(_report.row(
        "paillier-2048 decrypt", n_dec, "ops/s", dec, peer=peer, peer_values=dec_peer,
        peak_rss=_report.peak_rss_mib(),
        note="CRT with 225-bit exponents (alpha_p, alpha_q) instead of p-1, q-1"))

    a, b = cts[0], cts[1]
    pa, pb = pcts[0], pcts[1]
    add, add_peer = [], []

    def loop(x: Any, y: Any) -> None:
        for _ in range(n_add):
            x + y

    for _ in range(reps):
        add.append(_rate(n_add, lambda: loop(a, b)))
        add_peer.append(_rate(n_add, lambda: loop(pa, pb)))
    rows.append(_report.row(
        "paillier-2048 add (ct+ct)", n_add, "ops/s", add, peer=peer, peer_values=add_peer,
        peak_rss=_report.peak_rss_mib(), note="safe API objects on both sides"))
    return rows


def verify_rows(quick: bool, reps: int) -> list[dict[str, Any]]:
    n_values = 4_000 if quick else 10_000
    kp = generate_keypair(BITS)
    pk, sk = kp.public_key, kp.private_key
    keys, task = TaskKeys(), b"bench-task-0001"
    data = Csprng().below(2**20, n_values).astype(np.int64)
    workers = min(2, os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                             initargs=(pk.to_dict(),)) as pool:
        def enc(ms: list[int]) -> list[bytes]:
            return pool_encrypt(pool, ms, workers)

        t_prep, (batch, comm) = _seconds(
            lambda: prepare(pk, keys.owner_key(task, 0, pk.n), task, 0, data,
                            encrypt_many=enc))
    prog = LinearProgram.sum()
    ev, ver = [], []
    for _ in range(reps):
        t_e, result = _seconds(lambda: evaluate(prog, [batch]))
        t_v, res = _seconds(lambda r=result: verify_result(sk, keys, task, prog, [comm], r))
        if res.total != (int(data.sum()),):
            raise RuntimeError("wrong sum")
        ev.append(t_e)
        ver.append(t_v)
    pct = [100.0 * v / e for v, e in zip(ver, ev, strict=True)]
    rss = _report.peak_rss_mib()
    return [
        _report.row("outsourced sum: evaluate (compute node)", n_values, "s", ev,
                    peak_rss=rss, note=f"values and MAC tags (2 x {n_values} ciphertext "
                    "multiplications) and the Merkle root of the inputs; 2048-bit"),
        _report.row("outsourced sum: verify (requester)", n_values, "s", ver,
                    peak_rss=rss, note="2 decryptions, PRF word sums, root comparison"),
        _report.row("verify overhead (outsourced sum)", n_values, "% of evaluate", pct,
                    peak_rss=rss, note=f"target <= 5% at 10^4 values (--quick: 4,000); the owner's "
                    f"prepare (encryptions + tags, {workers} processes) took {t_prep:.1f} s"),
    ]


def task_rows(quick: bool, reps: int) -> list[dict[str, Any]]:
    """An outsourced mean as a task on the embedded chain (one process, no peer)."""
    import tempfile

    from metisnet.node.localnet import LocalNetwork
    from metisnet.node.outsource_task import OutsourceVerifier, he_params
    from metisnet.node.taskspec import TaskSpec

    rows_each = 50 if quick else 1000
    kp = generate_keypair(BITS)
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        net = LocalNetwork(Path(tmp), rows=[rows_each] * 3, compute_nodes=3)
        try:
            for _ in range(reps):
                spec = TaskSpec.new("mean", [(d, ["age"]) for d in net.dataset_ids],
                                    [net.requester_account.address], 10**16, mode="he",
                                    committee_size=1, params=he_params(kp.public_key))
                verifier = OutsourceVerifier(kp)
                res = net.requester(he=verifier).run(spec)
                if res.verdict != "verified":
                    raise RuntimeError(f"he task failed: {res.verdict}")
                totals.append(res.timings["total"])
                timings = {**res.timings, "of which verify": verifier.last_verify_s}
                for k, v in timings.items():
                    stages.setdefault(k, []).append(v)
        finally:
            net.close()
    parts = ", ".join(f"{k} {float(np.median(v)):.3f} s" for k, v in stages.items()
                      if k not in ("total", "verifying"))
    return [_report.row("outsourced mean as a task (submit to settled)", 3 * rows_each, "s",
                        totals, peak_rss=_report.peak_rss_mib(),
                        note=f"3 owners x {rows_each} rows, one drawn compute node, "
                        f"2048-bit, embedded chain in one process; medians: {parts}")]


def ckks_rows(quick: bool, reps: int) -> list[dict[str, Any]]:
    import tenseal as ts

    peer = f"TenSEAL {ts.__version__}"
    scheme = CkksScheme()
    ctx = scheme.context  # the same keys for both sides
    slots = scheme.slots
    x = np.linspace(-1, 1, slots).tolist()
    y = np.linspace(2, -2, slots).tolist()
    n_enc = 10 if quick else 40
    n_ops = 200 if quick else 1000
    cx, cy = scheme.encrypt(x), scheme.encrypt(y)
    rx, ry = ts.ckks_vector(ctx, x), ts.ckks_vector(ctx, y)
    cases: list[tuple[str, int, Callable[[], Any], Callable[[], Any]]] = [
        ("encrypt", n_enc, lambda: scheme.encrypt(x), lambda: ts.ckks_vector(ctx, x)),
        ("ct+ct", n_ops, lambda: scheme.add(cx, cy), lambda: rx + ry),
        ("ct*plain", n_enc * 4, lambda: scheme.mul_plain(cx, y), lambda: rx * y),
        ("sum (rotations)", n_enc, lambda: scheme.sum(cx), lambda: rx.sum()),
        ("decrypt", n_enc * 4, lambda: scheme.decrypt(cx), lambda: rx.decrypt()),
    ]
    rows = []
    for name, count, mine, theirs in cases:
        m, p = [], []
        for _ in range(reps):
            m.append(_rate(count, lambda f=mine, k=count: [f() for _ in range(k)]))
            p.append(_rate(count, lambda f=theirs, k=count: [f() for _ in range(k)]))
        rows.append(_report.row(
            f"ckks {name}", slots, "vectors/s", m, peer=peer, peer_values=p,
            peak_rss=_report.peak_rss_mib(),
            note="N=8192, 4096 slots, scale 2^40; metisnet Scheme adapter over TenSEAL"))
    return rows


def main() -> None:
    args = _report.parser(__doc__ or "").parse_args()
    reps = max(3, args.reps)
    rows = paillier_rows(args.quick, reps)
    rows += verify_rows(args.quick, reps)
    rows += task_rows(args.quick, reps)
    rows += ckks_rows(args.quick, reps)
    _report.emit(rows, args.json)


if __name__ == "__main__":
    main()
