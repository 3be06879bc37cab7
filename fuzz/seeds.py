"""Write the seed inputs of every fuzz target into ``fuzz/corpus/<target>/seed-*``.

    python -m fuzz.seeds

Seeds are well-formed inputs the fuzzer mutates from: frames packed by python-irodsclient
as a client sends them, replies as the iRODS server sends them, and the job bodies of
docs/api.md and docs/ingest.md. Rerunning rewrites the seeds and leaves other corpus
files (the regression inputs of findings) alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from irods import message as m
from irods.message import iRODSMessage

CORPUS = Path(__file__).resolve().parent / "corpus"


def _req(msg: m.Message | bytes, api: int, bs: bytes = b"") -> bytes:
    return iRODSMessage("RODS_API_REQ", msg=msg, bs=bs, int_info=api).pack()


def irods_frames() -> dict[str, bytes]:
    kvp = m.StringStringMap({"forceFlag": ""})
    open_ = m.FileOpenRequest(
        objPath="/tempZone/home/rods/a.dat",
        createMode=0o644,
        openFlags=1,
        offset=0,
        dataSize=-1,
        numThreads=0,
        oprType=1,
        KeyValPair_PI=kvp,
    )
    opened = m.OpenedDataObjRequest(
        l1descInx=3, len=5, whence=0, oprType=0, offset=0, bytesWritten=0, KeyValPair_PI=kvp
    )
    coll = m.CollectionRequest(collName="/tempZone/home/rods/c", KeyValPair_PI=kvp)
    query = m.GenQueryRequest(
        maxRows=500,
        continueInx=0,
        partialStartIndex=0,
        options=0,
        KeyValPair_PI=m.StringStringMap({}),
        InxIvalPair_PI=m.IntegerIntegerMap({501: 1}),
        InxValPair_PI=m.IntegerStringMap({501: "= '/tempZone/home/rods'"}),
    )
    startup = iRODSMessage(
        "RODS_CONNECT", msg=m.StartupPack(("rods", "tempZone"), ("rods", "tempZone"))
    ).pack()
    auth = m.BinBytesBuf(buflen=20, buf='{"scheme": "native"}')
    return {
        "startup": startup,
        "open": startup + _req(open_, 602),
        "write": _req(opened, 676, b"hello"),
        "collection": _req(coll, 681),
        "genquery": _req(query, 702),
        "authenticate": _req(auth, 110000),
        "disconnect": iRODSMessage("RODS_DISCONNECT").pack(),
    }


def _reply(msg: bytes = b"", error: bytes = b"", bs: bytes = b"", int_info: int = 0) -> bytes:
    head = iRODSMessage.pack_header("RODS_API_REPLY", len(msg), len(error), len(bs), int_info)
    return head + msg + error + bs


def isync_reply() -> dict[str, bytes]:
    error = (
        b"<RError_PI><count>1</count><RErrMsg_PI><status>-808000</status>"
        b"<msg>no such object</msg></RErrMsg_PI></RError_PI>"
    )
    # the first byte: piece size and payload buffer (see fuzz.targets.isync_reply)
    return {
        "open": b"\x05" + _reply(int_info=3),
        "read": b"\x07" + _reply(bs=b"0123456789abcdef", int_info=16),
        "message": b"\x02" + _reply(msg=b"<STR_PI><myStr>ok</myStr></STR_PI>"),
        "error": b"\xc1" + _reply(error=error, int_info=-808000),
    }


def api_intake() -> dict[str, bytes]:
    job = {
        "title": "acquisition 1",
        "stagerUser": "alice",
        "stagerUserEmail": "alice@example.org",
        "drUser": "alice@ru.nl",
        "drPass": "pw",
        "srcURL": "/project/3010000.01/raw/sub-01",
        "dstURL": "irods:/tempZone/home/alice/raw/sub-01",
        "timeout": 3600,
        "timeout_noprogress": 600,
    }
    ingest = {"root": "/ROOT/landing", "target": "/tempZone/home/rods/landing", "interval": 60}
    yaml = (
        b"root: /ROOT/landing\ntarget: /tempZone/home/rods/landing\nfiles_per_task: 20\n"
        b"exclude_file_name: ['[.]tmp$']\nevent_handler_data: |\n  def pre_job(*a): pass\n"
    )
    # the first byte picks principal, route and content type (fuzz.targets.api_intake)
    return {
        "job": b"\x00" + json.dumps(job).encode(),
        "job-user": bytes([24]) + json.dumps(job).encode(),
        "batch": b"\x01" + json.dumps({"jobs": [job, {**job, "srcURL": "relative"}]}).encode(),
        "ingest-json": b"\x02" + json.dumps(ingest).encode(),
        "ingest-yaml": b"\x05" + yaml,
    }


def main() -> int:
    for target, seeds in (
        ("irods_frames", irods_frames()),
        ("isync_reply", isync_reply()),
        ("api_intake", api_intake()),
    ):
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
