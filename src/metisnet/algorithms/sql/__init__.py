"""SQL over private data: parse (sqlglot), check and plan with costs, run on the committee.

API::

    run_sql(query, tables: {name: [part per data node]}, k=1, security="semi-honest",
            domains=None, policies={table: TablePolicy(...)}) -> pandas.DataFrame
        # attrs: rounds, bytes_per_party (measured), estimated_rounds, ...
        # "EXPLAIN SELECT ..." returns the plan's lines and deals nothing
    explain(query, schemas, rows=None, k=1) -> str   # the secure plan, estimated rounds/bytes
    plan_query(query, schemas, rows=None, k=1) -> Plan  # checks; raises ValidationError
    check_policies(plan, policies, k) -> k            # raises PolicyViolation

``schemas`` maps a table to its columns and each column to its public domain (or None);
:func:`schemas_of` derives them from the data nodes' parts (``domains`` or categorical
dtypes). Modules: :mod:`.plan` (the supported SQL, policies, the cost model),
:mod:`.datanodes` (encoding and dealing), :mod:`.execute` (the committee program and the
in-process run), :mod:`.joins` (the private join: one key, unique in all tables but one),
:mod:`.secret_groups` (GROUP BY a secret-domain key), :mod:`.aggregates` (the final
aggregates on the committee: AVG/VARIANCE/STDDEV divided there, HAVING, the present flags;
only those are opened), :mod:`.receiver` (rows, ORDER BY, LIMIT on the opened values).

The same plan runs as a task of a network (program ``sql``): :mod:`metisnet.node.sql_task`,
:class:`metisnet.sdk.Client`, ``metis sql --network embedded|devnet``.
"""

from metisnet.algorithms.sql.execute import explain_tables, run_sql, schemas_of
from metisnet.algorithms.sql.plan import Plan, TablePolicy, check_policies, explain, plan_query

__all__ = ["Plan", "TablePolicy", "check_policies", "explain", "explain_tables", "plan_query",
           "run_sql", "schemas_of"]
