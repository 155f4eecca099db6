"""Fixtures for the REST API tests: a data node served by uvicorn in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from metisnet.api.app import create_app
from metisnet.node.config import DataNodeConfig
from metisnet.node.datanode import DataNode
from metisnet.node.identity import NodeKey
from metisnet.sdk.client import NodeClient


@dataclass
class Served:
    url: str
    node: DataNode

    def client(self, key: NodeKey | None = None) -> NodeClient:
        return NodeClient(self.url, key or self.node.key, timeout=30)


@pytest.fixture
def serve_node(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    running: list[tuple[uvicorn.Server, threading.Thread, DataNode]] = []

    def start(**overrides: object) -> Served:
        cfg = DataNodeConfig(data_dir=tmp_path / f"node{len(running)}", chunk_bytes=4096,
                             port=0, **overrides)  # type: ignore[arg-type]
        node = DataNode(cfg)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(create_app(node), log_level="warning",
                                               lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(url + "/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        running.append((server, thread, node))
        return Served(url, node)

    yield start
    for server, thread, node in running:
        server.should_exit = True
        thread.join(timeout=10)
        node.close()
