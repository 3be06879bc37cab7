import io
import json

from services.isync.models import FileOutcome
from services.isync.progress import JsonLinesSink, LineSink, ProgressTracker, RecordingSink


def test_tracker_counts_and_rate_limits_events():
    sink = RecordingSink()
    tracker = ProgressTracker(sink, interval=60)
    tracker.add_totals(2, 300)
    tracker.add_bytes(100)
    tracker.add_bytes(200, sent=0)
    tracker.file_finished(FileOutcome(src="a", dst="b", outcome="transferred", bytes=100))
    tracker.file_finished(FileOutcome(src="c", dst="d", outcome="skipped", bytes=200))
    tracker.emit(force=True)
    last = sink.events[-1]
    assert (last.files_total, last.files_done, last.files_skipped) == (2, 1, 1)
    assert (last.bytes_total, last.bytes_done, last.bytes_sent) == (300, 300, 100)
    assert len(sink.events) == 2  # the first emit and the forced one
    assert [o.src for o in sink.outcomes] == ["a", "c"]


def test_json_lines():
    out = io.StringIO()
    sink = JsonLinesSink(out)
    tracker = ProgressTracker(sink, interval=0)
    tracker.add_totals(1, 10)
    tracker.file_finished(FileOutcome(src="ä b", dst="x", outcome="failed", error="boom"))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {line["type"] for line in lines} == {"progress", "file"}
    file_line = next(line for line in lines if line["type"] == "file")
    assert file_line["src"] == "ä b" and file_line["error"] == "boom"


def test_line_sink_reports_failures_and_warnings_only():
    err = io.StringIO()
    sink = LineSink(err)
    sink.file_done(FileOutcome(src="a", dst="b", outcome="transferred"))
    sink.file_done(FileOutcome(src="l", dst="b", outcome="skipped", reason="symlink skipped"))
    sink.file_done(FileOutcome(src="f", dst="b", outcome="failed", error="f: permission denied"))
    assert err.getvalue().splitlines() == [
        "isync: warning: l: symlink skipped",
        "isync: failed: f: permission denied",
    ]
