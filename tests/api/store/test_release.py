"""The release view on SQLite and PostgreSQL: in-flight counts and each user's oldest held
tasks, cut to the user's room."""

from __future__ import annotations

from services.api.store import new_task_id
from tests.api.store.conftest import SVC, make_store, spec


async def test_release_view_cuts_each_user_to_its_room(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        alice = [new_task_id() for _ in range(6)]
        await store.add(SVC, [(i, spec()) for i in alice])
        await store.add(SVC, [(new_task_id(), spec("stgbob")) for _ in range(2)])
        assert len(await store.mark_dispatched(alice[:3])) == 3
        in_flight, held = await store.release_view(4)
        assert in_flight == {"stgalice": 3}
        oldest = min(alice[3:])  # same created_at: the id breaks the tie
        assert [t.id for t in held["stgalice"]] == [oldest] and len(held["stgbob"]) == 2
        assert len((await store.release_view(7))[1]["stgalice"]) == 3  # room 4: all three
    finally:
        await store.close()
