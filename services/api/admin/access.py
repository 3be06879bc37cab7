"""Admin roles and the audit log.

A principal is an *admin* (may view and act) when it is a service account listed in
``admin.service_accounts`` or a user whose token's groups claim holds one of
``admin.groups``; *read-only* (may view) likewise with the ``readonly_`` lists; everyone
else gets a 403. Every action writes one ``admin.action`` line to the ``stager.audit``
logger: who, what, which jobs, how it went (never a secret: ids and states only).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from aiohttp import web

from services.api.admin.settings import AdminSettings
from services.api.auth import Principal
from services.api.keys import AUTH, SETTINGS
from shared.errors import Forbidden
from shared.logging import get_logger
from shared.messaging.messages import PrincipalKind

audit_log = get_logger("stager.audit")
#: At most this many job ids are named in one audit line (the count is always given).
AUDIT_IDS = 200


class AdminRole(StrEnum):
    """What a principal may do in the admin view."""

    ADMIN = "admin"
    READONLY = "readonly"


def role_of(p: Principal, s: AdminSettings) -> AdminRole | None:
    """The admin role of ``p``, or None."""
    if p.kind == PrincipalKind.SERVICE:
        if p.name in s.service_accounts:
            return AdminRole.ADMIN
        if p.name in s.readonly_service_accounts:
            return AdminRole.READONLY
        return None
    if p.groups & set(s.groups):
        return AdminRole.ADMIN
    if p.groups & set(s.readonly_groups):
        return AdminRole.READONLY
    return None


def who(p: Principal) -> str:
    """``user:alice`` / ``service:ops``: the principal as audit lines name it."""
    return f"{p.kind.value}:{p.name}"


async def viewer(request: web.Request) -> tuple[Principal, AdminRole]:
    """The caller, if it may view the admin pages (401 / 403 otherwise)."""
    p = await request.app[AUTH].authenticate_request(request)
    role = role_of(p, request.app[SETTINGS].admin)
    if role is None:
        raise Forbidden("the admin view is for administrators: ask to be added to an admin group")
    return p, role


async def actor(request: web.Request) -> Principal:
    """The caller, if it may act (403 for read-only administrators)."""
    p, role = await viewer(request)
    if role != AdminRole.ADMIN:
        raise Forbidden("read-only administrators may view but not act: ask a full administrator")
    return p


def audit(p: Principal, action: str, jobs: Iterable[str] = (), **outcome: Any) -> None:
    """One audit line for an admin action."""
    ids = list(jobs)
    audit_log.info(
        "admin.action",
        actor=who(p),
        action=action,
        jobs=ids[:AUDIT_IDS],
        job_count=len(ids),
        **outcome,
    )
