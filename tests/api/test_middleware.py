"""The API's error middleware: how each kind of error is answered."""

from __future__ import annotations

from services.api.middleware import HTTP_BY_KIND, http_status
from shared.errors import ErrorKind, Forbidden, InvalidInput, NotFound, Unavailable


def test_every_error_kind_has_an_http_answer() -> None:
    assert set(HTTP_BY_KIND) == set(ErrorKind)
    for kind, (status, exit_code) in HTTP_BY_KIND.items():
        assert 400 <= status < 600 and exit_code in (100, 101, 102), kind
        # what a retry cannot fix is a client error; the rest are the server's
        assert (status < 500) == (kind.permanent and kind is not ErrorKind.CONFIG), kind


def test_statuses_of_the_domain_errors() -> None:
    assert [http_status(e) for e in (InvalidInput("x"), Forbidden("x"), NotFound("x"))] == [
        400,
        403,
        404,
    ]
    assert http_status(Unavailable("x")) == 503
