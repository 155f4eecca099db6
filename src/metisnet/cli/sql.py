"""``metis sql``: SQL over private data held by three data nodes.

The demo tables (each split across 3 data nodes, rows never pooled in the clear):

* ``people(id, region, dept, age, income, score)``: ``region`` in north/south/east/west,
  ``dept`` in 1..5 (public domains, so both can be GROUP BY keys);
* ``orders(id, level, spend)``: ``id`` joins ``people.id`` (a key join), ``level`` in 1..3.

Where the query runs (``--network``):

* ``local`` (default): the committee is three threads over the in-memory channel, the
  data nodes plain function calls (the algorithm alone, fastest);
* ``embedded``: a whole network in this process (:class:`~metisnet.node.localnet.
  LocalNetwork`: embedded chain, data nodes with sealed storage and policies, 5 compute
  nodes); the demo tables are registered as datasets and the query runs as a task
  (:meth:`metisnet.sdk.Client.sql`);
* ``devnet``: the running devnet in ``--devnet-dir`` (``metis devnet up``): the demo tables
  are hosted on its 3 data nodes once (their ids kept in ``sql-demo.json`` there), then the
  query runs as a task over TLS between the node processes.

``--security auto`` runs malicious mode (security with abort) unless the query needs a
semi-honest step (a JOIN, GROUP BY a key without a public domain), and says which it used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from metisnet.cli._group import main

__all__ = ["demo_tables", "sql"]

DOMAINS: dict[str, list[Any]] = {"region": ["north", "south", "east", "west"],
                                 "dept": [1, 2, 3, 4, 5], "level": [1, 2, 3]}


def demo_tables(rows: int, seed: int = 7) -> dict[str, list[Any]]:
    """Three synthetic data nodes' parts of ``people`` and ``orders`` (plaintext demo data)."""
    import numpy as np
    import pandas as pd

    gen = np.random.default_rng(seed)  # demo data only, not protocol randomness
    ids = gen.permutation(4 * rows)[:rows]
    people = pd.DataFrame({
        "id": ids,
        "region": gen.choice(DOMAINS["region"][:3], rows),
        "dept": gen.integers(1, 6, rows),
        "age": gen.integers(18, 80, rows),
        "income": np.round(gen.normal(50, 12, rows), 2),
        "score": np.round(gen.uniform(0, 10, rows), 1),
    })
    m = max(rows // 2, 1)
    oids = np.concatenate([gen.choice(ids, m, replace=False), 4 * rows + np.arange(m // 4)])
    gen.shuffle(oids)
    orders = pd.DataFrame({"id": oids, "level": gen.integers(1, 4, oids.size),
                           "spend": np.round(gen.uniform(0, 100, oids.size), 2)})

    def split(df: Any) -> list[Any]:
        cuts = np.array_split(np.arange(len(df)), 3)
        return [df.iloc[c].reset_index(drop=True) for c in cuts]

    return {"people": split(people), "orders": split(orders)}


def _union(tables: dict[str, list[Any]]) -> Any:
    import duckdb
    import pandas as pd

    con = duckdb.connect()
    for name, parts in tables.items():
        con.register(name, pd.concat(parts, ignore_index=True))
    return con


def _schema(tables: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    return {name: {str(c): DOMAINS.get(str(c)) for c in parts[0].columns}
            for name, parts in tables.items()}


def _security(query: str, tables: dict[str, list[Any]], choice: str) -> str:
    if choice != "auto":
        return choice
    from metisnet.algorithms.sql.plan import plan_query

    plan = plan_query(query, _schema(tables))
    return "semi-honest" if plan.join is not None or plan.secret_group else "malicious"


_OPEN_SQL = {"allowed_programs": ["sql"], "allowed_columns": ["*"],
             "allowed_requesters": ["*"], "min_group_size": 1}


def _embedded(tables: dict[str, list[Any]], root: Path) -> tuple[Any, dict[str, Any]]:
    """A local network with the demo tables as datasets of its 3 data nodes."""
    import io

    from metisnet.node.localnet import LocalNetwork
    from metisnet.node.policy import Policy
    from metisnet.sdk import Table

    net = LocalNetwork(root, rows=[10, 10, 10])
    out = {}
    for name, parts in tables.items():
        ids = []
        for i, (agent, part) in enumerate(zip(net.data, parts, strict=True)):
            rec = agent.node.add_dataset(io.BytesIO(part.to_csv(index=False).encode()),
                                         owner=agent.address, name=f"{name}-{i}",
                                         policy=Policy.from_mapping(_OPEN_SQL))
            ids.append(rec.id)
        out[name] = Table(tuple(ids), _schema(tables)[name], rows=sum(len(p) for p in parts))
    return net, out


def _devnet_tables(client: Any, state: Any, tables: dict[str, list[Any]], rows: int
                   ) -> dict[str, Any]:
    """The demo tables hosted on the devnet's data nodes (once per devnet and size)."""
    import json
    import tempfile

    from metisnet.node.identity import NodeKey
    from metisnet.sdk import NodeClient, Table

    cache = Path(state.root) / "sql-demo.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    key = f"{rows}:{state.chain_url}"
    if key not in known:
        signer = NodeKey(bytes(client.account.key))
        data = state.by_role("data")
        if len(data) < 3:
            raise click.ClickException("the devnet needs 3 data nodes for the demo tables")
        entry: dict[str, list[str]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, parts in tables.items():
                entry[name] = []
                for i, (proc, part) in enumerate(zip(data, parts, strict=False)):
                    path = Path(tmp) / f"{name}-{i}.csv"
                    part.to_csv(path, index=False)
                    with NodeClient(proc.rest_url, signer) as nc:
                        rec = nc.host_dataset(path, name=f"{name}-{i}")
                        nc.set_policy(rec["dataset_id"], _OPEN_SQL)
                    entry[name].append(rec["dataset_id"])
        known[key] = entry
        cache.write_text(json.dumps(known, indent=1))
    return {name: Table(tuple(ids), _schema(tables)[name],
                        rows=sum(len(p) for p in tables[name]))
            for name, ids in known[key].items()}


@main.command("sql")
@click.argument("query")
@click.option("--explain", "explain_only", is_flag=True,
              help="print the secure plan with estimated rounds and bytes; compute nothing")
@click.option("--rows", default=300, show_default=True, help="rows of the demo table people")
@click.option("-k", "--min-group", "k", default=1, show_default=True,
              help="minimum group size: smaller groups are suppressed")
@click.option("--security", type=click.Choice(["auto", "semi-honest", "malicious"]),
              default="auto", show_default=True,
              help="committee mode; auto: malicious unless the query needs a semi-honest "
                   "step (JOIN, GROUP BY a key without a domain)")
@click.option("--network", type=click.Choice(["local", "embedded", "devnet"]),
              default="local", show_default=True,
              help="local: the committee as threads; embedded: a whole network in this "
                   "process, the query as a task; devnet: the running devnet")
@click.option("--devnet-dir", type=click.Path(path_type=Path), default=Path(".devnet"),
              show_default=True, help="the devnet's directory (--network devnet)")
@click.option("--check/--no-check", default=False, show_default=True,
              help="also run the query on the plaintext union with DuckDB, for comparison")
def sql(query: str, explain_only: bool, rows: int, k: int, security: str, network: str,
        devnet_dir: Path, check: bool) -> None:
    """Run QUERY over the demo tables people and orders, held by 3 data nodes."""
    from metisnet.algorithms.sql import explain_tables, run_sql
    from metisnet.algorithms.sql.plan import strip_explain

    q, explained = strip_explain(query)
    explain_only = explain_only or explained
    tables = demo_tables(rows)
    if explain_only:
        click.echo(explain_tables(q, tables, DOMAINS, k=k))
        return
    mode = _security(q, tables, security)
    if network == "local":
        df = run_sql(q, tables, k=k, security=mode, domains=DOMAINS)
        click.echo(df.to_string(index=False))
        click.echo(f"({len(df)} row(s); {df.attrs['rounds']} rounds, "
                   f"{df.attrs['bytes_per_party']:,} bytes sent by the busiest member; "
                   f"committee {mode}; released {', '.join(df.attrs['released'])})")
    else:
        df = _on_network(q, tables, k, mode, network, devnet_dir, rows)
        click.echo(df.to_string(index=False))
        t = df.attrs["timings"]
        click.echo(f"({len(df)} row(s); task {df.attrs['task_id']} verified and settled in "
                   f"{t.get('total', 0.0):.1f} s (consensus {t.get('consensus', 0.0):.1f} s, "
                   f"sharing+computing {t.get('sharing+computing', 0.0):.1f} s); committee "
                   f"{mode}; released {', '.join(df.attrs['released'])})")
    if check:
        click.echo("DuckDB on the plaintext union:")
        click.echo(_union(tables).execute(q).df().to_string(index=False))


def _on_network(q: str, tables: dict[str, list[Any]], k: int, mode: str, network: str,
                devnet_dir: Path, rows: int) -> Any:
    from metisnet.sdk import Client

    if network == "embedded":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            net, catalog = _embedded(tables, Path(tmp))
            try:
                return Client(net, catalog).sql(q, k=k, security=mode)
            finally:
                net.close()
    from metisnet.node.devnet import DevnetRequester, load_state

    state = load_state(devnet_dir)
    if state is None:
        raise click.ClickException(f"no devnet runs in {devnet_dir}; start one with "
                                   "`metis devnet up`")
    with DevnetRequester(state) as client:
        catalog = _devnet_tables(client, state, tables, rows)
        return Client(client, catalog).sql(q, k=k, security=mode)
