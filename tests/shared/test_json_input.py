"""The guarded JSON reader: every limit refused with a message naming it (never the
value), nesting past the decoder's recursion limit included; what fits comes back."""

from __future__ import annotations

import pytest

from shared.errors import InvalidInput
from shared.json_input import JsonLimits, check_shape, parse_json

SMALL = JsonLimits(max_depth=3, max_items=3, max_string=5, max_nodes=10)


def test_within_limits_parses() -> None:
    assert parse_json(b'{"a": [1, {"b": "12345"}]}', limits=SMALL) == {"a": [1, {"b": "12345"}]}


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        (b"", "empty"),
        (b"\xff", "UTF-8"),
        (b"{", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": [[[1]]]}', "nested too deeply at $.a[0][0]"),
        (b"[1, 2, 3, 4]", "the array at $ has 4 entries"),
        (b'{"a": 1, "b": 2, "c": 3, "d": 4}', "the object at $ has 4 entries"),
        (b'["secret"]', "the string at $[0] is longer than 5"),
        (b"[[1, 2, 3], [1, 2, 3], [1, 2, 3]]", "more than 10 values"),
        (b"[NaN]", "not a JSON number"),
        (b"[-Infinity]", "not a JSON number"),
        (b"[" + b"1" * 5000 + b"]", "number too long"),
    ],
)
def test_limits_refused(raw: bytes, hint: str) -> None:
    with pytest.raises(InvalidInput, match=hint.replace("[", r"\[").replace("$", r"\$")) as e:
        parse_json(raw, limits=SMALL)
    assert "secret" not in e.value.message


def test_check_shape_of_parsed_data() -> None:
    nested: list[object] = []
    for _ in range(50):
        nested = [nested]
    with pytest.raises(InvalidInput, match="at most 32 levels"):
        check_shape({"x": nested})
    check_shape({"x": [[[]]]})
