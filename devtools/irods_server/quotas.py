"""Quotas: ``iadmin suq/sgq`` (API 701 ``set-quota user|group NAME RESC|total LIMIT``)
and ``iadmin cu`` (``calculate-usage``), as iRODS 4.3.4's ``db_set_quota_op``,
``db_calc_usage_and_quota_op`` and ``setOverQuota`` (plugins/database/src/db_plugin.cpp).

Usage is the sum of ``data_size`` per data owner and resource. ``quota_over`` is usage
minus limit (negative: room left): per user and resource, per user in total
(``resc_id`` 0), and for a group the sum over its members. A limit of 0 removes the
quota. As on a default zone, quotas are reported, not enforced (enforcing needs the
``msiSetRescQuotaPolicy`` rule).
"""

from __future__ import annotations

from .catalog import Catalog, now
from .errors import IrodsError


def set_quota(cat: Catalog, kind: str, name: str, resc: str, limit: str) -> None:
    if kind not in ("user", "group"):
        raise IrodsError("CAT_INVALID_ARGUMENT", f"set-quota: {kind!r} is neither user nor group")
    resc_id = 0
    if resc != "total":
        row = cat.resource(resc)
        if row is None:
            raise IrodsError("CAT_INVALID_RESOURCE", f"no resource {resc!r}")
        resc_id = int(row["resc_id"])
    user_name, _, zone = name.partition("#")
    row = cat.user(user_name, zone or None)
    if kind == "user" and (row is None or row["user_type_name"] == "rodsgroup"):
        raise IrodsError("CAT_INVALID_USER", f"no such user {name}")
    if kind == "group" and (row is None or row["user_type_name"] != "rodsgroup"):
        raise IrodsError("CAT_INVALID_GROUP", f"no such group {name}")
    assert row is not None
    try:
        amount = int(limit)
    except ValueError:
        raise IrodsError("SYS_INVALID_INPUT_PARAM", f"quota {limit!r} is not a number") from None
    uid = int(row["user_id"])
    cat.db.execute("DELETE FROM r_quota_main WHERE user_id = ? AND resc_id = ?", (uid, resc_id))
    if amount > 0:
        cat.db.execute(
            "INSERT INTO r_quota_main (user_id, resc_id, quota_limit, quota_over, modify_ts)"
            " VALUES (?, ?, ?, ?, ?)",
            (uid, resc_id, amount, -amount, now()),
        )
    set_over(cat)


def calculate_usage(cat: Catalog) -> None:
    ts = now()
    cat.db.execute("DELETE FROM r_quota_usage")
    cat.db.execute(
        "INSERT INTO r_quota_usage (quota_usage, resc_id, user_id, modify_ts)"
        " SELECT sum(d.data_size), d.resc_id, u.user_id, ? FROM r_data_main d"
        " JOIN r_user_main u ON u.user_name = d.data_owner_name AND u.zone_name = d.data_owner_zone"
        " GROUP BY d.resc_id, u.user_id",
        (ts,),
    )
    set_over(cat)


def set_over(cat: Catalog) -> None:
    """``setOverQuota``: every quota's ``quota_over`` from the recorded usage."""
    ts = now()
    db = cat.db
    db.execute("UPDATE r_quota_main SET quota_over = -quota_limit")
    member_usage = (
        "SELECT coalesce(sum(qu.quota_usage), 0) FROM r_quota_usage qu WHERE qu.user_id IN ("
        "  SELECT r_quota_main.user_id UNION"
        "  SELECT ug.user_id FROM r_user_group ug WHERE ug.group_user_id = r_quota_main.user_id"
        "  AND ug.user_id != r_quota_main.user_id)"
    )
    db.execute(
        f"UPDATE r_quota_main SET quota_over = ({member_usage}"
        " AND (r_quota_main.resc_id = 0 OR qu.resc_id = r_quota_main.resc_id))"
        " - quota_limit, modify_ts = ?",
        (ts,),
    )
