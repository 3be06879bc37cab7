"""``Core``: the base class of event handlers, with the seed's ``on_*`` wrappers.

An ``on_<event>(func, *args, **options)`` classmethod calls ``pre_<event>`` (when the
handler defines it), then ``func``, then ``post_<event>``, all with the same arguments.
A handler may override an ``on_*`` method to wrap or replace the operation itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Core:
    """Subclass as ``class event_handler(Core)`` in an event handler file."""

    @classmethod
    def _around(
        cls, event: str, func: Callable[..., Any], args: tuple[Any, ...], options: dict[str, Any]
    ) -> None:
        before = getattr(cls, f"pre_{event}", None)
        if before is not None:
            before(*args, **options)
        func(*args, **options)
        after = getattr(cls, f"post_{event}", None)
        if after is not None:
            after(*args, **options)

    @classmethod
    def on_data_obj_create(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("data_obj_create", func, args, options)

    @classmethod
    def on_data_obj_modify(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("data_obj_modify", func, args, options)

    @classmethod
    def on_data_obj_delete(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("data_obj_delete", func, args, options)

    @classmethod
    def on_coll_create(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("coll_create", func, args, options)

    @classmethod
    def on_coll_modify(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("coll_modify", func, args, options)

    @classmethod
    def on_coll_delete(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("coll_delete", func, args, options)
