"""Tickets (API 723) and access through them, as iRODS 4.3.4 does it:
``plugins/database/src/db_plugin.cpp`` ``db_mod_ticket_op`` (operations),
``plugins/database/src/mid_level_routines.cpp`` ``checkObjIdByTicket`` and
``cmlCheckTicketRestrictions`` (use), ``general_query.cpp`` ``genqAppendAccessCheck``
(what a ticket holder's queries see). Every attack runs as an unprivileged iRODS user."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import irods.keywords as kw
import pytest
from irods.exception import (
    CAT_INSUFFICIENT_PRIVILEGE_LEVEL,
    CAT_INVALID_AUTHENTICATION,
    CAT_INVALID_USER,
    CAT_NO_ACCESS_PERMISSION,
    CAT_TICKET_EXPIRED,
    CAT_TICKET_INVALID,
    CAT_TICKET_USES_EXCEEDED,
    CollectionDoesNotExist,
    DataObjectDoesNotExist,
    iRODSException,
)
from irods.models import Collection, DataObject, TicketQuery
from irods.session import iRODSSession
from irods.ticket import Ticket

from devtools.irods_server import tickets
from devtools.irods_server.launcher import ServerProcess

UserMaker = Callable[..., tuple[str, Any]]
# what a get of an object the caller may not see raises (its collection is hidden too)
NOT_VISIBLE = (DataObjectDoesNotExist, CollectionDoesNotExist)


@contextlib.contextmanager
def irods_error(code: int) -> Iterator[None]:
    """The request fails with iRODS error ``code`` (python-irodsclient 3.3.0 has no class
    for some ticket codes and raises ``KeyError(code)`` for those)."""
    try:
        yield
    except iRODSException as e:
        assert getattr(e, "code", None) == code, repr(e)
    except KeyError as e:
        assert e.args[0] == code, repr(e)
    else:
        pytest.fail(f"no error {code}")


def as_user(server: ServerProcess, name: str, password: str) -> Any:
    return server.session(name, password)


@pytest.fixture
def alice(irods_user: UserMaker) -> tuple[str, Any]:
    return irods_user(password="apass")


@pytest.fixture
def bob(irods_user: UserMaker) -> tuple[str, Any]:
    return irods_user(password="bpass")


def make(session: Any, path: str, content: bytes = b"abcxyz") -> str:
    with session.data_objects.open(path, "w") as f:
        f.write(content)
    return path


def home(session: Any) -> str:
    return f"/{session.zone}/home/{session.username}"


def test_create_modify_delete_and_query_own_tickets(alice: tuple[str, Any]) -> None:
    name, s = alice
    t = Ticket(s).issue("write", home(s))
    row = s.query(TicketQuery.Ticket).filter(TicketQuery.Ticket.string == t.string).one()
    assert row[TicketQuery.Ticket.type] == "write"
    assert row[TicketQuery.Ticket.object_type] == "collection"
    assert row[TicketQuery.Ticket.write_file_limit] == 10  # icatSysTables default
    created = row[TicketQuery.Ticket.modify_time]
    time.sleep(1.1)  # modify_ts has one-second resolution
    t.modify("uses", "5")
    t.modify("expire", "2030-01-01.00:00:00")
    row = s.query(TicketQuery.Ticket).filter(TicketQuery.Ticket.string == t.string).one()
    assert row[TicketQuery.Ticket.uses_limit] == 5
    assert row[TicketQuery.Ticket.expiry_ts] == "01893456000"
    assert row[TicketQuery.Ticket.modify_time] > created
    owner = s.query(TicketQuery.Owner.name, TicketQuery.Collection.name).one()
    assert owner[TicketQuery.Owner.name] == name
    assert owner[TicketQuery.Collection.name] == home(s)
    t.delete()
    assert len(s.query(TicketQuery.Ticket).filter(TicketQuery.Ticket.string == t.string).all()) == 0


def test_a_ticket_string_may_not_be_a_number(alice: tuple[str, Any]) -> None:
    _, s = alice
    with pytest.raises(CAT_TICKET_INVALID):
        Ticket(s, "12345").issue("read", home(s))


def test_attack_ticket_on_someone_elses_object_is_refused(
    alice: tuple[str, Any], bob: tuple[str, Any]
) -> None:
    _, a = alice
    _, b = bob
    path = make(a, f"{home(a)}/secret")
    with pytest.raises(CAT_NO_ACCESS_PERMISSION):  # bob does not own it
        Ticket(b).issue("read", path)
    Ticket(a).issue("read", path)  # the owner may


def test_attack_modify_delete_or_list_anothers_ticket(
    alice: tuple[str, Any], bob: tuple[str, Any]
) -> None:
    _, a = alice
    _, b = bob
    t = Ticket(a).issue("read", home(a))
    with pytest.raises(CAT_TICKET_INVALID):
        Ticket(b, t.string).modify("uses", "1000")
    with pytest.raises(CAT_TICKET_INVALID):
        Ticket(b, t.string).delete()
    assert len(b.query(TicketQuery.Ticket).all()) == 0  # tickets show only their owner
    with pytest.raises(CAT_INSUFFICIENT_PRIVILEGE_LEVEL):  # ADMIN_KW is for rodsadmins
        Ticket(b, t.string).delete(**{kw.ADMIN_KW: ""})
    assert len(a.query(TicketQuery.Ticket).all()) == 1


def test_admin_keyword_lets_a_rodsadmin_delete_anyones_ticket(
    alice: tuple[str, Any], irods_session: Any
) -> None:
    _, a = alice
    t = Ticket(a).issue("read", home(a))
    with pytest.raises(CAT_TICKET_INVALID):  # without ADMIN_KW: only one's own
        Ticket(irods_session, t.string).delete()
    Ticket(irods_session, t.string).delete(**{kw.ADMIN_KW: ""})
    assert len(a.query(TicketQuery.Ticket).all()) == 0


def test_read_ticket_gives_read_and_listing_of_only_what_it_covers(
    irods_server: ServerProcess, alice: tuple[str, Any], bob: tuple[str, Any], tmp_path: Path
) -> None:
    _, a = alice
    bob_name, _ = bob
    x = make(a, f"{home(a)}/x")
    make(a, f"{home(a)}/y")
    t = Ticket(a).issue("read", x)
    with as_user(irods_server, bob_name, "bpass") as b, pytest.raises(NOT_VISIBLE):
        b.data_objects.get(x)  # without the ticket: nothing
    with as_user(irods_server, bob_name, "bpass") as b:
        Ticket(b, t.string).supply()
        rows = b.query(Collection.name, DataObject.name).all()
        assert [r[DataObject.name] for r in rows] == ["x"]
        b.data_objects.get(x, str(tmp_path / "x"), **{kw.FORCE_FLAG_KW: ""})
        assert (tmp_path / "x").read_bytes() == b"abcxyz"
        with pytest.raises(DataObjectDoesNotExist):  # y is not covered
            b.data_objects.get(f"{home(a)}/y")


def test_attack_write_through_a_read_ticket_is_refused(
    irods_server: ServerProcess, alice: tuple[str, Any], bob: tuple[str, Any], tmp_path: Path
) -> None:
    _, a = alice
    bob_name, _ = bob
    r = make(a, f"{home(a)}/R")
    w = make(a, f"{home(a)}/W")
    read_t, write_t = Ticket(a).issue("read", r), Ticket(a).issue("write", w)
    local = tmp_path / "new"
    local.write_bytes(b"hello")
    with as_user(irods_server, bob_name, "bpass") as b:
        Ticket(b, read_t.string).supply()
        with pytest.raises(CAT_NO_ACCESS_PERMISSION):
            b.data_objects.put(str(local), r)
    with as_user(irods_server, bob_name, "bpass") as b:
        Ticket(b, write_t.string).supply()
        b.data_objects.put(str(local), w)  # the legitimate path
        with pytest.raises(iRODSException):  # a write ticket does not allow a delete
            b.data_objects.unlink(w, force=True)
    assert a.data_objects.open(r, "r").read() == b"abcxyz"
    assert a.data_objects.open(w, "r").read() == b"hello"


def test_expired_ticket_is_refused(
    irods_server: ServerProcess, alice: tuple[str, Any], bob: tuple[str, Any]
) -> None:
    _, a = alice
    bob_name, _ = bob
    x = make(a, f"{home(a)}/x")
    t = Ticket(a).issue("read", x)
    t.modify("expire", str(int(time.time()) + 3600))
    with as_user(irods_server, bob_name, "bpass") as b:
        Ticket(b, t.string).supply()
        assert b.data_objects.open(x, "r").read() == b"abcxyz"
    t.modify("expire", str(int(time.time()) - 10))  # expired: no waiting needed
    with as_user(irods_server, bob_name, "bpass") as b:
        Ticket(b, t.string).supply()
        with pytest.raises(CAT_TICKET_EXPIRED):
            b.data_objects.open(x, "r")


def test_uses_limit_counts_each_object_once(
    irods_server: ServerProcess, alice: tuple[str, Any], bob: tuple[str, Any]
) -> None:
    _, a = alice
    bob_name, _ = bob
    x, y = make(a, f"{home(a)}/x"), make(a, f"{home(a)}/y")
    t = Ticket(a).issue("read", home(a))
    t.modify("uses", "1")
    with as_user(irods_server, bob_name, "bpass") as b:
        Ticket(b, t.string).supply()
        b.data_objects.open(x, "r").read()
        b.data_objects.open(x, "r").read()  # same object again: not counted twice
        with pytest.raises(CAT_TICKET_USES_EXCEEDED):
            b.data_objects.open(y, "r")


def test_write_file_limit(
    irods_server: ServerProcess, alice: tuple[str, Any], bob: tuple[str, Any]
) -> None:
    """``count > limit`` is checked before counting (checkObjIdByTicket): with a limit of 1,
    the third distinct object written is refused."""
    _, a = alice
    bob_name, _ = bob
    paths = [make(a, f"{home(a)}/w{i}") for i in range(3)]
    t = Ticket(a).issue("write", home(a))
    t.modify("write-file", "1")
    with as_user(irods_server, bob_name, "bpass") as b:
        Ticket(b, t.string).supply()
        for path in paths[:2]:
            with b.data_objects.open(path, "r+") as f:
                f.write(b"Z")
        with irods_error(tickets.CAT_TICKET_WRITE_USES_EXCEEDED):
            b.data_objects.open(paths[2], "r+")


def test_user_restriction(
    irods_server: ServerProcess,
    alice: tuple[str, Any],
    bob: tuple[str, Any],
    irods_user: UserMaker,
) -> None:
    _, a = alice
    bob_name, _ = bob
    carol_name, _ = irods_user(password="cpass")
    x = make(a, f"{home(a)}/x")
    t = Ticket(a).issue("read", x)
    with pytest.raises(CAT_INVALID_USER):
        t.modify("add", "user", "nosuchuser")
    t.modify("add", "user", bob_name)
    with as_user(irods_server, carol_name, "cpass") as c:
        Ticket(c, t.string).supply()
        with irods_error(tickets.CAT_TICKET_USER_EXCLUDED):
            c.data_objects.open(x, "r")
    with as_user(irods_server, bob_name, "bpass") as b:
        Ticket(b, t.string).supply()
        assert b.data_objects.open(x, "r").read() == b"abcxyz"


def test_group_restriction(
    irods_server: ServerProcess,
    irods_session: Any,
    alice: tuple[str, Any],
    bob: tuple[str, Any],
    irods_user: UserMaker,
) -> None:
    _, a = alice
    bob_name, _ = bob
    carol_name, _ = irods_user(password="cpass")
    group = f"g{bob_name}"
    irods_session.groups.create(group)
    try:
        irods_session.groups.addmember(group, bob_name)
        x = make(a, f"{home(a)}/x")
        t = Ticket(a).issue("read", x)
        t.modify("add", "group", group)
        with as_user(irods_server, carol_name, "cpass") as c:
            Ticket(c, t.string).supply()
            with irods_error(tickets.CAT_TICKET_GROUP_EXCLUDED):
                c.data_objects.open(x, "r")
        with as_user(irods_server, bob_name, "bpass") as b:
            Ticket(b, t.string).supply()
            assert b.data_objects.open(x, "r").read() == b"abcxyz"
        t.delete()
    finally:
        irods_session.groups.remove(group)


def test_host_restriction(
    irods_server: ServerProcess, alice: tuple[str, Any], bob: tuple[str, Any]
) -> None:
    _, a = alice
    bob_name, _ = bob
    x = make(a, f"{home(a)}/x")
    t = Ticket(a).issue("read", x)
    t.modify("add", "host", "192.0.2.1")  # TEST-NET-1: never this client
    with as_user(irods_server, bob_name, "bpass") as b:
        Ticket(b, t.string).supply()
        with irods_error(tickets.CAT_TICKET_HOST_EXCLUDED):
            b.data_objects.open(x, "r")
    t.modify("add", "host", "127.0.0.1")
    with as_user(irods_server, bob_name, "bpass") as b:
        Ticket(b, t.string).supply()
        assert b.data_objects.open(x, "r").read() == b"abcxyz"


def test_anonymous_logs_in_without_a_password_and_reads_through_a_ticket(
    irods_server: ServerProcess, irods_session: Any, alice: tuple[str, Any]
) -> None:
    """db_check_auth_op: a user with no password is CAT_INVALID_USER, except anonymous."""
    _, a = alice
    x = make(a, f"{home(a)}/x")
    t = Ticket(a).issue("read", x)
    irods_session.users.create("anonymous", "rodsuser")
    try:
        with iRODSSession(**irods_server.session_options("anonymous", "")) as anon:
            with pytest.raises(NOT_VISIBLE):  # no ticket: nothing to see
                anon.data_objects.get(x)
            Ticket(anon, t.string).supply()
            assert anon.data_objects.get(x).open("r").read() == b"abcxyz"
    finally:
        irods_session.users.remove("anonymous")


def test_attack_login_as_a_user_without_password(
    irods_server: ServerProcess, irods_session: Any, unique_name: str
) -> None:
    irods_session.users.create(unique_name, "rodsuser")
    try:
        with pytest.raises(CAT_INVALID_USER), irods_server.session(unique_name, "") as s:
            s.collections.get(f"/tempZone/home/{unique_name}")
        irods_session.users.modify(unique_name, "password", "pw")
        with (
            pytest.raises(CAT_INVALID_AUTHENTICATION),
            irods_server.session(unique_name, "wrong") as s,
        ):
            s.collections.get(f"/tempZone/home/{unique_name}")
        with irods_server.session(unique_name, "pw") as s:
            assert s.collections.get(f"/tempZone/home/{unique_name}").name == unique_name
    finally:
        irods_session.users.remove(unique_name)
