"""The compute node as a process: TLS endpoint, chain agent, graceful shutdown.

:func:`run_compute_node` loads the node's keystore (password from ``METIS_KEY_PASSWORD``),
connects to the chain at ``chain_url`` with the deployment file, starts a TLS
:class:`~metisnet.net.endpoint.Endpoint` whose peers are pinned by the node registry
(:class:`~metisnet.node.chaintrust.ChainTrust`), and polls a
:class:`~metisnet.node.agents.ComputeAgent` until SIGTERM or SIGINT; then it stops polling,
lets a running session finish for up to ``shutdown_timeout_s``, closes the endpoint and
restores the previous signal handlers. In malicious-mode sessions the agent signs its
claims with the node key (:class:`~metisnet.node.claims.NodeSigner`), so a receiver can
check them against the registry and slash a member they prove to have equivocated.
Example ``compute.toml``::

    [compute]
    name = "compute-0"
    keystore = "/var/lib/metis/compute-0/node.keystore"
    chain_url = "http://127.0.0.1:8545"
    chain_deployment = "/var/lib/metis/deployment.json"
    port = 7101
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address

from metisnet.chain.backend import connect
from metisnet.chain.deploy import Contracts, Deployment
from metisnet.config import load_config
from metisnet.errors import ConfigError
from metisnet.net.channel import Channel
from metisnet.net.endpoint import Endpoint, EndpointConfig
from metisnet.net.identity import NodeIdentity, load_node_identity
from metisnet.node.agents import ComputeAgent, SessionOpener
from metisnet.node.chaintrust import ChainTrust
from metisnet.node.misbehave import arm_compute
from metisnet.types import NodeId

__all__ = [
    "ComputeNodeConfig",
    "load_compute_config",
    "load_deployment",
    "run_compute_node",
    "signal_stop",
    "tls_sessions",
]

log = logging.getLogger("metisnet.compute")


@dataclass(frozen=True)
class ComputeNodeConfig:
    """Everything a compute node needs to start; the ``[compute]`` table of its TOML."""

    name: str = "compute"
    #: Encrypted keystore of :mod:`metisnet.net.identity` (its TLS key sits beside it).
    keystore: Path = Path("node.keystore")
    chain_url: str = "http://127.0.0.1:8545"
    chain_deployment: Path = Path("deployment.json")
    host: str = "127.0.0.1"
    port: int = 0
    poll_interval_s: float = 0.1
    #: recv timeout of a session (a silent peer fails the session after this)
    session_timeout_s: float = 60.0
    shutdown_timeout_s: float = 10.0
    log_level: str = "info"
    #: fault injection (devnets, tests): false makes the node a no-show in every draw
    acknowledge: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("compute node port must be between 0 and 65535")
        if min(self.poll_interval_s, self.session_timeout_s) <= 0:
            raise ConfigError("poll_interval_s and session_timeout_s must be positive")
        if self.log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
            raise ConfigError(f"unknown log_level {self.log_level!r}")


def load_compute_config(path: str | Path) -> ComputeNodeConfig:
    """The ``[compute]`` table of ``path``; ``METIS_*`` environment variables override."""
    return load_config(ComputeNodeConfig, path, table="compute", env_prefix="METIS")


def load_deployment(path: Path) -> Deployment:
    try:
        return Deployment.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError):
        raise ConfigError(f"cannot read the deployment file {path}") from None


def tls_sessions(endpoint: Endpoint) -> SessionOpener:
    """A :data:`SessionOpener` over ``endpoint`` (session members are lowercased ids)."""

    def open_session(sid: bytes, members: Sequence[str]) -> Channel:
        return endpoint.session(sid, [NodeId(to_checksum_address(m)) for m in members])

    return open_session


def signal_stop(stop: threading.Event) -> Callable[[], None]:
    """Route SIGTERM/SIGINT to ``stop``; returns a function restoring the old handlers."""
    previous: dict[int, Any] = {}

    def _handler(sig: int, frame: FrameType | None) -> None:
        log.info("received signal %d; shutting down", sig)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, _handler)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def run_compute_node(cfg: ComputeNodeConfig, *, stop: threading.Event | None = None,
                     identity: NodeIdentity | None = None,
                     announce: Callable[[str, tuple[str, int]], None] | None = None) -> None:
    """Serve until ``stop`` is set or a signal arrives (blocking)."""
    stop = stop or threading.Event()
    ident = identity or load_node_identity(cfg.keystore)
    chain = connect(cfg.chain_url)
    account = Account.from_key(ident.key.secret_bytes())
    contracts = Contracts.attach(chain, load_deployment(cfg.chain_deployment), account)
    trust = ChainTrust(contracts.registry)
    endpoint = Endpoint(ident, trust, EndpointConfig(host=cfg.host, port=cfg.port,
                                                     timeout=cfg.session_timeout_s))
    endpoint.start()
    agent = ComputeAgent(contracts, tls_sessions(endpoint),
                         spec_timeout=cfg.session_timeout_s,
                         accept=lambda task_id: cfg.acknowledge,
                         on_spec=lambda task_id, spec: trust.pin_receivers(spec))
    arm_compute(agent)  # TEST ONLY: a no-op unless a devnet chaos harness started us
    restore = signal_stop(stop) if threading.current_thread() is threading.main_thread() \
        else (lambda: None)
    try:
        if announce is not None:
            announce(str(ident.node_id), endpoint.address)
        log.info("compute node %s (%s) on %s:%d", cfg.name, ident.node_id, *endpoint.address)
        checked = time.monotonic()
        while not stop.is_set():
            try:
                agent.poll()
                if time.monotonic() - checked > trust.ttl:
                    checked = time.monotonic()
                    trust.revalidate(endpoint)
            except Exception as exc:  # a chain hiccup must not end the node
                log.warning("poll failed: %s: %s", type(exc).__name__, exc)
            stop.wait(cfg.poll_interval_s)
        for t in agent.tasks.values():  # let a running session end before the endpoint
            if t.worker is not None:
                t.worker.thread.join(cfg.shutdown_timeout_s)
    finally:
        endpoint.close()
        restore()
        log.info("compute node %s stopped", cfg.name)
