"""``benchmarks/report.py`` and ``metis bench``: the table, the plots, a failing script."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from click.testing import CliRunner

from metisnet.cli import main

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report_under_test",
                                                  BENCH / "report.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _row(op: str, size: int, value: float, peer: str | None = None,
         peer_value: float | None = None, unit: str = "elements/s") -> dict[str, object]:
    return {"op": op, "size": size, "unit": unit, "metisnet": value,
            "metisnet_min": value * 0.9, "metisnet_max": value * 1.1, "peer": peer,
            "peer_value": peer_value, "ratio": value / peer_value if peer_value else None,
            "bytes_per_party": None, "rounds": 1, "peak_rss_mib": 50.0, "note": "a|b"}


def test_report_from_two_json_files(tmp_path: Path) -> None:
    report = _report()
    mpc = tmp_path / "mpc.json"
    mpc.write_text(json.dumps([_row("mul", 1000, 2e5, "MPyC 0.11", 1e5),
                               _row("mul", 10000, 3e5, "MPyC 0.11", 1.2e5),
                               _row("latency", 100, 0.5, unit="s")]))
    he = tmp_path / "he.json"
    he.write_text(json.dumps([_row("encrypt", 64, 900.0, "phe 1.5", 100.0)]))
    broken = tmp_path / "broken.json"
    broken.write_text('{"not": "a list"}')
    out = tmp_path / "out"
    runs = report.runs_from_json([mpc, he, broken])
    path = report.write_report(runs, out)
    text = path.read_text()
    assert path == out / "REPORT.md"
    # one table with every row, named by script; the note's pipe is escaped
    table = [ln for ln in text.splitlines()
             if ln.startswith(("| mpc |", "| he |")) and "| ok |" not in ln]
    assert len(table) == 4
    assert "| mpc | mul | 10000 | elements/s | 3e+05 |" in text
    assert "| mpc | ok | 0.0 | 3 |" in text
    assert "MPyC 0.11" in text and "a\\|b" in text
    assert "| broken | FAILED: no valid JSON rows" in text
    # a PNG per script with rows, linked from the report
    for name in ("mpc", "he"):
        png = out / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{name}](plots/{name}.png)" in text
    assert not (out / "plots" / "broken.png").exists()


def test_metis_bench_reports_a_failing_script_and_runs_the_rest(tmp_path: Path) -> None:
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "report.py").write_text((BENCH / "report.py").read_text())
    (bench / "_report.py").write_text("")
    (bench / "_shared.py").write_text("raise SystemExit('a helper module is not a benchmark')\n")
    (bench / "good.py").write_text(
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "assert '--quick' in args\n"
        f"rows = json.loads({json.dumps([_row('add', 10, 5.0, 'peer 1', 2.0)])!r})\n"
        "open(args[args.index('--json') + 1], 'w').write(json.dumps(rows))\n")
    (bench / "bad.py").write_text("raise SystemExit('no peer library here')\n")
    out = tmp_path / "results"
    res = CliRunner().invoke(main, ["bench", "--bench-dir", str(bench), "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert "bad: FAILED" in res.output and "good: 1 rows" in res.output
    assert "_shared" not in res.output  # helper modules ("_" names) are not run
    text = (out / "REPORT.md").read_text()
    assert "| bad | FAILED: exit code 1: no peer library here |" in text
    assert "| good | add | 10 | elements/s | 5 |" in text
    assert (out / "plots" / "good.png").exists() and (out / "logs" / "bad.log").exists()
    # --only picks scripts; an unknown name is a usage error, not a crash
    res = CliRunner().invoke(main, ["bench", "--bench-dir", str(bench), "--out", str(out),
                                    "--only", "good"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["bench", "--bench-dir", str(bench), "--only", "nope"])
    assert res.exit_code != 0
