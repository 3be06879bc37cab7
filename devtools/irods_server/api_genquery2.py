"""GenQuery2 (API 10221): the query language of iRODS 4.3.2+, translated to catalog SQL.

Follows iRODS 4.3.4 ``server/api/src/rs_genquery2.cpp`` (the request: ``query_string``,
``zone``, ``sql_only``, ``column_mappings``; the answer a ``STR_PI`` holding JSON: the
rows as a list of lists of strings, the SQL text, or ``{column: {table: column}}``) and
``server/genquery2/dsl/parser.y`` (the grammar). The subset kept here:

    SELECT [NO DISTINCT] col [, col ...]
        [WHERE cond {AND|OR} cond ...]      cond: col = != < <= > >= 'lit',
                                            [NOT] LIKE 'pat', [NOT] IN ('a', ...),
                                            [NOT] BETWEEN 'a' AND 'b', IS [NOT] NULL,
                                            NOT cond, ( cond ... )
        [ORDER BY col [ASC|DESC], ...] [LIMIT n] [OFFSET n]

Columns are GenQuery's names (``COLL_NAME``, ``DATA_ID``, ``META_DATA_ATTR_NAME``, ...;
the engine's :mod:`.columns` map). Results are distinct unless ``NO DISTINCT``; without
``LIMIT`` at most 256 rows (``rs_genquery2.cpp``: ``default_number_of_rows = 256``). A
non-admin sees only what it may read (the same STRICT filter and session ticket as
GenQuery, :mod:`.genquery`). Not kept: functions (``count(...)``, ``CAST``), ``GROUP BY``
and ``FETCH FIRST``: they answer ``SYS_INVALID_INPUT_PARAM`` with a message.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field

from irods.message import STR_PI, GenQuery2Request

from . import columns as C
from . import tickets
from .dispatch import Reply, Request, Session, api
from .errors import IrodsError
from .genquery import NO_DISTINCT, Access, GenQuery, build_sql

GENQUERY2_AN = 10221
DEFAULT_ROWS = 256

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<op>!=|<>|<=|>=|=|<|>|\(|\)|,)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
KEYWORDS = {
    "SELECT", "NO", "DISTINCT", "WHERE", "AND", "OR", "NOT", "LIKE", "IN", "BETWEEN", "IS",
    "NULL", "ORDER", "BY", "ASC", "DESC", "LIMIT", "OFFSET", "GROUP", "FETCH", "CAST",
}  # fmt: skip


def tokenize(text: str) -> list[tuple[str, str]]:
    """``[(kind, value)]``: kind is ``str`` (unquoted), ``num``, ``op``, ``kw`` or ``id``."""
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _bad(f"cannot read the query at {text[pos : pos + 20]!r}")
        pos = m.end()
        if m.group("str") is not None:
            out.append(("str", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("num") is not None:
            out.append(("num", m.group("num")))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            word = m.group("word")
            kind = "kw" if word.upper() in KEYWORDS else "id"
            out.append((kind, word.upper() if kind == "kw" else word))
    return out


def _bad(message: str) -> IrodsError:
    return IrodsError("SYS_INVALID_INPUT_PARAM", f"GenQuery2: {message}")


@dataclass
class Parsed:
    columns: list[str]
    distinct: bool = True
    where: str = ""  # SQL over the CTE's columns c0, c1, ...
    params: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    limit: int = DEFAULT_ROWS
    offset: int = 0
    referenced: list[str] = field(default_factory=list)  # every column name, first use order


class Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    # -- token helpers
    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def accept(self, kind: str, value: str | None = None) -> str | None:
        tok = self.peek()
        if tok is not None and tok[0] == kind and (value is None or tok[1] == value):
            self.pos += 1
            return tok[1]
        return None

    def expect(self, kind: str, value: str | None = None) -> str:
        got = self.accept(kind, value)
        if got is None:
            tok = self.peek()
            found = "the end of the query" if tok is None else repr(tok[1])
            raise _bad(f"expected {value or kind}, found {found}")
        return got

    # -- grammar
    def parse(self) -> Parsed:
        self.expect("kw", "SELECT")
        distinct = True
        if self.accept("kw", "NO"):
            self.expect("kw", "DISTINCT")
            distinct = False
        out = Parsed(columns=[], distinct=distinct)
        out.columns.append(self.column(out))
        while self.accept("op", ","):
            out.columns.append(self.column(out))
        if self.accept("kw", "WHERE"):
            out.where = self.condition_list(out)
        while self.peek() is not None:
            if self.accept("kw", "ORDER"):
                self.expect("kw", "BY")
                out.order.append(self.sort(out))
                while self.accept("op", ","):
                    out.order.append(self.sort(out))
            elif self.accept("kw", "LIMIT"):
                out.limit = self.positive()
            elif self.accept("kw", "OFFSET"):
                out.offset = self.positive()
            else:
                tok = self.peek()
                assert tok is not None
                raise _bad(f"not supported here: {tok[1]!r}")
        return out

    def positive(self) -> int:
        value = int(self.expect("num"))
        if value < 0:
            raise _bad("LIMIT and OFFSET take a positive integer")
        return value

    def column(self, out: Parsed) -> str:
        name = self.expect("id")
        if self.peek() == ("op", "("):
            raise _bad(f"functions ({name}(...)) are not supported by this server")
        if _column_number(name) is None:
            raise _bad(f"unknown column {name!r}")
        if name not in out.referenced:
            out.referenced.append(name)
        return name

    def ref(self, out: Parsed, name: str) -> str:
        return f"c{out.referenced.index(name)}"

    def sort(self, out: Parsed) -> str:
        col = self.ref(out, self.column(out))
        if self.accept("kw", "DESC"):
            return f"{col} DESC"
        self.accept("kw", "ASC")
        return col

    def condition_list(self, out: Parsed) -> str:
        parts = [self.condition_term(out)]
        while True:
            if self.accept("kw", "AND"):
                parts.append("AND")
            elif self.accept("kw", "OR"):
                parts.append("OR")
            else:
                break
            parts.append(self.condition_term(out))
        return " ".join(parts)

    def condition_term(self, out: Parsed) -> str:
        if self.accept("kw", "NOT"):
            return f"NOT ({self.condition_term(out)})"
        if self.accept("op", "("):
            inner = self.condition_list(out)
            self.expect("op", ")")
            return f"({inner})"
        col = self.ref(out, self.column(out))
        negate = bool(self.accept("kw", "NOT"))
        if self.accept("kw", "LIKE"):
            out.params.append(self.expect("str"))
            sql = f"{col} GLOB like_to_glob(?)"
        elif self.accept("kw", "IN"):
            self.expect("op", "(")
            values = [self.expect("str")]
            while self.accept("op", ","):
                values.append(self.expect("str"))
            self.expect("op", ")")
            out.params.extend(values)
            sql = f"{col} IN ({', '.join('?' * len(values))})"
        elif self.accept("kw", "BETWEEN"):
            low = self.expect("str")
            self.expect("kw", "AND")
            out.params.extend([low, self.expect("str")])
            sql = f"{col} BETWEEN ? AND ?"
        elif self.accept("kw", "IS"):
            if negate:
                raise _bad("use IS NOT NULL")
            not_null = bool(self.accept("kw", "NOT"))
            self.expect("kw", "NULL")
            return f"{col} IS {'NOT ' if not_null else ''}NULL"
        else:
            if negate:
                raise _bad("NOT goes with LIKE, IN or BETWEEN")
            op = self.expect("op")
            if op not in ("=", "!=", "<>", "<", "<=", ">", ">="):
                raise _bad(f"unknown operator {op!r}")
            out.params.append(self.expect("str"))
            return f"{col} {op} ?"
        return f"NOT ({sql})" if negate else sql


#: GenQuery2 names (genquery2_table_column_mappings.hpp) that differ from GenQuery's
GQ2_TO_GQ1 = {
    **{
        f"DATA_{n}": f"D_{g}"
        for n, g in {
            "ID": "DATA_ID", "COLL_ID": "COLL_ID", "PATH": "DATA_PATH",
            "REPL_STATUS": "REPL_STATUS", "STATUS": "DATA_STATUS",
            "CHECKSUM": "DATA_CHECKSUM", "EXPIRY": "EXPIRY", "MAP_ID": "MAP_ID",
            "COMMENTS": "COMMENTS", "CREATE_TIME": "CREATE_TIME",
            "MODIFY_TIME": "MODIFY_TIME", "RESC_ID": "RESC_ID", "RESC_HIER": "RESC_HIER",
            "OWNER_NAME": "OWNER_NAME", "OWNER_ZONE": "OWNER_ZONE", "RESC_NAME": "RESC_NAME",
        }.items()
    },
    **{
        f"RESC_{n}": f"R_{g}"
        for n, g in {
            "ID": "RESC_ID", "NAME": "RESC_NAME", "ZONE_NAME": "ZONE_NAME",
            "TYPE_NAME": "TYPE_NAME", "CLASS_NAME": "CLASS_NAME", "HOSTNAME": "LOC",
            "VAULT_PATH": "VAULT_PATH", "FREE_SPACE": "FREE_SPACE",
            "FREE_SPACE_TIME": "FREE_SPACE_TIME", "INFO": "RESC_INFO",
            "COMMENT": "RESC_COMMENT", "STATUS": "RESC_STATUS", "CREATE_TIME": "CREATE_TIME",
            "MODIFY_TIME": "MODIFY_TIME", "CHILDREN": "RESC_CHILDREN",
            "CONTEXT": "RESC_CONTEXT", "PARENT_ID": "RESC_PARENT",
            "PARENT_CONTEXT": "RESC_PARENT_CONTEXT",
        }.items()
    },
    **{
        f"META_{t}_{n}": f"COL_META_{t}_{n}"
        for t in ("DATA", "COLL", "RESC", "USER")
        for n in ("ATTR_NAME", "ATTR_VALUE", "ATTR_UNITS", "ATTR_ID", "CREATE_TIME", "MODIFY_TIME")
    },
    "GROUP_ID": "USER_GROUP_ID",
    "GROUP_NAME": "USER_GROUP_NAME",
}  # fmt: skip
_BY_NAME = {c.name: c.number for c in C.COLUMNS.values()}


def _column_number(name: str) -> int | None:
    """The GenQuery column behind a GenQuery2 name (GenQuery's own names work too)."""
    return _BY_NAME.get(GQ2_TO_GQ1.get(name, name))


def like_to_glob(pattern: str) -> str:
    """SQL LIKE (case-sensitive, as PostgreSQL's) as a SQLite GLOB pattern."""
    out = []
    for ch in pattern:
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[]":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


def translate(text: str, access: Access | None) -> tuple[str, list[str], list[str]]:
    """``(sql, params, selected column names)`` for a GenQuery2 query."""
    parsed = Parser(text).parse()
    numbers = [_column_number(n) for n in parsed.referenced]
    inner, inner_params = build_sql(
        GenQuery(select=[(n, 0) for n in numbers if n is not None], options=NO_DISTINCT),
        access,
    )
    names = ", ".join(f"c{i}" for i in range(len(parsed.referenced)))
    selected = ", ".join(f"c{parsed.referenced.index(n)}" for n in parsed.columns)
    sql = f"WITH q({names}) AS ({inner}) SELECT {'DISTINCT ' if parsed.distinct else ''}"
    sql += f"{selected} FROM q"
    if parsed.where:
        sql += f" WHERE {parsed.where}"
    if parsed.order:
        sql += " ORDER BY " + ", ".join(parsed.order)
    sql += f" LIMIT {parsed.limit} OFFSET {parsed.offset}"
    return sql, [*inner_params, *parsed.params], parsed.columns


def column_mappings() -> dict[str, dict[str, str]]:
    """``{column: {table: column}}`` as ``rs_genquery2.cpp`` answers ``column_mappings``:
    the GenQuery2 names (and GenQuery's, which this server accepts as well)."""
    names = {**{n: n for n in _BY_NAME}, **{k: v for k, v in GQ2_TO_GQ1.items() if v in _BY_NAME}}
    out: dict[str, dict[str, str]] = {}
    for gq2, gq1 in sorted(names.items()):
        col = C.COLUMNS[_BY_NAME[gq1]]
        table = C.TABLES.get(col.alias, col.alias).split()[0].upper()
        expr = col.expr.split(".", 1)[1] if col.expr.startswith(col.alias + ".") else col.expr
        out[gq2] = {table: expr}
    return out


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@api(GENQUERY2_AN)
async def genquery2(session: Session, req: Request) -> Reply:
    user = session.require_user()
    inp = req.parse(GenQuery2Request)
    zone = str(inp.zone or "")
    if zone and zone != session.state.zone:
        raise IrodsError("SYS_INVALID_ZONE_NAME", f"unknown zone {zone!r}")
    if int(inp.column_mappings or 0) == 1:
        return Reply(msg=STR_PI(myStr=json.dumps(column_mappings())))
    cat = session.state.catalog
    access = None
    if not user.is_admin:
        access = Access(cat.group_ids(user.id), tickets.active_string(), user.id)
    sql, params, _ = translate(str(inp.query_string or ""), access)
    if int(inp.sql_only or 0) == 1:
        return Reply(msg=STR_PI(myStr=sql))
    cat.db.create_function("like_to_glob", 1, like_to_glob, deterministic=True)
    if C.RESC_HIER_FUNCTION in sql:
        from .genquery import _resc_hier_function

        _resc_hier_function(cat.db)
    try:
        rows = cat.db.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise IrodsError("SYS_INVALID_INPUT_PARAM", f"GenQuery2: {exc}") from exc
    return Reply(msg=STR_PI(myStr=json.dumps([[_text(v) for v in row] for row in rows])))
