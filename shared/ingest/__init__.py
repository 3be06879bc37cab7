"""Automated ingest: filesystem scanner and landing zones over the worker pool.

Compatible with iRODS automated ingest 0.7.0 event handlers: change
``irods_capability_automated_ingest`` to ``shared.ingest`` in the import lines.
"""

from shared.ingest.core import Core
from shared.ingest.utils import DeleteMode, Operation

__all__ = ["Core", "DeleteMode", "Operation"]
