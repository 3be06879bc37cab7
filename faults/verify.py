"""The campaign's checks and its table.

Transfers: every job reached a final state; none was lost (every title stored, once) or
ran twice to completion (two ``task.end completed`` of one task run with no fault between
them); every completed job's files match their sources' sha256; no part object
(``.NAME.isync-part``) or part file, and no object with more than one replica or a stale
one; the task store and iRODS agree (a completed upload's collection holds exactly its
files, a download's sources are unchanged, no object under the campaign's upload root
belongs to no job). Ingest: the job completed, its counters are exact and the catalog
under its target equals the tree.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faults.campaign import FINAL, Fault, Result
from faults.plan import JobPlan

PART = ".isync-part"
PARTIAL = ".isync-partial"


def _objects(session: Any, root: str) -> Iterator[tuple[str, Any]]:
    """(logical path, data object) of every object under ``root``, recursively."""
    from irods.exception import CollectionDoesNotExist

    try:
        top = session.collections.get(root)
    except CollectionDoesNotExist:
        return
    for coll, _subs, objs in top.walk():
        for obj in objs:
            yield f"{coll.path}/{obj.name}", obj


def _sha256_object(session: Any, path: str) -> str:
    h = hashlib.sha256()
    with session.data_objects.open(path, "r") as fh:
        while chunk := fh.read(4 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def check_transfers(
    result: Result,
    session: Any,
    irods_root: str,
    completions: dict[tuple[str, int], list[float]],
) -> list[str]:
    v: list[str] = []
    by_key = {j.key: j for j in result.jobs}
    id_to_key: dict[str, str] = {}
    for key in by_key:
        rows = result.final.get(key, [])
        if not rows:
            v.append(f"{key}: lost (no job with this title in GET /v1/jobs)")
            continue
        if len(rows) > 1:
            v.append(f"{key}: stored {len(rows)} times (ids {[r['id'] for r in rows]})")
        for row in rows:
            id_to_key[row["id"]] = key
            state = row["status"]["status"]
            if state not in FINAL:
                v.append(f"{key} ({row['id']}): not final: {state}")
    for (task_id, run), times in sorted(completions.items()):
        if len(times) < 2:
            continue
        key = id_to_key.get(task_id, task_id)
        a, b = min(times), max(times)
        between = [f.kind for f in result.faults if a <= f.wall <= b]
        v.append(
            f"{key} ({task_id} run {run}): ran to completion {len(times)} times, "
            f"{b - a:.1f} s apart (faults between: {', '.join(between) or 'none'})"
        )
    # iRODS: no part objects, one good replica each
    for path, obj in _objects(session, irods_root):
        name = path.rsplit("/", 1)[1]
        if name.endswith(PART):
            v.append(f"{path}: part object left behind")
        replicas = list(obj.replicas)
        if len(replicas) != 1:
            v.append(f"{path}: {len(replicas)} replicas (want 1)")
        stale = [r.number for r in replicas if str(getattr(r, "status", "1")) != "1"]
        if stale:
            v.append(f"{path}: replica(s) {stale} not good")
    # per job: what arrived
    known_up: set[str] = set()
    for key, job in by_key.items():
        rows = result.final.get(key, [])
        state = rows[-1]["status"]["status"] if rows else "lost"
        if job.direction == "upload":
            got = {p[len(job.landing) + 1 :]: o for p, o in _objects(session, job.landing)}
            known_up |= {f"{job.landing}/{rel}" for rel in got}
            if state == "completed":
                v += _compare_upload(job, got, session)
        else:
            v += _check_download(job, state)
            for rel, (_, digest) in job.files.items():
                src = f"{irods_root}/src/{key}/{rel}"
                if _sha256_object(session, src) != digest:
                    v.append(f"{key}: download source {src} changed")
    for path, _ in _objects(session, f"{irods_root}/up"):
        if path not in known_up:
            v.append(f"{path}: object of no job")
    return v


def _compare_upload(job: JobPlan, got: dict[str, Any], session: Any) -> list[str]:
    v: list[str] = []
    for rel, (size, digest) in job.files.items():
        obj = got.get(rel)
        if obj is None:
            v.append(f"{job.key}: completed but {job.landing}/{rel} is missing")
            continue
        if obj.size != size:
            v.append(f"{job.key}: {rel} has {obj.size} bytes, the source {size}")
            continue
        if _sha256_object(session, f"{job.landing}/{rel}") != digest:
            v.append(f"{job.key}: {rel} does not match its source's sha256")
    for rel in sorted(set(got) - set(job.files)):
        v.append(f"{job.key}: unexpected object {job.landing}/{rel}")
    return v


def _check_download(job: JobPlan, state: str) -> list[str]:
    v: list[str] = []
    root = Path(job.landing)
    present: dict[str, Path] = {}
    if root.exists():
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                p = Path(dirpath) / f
                present[str(p.relative_to(root))] = p
    for rel in present:
        if rel.endswith((PART, PARTIAL)) or f"{PARTIAL}." in rel:
            v.append(f"{job.key}: part file {root / rel} left behind")
    if state != "completed":
        return v
    for rel, (size, digest) in job.files.items():
        q = present.get(rel)
        if q is None:
            v.append(f"{job.key}: completed but {root / rel} is missing")
        elif (p := q).stat().st_size != size:
            v.append(f"{job.key}: {rel} has {p.stat().st_size} bytes, the source {size}")
        elif _sha256_file(p) != digest:
            v.append(f"{job.key}: {rel} does not match its source's sha256")
    extra = {r for r in present if not r.endswith((PART, PARTIAL))} - set(job.files)
    for rel in sorted(extra):
        v.append(f"{job.key}: unexpected file {root / rel}")
    return v


def check_ingest(result: Result, session: Any) -> list[str]:
    v: list[str] = []
    if not result.ingest_name:
        return v
    job = result.ingest_job
    name = result.ingest_name
    if job.get("state") != "completed":
        v.append(f"ingest {name}: state {job.get('state')} (error: {job.get('error') or '-'})")
    c = job.get("counters", {})
    n = len(result.ingest_tree)
    dirs = len({rel.split("/", 1)[0] for rel in result.ingest_tree}) + 1
    want = {
        "files_seen": n,
        "files_created": n,
        "files_failed": 0,
        "files_modified": 0,
        "files_unreadable": 0,
        "tasks_failed": 0,
        "dirs": dirs,
    }
    for k, expected in want.items():
        if c.get(k, 0) != expected:
            v.append(f"ingest {name}: counter {k} = {c.get(k, 0)}, want {expected}")
    target = result.ingest_target
    catalog = {p[len(target) + 1 :]: o.size for p, o in _objects(session, target)}
    missing = sorted(set(result.ingest_tree) - set(catalog))
    extra = sorted(set(catalog) - set(result.ingest_tree))
    wrong = sorted(
        r for r in result.ingest_tree if r in catalog and catalog[r] != result.ingest_tree[r]
    )
    if missing:
        v.append(f"ingest {name}: {len(missing)} files not in the catalog (first {missing[0]})")
    if extra:
        v.append(f"ingest {name}: {len(extra)} objects not in the tree (first {extra[0]})")
    if wrong:
        v.append(f"ingest {name}: {len(wrong)} objects with the wrong size (first {wrong[0]})")
    return v


def table(result: Result) -> str:
    """Per fault kind: count injected, jobs in flight at each injection, jobs affected and
    their outcome; then one line per injection."""
    state: dict[str, str] = {}
    for key, rows in result.final.items():
        state[key] = rows[-1]["status"]["status"] if rows else "lost"
    id_to_key = {r["id"]: k for k, rows in result.final.items() for r in rows}
    ingest_state = str(result.ingest_job.get("state", "-"))
    kinds: dict[str, list[Fault]] = {}
    for f in result.faults:
        kinds.setdefault(f.kind, []).append(f)
    lines = [
        f"{'fault':<24} {'injected':>8} {'in flight':>12} {'affected':>8}  "
        "outcome of the affected jobs",
        "-" * 96,
    ]
    for kind, fs in kinds.items():
        affected: set[str] = set()
        for f in fs:
            affected |= f.affected
        outcomes: dict[str, int] = {}
        for a in affected:
            if fs[0].phase == "ingest":
                s = f"ingest {ingest_state}"
            else:
                s = state.get(id_to_key.get(a, a), "unknown")
            outcomes[s] = outcomes.get(s, 0) + 1
        notes = sorted({f.note for f in fs if f.note})
        text = ", ".join(f"{n} {s}" for s, n in sorted(outcomes.items())) or "-"
        if notes:
            text += f" ({'; '.join(notes)})"
        flight = "/".join(str(f.in_flight) for f in fs)
        lines.append(f"{kind:<24} {len(fs):>8} {flight:>12} {len(affected):>8}  {text}")
    totals: dict[str, int] = {}
    for s in state.values():
        totals[s] = totals.get(s, 0) + 1
    lines.append("-" * 96)
    lines.append(
        f"jobs: {len(result.jobs)} submitted; "
        + ", ".join(f"{n} {s}" for s, n in sorted(totals.items()))
        + f"; ingest: {ingest_state}, {len(result.ingest_tree)} files"
    )
    lines.append("")
    lines.append(
        f"{'phase':<8} {'t (s)':>7}  {'fault':<24} {'target':<18} {'in flight':>9} running"
    )
    for f in sorted(result.faults, key=lambda f: (f.phase != "transfer", f.at)):
        lines.append(
            f"{f.phase:<8} {f.at:>7.1f}  {f.kind:<24} {f.target:<18} {f.in_flight:>9} "
            f"{len(f.affected)}"
        )
    return "\n".join(lines)
