"""SQL over private data: parse (sqlglot), plan with costs, run on the 3-member committee.

API::

    run_sql(query, tables: {name: [part per data node]}, k=1, security="semi-honest",
            domains=None, policies={table: TablePolicy(...)}) -> pandas.DataFrame
                                                   # attrs: rounds, bytes_per_party
    explain(query, schemas, rows=None) -> str      # the secure plan, estimated rounds/bytes
    plan_query(query, schemas, rows=None) -> Plan  # checks; raises ValidationError

``schemas`` maps a table to its columns and each column to its public domain (or None).
See :mod:`metisnet.algorithms.sql.plan` for the supported SQL and
:mod:`metisnet.algorithms.sql.execute` for the secure program and its error.
"""

from metisnet.algorithms.sql.execute import explain_tables, run_sql, schemas_of
from metisnet.algorithms.sql.plan import Plan, TablePolicy, check_policies, explain, plan_query

__all__ = ["Plan", "TablePolicy", "check_policies", "explain", "explain_tables", "plan_query",
           "run_sql", "schemas_of"]
