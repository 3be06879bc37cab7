"""Catalog: the resource lookups it caches always see the database as it is."""

from __future__ import annotations

from pathlib import Path

from devtools.irods_server.catalog import Catalog


def test_resource_cache_follows_inserts_updates_deletes_and_rollbacks(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "catalog.sqlite")
    demo = cat.resource("demoResc")
    assert demo is not None and cat.resource("r1") is None  # both now cached
    rid = cat.add_resource("r1", "unixfilesystem", vault_path=str(tmp_path / "v"))
    assert cat.resource("r1") is not None  # seen inside the transaction that added it
    cat.commit()
    assert cat.resource_by_id(rid)["resc_name"] == "r1"  # type: ignore[index]
    cat.db.execute("UPDATE r_resc_main SET resc_parent = ? WHERE resc_id = ?", (demo[0], rid))
    assert [r["resc_name"] for r in cat.children(int(demo["resc_id"]))] == ["r1"]
    cat.rollback()
    assert cat.children(int(demo["resc_id"])) == []  # the rolled-back change is forgotten
    assert cat.resource_by_id(rid)["resc_parent"] == ""  # type: ignore[index]
    cat.db.execute("DELETE FROM r_resc_main WHERE resc_id = ?", (rid,))
    cat.commit()
    assert cat.resource("r1") is None and cat.resource_by_id(rid) is None
    cat.close()


def test_resource_changes_through_the_raw_connection_are_seen(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "catalog.sqlite")
    assert cat.resource("demoResc")["resc_type_name"] == "unixfilesystem"  # type: ignore[index]
    cat.db.execute(
        "UPDATE r_resc_main SET resc_type_name = 'passthru' WHERE resc_name = ?", ("demoResc",)
    )
    cat.db.commit()  # not Catalog.commit: the trigger alone must invalidate
    assert cat.resource("demoResc")["resc_type_name"] == "passthru"  # type: ignore[index]
    cat.close()
