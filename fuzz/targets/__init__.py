"""Coverage-guided fuzz targets: each module has ``test_one_input(data: bytes)``, which
returns for every input the code under test handles as its contract says (a result, or
the documented error) and raises anything else: that exception is the finding.

``TARGETS`` maps a target's name to its module and to the packages atheris instruments
for coverage when ``fuzz.run`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """A fuzz target: its module and what coverage is measured on."""

    module: str
    instrument: tuple[str, ...]
    #: what it covers, for ``python -m fuzz.run --list`` and docs/testing.md
    summary: str


TARGETS = {
    "irods_frames": Target(
        "fuzz.targets.irods_frames",
        ("devtools.irods_server", "defusedxml", "irods.message"),
        "the iRODS test server's frame reader (wire.read_frame) and request parser "
        "(dispatch.Request.parse for every message class the handlers read)",
    ),
    "isync_reply": Target(
        "fuzz.targets.isync_reply",
        ("services.isync",),
        "isync's reply parser (services/isync/wire.py recv_reply) on a socket that "
        "delivers the input in random-sized pieces",
    ),
    "api_intake": Target(
        "fuzz.targets.api_intake",
        ("services.api", "services.ingest", "shared", "yaml", "json"),
        "the API's JSON intake (read_json, then every job through seal_job) and the ingest "
        "endpoint's JSON and YAML intake (_body, IngestRequest, job_from_request)",
    ),
}
