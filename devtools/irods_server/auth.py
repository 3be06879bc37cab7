"""Authentication: API 110000 (native and pam_password), legacy 703/704, PAM 725 and 1201,
temporary passwords 709 and 724.

Native: the server hands out a 64-character challenge; the client answers
``md5(challenge + password padded to 50 bytes with NUL)`` with NUL bytes of the digest
replaced by 0x01. pam_password (TLS only) checks the password against the same user
table and hands back a temporary password, with which the client then logs in natively.
A rodsadmin proxy user may act as another (client) user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
from typing import Any

from irods.message import (
    AuthChallenge,
    AuthPluginOut,
    AuthResponse,
    BinBytesBuf,
    GetTempPasswordForOtherOut,
    GetTempPasswordForOtherRequest,
    GetTempPasswordOut,
    JSON_Binary_Request,
    PamAuthRequest,
    PamAuthRequestOut,
    PluginAuthMessage,
)

from .dispatch import Reply, Request, Session, UserInfo, api
from .errors import IrodsError

MAX_PASSWORD_LENGTH = 50
CHALLENGE_CHARS = string.ascii_letters + string.digits
PAM_TTL_HOURS_DEFAULT = 1
PAM_TTL_HOURS_MAX = 24 * 14
TEMP_PASSWORD_TTL = 600  # seconds a temporary password (APIs 709, 724) stays valid


ANONYMOUS_USER = "anonymous"


def new_challenge() -> str:
    return "".join(secrets.choice(CHALLENGE_CHARS) for _ in range(64))


def digest(challenge: bytes, password: str) -> bytes:
    """What a client answers to ``challenge`` when it knows ``password``."""
    padded = password.encode().strip()[:MAX_PASSWORD_LENGTH].ljust(MAX_PASSWORD_LENGTH, b"\0")
    return hashlib.md5(challenge + padded).digest().replace(b"\0", b"\1")


def _split_user(name: str, zone: str) -> tuple[str, str]:
    if "#" in name:
        name, zone = name.split("#", 1)
    return name, zone


def check_digest(session: Session, user: str, zone: str, challenge: bytes, answer: bytes) -> None:
    """Authenticate the proxy user by a challenge answer, then set ``session.user``."""
    cat = session.state.catalog
    row = cat.user(user, zone or session.state.zone)
    if row is None or row["user_type_name"] == "rodsgroup":
        raise IrodsError("CAT_INVALID_USER", f"no such user {user}")
    matched = [
        pw
        for pw in cat.passwords(row["user_id"])
        if hmac.compare_digest(digest(challenge, pw), answer)
    ]
    if not matched and not _passwordless_anonymous(cat, row):
        raise IrodsError("CAT_INVALID_AUTHENTICATION", "wrong password")
    become_client(session, row["user_name"], row["zone_name"], row["user_type_name"])
    # what the obfuscated password-change requests are keyed with (see api_admin)
    session.scratch["auth_password"] = matched[0] if matched else ""
    session.scratch["client_signature"] = challenge[:16].hex()


def _passwordless_anonymous(cat: Any, row: Any) -> bool:
    """``db_check_auth_op`` (db_plugin.cpp): a user with no password row at all is
    ``CAT_INVALID_USER``, except ``anonymous``, which then logs in with any answer."""
    has_password = cat.db.execute(
        "SELECT 1 FROM r_user_password WHERE user_id = ? LIMIT 1", (row["user_id"],)
    ).fetchone()
    if has_password is not None:
        return False
    if row["user_name"] == ANONYMOUS_USER:
        return True
    raise IrodsError("CAT_INVALID_USER", f"{row['user_name']} has no password")


def become_client(session: Session, proxy: str, proxy_zone: str, proxy_type: str) -> None:
    """Set ``session.user`` to the client user the startup pack named (proxy rules apply)."""
    cat = session.state.catalog
    client, client_zone = session.client_user or proxy, session.client_zone or proxy_zone
    if (client, client_zone) != (proxy, proxy_zone) and proxy_type != "rodsadmin":
        raise IrodsError("SYS_PROXYUSER_NO_PRIV", f"{proxy} may not act as {client}")
    row = cat.user(client, client_zone)
    if row is None or row["user_type_name"] == "rodsgroup":
        raise IrodsError("CAT_INVALID_CLIENT_USER", f"no such user {client}")
    session.proxy_is_admin = proxy_type == "rodsadmin"
    session.user = UserInfo(
        name=row["user_name"],
        zone=row["zone_name"],
        id=int(row["user_id"]),
        type=row["user_type_name"],
    )


def pam_login(session: Session, user: str, password: str, ttl_hours: int) -> str:
    """Check a PAM password against the user table; returns a temporary native password."""
    if not session.tls:
        raise IrodsError("SYS_NOT_ALLOWED", "PAM authentication requires TLS")
    if not 0 <= ttl_hours <= PAM_TTL_HOURS_MAX:
        raise IrodsError("PAM_AUTH_PASSWORD_INVALID_TTL", f"TTL {ttl_hours}h out of range")
    cat = session.state.catalog
    row = cat.user(user, session.proxy_zone or session.state.zone)
    stored = None if row is None else cat.password(row["user_id"])
    if row is None or stored is None or not hmac.compare_digest(stored, password):
        raise IrodsError("PAM_AUTH_PASSWORD_FAILED", "PAM authentication failed")
    temp = secrets.token_hex(16)
    cat.add_temp_password(row["user_id"], temp, (ttl_hours or PAM_TTL_HOURS_DEFAULT) * 3600)
    return temp


# -- API 110000: the authentication framework ------------------------------------------------


def _json_reply(body: dict[str, Any]) -> Reply:
    return Reply(msg=JSON_Binary_Request(body))


@api(110000)
async def authenticate(session: Session, req: Request) -> Reply:
    buf = req.parse(BinBytesBuf).buf
    try:
        body = json.loads(buf.replace(b"\0", b"").decode())
    except (AttributeError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IrodsError("USER_PACKSTRUCT_INPUT_ERR", "bad authentication request") from e
    if not isinstance(body, dict):
        raise IrodsError("USER_PACKSTRUCT_INPUT_ERR", "bad authentication request")
    scheme, op = body.get("scheme"), body.get("next_operation")
    user = str(body.get("user_name") or session.proxy_user)
    zone = str(body.get("zone_name") or session.proxy_zone)
    resp = dict(body)
    if scheme == "native" and op == "auth_agent_auth_request":
        challenge = new_challenge()
        session.scratch["challenge"] = challenge.encode()
        resp["request_result"] = challenge
        return _json_reply(resp)
    if scheme == "native" and op == "auth_agent_auth_response":
        challenge = session.scratch.pop("challenge", None)
        if challenge is None:
            raise IrodsError("CAT_INVALID_AUTHENTICATION", "no challenge issued")
        try:
            answer = base64.b64decode(str(body.get("digest", "")))
        except ValueError as e:
            raise IrodsError("CAT_INVALID_AUTHENTICATION", "bad digest") from e
        check_digest(session, user, zone, challenge, answer)
        resp.pop("digest", None)
        return _json_reply(resp)
    if scheme == "pam_password" and op == "auth_agent_auth_request":
        ttl = int(body.get("a_ttl") or 0)
        resp["request_result"] = pam_login(session, user, str(body.get("a_pw", "")), ttl)
        resp.pop("a_pw", None)
        return _json_reply(resp)
    raise IrodsError("SYS_NOT_SUPPORTED", f"auth scheme {scheme!r} operation {op!r}")


# -- legacy APIs ---------------------------------------------------------------------------------


@api(703)
async def auth_request(session: Session, req: Request) -> Reply:
    challenge = new_challenge().encode()
    session.scratch["challenge"] = challenge
    return Reply(msg=AuthChallenge(challenge=challenge))


@api(704)
async def auth_response(session: Session, req: Request) -> Reply:
    challenge = session.scratch.pop("challenge", None)
    if challenge is None:
        raise IrodsError("CAT_INVALID_AUTHENTICATION", "no challenge issued")
    msg = req.parse(AuthResponse)
    user, zone = _split_user(msg.username or session.proxy_user, session.proxy_zone)
    check_digest(session, user, zone, challenge, msg.response or b"")
    return Reply()


def _kvp(context: str) -> dict[str, str]:
    """Parse ``a_user=x;a_pw=y;a_ttl=z`` with backslash escapes for ``\\;=``."""
    out: dict[str, str] = {}
    key, cur, esc = "", "", False
    for ch in context + ";":
        if esc:
            cur, esc = cur + ch, False
        elif ch == "\\":
            esc = True
        elif ch == "=" and not key:
            key, cur = cur, ""
        elif ch == ";":
            if key:
                out[key] = cur
            key, cur = "", ""
        else:
            cur += ch
    return out


@api(725)
async def pam_auth_request(session: Session, req: Request) -> Reply:
    msg = req.parse(PamAuthRequest)
    temp = pam_login(session, msg.pamUser or "", msg.pamPassword or "", msg.timeToLive or 0)
    return Reply(msg=PamAuthRequestOut(irodsPamPassword=temp))


@api(1201)
async def auth_plugin_request(session: Session, req: Request) -> Reply:
    msg = req.parse(PluginAuthMessage)
    if (msg.auth_scheme_ or "").lower() != "pam":
        raise IrodsError("SYS_NOT_SUPPORTED", f"auth scheme {msg.auth_scheme_!r}")
    ctx = _kvp(msg.context_ or "")
    ttl = int(ctx.get("a_ttl") or 0)
    temp = pam_login(session, ctx.get("a_user", ""), ctx.get("a_pw", ""), ttl)
    return Reply(msg=AuthPluginOut(result_=temp))


# -- temporary passwords -----------------------------------------------------------------------


def _issue_temp_password(session: Session, for_user_id: int) -> str:
    """A ``stringToHashWith``; the password md5(hash + caller's password) becomes valid
    for ``for_user_id`` for a short time."""
    hash_with = "".join(secrets.choice(CHALLENGE_CHARS) for _ in range(32))
    key = (hash_with + str(session.scratch.get("auth_password", ""))).ljust(100, "\0")
    temp = hashlib.md5(key.encode()).hexdigest()
    session.state.catalog.add_temp_password(for_user_id, temp, TEMP_PASSWORD_TTL)
    return hash_with


@api(709)
async def get_temp_password(session: Session, req: Request) -> Reply:
    user = session.require_user()
    return Reply(msg=GetTempPasswordOut(stringToHashWith=_issue_temp_password(session, user.id)))


@api(724)
async def get_temp_password_for_other(session: Session, req: Request) -> Reply:
    user = session.require_user()
    if not user.is_admin:
        raise IrodsError("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "requires rodsadmin")
    target = req.parse(GetTempPasswordForOtherRequest).targetUser or ""
    name, zone = _split_user(target, session.state.zone)
    row = session.state.catalog.user(name, zone)
    if row is None or row["user_type_name"] == "rodsgroup":
        raise IrodsError("CAT_SQL_ERR", f"no such user {target}")
    hash_with = _issue_temp_password(session, int(row["user_id"]))
    return Reply(msg=GetTempPasswordForOtherOut(stringToHashWith=hash_with))
