"""The explorer in a real browser: a devnet, ``metis explorer``, a task, headless chromium.

Playwright for Python drives Debian's chromium (``/usr/bin/chromium`` through
``executable_path``; Playwright's own browser downloads are never used). The page is opened
before the task exists; the test then submits a task and watches the live page: a
``MutationObserver`` installed before the page's scripts run records every state the live
panel shows (task, stage, verdict), and the test polls the DOM until the verdict. Each stage
lasts from about 0.2 s to seconds on the devnet and the live panel polls every 100 ms while a
task runs, so the page usually shows every stage as current in turn; the test requires the
current stage to move only forward from "submitted" to "settled" and the stage history (read
from the chain's events, so no stage can be missed) to grow in order to all five stages,
each at its own block, and the verdict. Screenshots (the page while the task runs, when a
poll catches it running, and at the end) go to ``$METIS_TEST_ARTIFACTS`` (or the test's
``tmp_path``). Every request the page makes must stay on the explorer's loopback origin.
A missing chromium or Playwright fails the test: both are requirements of the suite.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from metisnet.api.explorer import STAGES
from metisnet.chain.anvil import free_port
from metisnet.errors import ChainError
from metisnet.node.devnet import DevnetRequester, devnet_down, devnet_up

pytestmark = pytest.mark.integration

ROWS = 300
FEE = 10**16

# Records each distinct state of the live panel, from the first paint on: a MutationObserver
# sees every change the page's script makes, however briefly it lasts.
_RECORDER = """
window.__liveStates = [];
document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  const note = () => {
    const d = live.dataset, last = window.__liveStates[window.__liveStates.length - 1];
    const s = {task: d.task, stage: d.stage, verdict: d.verdict, history: d.history,
               t: performance.now()};
    if (!last || last.task !== s.task || last.stage !== s.stage ||
        last.verdict !== s.verdict || last.history !== s.history) window.__liveStates.push(s);
  };
  new MutationObserver(note).observe(live, {attributes: true,
    attributeFilter: ["data-task", "data-stage", "data-verdict", "data-history"]});
});
"""


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed; the explorer's browser test needs Debian's "
                    "chromium: apt-get install -y chromium")
    return path


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: pip install playwright==1.65.2 (the dev "
                    "extra); it drives the system chromium, no browser download is needed")
    return sync_playwright


def _require_anvil() -> None:
    from metisnet.chain.anvil import find_anvil

    try:
        find_anvil()
    except ChainError as exc:
        pytest.fail(f"{exc} (run scripts/install-anvil.sh)")


def _artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ.get("METIS_TEST_ARTIFACTS") or tmp_path / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _start_explorer(root: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from metisnet.cli import run; run()", "explorer",
         "--data-dir", str(root), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/api/nodes", timeout=5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.fail("the explorer did not start: " + log_path.read_text()[-1000:])
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _table(page: Any, tbody: str) -> list[list[str]]:
    return list(page.eval_on_selector_all(
        f"#{tbody} tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))"))


def test_the_explorer_shows_a_task_pass_every_stage_to_its_verdict(tmp_path: Path) -> None:
    chromium = _chromium()
    sync_playwright = _playwright()
    _require_anvil()
    root = tmp_path / "devnet"
    t0 = time.monotonic()
    state, _ = devnet_up(root, rows=ROWS)
    explorer: subprocess.Popen[bytes] | None = None
    try:
        t1 = time.monotonic()
        explorer, base = _start_explorer(root, tmp_path / "explorer.log")
        t2 = time.monotonic()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            try:
                _watch_a_task(browser, base, state, tmp_path)
            finally:
                browser.close()
        print(f"devnet up {t1 - t0:.1f} s, explorer up {t2 - t1:.1f} s, browser and task "
              f"{time.monotonic() - t2:.1f} s")
    finally:
        if explorer is not None:
            _stop(explorer)
        devnet_down(root)


def _watch_a_task(browser: Any, base: str, state: Any, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(_RECORDER)
    page.goto(base + "/")
    # the page is up and shows the network before any task: 9 nodes, 3 datasets
    page.wait_for_function("document.querySelectorAll('#datasets tr').length === 3")
    assert page.get_attribute("#live", "data-task") == ""

    with DevnetRequester(state, account_index=2) as dr:
        task_id = dr.contracts.tasks.task_count() + 1
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                spec = dr.spec("mean", [(d, ["age"]) for d in state.datasets], FEE)
                result["res"] = dr.requester(timeout=120).run(spec)
            except BaseException as exc:  # reported by the main thread
                result["error"] = exc

        worker = threading.Thread(target=run, name="requester")
        worker.start()
        polled: list[str] = []  # the stages the test's own DOM polls saw, in order
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            live = page.evaluate("() => ({...document.getElementById('live').dataset})")
            if live["task"] == str(task_id) and (not polled or polled[-1] != live["stage"]):
                polled.append(live["stage"])
                if live["stage"] == "running":  # the live view mid-task, for the artefacts
                    page.screenshot(path=str(_artifacts(tmp_path) / "explorer-running.png"))
            if live["verdict"] or (not worker.is_alive() and "error" in result):
                break
            page.wait_for_timeout(100)
        worker.join(timeout=120)
    if "error" in result:
        raise result["error"]
    assert result["res"].verdict == "verified", result["res"].verdict

    states = page.evaluate("() => window.__liveStates")
    shown = [s["stage"] for s in states if s["task"] == str(task_id)]
    shown = [s for i, s in enumerate(shown) if i == 0 or shown[i - 1] != s]
    shot = _artifacts(tmp_path) / "explorer.png"
    page.wait_for_timeout(1200)  # one more full tick: tables and charts include the task
    page.screenshot(path=str(shot), full_page=True)
    print(f"explorer screenshot: {shot}\nthe live panel showed {shown} as current "
          f"({len(states)} states); the test's polls saw {polled}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the live page showed the task move forward through the stages to its verdict: the
    # current stage (sampled every 100 ms; "committee drawn" can last under 250 ms, so a
    # sample may miss it) only forward, and the stage history the chain's events recorded
    # growing by prefixes to every stage, each with its own block
    assert shown == [s for s in STAGES if s in shown], shown
    assert shown[0] == "submitted" and shown[-1] == "settled" and len(shown) >= 3, shown
    histories = [s["history"].split(",") if s["history"] else []
                 for s in states if s["task"] == str(task_id)]
    assert all(h == list(STAGES[:len(h)]) for h in histories), histories
    lengths = [len(h) for h in histories]
    assert lengths == sorted(lengths) and lengths[-1] == len(STAGES), histories
    assert polled == [s for s in STAGES if s in polled] and polled[-1] == "settled", polled
    blocks = page.eval_on_selector_all(
        "#live-stages li small", "ss => ss.map(s => parseInt(s.textContent.split(' ')[1]))")
    assert len(blocks) == len(STAGES) and blocks == sorted(set(blocks)), blocks
    live = page.evaluate("() => ({...document.getElementById('live').dataset})")
    assert live["task"] == str(task_id) and live["stage"] == "settled"
    assert live["verdict"] == "verified" and live["history"] == ",".join(STAGES)
    classes = page.eval_on_selector_all(
        "#live-stages li", "lis => lis.map(li => [li.dataset.stage, li.className])")
    assert classes == [[s, "done"] for s in STAGES], classes
    assert page.text_content("#live-verdict") == "verified"

    # committee, payouts and credits as the page shows them, against the chain
    detail = httpx.get(f"{base}/api/tasks/{task_id}", timeout=10).json()
    members = _table(page, "live-members")
    assert [m[0] for m in members] == detail["committee"] and len(members) == 3
    assert all(m[1] == "yes" for m in members), members
    payouts = _table(page, "live-payouts")
    assert {p[0] for p in payouts} >= set(detail["committee"])
    assert {p[1] for p in payouts} >= {"committee", "data owner"}
    assert abs(sum(float(p[2]) for p in payouts) - FEE / 1e18) < 1e-3

    # charts: the settled task marked in both throughput charts (a dot in the bucket it
    # finished in, over a filled rate) and a latency bar stacked from its stages
    for chart in ("#chart-tasks", "#chart-rows"):
        assert page.eval_on_selector_all(f"{chart} circle", "c => c.length") == 1
        assert page.eval_on_selector_all(f"{chart} polygon", "p => p.length") == 1
    assert page.eval_on_selector_all("#chart rect", "r => r.length") >= 2

    # nodes and datasets: stake, role, owners and policies; never a dataset's values. The
    # page refreshes these tables every few seconds, so wait (bounded) for the one after
    # the task settled: the datasets then name the task that used them
    page.wait_for_function(
        """id => [...document.querySelectorAll('#datasets tr')].length === 3 &&
                [...document.querySelectorAll('#datasets tr')].every(
                    tr => tr.cells.length > 8 && tr.cells[8].textContent === id)""",
        arg=str(task_id), timeout=30_000)
    nodes = _table(page, "nodes")
    assert sorted(n[1] for n in nodes) == ["compute"] * 6 + ["data"] * 3
    assert all(float(n[2]) > 0 for n in nodes)
    datasets = _table(page, "datasets")
    owners = {n[0] for n in nodes if n[1] == "data"}
    assert len(datasets) == 3 and all(d[1] in owners and d[2] == "data" for d in datasets)
    assert all(d[4].startswith("0x") and d[5] == str(ROWS) for d in datasets)
    assert all(d[8] == str(task_id) for d in datasets)

    assert not errors, errors
    foreign = [u for u in requests if not u.startswith(base + "/")]
    assert not foreign, f"the page fetched from elsewhere: {foreign}"
