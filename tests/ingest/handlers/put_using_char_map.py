import re

from shared.ingest.core import Core
from shared.ingest.utils import Operation


class event_handler(Core):
    re_non_alphanum = re.compile("[^a-zA-Z0-9]")

    @staticmethod
    def character_map():
        return {event_handler.re_non_alphanum: "_"}

    @staticmethod
    def operation(session, meta, **options):
        return Operation.PUT
