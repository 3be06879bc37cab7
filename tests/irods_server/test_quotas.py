"""Quotas (API 701 ``set-quota``, ``calculate-usage``; GenQuery ``Quota`` columns) as
iRODS 4.3.4's ``db_set_quota_op``, ``db_calc_usage_and_quota_op`` and ``setOverQuota``
(plugins/database/src/db_plugin.cpp) compute them: usage per data owner, a group's the
sum of its members', ``quota_over`` = usage - limit."""

from __future__ import annotations

from typing import Any

import pytest
from irods.exception import CAT_INVALID_GROUP, CAT_INVALID_RESOURCE, SYS_NO_API_PRIV
from irods.models import Quota


def over(session: Any, user_id: int) -> list[tuple[int, int, int]]:
    rows = session.query(Quota.resc_id, Quota.limit, Quota.over).filter(Quota.user_id == user_id)
    return sorted((r[Quota.resc_id], r[Quota.limit], r[Quota.over]) for r in rows)


def test_group_and_user_quotas(irods_session: Any, irods_user: Any, unique_name: str) -> None:
    name, user = irods_user()
    group = irods_session.groups.create(f"q{unique_name}")
    try:
        group.addmember(name)
        group.set_quota(10000)
        irods_session.users.set_quota(name, 5000, resource="demoResc")
        uid = irods_session.users.get(name).id
        assert over(irods_session, group.id) == [(0, 10000, -10000)]
        assert over(irods_session, uid) == [(irods_session.resources.get("demoResc").id, 5000,
                                             -5000)]  # fmt: skip
        with user.data_objects.open(f"/tempZone/home/{name}/f", "w") as f:
            f.write(b"_" * 1400)
        assert over(irods_session, group.id) == [(0, 10000, -10000)]  # until calculated
        irods_session.groups.calculate_usage()
        assert over(irods_session, group.id) == [(0, 10000, 1400 - 10000)]
        assert over(irods_session, uid)[0][2] == 1400 - 5000
        group.set_quota(0)  # removes it
        assert over(irods_session, group.id) == []
    finally:
        user.data_objects.unlink(f"/tempZone/home/{name}/f", force=True)
        irods_session.groups.remove(group.name)


def test_bad_quota_requests(irods_session: Any, irods_user: Any) -> None:
    _, user = irods_user()
    with pytest.raises(CAT_INVALID_GROUP):
        irods_session.groups.set_quota("no_such_group", 10)
    with pytest.raises(CAT_INVALID_RESOURCE):
        irods_session.groups.set_quota("public", 10, resource="no_such_resc")
    with pytest.raises(SYS_NO_API_PRIV):  # attack: a rodsuser lifting its own quota
        user.groups.set_quota("public", 10**12)
    assert over(irods_session, irods_session.groups.get("public").id) == []
