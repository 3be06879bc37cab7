"""The event-handler API of automated ingest: what operators' handler files import.

Compatible with iRODS automated ingest 0.7.0 event handlers: change
``irods_capability_automated_ingest`` to ``shared.ingest`` in the import lines. The
workers, job store and REST endpoints are the ingest service's own; this path stays stable.
"""

from shared.ingest.core import Core
from shared.ingest.utils import DeleteMode, Operation

__all__ = ["Core", "DeleteMode", "Operation"]
