"""Generated requests against the real running API: schemathesis reads ``/v1/openapi.json``
and throws cases at every operation, once as the service account ``streamer`` (HTTP basic)
and once as a user (an access token from the development OIDC provider's code flow).

    python -m fuzz.api [--cases N] [--store postgres|sqlite] [--out DIR] [--seed S]

Checks on every response: no 5xx (``not_a_server_error``), the status is documented, the
content type is the documented one, the body matches the documented schema (and headers);
besides, no ``unhandled error`` line may appear in the API's log. ``--cases`` is
schemathesis' ``--max-examples`` (per operation and phase); the run fails unless at least
``--min-cases`` were generated for each principal. Reports (JSON, and a pytest file
reproducing any failure) go to ``--out``, with the stack's logs. Credentials reach
schemathesis in a 0600 config file, never on a command line. Exit status 0: no finding.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fuzz.stack import REPO, Stack, Store

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)


@dataclass(frozen=True)
class Outcome:
    """One principal's schemathesis run, from its JSON report."""

    who: str
    generated: int
    failures: list[str]
    errors: list[str]
    accepted: dict[str, int]
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.failures and not self.errors


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def run_schemathesis(
    stack: Stack, who: str, authorization: str, cases: int, seed: int, out: Path
) -> Outcome:
    """One schemathesis run as ``who`` (its report in ``out/who.json``)."""
    report = out / f"{who}.json"
    with tempfile.TemporaryDirectory(prefix="stager-st-") as tmp:
        config = Path(tmp) / "schemathesis.toml"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write('hooks = "fuzz.hooks"\n[headers]\n')
            fh.write(f"Authorization = {_toml_string(authorization)}\n")
        argv = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"{stack.api_url}/v1/openapi.json",
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(cases),
            "--seed",
            str(seed),
            "--workers",
            "1",
            "--report",
            "json,pytest",
            "--report-json-path",
            str(report),
            "--report-pytest-path",
            str(out / f"{who}_reproduce.py"),
            "--request-timeout",
            "30",
        ]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STAGER_")},
            "PYTHONPATH": str(REPO),
            "FUZZ_STAGER_USER": stack.user,
            "FUZZ_PRINCIPAL": who,
            "NO_COLOR": "1",
        }
        with open(out / f"{who}.log", "w") as log:
            done = subprocess.run(
                argv, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
            )
    if not report.exists():
        return Outcome(who, 0, [], [f"schemathesis wrote no report (see {who}.log)"], {}, 1)
    data = json.loads(report.read_text())
    accepted: dict[str, int] = {}
    for op, phases in (data.get("valid_rates") or {}).items():
        accepted[op] = sum(p.get("accepted", 0) for p in phases.values())
    return Outcome(
        who=who,
        generated=int(data["test_cases"]["generated"]),
        failures=[json.dumps(f)[:400] for f in data.get("failures", [])],
        errors=[json.dumps(e)[:400] for e in data.get("errors", [])],
        accepted=accepted,
        exit_code=done.returncode,
    )


def fuzz_api(
    *, cases: int, min_cases: int, store: Store, out: Path, seed: int
) -> tuple[list[Outcome], list[str]]:
    """Both principals' runs and the API's unhandled-error log lines."""
    out.mkdir(parents=True, exist_ok=True)
    with Stack.start(out, store=store) as stack:
        outcomes = [
            run_schemathesis(stack, "service", stack.basic_header(), cases, seed, out),
            run_schemathesis(stack, "user", stack.bearer_header(), cases, seed, out),
        ]
        crashes = stack.api_errors()
    for o in outcomes:
        if o.generated < min_cases:
            o.errors.append(f"only {o.generated} cases generated (want >= {min_cases})")
    return outcomes, crashes


def table(outcomes: list[Outcome], crashes: list[str]) -> str:
    """What ran and what it found, for a person."""
    lines = [f"{'principal':10} {'cases':>7} {'failures':>9} {'errors':>7}  accepted by operation"]
    for o in outcomes:
        acc = ", ".join(f"{op} {n}" for op, n in sorted(o.accepted.items()) if n)
        lines.append(f"{o.who:10} {o.generated:>7} {len(o.failures):>9} {len(o.errors):>7}  {acc}")
        # not a finding, but the code behind these was only reached by refusals
        never = sorted(op for op, n in o.accepted.items() if not n)
        if never:
            lines.append(f"  never accepted: {', '.join(never)}")
        lines += [f"  failure: {f}" for f in o.failures] + [f"  error: {e}" for e in o.errors]
    lines.append(f"API unhandled errors logged: {len(crashes)}")
    lines += [f"  {c[:300]}" for c in crashes[:10]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuzz.api", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=100, help="max examples per operation and phase")
    p.add_argument("--min-cases", type=int, default=1000, help="fewest cases per principal")
    p.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--out", type=Path, default=REPO / ".fuzz" / "api")
    p.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "big"))
    args = p.parse_args(argv)
    outcomes, crashes = fuzz_api(
        cases=args.cases,
        min_cases=args.min_cases,
        store=args.store,
        out=args.out.resolve(),
        seed=args.seed,
    )
    print(table(outcomes, crashes))
    print(f"seed {args.seed}; reports and logs in {args.out}")
    return 0 if all(o.ok for o in outcomes) and not crashes else 1


if __name__ == "__main__":
    raise SystemExit(main())
