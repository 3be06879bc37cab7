"""shared.unix_users: the one rule for which accounts a transfer may run as (real users)."""

from __future__ import annotations

import pytest

from shared.unix_users import UnknownUser, UserRefused, check_name, vet


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


@pytest.mark.parametrize(
    ("name", "error", "says"),
    [
        ("root", UserRefused, "root"),
        ("daemon", UserRefused, "system account"),
        ("nosuchusr9", UnknownUser, "not a known user"),
        ("Bad Name", UnknownUser, "not a valid Unix user name"),
        ("-rf", UnknownUser, "not a valid Unix user name"),
    ],
)
def test_refusals_say_why(name: str, error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says):
        vet(name)


def test_check_name_alone_needs_no_user_database() -> None:
    check_name("someone-elsewhere")  # not looked up
    with pytest.raises(UserRefused):
        check_name("root")
