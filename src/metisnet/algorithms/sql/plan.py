"""Parse a SQL query (sqlglot) and plan it as secure operations, before any data moves.

The supported subset (everything else is refused with a
:class:`~metisnet.errors.ValidationError` naming the construct):

* ``SELECT`` of aggregates ``COUNT(*)``, ``COUNT(e)``, ``COUNT(DISTINCT key)``, ``SUM``,
  ``AVG``, ``MIN``, ``MAX``, ``VARIANCE``/``VAR_SAMP``, ``VAR_POP``, ``STDDEV``/
  ``STDDEV_SAMP``, ``STDDEV_POP`` over arithmetic (``+ - * /``) of numeric columns and
  constants, and arithmetic over those aggregates, from one table (the union of the rows of
  every data node).
* ``WHERE`` with ``= <> < <= > >=``, ``BETWEEN``, ``IN (constants)``, ``AND``, ``OR``,
  ``NOT`` on secret columns: each comparison is a secret 0/1 mask, ``AND`` a product,
  ``OR`` ``a + b - ab``, ``NOT`` ``1 - a``.
* ``GROUP BY`` key columns whose domains are public (declared in the schema): each key is
  one-hot encoded in MPC against its domain (several keys: row-wise outer products), the
  mask folded in; or ``GROUP BY`` one numeric key without a public domain: oblivious sort
  and segmented scans (:mod:`metisnet.algorithms.sql.secret_groups`, semi-honest).
* ``HAVING``, ``ORDER BY`` and ``LIMIT`` on the released per-group results.
* ``FROM a JOIN b ON a.x = b.x [JOIN c ON b.y = c.y ...]``: inner key joins of up to 4
  tables, each ON equating a column of the joined table with one of an earlier table, the
  key unique on at least one side of each join (one-to-one or one-to-many; many-to-many is
  refused when the matcher sees it), by the committee's private join
  (:mod:`metisnet.algorithms.sql.joins`, semi-honest), one join after the other;
  columns are then named ``alias.column``.
* ``COUNT(DISTINCT c)`` for a column with a public domain.

Data owners' :class:`TablePolicy` (columns, aggregates, joins, minimum group size) is
checked against the plan before any share moves (:func:`check_policies`).

Security modes: everything above runs in malicious mode (security with abort: every product
and AND gate of the committee is checked before any opening, :mod:`metisnet.mpc.malicious`)
except the JOIN (the committee's private join: shuffle and matcher) and GROUP BY a key
without a public domain (shuffle-then-sort), which are semi-honest only; a plan with either
is refused in malicious mode, and ``EXPLAIN`` says which applies.

Output policy: groups with fewer than ``k`` rows are suppressed obliviously (released as
empty, so they vanish from the result). Row-level output (a ``SELECT`` of plain columns
without ``GROUP BY``) is never released.

Released to the receiver (stated in ``EXPLAIN``): per group a present flag
(``count >= max(k, 1)``, and HAVING) and the final value of every aggregate the query names
in SELECT or ORDER BY, computed on the committee (:mod:`metisnet.algorithms.sql.aggregates`:
AVG, VARIANCE and STDDEV are divided there); a group's count only when ``COUNT`` is asked,
and for a sample variance whether the group has two rows (SQL's NULL). HAVING runs on the
committee (folded into the present flag, its aggregates never opened) when it compares
aggregates, the group key and constants with + - and constant factors; otherwise (a
sample variance, a product or quotient of aggregates) the receiver evaluates it and its
aggregates are opened too. The receiver evaluates the arithmetic over the opened
aggregates, ORDER BY and LIMIT.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metisnet.errors import PolicyViolation, ValidationError

__all__ = ["Agg", "JoinSide", "Plan", "Schema", "Step", "TablePolicy", "check_policies",
           "explain", "plan_query", "read_columns", "same_agg", "strip_explain"]

#: table name -> column name -> public domain (a sequence of values), or None (numeric, no domain)
Schema = Mapping[str, Mapping[str, Sequence[Any] | None]]

#: at most this many groups (the product of the GROUP BY keys' domain sizes)
MAX_GROUPS = 4096


def _sqlglot() -> Any:
    try:
        import sqlglot
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from metisnet.errors import DependencyMissing
        raise DependencyMissing("sqlglot==30.30.0", "sql") from exc
    return sqlglot


@dataclass(frozen=True)
class Agg:
    """One aggregate of the query; ``key`` is its canonical SQL text."""

    func: str  # count, count_distinct, sum, avg, min, max, var_samp, var_pop, std_samp, std_pop
    arg: Any  # a sqlglot expression over columns, or None for COUNT(*)
    key: str


@dataclass(frozen=True)
class Step:
    """One secure step of the plan, with its estimated cost per party."""

    what: str
    rounds: int
    bytes_per_party: int


@dataclass(frozen=True)
class JoinSide:
    """One table of an inner key join: its columns are named ``alias.column`` in the plan."""

    alias: str
    table: str
    keys: tuple[str, ...]  # the raw columns this table is joined on (each dealt as tags)
    columns: tuple[tuple[str, str], ...]  # (name in the plan, raw column) dealt as payload


@dataclass
class Plan:
    """A checked query: what the committee computes and what the receiver does after."""

    sql: str
    table: str
    rows: int
    columns: tuple[str, ...]  # columns the data nodes deal
    domains: dict[str, tuple[Any, ...]]  # public domains of the columns read
    where: Any  # sqlglot condition or None
    group_by: tuple[str, ...]  # GROUP BY key columns (empty: one group)
    aggs: tuple[Agg, ...]
    outputs: tuple[tuple[str, Any], ...]  # (name, expression over aggregates / group key)
    having: Any
    order: tuple[tuple[Any, bool], ...]  # (expression, descending)
    limit: int | None
    join: tuple[JoinSide, ...] | None = None
    #: per JOIN, in order: (earlier side, its key index, joined side, its key index)
    join_on: tuple[tuple[int, int, int, int], ...] = ()
    secret_group: bool = False  # GROUP BY one key without public domain (oblivious sort)
    k: int = 1  # the minimum group size applied (requester's and policies')
    steps: list[Step] = field(default_factory=list)
    #: HAVING evaluated on the committee (folded into the present flags), not by the receiver
    having_mpc: bool = False
    #: keys of the aggregates opened to the receiver (None: all): those of SELECT and
    #: ORDER BY, and of HAVING when the receiver evaluates it
    released: tuple[str, ...] | None = None

    @property
    def released_aggs(self) -> tuple[Agg, ...]:
        return tuple(a for a in self.aggs if self.released is None or a.key in self.released)

    def with_k(self, k: int) -> Plan:
        """This plan with minimum group size ``k`` (and its costs)."""
        self.k = k
        self.steps = _cost(self)
        return self

    @property
    def groups(self) -> int:
        """The number of groups (public domains), or at most ``rows`` (a secret domain)."""
        if self.secret_group:
            return self.rows
        return math.prod(len(self.domains[key]) for key in self.group_by)

    @property
    def rounds(self) -> int:
        return sum(s.rounds for s in self.steps)

    @property
    def bytes_per_party(self) -> int:
        return sum(s.bytes_per_party for s in self.steps)


# -- validation helpers ----------------------------------------------------------------------
def _refuse(node: Any, why: str = "") -> ValidationError:
    name = type(node).__name__.upper()
    try:
        text = node.sql(dialect="duckdb")
    except Exception:
        text = str(node)
    text = text if len(text) < 60 else text[:57] + "..."
    tail = f": {why}" if why else ""
    return ValidationError(f"unsupported SQL construct {name} in `{text}`{tail}")


def agg_func(node: Any) -> str | None:
    from sqlglot import exp
    table = [(exp.Count, "count"), (exp.Sum, "sum"), (exp.Avg, "avg"), (exp.Min, "min"),
             (exp.Max, "max"), (exp.VariancePop, "var_pop"), (exp.Variance, "var_samp"),
             (exp.StddevPop, "std_pop"), (exp.StddevSamp, "std_samp"), (exp.Stddev, "std_samp")]
    for cls, name in table:
        if type(node) is cls:
            return name
    return None


def same_agg(a: Agg, node: Any) -> bool:
    """Whether the aggregate expression ``node`` is the planned aggregate ``a``."""
    from sqlglot import exp
    fn = agg_func(node)
    arg = node.this
    if fn == "count":
        if isinstance(arg, exp.Distinct):
            name = arg.expressions[0].name
            return a.func == "count_distinct" and a.key == f"count(distinct {name})"
        return a.func == "count"
    return (a.func == fn and a.arg is not None
            and a.arg.sql(dialect="duckdb") == arg.sql(dialect="duckdb"))


class _Checker:
    def __init__(self, table: str, cols: Mapping[str, Sequence[Any] | None]) -> None:
        self.table = table
        self.cols = cols
        self.used: dict[str, None] = {}

    def column(self, node: Any) -> str:
        if node.table and node.table != self.table:
            raise ValidationError(f"unknown table `{node.table}` (only `{self.table}` is read)")
        name = str(node.name)
        if name not in self.cols:
            raise ValidationError(f"unknown column `{name}` of table `{self.table}`")
        self.used[name] = None
        return name

    def is_categorical(self, name: str) -> bool:
        dom = self.cols[name]
        return dom is not None and any(isinstance(v, str) for v in dom)

    def value(self, node: Any) -> None:
        """A row-level numeric expression: columns, numbers, + - * /, unary minus."""
        from sqlglot import exp
        if isinstance(node, exp.Paren):
            return self.value(node.this)
        if isinstance(node, exp.Column):
            name = self.column(node)
            if self.is_categorical(name):
                raise ValidationError(f"column `{name}` holds categories; only = <> IN apply")
            return None
        if isinstance(node, exp.Literal):
            if node.is_string:
                raise _refuse(node, "a string is not a number (a text column needs a declared "
                              "domain of values to be compared with text)")
            return None
        if isinstance(node, exp.Neg):
            return self.value(node.this)
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
            if isinstance(node, exp.Div) and _has_column(node.expression):
                raise _refuse(node, "division by a secret value is not supported; "
                                    "divide by a constant")
            self.value(node.this)
            self.value(node.expression)
            return None
        raise _refuse(node)

    def condition(self, node: Any) -> None:
        from sqlglot import exp
        if isinstance(node, exp.Paren):
            return self.condition(node.this)
        if isinstance(node, (exp.And, exp.Or)):
            self.condition(node.this)
            self.condition(node.expression)
            return None
        if isinstance(node, exp.Not):
            return self.condition(node.this)
        if isinstance(node, (exp.EQ, exp.NEQ)):
            if self._categorical_side(node.this, node.expression):
                return None
            self.value(node.this)
            self.value(node.expression)
            return None
        if isinstance(node, (exp.GT, exp.GTE, exp.LT, exp.LTE)):
            self.value(node.this)
            self.value(node.expression)
            return None
        if isinstance(node, exp.Between):
            for part in (node.this, node.args["low"], node.args["high"]):
                self.value(part)
            return None
        if isinstance(node, exp.In):
            if node.args.get("query") is not None or not node.expressions:
                raise _refuse(node, "IN takes a list of constants")
            if not all(isinstance(e, (exp.Literal, exp.Neg)) for e in node.expressions):
                raise _refuse(node, "IN takes a list of constants")
            if isinstance(node.this, exp.Column) and self.is_categorical(self.column(node.this)):
                return None
            self.value(node.this)
            return None
        raise _refuse(node)

    def _categorical_side(self, a: Any, b: Any) -> bool:
        from sqlglot import exp
        for col, lit in ((a, b), (b, a)):
            if isinstance(col, exp.Column) and self.is_categorical(self.column(col)):
                if not isinstance(lit, exp.Literal):
                    raise _refuse(col, "a category column compares only with a constant")
                return True
        return False


def _has_column(node: Any) -> bool:
    from sqlglot import exp
    return any(True for _ in node.find_all(exp.Column))


def _literal_int(node: Any, what: str) -> int:
    from sqlglot import exp
    if not isinstance(node, exp.Literal) or node.is_string:
        raise _refuse(node, f"{what} takes a constant")
    try:
        return int(str(node.this))
    except ValueError:
        raise _refuse(node, f"{what} takes an integer") from None


# -- planning --------------------------------------------------------------------------------
def plan_query(sql: str, schemas: Schema, *, rows: Mapping[str, int] | None = None,
               k: int = 1) -> Plan:
    """Parse and check ``sql`` against the public ``schemas``; the plan with its cost.

    ``rows``: the tables' public row counts (1000 if unknown) for the estimates; ``k`` the
    minimum group size."""
    sqlglot = _sqlglot()
    from sqlglot import exp
    try:
        tree = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ValidationError(f"cannot parse the SQL: {str(exc).splitlines()[0]}") from None
    if len(tree) != 1 or tree[0] is None:
        raise ValidationError("exactly one SQL statement is expected")
    root = tree[0]
    if not isinstance(root, exp.Select):
        raise _refuse(root, "only SELECT is supported")
    joins = root.args.get("joins") or []
    for key in ("with_", "with", "windows", "qualify", "distinct", "laterals",
                "pivots", "offset", "into", "locks", "sample", "settings", "format"):
        if root.args.get(key):
            node = root.args[key]
            shown = node[0] if isinstance(node, list) else node
            raise _refuse(shown if isinstance(shown, exp.Expression) else root,
                          f"{key.rstrip('_').upper()} is not supported")
    from_ = root.args.get("from_") or root.args.get("from")
    if from_ is None:
        raise ValidationError("the query must read a table (FROM)")
    src = from_.this
    if not isinstance(src, exp.Table) or not isinstance(src.this, exp.Identifier):
        raise _refuse(src, "FROM takes one table name")
    table = str(src.name)
    if table not in schemas:
        raise ValidationError(f"unknown table `{table}`; known: {', '.join(sorted(schemas))}")
    schema: Mapping[str, Sequence[Any] | None] = schemas[table]
    join_keys: tuple[list[tuple[str, str, tuple[str, ...]]],
                     tuple[tuple[int, int, int, int], ...]] | None = None
    names = [str(item.alias_or_name) if isinstance(item, exp.Alias)
             else item.sql(dialect="duckdb") for item in root.expressions]
    if joins:
        root, schema, join_keys = _rewrite_join(root, src, joins, schemas)
    if any(isinstance(n, exp.Window) for n in root.find_all(exp.Window)):
        raise ValidationError("unsupported SQL construct WINDOW (OVER)")
    for sub in root.find_all(exp.Subquery, exp.Select):
        if sub is not root:
            raise _refuse(sub, "subqueries are not supported")
    chk = _Checker(table, schema)

    group_by: tuple[str, ...] = ()
    secret_group = False
    group = root.args.get("group")
    if group is not None and len(group.expressions) == 1 and \
            isinstance(group.expressions[0], exp.Column) and \
            schema.get(str(group.expressions[0].name)) is None and \
            str(group.expressions[0].name) in schema:
        # one key with no public domain: oblivious sort and segmented scans
        group_by = (chk.column(group.expressions[0]),)
        secret_group = True
    elif group is not None:
        gkeys: list[str] = []
        for key in group.expressions:
            if not isinstance(key, exp.Column):
                raise _refuse(key, "GROUP BY takes key columns")
            name = chk.column(key)
            dom = schema[name]
            if dom is None:
                raise ValidationError(
                    f"GROUP BY `{name}` with other keys needs a public domain for the column "
                    "(declare its values in the schema); only a single key may have a secret "
                    "domain")
            if name not in gkeys:
                gkeys.append(name)
        group_by = tuple(gkeys)
        size = math.prod(len(schema[key] or ()) for key in group_by)
        if size > MAX_GROUPS:
            raise ValidationError(f"GROUP BY {', '.join(group_by)} has {size} groups, more "
                                  f"than {MAX_GROUPS}")

    where = root.args.get("where")
    cond = where.this if where is not None else None
    if cond is not None:
        if any(agg_func(n) for n in cond.walk()):
            raise _refuse(cond, "aggregates are not allowed in WHERE (use HAVING)")
        chk.condition(cond)

    aggs: dict[str, Agg] = {}
    section = ["show"]
    used_in: dict[str, set[str]] = {"show": set(), "having": set()}

    def post(node: Any) -> None:
        """Expressions over aggregates and the group key (released values)."""
        if isinstance(node, exp.Paren):
            return post(node.this)
        fn = agg_func(node)
        if fn is not None:
            agg = _aggregate(node, fn)
            aggs.setdefault(agg.key, agg)
            used_in[section[0]].add(agg.key)
            return None
        if isinstance(node, exp.Column):
            name = chk.column(node)
            if name not in group_by:
                raise ValidationError(
                    f"column `{name}` must appear in GROUP BY or inside an aggregate "
                    "(row-level values are never released)")
            return None
        if isinstance(node, exp.Literal):
            return None
        if isinstance(node, exp.Neg):
            return post(node.this)
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
            post(node.this)
            post(node.expression)
            return None
        if isinstance(node, (exp.And, exp.Or)):
            post(node.this)
            post(node.expression)
            return None
        if isinstance(node, exp.Not):
            return post(node.this)
        if isinstance(node, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
            post(node.this)
            post(node.expression)
            return None
        raise _refuse(node)

    def _aggregate(node: Any, fn: str) -> Agg:
        arg = node.this
        if fn == "count" and isinstance(arg, exp.Star):
            return Agg("count", None, "count(*)")
        if isinstance(arg, exp.Distinct):
            if fn != "count" or len(arg.expressions) != 1 or \
                    not isinstance(arg.expressions[0], exp.Column):
                raise _refuse(node, "DISTINCT only in COUNT(DISTINCT column)")
            name = chk.column(arg.expressions[0])
            if schema[name] is None:
                raise ValidationError(f"COUNT(DISTINCT {name}) needs a public domain for `{name}`")
            return Agg("count_distinct", arg.expressions[0], f"count(distinct {name})")
        if arg is None or isinstance(arg, exp.Star):
            raise _refuse(node, "an aggregate needs an argument")
        if any(agg_func(n) for n in arg.walk()):
            raise _refuse(node, "nested aggregates")
        chk.value(arg)
        if fn == "count":  # no NULLs in secret columns: COUNT(e) is COUNT(*)
            return Agg("count", None, "count(*)")
        return Agg(fn, arg, f"{fn}({arg.sql(dialect='duckdb')})")

    outputs: list[tuple[str, Any]] = []
    for item, name in zip(root.expressions, names, strict=True):
        if isinstance(item, exp.Star):
            raise _refuse(item, "SELECT * would release rows")
        body = item.this if isinstance(item, exp.Alias) else item
        post(body)
        outputs.append((str(name), body))
    if not aggs and not group_by:
        raise ValidationError("a query must aggregate (row-level values are never released)")

    having = root.args.get("having")
    hcond = having.this if having is not None else None
    if hcond is not None:
        section[0] = "having"
        post(hcond)
        section[0] = "show"
    aliases = {n for n, _ in outputs}
    order: list[tuple[Any, bool]] = []
    ord_node = root.args.get("order")
    if ord_node is not None:
        for o in ord_node.expressions:
            body = o.this
            if isinstance(body, exp.Column) and not body.table and str(body.name) in aliases:
                pass
            elif isinstance(body, exp.Literal) and not body.is_string:
                pos = int(str(body.this))
                if not 1 <= pos <= len(outputs):
                    raise _refuse(o, "ORDER BY position out of range")
            else:
                post(body)
            order.append((body, bool(o.args.get("desc"))))
    limit = None
    lim = root.args.get("limit")
    if lim is not None:
        limit = _literal_int(lim.expression, "LIMIT")
        if limit < 0:
            raise _refuse(lim, "LIMIT must not be negative")

    domains = {c: tuple(d) for c, d in schema.items() if d is not None and c in chk.used}
    n = (rows or {}).get(table, 1000)
    join = None
    join_on: tuple[tuple[int, int, int, int], ...] = ()
    if join_keys is not None:
        sides = []
        for alias, tname, keys in join_keys[0]:
            cols = tuple((c, c.split(".", 1)[1]) for c in chk.used if c.split(".", 1)[0] == alias)
            sides.append(JoinSide(alias, tname, keys, cols))
        join, join_on = tuple(sides), join_keys[1]
        n = min((rows or {}).get(side.table, 1000) for side in sides)
    plan = Plan(sql=sql, table=table, rows=n, columns=tuple(chk.used), domains=domains,
                where=cond, group_by=group_by, aggs=tuple(aggs.values()), outputs=tuple(outputs),
                having=hcond, order=tuple(order), limit=limit, join=join, join_on=join_on,
                secret_group=secret_group, k=k)
    plan.having_mpc = hcond is not None and _having_in_mpc(hcond, group_by, schema)
    shown = used_in["show"] | (set() if plan.having_mpc else used_in["having"])
    plan.released = tuple(key for key in aggs if key in shown)
    if secret_group and any(a.func == "count_distinct" for a in plan.aggs):
        raise ValidationError("COUNT(DISTINCT) with GROUP BY a secret-domain key is not "
                              "supported; declare the key's domain")
    plan.steps = _cost(plan)
    return plan


def _having_in_mpc(node: Any, group_by: Sequence[str],
                   schema: Mapping[str, Sequence[Any] | None]) -> bool:
    """Whether the committee can evaluate HAVING itself (then the aggregates only HAVING
    uses are never opened): comparisons, AND/OR/NOT over aggregates (not the sample
    variance or deviation, which may be NULL), the group key and constants, with + - and
    products or quotients by constants. Otherwise the receiver evaluates it."""
    from sqlglot import exp

    def categorical(name: str) -> bool:
        dom = schema.get(name)
        return dom is not None and any(isinstance(v, str) for v in dom)

    def const(n: Any) -> bool:
        if isinstance(n, exp.Paren):
            return const(n.this)
        if isinstance(n, exp.Neg):
            return const(n.this)
        return isinstance(n, exp.Literal) and not n.is_string

    def val(n: Any) -> bool:
        if isinstance(n, exp.Paren):
            return val(n.this)
        fn = agg_func(n)
        if fn is not None:
            return fn not in ("var_samp", "std_samp")
        if isinstance(n, exp.Literal):
            return not n.is_string
        if isinstance(n, exp.Column):
            return str(n.name) in group_by and not categorical(str(n.name))
        if isinstance(n, exp.Neg):
            return val(n.this)
        if isinstance(n, (exp.Add, exp.Sub)):
            return val(n.this) and val(n.expression)
        if isinstance(n, exp.Mul):
            return val(n.this) and val(n.expression) and (const(n.this) or const(n.expression))
        if isinstance(n, exp.Div):
            return (val(n.this) and const(n.expression)
                    and float(n.expression.sql().strip("()")) != 0.0)
        return False

    def cond(n: Any) -> bool:
        if isinstance(n, exp.Paren):
            return cond(n.this)
        if isinstance(n, (exp.And, exp.Or)):
            return cond(n.this) and cond(n.expression)
        if isinstance(n, exp.Not):
            return cond(n.this)
        if isinstance(n, (exp.EQ, exp.NEQ)):
            for col, lit in ((n.this, n.expression), (n.expression, n.this)):
                if (isinstance(col, exp.Column) and str(col.name) in group_by
                        and categorical(str(col.name))):
                    return isinstance(lit, exp.Literal) and lit.is_string
        if isinstance(n, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
            return val(n.this) and val(n.expression)
        return False

    try:
        return cond(node)
    except ValueError:
        return False


#: tables in one query (FROM and JOINs)
MAX_JOIN_TABLES = 4


def _rewrite_join(root: Any, src: Any, joins: list[Any], schemas: Schema
                  ) -> tuple[Any, dict[str, Sequence[Any] | None],
                             tuple[list[tuple[str, str, tuple[str, ...]]],
                                   tuple[tuple[int, int, int, int], ...]]]:
    """Check inner key joins and name every column ``alias.column``.

    ``FROM a JOIN b ON a.x = b.x [JOIN c ON b.y = c.y ...]``: each ON equates one column of
    the joined table with one of an earlier table (a key unique on at least one side of that
    join). Returns the rewritten query, the joined schema, ``(alias, table, key columns)``
    per table in FROM order, and per JOIN ``(earlier side, key index, joined side, key
    index)``.
    """
    from sqlglot import exp
    if len(joins) + 1 > MAX_JOIN_TABLES:
        raise _refuse(joins[MAX_JOIN_TABLES - 1],
                      f"at most {MAX_JOIN_TABLES} tables may be joined")
    aliases = {str(src.alias_or_name): str(src.name)}
    order = [str(src.alias_or_name)]
    for j in joins:
        kind = (j.args.get("kind") or "").upper()
        if (j.args.get("side") or kind not in ("", "INNER") or j.args.get("using")
                or j.args.get("method")):
            raise _refuse(j, "only an inner JOIN ... ON a.key = b.key is supported")
        right = j.this
        if not isinstance(right, exp.Table) or not isinstance(right.this, exp.Identifier):
            raise _refuse(right, "JOIN takes one table name")
        if str(right.name) not in schemas:
            raise ValidationError(f"unknown table `{right.name}`")
        on = j.args.get("on")
        if (not isinstance(on, exp.EQ) or not isinstance(on.this, exp.Column)
                or not isinstance(on.expression, exp.Column)):
            raise _refuse(on if on is not None else j, "JOIN needs ON a.key = b.key")
        alias = str(right.alias_or_name)
        if alias in aliases:
            raise ValidationError("a self-join needs two different aliases")
        aliases[alias] = str(right.name)
        order.append(alias)

    def resolve(node: Any) -> Any:
        if not isinstance(node, exp.Column):
            return node
        col = str(node.name)
        if node.table:
            alias = str(node.table)
            if alias not in aliases:
                raise ValidationError(f"unknown table `{alias}`")
            if col not in schemas[aliases[alias]]:
                raise ValidationError(f"unknown column `{col}` of table `{aliases[alias]}`")
        else:
            found = [a for a, t in aliases.items() if col in schemas[t]]
            if not found:
                return node  # an output alias (ORDER BY) or an unknown column
            if len(found) > 1:
                raise ValidationError(f"column `{col}` is ambiguous; qualify it with a table")
            alias = found[0]
        return exp.Column(this=exp.to_identifier(f"{alias}.{col}", quoted=True))

    root = root.transform(resolve)
    keys_of: dict[str, list[str]] = {a: [] for a in order}
    steps: list[tuple[str, str, str, str]] = []
    for i, j in enumerate(root.args["joins"]):
        on = j.args["on"]
        ends = [str(on.this.name).split(".", 1), str(on.expression.name).split(".", 1)]
        new = order[i + 1]
        if ends[1][0] != new:
            ends.reverse()
        if ends[1][0] != new or ends[0][0] not in order[:i + 1]:
            raise _refuse(on, "each JOIN's keys must be one column of the joined table and "
                              "one of an earlier table")
        for alias, col in ends:
            dom = schemas[aliases[alias]][col]
            if dom is not None and any(isinstance(v, str) for v in dom):
                raise ValidationError(f"join key `{alias}.{col}` must be an integer id column")
            if col not in keys_of[alias]:
                keys_of[alias].append(col)
        steps.append((ends[0][0], ends[0][1], ends[1][0], ends[1][1]))
    root.set("joins", None)
    schema: dict[str, Sequence[Any] | None] = {
        f"{a}.{c}": d for a, t in aliases.items() for c, d in schemas[t].items()}
    on = tuple((order.index(la), keys_of[la].index(lc), order.index(ra), keys_of[ra].index(rc))
               for la, lc, ra, rc in steps)
    return root, schema, ([(a, aliases[a], tuple(keys_of[a])) for a in order], on)


def strip_explain(sql: str) -> tuple[str, bool]:
    """``(query, True)`` for ``EXPLAIN query``, else ``(sql, False)``."""
    text = sql.strip().rstrip(";").strip()
    if text[:8].upper() == "EXPLAIN " or text[:8].upper() == "EXPLAIN\n":
        return text[8:].strip(), True
    return text, False


# -- data owners' policies ------------------------------------------------------------------
@dataclass(frozen=True)
class TablePolicy:
    """A data owner's usage policy for one table, checked before any share moves.

    ``columns``: the columns a query may read (join keys included; None: all);
    ``aggregates``: the aggregate functions allowed (names as in :class:`Agg`, e.g.
    ``{"count", "sum", "avg"}``; MIN/MAX release single rows' values; None: all);
    ``min_group_size``: groups smaller than this are suppressed whatever the requester asks;
    ``allow_join``: whether the table may be joined with another.
    """

    columns: frozenset[str] | None = None
    aggregates: frozenset[str] | None = None
    min_group_size: int = 1
    allow_join: bool = True


def read_columns(plan: Plan) -> dict[str, set[str]]:
    """Table -> raw columns a plan reads (join keys included)."""
    if plan.join is None:
        return {plan.table: set(plan.columns)}
    out: dict[str, set[str]] = {}
    for side in plan.join:
        out.setdefault(side.table, set()).update({*side.keys, *(raw for _, raw in side.columns)})
    return out


def check_policies(plan: Plan, policies: Mapping[str, TablePolicy] | None, k: int) -> int:
    """Refuse a plan that breaks a policy (PolicyViolation naming the rule); the k to apply."""
    if k < 1:
        raise ValidationError("the minimum group size k must be at least 1")
    if not policies:
        return k
    for table, cols in read_columns(plan).items():
        pol = policies.get(table)
        if pol is None:
            continue
        if pol.columns is not None:
            bad = sorted(cols - set(pol.columns))
            if bad:
                raise PolicyViolation(f"the policy of table `{table}` does not allow reading "
                                      f"column(s) {', '.join(bad)}; nothing computed",
                                      rule="columns")
        if pol.aggregates is not None:
            bad = sorted({a.func for a in plan.aggs} - set(pol.aggregates))
            if bad:
                raise PolicyViolation(f"the policy of table `{table}` does not allow "
                                      f"{', '.join(b.upper() for b in bad)}; nothing computed",
                                      rule="aggregates")
        if plan.join is not None and not pol.allow_join:
            raise PolicyViolation(f"the policy of table `{table}` does not allow joins; "
                                  "nothing computed", rule="join")
        k = max(k, pol.min_group_size)
    return k


# -- cost model ------------------------------------------------------------------------------
#: per element, per party (mpc module doc): comparison 9 rounds ~ 120 B (a2b 88.25 + b2a),
#: equality 8 rounds ~ 40 B, product 1 round 8 B, fixed-point product 2 rounds 16 B.
LT_ROUNDS, LT_BYTES = 9, 120
EQ_ROUNDS, EQ_BYTES = 8, 40


def _count_atoms(node: Any, plan: Plan) -> tuple[int, int, int]:
    """(less-than atoms, equality atoms, mask products) of a WHERE condition."""
    from sqlglot import exp
    if node is None:
        return 0, 0, 0
    if isinstance(node, exp.Paren):
        return _count_atoms(node.this, plan)
    if isinstance(node, (exp.And, exp.Or)):
        a = _count_atoms(node.this, plan)
        b = _count_atoms(node.expression, plan)
        return a[0] + b[0], a[1] + b[1], a[2] + b[2] + 1
    if isinstance(node, exp.Not):
        return _count_atoms(node.this, plan)
    if isinstance(node, (exp.EQ, exp.NEQ)):
        return 0, 1, 0
    if isinstance(node, exp.In):
        return 0, len(node.expressions), 0
    if isinstance(node, exp.Between):
        return 2, 0, 1
    return 1, 0, 0


def _mul_count(node: Any) -> int:
    from sqlglot import exp
    if node is None:
        return 0
    return sum(1 for m in node.find_all(exp.Mul, exp.Div)
               if _has_column(m.this) or _has_column(m.expression))


def _cost(plan: Plan) -> list[Step]:
    n, g = plan.rows, plan.groups
    steps = [Step(f"deal {len(plan.columns)} column(s) of {n} rows from the data nodes "
                  "(replicated shares)", 0, 0)]
    if plan.join is not None:
        w = 3 + max(len(side.columns) for side in plan.join)
        tables = " x ".join(side.table for side in plan.join)
        steps.append(Step(f"private key join {tables} "
                          "(keyed tags, committee shuffle, matcher; semi-honest; join size "
                          f"public to the committee, here at most {n})", 5,
                          16 * n * w * 2 + 16 * n))
    muls = _mul_count(plan.where) + sum(_mul_count(a.arg) for a in plan.aggs)
    if muls:
        steps.append(Step(f"{muls} secret product(s) per row in expressions", 2 * muls,
                          16 * muls * n))
    lt, eq, prods = _count_atoms(plan.where, plan)
    if plan.secret_group:
        return steps + _secret_group_cost(plan, lt, eq, prods)
    eq += sum(len(plan.domains[key]) for key in plan.group_by)
    if len(plan.group_by) > 1:
        steps.append(Step(f"one-hot of {len(plan.group_by)} keys: row-wise outer products",
                          len(plan.group_by) - 1, 8 * n * g))
    for a in plan.aggs:
        if a.func == "count_distinct":
            eq += len(plan.domains[str(a.arg.name)])
    if lt or eq:
        rounds = max(LT_ROUNDS if lt else 0, EQ_ROUNDS if eq else 0)
        steps.append(Step(f"one batch of comparisons: {lt} less-than and {eq} equality per row "
                          "(secret 0/1 masks, one-hot of the group key)",
                          rounds, n * (lt * LT_BYTES + eq * EQ_BYTES)))
    if prods:
        steps.append(Step(f"combine the WHERE masks (AND/OR: {prods} products per row)",
                          prods, 8 * prods * n))
    if plan.where is not None and plan.group_by:
        steps.append(Step("fold the mask into the one-hot (1 product per row and group)", 1,
                          8 * n * g))
    sums = [a for a in plan.aggs if a.func in ("sum", "avg", "var_samp", "var_pop",
                                                 "std_samp", "std_pop")]
    squares = [a for a in sums if a.func.startswith(("var", "std"))]
    if squares:
        steps.append(Step(f"square {len(squares)} value(s) per row (split, no large "
                          "truncation)", 3, 32 * n * len(squares)))
    m = len(sums) + len(squares)
    if m:
        steps.append(Step(f"per-group sums: one-hot^T x ({g} x {m})", 1, 8 * g * m))
    extremes = [a for a in plan.aggs if a.func in ("min", "max")]
    if extremes:
        e = len(extremes)
        depth = math.ceil(math.log2(max(n, 2)))
        steps.append(Step(f"MIN/MAX: mask into {e} x {g} columns, tournament of depth {depth}",
                          1 + 10 * depth, 8 * n * g * e + (n * g * e) * (LT_BYTES + 8)))
    distinct = [a for a in plan.aggs if a.func == "count_distinct"]
    for a in distinct:
        dn = len(plan.domains[str(a.arg.name)])
        steps.append(Step(f"COUNT(DISTINCT {a.arg.name}): per-group value counts ({g} x {dn}), "
                          "presence by comparison", 1 + LT_ROUNDS, 8 * g * dn + LT_BYTES * g * dn))
    return steps + _final_cost(plan, g)


#: per element, per party (mpc.nonlinear doc): divide ~35 rounds ~1.3 KB, sqrt 28 ~1.5 KB
DIV_ROUNDS, DIV_BYTES = 35, 1300
SQRT_ROUNDS, SQRT_BYTES = 28, 1500


def _final_cost(plan: Plan, g: int) -> list[Step]:
    """The final aggregates on ``g`` rows (:mod:`metisnet.algorithms.sql.aggregates`)."""
    two = any(a.func in ("var_samp", "std_samp") for a in plan.aggs)
    steps = [Step(("present flags (k policy): counts >= " if plan.k > 1 else
                   "present flags (no empty group): counts >= ") + str(max(plan.k, 1))
                  + (" and >= 2 (sample variance)" if two else "") + " (oblivious)",
                  LT_ROUNDS + (1 if two else 0) + (1 if plan.secret_group else 0),
                  LT_BYTES * g * (2 if two else 1))]
    means = [a for a in plan.aggs if a.func in ("avg", "var_samp", "var_pop", "std_samp",
                                                 "std_pop")]
    if means:
        e = len(means) * g
        steps.append(Step(f"{len(means)} mean(s) in MPC: divide by the count, refined once "
                          "(2 divides)", 2 * DIV_ROUNDS + 1, 2 * DIV_BYTES * e + 8 * e))
    var = [a for a in means if a.func != "avg"]
    if var:
        e = len(var) * g
        steps.append(Step(f"{len(var)} variance(s): ss - count mean^2, divide by the degrees "
                          "of freedom (2 divides)", 4 + 2 * DIV_ROUNDS + 1,
                          40 * e + 2 * DIV_BYTES * e))
    std = [a for a in var if a.func.startswith("std")]
    if std:
        e = len(std) * g
        steps.append(Step(f"{len(std)} deviation(s): clamp at 0, square root",
                          LT_ROUNDS + 1 + SQRT_ROUNDS, (LT_BYTES + 8 + SQRT_BYTES) * e))
    if plan.having_mpc:
        atoms = sum(1 for n in plan.having.walk()
                    if type(n).__name__ in ("EQ", "NEQ", "GT", "GTE", "LT", "LTE"))
        steps.append(Step(f"HAVING on the committee: {atoms} comparison(s) per group, "
                          "combined and folded into the present flags", LT_ROUNDS + 3,
                          (LT_BYTES + 16) * g * max(atoms, 1)))
    w = len(plan.released_aggs) + (1 if plan.secret_group else 0)
    if w:
        steps.append(Step("zero every value of an absent or suppressed group (1 product)", 1,
                          8 * g * w))
    released = w + 1 + (1 if two else 0)
    if plan.secret_group:
        steps.append(Step(f"shuffle the {g} result rows", 3, 16 * g * released))
    steps.append(Step(f"open the results to the receiver only: a present flag and "
                      f"{len(plan.released_aggs)} aggregate(s) per group", 1,
                      8 * g * released))
    return steps


def _secret_group_cost(plan: Plan, lt: int, eq: int, prods: int) -> list[Step]:
    n = plan.rows
    steps = []
    if lt or eq:
        steps.append(Step(f"one batch of comparisons: {lt} less-than and {eq} equality per row "
                          "(secret 0/1 masks)", max(LT_ROUNDS if lt else 0,
                                                    EQ_ROUNDS if eq else 0),
                          n * (lt * LT_BYTES + eq * EQ_BYTES)))
    if prods:
        steps.append(Step(f"combine the WHERE masks (AND/OR: {prods} products per row)",
                          prods, 8 * prods * n))
    sums = [a for a in plan.aggs if a.func in ("sum", "avg", "var_samp", "var_pop",
                                                 "std_samp", "std_pop")]
    w = 1 + len(sums) + sum(1 for a in sums if a.func.startswith(("var", "std")))
    e = sum(1 for a in plan.aggs if a.func in ("min", "max"))
    depth = max(math.ceil(math.log2(max(n, 2))), 1)
    steps.append(Step(f"mask the values ({w - 1 + e} columns)", 1, 8 * n * (w + e)))
    steps.append(Step(f"oblivious sort by the secret key {plan.group_by[0]} (shuffle, then "
                      "quicksort on distinct composite keys; semi-honest)", 3 + 9 * depth,
                      int(1.6 * n * depth) * LT_BYTES + 16 * n * (w + e + 2)))
    steps.append(Step("group starts: equality of neighbouring keys", EQ_ROUNDS, EQ_BYTES * n))
    steps.append(Step(f"segmented scan, {depth} steps (counts, sums"
                      + (", MIN/MAX" if e else "") + ")", depth * (1 + (11 if e else 0)),
                      depth * n * 8 * (w + 1 + e * (LT_BYTES // 8 + 2))))
    return steps + _final_cost(plan, n)


def explain(query: str | Plan, schemas: Schema | None = None, *,
            rows: Mapping[str, int] | None = None, k: int = 1) -> str:
    """The secure plan of ``query`` with estimated rounds and bytes per party (``EXPLAIN``)."""
    if isinstance(query, str):
        query = strip_explain(query)[0]
    plan = query if isinstance(query, Plan) else plan_query(query, schemas or {}, rows=rows,
                                                            k=k)
    lines = [f"secure plan for: {' '.join(plan.sql.split())}",
             f"table {plan.table}: ~{plan.rows} rows (union of the data nodes), "
             f"{plan.groups} group(s)"
             + (f" by {', '.join(plan.group_by)}" if plan.group_by else "")]
    for i, s in enumerate(plan.steps, 1):
        lines.append(f"  {i}. {s.what}  [{s.rounds} rounds, {s.bytes_per_party:,} B]")
    post = []
    if plan.having is not None and not plan.having_mpc:
        post.append("HAVING")
    if plan.order:
        post.append("ORDER BY")
    if plan.limit is not None:
        post.append("LIMIT")
    lines.append("receiver, on released results: aggregates arithmetic"
                 + (", " + ", ".join(post) if post else ""))
    two = any(a.func in ("var_samp", "std_samp") for a in plan.aggs)
    lines.append("released to the receiver: per group a present flag (count >= k)"
                 + (", whether it has 2 rows (a sample variance of 1 row is NULL)" if two
                    else "") + " and the aggregates "
                 + (", ".join(a.key for a in plan.released_aggs) or "(none)")
                 + " (those of SELECT and ORDER BY"
                 + (", and of HAVING, which the receiver evaluates" if plan.having is not None
                    and not plan.having_mpc else "") + "); no counts unless selected")
    why = [w for w, on in (("the private JOIN", plan.join is not None),
                            ("GROUP BY a key without a public domain (oblivious sort)",
                             plan.secret_group)) if on]
    lines.append("security: semi-honest only (" + " and ".join(why) + ")" if why else
                 "security: malicious (security with abort; every product checked before "
                 "any opening) or semi-honest")
    lines.append(f"estimated total: {plan.rounds} rounds, {plan.bytes_per_party:,} bytes per party")
    return "\n".join(lines)
