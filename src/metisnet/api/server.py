"""Run a data node as a long-lived service: Config -> DataNode -> uvicorn, until a signal.

:func:`serve_data_node` opens the node (recovering from any crash), binds the socket
(port 0 picks a free one), announces the URL, serves until SIGTERM or SIGINT, then shuts
down gracefully within ``shutdown_timeout_s`` (in-flight requests finish; an upload that
does not finish is dropped whole), closes the store and restores the process's previous
signal handlers. It returns normally after a signal, so the caller exits 0.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from metisnet.api.app import create_app
from metisnet.errors import ConfigError
from metisnet.node.config import DataNodeConfig
from metisnet.node.datanode import DataNode

__all__ = ["serve_data_node"]

log = logging.getLogger("metisnet.node")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def serve_data_node(config: DataNodeConfig, *,
                    announce: Callable[[str, DataNode], None] | None = None) -> None:
    """Serve ``config``'s node until SIGTERM/SIGINT (blocking)."""
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    node = DataNode(config)
    sock = None
    try:
        sock = _bind(config.host, config.port)
        port = sock.getsockname()[1]
        app = create_app(node)
        server = uvicorn.Server(uvicorn.Config(
            app, log_level=config.log_level.lower(), access_log=False,
            timeout_graceful_shutdown=int(config.shutdown_timeout_s), lifespan="off",
            server_header=False,
        ))
        url = f"http://{config.host}:{port}"
        if announce is not None:
            announce(url, node)
        log.info("data node %s listening on %s", node.node_id, url)

        # uvicorn re-raises a captured signal once it has shut down; route it to a no-op
        # handler of ours, then put back whatever the process had before.
        previous: dict[int, Any] = {}

        def _noted(sig: int, frame: FrameType | None) -> None:
            log.info("received signal %d; shut down", sig)

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _noted)
        try:
            server.run(sockets=[sock])
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    finally:
        if sock is not None:
            sock.close()
        node.close()
        log.info("data node stopped")
