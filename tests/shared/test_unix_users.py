"""shared.unix_users: the one rule for which accounts a transfer may run as (real users)."""

from __future__ import annotations

import pytest

from shared.unix_users import (
    DEFAULT_MAX_UID,
    UnknownUser,
    UserRefused,
    check_name,
    login_refused,
    vet,
)


def test_a_personal_account_is_its_identity(unix_user) -> None:
    pw = unix_user()
    ident = vet(pw.pw_name, min_uid=1000)
    assert (ident.name, ident.uid, ident.gid, ident.home) == (
        pw.pw_name,
        pw.pw_uid,
        pw.pw_gid,
        pw.pw_dir,
    )


def test_below_min_uid_is_a_system_account(unix_user) -> None:
    pw = unix_user()
    with pytest.raises(UserRefused, match="system account"):
        vet(pw.pw_name, min_uid=pw.pw_uid + 1)


def test_above_max_uid_is_refused(unix_user) -> None:
    pw = unix_user()
    with pytest.raises(UserRefused, match=rf"uid {pw.pw_uid} > {pw.pw_uid - 1}"):
        vet(pw.pw_name, max_uid=pw.pw_uid - 1)
    assert vet(pw.pw_name, max_uid=pw.pw_uid).uid == pw.pw_uid  # the range is inclusive


def test_a_real_account_above_the_default_range(unix_user) -> None:
    pw = unix_user(uid=DEFAULT_MAX_UID + 7)
    with pytest.raises(UserRefused, match="not a personal account"):
        vet(pw.pw_name)
    assert vet(pw.pw_name, max_uid=DEFAULT_MAX_UID + 7).uid == pw.pw_uid  # configurable


@pytest.mark.parametrize("shell", ["/usr/sbin/nologin", "/sbin/nologin", "/bin/false"])
def test_no_login_accounts_are_refused(unix_user, shell: str) -> None:
    pw = unix_user(login_shell=shell)
    assert pw.pw_shell == shell and 1000 <= pw.pw_uid <= DEFAULT_MAX_UID
    with pytest.raises(UserRefused, match="no-login account"):
        vet(pw.pw_name)


def test_login_shells_pass() -> None:
    assert not login_refused("/bin/bash") and not login_refused("/usr/bin/zsh")
    assert not login_refused("")  # empty means /bin/sh
    assert login_refused("/usr/sbin/nologin") and login_refused("/usr/bin/false")


@pytest.mark.parametrize(
    ("name", "error", "says"),
    [
        ("root", UserRefused, "root"),
        ("daemon", UserRefused, "system account"),
        ("nobody", UserRefused, "personal accounts"),
        ("nosuchusr9", UnknownUser, "not a known user"),
        ("Bad Name", UnknownUser, "not a valid Unix user name"),
        ("-rf", UnknownUser, "not a valid Unix user name"),
    ],
)
def test_refusals_say_why(name: str, error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says):
        vet(name)


def test_nobody_is_refused_even_inside_a_widened_range() -> None:
    with pytest.raises(UserRefused, match="'nobody' is refused"):
        vet("nobody", max_uid=70000)


def test_check_name_alone_needs_no_user_database() -> None:
    check_name("someone-elsewhere")  # not looked up
    for name in ("root", "nobody"):
        with pytest.raises(UserRefused):
            check_name(name)
