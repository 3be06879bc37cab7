"""The PrometheusRule's alerts, run by Prometheus' own rule engine (``promtool test
rules``) on synthetic series: each alert fires on what docs/deploy.md says it fires on
(with its labels) and stays quiet on a healthy input. Needs ``promtool`` (Debian package
``prometheus``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.k8s import build, find

Case = dict[str, Any]

CONSUMERS = 'rabbitmq_detailed_queue_consumers{vhost="stager",queue="%s"}'
HEALTHY_WORKER = [
    {"series": 'up{job="stager-worker"}', "values": "1x150"},
    {"series": CONSUMERS % "stager.tasks", "values": "4x150"},
    {"series": CONSUMERS % "stager.tasks.priority", "values": "4x150"},
]


def _waits(le_counts: dict[str, str]) -> list[Case]:
    return [
        {"series": f'stager_worker_wait_seconds_bucket{{le="{le}"}}', "values": v}
        for le, v in le_counts.items()
    ]


#: (alert, what it is given, minute evaluated at, labels of each alert expected beyond
#: severity: [] means it must not fire)
CASES: list[tuple[str, str, list[Case], int, list[dict[str, str]]]] = [
    ("StagerBacklogOld", "jobs wait about 2 h before starting",
     _waits({"900": "0x120", "3600": "0x120", "7200": "0+1x120", "+Inf": "0+1x120"}), 60, [{}]),
    ("StagerBacklogOld", "jobs wait about 10 min",
     _waits({"900": "0+1x120", "3600": "0+1x120", "7200": "0+1x120", "+Inf": "0+1x120"}), 60, []),
    ("StagerBacklogOld", "tasks ready for 2 h, no worker starts or ends any",
     [{"series": 'rabbitmq_detailed_queue_messages_ready{vhost="stager",queue="stager.tasks"}',
       "values": "7x150"},
      {"series": "stager_worker_wait_seconds_count", "values": "5x150"},
      {"series": 'stager_worker_attempts_total{outcome="completed"}', "values": "3x150"}],
     90, [{}]),
    ("StagerBacklogOld", "tasks ready, workers getting through them",
     [{"series": 'rabbitmq_detailed_queue_messages_ready{vhost="stager",queue="stager.tasks"}',
       "values": "7x150"},
      {"series": "stager_worker_wait_seconds_count", "values": "5x150"},
      {"series": 'stager_worker_attempts_total{outcome="completed"}', "values": "0+1x150"}],
     90, []),
    ("StagerJobsArchived", "12 jobs archived an hour",
     [{"series": 'stager_jobs_total{state="archived"}', "values": "0+0.2x120"}], 90, [{}]),
    ("StagerJobsArchived", "3 jobs archived an hour",
     [{"series": 'stager_jobs_total{state="archived"}', "values": "0+0.05x120"}], 90, []),
    ("StagerNoWorkerConsuming", "workers up, but the task queue has no consumer",
     [{"series": 'up{job="stager-worker"}', "values": "1x60"},
      {"series": 'rabbitmq_detailed_queue_consumers{vhost="stager",queue="stager.tasks"}',
       "values": "0x60"},
      {"series": 'rabbitmq_detailed_queue_consumers{vhost="stager",queue="stager.tasks.priority"}',
       "values": "4x60"}],
     30, [{"queue": "stager.tasks"}]),
    ("StagerNoWorkerConsuming", "no worker target up at all",
     [{"series": 'up{job="stager-worker"}', "values": "0x60"},
      {"series": 'rabbitmq_detailed_queue_consumers{vhost="stager",queue="stager.tasks"}',
       "values": "1x60"}],
     30, [{}]),
    ("StagerNoWorkerConsuming", "workers consuming", HEALTHY_WORKER, 30, []),
    ("StagerApi5xx", "10 % of requests answer 500",
     [{"series": 'stager_http_request_duration_seconds_count{status="200"}', "values": "0+9x60"},
      {"series": 'stager_http_request_duration_seconds_count{status="500"}', "values": "0+1x60"}],
     30, [{}]),
    ("StagerApi5xx", "1 % of requests answer 503",
     [{"series": 'stager_http_request_duration_seconds_count{status="200"}', "values": "0+99x60"},
      {"series": 'stager_http_request_duration_seconds_count{status="503"}', "values": "0+1x60"}],
     30, []),
    ("StagerTaskStoreDown", "the API cannot read the store",
     [{"series": 'stager_api_dependency_up{dependency="store",pod="api-1"}', "values": "1x5 0x30"}],
     20, [{}]),
    ("StagerTaskStoreDown", "the store answers",
     [{"series": 'stager_api_dependency_up{dependency="store",pod="api-1"}', "values": "1x30"}],
     20, []),
    ("StagerMessagesRejected", "a worker dropped forged tasks",
     [{"series": 'stager_messages_rejected_total{job="stager-worker",type="task",reason="forged"}',
       "values": "0 0 0 2 2 2 2"}],
     5, [{"job": "stager-worker", "type": "task", "reason": "forged"}]),
    ("StagerMessagesRejected", "nothing dropped",
     [{"series": 'stager_messages_rejected_total{job="stager-worker",type="task",reason="forged"}',
       "values": "2x30"}],
     20, []),
]  # fmt: skip


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path


def _rules(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    rule = find(build("prod"), "PrometheusRule", "stager")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    return path, alerts


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    promtool = _promtool()
    path, _ = _rules(tmp_path)
    r = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_has_a_firing_and_a_quiet_case(tmp_path: Path) -> None:
    _, alerts = _rules(tmp_path)
    for name in alerts:
        outcomes = {bool(expected) for alert, _, _, _, expected in CASES if alert == name}
        assert outcomes == {True, False}, name


@pytest.mark.parametrize(
    ("alert", "given", "series", "minute", "expected"),
    CASES,
    ids=[f"{c[0]}: {c[1]}" for c in CASES],
)
def test_alert(
    alert: str,
    given: str,
    series: list[Case],
    minute: int,
    expected: list[dict[str, str]],
    tmp_path: Path,
) -> None:
    promtool = _promtool()
    rules, alerts = _rules(tmp_path)
    rule = alerts[alert]
    exp_alerts = [
        {"exp_labels": {**rule["labels"], **labels}, "exp_annotations": rule["annotations"]}
        for labels in expected
    ]
    unit = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": given,
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": exp_alerts}
                ],
            }
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(unit, sort_keys=False))
    r = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr
