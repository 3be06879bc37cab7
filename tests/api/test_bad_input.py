"""The bad-input table: each case is a 4xx whose message says what to fix, and nothing is
stored or queued; the test password never shows up anywhere."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.api.keys import STORE
from shared.crypto import Binding, Sealer, load_public_key
from tests.api.conftest import ALICE, BOB, DR_PASS, SERVICE, SERVICE_PW, WIDE, WIDE_PW, Api, job

H = Callable[[Api], dict[str, str]]


def svc(api: Api) -> dict[str, str]:
    return api.basic(SERVICE, SERVICE_PW)


def wide(api: Api) -> dict[str, str]:
    return api.basic(WIDE, WIDE_PW)


def alice(api: Api) -> dict[str, str]:
    return api.bearer(ALICE)


def raw_auth(value: str) -> H:
    return lambda _api: {"Authorization": value}


def token_with(**kw: Any) -> H:
    return lambda api: api.bearer(ALICE, **kw)


def wrong_issuer(api: Api) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": "https://evil.example", "sub": "x", "aud": "stager-api", "exp": now + 60}
    claims["preferred_username"] = ALICE
    tok = jwt.encode(claims, api.oidc.key, algorithm="RS256", headers={"kid": api.oidc.kid})
    return {"Authorization": f"Bearer {tok}"}


def foreign_key(api: Api) -> dict[str, str]:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": api.oidc.issuer, "sub": "x", "aud": "stager-api", "exp": now + 60}
    claims["preferred_username"] = ALICE
    tok = jwt.encode(claims, other, algorithm="RS256", headers={"kid": api.oidc.kid})
    return {"Authorization": f"Bearer {tok}"}


def unknown_kid(api: Api) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": api.oidc.issuer, "sub": "x", "aud": "stager-api", "exp": now + 60}
    tok = jwt.encode(claims, api.oidc.key, algorithm="RS256", headers={"kid": "rotated-away"})
    return {"Authorization": f"Bearer {tok}"}


def alg_none(api: Api) -> dict[str, str]:
    claims = {"iss": api.oidc.issuer, "sub": "x", "aud": "stager-api", "exp": 9999999999}
    tok = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {tok}"}


@dataclass
class Case:
    name: str
    status: int
    hint: str
    body: Any = None
    headers: H = svc
    method: str = "POST"
    path: str = "/v1/job"
    raw: bytes | None = None
    exit_code: int | None = None
    absent: str = ""  # must not be in the reply (an echo of the input)


def envelopes(public_pem: bytes) -> dict[str, str]:
    sealer = Sealer([load_public_key(public_pem)])
    bound = Binding(stager_user=ALICE, dr_user="alice@ru.nl", submitter=SERVICE)
    good = sealer.seal(DR_PASS, bound)
    pre, kid, bnd, wrapped, nonce, data = good.split(".")
    other = Sealer([rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()])
    return {
        "garbage": "stgenv2.not-an-envelope",
        "truncated": ".".join((pre, kid, bnd, wrapped, nonce, data[:10])),
        "short_key": ".".join((pre, kid, bnd, wrapped[:-8], nonce, data)),
        "bad_b64": ".".join((pre, kid, bnd, wrapped[:-2] + "!!", nonce, data)),
        "unknown_kid": other.seal(DR_PASS, bound),
        "bad_nonce": ".".join((pre, kid, bnd, wrapped, nonce[:-4], data)),
    }


def cases(env: dict[str, str]) -> list[Case]:
    return [
        Case("malformed json", 400, "not valid JSON", raw=b'{"title": '),
        Case("empty body", 400, "empty", raw=b""),
        Case("not utf-8", 400, "UTF-8", raw=b"\xff\xfe{}"),
        Case("array body", 400, "JSON object", body=[job()]),
        Case("nested 10,000 deep", 400, "nested too deeply", raw=b"[" * 10_000 + b"]" * 10_000),
        Case("nested 500 deep", 400, "at most 32 levels", raw=b'{"a":' * 500 + b"1" + b"}" * 500),
        Case(
            "nested in a field",
            400,
            "nested too deeply at $.title",
            raw=json.dumps(job(title=json.loads("[" * 40 + "1" + "]" * 40))).encode(),
        ),
        Case(
            "huge array",
            400,
            "at most 10000",
            path="/v1/jobs",
            raw=b'{"jobs":[' + b"0," * 20_000 + b"0]}",
        ),
        Case("huge string", 400, "longer than", body=job(title="x" * (1024 * 1024 + 1))),
        Case("NaN", 400, "not a JSON number", raw=b'{"timeout": NaN}'),
        Case("huge integer", 400, "number too long", raw=b'{"timeout": ' + b"9" * 5000 + b"}"),
        Case("missing srcURL", 400, "srcURL", body=job(srcURL=...)),
        Case("missing stagerUser", 400, "stagerUser", body=job(stagerUser=...)),
        Case("missing title", 400, "title", body=job(title=...)),
        Case("missing drUser", 400, "drUser", body=job(drUser=...)),
        Case("timeout wrong type", 400, "timeout", body=job(timeout="soon")),
        Case("timeout negative", 400, "timeout", body=job(timeout=-5)),
        Case("title wrong type", 400, "title", body=job(title=42)),
        Case("drPass wrong type", 400, "drPass", body=job(drPass=12345)),
        Case("relative srcURL", 400, "relative", body=job(srcURL="project/3010000.01")),
        Case("relative irods dstURL", 400, "relative", body=job(dstURL="irods:tempZone/x")),
        Case("dotdot", 400, "'..'", body=job(srcURL="/project/../etc")),
        Case("both local", 400, "both local", body=job(dstURL="/project/other")),
        Case("both irods", 400, "both iRODS", body=job(srcURL="i:/tempZone/a")),
        Case("oversized title", 400, "title", body=job(title="x" * 300)),
        Case("bad email", 400, "email", body=job(stagerUserEmail="not-an-email")),
        Case("title CRLF", 400, "title: contains control", body=job(title="a\r\nBcc: x@evil.org")),
        Case("title tab", 400, "title: contains control", body=job(title="a\tb")),
        Case("drUser NUL", 400, "drUser: contains control", body=job(drUser="al\x00ice")),
        Case(
            "email LF",
            400,
            "stagerUserEmail: contains control",
            body=job(stagerUserEmail="a@example.org\nBcc: x@evil.org"),
        ),
        Case("unknown field", 400, "extraField", body=job(extraField=1)),
        Case("stagerUser bad name", 400, "stagerUser", body=job(stagerUser="Bad User")),
        Case("stagerUser root", 403, "root", body=job(stagerUser="root"), headers=wide),
        Case("system account", 403, "system account", body=job(stagerUser="daemon"), headers=wide),
        Case("nobody", 403, "personal accounts", body=job(stagerUser="nobody"), headers=wide),
        Case(
            "unknown user", 400, "not a known user", body=job(stagerUser="nosuchusr9"), headers=wide
        ),
        Case("service acts for other", 403, "may not act for", body=job(stagerUser=BOB)),
        Case(
            "user acts for other",
            403,
            "your own user name",
            body=job(stagerUser=BOB),
            headers=alice,
        ),
        Case("user without drPass", 400, "drPass is required", body=job(drPass=...), headers=alice),
        Case("empty drPass", 400, "drPass is empty", body=job(drPass="")),
        Case("garbage envelope", 400, "envelope", body=job(drPass=env["garbage"])),
        Case("truncated envelope", 400, "envelope", body=job(drPass=env["truncated"])),
        Case("tampered key length", 400, "wrong length", body=job(drPass=env["short_key"])),
        Case("tampered base64", 400, "base64url", body=job(drPass=env["bad_b64"])),
        Case("bad nonce", 400, "nonce", body=job(drPass=env["bad_nonce"])),
        Case("unknown key id", 400, "unknown key id", body=job(drPass=env["unknown_kid"])),
        Case("no auth", 401, "missing Authorization", body=job(), headers=lambda _a: {}),
        Case(
            "wrong password",
            401,
            "wrong service account",
            body=job(),
            headers=raw_auth("Basic " + base64.b64encode(f"{SERVICE}:{DR_PASS}".encode()).decode()),
        ),
        Case(
            "unknown account",
            401,
            "wrong service account",
            body=job(),
            headers=raw_auth("Basic " + base64.b64encode(b"nobody-here:whatever").decode()),
        ),
        Case("malformed basic", 401, "malformed basic", body=job(), headers=raw_auth("Basic %%%")),
        Case("odd scheme", 401, "Basic or Bearer", body=job(), headers=raw_auth("Digest abc")),
        Case("expired token", 401, "expired", body=job(), headers=token_with(exp_in=-3600)),
        Case(
            "wrong audience",
            401,
            "not for this service",
            body=job(),
            headers=token_with(aud="other"),
        ),
        Case("wrong issuer", 401, "issuer", body=job(), headers=wrong_issuer),
        Case("foreign signing key", 401, "invalid bearer token", body=job(), headers=foreign_key),
        Case("alg none", 401, "algorithm", body=job(), headers=alg_none),
        Case("token unknown kid", 401, "unknown key", body=job(), headers=unknown_kid),
        Case("garbage token", 401, "malformed bearer", body=job(), headers=raw_auth("Bearer abc")),
        Case("batch not object", 400, "body must be", path="/v1/jobs", body=[job()]),
        Case("batch empty", 400, "at least one", path="/v1/jobs", body={"jobs": []}),
        Case("batch too big", 400, "at most 1000", path="/v1/jobs", body={"jobs": [{}] * 1001}),
        Case("batch extra", 400, "unknown field", path="/v1/jobs", body={"jobs": [job()], "x": 1}),
        Case("batch all bad", 400, "jobs[0]", path="/v1/jobs", body={"jobs": [job(srcURL="rel")]}),
        Case("dir no path", 400, "path is required", method="GET", path="/v1/dir", headers=alice),
        Case("dir relative", 400, "relative", method="GET", path="/v1/dir?path=x/y", headers=alice),
        Case(
            "dir irods",
            400,
            "only local",
            method="GET",
            path="/v1/dir?path=irods:/z",
            headers=alice,
        ),
        Case("dir svc no user", 400, "user=", method="GET", path="/v1/dir?path=/project"),
        Case(
            "dir svc other user",
            403,
            "may not act for",
            method="GET",
            path=f"/v1/dir?path=/project&user={BOB}",
        ),
        Case("jobs unknown status", 400, "unknown job status", method="GET", path="/v1/jobs/bogus"),
        Case("dac malformed", 400, "3010000.01", method="GET", path="/v1/dac/project/abc"),
        Case("no such route", 404, "/v1/docs", method="GET", path="/v1/nothing", exit_code=100),
        Case(
            "wrong method",
            405,
            "method not allowed",
            method="PATCH",
            path="/v1/job",
            exit_code=102,
        ),
        Case(
            "dac no auth",
            401,
            "missing Authorization",
            method="GET",
            headers=lambda _a: {},
            path="/v1/dac/project/3010000.01",
        ),
        # values that fail validation are never echoed (DR_PASS must not come back)
        Case("relative echo", 400, "srcURL is relative", body=job(srcURL=f"rel/{DR_PASS}")),
        Case("dotdot echo", 400, "contains '..'", body=job(srcURL=f"/p/../{DR_PASS}")),
        Case("email echo", 400, "not an email", body=job(stagerUserEmail=f"{DR_PASS}@x")),
        Case(
            "paging echo",
            400,
            "offset must be a whole number",
            method="GET",
            path="/v1/jobs?offset=EchoMeNot",
            absent="EchoMeNot",
        ),
        Case(
            "dir user echo",
            400,
            "not a valid Unix user name",
            method="GET",
            path="/v1/dir?path=/project&user=Echo-ME-Not",
            absent="Echo-ME-Not",
        ),
    ]


async def test_bad_input_table(
    api: Api, keypair: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    table = cases(envelopes(keypair[1]))
    assert len(table) >= 30
    failures = []
    for case in table:
        kwargs: dict[str, Any] = {"headers": case.headers(api)}
        if case.raw is not None:
            kwargs["data"] = case.raw
            kwargs["headers"]["Content-Type"] = "application/json"
        elif case.body is not None:
            kwargs["json"] = case.body
        resp = await api.client.request(case.method, case.path, **kwargs)
        text = await resp.text()
        ok = (
            resp.status == case.status
            and (case.exit_code is None or f'"exitCode":{case.exit_code}' in text)
            and '"exitCode":0' not in text
            and (not case.absent or case.absent not in text)
            and resp.content_type == "application/problem+json"
            and case.hint in text
            and DR_PASS not in text
            and "Traceback" not in text
        )
        if not ok:
            failures.append(f"{case.name}: {resp.status} {text[:300]}")
        else:
            body = await resp.json()
            assert body["status"] == case.status and body["errorMessage"] == body["detail"]
    assert not failures, "\n".join(failures)
    # Nothing stored, nothing queued (held tasks are released first, so a stored one
    # would show up in the queue), and the password is nowhere in the logs.
    assert await api.app[STORE].find() == []
    assert await api.queued() == []
    assert DR_PASS not in api.logs.getvalue() and DR_PASS not in caplog.text
    assert "request" in api.logs.getvalue()


async def test_oversized_bodies_say_what_to_do(make_api: Any) -> None:
    """413 with a meaningful exitCode; a single job gets a message about that job, a batch
    is told to send fewer jobs."""
    api: Api = await make_api(max_body_bytes=4096)
    big = job(title="x" * 5000)
    r = await api.client.post("/v1/job", json=big, headers=svc(api))
    body = await r.json()
    assert r.status == 413 and body["exitCode"] == 102
    assert "a single job is far smaller" in body["errorMessage"]
    assert "fewer jobs" not in body["errorMessage"]
    r = await api.client.post("/v1/jobs", json={"jobs": [job()] * 20}, headers=svc(api))
    body = await r.json()
    assert r.status == 413 and "send fewer jobs per request" in body["errorMessage"]
    assert "4096 bytes" in body["errorMessage"]
