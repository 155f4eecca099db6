"""The service lifecycle: serve until SIGTERM, shut down gracefully, restore handlers."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

import httpx

from metisnet.api.server import serve_data_node
from metisnet.node.config import DataNodeConfig
from metisnet.node.datanode import DataNode


def test_sigterm_stops_the_server_and_restores_signal_handlers(tmp_path: Path) -> None:
    seen: list[int] = []

    def mine(sig: int, frame: FrameType | None) -> None:
        seen.append(sig)

    before = signal.signal(signal.SIGTERM, mine)
    health: list[int] = []

    def announce(url: str, node: DataNode) -> None:
        def poke() -> None:
            for _ in range(100):
                try:
                    health.append(httpx.get(url + "/health", timeout=1).status_code)
                    break
                except httpx.HTTPError:
                    threading.Event().wait(0.05)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=poke, daemon=True).start()

    try:
        cfg = DataNodeConfig(data_dir=tmp_path / "n", port=0, log_level="warning")
        serve_data_node(cfg, announce=announce)  # returns once SIGTERM is handled
        assert health == [200]
        assert signal.getsignal(signal.SIGTERM) is mine
        assert seen == []  # the node's shutdown did not leak the signal to our handler
        reopened = DataNode(cfg)  # the store was closed cleanly and opens again
        reopened.close()
    finally:
        signal.signal(signal.SIGTERM, before)
