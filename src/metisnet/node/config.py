"""The data node's frozen configuration: one ``[node]`` table of a TOML file.

Read with :func:`load_data_node_config` (``metisnet.config.load_config`` underneath), so a
typo is an error and ``METIS_<FIELD>`` environment variables override single fields, e.g.
``METIS_PORT=8801``. Example ``data.toml``::

    [node]
    name = "hospital-a"
    data_dir = "/var/lib/metis/hospital-a"
    host = "127.0.0.1"
    port = 8700
    max_upload_bytes = 2147483648
    operators = ["0x..."]          # may add plaintext datasets and read the whole audit log
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from metisnet.config import load_config
from metisnet.errors import ConfigError

__all__ = ["DataNodeConfig", "load_data_node_config"]


@dataclasses.dataclass(frozen=True)
class DataNodeConfig:
    """Everything a data node needs to start; immutable once loaded."""

    name: str = "data-node"
    #: Holds ``node.db`` (SQLite), ``keys/``, ``datasets/`` (sealed Parquet) and ``tmp/``.
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    #: 0 picks a free port (printed on start).
    port: int = 8700
    #: Largest accepted upload body in bytes (plaintext add or hosted envelope).
    max_upload_bytes: int = 2 * 1024**3
    max_columns: int = 1024
    #: Requests whose signed timestamp is further than this from the node's clock are refused.
    clock_skew_s: int = 300
    #: An upload whose client sends less than 1 MiB in this long is aborted.
    upload_idle_timeout_s: float = 60.0
    #: Uploads ingested at once (each holds up to ~250 MiB while it runs); more get a 429.
    max_concurrent_uploads: int = 2
    #: Addresses (besides the node's own key) allowed to add plaintext datasets.
    operators: tuple[str, ...] = ()
    #: Whether owners without a node may host encrypted datasets here.
    allow_hosting: bool = True
    #: Addresses allowed to host; empty means any authenticated owner.
    hosting_owners: tuple[str, ...] = ()
    #: Dataset registry backend: "" or "local" (SQLite, no chain) or a chain URL ("embedded").
    chain_url: str = ""
    #: Plaintext bytes per AES-256-GCM chunk at rest and in hosted envelopes.
    chunk_bytes: int = 1024 * 1024
    #: Rows per Parquet row group in the stored files.
    row_group_rows: int = 262_144
    #: Master key file (wraps the per-dataset data keys); default ``<data_dir>/keys/master.key``.
    master_key_file: Path | None = None
    #: Node key file (secp256k1, hex); default ``<data_dir>/keys/node.key``.
    node_key_file: Path | None = None
    #: If set, the node key comes from this encrypted keystore of ``metisnet.net.identity``
    #: (password from ``METIS_KEY_PASSWORD``) instead of ``node_key_file``.
    node_keystore: Path | None = None
    #: For a JSON-RPC ``chain_url``: the deployment file (``metisnet.chain.deploy``).
    chain_deployment: Path | None = None
    shutdown_timeout_s: float = 10.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("node port must be between 0 and 65535")
        if self.max_upload_bytes < 1:
            raise ConfigError("max_upload_bytes must be positive")
        if not 4096 <= self.chunk_bytes <= 64 * 1024 * 1024:
            raise ConfigError("chunk_bytes must be between 4 KiB and 64 MiB")
        if min(self.row_group_rows, self.max_columns, self.clock_skew_s,
               self.max_concurrent_uploads) < 1:
            raise ConfigError("row_group_rows, max_columns, clock_skew_s and "
                              "max_concurrent_uploads must be positive")
        if self.log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
            raise ConfigError(f"unknown log_level {self.log_level!r}")

    @property
    def master_key_path(self) -> Path:
        return self.master_key_file or self.data_dir / "keys" / "master.key"

    @property
    def node_key_path(self) -> Path:
        return self.node_key_file or self.data_dir / "keys" / "node.key"


def load_data_node_config(path: str | Path) -> DataNodeConfig:
    """Load the ``[node]`` table of ``path``; ``METIS_*`` environment variables override."""
    return load_config(DataNodeConfig, path, table="node", env_prefix="METIS")
