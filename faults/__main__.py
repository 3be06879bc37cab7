"""``python -m faults [--form ci|short|full] [--seed N] [--logs DIR]``: run the campaign.

Exit status 0 when every check passed, 1 with one line per violation otherwise, 2 when the
stack did not come up. The seed is printed first; the same seed builds the same jobs and
draws the same fault times (the system's own timing still varies from run to run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

from faults.campaign import Campaign, Result, say, worker_completions
from faults.plan import PROFILES
from faults.stack import CampaignStack, StackError
from faults.verify import check_ingest, check_transfers, table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m faults", description=__doc__.splitlines()[0])
    p.add_argument("--form", choices=sorted(PROFILES), default="full")
    p.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    p.add_argument("--logs", type=Path, default=Path("faults-logs"), help="children's logs")
    p.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    p.add_argument("--no-ingest", action="store_true", help="the transfer phase only")
    p.add_argument("--deadline", type=float, default=None, help="hard limit in seconds")
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="MIB_S",
        help="worker-iRODS bandwidth limit in MiB/s (default: the form's; 0: none)",
    )
    p.add_argument("--summary", type=Path, default=None, help="write the outcome as JSON here")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    profile = PROFILES[args.form]
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    say(f"faults: form {profile.name}, seed {seed} (again: make faults SEED={seed})")
    rate = profile.irods_rate if args.rate is None else (args.rate * 2**20 or None)
    stack = CampaignStack(logs=args.logs.resolve(), store=args.store, irods_rate=rate)
    started = time.monotonic()
    violations: list[str] = []
    try:
        try:
            await stack.start()
        except (StackError, OSError, RuntimeError) as e:
            say(f"faults: the stack did not start: {e} (logs in {args.logs})")
            return 2
        say(f"faults: stack up in {time.monotonic() - started:.0f} s (logs in {args.logs})")
        campaign = Campaign(stack, profile, seed)
        try:
            result = await campaign.transfers()
            if not args.no_ingest:
                await campaign.ingest(result)
        finally:
            await campaign.api.close()
        violations += result.errors
        with stack.irods_session() as session:
            violations += await asyncio.to_thread(
                check_transfers, result, session, campaign.root, worker_completions(stack)
            )
            violations += await asyncio.to_thread(check_ingest, result, session)
        report(result, violations, seed, time.monotonic() - started)
        if args.summary is not None:
            write_summary(args.summary, result, violations, seed)
    finally:
        await stack.stop()
    return 1 if violations else 0


def report(result: Result, violations: list[str], seed: int, seconds: float) -> None:
    say("")
    say(table(result))
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in result.phase_seconds.items())
    say(f"seed {seed}; {seconds:.0f} s in all ({phases})")
    if violations:
        say(f"FAILED: {len(violations)} violation(s):")
        for line in violations:
            say("  " + line)
    else:
        say("OK: every check passed")


def write_summary(path: Path, result: Result, violations: list[str], seed: int) -> None:
    """The outcome as JSON (tests/faults reads it): the faults, the jobs' final states and
    the violations."""
    body = {
        "seed": seed,
        "faults": [
            {
                "kind": f.kind,
                "phase": f.phase,
                "at": round(f.at, 2),
                "target": f.target,
                "in_flight": f.in_flight,
                "running": len(f.affected),
                "note": f.note,
            }
            for f in result.faults
        ],
        "jobs": {k: [r["status"]["status"] for r in rows] for k, rows in result.final.items()},
        "ingest": result.ingest_job.get("state"),
        "violations": violations,
    }
    path.write_text(json.dumps(body, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.nice(0)
    try:
        if args.deadline:
            return asyncio.run(asyncio.wait_for(run(args), args.deadline))
        return asyncio.run(run(args))
    except TimeoutError:
        say(f"faults: FAILED: did not finish within --deadline {args.deadline:g} s")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
