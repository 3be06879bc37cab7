"""Test helper: remove a resource the way a test made it, replicas first."""

from __future__ import annotations

from typing import Any

from irods.models import Collection, DataObject


def remove_resource(session: Any, name: str) -> None:
    """Unlink (forced, no trash) every object with a replica on resource ``name``, then
    remove the resource: a real zone refuses to remove a resource that still holds
    replicas (``CAT_RESOURCE_NOT_EMPTY``), so the replicas go first."""
    rows = session.query(Collection.name, DataObject.name).filter(DataObject.resource_name == name)
    paths = sorted({f"{r[Collection.name]}/{r[DataObject.name]}" for r in rows})
    for path in paths:
        session.data_objects.unlink(path, force=True)
    session.resources.remove(name)
