"""Every custom resource the overlays build validates against its vendored CRD's
``openAPIV3Schema`` (unknown fields refused, as a server's strict field validation does),
and the custom resources say what the code says: broker permissions, consumer_timeout,
the KEDA trigger, one ServiceMonitor per component, the dashboard ConfigMap."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
import yaml

from scripts.broker_users import DEFAULT_PREFIX, DEFAULT_VHOST, ROLES, permissions
from services.api.limits import TIMEOUT_MAX, JobLimits
from shared.messaging.topology import Names, Topology, retry_delays
from tests.deploy.k8s import CRDS, OVERLAYS, Doc, build, find, group_of

#: Groups served by Kubernetes itself (kubernetes-validate checks those objects).
BUILTIN_GROUPS = {"", "apps", "policy", "autoscaling", "batch"}


def _strict(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that lists its
    properties and does not keep unknown fields (the API server prunes or, with strict
    field validation, refuses them; plain JSON Schema would accept a typo)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _load_crds() -> dict[tuple[str, str, str], Any]:
    """(group, version, kind) → a validator for each served version of each vendored CRD."""
    found: dict[tuple[str, str, str], Any] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        assert crd["kind"] == "CustomResourceDefinition", path
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served"):
                schema = _strict(version["schema"]["openAPIV3Schema"])
                key = (spec["group"], version["name"], spec["names"]["kind"])
                found[key] = jsonschema.Draft7Validator(schema)
    return found


CRD_VALIDATORS = _load_crds()


def _custom(docs: list[Doc]) -> list[Doc]:
    out = []
    for d in docs:
        group = group_of(d["apiVersion"])
        if group not in BUILTIN_GROUPS and not group.endswith(".k8s.io"):
            out.append(d)
    return out


def _errors(doc: Doc) -> list[str]:
    """Why ``doc`` does not validate against its CRD (empty: it does)."""
    group, _, version = doc["apiVersion"].partition("/")
    validator = CRD_VALIDATORS.get((group, version, doc["kind"]))
    if validator is None:
        return [f"no vendored CRD for {doc['apiVersion']} {doc['kind']} in deploy/k8s/crds"]
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_custom_resource_validates_against_its_crd(overlay: str) -> None:
    custom = _custom(build(overlay))
    kinds = {d["kind"] for d in custom}
    assert kinds >= {
        "ScaledObject", "TriggerAuthentication", "RabbitmqCluster", "Vhost", "User",
        "Permission", "ServiceMonitor", "PrometheusRule",
    }  # fmt: skip
    for doc in custom:
        assert _errors(doc) == [], f"{doc['kind']} {doc['metadata']['name']}"


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def edit(doc: Doc) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[last] = value

    return edit


def _drop(path: str) -> Callable[[Doc], None]:
    def edit(doc: Doc) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        del node[last]

    return edit


BROKEN = [
    ("ScaledObject", "stager-worker", _set("spec.minReplicaCount", "one"), "minReplicaCount"),
    ("ScaledObject", "stager-worker", _set("spec.maxReplicas", 3), "maxReplicas"),
    ("ScaledObject", "stager-worker", _drop("spec.triggers"), "triggers"),
    ("TriggerAuthentication", "stager-worker-keda", _set("spec.secretTargetRef", {}), "array"),
    ("RabbitmqCluster", "stager-rabbitmq", _set("spec.replicas", -1), "replicas"),
    ("RabbitmqCluster", "stager-rabbitmq", _set("spec.rabbitmq.extraConfig", "x"), "extraConfig"),
    ("Permission", "stager-api", _drop("spec.vhost"), "vhost"),
    ("User", "stager-api", _set("spec.tags", ["boss"]), "boss"),
    ("ServiceMonitor", "stager-api", _set("spec.endpoints.0.interval", "often"), "interval"),
    ("PrometheusRule", "stager", _set("spec.groups.0.rules.0.for", "15 minutes"), "for"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "name", "edit", "why"), BROKEN, ids=[f"{b[0]}-{b[3]}" for b in BROKEN]
)
def test_a_broken_custom_resource_fails(
    kind: str, name: str, edit: Callable[[Doc], None], why: str
) -> None:
    doc = copy.deepcopy(find(build("prod"), kind, name))
    assert _errors(doc) == []
    edit(doc)
    errors = _errors(doc)
    assert errors and why in "\n".join(errors), errors


def test_a_custom_resource_without_a_vendored_crd_fails() -> None:
    doc = {"apiVersion": "example.org/v1", "kind": "Gadget", "metadata": {"name": "x"}}
    assert _custom([doc]) == [doc]
    assert "no vendored CRD" in _errors(doc)[0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_broker_users_and_permissions_are_those_of_scripts_broker_users(overlay: str) -> None:
    """One source of truth: the Permission regexes are ``broker_users.permissions`` for the
    production prefix, on its vhost, for users named as ``broker_users`` names them."""
    docs = build(overlay)
    vhosts = [d for d in docs if d["kind"] == "Vhost"]
    assert [v["spec"]["name"] for v in vhosts] == [DEFAULT_VHOST]
    perms = {d["spec"]["user"]: d["spec"] for d in docs if d["kind"] == "Permission"}
    users = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "User"}
    for role in ROLES:
        name = f"{DEFAULT_VHOST}-{role}"  # BrokerUsers(users_prefix=vhost).user(role)
        expected = permissions(role, re.escape(DEFAULT_PREFIX))
        spec = perms.pop(name)
        assert spec["vhost"] == DEFAULT_VHOST
        want = {"configure": expected.configure, "write": expected.write, "read": expected.read}
        assert spec["permissions"] == want, f"{name}: topology.yaml differs from broker_users"
        assert users.pop(name)["tags"] == []
    # the one extra user: KEDA's, which may read queue lengths and nothing else
    assert set(perms) == set(users) == {f"{DEFAULT_VHOST}-keda"}
    keda = perms[f"{DEFAULT_VHOST}-keda"]["permissions"]
    assert keda == {"configure": "^$", "write": "^$", "read": "^$"}
    assert users[f"{DEFAULT_VHOST}-keda"]["tags"] == ["management"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_consumer_timeout_exceeds_the_longest_job_timeout(overlay: str) -> None:
    cluster = find(build(overlay), "RabbitmqCluster", "stager-rabbitmq")
    config = cluster["spec"]["rabbitmq"]["additionalConfig"]
    found = re.findall(r"^\s*consumer_timeout\s*=\s*(\d+)\s*$", config, re.M)
    assert len(found) == 1, config
    timeout_ms = int(found[0])
    assert timeout_ms > TIMEOUT_MAX * 1000  # the longest timeout a job may ask for
    assert timeout_ms > JobLimits().default_timeout * 1000


def _worker_env(docs: list[Doc]) -> dict[str, str]:
    config = find(docs, "ConfigMap", "stager-worker-config")
    data: dict[str, str] = config["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_workers_on_ready_and_unacked_task_messages(overlay: str) -> None:
    docs = build(overlay)
    so = find(docs, "ScaledObject", "stager-worker", "stager-workers")
    worker = find(docs, "Deployment", "stager-worker", "stager-workers")
    assert so["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert "replicas" not in worker["spec"]  # KEDA's HPA owns it; an apply must not reset it
    assert so["spec"]["minReplicaCount"] >= 1  # dir listings and the dead-letter queue
    (trigger,) = so["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "rabbitmq"
    # only the HTTP protocol counts unacked (running) deliveries in QueueLength mode
    assert meta["protocol"] == "http" and meta["mode"] == "QueueLength"
    assert meta.get("excludeUnacknowledged", "false") == "false"
    assert meta["vhostName"] == DEFAULT_VHOST
    assert meta["value"] == _worker_env(docs)["STAGER_CONCURRENCY"]
    names = Names(DEFAULT_PREFIX)
    topology = Topology(names=names, retry_delays_ms=retry_delays([10, 30, 90]))
    matched = {q for q in topology.queue_names() if re.fullmatch(meta["queueName"], q)}
    assert meta["useRegex"] == "true" and meta["operation"] == "sum"
    assert matched == {names.tasks_queue, names.priority_queue}
    auth = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["metadata"]["namespace"] == so["metadata"]["namespace"]
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"username", "password"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_service_monitor_per_component(overlay: str) -> None:
    docs = build(overlay)
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    for component in ("stager-api", "stager-worker", "stager-ingest", "stager-ui"):
        service = next(
            d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == component
        )
        labels = service["metadata"]["labels"]
        mine = [
            m
            for m in monitors
            if m["metadata"]["namespace"] == service["metadata"]["namespace"]
            and m["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(mine) == 1, component
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert {e["port"] for e in mine[0]["spec"]["endpoints"]} <= ports, component
        assert mine[0]["spec"]["endpoints"][0]["path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grafana_dashboard_configmap(overlay: str) -> None:
    config = find(build(overlay), "ConfigMap", "stager-grafana-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config["data"].values()
    dashboard = json.loads(text)
    assert dashboard["uid"] and dashboard["panels"]
    assert all(t["expr"] for p in dashboard["panels"] for t in p["targets"])


def test_docs_list_every_alert_and_the_overlays_object_count() -> None:
    """docs/deploy.md says what each alert fires on and how many objects an overlay has."""
    text = (CRDS.parents[2] / "docs" / "deploy.md").read_text()
    rule = find(build("prod"), "PrometheusRule", "stager")
    for r in (r for g in rule["spec"]["groups"] for r in g["rules"]):
        assert f"| `{r['alert']}` |" in text, r["alert"]
    for overlay in OVERLAYS:
        assert f"build the same {len(build(overlay))} objects" in text, overlay
