"""``metis dataset``: add, host, list, set policy, revoke; keys for owners without a node.

A command talks to a node either as its operator (``--config data.toml``: the node's URL
and key) or as anyone holding a key (``--node URL --key FILE``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from metisnet.cli._group import main
from metisnet.errors import ConfigError

__all__ = ["dataset"]

_path = click.Path(exists=True, dir_okay=False, path_type=Path)


def _conn_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                      help="act as the operator of the node configured here")(fn)
    fn = click.option("--node", "node_url", help="the node's URL, e.g. http://127.0.0.1:8700")(fn)
    fn = click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
                      help="your key file (metis dataset keygen)")(fn)
    return fn


@contextmanager
def _client(config_path: Path | None, node_url: str | None,
            key_path: Path | None) -> Iterator[Any]:
    from metisnet.node.identity import load_signing_key
    from metisnet.sdk.client import NodeClient

    if config_path is not None:
        from metisnet.node.config import load_data_node_config

        cfg = load_data_node_config(config_path)
        url = node_url or f"http://{cfg.host}:{cfg.port}"
        key = load_signing_key(key_path or cfg.node_key_path)
    else:
        if not node_url or not key_path:
            raise ConfigError("give --config data.toml, or both --node URL and --key FILE")
        url, key = node_url, load_signing_key(key_path)
    client = NodeClient(url, key)
    try:
        yield client
    finally:
        client.close()


def _load_json(value: str | None, what: str) -> Any:
    if value is None:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    if not value.startswith("@") and Path(value).is_file():
        text = Path(value).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{what} is not valid JSON") from None


def _show(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2))


def _upload(fn: Callable[..., dict[str, Any]], path: Path, **kw: Any) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"uploading {path.name}", total=path.stat().st_size)
        return fn(path, progress=lambda n: bar.advance(task, n), **kw)


@main.group()
def dataset() -> None:
    """Manage datasets on a data node."""


@dataset.command("keygen")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def keygen(out: Path) -> None:
    """Create an owner key file (secp256k1, mode 0600) and print its address."""
    from metisnet.node.identity import NodeKey, write_signing_key

    key = NodeKey.generate()
    write_signing_key(out, key)
    click.echo(key.address)


@dataset.command("add")
@click.argument("file", type=_path)
@click.option("--name", required=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default=None)
@click.option("--schema", default=None, help='JSON {"col": "int64", ...}, a file, or @file')
@click.option("--policy", default=None, help="policy JSON, a file, or @file")
@_conn_options
def add(file: Path, name: str, fmt: str | None, schema: str | None, policy: str | None,
        config_path: Path | None, node_url: str | None, key_path: Path | None) -> None:
    """Add a plaintext CSV/Parquet dataset to a node you operate (stored encrypted)."""
    with _client(config_path, node_url, key_path) as c:
        rec = _upload(c.add_dataset, file, name=name, fmt=fmt,
                      schema=_load_json(schema, "--schema"))
        if policy is not None:
            rec = c.set_policy(rec["dataset_id"], _load_json(policy, "--policy"))
        _show(rec)


@dataset.command("host")
@click.argument("file", type=_path)
@click.option("--name", required=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default=None)
@click.option("--schema", default=None, help='JSON {"col": "int64", ...}, a file, or @file')
@click.option("--policy", default=None, help="policy JSON, a file, or @file")
@click.option("--node-pubkey", default=None,
              help="the node's public key (hex) as registered; default: ask the node")
@_conn_options
def host(file: Path, name: str, fmt: str | None, schema: str | None, policy: str | None,
         node_pubkey: str | None, config_path: Path | None, node_url: str | None,
         key_path: Path | None) -> None:
    """Encrypt a dataset to a node's public key and host it there; you keep control."""
    pub = None
    if node_pubkey:
        try:
            pub = bytes.fromhex(node_pubkey.removeprefix("0x"))
        except ValueError:
            raise ConfigError("--node-pubkey must be hex") from None
    with _client(config_path, node_url, key_path) as c:
        rec = _upload(c.host_dataset, file, name=name, fmt=fmt,
                      schema=_load_json(schema, "--schema"), node_public_key=pub)
        if policy is not None:
            rec = c.set_policy(rec["dataset_id"], _load_json(policy, "--policy"))
        _show(rec)


@dataset.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@_conn_options
def list_(as_json: bool, config_path: Path | None, node_url: str | None,
          key_path: Path | None) -> None:
    """List the node's datasets."""
    from rich.console import Console
    from rich.table import Table

    with _client(config_path, node_url, key_path) as c:
        rows = c.list_datasets()
    if as_json:
        _show(rows)
        return
    table = Table(title="datasets")
    for col in ("dataset_id", "name", "owner", "rows", "columns", "hosted", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["dataset_id"], r["name"], r["owner"], str(r["row_count"]),
                      str(len(r["columns"])), "yes" if r["hosted"] else "no", r["status"])
    Console().print(table)


@dataset.command("policy")
@click.argument("dataset_id")
@click.option("--set", "new_policy", default=None, help="policy JSON, a file, or @file")
@_conn_options
def policy(dataset_id: str, new_policy: str | None, config_path: Path | None,
           node_url: str | None, key_path: Path | None) -> None:
    """Show a dataset's policy, or (owner only) replace it with --set."""
    with _client(config_path, node_url, key_path) as c:
        if new_policy is None:
            _show(c.get_policy(dataset_id))
        else:
            _show(c.set_policy(dataset_id, _load_json(new_policy, "--set"))["policy"])


@dataset.command("revoke")
@click.argument("dataset_id")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@_conn_options
def revoke(dataset_id: str, yes: bool, config_path: Path | None, node_url: str | None,
           key_path: Path | None) -> None:
    """Revoke a dataset for good (owner only): its key and file are destroyed."""
    if not yes:
        click.confirm(f"revoke {dataset_id} for good?", abort=True)
    with _client(config_path, node_url, key_path) as c:
        _show(c.revoke(dataset_id))


@dataset.command("audit")
@click.option("--after", type=int, default=0, show_default=True, help="entries after this seq")
@click.option("--limit", type=int, default=100, show_default=True)
@_conn_options
def audit(after: int, limit: int, config_path: Path | None, node_url: str | None,
          key_path: Path | None) -> None:
    """Show the node's audit log (all of it for operators, your entries otherwise)."""
    with _client(config_path, node_url, key_path) as c:
        for e in c.audit(after=after, limit=limit):
            click.echo(f"{e['seq']:>6} {e['ts']} {e['actor'] or '-':42} {e['action']:24} "
                       f"{e['outcome']:8} {e['rule'] or '-':14} {e['dataset_id'] or '-'}")
