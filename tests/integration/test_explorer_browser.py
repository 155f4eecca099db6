"""The explorer in a real browser: a devnet, ``metis explorer``, a task, headless chromium.

Debian's chromium (``apt-get install -y chromium``) is driven with its own command-line
flags: ``--dump-dom`` gives the page after its JavaScript ran (the explorer renders stage
names and the verdict as text and ``data-*`` attributes), ``--screenshot`` the picture,
saved under ``$METIS_TEST_ARTIFACTS`` (or the test's ``tmp_path``). Only loopback traffic.
A missing chromium fails the test: it is a requirement of the suite, not an option.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
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


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed; the explorer's browser test needs Debian's "
                    "chromium: apt-get install -y chromium")
    return path


def _require_anvil() -> None:
    from metisnet.chain.anvil import find_anvil

    try:
        find_anvil()
    except ChainError as exc:
        pytest.fail(f"{exc} (run scripts/install-anvil.sh)")


def _browser(chromium: str, profile: Path, *args: str) -> str:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"chromium exited {out.returncode}: {out.stderr[-500:]}")
    return out.stdout


class _LiveView(HTMLParser):
    """The live panel of the explorer's page: task, stage, verdict, each stage's class."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[str, str] = {}
        self.stages: dict[str, str] = {}
        self.observed: list[str] = []  # the stages the explorer saw on chain, in order
        self._in_observed = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if a.get("id") == "live":
            self.live = a
        elif tag == "li" and "data-stage" in a:
            self.stages[a["data-stage"]] = a.get("class", "")
        self._in_observed = a.get("id") == "live-observed"

    def handle_data(self, data: str) -> None:
        if self._in_observed and data.strip() != "-":
            self.observed = [s.strip() for s in data.split("\u2192") if s.strip()]
        self._in_observed = False


def _view(chromium: str, profile: Path, url: str) -> _LiveView:
    # one tick of the page's polling (its first, at load) and no more: a short load
    dom = _browser(chromium, profile, "--virtual-time-budget=800", "--dump-dom", url)
    view = _LiveView()
    view.feed(dom)
    return view


def _artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ.get("METIS_TEST_ARTIFACTS") or tmp_path / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_the_explorer_shows_a_task_pass_every_stage_to_its_verdict(tmp_path: Path) -> None:
    chromium = _chromium()
    _require_anvil()
    root = tmp_path / "devnet"
    profile = tmp_path / "chromium-profile"
    state, _ = devnet_up(root, rows=ROWS)
    port = free_port()
    log = (tmp_path / "explorer.log").open("w")
    explorer = subprocess.Popen(
        [sys.executable, "-c", "from metisnet.cli import run; run()", "explorer",
         "--data-dir", str(root), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/api/nodes", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if explorer.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the explorer did not start: "
                            + (tmp_path / "explorer.log").read_text()[-1000:])
            time.sleep(0.3)

        with DevnetRequester(state, account_index=2) as dr:
            task_id = dr.contracts.tasks.task_count() + 1
            url = f"{base}/?task={task_id}"
            result: dict[str, Any] = {}

            def run() -> None:
                try:
                    spec = dr.spec("mean", [(d, ["age"]) for d in state.datasets], FEE)
                    result["res"] = dr.requester(timeout=120).run(spec)
                except BaseException as exc:  # reported by the main thread
                    result["error"] = exc

            worker = threading.Thread(target=run, name="requester")
            worker.start()
            seen: list[str] = []  # stages the browser showed, in order
            final = None
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                view = _view(chromium, profile, url)
                stage = view.live.get("data-stage", "")
                if view.live.get("data-task") == str(task_id) and stage and (
                        not seen or seen[-1] != stage):
                    seen.append(stage)
                if view.live.get("data-verdict") and not worker.is_alive():
                    final = view
                    break
                time.sleep(0.2)
            worker.join(timeout=120)
        if "error" in result:
            raise result["error"]
        assert result["res"].verdict == "verified", result["res"].verdict
        assert final is not None, f"the page never showed a verdict; it showed {seen}"

        shot = _artifacts(tmp_path) / "explorer.png"
        _browser(chromium, profile, "--virtual-time-budget=3000", "--window-size=1280,1000",
                 "--hide-scrollbars", f"--screenshot={shot}", url)
        print(f"explorer screenshot: {shot}")
        assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # the page shows the task passed every stage, in order, and its verdict
        assert final.live["data-stage"] == "settled"
        assert final.live["data-verdict"] == "verified"
        assert list(final.stages) == list(STAGES)
        assert set(final.stages.values()) == {"done"}, final.stages
        # the live view, as the page shows it: the stages the explorer saw on chain while
        # the task ran (its watcher polls 4 times a second), in order, ending settled
        observed = final.observed
        assert observed == [s for s in STAGES if s in observed], observed
        assert len(observed) >= 3 and observed[-1] == "settled", observed
        # what each page load showed is an ordered walk through the stages too (how many
        # a load catches depends on the machine's load: chromium starts for each one)
        assert seen == [s for s in STAGES if s in seen] and seen[-1] == "settled", seen
        print(f"the page showed {seen} across loads; the explorer observed {observed}")
        detail = httpx.get(f"{base}/api/tasks/{task_id}", timeout=10).json()
        assert list(detail["observed"]) == observed
        assert detail["result_commitment"] and detail["payouts"]
    finally:
        if explorer.poll() is None:
            os.killpg(explorer.pid, signal.SIGTERM)
            try:
                explorer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(explorer.pid, signal.SIGKILL)
                explorer.wait()
        log.close()
        devnet_down(root)
