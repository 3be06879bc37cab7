import argparse

import pytest

from services.isync.cli import build_parser, options_from, parse_size


def test_sizes():
    assert parse_size("100") == 100
    assert parse_size("64k") == 64 * 1024
    assert parse_size("8M") == 8 << 20
    assert parse_size("1.5G") == 3 << 29
    assert parse_size("2MiB") == 2 << 20
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("fast")


def test_options_from_flags():
    args = build_parser().parse_args(
        [
            "-r",
            "-f",
            "-N",
            "6",
            "-p",
            "3",
            "--size-only",
            "--exclude",
            "*.tmp",
            "--bwlimit",
            "1M",
            "a",
            "i:b",
        ]
    )
    opts = options_from(args)
    assert (opts.recursive, opts.force, opts.streams, opts.parallel_files) == (True, True, 6, 3)
    assert opts.skip_policy == "size-only"
    assert opts.exclude == ("*.tmp",)
    assert opts.bwlimit == 1 << 20
    assert not opts.verify_checksum
    assert options_from(build_parser().parse_args(["-K", "a", "i:b"])).verify_checksum


@pytest.mark.parametrize(
    "argv",
    [
        ["onlyone"],
        ["--checksum", "--size-only", "a", "i:b"],
        ["-N", "0", "a", "i:b"],
        ["--bogus", "a", "i:b"],
        ["/tmp", "/tmp/x"],
        ["i:a", "i:b"],
    ],
)
def test_usage_errors_exit_2(run_isync, argv):
    result = run_isync(*argv)
    assert result.code == 2
    assert result.stderr.startswith("isync: error: ")
    assert "Traceback" not in result.stderr


def test_help_goes_to_the_injected_stdout(run_isync):
    result = run_isync("--help")
    assert result.code == 0
    assert "Exit codes: 0 done" in result.stdout


@pytest.mark.parametrize(
    ("argv", "flag"),
    [(["-p", "0"], "--parallel"), (["-N", "0"], "--streams"), (["--parallel", "-3"], "--parallel")],
)
def test_an_invalid_option_names_the_flag_the_user_typed(argv, flag):
    from services.isync.errors import UsageError

    args = build_parser().parse_args([*argv, "a", "i:b"])
    with pytest.raises(UsageError) as e:
        options_from(args)
    assert str(e.value).startswith(f"invalid {flag}: ")
    assert "greater than or equal to 1" in str(e.value)
