"""Offline checks of deploy/: the overlays build, validate, every Deployment has its
probes and resources, meet their pod-security level, let through exactly the network flows
the components need, and the Dockerfile passes hadolint. Each check is a function that
lists what is wrong; ``test_*_fails_on_*`` feed it a broken copy to show it can fail."""

from __future__ import annotations

import copy
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from services.api.settings import ApiSettings
from services.ingest.settings import IngestSettings
from services.ui.settings import UiSettings
from services.worker.credentials import load_opener
from services.worker.settings import WorkerSettings
from shared.crypto import generate_keypair
from shared.errors import StagerError
from shared.messaging.signing import Role
from shared.messaging.signing import generate as generate_signing
from tests.deploy.conftest import assert_check_fails_on
from tests.deploy.k8s import OVERLAYS, ROOT, Doc, build, find, tool
from tests.deploy.netpol import Cluster, Pod

BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip


def schema_errors(docs: list[Doc], tmp_path: Path) -> str:
    """What ``kubernetes-validate --strict`` says of the objects (empty: they validate)."""
    built = tmp_path / "built.yaml"
    built.write_text(yaml.safe_dump_all(docs))
    r = subprocess.run(
        [tool("kubernetes-validate"), "--strict", str(built)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return "" if r.returncode == 0 else r.stdout + r.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_validates(overlay: str, tmp_path: Path) -> None:
    docs = build(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    assert schema_errors(docs, tmp_path) == ""


def _deployment(docs: list[Doc], name: str) -> Doc:
    return find(docs, "Deployment", name)


def _container(docs: list[Doc], name: str) -> Doc:
    c: Doc = _deployment(docs, name)["spec"]["template"]["spec"]["containers"][0]
    return c


def test_kubernetes_validate_fails_on_a_broken_object(tmp_path: Path) -> None:
    docs = copy.deepcopy(build("prod"))
    _deployment(docs, "stager-api")["spec"]["replicas"] = "two"
    _container(docs, "stager-ui")["command"] = "python -m services.ui"  # not a list
    _container(docs, "stager-ingest")["livenessProbe"]["httpGet"]["paht"] = "/livez"
    out = schema_errors(docs, tmp_path)
    assert "deployment/stager-api" in out and "'two' is not of type 'integer'" in out, out
    assert "deployment/stager-ui" in out and "command" in out, out
    assert "'paht' was unexpected" in out, out


#: Every Deployment's containers: the HTTP probes the services serve (shared/serve.py).
PROBES = {"livenessProbe": "/livez", "readinessProbe": "/readyz"}


def probe_problems(docs: list[Doc]) -> list[str]:
    """Deployments whose containers lack a probe on /livez or /readyz of one of their own
    ports, or resource requests and limits."""
    out = []
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            where = f"{d['metadata']['name']}/{c['name']}"
            ports = {p.get("name") for p in c.get("ports", [])} | {
                p["containerPort"] for p in c.get("ports", [])
            }
            for probe, path in PROBES.items():
                get = c.get(probe, {}).get("httpGet")
                if not get or get.get("path") != path:
                    out.append(f"{where}: no {probe} on {path}")
                elif get.get("port") not in ports:
                    out.append(f"{where}: {probe} port {get.get('port')} is not a container port")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(part, {})):
                    out.append(f"{where}: resources.{part} needs cpu and memory")
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_probes_and_resources(overlay: str) -> None:
    docs = build(overlay)
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"} >= {
        "stager-api", "stager-ui", "stager-ingest", "stager-worker",
    }  # fmt: skip
    assert probe_problems(docs) == []


def _level(docs: list[Doc], ns: str) -> str:
    for d in docs:
        if d["kind"] == "Namespace" and d["metadata"]["name"] == ns:
            return str(d["metadata"]["labels"]["pod-security.kubernetes.io/enforce"])
    raise AssertionError(f"namespace {ns} not in the build")


#: What the worker adds, and why (docs/deploy.md): become the job's user, give files to it,
#: stop the user's children.
WORKER_CAPS = ["CHOWN", "KILL", "SETGID", "SETUID"]


def security_problems(docs: list[Doc]) -> list[str]:
    """Workloads whose security context exceeds their namespace's pod-security level
    (restricted: no added capability but NET_BIND_SERVICE, non-root, RuntimeDefault
    seccomp; baseline: only its capabilities), or that are privileged, may escalate,
    keep capabilities; the worker adds exactly :data:`WORKER_CAPS`."""
    out = []
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        name = d["metadata"]["name"]
        pod = d["spec"]["template"]["spec"]
        level = _level(docs, d["metadata"]["namespace"])
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            if sc.get("privileged", False):
                out.append(f"{name}: privileged")
            if sc.get("allowPrivilegeEscalation") is not False:
                out.append(f"{name}: allowPrivilegeEscalation is not false")
            caps = sc.get("capabilities", {})
            if caps.get("drop") != ["ALL"]:
                out.append(f"{name}: capabilities.drop is not [ALL]")
            added = set(caps.get("add", []))
            if level == "restricted":
                if not added <= {"NET_BIND_SERVICE"}:
                    out.append(f"{name}: adds {sorted(added)} under restricted")
                non_root = sc.get(
                    "runAsNonRoot", pod.get("securityContext", {}).get("runAsNonRoot")
                )
                if non_root is not True:
                    out.append(f"{name}: runAsNonRoot is not true under restricted")
                seccomp = pod.get("securityContext", {}).get("seccompProfile", {}).get("type")
                if seccomp != "RuntimeDefault":
                    out.append(f"{name}: seccompProfile is not RuntimeDefault under restricted")
            elif level == "baseline":
                if not added <= BASELINE_CAPS:
                    out.append(f"{name}: adds {sorted(added - BASELINE_CAPS)} beyond baseline")
            else:
                out.append(f"{name}: namespace level {level!r} is neither restricted nor baseline")
            if name == "stager-worker" and sorted(added) != WORKER_CAPS:
                out.append(f"{name}: adds {sorted(added)}, not {WORKER_CAPS}")
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_context_matches_pod_security_level(overlay: str) -> None:
    assert security_problems(build(overlay)) == []


def secret_access_problems(docs: list[Doc]) -> list[str]:
    """A pod that runs as a non-root uid and mounts a Secret must be able to read it: the
    kubelet writes the files as root with ``defaultMode``; only ``fsGroup`` (the group
    gets read) or a mode readable by others lets the process read them."""
    out = []
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = d["spec"]["template"]["spec"]
        uid = pod.get("securityContext", {}).get("runAsUser")
        if not uid:
            continue  # root reads any mode
        for v in pod.get("volumes", []):
            mode = v.get("secret", {}).get("defaultMode", 0o644)
            if "secret" in v and not mode & 0o004 and "fsGroup" not in pod["securityContext"]:
                out.append(f"{d['metadata']['name']}: uid {uid} cannot read Secret {v['name']}")
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_non_root_pods_can_read_their_secrets(overlay: str) -> None:
    assert secret_access_problems(build(overlay)) == []


def hadolint(dockerfile: Path) -> tuple[int, str]:
    """hadolint's exit status and findings for one Dockerfile (the repository's config)."""
    r = subprocess.run(
        [tool("hadolint"), str(dockerfile)],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    return r.returncode, r.stdout + r.stderr


def test_dockerfile_passes_hadolint() -> None:
    status, out = hadolint(ROOT / "deploy" / "docker" / "Dockerfile")
    assert status == 0, out


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n")
    status, out = hadolint(bad)
    assert status != 0
    assert "DL3007" in out and "DL3008" in out, out  # a moving tag; an unpinned package


Edit = Callable[[list[Doc]], None]


def _set_container(name: str, key: str, value: object) -> Edit:
    def edit(docs: list[Doc]) -> None:
        sc = _container(docs, name).setdefault("securityContext", {})
        node = sc
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    return edit


def _drop_container(name: str, key: str) -> Edit:
    def edit(docs: list[Doc]) -> None:
        del _container(docs, name)[key]

    return edit


def _pod_security(name: str, key: str, value: object) -> Edit:
    def edit(docs: list[Doc]) -> None:
        _deployment(docs, name)["spec"]["template"]["spec"]["securityContext"][key] = value

    return edit


def _probe_path(name: str, probe: str, path: str) -> Edit:
    def edit(docs: list[Doc]) -> None:
        _container(docs, name)[probe]["httpGet"]["path"] = path

    return edit


def _probe_port(name: str, port: object) -> Edit:
    def edit(docs: list[Doc]) -> None:
        _container(docs, name)["readinessProbe"]["httpGet"]["port"] = port

    return edit


def _no_limits(name: str) -> Edit:
    def edit(docs: list[Doc]) -> None:
        del _container(docs, name)["resources"]["limits"]

    return edit


def _no_fs_group(name: str) -> Edit:
    def edit(docs: list[Doc]) -> None:
        del _deployment(docs, name)["spec"]["template"]["spec"]["securityContext"]["fsGroup"]

    return edit


BROKEN: list[tuple[str, Callable[[list[Doc]], list[str]], Edit, str]] = [
    ("ui without fsGroup", secret_access_problems, _no_fs_group("stager-ui"),
     "stager-ui: uid 10001 cannot read Secret secrets"),
    ("api without liveness probe", probe_problems, _drop_container("stager-api", "livenessProbe"),
     "stager-api/api: no livenessProbe on /livez"),
    ("ui readiness on the wrong path", probe_problems,
     _probe_path("stager-ui", "readinessProbe", "/healthz"), "no readinessProbe on /readyz"),
    ("ingest probe on a port it does not have", probe_problems, _probe_port("stager-ingest", 9),
     "is not a container port"),
    ("worker without limits", probe_problems, _no_limits("stager-worker"), "resources.limits"),
    ("privileged worker", security_problems,
     _set_container("stager-worker", "privileged", True), "stager-worker: privileged"),
    ("worker with SYS_ADMIN", security_problems,
     _set_container("stager-worker", "capabilities.add", [*WORKER_CAPS, "SYS_ADMIN"]),
     "['SYS_ADMIN'] beyond baseline"),
    ("worker without KILL", security_problems,
     _set_container("stager-worker", "capabilities.add", ["CHOWN", "SETGID", "SETUID"]),
     "not ['CHOWN', 'KILL', 'SETGID', 'SETUID']"),
    ("api adding CHOWN under restricted", security_problems,
     _set_container("stager-api", "capabilities.add", ["CHOWN"]), "under restricted"),
    ("ui keeping its capabilities", security_problems,
     _set_container("stager-ui", "capabilities.drop", []), "capabilities.drop"),
    ("ingest may escalate", security_problems,
     _set_container("stager-ingest", "allowPrivilegeEscalation", True),
     "allowPrivilegeEscalation"),
    ("api as root", security_problems, _set_container("stager-api", "runAsNonRoot", False),
     "runAsNonRoot"),
    ("api without seccomp", security_problems,
     _pod_security("stager-api", "seccompProfile", {"type": "Unconfined"}), "seccompProfile"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "check", "edit", "why"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_manifest_check_fails_on_a_broken_manifest(
    what: str, check: Callable[[list[Doc]], list[str]], edit: Edit, why: str
) -> None:
    assert_check_fails_on(what, check, edit, why)


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


def flow_problems(docs: list[Doc]) -> list[str]:
    """Flows the components need that the NetworkPolicies block, flows they must not have
    that are open, and namespaces without the default-deny policy."""
    out: list[str] = []
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
        if not net.allowed(pod, dns, 53, "UDP"):
            out.append(f"{pod.name} cannot resolve names")
    for src, dst, port in needed:
        if not net.allowed(src, dst, port):
            out.append(f"{src.name} -> {dst.name}:{port} is blocked")
    refused = [
        (ui, postgres, 5432), (ui, rabbitmq, 5672), (worker, postgres, 5432),
        (worker, api, 8080), (ingest, api, 8080), (intruder, api, 8080),
        (intruder, postgres, 5432), (intruder, rabbitmq, 5672), (intruder, worker, 8081),
        (intruder, rabbitmq, 15672), (api, OUTSIDE, 22), (worker, OUTSIDE, 5432),
        (prometheus, postgres, 5432), (rabbitmq, OUTSIDE, 443), (api, dns, 8080),
        (worker, rabbitmq, 15672), (api, worker, 8081),
    ]  # fmt: skip
    for src, dst, port in refused:
        if net.allowed(src, dst, port):
            out.append(f"{src.name} -> {dst.name}:{port} is open")
    deny = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for ns in ("stager", "stager-workers", "stager-data"):  # whatever a pod's own policies say
        found = [
            d
            for d in docs
            if d["kind"] == "NetworkPolicy"
            and d["metadata"]["name"] == "default-deny"
            and d["metadata"].get("namespace") == ns
        ]
        if [d["spec"] for d in found] != [deny]:
            out.append(f"{ns}: no default-deny policy")
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_the_needed_flows_and_not_others(overlay: str) -> None:
    assert flow_problems(build(overlay)) == []


def _policy(docs: list[Doc], name: str, ns: str) -> Doc:
    return find(docs, "NetworkPolicy", name, ns)


def _allow_all_ingress(docs: list[Doc]) -> None:
    docs.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "oops", "namespace": "stager"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
        }
    )


def _drop_policy(name: str, ns: str) -> Edit:
    def edit(docs: list[Doc]) -> None:
        docs.remove(_policy(docs, name, ns))

    return edit


def _egress_anywhere(docs: list[Doc]) -> None:
    _policy(docs, "stager-worker", "stager-workers")["spec"]["egress"].append({})


FLOWS_BROKEN: list[tuple[str, Edit, str]] = [
    ("an allow-all ingress policy", _allow_all_ingress, "intruder -> stager-api:8080 is open"),
    ("no API policy", _drop_policy("stager-api", "stager"),
     "stager-api -> stager-postgres:5432 is blocked"),
    ("no DNS for the workers", _drop_policy("allow-dns", "stager-workers"),
     "stager-worker cannot resolve names"),
    ("worker egress anywhere", _egress_anywhere, "stager-worker -> outside:5432 is open"),
    ("no default-deny in stager-data", _drop_policy("default-deny", "stager-data"),
     "stager-data: no default-deny policy"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "why"), FLOWS_BROKEN, ids=[b[0] for b in FLOWS_BROKEN])
def test_the_network_policy_check_fails_on_broken_policies(what: str, edit: Edit, why: str) -> None:
    docs = copy.deepcopy(build("prod"))
    edit(docs)
    problems = flow_problems(docs)
    assert why in problems, (what, problems)


#: The settings class each Deployment's process loads (its ``STAGER_*`` environment).
SETTINGS_CLASSES: dict[str, tuple[type[Any], Role | None]] = {
    "stager-api": (ApiSettings, Role.API),
    "stager-ui": (UiSettings, None),
    "stager-ingest": (IngestSettings, Role.INGEST),
    "stager-worker": (WorkerSettings, Role.WORKER),
}
SECRETS_DIR = "/run/secrets/stager"


def _secret_file(name: str, keys: dict[str, bytes]) -> bytes:
    """Plausible content for a file the Secret holds, by its name."""
    if name == "signing.key":
        return keys["signing.key"]
    if name in ("api.pub", "worker.pub", "ingest.pub"):
        return keys["signing.pub"]
    if name in ("envelope.pub", "envelope.pem"):
        return keys[name]
    if name == "broker-url":
        return b"amqp://stager-x:pw@stager-rabbitmq.stager-data.svc:5672/stager"
    return b"a-secret-value"


def settings_problems(docs: list[Doc], secrets: Path) -> list[str]:
    """Each Deployment's environment (its ConfigMap, the Secret's keys as env, the Secret's
    files at ``/run/secrets/stager``, here under ``secrets``) loads into its service's
    settings and gives it its signing key: a misspelt variable, a ``file:`` the Secret
    does not hold or a bad value is named. The Secret's files are the ones docs/deploy.md
    step 4 creates."""
    signing_private, signing_public = generate_signing()
    envelope_private, envelope_public = generate_keypair(2048)
    keys = {
        "signing.key": signing_private,
        "signing.pub": signing_public,
        "envelope.pem": envelope_private,
        "envelope.pub": envelope_public,
    }
    out = []
    for d in docs:
        name = d["metadata"]["name"]
        if d["kind"] != "Deployment" or name not in SETTINGS_CLASSES:
            continue
        cls, role = SETTINGS_CLASSES[name]
        (c,) = d["spec"]["template"]["spec"]["containers"]
        env: dict[str, str] = {}
        for source in c.get("envFrom", []):
            env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            env[e["name"]] = "sqlite+aiosqlite:///:memory:" if ref else e["value"]
        root = secrets / name
        root.mkdir()
        for value in env.values():
            for file in re.findall(re.escape(SECRETS_DIR) + r"/([\w.-]+)", value):
                (root / file).write_bytes(_secret_file(file, keys))
        if env.get("STAGER_PRIVATE_KEYS_DIR") == SECRETS_DIR:
            (root / "envelope.pem").write_bytes(keys["envelope.pem"])
        env = {k: v.replace(SECRETS_DIR, str(root)) for k, v in env.items()}
        unknown = sorted(k for k in env if not _is_setting(cls, k))
        if unknown:
            out.append(f"{name}: not settings of {cls.__name__}: {unknown}")
        with pytest.MonkeyPatch.context() as mp:
            for k in [k for k in os.environ if k.startswith("STAGER_")]:
                mp.delenv(k)
            for k, v in env.items():
                mp.setenv(k, v)
            try:
                settings = cls()
                if role is not None:
                    settings.signing.signer(role)
                worker = isinstance(settings, WorkerSettings)
                if worker and load_opener(settings.private_keys_dir) is None:
                    out.append(f"{name}: no envelope private key in STAGER_PRIVATE_KEYS_DIR")
                if isinstance(settings, ApiSettings | UiSettings) and not settings.public_keys:
                    out.append(f"{name}: no envelope public key (STAGER_PUBLIC_KEYS)")
            except (ValidationError, StagerError) as e:
                out.append(f"{name}: {type(e).__name__}: {str(e)[:300]}")
    return out


def _is_setting(cls: type[Any], variable: str) -> bool:
    """``STAGER_A__B`` names field ``a`` (then ``b`` of its model) of ``cls``."""
    parts = variable.removeprefix("STAGER_").lower().split("__")
    model: Any = cls
    for part in parts:
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return True  # a dict-valued field: any key
        if part not in fields:
            return False
        model = fields[part].annotation
        model = next(
            (a for a in getattr(model, "__args__", ()) if hasattr(a, "model_fields")), model
        )
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_deployment_environment_loads_into_its_settings(overlay: str, tmp_path: Path) -> None:
    assert settings_problems(build(overlay), tmp_path) == []


def _config(name: str, key: str, value: str | None) -> Edit:
    def edit(docs: list[Doc]) -> None:
        data = find(docs, "ConfigMap", name)["data"]
        if value is None:
            del data[key]
        else:
            data[key] = value

    return edit


SETTINGS_BROKEN: list[tuple[str, Edit, str]] = [
    ("a misspelt variable", _config("stager-api-config", "STAGER_SIGNING__KYE", "x"),
     "not settings of ApiSettings: ['STAGER_SIGNING__KYE']"),
    ("no signing key", _config("stager-worker-config", "STAGER_SIGNING__KEY", None),
     "STAGER_SIGNING__KEY is not set"),
    ("no envelope public key", _config("stager-api-config", "STAGER_PUBLIC_KEYS", None),
     "stager-api: no envelope public key"),
    ("no envelope private key", _config("stager-worker-config", "STAGER_PRIVATE_KEYS_DIR", "/"),
     "stager-worker: no envelope private key"),
    ("a bad value", _config("stager-worker-config", "STAGER_CONCURRENCY", "many"),
     "stager-worker: ValidationError"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "edit", "why"), SETTINGS_BROKEN, ids=[b[0] for b in SETTINGS_BROKEN]
)
def test_the_settings_check_fails_on_a_broken_environment(
    what: str, edit: Edit, why: str, tmp_path: Path
) -> None:
    docs = copy.deepcopy(build("prod"))
    edit(docs)
    problems = settings_problems(docs, tmp_path)
    assert any(why in p for p in problems), (what, problems)


def docs_overlay(text: str) -> str:
    """The example site overlay of docs/deploy.md step 5 (its indented YAML block)."""
    lines = text.splitlines()
    start = lines.index("    apiVersion: kustomize.config.k8s.io/v1beta1")
    block = []
    for line in lines[start:]:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block).rstrip() + "\n"


def test_the_documented_site_overlay_builds_and_its_settings_load(tmp_path: Path) -> None:
    """docs/deploy.md's example overlay, built on the repository's prod overlay: it builds,
    sets what it says, and every service's environment still loads into its settings."""
    (tmp_path / "stager").symlink_to(ROOT)
    site = tmp_path / "site"
    site.mkdir()
    (site / "kustomization.yaml").write_text(
        docs_overlay((ROOT / "docs" / "deploy.md").read_text())
    )
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(site)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    api = find(docs, "ConfigMap", "stager-api-config")["data"]
    assert api["STAGER_ADMIN__GROUPS"] == '["stager-admins"]'
    assert api["STAGER_SIGNING__KEY"] == "file:/run/secrets/stager/signing.key"  # merged
    assert _container(docs, "stager-api")["image"] == "REGISTRY/stager/api:TAG"
    assert find(docs, "PersistentVolumeClaim", "project-storage")["spec"]["storageClassName"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    assert settings_problems(docs, secrets) == []
    broken = tmp_path / "broken"
    broken.mkdir()
    find(docs, "ConfigMap", "stager-ui-config")["data"]["STAGER_OIDC__ISSUR"] = "x"
    assert any("STAGER_OIDC__ISSUR" in p for p in settings_problems(docs, broken))
