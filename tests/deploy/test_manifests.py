"""Offline checks of deploy/: the overlays build, validate, meet their pod-security level,
let through exactly the network flows the components need, and the Dockerfile passes
hadolint."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.k8s import OVERLAYS, ROOT, Doc, build, find, tool
from tests.deploy.netpol import Cluster, Pod

BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_validates(overlay: str, tmp_path: Path) -> None:
    docs = build(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    built = tmp_path / "built.yaml"
    built.write_text(yaml.safe_dump_all(docs))
    r = subprocess.run(
        [tool("kubernetes-validate"), "--strict", str(built)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def _level(docs: list[Doc], ns: str) -> str:
    for d in docs:
        if d["kind"] == "Namespace" and d["metadata"]["name"] == ns:
            return d["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    raise AssertionError(f"namespace {ns} not in the build")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_context_matches_pod_security_level(overlay: str) -> None:
    docs = build(overlay)
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
    assert sorted(caps["add"]) == ["CHOWN", "KILL", "SETGID", "SETUID"]


def test_dockerfile_passes_hadolint() -> None:
    r = subprocess.run(
        [tool("hadolint"), str(ROOT / "deploy" / "docker" / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def _pod(docs: list[Doc], kind: str, name: str) -> Pod:
    """The pod a Deployment or StatefulSet of the build runs (its labels and port names)."""
    d = find(docs, kind, name)
    template = d["spec"]["template"]
    ports = {
        p["name"]: p["containerPort"]
        for c in template["spec"]["containers"]
        for p in c.get("ports", [])
        if "name" in p
    }
    return Pod(name, d["metadata"]["namespace"], dict(template["metadata"]["labels"]), ports)


OUTSIDE = Pod("outside", None, ip="192.0.2.10")  # iRODS, the IdP, SMTP


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_the_needed_flows_and_not_others(overlay: str) -> None:
    docs = build(overlay)
    net = Cluster(docs)
    api = _pod(docs, "Deployment", "stager-api")
    ui = _pod(docs, "Deployment", "stager-ui")
    ingest = _pod(docs, "Deployment", "stager-ingest")
    worker = _pod(docs, "Deployment", "stager-worker")
    postgres = _pod(docs, "StatefulSet", "stager-postgres")
    # the pods the cluster operator makes for the RabbitmqCluster, and cluster services
    rabbit_labels = {"app.kubernetes.io/name": "stager-rabbitmq"}
    rabbit_labels["app.kubernetes.io/component"] = "rabbitmq"
    rabbitmq = Pod("rabbitmq", "stager-data", rabbit_labels, {"prometheus": 15692})
    rabbitmq2 = Pod("rabbitmq-1", "stager-data", rabbit_labels, ip="10.0.0.2")
    dns = Pod("dns", "kube-system", {"k8s-app": "kube-dns"})
    prometheus = Pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
    ingress = Pod("ingress", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    keda = Pod("keda", "keda", {"app": "keda-operator"})
    operator = Pod(
        "operator", "rabbitmq-system", {"app.kubernetes.io/component": "rabbitmq-operator"}
    )
    intruder = Pod("intruder", "default", {"app": "intruder"})
    needed = [
        (api, rabbitmq, 5672), (api, postgres, 5432), (api, OUTSIDE, 1247),
        (api, OUTSIDE, 20000), (api, OUTSIDE, 443),
        (worker, rabbitmq, 5672), (worker, OUTSIDE, 1247), (worker, OUTSIDE, 20199),
        (worker, OUTSIDE, 587),
        (ingest, rabbitmq, 5672), (ingest, postgres, 5432), (ingest, OUTSIDE, 1247),
        (ui, api, 8080), (ui, OUTSIDE, 443), (ingress, api, 8080), (ingress, ui, 8083),
        (prometheus, api, 8080), (prometheus, worker, 8081), (prometheus, ingest, 8082),
        (prometheus, ui, 8083), (prometheus, rabbitmq, 15692),
        (keda, rabbitmq, 15672), (operator, rabbitmq, 15672),
        (rabbitmq, rabbitmq2, 25672), (rabbitmq2, rabbitmq, 4369),
    ]  # fmt: skip
    for pod in (api, ui, ingest, worker, postgres, rabbitmq):
        assert net.allowed(pod, dns, 53, "UDP"), f"{pod.name} cannot resolve names"
    for src, dst, port in needed:
        assert net.allowed(src, dst, port), f"{src.name} -> {dst.name}:{port} is blocked"
    refused = [
        (ui, postgres, 5432), (ui, rabbitmq, 5672), (worker, postgres, 5432),
        (worker, api, 8080), (ingest, api, 8080), (intruder, api, 8080),
        (intruder, postgres, 5432), (intruder, rabbitmq, 5672), (intruder, worker, 8081),
        (intruder, rabbitmq, 15672), (api, OUTSIDE, 22), (worker, OUTSIDE, 5432),
        (prometheus, postgres, 5432), (rabbitmq, OUTSIDE, 443), (api, dns, 8080),
        (worker, rabbitmq, 15672), (api, worker, 8081),
    ]  # fmt: skip
    for src, dst, port in refused:
        assert not net.allowed(src, dst, port), f"{src.name} -> {dst.name}:{port} is open"
    for ns in ("stager", "stager-workers", "stager-data"):  # whatever a pod's own policies say
        deny = find(docs, "NetworkPolicy", "default-deny", ns)["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, ns
