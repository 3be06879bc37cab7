from shared.ingest.core import Core
from shared.ingest.utils import Operation


class event_handler(Core):
    @staticmethod
    def operation(session, meta, **options):
        return Operation.REGISTER_SYNC
