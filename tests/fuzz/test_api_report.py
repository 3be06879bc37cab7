"""The table ``fuzz.api`` prints after a schemathesis run (no stack needed)."""

from __future__ import annotations

from fuzz.api import Outcome, table


def test_the_schemathesis_table_names_operations_never_accepted() -> None:
    """An operation only ever refused (its accepted path untested) is named in the table."""
    o = Outcome("service", 1200, [], [], {"PUT /v1/ingest/{name}": 0, "GET /v1/jobs": 3}, 0)
    text = table([o], [])
    assert "never accepted: PUT /v1/ingest/{name}" in text
    assert "GET /v1/jobs 3" in text and "never accepted: GET" not in text
