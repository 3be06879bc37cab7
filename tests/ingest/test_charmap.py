"""character_map: the seed's renaming, byte for byte (golden values from 0.7.0)."""

from __future__ import annotations

import re

import pytest

from services.ingest.charmap import CharacterMapError, normalise, translate_path, translate_string

NON_ALNUM = {re.compile("[^a-zA-Z0-9]"): "_"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("test-file~with@5!non.alphas", "test_file_with_5_non_alphas_iQRy064Rz5Y66"),
        ("a b", "a_b_E4"),
        ("plain", "plain"),
        ("héllo wörld", "h_llo_w_rld_kvSjSudgo9"),
        # past 28 bytes of changes the SHA-224 of the name is encoded instead
        ("xxx" + "!" * 20, "xxx" + "_" * 20 + "_gw5cFwMevgc4SEugXgsy7t5rZkYBuFw9oShxP1"),
    ],
)
def test_same_names_as_the_seed(name, expected):
    assert translate_path("/" + name, normalise(NON_ALNUM)) == "/" + expected


def test_each_path_element_is_mapped_on_its_own():
    out = translate_path("/zone/a b/c d", normalise(NON_ALNUM))
    assert out == "/zone/a_b_E4/c_d_E4"


def test_key_kinds():
    cmap = normalise([(("!", "~"), "_"), ("x", "y"), (str.isdigit, "#")])
    assert translate_string("a!b~x1", cmap) == "a_b_y#"


@pytest.mark.parametrize("bad", [{"ab": "_"}, {"a": "__"}, [("a",)], 42, {3: "_"}])
def test_bad_maps_are_refused(bad):
    with pytest.raises(CharacterMapError):
        normalise(bad)
