"""The zone's ``default_hash_scheme`` (``devtools/irods_server/hash_scheme.py``): an MD5
zone stores plain md5 hex, a SHA256 zone ``sha2:`` + base64, on every path that computes
a checksum; an existing checksum is recomputed in its own scheme (``match_hash_policy``
``compatible``, ``server/api/src/rsFileChksum.cpp`` ``file_checksum``; the forms are those
of ``lib/hasher/src/MD5Strategy.cpp`` and ``SHA256Strategy.cpp``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import irods.exception as ex
import irods.keywords as kw
import pytest
from irods.manager.data_object_manager import Server_Checksum_Warning
from irods.message import RErrorStack
from irods.models import Resource

from devtools.irods_server import hash_scheme
from devtools.irods_server.errors import code_of
from devtools.irods_server.launcher import ServerProcess
from tests.irods_server.conftest import scratch_collection
from tests.irods_server.resources import remove_resource
from tests.irods_server.test_descriptors import replica_close
from tests.irods_server.test_single_buffer import get, put, sha2


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(scope="module")
def md5_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("md5zone") / "data", hash_scheme="MD5") as srv:
        yield srv


@pytest.fixture
def md5_session(md5_server: ServerProcess) -> Iterator[Any]:
    with md5_server.session() as s:
        yield s


@pytest.fixture
def md5_coll(md5_session: Any, unique_name: str) -> Iterator[str]:
    with scratch_collection(md5_session, unique_name) as path:
        yield path


def test_parse_and_environment() -> None:
    assert hash_scheme.parse("md5") == "MD5" and hash_scheme.parse(" sha256 ") == "SHA256"
    with pytest.raises(ValueError, match="expected one of SHA256, MD5"):
        hash_scheme.parse("adler32")
    assert hash_scheme.from_environment({}) == "SHA256"
    assert hash_scheme.from_environment({hash_scheme.ENV_VAR: "MD5"}) == "MD5"
    assert hash_scheme.scheme_of(md5(b"x")) == "MD5"
    assert hash_scheme.scheme_of(sha2(b"x")) == "SHA256"
    assert hash_scheme.scheme_of("") is None and hash_scheme.scheme_of("zz:q") is None


def test_an_unknown_scheme_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="hash scheme 'crc'"):
        ServerProcess(tmp_path / "data", hash_scheme="crc").start()


def test_chksum_on_an_md5_zone_is_plain_md5_hex(md5_session: Any, md5_coll: str) -> None:
    path = f"{md5_coll}/a"
    with md5_session.data_objects.open(path, "w") as f:
        f.write(b"abcd")
    assert md5_session.data_objects.chksum(path) == md5(b"abcd")
    assert md5_session.data_objects.get(path).checksum == md5(b"abcd")
    # verification recomputes in the scheme of the stored checksum: nothing to report
    assert md5_session.data_objects.chksum(path, **{kw.VERIFY_CHKSUM_KW: ""}) == ""
    assert md5_session.client_hints["hash_scheme"] == "MD5"


def test_chksum_on_a_sha256_zone_is_sha2_base64(irods_session: Any, coll: str) -> None:
    path = f"{coll}/a"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"abcd")
    assert irods_session.data_objects.chksum(path) == sha2(b"abcd")
    assert irods_session.client_hints["hash_scheme"] == "SHA256"


def test_every_checksum_path_of_an_md5_zone(
    md5_session: Any, md5_coll: str, tmp_path: Path
) -> None:
    """Close with regChksum (streams), 606 put with regChksum, 608 get with verifyChksum
    of an object without one, register with verifyChksum, copy with regChksum."""
    src = tmp_path / "c"
    src.write_bytes(b"checked")
    md5_session.data_objects.put(str(src), f"{md5_coll}/put", **{kw.REG_CHKSUM_KW: ""})
    assert md5_session.data_objects.get(f"{md5_coll}/put").checksum == md5(b"checked")

    assert put(md5_session, f"{md5_coll}/sb", b"single", **{kw.REG_CHKSUM_KW: ""}).int_info == 0
    assert md5_session.data_objects.get(f"{md5_coll}/sb").checksum == md5(b"single")

    assert put(md5_session, f"{md5_coll}/sb2", b"plain").int_info == 0
    out, data = get(md5_session, f"{md5_coll}/sb2", **{kw.VERIFY_CHKSUM_KW: ""})
    assert data == b"plain" and out.chksum == md5(b"plain")

    md5_session.data_objects.register(str(src), f"{md5_coll}/reg", **{kw.VERIFY_CHKSUM_KW: ""})
    assert md5_session.data_objects.get(f"{md5_coll}/reg").checksum == md5(b"checked")
    md5_session.data_objects.unregister(f"{md5_coll}/reg")

    md5_session.data_objects.copy(f"{md5_coll}/sb2", f"{md5_coll}/copy", **{kw.REG_CHKSUM_KW: ""})
    assert md5_session.data_objects.get(f"{md5_coll}/copy").checksum == md5(b"plain")


def test_a_corrupted_replica_fails_verification_on_an_md5_zone(
    md5_session: Any, md5_coll: str
) -> None:
    path = f"{md5_coll}/bad"
    with md5_session.data_objects.open(path, "w", **{kw.REG_CHKSUM_KW: ""}) as f:
        f.write(b"abcd")
    Path(md5_session.data_objects.get(path).replicas[0].path).write_bytes(b"abce")
    errors = RErrorStack()
    with pytest.raises(Server_Checksum_Warning):
        md5_session.data_objects.chksum(path, r_error=errors, **{kw.VERIFY_CHKSUM_KW: ""})
    assert [e.status for e in errors] == [code_of("USER_CHKSUM_MISMATCH")]


def test_a_stored_md5_is_recomputed_as_md5_on_a_sha256_zone(irods_session: Any, coll: str) -> None:
    """Policy ``compatible``: the stored checksum's scheme wins over the zone default."""
    path = f"{coll}/m"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"abcd")
    irods_session.data_objects.modDataObjMeta({"objPath": path}, {"chksum": md5(b"abcd")})
    assert irods_session.data_objects.chksum(path, **{kw.VERIFY_CHKSUM_KW: ""}) == ""
    assert irods_session.data_objects.chksum(path, **{kw.FORCE_CHKSUM_KW: ""}) == md5(b"abcd")


def test_remove_resource_takes_its_replicas_first(
    irods_session: Any, coll: str, unique_name: str, tmp_path: Path
) -> None:
    """The ``second_resc`` fixture's cleanup (``tests/irods_server/resources.py``)."""
    name = f"gone_{unique_name}"
    (tmp_path / "v").mkdir()
    irods_session.resources.create(name, "unixfilesystem", "localhost", str(tmp_path / "v"))
    with irods_session.data_objects.open(f"{coll}/x", "w") as f:
        f.write(b"x")
    irods_session.data_objects.replicate(f"{coll}/x", name)
    with pytest.raises(ex.CAT_RESOURCE_NOT_EMPTY):
        irods_session.resources.remove(name)
    remove_resource(irods_session, name)
    assert not list(irods_session.query(Resource.name).filter(Resource.name == name))
    assert not irods_session.data_objects.exists(f"{coll}/x")


def test_replica_close_and_register_as_replica_on_an_md5_zone(
    md5_session: Any, md5_coll: str, unique_name: str, tmp_path: Path
) -> None:
    """20004 ``compute_checksum`` and ``regRepl`` (recomputed when the source has one)."""
    path = f"{md5_coll}/rc"
    f = md5_session.data_objects.open(path, "w")
    f.write(b"closing")
    f.flush()
    assert replica_close(f, compute_checksum=True).int_info == 0
    f.do_close = False
    assert md5_session.data_objects.get(path).checksum == md5(b"closing")

    name = f"r2_{unique_name}"
    (tmp_path / "v2").mkdir()
    md5_session.resources.create(name, "unixfilesystem", "localhost", str(tmp_path / "v2"))
    try:
        one, two = tmp_path / "one", tmp_path / "two"
        one.write_bytes(b"replica")
        two.write_bytes(b"replica")
        reg = f"{md5_coll}/reg2"
        md5_session.data_objects.register(str(one), reg, **{kw.REG_CHKSUM_KW: ""})
        md5_session.data_objects.register(
            str(two), reg, **{kw.REG_REPL_KW: "", kw.RESC_NAME_KW: name}
        )
        sums = [r.checksum for r in md5_session.data_objects.get(reg).replicas]
        assert sums == [md5(b"replica"), md5(b"replica")]
        md5_session.data_objects.unregister(reg)
    finally:
        remove_resource(md5_session, name)


# -- match_hash_policy strict ---------------------------------------------------------------
# ``file_checksum`` (server/api/src/rsFileChksum.cpp): under ``strict`` a checksum whose
# scheme is not the zone's is USER_HASH_TYPE_MISMATCH (-380000; python-irodsclient 3.3 has
# no class for it, so it raises KeyError(-380000)), where ``compatible`` honours it.


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("strictzone") / "data"
    with ServerProcess(data, hash_policy="strict") as srv:
        yield srv


@pytest.fixture
def strict_session(strict_server: ServerProcess) -> Iterator[Any]:
    with strict_server.session() as s:
        yield s


@pytest.fixture
def strict_coll(strict_session: Any, unique_name: str) -> Iterator[str]:
    with scratch_collection(strict_session, unique_name) as path:
        yield path


def test_parse_policy_and_environment(tmp_path: Path) -> None:
    assert hash_scheme.parse_policy(" Strict ") == "strict"
    with pytest.raises(ValueError, match="expected one of compatible, strict"):
        hash_scheme.parse_policy("lenient")
    assert hash_scheme.policy_from_environment({}) == "compatible"
    assert hash_scheme.policy_from_environment({hash_scheme.POLICY_ENV_VAR: "STRICT"}) == "strict"
    assert hash_scheme.refused("SHA256", md5(b"x"), "strict")
    assert not hash_scheme.refused("SHA256", md5(b"x"), "compatible")
    assert not hash_scheme.refused("SHA256", sha2(b"x"), "strict")
    assert not hash_scheme.refused("MD5", "", "strict")  # nothing to compare: the zone's scheme
    with pytest.raises(RuntimeError, match="hash policy 'loose'"):
        ServerProcess(tmp_path / "data", hash_policy="loose").start()


def test_strict_policy_refuses_a_checksum_in_another_scheme(
    strict_session: Any, strict_coll: str
) -> None:
    """629 of a replica whose catalog checksum is md5 on a strict SHA256 zone (verify and
    force): refused, the stored checksum left as it was; in the zone's own scheme: fine."""
    path = f"{strict_coll}/m"
    with strict_session.data_objects.open(path, "w") as f:
        f.write(b"abcd")
    assert strict_session.data_objects.chksum(path) == sha2(b"abcd")
    strict_session.data_objects.modDataObjMeta({"objPath": path}, {"chksum": md5(b"abcd")})
    for opts in ({kw.VERIFY_CHKSUM_KW: ""}, {kw.FORCE_CHKSUM_KW: ""}):
        with pytest.raises(KeyError) as err:
            strict_session.data_objects.chksum(path, **opts)
        assert err.value.args == (hash_scheme.USER_HASH_TYPE_MISMATCH,)
    assert strict_session.data_objects.get(path).checksum == md5(b"abcd")


def test_strict_policy_refuses_a_put_verified_in_another_scheme(
    strict_session: Any, strict_coll: str
) -> None:
    """606 and open/write/close with ``verifyChksum`` = an md5: USER_HASH_TYPE_MISMATCH, the
    replica left stale without a checksum; a ``sha2:`` one is stored and the replica good."""
    reply_error = None
    try:
        put(strict_session, f"{strict_coll}/sb", b"single", **{kw.VERIFY_CHKSUM_KW: md5(b"single")})
    except KeyError as e:
        reply_error = e.args
    assert reply_error == (hash_scheme.USER_HASH_TYPE_MISMATCH,)
    rep = strict_session.data_objects.get(f"{strict_coll}/sb").replicas[0]
    assert (rep.status, rep.checksum, rep.size) == ("0", None, 6)

    path = f"{strict_coll}/st"
    f = strict_session.data_objects.open(path, "w", **{kw.VERIFY_CHKSUM_KW: md5(b"stream")})
    f.write(b"stream")
    with pytest.raises(KeyError) as err:
        f.close()
    assert err.value.args == (hash_scheme.USER_HASH_TYPE_MISMATCH,)
    rep = strict_session.data_objects.get(path).replicas[0]
    assert (rep.status, rep.checksum) == ("0", None)

    ok = f"{strict_coll}/ok"
    assert put(strict_session, ok, b"fine", **{kw.VERIFY_CHKSUM_KW: sha2(b"fine")}).int_info == 0
    rep = strict_session.data_objects.get(ok).replicas[0]
    assert (rep.status, rep.checksum) == ("1", sha2(b"fine"))
