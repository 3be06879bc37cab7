from services.isync.journal import Journal, put_journal_path
from services.isync.ranges import split


def test_journal_round_trip(tmp_path):
    path = tmp_path / "j.json"
    ident = {"dst": "/z/a", "size": 10 << 20}
    j = Journal(path, ident, split(10 << 20, 4))
    j.advance(j.ranges[1], 1234)
    j.save()
    again = Journal.load(path, ident)
    assert again is not None
    assert [r.done for r in again.ranges] == [0, 1234, 0, 0]
    assert again.bytes_done == 1234


def test_journal_of_another_transfer_is_ignored(tmp_path):
    path = tmp_path / "j.json"
    Journal(path, {"size": 1}, split(1, 1)).save()
    assert Journal.load(path, {"size": 2}) is None
    path.write_text("{not json")
    assert Journal.load(path, {"size": 1}) is None
    j = Journal(path, {"size": 1}, split(1, 1))
    j.remove()
    j.remove()
    assert not path.exists()


def test_put_journal_key_depends_on_source_version(tmp_path):
    a = put_journal_path(tmp_path, "/z/a", 10, 1)
    assert a == put_journal_path(tmp_path, "/z/a", 10, 1)
    assert a != put_journal_path(tmp_path, "/z/a", 10, 2)
    assert a != put_journal_path(tmp_path, "/z/b", 10, 1)


def test_state_dir_follows_the_given_environment(tmp_path):
    from services.isync.journal import default_state_dir

    assert default_state_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "isync"
    assert default_state_dir({"HOME": "/home/u"}).as_posix() == "/home/u/.local/state/isync"
