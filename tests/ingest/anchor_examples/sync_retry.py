from services.ingest.compat.core import Core
from services.ingest.compat.utils import Operation


class event_handler(Core):
    @staticmethod
    def max_retries(hdlr_mod, logger, meta):
        return 3

    @staticmethod
    def operation(session, meta, **options):
        return Operation.PUT_SYNC
