"""Password hashes and who may act for whom."""

from __future__ import annotations

import pytest

from services.api.auth import (
    AuthSettings,
    Principal,
    authorize_stager_user,
    hash_password,
    verify_password,
)
from shared.errors import Forbidden, InvalidInput
from shared.messaging.messages import PrincipalKind


def test_hash_format_and_verify() -> None:
    h = hash_password("s3cret!")
    scheme, log2_n, _r, _p, salt, digest = h.split("$")
    assert scheme == "scrypt" and int(log2_n) >= 14 and salt and digest
    assert verify_password("s3cret!", h)
    assert not verify_password("s3cret", h)
    assert hash_password("s3cret!") != h  # per-password salt
    assert not verify_password("x", "md5$abc")
    assert not verify_password("x", "scrypt$bad")


def test_acting_for_users() -> None:
    settings = AuthSettings(min_uid=1000, check_users=True)
    svc = Principal(PrincipalKind.SERVICE, "streamer", frozenset({"nobody"}))
    wide = Principal(PrincipalKind.SERVICE, "any", frozenset({"*"}))
    user = Principal(PrincipalKind.USER, "nobody", frozenset({"nobody"}))
    authorize_stager_user(svc, "nobody", settings)  # uid 65534, an existing account
    authorize_stager_user(user, "nobody", settings)
    with pytest.raises(Forbidden, match="may not act for"):
        authorize_stager_user(svc, "other", settings)
    with pytest.raises(Forbidden, match="own user name"):
        authorize_stager_user(user, "other", settings)
    with pytest.raises(Forbidden, match="root"):
        authorize_stager_user(wide, "root", settings)
    with pytest.raises(Forbidden, match="system account"):
        authorize_stager_user(wide, "daemon", settings)
    with pytest.raises(InvalidInput, match="not a known user"):
        authorize_stager_user(wide, "zz-no-such-user", settings)
