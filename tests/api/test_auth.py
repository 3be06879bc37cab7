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


def test_acting_for_users(unix_user) -> None:
    me = unix_user().pw_name
    settings = AuthSettings(min_uid=1000, check_users=True)
    svc = Principal(PrincipalKind.SERVICE, "streamer", frozenset({me}))
    wide = Principal(PrincipalKind.SERVICE, "any", frozenset({"*"}))
    user = Principal(PrincipalKind.USER, me, frozenset({me}))
    authorize_stager_user(svc, me, settings)
    authorize_stager_user(user, me, settings)
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


def test_nobody_and_no_login_accounts_are_refused(unix_user) -> None:
    """uid 65534 and a nologin account are not personal accounts, whoever asks."""
    wide = Principal(PrincipalKind.SERVICE, "any", frozenset({"*"}))
    settings = AuthSettings()
    svc_account = unix_user(login_shell="/usr/sbin/nologin").pw_name
    for name in ("nobody", svc_account):
        with pytest.raises(Forbidden, match="personal accounts"):
            authorize_stager_user(wide, name, settings)
        with pytest.raises(Forbidden, match="personal accounts"):
            authorize_stager_user(Principal(PrincipalKind.USER, name), name, settings)
    with pytest.raises(Forbidden, match="nobody"):
        authorize_stager_user(wide, "nobody", AuthSettings(check_users=False))
    high = unix_user()
    with pytest.raises(Forbidden, match="not a personal account"):
        authorize_stager_user(wide, high.pw_name, AuthSettings(max_uid=high.pw_uid - 1))
