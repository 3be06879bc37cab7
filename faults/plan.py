"""What the campaign transfers: a seeded mix of uploads and downloads (single small files,
trees, large files), the data behind them, and the ingest tree.

Every byte comes from the seed, so ``--seed N`` builds the same jobs again. Large files are
one random MiB per file repeated with a counter in front of each copy: unique content at
the cost of one MiB of randomness.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
KiB = 1024


@dataclass(frozen=True)
class Profile:
    """Counts and sizes of one campaign form."""

    name: str
    jobs: int
    large: int
    large_size: int
    worker_kills: int
    child_kills: int
    rabbit_restarts: int
    api_restarts: int
    irods_restarts: int
    broker_cuts: int
    irods_cuts: int
    #: the latest a fault may come, in seconds after the jobs are submitted: each fault
    #: draws a fraction f of the run and fires when f of the jobs are final or at
    #: f * window s, whichever is first, so some jobs are always still in flight
    window: float
    #: seconds the jobs may take after the window before the run counts as stuck
    settle: float
    ingest_files: int
    ingest_worker_kills: int
    ingest_irods_restarts: int
    ingest_window: float
    ingest_settle: float
    #: bytes per second through the worker-iRODS proxy (None: unlimited), so large jobs are
    #: in flight long enough to be cut, killed or restarted under
    irods_rate: float | None = None
    #: a random cut falls within this many more bytes of each connection it hits
    cut_within: int = 8 * MiB


FULL = Profile(
    "full",
    jobs=200,
    large=3,
    large_size=100 * MiB,
    worker_kills=5,
    child_kills=5,
    rabbit_restarts=3,
    api_restarts=3,
    irods_restarts=3,
    broker_cuts=3,
    irods_cuts=3,
    window=420.0,
    settle=1200.0,
    ingest_files=20_000,
    ingest_worker_kills=3,
    ingest_irods_restarts=2,
    ingest_window=60.0,
    ingest_settle=900.0,
    irods_rate=48 * MiB,
)
SHORT = Profile(
    "short",
    jobs=16,
    large=1,
    large_size=12 * MiB,
    worker_kills=1,
    child_kills=1,
    rabbit_restarts=1,
    api_restarts=1,
    irods_restarts=1,
    broker_cuts=1,
    irods_cuts=1,
    window=35.0,
    settle=150.0,
    ingest_files=2_000,
    ingest_worker_kills=1,
    ingest_irods_restarts=1,
    ingest_window=8.0,
    ingest_settle=150.0,
    irods_rate=16 * MiB,
)
#: the pytest form (tests/faults): one fault of each kind, bounded to about two minutes
CI = Profile(
    "ci",
    jobs=16,
    large=1,
    large_size=10 * MiB,
    worker_kills=1,
    child_kills=1,
    rabbit_restarts=1,
    api_restarts=1,
    irods_restarts=1,
    broker_cuts=1,
    irods_cuts=1,
    window=25.0,
    settle=60.0,
    ingest_files=4000,
    ingest_worker_kills=1,
    ingest_irods_restarts=1,
    ingest_window=6.0,
    ingest_settle=45.0,
    irods_rate=8 * MiB,
    cut_within=2 * MiB,
)
PROFILES = {p.name: p for p in (FULL, SHORT, CI)}


@dataclass
class JobPlan:
    """One job: where its data is and what every file's sha256 must be afterwards."""

    key: str
    direction: str  # "upload" | "download"
    kind: str  # "small" | "tree" | "large"
    src: str
    dst: str
    #: relative path -> (size, sha256) of what must arrive
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: where the files land: an iRODS collection (upload) or a local directory (download)
    landing: str = ""

    @property
    def size(self) -> int:
        return sum(s for s, _ in self.files.values())

    def body(self, user: str, irods_user: str) -> dict[str, Any]:
        return {
            "title": self.key,
            "stagerUser": user,
            "drUser": irods_user,
            "srcURL": self.src,
            "dstURL": self.dst,
            "timeout": 900,
            "timeout_noprogress": 120,
        }


def content(rng: random.Random, size: int) -> bytes:
    """``size`` seeded bytes (small files: all random)."""
    return rng.randbytes(size)


def write_large(path: Path, rng: random.Random, size: int) -> str:
    """Write a large seeded file; its sha256."""
    block = rng.randbytes(MiB)
    h = hashlib.sha256()
    with open(path, "wb") as fh:
        done = 0
        n = 0
        while done < size:
            chunk = (n.to_bytes(8, "big") + block)[: min(MiB, size - done)]
            fh.write(chunk)
            h.update(chunk)
            done += len(chunk)
            n += 1
    return h.hexdigest()


def _tree_files(rng: random.Random) -> dict[str, int]:
    """A tree: 3-8 files in up to 3 directories, one of them above the large threshold."""
    files: dict[str, int] = {}
    for i in range(rng.randint(3, 8)):
        depth = rng.randint(0, 2)
        parts = [f"d{rng.randint(0, 2)}" for _ in range(depth)] + [f"f{i}.dat"]
        files["/".join(parts)] = rng.randint(1, 300) * KiB
    files[f"big{rng.randint(0, 9)}.bin"] = rng.randint(1, 3) * MiB + rng.randint(0, 4095)
    return files


def make_jobs(
    profile: Profile,
    seed: int,
    data_root: Path,
    irods_root: str,
    session: Any,
    owner: tuple[int, int],
) -> list[JobPlan]:
    """Build the jobs' sources (local files for uploads, iRODS objects for downloads)."""
    rng = random.Random(seed)
    up_root, dl_root = data_root / "up", data_root / "dl"
    for d in (up_root, dl_root):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, *owner)
    kinds = ["large"] * profile.large
    for _ in range(profile.jobs - profile.large):
        kinds.append("small" if rng.random() < 0.55 else "tree")
    rng.shuffle(kinds)
    jobs: list[JobPlan] = []
    for n, kind in enumerate(kinds):
        direction = "upload" if (n % 2 == 0) else "download"
        key = f"j{n:03d}-{kind}-{direction[:2]}"
        if kind == "small":
            layout = {"file.dat": rng.randint(0, 200) * KiB + rng.randint(0, 1023)}
        elif kind == "large":
            layout = {"large.bin": profile.large_size + rng.randint(0, MiB)}
        else:
            layout = _tree_files(rng)
        job = JobPlan(key, direction, kind, "", "")
        if direction == "upload":
            base = up_root / key
            _make_local(base, layout, rng, owner, job)
            coll = f"{irods_root}/up/{key}"
            job.landing = coll
            if kind == "tree":
                job.src, job.dst = f"{base}/", f"irods:{coll}"
            else:
                (name,) = layout
                job.src, job.dst = str(base / name), f"irods:{coll}/{name}"
        else:
            coll = f"{irods_root}/src/{key}"
            _make_remote(session, coll, layout, rng, job, data_root)
            target = dl_root / key
            job.landing = str(target)
            if kind == "tree":
                job.src, job.dst = f"irods:{coll}/", str(target)
            else:
                (name,) = layout
                job.src, job.dst = f"irods:{coll}/{name}", str(target / name)
        jobs.append(job)
    return jobs


def _make_local(
    base: Path,
    layout: dict[str, int],
    rng: random.Random,
    owner: tuple[int, int],
    job: JobPlan,
) -> None:
    for rel, size in layout.items():
        path = base / rel
        d = base
        for part in ("", *Path(rel).parts[:-1]):
            d = d / part if part else d
            if not d.exists():
                d.mkdir()
                os.chown(d, *owner)
        if size >= 8 * MiB:
            digest = write_large(path, rng, size)
        else:
            data = content(rng, size)
            path.write_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
        os.chown(path, *owner)
        job.files[rel] = (size, digest)


def _make_remote(
    session: Any,
    coll: str,
    layout: dict[str, int],
    rng: random.Random,
    job: JobPlan,
    scratch: Path,
) -> None:
    for rel, size in layout.items():
        path = f"{coll}/{rel}"
        session.collections.create(path.rsplit("/", 1)[0])
        if size >= 8 * MiB:
            tmp = scratch / f".{job.key}.src"
            digest = write_large(tmp, rng, size)
            session.data_objects.put(str(tmp), path)
            tmp.unlink()
        else:
            data = content(rng, size)
            with session.data_objects.open(path, "w") as fh:
                fh.write(data)
            digest = hashlib.sha256(data).hexdigest()
        job.files[rel] = (size, digest)


def make_ingest_tree(
    root: Path, files: int, owner: tuple[int, int], per_dir: int = 500
) -> dict[str, int]:
    """``files`` small files in directories of ``per_dir``; relative path -> size."""
    tree: dict[str, int] = {}
    root.mkdir(parents=True)
    os.chown(root, *owner)
    for n in range(files):
        d = root / f"dir{n // per_dir:03d}"
        if n % per_dir == 0:
            d.mkdir()
            os.chown(d, *owner)
        data = f"ingest file {n}\n".encode()
        p = d / f"file{n:05d}.txt"
        p.write_bytes(data)
        os.chown(p, *owner)
        tree[f"{d.name}/{p.name}"] = len(data)
    return tree
