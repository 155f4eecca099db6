"""``metis sql``: SQL over private data, here against three in-process synthetic data nodes.

The demo tables (each split across 3 data nodes, rows never pooled in the clear):

* ``people(id, region, dept, age, income, score)``: ``region`` in north/south/east/west,
  ``dept`` in 1..5 (public domains, so both can be GROUP BY keys);
* ``orders(id, level, spend)``: ``id`` joins ``people.id`` (a key join), ``level`` in 1..3.

The committee is three threads over the in-memory channel. Wiring SQL into the task flow
(data nodes and compute nodes of a running network) is not done yet.
"""

from __future__ import annotations

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


@main.command("sql")
@click.argument("query")
@click.option("--explain", "explain_only", is_flag=True,
              help="print the secure plan with estimated rounds and bytes; compute nothing")
@click.option("--rows", default=300, show_default=True, help="rows of the demo table people")
@click.option("-k", "--min-group", "k", default=1, show_default=True,
              help="minimum group size: smaller groups are suppressed")
@click.option("--security", type=click.Choice(["semi-honest", "malicious"]),
              default="semi-honest", show_default=True,
              help="committee mode (a JOIN runs semi-honest only)")
@click.option("--check/--no-check", default=False, show_default=True,
              help="also run the query on the plaintext union with DuckDB, for comparison")
def sql(query: str, explain_only: bool, rows: int, k: int, security: str, check: bool) -> None:
    """Run QUERY over the demo tables people and orders, held by 3 data nodes."""
    from metisnet.algorithms.sql import explain_tables, run_sql
    from metisnet.algorithms.sql.plan import strip_explain

    q, explained = strip_explain(query)
    explain_only = explain_only or explained
    tables = demo_tables(rows)
    if explain_only:
        click.echo(explain_tables(q, tables, DOMAINS, k=k))
        return
    df = run_sql(q, tables, k=k, security=security, domains=DOMAINS)
    click.echo(df.to_string(index=False))
    click.echo(f"({len(df)} row(s); {df.attrs['rounds']} rounds, "
               f"{df.attrs['bytes_per_party']:,} bytes sent by the busiest member; "
               f"committee {security})")
    if check:
        import duckdb
        import pandas as pd

        con = duckdb.connect()
        for name, parts in tables.items():
            con.register(name, pd.concat(parts, ignore_index=True))
        click.echo("DuckDB on the plaintext union:")
        click.echo(con.execute(q).df().to_string(index=False))
