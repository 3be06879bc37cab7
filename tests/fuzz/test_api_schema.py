"""Generated requests against the real running API, short form (the long one is ``make
fuzz``): the stack of ``make up --ephemeral`` with a real OIDC provider and PostgreSQL,
schemathesis from ``/v1/openapi.json`` as the service account and as a user, no 5xx and
every response as documented (``fuzz.api``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fuzz.api import fuzz_api, table

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the stack creates a Unix user"),
    pytest.mark.skipif(shutil.which("node") is None, reason="node runs the OIDC provider"),
    pytest.mark.timeout(600),
]


def test_generated_requests_find_nothing(tmp_path: Path) -> None:
    outcomes, crashes = fuzz_api(cases=5, min_cases=150, store="postgres", out=tmp_path, seed=1)
    report = table(outcomes, crashes)
    assert [o.who for o in outcomes] == ["service", "user"], report
    assert all(o.ok for o in outcomes) and not crashes, report
    # plausible bodies get past validation: jobs are created and the links reach them
    assert sum(o.accepted.get("GET /v1/job/{id}", 0) for o in outcomes), report
