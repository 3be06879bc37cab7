"""Building the kustomize overlays once per test session, and looking objects up in them."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CRDS = K8S / "crds"
OVERLAYS = ("dev", "prod")
BIN = Path(sys.executable).parent

Doc = dict[str, Any]


def tool(name: str) -> str:
    """The path of a command-line tool of the dev extra (kubectl, kubernetes-validate,
    hadolint: all pinned in requirements.lock). Missing, the test is skipped, except under
    CI (``CI`` set), where it fails: CI must never pass a check it did not run."""
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if path is None:
        why = f"{name} not installed (pip install -r requirements.lock)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return str(path)


@functools.cache
def _built(overlay: str) -> str:
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return out.stdout


def build(overlay: str) -> list[Doc]:
    """The objects ``kubectl kustomize deploy/k8s/overlays/<overlay>`` prints (a fresh copy)."""
    return [d for d in yaml.safe_load_all(_built(overlay)) if d]


def find(docs: list[Doc], kind: str, name: str, namespace: str | None = None) -> Doc:
    """The one object of ``kind`` called ``name`` (in ``namespace`` if given)."""
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and d["metadata"]["name"] == name
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]
    assert len(found) == 1, f"{kind} {name}: {len(found)} in the build"
    return found[0]


def group_of(api_version: str) -> str:
    """``apps/v1`` → ``apps``; ``v1`` → ``""`` (the core group)."""
    return api_version.split("/", 1)[0] if "/" in api_version else ""
