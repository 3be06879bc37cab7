"""Run the coverage-guided fuzz targets (atheris, libFuzzer underneath).

    python -m fuzz.run [TARGET ...] [--seconds S | --runs N] [--out DIR]
    python -m fuzz.run --replay [TARGET ...]      # every checked-in input, no fuzzing
    python -m fuzz.run --list

Each target runs in a child process for ``--seconds`` (default ``FUZZ_SECONDS`` or 60) or
``--runs`` inputs, starting from its checked-in corpus ``fuzz/corpus/<target>/`` (seeds
and the inputs of earlier findings); new interesting inputs go to ``DIR/<target>/corpus``
(not the repository), a crashing input to ``DIR/<target>/crash-*``. To keep a finding:
fix it, copy the crash file into ``fuzz/corpus/<target>/`` (named after what it found),
and ``--replay`` (run by ``tests/fuzz/test_targets.py``) proves it stays fixed.
Exit status 0: no target found anything.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from fuzz.targets import TARGETS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CORPUS = HERE / "corpus"
#: libFuzzer dictionaries (``<target>.dict``: tokens the input format is made of)
DICTS = HERE / "dicts"
_STATS = re.compile(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)\s+cov: (\d+) ft: (\d+) corp: (\d+)")


@dataclass(frozen=True)
class Result:
    """One target's run."""

    target: str
    ok: bool
    execs: int = 0
    cov: int = 0
    corpus: int = 0
    seconds: float = 0.0
    crash: str = ""
    detail: str = ""


def replay(target: str) -> list[tuple[Path, str]]:
    """Every checked-in input of ``target`` through its ``test_one_input``: the failures."""
    run = importlib.import_module(TARGETS[target].module).test_one_input
    failures = []
    for path in sorted((CORPUS / target).glob("*")):
        try:
            run(path.read_bytes())
        except Exception:
            failures.append((path, traceback.format_exc(limit=-3)))
    return failures


def _child(target: str, libfuzzer_args: list[str]) -> None:
    """In the child: instrument, import the target, fuzz (``atheris.Fuzz`` exits)."""
    import atheris

    spec = TARGETS[target]
    with atheris.instrument_imports(include=list(spec.instrument)):
        module = importlib.import_module(spec.module)
    atheris.Setup([sys.argv[0], *libfuzzer_args], module.test_one_input)
    atheris.Fuzz()


def fuzz(target: str, out: Path, *, seconds: float | None, runs: int | None) -> Result:
    """Run ``target`` in a child; its log is ``out/<target>/fuzz.log``."""
    work = out / target
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for old in work.glob("crash-*"):
        old.unlink()
    limit = [f"-runs={runs}"] if runs is not None else [f"-max_total_time={int(seconds or 60)}"]
    args = [
        str(corpus),
        str(CORPUS / target),
        *limit,
        f"-artifact_prefix={work}/",
        "-rss_limit_mb=2048",
        "-timeout=20",
        "-max_len=16384",
        "-print_final_stats=1",
    ]
    if (DICTS / f"{target}.dict").exists():
        args.append(f"-dict={DICTS / f'{target}.dict'}")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"}
    start = time.monotonic()
    with open(work / "fuzz.log", "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "fuzz.run", "--child", target, "--", *args],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    elapsed = time.monotonic() - start
    text = (work / "fuzz.log").read_text(errors="replace")
    stats = _STATS.findall(text)
    execs, cov, _ft, corp = (int(x) for x in stats[-1]) if stats else (0, 0, 0, 0)
    crashes = sorted(work.glob("crash-*")) + sorted(work.glob("oom-*"))
    crashes += sorted(work.glob("timeout-*"))
    tail = "\n".join(text.strip().splitlines()[-25:])
    return Result(
        target=target,
        ok=done.returncode == 0 and not crashes,
        execs=execs,
        cov=cov,
        corpus=corp,
        seconds=elapsed,
        crash=str(crashes[0]) if crashes else "",
        detail="" if done.returncode == 0 else tail,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:])
        return 0
    p = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.splitlines()[0])
    p.add_argument("targets", nargs="*", metavar="TARGET", help=", ".join(TARGETS))
    group = p.add_mutually_exclusive_group()
    group.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", 60)))
    group.add_argument("--runs", type=int)
    p.add_argument("--out", type=Path, default=REPO / ".fuzz")
    p.add_argument("--replay", action="store_true", help="only replay the checked-in inputs")
    p.add_argument("--list", action="store_true")
    args = p.parse_args(argv)
    names = args.targets or list(TARGETS)
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        p.error(f"unknown target(s) {', '.join(unknown)}: choose from {', '.join(TARGETS)}")
    if args.list:
        for name, spec in TARGETS.items():
            print(f"{name:14} {spec.summary}")
        return 0
    if args.replay:
        bad = 0
        for name in names:
            failures = replay(name)
            count = len(list((CORPUS / name).glob("*")))
            print(f"{name:14} {count:5} inputs replayed, {len(failures)} failing")
            for path, tb in failures:
                print(f"  {path.name}:\n{tb}")
            bad += len(failures)
        return 1 if bad else 0
    print(f"{'target':14} {'execs':>9} {'cov':>6} {'corpus':>7} {'seconds':>8}  finding")
    results = []
    for name in names:
        r = fuzz(name, args.out.resolve(), seconds=args.seconds, runs=args.runs)
        results.append(r)
        found = r.crash or ("" if r.ok else "the fuzzer failed")
        print(f"{name:14} {r.execs:>9} {r.cov:>6} {r.corpus:>7} {r.seconds:>8.0f}  {found}")
        if r.detail:
            print(r.detail)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
