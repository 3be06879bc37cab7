"""The PrometheusRule's alerts, run by Prometheus' own rule engine (``promtool test
rules``) on synthetic series: each alert fires on what docs/deploy.md says it fires on
(with its labels) and stays quiet on a healthy input. Needs ``promtool`` (Debian package
``prometheus``)."""

from __future__ import annotations

import os
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
        why = "promtool not installed (apt-get install prometheus; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI must never pass a check it did not run
        pytest.skip(why)
    return path


def _rules(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    rule = find(build("prod"), "PrometheusRule", "stager")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    return path, alerts


def promtool_check(path: Path) -> tuple[int, str]:
    """``promtool check rules``: its exit status and what it said."""
    r = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    return r.returncode, r.stdout + r.stderr


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    path, _ = _rules(tmp_path)
    status, out = promtool_check(path)
    assert status == 0, out


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("expr", "sum(rate(stager_jobs_total[5m])", "unclosed left parenthesis"),
        ("for", "ten minutes", "not a valid duration string"),
    ],
)
def test_promtool_check_fails_on_a_broken_rule(
    key: str, value: str, why: str, tmp_path: Path
) -> None:
    path, _ = _rules(tmp_path)
    rules = yaml.safe_load(path.read_text())
    rules["groups"][0]["rules"][0][key] = value
    path.write_text(yaml.safe_dump(rules))
    status, out = promtool_check(path)
    assert status != 0 and why in out, out


def uncovered(alerts: dict[str, Any], cases: list[Any]) -> list[str]:
    """Alerts without both a case where they fire and one where they stay quiet."""
    out = []
    for name in alerts:
        outcomes = {bool(expected) for alert, _, _, _, expected in cases if alert == name}
        if outcomes != {True, False}:
            out.append(name)
    return out


def test_every_alert_has_a_firing_and_a_quiet_case(tmp_path: Path) -> None:
    _, alerts = _rules(tmp_path)
    assert uncovered(alerts, CASES) == []


def test_an_alert_without_a_quiet_case_is_reported(tmp_path: Path) -> None:
    _, alerts = _rules(tmp_path)
    firing_only = [c for c in CASES if c[0] != "StagerApi5xx" or c[4]]
    assert uncovered({**alerts, "StagerNew": {}}, firing_only) == ["StagerApi5xx", "StagerNew"]


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
