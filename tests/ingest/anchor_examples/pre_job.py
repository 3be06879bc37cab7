from services.ingest.compat.core import Core
from services.ingest.compat.utils import Operation


class event_handler(Core):
    @staticmethod
    def operation(session, meta, **options):
        return Operation.NO_OP

    @staticmethod
    def pre_job(hdlr_mod, logger, meta):
        with open("/tmp/a", "w") as f:
            f.write("pre_job")
