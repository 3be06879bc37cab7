import time
from services.ingest.compat.core import Core
from services.ingest.compat.utils import Operation


class event_handler(Core):
    @staticmethod
    def operation(session, meta, **options):
        return Operation.NO_OP

    @staticmethod
    def timeout(hdlr_mod, logger, meta):
        return 1

    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        time.sleep(2)
