"""The client API allowlist: the APIs a non-admin client may call.

As ``server/core/src/client_api_allowlist.cpp`` (4.3.4) with the shipped
``"client_api_allowlist_policy": "enforce"`` (``packaging/server_config.json.template``),
checked by ``chkApiPermission`` (``server/core/src/rsApiHandler.cpp``) before any handler
runs: a client whose own user is not a rodsadmin (``is_privileged_client``: the *client*
user, so a rodsadmin proxy acting for a rodsuser is not privileged) calling an API off the
list gets ``SYS_NO_API_PRIV`` (-13000). Of the APIs this server implements only 622
``MOD_DATA_OBJ_META_AN`` is off the list (commented out there); API plugins add
themselves (``irods::client_api_allowlist::add`` in ``plugins/api/src/*.cpp``).
The ``api-allowlist`` leniency (``leniency.py``) is the ``disabled`` policy.
"""

from __future__ import annotations

from .dispatch import Session
from .errors import IrodsError

#: the numbers of the names in ``client_api_allowlist::init`` (``lib/api/include/irods/
#: apiNumberData.h``): the data-object, collection, query, admin and auth APIs
CORE_APIS = frozenset(
    {
        601, 602, 606, 607, 608, 609, 614, 615, 619, 620, 621, 623, 624, 625, 626, 627, 628,
        629, 630, 632, 633, 635, 636, 637, 638, 639, 640, 641, 642, 643, 644, 645, 647, 648,
        649, 650, 651, 652, 653, 657, 658, 659, 660, 661, 664, 665, 666, 667, 668, 669, 671,
        672, 673, 674, 675, 676, 677, 678, 679, 680, 681, 682, 683, 684, 685, 686, 687, 688,
        689, 690, 694, 695, 696, 697, 698, 699, 700, 701, 702, 703, 704, 705, 706, 707, 708,
        709, 710, 713, 714, 722, 723, 724, 725, 726, 801, 802, 1100, 1101, 1201, 1202, 1203,
        1204, 1205, 1206, 10204, 10205, 10215, 10220, 10221,
    }
)  # fmt: skip
#: plugins that add themselves (``api_plugin_number_data.h``): get_file_descriptor_info,
#: data_object_modify_info, atomic metadata, replica_open, replica_close, atomic ACLs,
#: data_object_finalize, touch, switch_user, authenticate
PLUGIN_APIS = frozenset({20000, 20001, 20002, 20003, 20004, 20005, 20006, 20007, 20012, 110000})
ALLOWED = CORE_APIS | PLUGIN_APIS


def check(session: Session, api: int) -> None:
    """``SYS_NO_API_PRIV`` if ``session``'s client may not call ``api``."""
    user = session.user
    if user is None or user.is_admin or api in ALLOWED:
        return
    raise IrodsError(
        "SYS_NO_API_PRIV",
        f"API {api} is not on the client API allowlist; only a rodsadmin client may call it",
    )
