"""The whole-process isync benchmark runs end to end (tiny sizes): a harness that breaks
would otherwise only show at ``make bench`` time. Nothing here asserts a speed."""

from __future__ import annotations

import os

import pytest

from bench import isync_cli, pipeline_tree


def test_whole_process_benchmark_measures_every_variant() -> None:
    measures = isync_cli.measure_all([1], rounds=1, small_files=10, costed_files=5)
    by_name = {m.name: m for m in measures}
    assert set(by_name) == {
        "start-up",
        "put new 1 MiB",
        "put overwrite 1 MiB",
        "get new 1 MiB",
        "get overwrite 1 MiB",
        "limits 1 MiB",
        "round trips 1 MiB",
        "small files put",
        "small files put, real-zone cost",
        "small files put, real-zone cost, 2 cores",
    }
    assert set(by_name["put new 1 MiB"].runs) == {"isync", "prc", "isync -K"}
    for m in measures:
        for variant, runs in m.runs.items():
            assert runs and all(t > 0 for t in runs), (m.name, variant)
    # every timed run has the client's CPU; the server's is read from /proc
    for m in measures:
        for variant in ("isync", "prc"):
            if variant in m.runs:
                assert len(m.cpu[variant]) == len(m.runs[variant]), (m.name, variant)
                assert m.cpu_median(variant)[0] > 0, (m.name, variant)
    assert by_name["small files put"].cpu_median("prc")[1] > 0
    small = by_name["small files put"]
    assert set(small.runs) == {"isync", "isync --no-bulk", "prc"}
    # 10 new files: one bundle (689) against 10 single-buffer puts against PRC's loop
    assert small.requests["isync"] < small.requests["isync --no-bulk"] < small.requests["prc"]
    names = [r.name for r in isync_cli._results(measures)]
    assert "isync --help" in names and "ratio isync/prc whole process get new 1 MiB" in names
    assert "ratio isync/prc whole process small files put, real-zone cost" in names
    assert "-K budget/cost 1 MiB" in names and "requests isync put new 1 MiB" in names
    trips = by_name["round trips 1 MiB"].runs
    # a 1 MiB object moves in one request each way, after the login and one look-up
    assert trips["put isync"][0] < trips["put prc"][0], trips
    assert trips["get isync"][0] < trips["get prc"][0], trips
    assert trips["overwrite isync"][0] > 0 and trips["overwrite prc"][0] > 0, trips
    # no put or get asks the server to hash, except isync's overwrite at this size: below
    # services.isync.sample.MIN_SIZE the skip policy asks the object's checksum once
    sums = by_name["round trips 1 MiB"].checksums
    assert sums == {**dict.fromkeys(trips, 0), "overwrite isync": 1}, sums
    assert "requests isync put overwrite 1 MiB" in names
    isync_cli.report(measures)  # every line prints


def test_tree_pipeline_benchmark_runs_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """One tiny tree through the pipeline and through isync directly: every figure is
    produced and both put every file (the benchmark raises otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("the tree benchmark needs root (a Unix user owns the tree)")
    monkeypatch.setenv("BENCH_TREE_FILES", "40")
    results = {r.name: r for r in pipeline_tree.run()}
    what = "40 files"
    for name in ("pipeline, one job of", "isync -r", "pipeline / isync,"):
        [hit] = [r for n, r in results.items() if n.startswith(name) and what in n]
        assert hit.value > 0, hit
    [child] = [r for n, r in results.items() if n.startswith("peak RSS transfer child")]
    assert child.value > 0, "no transfer child was sampled"
    [isync] = [r for n, r in results.items() if n.startswith("isync -r")]
    assert "-K" in isync.name, "isync must do the worker's work: checksums verified"
    [cpu] = [r for n, r in results.items() if n.startswith("CPU ms per file, pipeline")]
    assert cpu.value > 0 and "child" in cpu.note and "worker" in cpu.note, cpu
    [events] = [r for n, r in results.items() if n.startswith("task events per job")]
    assert events.value >= 2, events  # at least active and completed reached the API


def test_tree_benchmark_memory_growth_goal() -> None:
    """The growth rows compare the largest tree with the smallest, per process, and say
    whether the goal (flat) is met."""
    peaks = {10: (50.0, 60.0, 55.0), 1000: (51.0, 60.0 + 2 * pipeline_tree.GOAL_FLAT_MIB, 55.0)}
    rows = {r.name: r for r in pipeline_tree.growth_results(peaks)}
    worker = rows["peak RSS growth worker, 10 -> 1,000 files"]
    child = rows["peak RSS growth transfer child, 10 -> 1,000 files"]
    assert worker.value == 1.0 and worker.note.endswith(": met")
    assert child.note.endswith("NOT met")
    assert pipeline_tree.growth_results({10: (1.0, 1.0, 1.0)}) == []
