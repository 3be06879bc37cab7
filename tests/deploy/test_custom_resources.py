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
from tests.deploy.conftest import assert_check_fails_on
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


def broker_problems(docs: list[Doc]) -> list[str]:
    """Where the broker's Vhost, Users and Permissions differ from ``scripts.broker_users``
    (one source of truth: the production prefix, its vhost, users named as it names them)
    plus KEDA's user, which may read queue lengths and nothing else."""
    out = []
    vhosts = [d["spec"]["name"] for d in docs if d["kind"] == "Vhost"]
    if vhosts != [DEFAULT_VHOST]:
        out.append(f"vhosts {vhosts}, not [{DEFAULT_VHOST!r}]")
    perms = {d["spec"]["user"]: d["spec"] for d in docs if d["kind"] == "Permission"}
    users = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "User"}
    for role in ROLES:
        name = f"{DEFAULT_VHOST}-{role}"  # BrokerUsers(users_prefix=vhost).user(role)
        expected = permissions(role, re.escape(DEFAULT_PREFIX))
        spec = perms.pop(name, None)
        if spec is None:
            out.append(f"{name}: no Permission")
            continue
        if spec.get("vhost") != DEFAULT_VHOST:
            out.append(f"{name}: permission on vhost {spec.get('vhost')!r}")
        want = {"configure": expected.configure, "write": expected.write, "read": expected.read}
        if spec.get("permissions") != want:
            out.append(f"{name}: permissions differ from scripts/broker_users.py")
        if users.pop(name, {}).get("tags") != []:
            out.append(f"{name}: a user with tags (or none)")
    keda = f"{DEFAULT_VHOST}-keda"
    if set(perms) != {keda} or set(users) != {keda}:
        out.append(f"extra users or permissions: {sorted(set(perms) | set(users))}")
    elif perms[keda].get("permissions") != {"configure": "^$", "write": "^$", "read": "^$"}:
        out.append(f"{keda}: may do more than read queue lengths")
    elif users[keda].get("tags") != ["management"]:
        out.append(f"{keda}: tags {users[keda].get('tags')}, not [management]")
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_broker_users_and_permissions_are_those_of_scripts_broker_users(overlay: str) -> None:
    assert broker_problems(build(overlay)) == []


def consumer_timeout_problems(docs: list[Doc]) -> list[str]:
    """RabbitMQ's ``consumer_timeout`` must be set once and exceed the longest job timeout
    (a longer job would have its delivery taken away and redelivered)."""
    cluster = find(docs, "RabbitmqCluster", "stager-rabbitmq")
    config = cluster["spec"]["rabbitmq"].get("additionalConfig", "")
    found = re.findall(r"^\s*consumer_timeout\s*=\s*(\d+)\s*$", config, re.M)
    if len(found) != 1:
        return [f"consumer_timeout set {len(found)} times"]
    timeout_ms = int(found[0])
    longest = max(TIMEOUT_MAX, JobLimits().default_timeout) * 1000
    if timeout_ms <= longest:
        return [f"consumer_timeout {timeout_ms} ms <= the longest job timeout {longest} ms"]
    return []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_consumer_timeout_exceeds_the_longest_job_timeout(overlay: str) -> None:
    assert consumer_timeout_problems(build(overlay)) == []


def _worker_env(docs: list[Doc]) -> dict[str, str]:
    config = find(docs, "ConfigMap", "stager-worker-config")
    data: dict[str, str] = config["data"]
    return data


def keda_problems(docs: list[Doc]) -> list[str]:
    """The workers' ScaledObject: targets the worker Deployment (which leaves replicas to
    it), at least one replica, one RabbitMQ trigger over HTTP in QueueLength mode counting
    unacked deliveries, summed over exactly the two task queues, one worker's concurrency
    per replica, credentials from a TriggerAuthentication beside it."""
    out = []
    so = find(docs, "ScaledObject", "stager-worker", "stager-workers")
    worker = find(docs, "Deployment", "stager-worker", "stager-workers")
    if so["spec"]["scaleTargetRef"]["name"] != worker["metadata"]["name"]:
        out.append("scales another Deployment")
    if "replicas" in worker["spec"]:
        out.append("the worker Deployment sets replicas (an apply would reset KEDA's count)")
    if so["spec"].get("minReplicaCount", 0) < 1:
        out.append("minReplicaCount < 1 (dir listings and the dead-letter queue need a worker)")
    triggers = so["spec"]["triggers"]
    if len(triggers) != 1 or triggers[0]["type"] != "rabbitmq":
        return [*out, "not exactly one rabbitmq trigger"]
    meta = triggers[0]["metadata"]
    # only the HTTP protocol counts unacked (running) deliveries in QueueLength mode
    if meta.get("protocol") != "http" or meta.get("mode") != "QueueLength":
        out.append("not protocol http in QueueLength mode")
    if meta.get("excludeUnacknowledged", "false") != "false":
        out.append("excludes unacknowledged (running) deliveries")
    if meta.get("vhostName") != DEFAULT_VHOST:
        out.append(f"vhost {meta.get('vhostName')!r}")
    if meta.get("value") != _worker_env(docs)["STAGER_CONCURRENCY"]:
        out.append("value is not the workers' STAGER_CONCURRENCY")
    names = Names(DEFAULT_PREFIX)
    topology = Topology(names=names, retry_delays_ms=retry_delays([10, 30, 90]))
    matched = {q for q in topology.queue_names() if re.fullmatch(meta["queueName"], q)}
    if meta.get("useRegex") != "true" or meta.get("operation") != "sum":
        out.append("not the sum over a queue regex")
    if matched != {names.tasks_queue, names.priority_queue}:
        out.append(f"queueName matches {sorted(matched)}, not the two task queues")
    auth = find(docs, "TriggerAuthentication", triggers[0]["authenticationRef"]["name"])
    if auth["metadata"]["namespace"] != so["metadata"]["namespace"]:
        out.append("TriggerAuthentication in another namespace")
    if {r["parameter"] for r in auth["spec"]["secretTargetRef"]} != {"username", "password"}:
        out.append("TriggerAuthentication without username and password")
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_workers_on_ready_and_unacked_task_messages(overlay: str) -> None:
    assert keda_problems(build(overlay)) == []


COMPONENTS = ("stager-api", "stager-worker", "stager-ingest", "stager-ui")


def monitor_problems(docs: list[Doc]) -> list[str]:
    """Each component's Service has exactly one ServiceMonitor, scraping /metrics on ports
    the Service has."""
    out = []
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    for component in COMPONENTS:
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
        if len(mine) != 1:
            out.append(f"{component}: {len(mine)} ServiceMonitors")
            continue
        ports = {p["name"] for p in service["spec"]["ports"]}
        endpoints = mine[0]["spec"]["endpoints"]
        if not {e["port"] for e in endpoints} <= ports:
            out.append(f"{component}: scrapes a port its Service does not have")
        if any(e.get("path") != "/metrics" for e in endpoints):
            out.append(f"{component}: scrapes another path than /metrics")
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_service_monitor_per_component(overlay: str) -> None:
    assert monitor_problems(build(overlay)) == []


def dashboard_problems(docs: list[Doc]) -> list[str]:
    """The Grafana dashboard ConfigMap: labelled for the sidecar, one JSON dashboard with a
    uid and panels, every target with an expression."""
    config = find(docs, "ConfigMap", "stager-grafana-dashboard")
    out = []
    if config["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
        out.append("no grafana_dashboard=1 label (the Grafana sidecar would not load it)")
    values = list(config["data"].values())
    if len(values) != 1:
        return [*out, f"{len(values)} files in the ConfigMap"]
    try:
        dashboard = json.loads(values[0])
    except ValueError as e:
        return [*out, f"not JSON: {e}"]
    if not dashboard.get("uid") or not dashboard.get("panels"):
        out.append("no uid or no panels")
    for p in dashboard.get("panels", []):
        if not p.get("targets") or not all(t.get("expr") for t in p["targets"]):
            out.append(f"panel {p.get('title')!r}: a target without an expression")
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grafana_dashboard_configmap(overlay: str) -> None:
    assert dashboard_problems(build(overlay)) == []


DEPLOY_MD = CRDS.parents[2] / "docs" / "deploy.md"


def docs_problems(text: str) -> list[str]:
    """docs/deploy.md has a row for each alert and the object count of each overlay."""
    rule = find(build("prod"), "PrometheusRule", "stager")
    out = [
        f"no row for alert {r['alert']}"
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if f"| `{r['alert']}` |" not in text
    ]
    for overlay in OVERLAYS:
        if f"build the same {len(build(overlay))} objects" not in text:
            out.append(f"the object count of {overlay} is not {len(build(overlay))}")
    return out


def test_docs_list_every_alert_and_the_overlays_object_count() -> None:
    """docs/deploy.md says what each alert fires on and how many objects an overlay has."""
    assert docs_problems(DEPLOY_MD.read_text()) == []


def _cluster_config(edit: Callable[[str], str]) -> Callable[[list[Doc]], None]:
    def change(docs: list[Doc]) -> None:
        spec = find(docs, "RabbitmqCluster", "stager-rabbitmq")["spec"]["rabbitmq"]
        spec["additionalConfig"] = edit(spec["additionalConfig"])

    return change


def _trigger(key: str, value: str) -> Callable[[list[Doc]], None]:
    def change(docs: list[Doc]) -> None:
        find(docs, "ScaledObject", "stager-worker")["spec"]["triggers"][0]["metadata"][key] = value

    return change


def _in(kind: str, name: str, edit: Callable[[Doc], None]) -> Callable[[list[Doc]], None]:
    def change(docs: list[Doc]) -> None:
        edit(find(docs, kind, name))

    return change


def _remove(kind: str, name: str) -> Callable[[list[Doc]], None]:
    def change(docs: list[Doc]) -> None:
        docs.remove(find(docs, kind, name))

    return change


def _dashboard(edit: Callable[[Doc], None]) -> Callable[[list[Doc]], None]:
    def change(docs: list[Doc]) -> None:
        config = find(docs, "ConfigMap", "stager-grafana-dashboard")
        (key,) = config["data"]
        dashboard = json.loads(config["data"][key])
        edit(dashboard)
        config["data"][key] = json.dumps(dashboard)

    return change


def _no_expr(dashboard: Doc) -> None:
    dashboard["panels"][0]["targets"][0]["expr"] = ""


_SHORT = lambda c: re.sub(r"consumer_timeout\s*=\s*\d+", "consumer_timeout = 60000", c)  # noqa: E731
_TWICE = lambda c: c + "\nconsumer_timeout = 99999999999\n"  # noqa: E731

CR_BROKEN: list[tuple[str, Callable[[list[Doc]], list[str]], Callable[[list[Doc]], None], str]] = [
    ("api may write anywhere", broker_problems,
     _in("Permission", "stager-api", _set("spec.permissions.write", ".*")),
     "stager-api: permissions differ"),
    ("keda user may configure", broker_problems,
     _in("Permission", "stager-keda", _set("spec.permissions.configure", ".*")),
     "may do more than read"),
    ("worker user tagged administrator", broker_problems,
     _in("User", "stager-worker", _set("spec.tags", ["administrator"])), "with tags"),
    ("no ingest permission", broker_problems, _remove("Permission", "stager-ingest"),
     "stager-ingest: no Permission"),
    ("consumer_timeout of a minute", consumer_timeout_problems, _cluster_config(_SHORT),
     "<= the longest job timeout"),
    ("consumer_timeout twice", consumer_timeout_problems, _cluster_config(_TWICE), "2 times"),
    ("keda excluding unacked", keda_problems, _trigger("excludeUnacknowledged", "true"),
     "excludes unacknowledged"),
    ("keda over AMQP", keda_problems, _trigger("protocol", "amqp"), "not protocol http"),
    ("keda counting the dead letters", keda_problems, _trigger("queueName", r"stager\.tasks.*"),
     "not the two task queues"),
    ("keda value not the concurrency", keda_problems, _trigger("value", "1000"),
     "STAGER_CONCURRENCY"),
    ("worker Deployment sets replicas", keda_problems,
     _in("Deployment", "stager-worker", _set("spec.replicas", 2)), "sets replicas"),
    ("no ServiceMonitor for ingest", monitor_problems, _remove("ServiceMonitor", "stager-ingest"),
     "stager-ingest: 0 ServiceMonitors"),
    ("ui scraped on /stats", monitor_problems,
     _in("ServiceMonitor", "stager-ui", _set("spec.endpoints.0.path", "/stats")), "than /metrics"),
    ("api scraped on a port it lacks", monitor_problems,
     _in("ServiceMonitor", "stager-api", _set("spec.endpoints.0.port", "nope")), "does not have"),
    ("dashboard unlabelled", dashboard_problems,
     _in("ConfigMap", "stager-grafana-dashboard", _set("metadata.labels", {})),
     "grafana_dashboard"),
    ("dashboard target without expr", dashboard_problems, _dashboard(_no_expr),
     "a target without an expression"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "check", "edit", "why"), CR_BROKEN, ids=[b[0] for b in CR_BROKEN])
def test_a_custom_resource_check_fails_on_bad_input(
    what: str,
    check: Callable[[list[Doc]], list[str]],
    edit: Callable[[list[Doc]], None],
    why: str,
) -> None:
    assert_check_fails_on(what, check, edit, why)


def test_the_docs_check_fails_on_a_missing_alert_or_a_wrong_count() -> None:
    text = DEPLOY_MD.read_text()
    assert any(
        "StagerBacklogOld" in p for p in docs_problems(text.replace("| `StagerBacklogOld` |", ""))
    )
    n = len(build("prod"))
    wrong = text.replace(f"build the same {n} objects", f"build the same {n + 1} objects")
    assert any("object count of prod" in p for p in docs_problems(wrong))
