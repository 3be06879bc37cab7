"""The GenQuery engine: a GenQueryInp turned into SQL over the catalog, with iRODS semantics.

What iRODS does (``general_query.cpp``, ``rsGenQuery.cpp``) and so do we:
- ``select distinct`` unless the ``NO_DISTINCT`` option bit is set;
- the tables are joined along the unique paths of the join tree in :mod:`.columns`;
- conditions: ``= <> != < > <= >=``, ``like``/``not like`` (case-sensitive, ``\\`` escapes),
  ``in ('a','b')``, ``between 'a' 'b'``, ``begin_of``, ``parent_of``, ``n<``/``n>``/``n=``
  (numeric cast), compound ``||``/``&&``, ``UPPER_CASE_WHERE`` (``upper(column)``);
- the k-th condition on a data (or collection) AVU *name* opens the k-th AVU join, and
  the k-th condition on the AVU *value* goes to that same join;
- aggregates (min, max, sum, avg, count) with ``group by`` on the other columns;
- ordering: the columns flagged ``ORDER_BY``/``ORDER_BY_DESC``, then COLL_NAME, DATA_NAME,
  DATA_REPL_NUM when selected; with none of these, no ORDER BY in iRODS: here the rows
  of the first selected column's table in catalog id (insertion) order, never sorted by
  the selected columns;
- a client that is not rodsadmin sees only objects and collections it may read
  (iRODS's default ``acAclPolicy`` is STRICT);
- no rows is the error ``CAT_NO_ROWS_FOUND``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import columns as C
from .errors import IrodsError

# option bits (rodsGenQuery.h)
ORDER_BY = 0x400
ORDER_BY_DESC = 0x800
RETURN_TOTAL_ROW_COUNT = 0x20
NO_DISTINCT = 0x40
QUOTA_QUERY = 0x80
AUTO_CLOSE = 0x100
UPPER_CASE_WHERE = 0x200
AGGREGATES = {2: "min", 3: "max", 4: "sum", 5: "avg", 6: "count"}

READ_OBJECT = 1050
_OPERATORS = {"=", "<>", "!=", "<", ">", "<=", ">=", "like", "not like", "begin_of", "parent_of"}


@dataclass
class GenQuery:
    """The parts of a ``GenQueryInp_PI`` the engine uses."""

    select: list[tuple[int, int]]  # (column number, option flags)
    conditions: list[tuple[int, str]] = field(default_factory=list)
    options: int = 0
    offset: int = 0
    keywords: dict[str, str] = field(default_factory=dict)


@dataclass
class Access:
    """Restrict results to what these user/group ids may read (None: no restriction).

    ``ticket``: the connection's session ticket; then only what it covers is visible,
    instead of what the ACLs allow (tickets.py). ``user_id``: ticket columns show only
    this user's own tickets."""

    ids: Sequence[int]
    ticket: str = ""
    user_id: int | None = None


def like_to_glob(pattern: str) -> str:
    """An SQL LIKE pattern (``%``, ``_``, ``\\`` escape) as a case-sensitive GLOB pattern."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            ch = pattern[i]
            out.append(f"[{ch}]" if ch in "*?[" else ch)
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _quoted(text: str) -> list[str]:
    """The single-quoted strings in ``text`` (as iRODS scans them: pairs of quotes)."""
    parts = text.split("'")
    return parts[1::2] if len(parts) >= 3 else []


def _split_compound(cond: str) -> list[tuple[str, str]] | None:
    """``[(joiner, part), ...]`` when ``cond`` has ``||``/``&&`` outside quotes, else None."""
    parts: list[tuple[str, str]] = []
    quote, start, joiner, i = False, 0, "", 0
    while i < len(cond):
        ch = cond[i]
        if ch == "'":
            quote = not quote
        elif not quote and cond[i : i + 2] in ("||", "&&"):
            parts.append((joiner, cond[start:i]))
            joiner = " OR " if cond[i] == "|" else " AND "
            start = i + 2
            i += 1
        i += 1
    if not parts:
        return None
    parts.append((joiner, cond[start:]))
    return parts


def condition_sql(expr: str, cond: str, upper: bool) -> tuple[str, list[Any]]:
    """SQL and parameters for one GenQuery condition string on the column ``expr``."""
    text = cond.strip()
    cast = len(text) > 1 and text[0] == "n" and text[1] in "<>="
    if cast:
        text = text[1:]
    compound = _split_compound(text)
    if compound is not None:
        sql_parts: list[str] = []
        params: list[Any] = []
        for joiner, part in compound:
            sql, p = _simple_condition(expr, part.strip(), upper, cast)
            sql_parts.append(joiner + sql)
            params += p
        return "(" + "".join(sql_parts) + ")", params
    return _simple_condition(expr, text, upper, cast)


def _simple_condition(expr: str, text: str, upper: bool, cast: bool) -> tuple[str, list[Any]]:
    if cast:
        col = f"CAST({expr} AS REAL)"
    elif upper:
        col = f"upper({expr})"
    else:
        col = expr
    lower = text.lower()
    if lower.startswith("in") and lower[2:3] in (" ", "("):
        values = _quoted(text)
        if not values:
            raise IrodsError("CAT_INVALID_ARGUMENT", f"bad IN condition: {text}")
        return f"{col} IN ({', '.join('?' * len(values))})", list(values)
    if lower.startswith("between"):
        values = _quoted(text)
        if len(values) != 2:
            raise IrodsError("CAT_INVALID_ARGUMENT", f"bad BETWEEN condition: {text}")
        return f"{col} BETWEEN ? AND ?", list(values)
    if text.upper() in ("IS NULL", "IS NOT NULL"):
        return f"{expr} {text.upper()}", []
    first, last = text.find("'"), text.rfind("'")
    if first < 0 or last <= first or first > 10:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"bad condition: {text}")
    op = " ".join(text[:first].split()).lower()
    value = text[first + 1 : last]
    if op not in _OPERATORS:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"bad condition operator: {op!r}")
    if op == "like":
        return f"{col} GLOB ?", [like_to_glob(value)]
    if op == "not like":
        return f"{col} NOT GLOB ?", [like_to_glob(value)]
    if op == "begin_of":
        return f"(substr(?, 1, length({col})) = {col} AND length({col}) > 0)", [value]
    if op == "parent_of":
        parents = _parents(value)
        return f"{col} IN ({', '.join('?' * len(parents))})", parents
    return f"{col} {op} ?", [value]


def _parents(path: str) -> list[str]:
    """``/a/b`` -> ``['/', '/a', '/a/b']``: every prefix ending before a ``/`` or space."""
    out: list[str] = []
    for i in range(len(path) + 1):
        if i == len(path) or path[i] in "/ ":
            out.append(path[: i + 1] if not out else path[:i])
    return out


def _join_tree(needed: list[str]) -> tuple[list[str], list[str]]:
    """The aliases and link conditions that connect every alias in ``needed``."""
    adjacency: dict[str, list[tuple[str, str]]] = {}
    for a, b, sql in C.LINKS:
        adjacency.setdefault(a, []).append((b, sql))
        adjacency.setdefault(b, []).append((a, sql))
    start = needed[0]
    parent: dict[str, tuple[str, str] | None] = {start: None}
    frontier = [start]
    while frontier:
        node = frontier.pop()
        for other, sql in adjacency.get(node, []):
            if other not in parent:
                parent[other] = (node, sql)
                frontier.append(other)
    aliases, links = [start], []
    for alias in needed[1:]:
        if alias not in parent:
            raise IrodsError("CAT_FAILED_TO_LINK_TABLES", f"cannot join {start} and {alias}")
        node = alias
        while node not in aliases:
            aliases.append(node)
            step = parent[node]
            assert step is not None
            links.append(step[1])
            node = step[0]
    return aliases, links


def _column(number: int) -> C.Column:
    col = C.COLUMNS.get(number)
    if col is None:
        raise IrodsError("CAT_UNKNOWN_TABLE", f"unknown GenQuery column {number}")
    return col


def build_sql(query: GenQuery, access: Access | None = None) -> tuple[str, list[Any]]:
    """The SQL statement (and parameters) answering ``query``."""
    if not query.select:
        raise IrodsError("CAT_INVALID_ARGUMENT", "no columns selected")
    if query.options & QUOTA_QUERY:
        raise IrodsError("CAT_NO_ROWS_FOUND", "quotas are not kept")
    numbers = [n for n, _ in query.select] + [n for n, _ in query.conditions]
    if any(C.is_empty_table_column(n) for n in numbers):
        raise IrodsError("CAT_NO_ROWS_FOUND", "no such rows on this server")
    selected = [(_column(n), flags) for n, flags in query.select]
    needed: list[str] = []
    for col in [c for c, _ in selected] + [_column(n) for n, _ in query.conditions]:
        if col.alias not in needed:
            needed.append(col.alias)
    extra_from, extra_where, avu_alias = _avu_joins(query.conditions, needed)

    aliases, links = _join_tree(needed)
    where: list[str] = list(links)
    params: list[Any] = []
    upper = bool(query.options & UPPER_CASE_WHERE)
    for i, (number, cond) in enumerate(query.conditions):
        col = _column(number)
        expr = col.expr.replace(f"{col.alias}.", f"{avu_alias[i]}.") if i in avu_alias else col.expr
        sql, p = condition_sql(expr, cond, upper)
        where.append(sql)
        params += p
    where += extra_where
    if access is not None:
        where += _access_checks(aliases, access, params)

    select_sql, group_by, order_by = _select_group_order(selected)
    distinct = "" if query.options & NO_DISTINCT else "DISTINCT "
    sql = f"SELECT {distinct}{', '.join(select_sql)} FROM "
    sql += ", ".join([C.TABLES[a] for a in aliases] + extra_from)
    if where:
        sql += " WHERE " + " AND ".join(where)
    if group_by:
        sql += " GROUP BY " + ", ".join(group_by)
    if not order_by and not group_by:
        # no ORDER BY in iRODS (see _select_group_order): the rows in the order a catalog
        # whose tables are read in id order gives them, the first selected column's table
        # first; not the order of any index SQLite might walk (by name, say)
        order_by = [f"{selected[0][0].alias}.rowid"]
    if order_by:
        sql += " ORDER BY " + ", ".join(order_by)
    if query.offset > 0:
        sql += " LIMIT -1 OFFSET ?"
        params.append(query.offset)
    return sql, params


def _avu_joins(
    conditions: list[tuple[int, str]], needed: list[str]
) -> tuple[list[str], list[str], dict[int, str]]:
    """Extra AVU joins for repeated data/collection AVU-name conditions, as iRODS adds them.

    The k-th condition on the AVU name (k >= 2), and the k-th on the AVU value, go to the
    k-th join. Returns the extra FROM items, WHERE links, and condition index -> alias.
    """
    extra_from: list[str] = []
    extra_where: list[str] = []
    avu_alias: dict[int, str] = {}
    for name_col, value_col, kind, owner in (
        (C.DATA_META_NAME, C.DATA_META_VALUE, "data", "r_data_main.data_id"),
        (C.COLL_META_NAME, C.COLL_META_VALUE, "coll", "r_coll_main.coll_id"),
    ):
        names = [i for i, (n, _) in enumerate(conditions) if n == name_col]
        if len(names) < 2:
            continue
        values = [i for i, (n, _) in enumerate(conditions) if n == value_col]
        main = owner.split(".")[0]
        if main not in needed:
            needed.append(main)
        for k in range(2, len(names) + 1):
            meta, metamap = f"r_{kind}_meta_mn{k:02d}", f"r_{kind}_metamap{k}"
            extra_from += [f"r_objt_metamap {metamap}", f"r_meta_main {meta}"]
            extra_where += [f"{metamap}.meta_id = {meta}.meta_id", f"{owner} = {metamap}.object_id"]
            avu_alias[names[k - 1]] = meta
            if k - 1 < len(values):
                avu_alias[values[k - 1]] = meta
    for single in (C.RESC_META_NAME, C.USER_META_NAME):
        if sum(1 for n, _ in conditions if n == single) > 1:
            raise IrodsError("CAT_INVALID_ARGUMENT", "several AVU names on this object type")
    return extra_from, extra_where, avu_alias


def _select_group_order(
    selected: list[tuple[C.Column, int]],
) -> tuple[list[str], list[str], list[str]]:
    """The select list, GROUP BY terms (only with aggregates) and ORDER BY terms."""
    select_sql, plain, order_by = [], [], []
    for col, flags in selected:
        func = AGGREGATES.get(flags & 0xF)
        term = f"{func}({col.expr})" if func else col.expr
        select_sql.append(term)
        if func is None:
            plain.append(col.expr)
        if flags & ORDER_BY_DESC:
            order_by.append(f"{term} DESC")
        elif flags & ORDER_BY:
            order_by.append(term)
    for number in (C.COLL_NAME, C.DATA_NAME, C.DATA_REPL_NUM):
        for col, flags in selected:
            if col.number == number and not AGGREGATES.get(flags & 0xF):
                order_by.append(col.expr)
                break
    # nothing else: with none of these iRODS adds no ORDER BY (generateSQL,
    # plugins/database/src/general_query.cpp: setOrderByUser, then setOrderBy for
    # COL_COLL_NAME, COL_DATA_NAME, COL_DATA_REPL_NUM), so rows come as the database reads
    # them (here roughly catalog id order), never sorted by the other selected columns
    unique: list[str] = []
    for term in order_by:
        if all(t.removesuffix(" DESC") != term.removesuffix(" DESC") for t in unique):
            unique.append(term)
    group_by = plain if len(plain) < len(selected) else []
    return select_sql, group_by, unique


def _access_checks(aliases: list[str], access: Access, params: list[Any]) -> list[str]:
    """STRICT ACL policy: only data objects and collections the client may read."""
    checks = _ticket_checks(aliases, access, params)
    if access.ticket:
        return checks
    ids = ", ".join("?" * len(access.ids))
    for alias, key in (("r_data_main", "data_id"), ("r_coll_main", "coll_id")):
        if alias in aliases:
            checks.append(
                f"EXISTS (SELECT 1 FROM r_objt_access acl WHERE acl.object_id = {alias}.{key}"
                f" AND acl.user_id IN ({ids}) AND acl.access_type_id >= {READ_OBJECT})"
            )
            params.extend(access.ids)
    return checks


def _ticket_checks(aliases: list[str], access: Access, params: list[Any]) -> list[str]:
    """``genqAppendAccessCheck`` (general_query.cpp): a non-admin sees only its own tickets;
    with a session ticket, only the data objects and collections the ticket covers (the
    object itself, or anything under its collection), instead of what the ACLs allow."""
    checks = []
    if "r_ticket_main" in aliases and access.user_id is not None:
        checks.append("r_ticket_main.user_id = ?")
        params.append(access.user_id)
    if not access.ticket:
        return checks
    objects = "(SELECT object_id FROM r_ticket_main WHERE ticket_string = ?)"
    under = (
        "EXISTS (SELECT 1 FROM r_coll_main tc WHERE tc.coll_id IN " + objects + " AND"
        " substr({name}, 1, length(tc.coll_name)) = tc.coll_name)"
    )
    if "r_data_main" in aliases:
        checks.append(
            f"(r_data_main.data_id IN {objects} OR r_data_main.coll_id IN {objects} OR"
            " EXISTS (SELECT 1 FROM r_coll_main dc WHERE dc.coll_id = r_data_main.coll_id"
            " AND " + under.format(name="dc.coll_name") + "))"
        )
        params.extend([access.ticket] * 3)
    elif "r_coll_main" in aliases:
        checks.append(
            f"(r_coll_main.coll_id IN {objects} OR "
            + under.format(name="r_coll_main.coll_name")
            + ")"
        )
        params.extend([access.ticket] * 2)
    return checks


def _text(value: Any) -> str:
    """A catalog value as iRODS returns it: a string, '' for NULL."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _resc_hier_function(db: sqlite3.Connection) -> None:
    """(Re)register ``irods_resc_hier(resc_id)`` over the current resource table."""
    rescs = {
        int(r[0]): (str(r[1]), str(r[2] or ""))
        for r in db.execute("SELECT resc_id, resc_name, resc_parent FROM r_resc_main")
    }

    def hier(resc_id: Any) -> str:
        names: list[str] = []
        current = str(resc_id or "")
        while current.isdigit() and int(current) in rescs and len(names) < 64:
            name, parent = rescs[int(current)]
            names.append(name)
            current = parent
        return ";".join(reversed(names))

    db.create_function(C.RESC_HIER_FUNCTION, 1, hier, deterministic=True)


def run(db: sqlite3.Connection, query: GenQuery, access: Access | None = None) -> list[list[str]]:
    """Every result row of ``query`` (values as iRODS strings); CAT_NO_ROWS_FOUND if none."""
    sql, params = build_sql(query, access)
    if C.RESC_HIER_FUNCTION in sql:
        _resc_hier_function(db)
    try:
        rows = db.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise IrodsError("CAT_SQL_ERR", f"genquery SQL failed: {exc}") from exc
    if not rows:
        raise IrodsError("CAT_NO_ROWS_FOUND", "no rows found")
    return [[_text(v) for v in row] for row in rows]
