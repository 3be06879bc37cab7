import os

import pytest

from services.isync.errors import UsageError
from services.isync.paths import (
    PathFilter,
    file_target,
    parse_location,
    part_name,
    tree_root,
)

HOME = "/tempZone/home/alice"


def test_irods_prefixes_and_relative_paths():
    assert parse_location("irods:/tempZone/x", HOME).path == "/tempZone/x"
    loc = parse_location("i:data/run 1/", HOME)
    assert (loc.kind, loc.path, loc.contents) == ("irods", f"{HOME}/data/run 1", True)
    assert parse_location("i:", HOME).path == HOME
    assert parse_location("i:/", HOME).contents is False


def test_local_paths_are_absolute():
    loc = parse_location("some/dir/", HOME)
    assert loc.kind == "local"
    assert loc.path == os.path.abspath("some/dir")
    assert loc.contents


def test_empty_path_is_a_usage_error():
    with pytest.raises(UsageError):
        parse_location("", HOME)


def test_rsync_mapping_of_directories():
    dst = parse_location("i:dst", HOME)
    assert tree_root(parse_location("/data/proj", HOME), dst, False) == f"{HOME}/dst/proj"
    assert tree_root(parse_location("/data/proj/", HOME), dst, False) == f"{HOME}/dst"


def test_file_lands_inside_a_directory_or_under_the_given_name():
    src = parse_location("/data/a.txt", HOME)
    assert file_target(src, parse_location("i:dst", HOME), True) == f"{HOME}/dst/a.txt"
    assert file_target(src, parse_location("i:dst/", HOME), False) == f"{HOME}/dst/a.txt"
    assert file_target(src, parse_location("i:b.txt", HOME), False) == f"{HOME}/b.txt"


def test_part_names():
    assert part_name("/z/c/f.bin", "irods") == "/z/c/.f.bin.isync-part"
    assert part_name("/tmp/f.bin", "local") == "/tmp/f.bin.isync-part"


def test_filter_globs():
    f = PathFilter(include=("*.dat",), exclude=("tmp", "raw/*.dat"))
    assert f.wants_file("a/b.dat")
    assert not f.wants_file("a/b.txt")
    assert not f.wants_file("raw/x.dat")
    assert f.wants_file("sub/raw/x.dat")
    assert not f.wants_dir("a/tmp")
    assert not PathFilter().wants_file("x.bin.isync-part")
