"""Which iRODS release the test server presents itself as: 4.3.4 (the default) or 5.0.2.

What a client can tell apart, read from the iRODS source at the tags ``4.3.4`` and ``5.0.2``:

- the version string of the ``RODS_VERSION`` reply (``relVersion``): ``rods4.3.4`` or
  ``rods5.0.2`` (python-irodsclient's ``server_version`` and every ``server_version >= (5,)``
  branch, e.g. ``data_object.py`` reading ``DataObject.access_time``);
- the API numbers: 5.0.2 adds ``DELAY_RULE_LOCK_AN`` 10222, ``DELAY_RULE_UNLOCK_AN`` 10223
  (``plugins/api/include/irods/plugins/api/api_plugin_number_data.h``) and
  ``UPDATE_REPLICA_ACCESS_TIME_AN`` 10224 (``lib/api/include/irods/apiNumberData.h``); a
  4.3.4 server answers them ``SYS_UNMATCHED_API_NUM``;
- the library features of API 801 (5.0.2 adds ``IRODS_LIBRARY_FEATURE_DELAY_RULE_LOCKING``);
- the GenQuery column ``COL_D_ACCESS_TIME`` 424 (``lib/core/include/irods/rodsGenQuery.h``,
  5.0 only; 4.3.4 answers a query naming it ``CAT_UNKNOWN_TABLE`` here).

Chosen once per server process (``python -m devtools.irods_server --presents 5.0.2``,
``ServerProcess(..., presents="5.0.2")``, or ``IRODS_TEST_SERVER_PRESENTS=5.0.2`` in the
environment of whatever starts the server, e.g. the whole pytest run) before handlers
run: :func:`use` sets it and :func:`install` adjusts the API and column tables to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import columns as C
from .dispatch import HANDLERS


@dataclass(frozen=True)
class Presentation:
    version: str  # "4.3.4"
    # API numbers a server of this release does not have
    absent_apis: frozenset[int] = frozenset()
    # GenQuery columns only this release has
    extra_columns: tuple[C.Column, ...] = ()
    # what API 801 GET_LIBRARY_FEATURES lists (server/api/src/rs_get_library_features.cpp)
    library_features: tuple[tuple[str, int], ...] = ()

    @property
    def rel_version(self) -> str:
        return f"rods{self.version}"

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split("."))


#: iRODS 5 keeps r_data_main.access_ts; this server has no such column and presents the
#: last write time (a create or write sets both to the same value, as a 5.0 server does).
#: Reads do not advance it here (5.0 advances it on a read's close, per its granularity).
ACCESS_TIME = C.Column(424, "DATA_ACCESS_TIME", "r_data_main", "r_data_main.modify_ts")

FIVE_ONLY_APIS = frozenset({10222, 10223, 10224})
# lib/core/include/irods/library_features.h, as rs_get_library_features.cpp lists them
FEATURES_434 = (
    ("IRODS_HAS_LIBRARY_TICKET_ADMINISTRATION", 202209),
    ("IRODS_LIBRARY_FEATURE_TICKET_ADMINISTRATION", 202209),
    ("IRODS_HAS_LIBRARY_ZONE_ADMINISTRATION", 202210),
    ("IRODS_LIBRARY_FEATURE_ZONE_ADMINISTRATION", 202210),
    ("IRODS_HAS_API_ENDPOINT_SWITCH_USER", 202211),
    ("IRODS_LIBRARY_FEATURE_SWITCH_USER", 202211),
    ("IRODS_HAS_LIBRARY_SYSTEM_ERROR", 202301),
    ("IRODS_LIBRARY_FEATURE_SYSTEM_ERROR", 202301),
    ("IRODS_HAS_FEATURE_PROXY_USER_SUPPORT_FOR_CLIENT_CONNECTION_LIBRARIES", 202306),
    ("IRODS_LIBRARY_FEATURE_CLIENT_CONNECTION_LIBRARIES_SUPPORT_PROXY_USERS", 202306),
    ("IRODS_HAS_API_ENDPOINT_CHECK_AUTH_CREDENTIALS", 202307),
    ("IRODS_LIBRARY_FEATURE_CHECK_AUTH_CREDENTIALS", 202307),
    ("IRODS_LIBRARY_FEATURE_REPLICA_TRUNCATE", 202403),
)
FEATURES_502 = (*FEATURES_434, ("IRODS_LIBRARY_FEATURE_DELAY_RULE_LOCKING", 202411))
PRESENTATIONS: dict[str, Presentation] = {
    "4.3.4": Presentation("4.3.4", absent_apis=FIVE_ONLY_APIS, library_features=FEATURES_434),
    "5.0.2": Presentation("5.0.2", extra_columns=(ACCESS_TIME,), library_features=FEATURES_502),
}
DEFAULT = "4.3.4"
ENV_VAR = "IRODS_TEST_SERVER_PRESENTS"

_current = PRESENTATIONS[DEFAULT]


def current() -> Presentation:
    return _current


def use(version: str) -> Presentation:
    """Present as ``version`` (a key of :data:`PRESENTATIONS`); ValueError otherwise."""
    global _current
    try:
        _current = PRESENTATIONS[version]
    except KeyError:
        known = ", ".join(PRESENTATIONS)
        raise ValueError(f"cannot present as iRODS {version!r}: choose one of {known}") from None
    return _current


def install() -> None:
    """Fit the API table and the GenQuery columns to :func:`current` (handlers loaded)."""
    for number in _current.absent_apis:
        HANDLERS.pop(number, None)
    for other in PRESENTATIONS.values():
        for col in other.extra_columns:
            C.COLUMNS.pop(col.number, None)
    for col in _current.extra_columns:
        C.COLUMNS[col.number] = col
