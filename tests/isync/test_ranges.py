import itertools

import pytest

from services.isync.ranges import ByteRange, split, stream_count

MiB = 1024 * 1024


@pytest.mark.parametrize("size", [1, MiB - 1, MiB, 3 * MiB + 5, 50_000_000, 1 << 30])
@pytest.mark.parametrize("parts", [1, 3, 4, 16])
def test_ranges_cover_the_file_exactly(size, parts):
    ranges = split(size, parts)
    assert ranges[0].start == 0 and ranges[-1].end == size
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    assert len(ranges) <= parts
    assert all(r.start % MiB == 0 for r in ranges)


def test_empty_file_has_no_ranges():
    assert split(0, 4) == []


def test_range_progress():
    r = ByteRange(10, 30, 5)
    assert (r.length, r.next_offset, r.remaining, r.complete) == (20, 15, 15, False)
    r.done = 20
    assert r.complete


def test_stream_count_follows_cores_and_size() -> None:
    assert stream_count(256 * MiB, 3) == 3  # -N wins
    assert stream_count(40 * MiB, None, cores=8) == 1  # one per 32 MiB
    assert stream_count(64 * MiB, None, cores=8) == 2
    assert stream_count(256 * MiB, None, cores=2) == 2  # at most one per core
    assert stream_count(256 * MiB, None, cores=1) == 2  # but two: one overlaps the other
    assert stream_count(1024 * MiB, None, cores=64) == 4  # and at most four
    assert len(split(256 * MiB, None)) == stream_count(256 * MiB)
