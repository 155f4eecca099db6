"""Running MPyC, the peer of the MPC benchmarks, as 3 OS processes over loopback.

A benchmark script that measures MPyC re-runs itself as each party (``-M3 -I<i>``) with
an environment flag set; each party prints one JSON line ``{"dt": s, "rss": MiB}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

__all__ = ["mpyc_version", "run_parties"]


def mpyc_version() -> str | None:
    """``"MPyC <version>"``, or None when MPyC (bench extra) is not installed."""
    try:
        import mpyc
    except ImportError:
        return None
    return f"MPyC {mpyc.__version__}"


def run_parties(script: str, env: dict[str, str], *,
                timeout: float = 1800) -> tuple[float, float]:
    """Run ``script`` as 3 MPyC parties; (slowest party's seconds, largest peak RSS MiB)."""
    from metisnet.net.local_cluster import free_ports

    port = free_ports(1)[0][1]
    full_env = dict(os.environ, **env)
    procs = [subprocess.Popen([sys.executable, script, "-M3", f"-I{i}", "-B", str(port),
                               "--no-log"], env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    dts, rss = [], []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"MPyC party failed: {err[-2000:]}")
        rec = json.loads(out.strip().splitlines()[-1])
        dts.append(rec["dt"])
        rss.append(rec["rss"])
    return max(dts), max(rss)
