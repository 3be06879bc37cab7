"""An interrupted run reports the bytes that really went: SIGINT during a large put, the
summary (JSON) and the closing line count what crossed the network, not 0 because the file
in flight did not finish."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from tests.isync.conftest import spawn

MiB = 1024 * 1024


def interrupt_after_8_mib(args: list[str], environ: dict[str, str]) -> tuple[dict[str, Any], str]:
    """Run isync with ``args`` (``--json``), SIGINT it once 8 MiB have gone, and return its
    summary event and stderr; it must have exited 130 with the bytes counted."""
    proc = spawn(args, environ)
    seen = 0
    summary: dict[str, Any] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event["type"] == "progress" and event["bytes_sent"] >= 8 * MiB and not seen:
            seen = event["bytes_sent"]
            proc.send_signal(signal.SIGINT)
        if event["type"] == "summary":
            summary = event
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert seen, "the transfer finished before it was interrupted"
    assert seen <= summary["bytes_sent"] < 48 * MiB, summary
    return summary, err


def test_interrupted_put_reports_bytes_sent(
    tmp_path: Path, isync_environ: dict[str, str], coll: str
) -> None:
    src = tmp_path / "tree"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(48 * MiB))
    (src / "small.txt").write_text("small")
    args = ["-r", "--json", "--bwlimit", "16M", "--buffer-size", "1M", f"{src}/"]
    summary, err = interrupt_after_8_mib([*args, f"i:{coll}"], isync_environ)
    sent_mib = summary["bytes_sent"] / MiB
    assert f"isync: error: interrupted after {sent_mib:.1f} MiB sent; run the same" in err, err


def test_interrupted_get_reports_bytes_received(
    tmp_path: Path, isync_environ: dict[str, str], coll: str, irods_session: Any
) -> None:
    """The same for a large get: the bytes that arrived are counted."""
    irods_session.collections.create(coll)
    with irods_session.data_objects.open(f"{coll}/big.bin", "w") as fh:
        fh.write(os.urandom(48 * MiB))
    down = tmp_path / "down"
    down.mkdir()
    args = ["--json", "--bwlimit", "16M", "--buffer-size", "1M", f"i:{coll}/big.bin", f"{down}/"]
    summary, err = interrupt_after_8_mib(args, isync_environ)
    assert f"interrupted after {summary['bytes_sent'] / MiB:.1f} MiB sent" in err, err
