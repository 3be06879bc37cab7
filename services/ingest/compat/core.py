"""``Core`` under the anchor's module name (``...automated_ingest.core``)."""

from shared.ingest.core import Core

__all__ = ["Core"]
