"""``python -m bench [MODULE ...]``: run the benchmark modules found in ``bench/``.

A module with ``run() -> list[BenchResult]`` is called in-process and its results are
printed; a module with only a ``main()`` is run as ``python -m bench.<name>`` and its
output passed through.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

from . import BenchResult

REPO_ROOT = Path(__file__).resolve().parent.parent


def discover() -> dict[str, ModuleType]:
    """The benchmark modules of this package (``run()`` or ``main()``), by name."""
    here = Path(__file__).parent
    found = {}
    for info in pkgutil.iter_modules([str(here)]):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        if callable(getattr(module, "run", None)) or callable(getattr(module, "main", None)):
            found[info.name] = module
    return dict(sorted(found.items()))


def run_one(name: str, module: ModuleType) -> bool:
    """Run one benchmark module; True when it succeeded."""
    if not callable(getattr(module, "run", None)):
        proc = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=REPO_ROOT, check=False)
        return proc.returncode == 0
    try:
        results: list[BenchResult] = module.run()
    except Exception as e:  # one broken benchmark must not hide the others
        print(f"   FAILED: {type(e).__name__}: {e}", flush=True)
        return False
    for r in results:
        print(f"   {r.line()}", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("modules", nargs="*", help="benchmark modules to run (default: all)")
    args = p.parse_args(argv)
    available = discover()
    unknown = sorted(set(args.modules) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(available)}")
        return 2
    failed = 0
    for name in args.modules or list(available):
        print(f"== {name}", flush=True)
        started = time.monotonic()
        if not run_one(name, available[name]):
            failed += 1
        print(f"   ({time.monotonic() - started:.0f}s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
