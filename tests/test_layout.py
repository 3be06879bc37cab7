"""The layout rule, read from the source with ``ast`` so it holds after the layout issue.

``shared/`` holds what two or more processes import (each module is imported by at least two
of them) and never imports ``services``: not by an import statement (at any depth,
``TYPE_CHECKING`` blocks included) and not by a module name in a string
(``importlib.import_module("services.isync.engine")``, ``"services.x:f"``,
``["-m", "services.worker"]``), which no linter sees. Bare string statements (docstrings)
are prose and not scanned.

A service package (``services/<name>/``) imports ``shared``, itself and ``services.isync``;
the one documented exception is the API mounting the ingest REST sub-app
(``services.api`` -> ``services.ingest.rest``). ``services/cli.py`` is the operator CLI
over every service and is not a service package. Neither ``shared`` nor ``services`` imports
the programs and tests around them (``devtools``, ``tests``, ``bench``, ``scripts``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: A dotted module path under ``services`` inside a string ("services.isync.engine").
SERVICES_NAME = re.compile(r"(?<![\w.])services(?:\.[A-Za-z_]\w*)+")

#: Cross-service imports a service package may make, beyond ``services.isync``.
ALLOWED = {"api": ("services.ingest.rest",)}

#: Top-level packages around the product that the product never imports.
AROUND = ("devtools", "tests", "bench", "scripts")


def _module_of(path: Path) -> list[str]:
    """The dotted package ``path`` belongs to, as parts (the package itself for __init__)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1]


def imported_names(path: Path, tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything ``tree`` imports; ``from m import a`` yields m.a."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module.split(".") if node.module else []
            if node.level:
                package = _module_of(path)
                base = package[: len(package) - (node.level - 1)] + base
            for alias in node.names:
                yield node.lineno, ".".join([*base, alias.name])


def module_strings(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, text) of string constants that are values, not bare statements (docstrings)."""
    prose = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            yield node.lineno, node.value


def sources(folder: str) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((ROOT / folder).rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_shared_never_imports_services() -> None:
    bad = [
        f"{where(path, line)}: imports {name}"
        for path, tree in sources("shared")
        for line, name in imported_names(path, tree)
        if is_under(name, "services")
    ]
    assert not bad, "shared/ must not import services:\n" + "\n".join(bad)


def test_shared_names_no_services_module_in_strings() -> None:
    bad = [
        f"{where(path, line)}: string names {match.group()}"
        for path, tree in sources("shared")
        for line, text in module_strings(tree)
        for match in SERVICES_NAME.finditer(text)
    ]
    assert not bad, "shared/ must not reach services through a module name:\n" + "\n".join(bad)


def test_a_service_imports_no_other_service_but_isync() -> None:
    bad = []
    for path, tree in sources("services"):
        rel = path.relative_to(ROOT / "services").parts
        if len(rel) < 2:  # services/__init__.py, services/cli.py: not a service package
            continue
        service = rel[0]
        allowed = (f"services.{service}", "services.isync", *ALLOWED.get(service, ()))
        for line, name in imported_names(path, tree):
            if is_under(name, "services") and not any(is_under(name, ok) for ok in allowed):
                bad.append(f"{where(path, line)}: services.{service} imports {name}")
    assert not bad, "a service imports no other service but services.isync:\n" + "\n".join(bad)


def test_product_never_imports_tools_or_tests() -> None:
    bad = [
        f"{where(path, line)}: imports {name}"
        for folder in ("shared", "services")
        for path, tree in sources(folder)
        for line, name in imported_names(path, tree)
        if any(is_under(name, package) for package in AROUND)
    ]
    assert not bad, f"shared/ and services/ never import {', '.join(AROUND)}:\n" + "\n".join(bad)


#: Imported by one service and by code outside the repository: operators' ingest handler
#: files import this path (automated ingest's ``irods_capability_automated_ingest.core``).
PUBLIC_CONTRACTS = ("shared.ingest",)


def _importers_of(module: str) -> set[str]:
    """The processes (service packages, and ``services/cli.py``) that import ``module``."""
    users: set[str] = set()
    for path, tree in sources("services"):
        rel = path.relative_to(ROOT / "services").parts
        process = rel[0] if len(rel) > 1 else "cli"
        if any(is_under(name, module) for _, name in imported_names(path, tree)):
            users.add(process)
    return users


def test_every_shared_module_is_shared_by_two_processes() -> None:
    lonely = []
    for path in sorted((ROOT / "shared").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if path.name == "__init__.py" or any(is_under(module, p) for p in PUBLIC_CONTRACTS):
            continue
        users = _importers_of(module)
        if len(users) < 2:
            lonely.append(f"{module}: imported only by {sorted(users) or 'nothing'}")
    assert not lonely, "move these into the one service that uses them:\n" + "\n".join(lonely)
