"""A test handler steered by ``meta["append_json"]``; records every hook to a file."""

import os
import re
import time

from shared.ingest.core import Core
from shared.ingest.utils import DeleteMode, Operation


def _cfg(meta):
    return meta.get("append_json") or {}


def _record(meta, hook):
    path = _cfg(meta).get("log")
    if path:
        with open(path, "a") as f:
            f.write(f"{hook} {meta.get('target')}\n")
    hang = _cfg(meta).get("hang_job")  # {"hook": "pre_job", "pid": file}: never returns
    if hang and hang["hook"] == hook:
        with open(hang["pid"], "w") as f:
            f.write(str(os.getpid()))
        while True:  # pure Python: nothing to interrupt but the process
            time.sleep(3600)


class event_handler(Core):
    @staticmethod
    def operation(session, meta, **options):
        return Operation[_cfg(meta).get("op", "REGISTER_SYNC")]

    @staticmethod
    def delete_mode(meta):
        return DeleteMode[_cfg(meta).get("delete", "DO_NOT_DELETE")]

    @staticmethod
    def to_resource(session, meta, **options):
        return _cfg(meta).get("resource")

    @staticmethod
    def as_user(meta, **options):
        user = _cfg(meta).get("as_user")
        return ("tempZone", user) if user else ("tempZone", "rods")

    @staticmethod
    def max_retries(hdlr_mod, logger, meta):
        return _cfg(meta).get("max_retries", 0)

    @staticmethod
    def delay(hdlr_mod, logger, meta, retries):
        return 0

    @staticmethod
    def timeout(hdlr_mod, logger, meta):
        return _cfg(meta).get("timeout", 3600)

    @staticmethod
    def pre_job(hdlr_mod, logger, meta):
        _record(meta, "pre_job")

    @staticmethod
    def post_job(hdlr_mod, logger, meta):
        irods = _cfg(meta).get("count_objects")  # {host, port, password}: count what landed
        if not irods:
            _record(meta, "post_job")
            return
        from irods.session import iRODSSession

        with iRODSSession(user="rods", zone="tempZone", **irods) as session:
            walk = session.collections.get(meta["target"]).walk()
            count = sum(len(objs) for _, _, objs in walk)
        _record(meta, f"post_job objects={count}")


def _hook(name):
    def hook(hdlr_mod, *args, **options):
        meta = next(a for a in args if isinstance(a, dict))
        _record(meta, name)
        if name == "pre_data_obj_create" and _cfg(meta).get("touch"):
            open(_cfg(meta)["touch"], "w").close()  # e.g. tells a test's proxy to stall
        hang = _cfg(meta).get("hang")  # {"name": file name, "pid": file}: never returns
        if (
            name == "pre_data_obj_create"
            and hang
            and os.path.basename(meta["path"]) == hang["name"]
        ):
            with open(hang["pid"], "w") as f:
                f.write(str(os.getpid()))
            while True:  # pure Python: no connection to interrupt
                time.sleep(3600)
        if name == "pre_data_obj_create" and _cfg(meta).get("sleep"):
            time.sleep(_cfg(meta)["sleep"])
        fail_dir = _cfg(meta).get("fail_once_dir")
        if fail_dir and name == "pre_data_obj_create":
            marker = os.path.join(fail_dir, re.sub(r"\W", "_", meta["target"]))
            if not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError("first attempt fails")

    return staticmethod(hook)


for _event in (
    "data_obj_create",
    "data_obj_modify",
    "data_obj_delete",
    "coll_create",
    "coll_modify",
    "coll_delete",
):
    for _when in ("pre", "post"):
        setattr(event_handler, f"{_when}_{_event}", _hook(f"{_when}_{_event}"))
