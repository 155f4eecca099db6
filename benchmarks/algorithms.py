"""Algorithms: PSI (committee-assisted and two-party ECDH) and logistic regression training.

Rows (``python benchmarks/algorithms.py [--quick] [--json FILE]``):

* ``psi committee size`` / ``psi committee join`` - 2^20 x 2^20 integer ids, half in common.
  The 3 committee members run as OS processes over loopback TCP (one LocalCluster); the
  value is the committee's time, from a barrier to the result at the last member (opening
  the tags to the matcher and matching; for the join also the oblivious shuffle of each
  table, the positions and the gather of a shared payload column per side). The data
  nodes' own preparation (AES tags, their shuffle, dealing) runs in parallel at the nodes
  before that and is reported in the note; end to end is the sum of the two.
  No peer library offers this protocol; the note gives a plaintext numpy intersection of
  the same ids for scale.
* ``psi ecdh size`` - two data nodes as 2 OS processes over loopback TCP, secp256k1 through
  coincurve. Measured at the size in the row; a second row extrapolates linearly (the work is
  exactly linear: 2 hash-to-curve and 4 scalar multiplications per element pair) to 2^20
  and says so in its note.
* ``logreg sgd`` - 10^4 x 20 synthetic features, 10 epochs, batch 128, hard sigmoid; 3 OS
  processes. Beside it, in the same run: scikit-learn's ``SGDClassifier(loss="log_loss")``
  for 10 epochs on the same data (plaintext, 1 process, time in seconds) and MPyC 0.11
  (3 processes, ``-M3``) running the same mini-batch SGD with the same hard sigmoid on
  secure fixed-point arrays - at a smaller size named in the note, compared in
  sample-epochs per second. Accuracies on held-out rows are in the notes.

Repetitions alternate metisnet and the peer; medians of ``--reps`` (at least 3).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _mpyc import mpyc_version, run_parties

PEER_ENV = "METIS_MPYC_PEER"
KEY = bytes(range(16))


def _rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- synthetic inputs (plaintext; deterministic so every process rebuilds the same) ------------
def psi_ids(n: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(2026)
    pool = gen.choice(2**62, size=2 * n, replace=False).astype(np.int64)
    a = pool[:n]
    b = np.concatenate([pool[: n // 2], pool[n: n + n - n // 2]])
    return a, b


def _logreg_all(d: int) -> tuple[np.ndarray, np.ndarray]:
    """12,000 rows from one logistic model: the first up to 10,000 train, the rest test."""
    gen = np.random.default_rng(99)
    w = gen.normal(size=d)
    x = gen.normal(size=(12_000, d)) * gen.uniform(0.5, 20.0, size=d) + gen.normal(size=d)
    z = (x - x.mean(0)) / x.std(0)
    p = 1.0 / (1.0 + np.exp(-(z @ w)))
    y = (gen.random(12_000) < p).astype(np.float64)
    return x, y


def logreg_data(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = _logreg_all(d)
    return x[:n], y[:n]


# -- metisnet jobs (run in each committee process) ---------------------------------------------
def _barrier(ctx: Any) -> None:
    tag = ctx.tag("barrier")
    for peer in (ctx.next, ctx.prev):
        ctx.send(peer, tag, np.zeros(1, np.uint64))
    for peer in (ctx.next, ctx.prev):
        ctx.recv(peer, tag, (1,))


def psi_job(channel: Any, n: int, mode: str, job: int) -> tuple[float, int, int, float, float]:
    """(seconds, bytes sent, rounds, peak RSS, data-node prep seconds) for one member."""
    from metisnet.algorithms import psi
    from metisnet.crypto.prg import Csprng
    from metisnet.mpc import MpcContext

    ctx = MpcContext.setup(channel, session=f"psi{job}", security="semi-honest")
    a, b = psi_ids(n)
    pay = np.ones((n, 1)) if mode == "join" else None
    t0 = time.perf_counter()
    ia = psi.prepare(a, KEY, Csprng(b"A" * 16), payload=pay)[ctx.party]
    prep = time.perf_counter() - t0
    ib = psi.prepare(b, KEY, Csprng(b"B" * 16), payload=pay)[ctx.party]
    _barrier(ctx)
    before = ctx.stats.snapshot()
    t = time.perf_counter()
    if mode == "size":
        psi.intersection_size(ctx, [ia, ib], to=None)
    else:
        psi.private_join(ctx, [ia, ib])
    dt = time.perf_counter() - t
    d = ctx.stats - before
    return dt, d.bytes_sent, d.rounds, _rss(), prep


def ecdh_job(channel: Any, n: int) -> tuple[float, int, float, int]:
    from metisnet.algorithms.psi_ecdh import ecdh_psi

    a, b = psi_ids(n)
    ids = a if channel.party == 0 else b
    before = channel.stats.snapshot()
    t = time.perf_counter()
    res = ecdh_psi(channel, [int(v) for v in ids], receiver=0, mode="size")
    dt = time.perf_counter() - t
    return dt, (channel.stats - before).bytes_sent, _rss(), -1 if res is None else int(res)


def logreg_job(channel: Any, n: int, d: int, epochs: int, batch: int, job: int,
               security: str = "semi-honest"
               ) -> tuple[float, int, int, float, list[float] | None]:
    from metisnet.algorithms import regression
    from metisnet.algorithms.common import deal, receive
    from metisnet.crypto.prg import Csprng
    from metisnet.mpc import MpcContext

    ctx = MpcContext.setup(channel, session=f"lr{job}", security=security)
    x, y = logreg_data(n, d)
    parts = np.array_split(np.column_stack([x, y]), 3)
    tables = [receive(ctx, deal(p, Csprng(bytes([i + 1]) * 16))[ctx.party])
              for i, p in enumerate(parts)]
    from metisnet import mpc

    t_all = mpc.concat(tables)
    xs, ys = t_all[:, :-1], t_all[:, -1]
    _barrier(ctx)
    before = ctx.stats.snapshot()
    t = time.perf_counter()
    model = regression.logistic_regression(ctx, xs, ys, epochs=epochs, batch_size=batch, to=0)
    dt = time.perf_counter() - t
    s = ctx.stats - before
    coef = None
    if isinstance(model, regression.Model):
        coef = [*model.coef.tolist(), model.intercept]
    return dt, s.bytes_sent, s.rounds, _rss(), coef


# -- MPyC peer (this script relaunched as 3 processes) ------------------------------------------
def _mpyc_peer() -> None:
    from mpyc.runtime import mpc

    n = int(os.environ["METIS_BENCH_N"])
    d = int(os.environ["METIS_BENCH_D"])
    epochs = int(os.environ["METIS_BENCH_EPOCHS"])
    batch = int(os.environ["METIS_BENCH_BATCH"])
    lr = 0.5

    async def main() -> None:
        await mpc.start()
        sec: Any = mpc.SecFxp(64, 16)
        x, y = logreg_data(n, d)
        x = (x - x.mean(0)) / x.std(0)  # the peer gets pre-standardised data (less work)
        xs = mpc.input(sec.array(x), senders=0)
        ys = mpc.input(sec.array(y), senders=0)
        await mpc.gather(xs, ys)
        await mpc.barrier()
        t = time.perf_counter()
        w = sec.array(np.zeros(d))
        b = sec(0.0)
        for _ in range(epochs):
            for s in range(0, n, batch):
                xb, yb = xs[s:s + batch], ys[s:s + batch]
                m = xb.shape[0]
                u = (xb @ w + b) * 0.25 + 0.5
                lo = u < 0
                hi = u > 1
                p = u - lo * u + hi * (1 - u)
                err = (p - yb) * (lr / m)
                w = w - xb.T @ err
                b = b - mpc.sum(list(err))
        await mpc.gather(w, b)
        dt = time.perf_counter() - t
        await mpc.barrier()
        print(json.dumps({"party": mpc.pid, "dt": dt, "rss": _rss()}), flush=True)
        await mpc.shutdown()

    mpc.run(main())


def run_mpyc(n: int, d: int, epochs: int, batch: int) -> tuple[float, float]:
    return run_parties(__file__, {PEER_ENV: "1", "METIS_BENCH_N": str(n),
                                  "METIS_BENCH_D": str(d), "METIS_BENCH_EPOCHS": str(epochs),
                                  "METIS_BENCH_BATCH": str(batch)})


def sklearn_fit(n: int, d: int, epochs: int) -> tuple[float, float]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier
    from sklearn.preprocessing import StandardScaler

    x, y = logreg_data(n, d)
    xt, yt = logreg_data_test(d)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sc = StandardScaler().fit(x)
        clf = SGDClassifier(loss="log_loss", max_iter=epochs, tol=None, random_state=0)
        clf.fit(sc.transform(x), y)
    dt = time.perf_counter() - t
    return dt, float(clf.score(sc.transform(xt), yt))


def logreg_data_test(d: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = _logreg_all(d)
    return x[10_000:], y[10_000:]


# -- the table ----------------------------------------------------------------------------------
def main() -> None:
    from _report import emit, parser, row
    from metisnet.net.local_cluster import LocalCluster

    args = parser(__doc__.splitlines()[0]).parse_args()
    reps = max(3, args.reps)
    quick = args.quick
    rows: list[dict[str, Any]] = []
    job = 0
    n_psi = 2**16 if quick else 2**20
    n_ecdh = 2**10 if quick else 2**12
    lr_n, lr_d, lr_epochs, lr_batch = (2000, 20, 2, 128) if quick else (10_000, 20, 10, 128)
    mpyc_n, mpyc_epochs = (256, 1) if quick else (1024, 1)

    with LocalCluster(3, timeout=1800.0) as cluster:
        for mode in ("size", "join"):
            ours, prep, sent, rounds, rss = [], [], 0, 0, 0.0
            plain = []
            for _ in range(reps):
                a, b = psi_ids(n_psi)
                t = time.perf_counter()
                np.intersect1d(a, b, assume_unique=True)
                plain.append(time.perf_counter() - t)
                job += 1
                res = cluster.run(psi_job, n_psi, mode, job)
                ours.append(max(r[0] for r in res))
                sent = max(r[1] for r in res)
                rounds = max(r[2] for r in res)
                rss = max(rss, *(r[3] for r in res))
                prep.append(max(r[4] for r in res))
            note = (f"committee of 3 processes, 128-bit AES tags, half the ids common; "
                    f"data-node prep {statistics.median(prep):.2f} s per node (in parallel, "
                    f"before); plaintext numpy intersect1d {statistics.median(plain):.3f} s")
            if mode == "join":
                note += "; joined rows (1 payload column per side) stay secret-shared"
            rows.append(row(f"psi committee {mode}", n_psi, "s", ours, bytes_per_party=sent,
                            rounds=rounds, peak_rss=rss, note=note))
            sys.stderr.write(f"psi committee {mode} n={n_psi}: {statistics.median(ours):.2f} s\n")

    with LocalCluster(2, timeout=1800.0) as pair:
        ours, sent, rss = [], 0, 0.0
        for _ in range(reps):
            res = pair.run(ecdh_job, n_ecdh)
            ours.append(max(r[0] for r in res))
            sent = max(r[1] for r in res)
            rss = max(rss, *(r[2] for r in res))
            if res[0][3] != n_ecdh // 2:
                raise RuntimeError("ECDH-PSI returned a wrong size")
        rows.append(row("psi ecdh size", n_ecdh, "s", ours, bytes_per_party=sent, rounds=2,
                        peak_rss=rss, note="2 data nodes as processes, secp256k1 (coincurve)"))
        scale = (2**20) / n_ecdh
        rows.append(row("psi ecdh size", 2**20, "s", [v * scale for v in ours],
                        bytes_per_party=sent * scale, rounds=2, note=(
                            f"EXTRAPOLATED linearly from n={n_ecdh} (x{scale:.0f}), not "
                            "measured: the work is exactly linear in n")))
        sys.stderr.write(f"psi ecdh n={n_ecdh}: {statistics.median(ours):.2f} s\n")

    peer = mpyc_version()
    with LocalCluster(3, timeout=1800.0) as cluster:
        ours, sk, sk_acc, theirs, sent, rounds, rss = [], [], 0.0, [], 0, 0, 0.0
        coef = None
        for _ in range(reps):
            dt_sk, sk_acc = sklearn_fit(lr_n, lr_d, lr_epochs)
            sk.append(dt_sk)
            if peer is not None:
                dt_p, rss_p = run_mpyc(mpyc_n, lr_d, mpyc_epochs, lr_batch)
                theirs.append(mpyc_n * mpyc_epochs / dt_p)
                rss = max(rss, rss_p)
            job += 1
            res = cluster.run(logreg_job, lr_n, lr_d, lr_epochs, lr_batch, job)
            ours.append(max(r[0] for r in res))
            sent = max(r[1] for r in res)
            rounds = max(r[2] for r in res)
            rss = max(rss, *(r[3] for r in res))
            coef = res[0][4]
        xt, yt = logreg_data_test(lr_d)
        acc = float("nan")
        if coef is not None:
            acc = float(np.mean(((xt @ np.array(coef[:-1]) + coef[-1]) > 0) == yt))
        size = lr_n
        rows.append(row("logreg sgd", size, "s", ours, peer="scikit-learn 1.9.1 (plaintext)",
                        peer_values=sk, bytes_per_party=sent, rounds=rounds, peak_rss=rss,
                        note=(f"{lr_n}x{lr_d}, {lr_epochs} epochs, batch {lr_batch}, hard "
                              f"sigmoid, standardised in MPC, semi-honest committee; held-out "
                              f"accuracy {acc:.3f} (scikit-learn SGDClassifier {sk_acc:.3f})")))
        work = lr_n * lr_epochs
        rows.append(row("logreg sgd", size, "sample-epochs/s", [work / v for v in ours],
                        peer=peer, peer_values=theirs or None, bytes_per_party=sent,
                        rounds=rounds, peak_rss=rss,
                        note=(f"semi-honest both; MPyC secfxp the same mini-batch SGD at "
                              f"n={mpyc_n}, {mpyc_epochs} epoch (minutes at full size), "
                              "pre-standardised inputs; sample-epochs per second compared")))
        sys.stderr.write(f"logreg: {statistics.median(ours):.2f} s, acc {acc:.3f}\n")
        mal, mal_sent, mal_rounds = [], 0, 0
        mal_n, mal_epochs = (500, 1) if quick else (lr_n, lr_epochs)
        semi_rate = lr_n * lr_epochs / statistics.median(ours)
        for _ in range(reps):
            job += 1
            res = cluster.run(logreg_job, mal_n, lr_d, mal_epochs, lr_batch, job, "malicious")
            mal.append(max(r[0] for r in res))
            mal_sent = max(r[1] for r in res)
            mal_rounds = max(r[2] for r in res)
        slow = semi_rate / (mal_n * mal_epochs / statistics.median(mal))
        rows.append(row("logreg sgd (malicious)", mal_n, "s", mal, bytes_per_party=mal_sent,
                        rounds=mal_rounds, note=(
                            f"{mal_n}x{lr_d}, {mal_epochs} epochs, the committee in the "
                            "default malicious mode (security with abort); about "
                            f"{slow:.0f}x the semi-honest time per sample-epoch")))
        sys.stderr.write(f"logreg malicious: {statistics.median(mal):.2f} s\n")
    emit(rows, args.json)


if __name__ == "__main__":
    if os.environ.get(PEER_ENV) == "1":
        _mpyc_peer()
    else:
        main()
