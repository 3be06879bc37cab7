"""The API test fixtures (tests/api/conftest.py), for the metrics test that scrapes it, and
the body the deploy checks' ``*_fails_on_*`` tests share (here so pytest rewrites its
asserts)."""

from __future__ import annotations

import copy
from collections.abc import Callable

from tests.api.conftest import api, keypair, make_api, oidc, oidc_key  # noqa: F401
from tests.deploy.k8s import Doc, build


def assert_check_fails_on(
    what: str, check: Callable[[list[Doc]], list[str]], edit: Callable[[list[Doc]], None], why: str
) -> None:
    """``check`` finds nothing wrong in the prod build and, once ``edit`` broke a copy of
    it, a problem that says ``why``."""
    docs = copy.deepcopy(build("prod"))
    assert check(docs) == []
    edit(docs)
    problems = check(docs)
    assert any(why in p for p in problems), (what, problems)
