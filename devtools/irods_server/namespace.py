"""The logical namespace: collections and data objects (rows of r_coll_main / r_data_main)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from .errors import IrodsError

if TYPE_CHECKING:
    from .catalog import Catalog


def normalize(path: str) -> str:
    """Collapse repeated '/' and drop a trailing '/'; the path must be absolute."""
    if not path.startswith("/"):
        raise IrodsError("USER_INPUT_PATH_ERR", f"not an absolute path: {path!r}")
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts)


def split(path: str) -> tuple[str, str]:
    """``"/a/b/c"`` -> ``("/a/b", "c")``; normalises a trailing '/'."""
    path = normalize(path)
    parent, _, name = path.rpartition("/")
    return (parent or "/", name)


def coll(cat: Catalog, path: str) -> sqlite3.Row | None:
    """The r_coll_main row of a collection, or None."""
    return cat.db.execute(
        "SELECT * FROM r_coll_main WHERE coll_name = ?", (normalize(path),)
    ).fetchone()


def data_replicas(cat: Catalog, path: str) -> list[sqlite3.Row]:
    """The r_data_main rows of a data object (one per replica), ordered by replica number."""
    parent, name = split(path)
    return cat.db.execute(
        "SELECT d.* FROM r_data_main d JOIN r_coll_main c ON c.coll_id = d.coll_id"
        " WHERE c.coll_name = ? AND d.data_name = ? ORDER BY d.data_repl_num",
        (parent, name),
    ).fetchall()


def replicas_by_id(cat: Catalog, data_id: int) -> list[sqlite3.Row]:
    return cat.db.execute(
        "SELECT * FROM r_data_main WHERE data_id = ? ORDER BY data_repl_num", (data_id,)
    ).fetchall()


def object_id(cat: Catalog, path: str) -> tuple[str, int] | None:
    """``("d", data_id)`` or ``("c", coll_id)`` for a logical path, or None."""
    reps = data_replicas(cat, path)
    if reps:
        return ("d", int(reps[0]["data_id"]))
    row = coll(cat, path)
    return None if row is None else ("c", int(row["coll_id"]))


def data_path(cat: Catalog, data_id: int) -> str | None:
    """The logical path of a data object id."""
    row = cat.db.execute(
        "SELECT c.coll_name, d.data_name FROM r_data_main d JOIN r_coll_main c"
        " ON c.coll_id = d.coll_id WHERE d.data_id = ? LIMIT 1",
        (data_id,),
    ).fetchone()
    if row is None:
        return None
    return join(str(row[0]), str(row[1]))


def join(parent: str, name: str) -> str:
    return (parent.rstrip("/") + "/" + name) if name else parent


def is_within(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def subcollections(cat: Catalog, root: str) -> list[sqlite3.Row]:
    """``root`` and every collection below it, deepest first."""
    root = normalize(root)
    like = root.rstrip("/").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
    rows = cat.db.execute(
        "SELECT * FROM r_coll_main WHERE coll_name = ? OR coll_name LIKE ? ESCAPE '\\'",
        (root, like),
    ).fetchall()
    return sorted(rows, key=lambda r: -len(str(r["coll_name"])))


def trash_path(zone: str, user: str, path: str) -> str:
    """Where ``path`` goes when removed to the trash: /zone/trash/home/<user>/<rel>."""
    prefix = f"/{zone}/home/"
    if path.startswith(prefix):
        rel = path[len(prefix) :]
        owner, _, rest = rel.partition("/")
        rel = f"{owner}/{rest}" if rest else owner
        if owner != user:
            rel = f"{user}/{rel}"
    else:
        rel = f"{user}/{path.removeprefix('/' + zone + '/')}"
    return f"/{zone}/trash/home/{rel}"
