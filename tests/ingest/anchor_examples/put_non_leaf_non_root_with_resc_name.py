from services.ingest.compat.core import Core
from services.ingest.compat.utils import Operation


class event_handler(Core):
    @staticmethod
    def to_resource(session, meta, **options):
        return "regiResc2"

    @staticmethod
    def operation(session, meta, **options):
        return Operation.PUT
