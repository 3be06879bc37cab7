"""GenQuery column numbers mapped onto the catalog schema, and how the tables join.

Every GenQuery column (the numbers in python-irodsclient's ``irods/models.py`` and iRODS's
``rodsGenQuery.h``) is an SQL expression over one *table alias*. The aliases and the links
between them form a tree, as in iRODS's ``general_query_setup.cpp``: the engine joins the
aliases a query uses along the unique paths of that tree. Meta and access tables get one
alias per object type (``r_data_meta_main``, ``r_coll_meta_main``, ...), so a query can
touch data and collection AVUs at once.
"""

from __future__ import annotations

from dataclasses import dataclass

#: alias -> the FROM item that defines it
TABLES: dict[str, str] = {
    "r_zone_main": "r_zone_main",
    "r_user_main": "r_user_main",
    "r_user_group": "r_user_group",
    "r_group_main": "r_user_main r_group_main",
    "r_user_auth": "r_user_auth",
    "r_resc_main": "r_resc_main",
    "r_coll_main": "r_coll_main",
    "r_data_main": "r_data_main",
    "r_data_metamap": "r_objt_metamap r_data_metamap",
    "r_data_meta_main": "r_meta_main r_data_meta_main",
    "r_coll_metamap": "r_objt_metamap r_coll_metamap",
    "r_coll_meta_main": "r_meta_main r_coll_meta_main",
    "r_resc_metamap": "r_objt_metamap r_resc_metamap",
    "r_resc_meta_main": "r_meta_main r_resc_meta_main",
    "r_user_metamap": "r_objt_metamap r_user_metamap",
    "r_user_meta_main": "r_meta_main r_user_meta_main",
    "r_data_access": "r_objt_access r_data_access",
    "r_data_tokn_accs": "r_tokn_main r_data_tokn_accs",
    "r_data_user_group": "r_user_group r_data_user_group",
    "r_data_user_main": "r_user_main r_data_user_main",
    "r_coll_access": "r_objt_access r_coll_access",
    "r_coll_tokn_accs": "r_tokn_main r_coll_tokn_accs",
    "r_coll_user_group": "r_user_group r_coll_user_group",
    "r_coll_user_main": "r_user_main r_coll_user_main",
    # tickets (general_query_setup.cpp): a component of their own, joined to nothing else
    "r_ticket_main": "r_ticket_main",
    "r_ticket_allowed_hosts": "r_ticket_allowed_hosts",
    "r_ticket_allowed_users": "r_ticket_allowed_users",
    "r_ticket_allowed_groups": "r_ticket_allowed_groups",
    "r_ticket_user_main": "r_user_main r_ticket_user_main",
    "r_ticket_coll_main": "r_coll_main r_ticket_coll_main",
    "r_ticket_data_main": "r_data_main r_ticket_data_main",
    "r_ticket_data_coll_main": "r_coll_main r_ticket_data_coll_main",
    # quotas (general_query_setup.cpp); usage rows join nothing (no cycle in the tree)
    "r_quota_main": "r_quota_main",
    "r_quota_usage": "r_quota_usage",
    "r_quota_user_main": "r_user_main r_quota_user_main",
    "r_quota_user_group": "r_user_main r_quota_user_group",
    "r_quota_resc_main": "r_resc_main r_quota_resc_main",
}

#: (alias, alias, join condition): the edges of the join tree (no cycles)
LINKS: list[tuple[str, str, str]] = [
    ("r_coll_main", "r_data_main", "r_coll_main.coll_id = r_data_main.coll_id"),
    ("r_resc_main", "r_data_main", "r_resc_main.resc_id = r_data_main.resc_id"),
    ("r_resc_main", "r_resc_metamap", "r_resc_main.resc_id = r_resc_metamap.object_id"),
    ("r_coll_main", "r_coll_metamap", "r_coll_main.coll_id = r_coll_metamap.object_id"),
    ("r_data_main", "r_data_metamap", "r_data_main.data_id = r_data_metamap.object_id"),
    ("r_user_main", "r_user_metamap", "r_user_main.user_id = r_user_metamap.object_id"),
    ("r_resc_metamap", "r_resc_meta_main", "r_resc_metamap.meta_id = r_resc_meta_main.meta_id"),
    ("r_coll_metamap", "r_coll_meta_main", "r_coll_metamap.meta_id = r_coll_meta_main.meta_id"),
    ("r_data_metamap", "r_data_meta_main", "r_data_metamap.meta_id = r_data_meta_main.meta_id"),
    ("r_user_metamap", "r_user_meta_main", "r_user_metamap.meta_id = r_user_meta_main.meta_id"),
    ("r_coll_main", "r_coll_access", "r_coll_main.coll_id = r_coll_access.object_id"),
    ("r_data_main", "r_data_access", "r_data_main.data_id = r_data_access.object_id"),
    (
        "r_coll_access",
        "r_coll_tokn_accs",
        "r_coll_access.access_type_id = r_coll_tokn_accs.token_id"
        " AND r_coll_tokn_accs.token_namespace = 'access_type'",
    ),
    (
        "r_coll_access",
        "r_coll_user_group",
        "r_coll_access.user_id = r_coll_user_group.group_user_id",
    ),
    (
        "r_data_access",
        "r_data_tokn_accs",
        "r_data_access.access_type_id = r_data_tokn_accs.token_id"
        " AND r_data_tokn_accs.token_namespace = 'access_type'",
    ),
    (
        "r_data_access",
        "r_data_user_group",
        "r_data_access.user_id = r_data_user_group.group_user_id",
    ),
    (
        "r_coll_user_group",
        "r_coll_user_main",
        "r_coll_user_group.user_id = r_coll_user_main.user_id",
    ),
    (
        "r_data_user_group",
        "r_data_user_main",
        "r_data_user_group.user_id = r_data_user_main.user_id",
    ),
    ("r_user_main", "r_user_auth", "r_user_main.user_id = r_user_auth.user_id"),
    ("r_user_main", "r_data_access", "r_user_main.user_id = r_data_access.user_id"),
    ("r_user_main", "r_user_group", "r_user_main.user_id = r_user_group.user_id"),
    ("r_user_group", "r_group_main", "r_user_group.group_user_id = r_group_main.user_id"),
    *(
        (
            "r_ticket_main",
            f"r_ticket_allowed_{t}",
            f"r_ticket_main.ticket_id = r_ticket_allowed_{t}.ticket_id",
        )
        for t in ("hosts", "users", "groups")
    ),
    ("r_ticket_main", "r_ticket_user_main", "r_ticket_main.user_id = r_ticket_user_main.user_id"),
    ("r_ticket_main", "r_ticket_coll_main", "r_ticket_main.object_id = r_ticket_coll_main.coll_id"),
    ("r_ticket_main", "r_ticket_data_main", "r_ticket_main.object_id = r_ticket_data_main.data_id"),
    (
        "r_ticket_data_main",
        "r_ticket_data_coll_main",
        "r_ticket_data_main.coll_id = r_ticket_data_coll_main.coll_id",
    ),
    ("r_quota_main", "r_quota_user_main", "r_quota_main.user_id = r_quota_user_main.user_id"),
    ("r_quota_main", "r_quota_user_group", "r_quota_main.user_id = r_quota_user_group.user_id"),
    ("r_quota_main", "r_quota_resc_main", "r_quota_main.resc_id = r_quota_resc_main.resc_id"),
]

#: SQL function (registered by the engine) giving "root;...;leaf" for a leaf resource id
RESC_HIER_FUNCTION = "irods_resc_hier"


@dataclass(frozen=True)
class Column:
    """One GenQuery column: its number, iRODS name, table alias and SQL expression."""

    number: int
    name: str
    alias: str
    expr: str


def _table(alias: str, names: dict[int, tuple[str, str]]) -> list[Column]:
    return [
        Column(num, name, alias, sql if "(" in sql else f"{alias}.{sql}")
        for num, (name, sql) in names.items()
    ]


def _meta(alias: str, base: int, kind: str) -> list[Column]:
    return _table(
        alias,
        {
            base: (f"COL_META_{kind}_ATTR_NAME", "meta_attr_name"),
            base + 1: (f"COL_META_{kind}_ATTR_VALUE", "meta_attr_value"),
            base + 2: (f"COL_META_{kind}_ATTR_UNITS", "meta_attr_unit"),
            base + 3: (f"COL_META_{kind}_ATTR_ID", "meta_id"),
            base + 4: (f"COL_META_{kind}_CREATE_TIME", "create_ts"),
            base + 5: (f"COL_META_{kind}_MODIFY_TIME", "modify_ts"),
        },
    )


def _access(alias: str, tokens: str, base: int, kind: str) -> list[Column]:
    return [
        Column(base, f"{kind}_ACCESS_TYPE", alias, f"{alias}.access_type_id"),
        Column(base + 1, f"{kind}_ACCESS_NAME", tokens, f"{tokens}.token_name"),
        Column(base + 2, f"{kind}_TOKEN_NAMESPACE", tokens, f"{tokens}.token_namespace"),
        Column(base + 3, f"{kind}_ACCESS_USER_ID", alias, f"{alias}.user_id"),
        Column(base + 4, f"{kind}_ACCESS_OBJECT_ID", alias, f"{alias}.object_id"),
    ]


_ALL: list[Column] = [
    *_table(
        "r_zone_main",
        {
            101: ("ZONE_ID", "zone_id"),
            102: ("ZONE_NAME", "zone_name"),
            103: ("ZONE_TYPE", "zone_type_name"),
            104: ("ZONE_CONNECTION", "zone_conn_string"),
            105: ("ZONE_COMMENT", "r_comment"),
            106: ("ZONE_CREATE_TIME", "create_ts"),
            107: ("ZONE_MODIFY_TIME", "modify_ts"),
        },
    ),
    *_table(
        "r_user_main",
        {
            201: ("USER_ID", "user_id"),
            202: ("USER_NAME", "user_name"),
            203: ("USER_TYPE", "user_type_name"),
            204: ("USER_ZONE", "zone_name"),
            205: ("USER_DN_INVALID", "r_comment"),
            206: ("USER_INFO", "user_info"),
            207: ("USER_COMMENT", "r_comment"),
            208: ("USER_CREATE_TIME", "create_ts"),
            209: ("USER_MODIFY_TIME", "modify_ts"),
        },
    ),
    *_table(
        "r_resc_main",
        {
            301: ("R_RESC_ID", "resc_id"),
            302: ("R_RESC_NAME", "resc_name"),
            303: ("R_ZONE_NAME", "zone_name"),
            304: ("R_TYPE_NAME", "resc_type_name"),
            305: ("R_CLASS_NAME", "resc_class_name"),
            306: ("R_LOC", "resc_net"),
            307: ("R_VAULT_PATH", "resc_def_path"),
            308: ("R_FREE_SPACE", "free_space"),
            309: ("R_RESC_INFO", "resc_info"),
            310: ("R_RESC_COMMENT", "r_comment"),
            311: ("R_CREATE_TIME", "create_ts"),
            312: ("R_MODIFY_TIME", "modify_ts"),
            313: ("R_RESC_STATUS", "resc_status"),
            314: ("R_FREE_SPACE_TIME", "free_space_ts"),
            315: ("R_RESC_CHILDREN", "resc_children"),
            316: ("R_RESC_CONTEXT", "resc_context"),
            317: ("R_RESC_PARENT", "resc_parent"),
            318: ("R_RESC_PARENT_CONTEXT", "resc_parent_context"),
        },
    ),
    *_table(
        "r_data_main",
        {
            401: ("D_DATA_ID", "data_id"),
            402: ("D_COLL_ID", "coll_id"),
            403: ("DATA_NAME", "data_name"),
            404: ("DATA_REPL_NUM", "data_repl_num"),
            405: ("DATA_VERSION", "data_version"),
            406: ("DATA_TYPE_NAME", "data_type_name"),
            407: ("DATA_SIZE", "data_size"),
            410: ("D_DATA_PATH", "data_path"),
            411: ("D_OWNER_NAME", "data_owner_name"),
            412: ("D_OWNER_ZONE", "data_owner_zone"),
            413: ("D_REPL_STATUS", "data_is_dirty"),
            414: ("D_DATA_STATUS", "data_status"),
            415: ("D_DATA_CHECKSUM", "data_checksum"),
            416: ("D_EXPIRY", "data_expiry_ts"),
            417: ("D_MAP_ID", "data_map_id"),
            418: ("D_COMMENTS", "r_comment"),
            419: ("D_CREATE_TIME", "create_ts"),
            420: ("D_MODIFY_TIME", "modify_ts"),
            421: ("DATA_MODE", "data_mode"),
            422: ("D_RESC_HIER", f"{RESC_HIER_FUNCTION}(r_data_main.resc_id)"),
            423: ("D_RESC_ID", "resc_id"),
        },
    ),
    # the replica's (leaf) resource name comes from r_resc_main, as in iRODS 4.2+
    Column(409, "D_RESC_NAME", "r_resc_main", "r_resc_main.resc_name"),
    *_table(
        "r_coll_main",
        {
            500: ("COLL_ID", "coll_id"),
            501: ("COLL_NAME", "coll_name"),
            502: ("COLL_PARENT_NAME", "parent_coll_name"),
            503: ("COLL_OWNER_NAME", "coll_owner_name"),
            504: ("COLL_OWNER_ZONE", "coll_owner_zone"),
            505: ("COLL_MAP_ID", "coll_map_id"),
            506: ("COLL_INHERITANCE", "coll_inheritance"),
            507: ("COLL_COMMENTS", "r_comment"),
            508: ("COLL_CREATE_TIME", "create_ts"),
            509: ("COLL_MODIFY_TIME", "modify_ts"),
            510: ("COLL_TYPE", "coll_type"),
            511: ("COLL_INFO1", "coll_info1"),
            512: ("COLL_INFO2", "coll_info2"),
        },
    ),
    *_meta("r_data_meta_main", 600, "DATA"),
    *_meta("r_coll_meta_main", 610, "COLL"),
    *_meta("r_resc_meta_main", 630, "RESC"),
    *_meta("r_user_meta_main", 640, "USER"),
    *_access("r_data_access", "r_data_tokn_accs", 700, "DATA"),
    *_access("r_coll_access", "r_coll_tokn_accs", 710, "COLL"),
    Column(900, "USER_GROUP_ID", "r_user_group", "r_user_group.group_user_id"),
    Column(901, "USER_GROUP_NAME", "r_group_main", "r_group_main.user_name"),
    Column(1300, "COL_COLL_USER_NAME", "r_coll_user_main", "r_coll_user_main.user_name"),
    Column(1301, "COL_COLL_USER_ZONE", "r_coll_user_main", "r_coll_user_main.zone_name"),
    Column(1310, "COL_DATA_USER_NAME", "r_data_user_main", "r_data_user_main.user_name"),
    Column(1311, "COL_DATA_USER_ZONE", "r_data_user_main", "r_data_user_main.zone_name"),
    Column(1600, "USER_AUTH_ID", "r_user_auth", "r_user_auth.user_id"),
    Column(1601, "USER_DN", "r_user_auth", "r_user_auth.user_auth_name"),
    *_table(
        "r_ticket_main",
        {
            2200: ("TICKET_ID", "ticket_id"),
            2201: ("TICKET_STRING", "ticket_string"),
            2202: ("TICKET_TYPE", "ticket_type"),
            2203: ("TICKET_USER_ID", "user_id"),
            2204: ("TICKET_OBJECT_ID", "object_id"),
            2205: ("TICKET_OBJECT_TYPE", "object_type"),
            2206: ("TICKET_USES_LIMIT", "uses_limit"),
            2207: ("TICKET_USES_COUNT", "uses_count"),
            2208: ("TICKET_EXPIRY_TS", "ticket_expiry_ts"),
            2209: ("TICKET_CREATE_TIME", "create_ts"),
            2210: ("TICKET_MODIFY_TIME", "modify_ts"),
            2211: ("TICKET_WRITE_FILE_COUNT", "write_file_count"),
            2212: ("TICKET_WRITE_FILE_LIMIT", "write_file_limit"),
            2213: ("TICKET_WRITE_BYTE_COUNT", "write_byte_count"),
            2214: ("TICKET_WRITE_BYTE_LIMIT", "write_byte_limit"),
        },
    ),
    *_table(
        "r_quota_main",
        {
            2000: ("QUOTA_USER_ID", "user_id"),
            2001: ("QUOTA_RESC_ID", "resc_id"),
            2002: ("QUOTA_LIMIT", "quota_limit"),
            2003: ("QUOTA_OVER", "quota_over"),
            2004: ("QUOTA_MODIFY_TIME", "modify_ts"),
        },
    ),
    *_table(
        "r_quota_usage",
        {
            2010: ("QUOTA_USAGE_USER_ID", "user_id"),
            2011: ("QUOTA_USAGE_RESC_ID", "resc_id"),
            2012: ("QUOTA_USAGE", "quota_usage"),
            2013: ("QUOTA_USAGE_MODIFY_TIME", "modify_ts"),
        },
    ),
    Column(2020, "QUOTA_RESC_NAME", "r_quota_resc_main", "r_quota_resc_main.resc_name"),
    Column(2021, "QUOTA_USER_NAME", "r_quota_user_main", "r_quota_user_main.user_name"),
    Column(2022, "QUOTA_USER_ZONE", "r_quota_user_main", "r_quota_user_main.zone_name"),
    Column(2023, "QUOTA_USER_TYPE", "r_quota_user_group", "r_quota_user_group.user_type_name"),
    Column(
        2220,
        "TICKET_ALLOWED_HOST_TICKET_ID",
        "r_ticket_allowed_hosts",
        "r_ticket_allowed_hosts.ticket_id",
    ),
    Column(2221, "TICKET_ALLOWED_HOST", "r_ticket_allowed_hosts", "r_ticket_allowed_hosts.host"),
    Column(
        2222,
        "TICKET_ALLOWED_USER_TICKET_ID",
        "r_ticket_allowed_users",
        "r_ticket_allowed_users.ticket_id",
    ),
    Column(
        2223,
        "TICKET_ALLOWED_USER_NAME",
        "r_ticket_allowed_users",
        "r_ticket_allowed_users.user_name",
    ),
    Column(
        2224,
        "TICKET_ALLOWED_GROUP_TICKET_ID",
        "r_ticket_allowed_groups",
        "r_ticket_allowed_groups.ticket_id",
    ),
    Column(
        2225,
        "TICKET_ALLOWED_GROUP_NAME",
        "r_ticket_allowed_groups",
        "r_ticket_allowed_groups.group_name",
    ),
    Column(2226, "TICKET_DATA_NAME", "r_ticket_data_main", "r_ticket_data_main.data_name"),
    Column(
        2227,
        "TICKET_DATA_COLL_NAME",
        "r_ticket_data_coll_main",
        "r_ticket_data_coll_main.coll_name",
    ),
    Column(2228, "TICKET_COLL_NAME", "r_ticket_coll_main", "r_ticket_coll_main.coll_name"),
    Column(2229, "TICKET_OWNER_NAME", "r_ticket_user_main", "r_ticket_user_main.user_name"),
    Column(2230, "TICKET_OWNER_ZONE", "r_ticket_user_main", "r_ticket_user_main.zone_name"),
]

#: column number -> Column
COLUMNS: dict[int, Column] = {c.number: c for c in _ALL}

#: iRODS tables this server does not keep (delayed rules): queries over their
#: columns are answered as over empty tables
EMPTY_RANGES: tuple[range, ...] = (range(1000, 1100),)

# the columns whose conditions iRODS moves onto extra AVU joins when repeated
DATA_META_NAME, DATA_META_VALUE = 600, 601
COLL_META_NAME, COLL_META_VALUE = 610, 611
RESC_META_NAME, USER_META_NAME = 630, 640
COLL_NAME, DATA_NAME, DATA_REPL_NUM = 501, 403, 404


def is_empty_table_column(number: int) -> bool:
    """True for a column of an iRODS table this server does not keep."""
    return any(number in r for r in EMPTY_RANGES)
