"""A data node on the network: REST API, chain agent and TLS endpoint in one process.

:func:`serve_network_data_node` runs what :func:`metisnet.api.server.serve_data_node` runs
(the :class:`~metisnet.node.datanode.DataNode` behind its REST app) plus the node's part in
on-chain tasks: a :class:`~metisnet.node.agents.DataNodeAgent` polled in a background thread
and a TLS :class:`~metisnet.net.endpoint.Endpoint` whose peers are pinned by the node
registry (:class:`~metisnet.node.chaintrust.ChainTrust`).

The requester hands the spec of an on-chain task to the node with
``POST /v1/chain-tasks/{task_id}`` (body: the spec JSON), signed like every other route
(:mod:`metisnet.node.auth`). The signer must be the task's requester on chain; the agent
checks the spec against the task's hash, datasets and receivers, then the owners'
policies, and answers with its vote. Once a spec is verified, its ``receiver_tls`` entries
are pinned so the outputs can reach receivers that are not registered nodes. The agent
keeps each accepted task in the node's store: a restarted node resumes its unfinished
tasks (and pins their receivers again) without the requester handing anything over again.
While the chain does not answer, the poll loop says so once and backs off
(:class:`~metisnet.node.compute.ChainWatch`).

The TOML file is the data node's ``[node]`` table (:class:`DataNodeConfig`, with
``chain_url``, ``chain_deployment`` and ``node_keystore`` set) plus an ``[agent]`` table
(:class:`AgentConfig`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import uvicorn
from eth_account import Account
from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from metisnet.api.app import authenticate, create_app
from metisnet.chain.backend import connect
from metisnet.chain.deploy import Contracts
from metisnet.config import load_config
from metisnet.errors import ConfigError, PolicyViolation, ValidationError
from metisnet.net.endpoint import Endpoint, EndpointConfig
from metisnet.net.identity import load_node_identity
from metisnet.node.agents import DataNodeAgent
from metisnet.node.chaintrust import ChainTrust
from metisnet.node.compute import ChainWatch, load_deployment, signal_stop, tls_sessions
from metisnet.node.config import DataNodeConfig
from metisnet.node.datanode import DataNode, NotFound
from metisnet.node.misbehave import arm_data
from metisnet.node.registrar import ChainRegistrar
from metisnet.node.taskspec import MAX_SPEC_BYTES, parse_spec
from metisnet.types import TaskId

__all__ = ["AgentConfig", "ChainTaskOut", "chain_task_router", "load_network_config",
           "serve_network_data_node"]

log = logging.getLogger("metisnet.node")

TaskIdPath = Annotated[int, PathParam(ge=1, lt=2**63, description="on-chain task id")]


@dataclass(frozen=True)
class AgentConfig:
    """The ``[agent]`` table: the node's TLS endpoint and chain polling."""

    host: str = "127.0.0.1"
    tls_port: int = 0
    poll_interval_s: float = 0.1
    session_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.tls_port <= 65535:
            raise ConfigError("tls_port must be between 0 and 65535")
        if min(self.poll_interval_s, self.session_timeout_s) <= 0:
            raise ConfigError("poll_interval_s and session_timeout_s must be positive")


def load_network_config(path: str | Path) -> tuple[DataNodeConfig, AgentConfig]:
    node = load_config(DataNodeConfig, path, table="node", env_prefix="METIS")
    agent = load_config(AgentConfig, path, table="agent", env_prefix="METIS_AGENT")
    if not node.chain_url.startswith(("http://", "https://")) or node.chain_deployment is None:
        raise ConfigError("a network data node needs chain_url (JSON-RPC) and chain_deployment")
    if node.node_keystore is None:
        raise ConfigError("a network data node needs node_keystore (its key and TLS identity)")
    return node, agent


class ChainTaskOut(BaseModel):
    task_id: int
    approve: bool
    reason: str = ""
    rule: str = ""


def chain_task_router(agent: DataNodeAgent, trust: ChainTrust,
                      lock: threading.Lock) -> APIRouter:
    """``POST /v1/chain-tasks/{task_id}``: the requester hands over an on-chain task's spec."""
    router = APIRouter(tags=["tasks"])

    def submit(caller: str, task_id: int, body: bytes) -> ChainTaskOut:
        spec = parse_spec(body)
        with lock:
            if task_id > agent.contracts.tasks.task_count():  # not a chain failure: a 404
                raise NotFound(f"no task {task_id} on chain")
            info = agent.contracts.tasks.get_task(TaskId(task_id))
            if info.requester.lower() != caller.lower():
                raise PolicyViolation("only the task's requester may hand over its spec",
                                      rule="requester")
            decision = agent.submit(task_id, spec)  # checks the spec against the chain
        trust.pin_receivers(spec)
        return ChainTaskOut(task_id=task_id, approve=decision.approve,
                            reason=decision.reason, rule=decision.rule)

    @router.post("/v1/chain-tasks/{task_id}", response_model=ChainTaskOut)
    async def deliver_spec(request: Request, task_id: TaskIdPath) -> ChainTaskOut:
        """The task's requester only: the spec of on-chain task ``task_id``; the node's vote."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_SPEC_BYTES:
            raise ValidationError(f"a task spec is at most {MAX_SPEC_BYTES} bytes")
        caller, _ = await authenticate(request)
        body = await request.body()
        return await run_in_threadpool(submit, caller, task_id, body)

    return router


def _bind(host: str, port: int) -> socket.socket:
    try:
        return socket.create_server((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _poll_loop(agent: DataNodeAgent, lock: threading.Lock, stop: threading.Event,
               interval: float, trust: ChainTrust, endpoint: Endpoint) -> None:
    checked = probed = time.monotonic()
    watch = ChainWatch(log, interval_s=interval)  # says when the chain stops answering
    watch.start(stop)
    while not stop.is_set():
        watch.begin()
        failed: BaseException | None = None
        try:
            with lock:
                agent.poll()
            if time.monotonic() - probed > 1.0:  # an idle agent calls nothing: probe
                probed = time.monotonic()
                agent.contracts.tasks.task_count()
            if time.monotonic() - checked > trust.ttl:
                checked = time.monotonic()
                trust.revalidate(endpoint)
        except Exception as exc:  # a chain hiccup must not end the node
            failed = exc
            if not watch.down:
                log.warning("agent poll failed: %s: %s", type(exc).__name__, exc)
        stop.wait(watch.end(failed))


def serve_network_data_node(config: DataNodeConfig, agent_cfg: AgentConfig, *,
                            announce: Callable[[str, DataNode], None] | None = None) -> None:
    """Serve REST, agent and TLS endpoint until SIGTERM/SIGINT (blocking)."""
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.node_keystore is None or config.chain_deployment is None:
        raise ConfigError("a network data node needs node_keystore and chain_deployment")
    ident = load_node_identity(config.node_keystore)
    chain = connect(config.chain_url)
    contracts = Contracts.attach(chain, load_deployment(config.chain_deployment),
                                 Account.from_key(ident.key.secret_bytes()))
    node = DataNode(config, registrar=ChainRegistrar(contracts.datasets))
    stop = threading.Event()
    endpoint: Endpoint | None = None
    poller: threading.Thread | None = None
    sock = None
    try:
        trust = ChainTrust(contracts.registry)
        endpoint = Endpoint(ident, trust, EndpointConfig(
            host=agent_cfg.host, port=agent_cfg.tls_port, timeout=agent_cfg.session_timeout_s))
        endpoint.start()
        agent = DataNodeAgent(node, contracts, tls_sessions(endpoint))
        for task_id in agent.resumed:  # unfinished tasks of an earlier run (a restart)
            trust.pin_receivers(agent.tasks[task_id].spec)
        arm_data(agent)  # TEST ONLY: a no-op unless a devnet chaos harness started us
        lock = threading.Lock()
        app: FastAPI = create_app(node)
        app.include_router(chain_task_router(agent, trust, lock))
        sock = _bind(config.host, config.port)
        url = f"http://{config.host}:{sock.getsockname()[1]}"
        server = uvicorn.Server(uvicorn.Config(
            app, log_level=config.log_level.lower(), access_log=False,
            timeout_graceful_shutdown=int(config.shutdown_timeout_s), lifespan="off",
            server_header=False))
        poller = threading.Thread(target=_poll_loop, name="metis-agent", daemon=True,
                                  args=(agent, lock, stop, agent_cfg.poll_interval_s,
                                        trust, endpoint))
        poller.start()
        if announce is not None:
            announce(url, node)
        log.info("data node %s: REST %s, TLS %s:%d", node.node_id, url, *endpoint.address)
        restore = signal_stop(stop)
        try:
            server.run(sockets=[sock])
        finally:
            restore()
    finally:
        stop.set()
        if poller is not None:
            poller.join(config.shutdown_timeout_s)
        if endpoint is not None:
            endpoint.close()
        if sock is not None:
            sock.close()
        node.close()
        log.info("data node stopped")
