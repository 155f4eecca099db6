"""Fixtures for the data node's tests: a fresh node in a temporary directory."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from metisnet.node.config import DataNodeConfig
from metisnet.node.datanode import DataNode


@pytest.fixture
def data_node_factory(tmp_path: Path) -> Iterator[Callable[..., DataNode]]:
    """Open (and on teardown close) data nodes over ``tmp_path/node``."""
    opened: list[DataNode] = []

    def make(**overrides: object) -> DataNode:
        cfg = DataNodeConfig(data_dir=tmp_path / "node", chunk_bytes=4096,
                             **overrides)  # type: ignore[arg-type]
        node = DataNode(cfg)
        opened.append(node)
        return node

    yield make
    for node in opened:
        with contextlib.suppress(Exception):  # a test may have closed it already
            node.close()
