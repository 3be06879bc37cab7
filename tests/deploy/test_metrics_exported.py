"""Every metric the alerts (PrometheusRule) and the Grafana dashboard use is one a running
service really exports: the API (its app on a real HTTP server, real RabbitMQ) and the
worker (``python -m services.worker`` as a process) are scraped on /metrics and each name
in the PromQL expressions (parsed by promql-parser, so a syntax error fails too) is
looked up. ``rabbitmq_*`` names are RabbitMQ's own Prometheus
plugin (checked against the test broker's on 15692: scripts/ensure-services.sh enables it;
under CI a plugin that does not answer fails the test), ``up`` is
Prometheus' own. ``stager_ingest_*`` are checked against the ingest worker's app (real
broker) once it serves /metrics; no expression uses a metric of the UI."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import promql_parser
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from services.api.keys import METRICS
from services.api.metrics import Throttle
from services.ingest.app import create_app as create_ingest_app
from services.ingest.settings import IngestSettings, IngestWorkerSettings
from shared.messaging.signing import Role
from shared.settings import BrokerSettings
from tests.api.conftest import Api
from tests.conftest import AMQP_URL, Amqp, SigningKeys, _pg_admin, signing_key_set
from tests.deploy.k8s import build, find
from tests.deploy.processes import worker_process

#: Names Prometheus itself makes (not exported by any service).
PROMETHEUS_OWN = {"up"}
RABBITMQ_PLUGIN = "http://127.0.0.1:15692"


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads; a ValueError if it is not valid PromQL."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def used_names() -> dict[str, set[str]]:
    """Metric name → where it is used (alert names, dashboard panel titles)."""
    docs = build("prod")
    used: dict[str, set[str]] = {}
    rule = find(docs, "PrometheusRule", "stager")
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            for name in metric_names(r["expr"]):
                used.setdefault(name, set()).add(f"alert {r.get('alert') or r.get('record')}")
    config = find(docs, "ConfigMap", "stager-grafana-dashboard")
    (text,) = config["data"].values()
    for panel in json.loads(text)["panels"]:
        for target in panel.get("targets", []):
            for name in metric_names(target["expr"]):
                used.setdefault(name, set()).add(f"panel {panel['title']!r}")
    return used


def exported(exposition: str) -> set[str]:
    """Every sample name a /metrics page can have, families without samples yet included
    (a labelled counter shows only its # TYPE line until first used)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("_count", "_sum", "_created"),
        "gauge": (),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, ()))
        names.update(s.name for s in family.samples)
    return names


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le) (rate(a_seconds_bucket{x="y", q=~"a\\\\.b"}[5m])))'
        ' > 3600 or (sum(b_ready{vhost="s"}) > 0 and on () sum(increase(c_total[1h])) == 0)'
        ' or on () absent(up{job="w"} == 1) / d_count offset 5m'
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_ready", "c_total", "up", "d_count"}
    with pytest.raises(ValueError, match="parenthesis"):
        metric_names("sum(rate(a_total[5m])")


def test_the_alerts_and_dashboard_parse_as_promql_and_use_metrics() -> None:
    used = used_names()  # parses every expression
    assert {"stager_worker_wait_seconds_bucket", "stager_api_dependency_up"} <= set(used)
    assert any(n.startswith("rabbitmq_") for n in used)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_every_stager_metric_used_is_exported_by_a_running_service(
    api: Api, amqp: Amqp, signing_keys: SigningKeys, tmp_path: Path
) -> None:
    scraped: dict[str, set[str]] = {}
    r = await api.client.get("/metrics")
    assert r.status == 200
    scraped["api"] = exported(await r.text())
    async with (
        worker_process(amqp, signing_keys, tmp_path / "state") as w,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
    ):
        await w.until_serving(http)
        async with http.get(w.url + "/metrics") as resp:
            scraped["worker"] = exported(await resp.text())
    ingest = await _ingest_metrics(amqp, tmp_path)
    if ingest is not None:
        scraped["ingest"] = ingest
    missing = unexported(used_names(), scraped, ingest_scraped=ingest is not None)
    assert missing == {}, f"used but exported by no service: {missing}"


def unexported(
    used: dict[str, set[str]], scraped: dict[str, set[str]], *, ingest_scraped: bool = True
) -> dict[str, list[str]]:
    """The stager metrics ``used`` (name → where) that no service's scraped /metrics has,
    with where each is used; RabbitMQ's and Prometheus' own names are checked elsewhere."""
    everything = set().union(*scraped.values())
    return {
        name: sorted(where)
        for name, where in used.items()
        if name not in everything
        and name not in PROMETHEUS_OWN
        and not name.startswith("rabbitmq_")
        and not (not ingest_scraped and name.startswith("stager_ingest_"))
    }


def test_a_used_metric_no_service_exports_is_reported() -> None:
    page = (
        "# HELP stager_jobs_total Jobs by state\n# TYPE stager_jobs_total counter\n"
        "# HELP stager_worker_running Tasks running\n# TYPE stager_worker_running gauge\n"
        "stager_worker_running 2.0\n"
    )
    scraped = {"worker": exported(page)}
    used = {
        "stager_jobs_total": {"alert StagerJobsArchived"},  # a family without samples yet
        "stager_worker_running": {"panel 'Running'"},
        "stager_made_up_total": {"panel 'Nothing'"},
        "stager_jobs_sum": {"panel 'Wrong suffix'"},  # a counter has no _sum
        "up": {"alert StagerNoWorkerConsuming"},
        "stager_ingest_files_total": {"panel 'Ingest'"},
    }
    assert unexported(used, scraped) == {
        "stager_made_up_total": ["panel 'Nothing'"],
        "stager_jobs_sum": ["panel 'Wrong suffix'"],
        "stager_ingest_files_total": ["panel 'Ingest'"],
    }
    assert "stager_ingest_files_total" not in unexported(used, scraped, ingest_scraped=False)


async def _ingest_metrics(amqp: Amqp, tmp_path: Path) -> set[str] | None:
    """What the ingest worker's app serves on /metrics (None: it has no /metrics)."""
    settings = IngestSettings(
        ingest=IngestWorkerSettings(db_url=f"sqlite+aiosqlite:///{tmp_path}/ingest.sqlite"),
        broker=BrokerSettings(url=SecretStr(AMQP_URL), prefix=amqp.names.prefix),
        signing=signing_key_set().settings(Role.INGEST),
    )
    async with TestClient(TestServer(create_ingest_app(settings))) as client:
        r = await client.get("/metrics")
        return exported(await r.text()) if r.status == 200 else None


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback http
            body: bytes = r.read()
            return body.decode()
    except (urllib.error.URLError, OSError):
        return None


def rabbitmq_plugin_pages(base: str = RABBITMQ_PLUGIN) -> list[str]:
    """The pages the ServiceMonitor stager-rabbitmq scrapes, from the broker's plugin at
    ``base``. Not answering, the test is skipped, except under CI (``CI`` set), where it
    fails: scripts/ensure-services.sh (make test, make up, .ci/run) enables the plugin."""
    monitor = find(build("prod"), "ServiceMonitor", "stager-rabbitmq")
    pages = []
    for endpoint in monitor["spec"]["endpoints"]:
        params: dict[str, Any] = endpoint.get("params", {})
        query = "&".join(f"{k}={v}" for k, values in params.items() for v in values)
        query = query.replace("vhost=stager", "vhost=%2F")  # the test broker's queues are on /
        page = _get(f"{base}{endpoint['path']}?{query}")
        if page is None:
            why = (
                f"RabbitMQ's prometheus plugin does not answer on {base} "
                "(scripts/ensure-services.sh enables it, as root)"
            )
            if os.environ.get("CI"):
                pytest.fail(why)  # CI must never pass a check it did not run
            pytest.skip(why)
        pages.append(page)
    return pages


def test_every_rabbitmq_metric_used_is_exported_by_its_prometheus_plugin(amqp: Amqp) -> None:
    """The families the ServiceMonitor stager-rabbitmq asks for, from a real broker whose
    ``rabbitmq_prometheus`` plugin scripts/ensure-services.sh enabled (the cluster operator
    enables it in the cluster)."""
    names = set().union(*(exported(p) for p in rabbitmq_plugin_pages()))
    assert unexported_rabbitmq(set(used_names()), names) == set()


def test_a_missing_rabbitmq_plugin_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing answers on port 9 (discard): skipped on a workstation, a failure under CI."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        rabbitmq_plugin_pages("http://127.0.0.1:9")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"does not answer on http://127\.0\.0\.1:9"):
        rabbitmq_plugin_pages("http://127.0.0.1:9")


def unexported_rabbitmq(used: set[str], exported_names: set[str]) -> set[str]:
    """The ``rabbitmq_*`` names used that the broker's Prometheus plugin does not export."""
    return {n for n in used if n.startswith("rabbitmq_") and n not in exported_names}


def test_a_rabbitmq_metric_the_plugin_lacks_is_reported() -> None:
    page = "# TYPE rabbitmq_detailed_queue_messages_ready gauge\n"
    used = {"rabbitmq_detailed_queue_messages_ready", "rabbitmq_queue_oldest_age", "up"}
    assert unexported_rabbitmq(used, exported(page)) == {"rabbitmq_queue_oldest_age"}


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_task_store_down_shows_in_the_metric_its_alert_reads(api: Api, db_url: str) -> None:
    """StagerTaskStoreDown reads stager_api_dependency_up{dependency="store"}: 1 while the
    store answers, 0 once PostgreSQL has lost the database (a real drop, not a mock)."""
    api.app[METRICS].gauges_due = Throttle(0)
    up = 'stager_api_dependency_up{dependency="store"}'
    assert f"{up} 1.0" in await (await api.client.get("/metrics")).text()
    name = make_url(db_url).database
    await _pg_admin(f'DROP DATABASE "{name}" WITH (FORCE)')
    page = await (await api.client.get("/metrics")).text()
    assert f"{up} 0.0" in page
    assert 'stager_api_dependency_up{dependency="broker"} 1.0' in page
