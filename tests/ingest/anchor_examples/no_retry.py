from services.ingest.compat.core import Core
from services.ingest.compat.utils import Operation
from services.ingest.compat.redis_utils import get_redis


class event_handler(Core):
    @staticmethod
    def operation(session, meta, **options):
        return Operation.NO_OP

    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        target = meta["target"]
        path = meta["path"]

        r = get_redis(meta["config"])
        failures = r.get("failures:" + path)
        if failures is None:
            failures = 0

        r.incr("failures:" + path)

        if failures == 0:
            raise RuntimeError("no failures")
