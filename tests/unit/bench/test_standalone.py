"""The command line shared by the stand-alone benchmark tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.standalone import standalone_parser


def test_the_shared_arguments_and_a_tool_s_own() -> None:
    parser = standalone_parser("python -m bench.x", "Measure x.\n\nMore text.", workdir=Path(".onecity/bench-x"))
    parser.add_argument("--uploads", type=int, default=5)
    args = parser.parse_args(["--admin-database-url", "postgresql://a/b", "--redis-url", "redis://c/6"])
    assert (args.admin_database_url, args.redis_url, args.workdir, args.uploads) == (
        "postgresql://a/b",
        "redis://c/6",
        Path(".onecity/bench-x"),
        5,
    )
    assert parser.description == "Measure x."


def test_the_servers_are_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        standalone_parser("python -m bench.x", None, workdir=Path("w")).parse_args(["--redis-url", "redis://c/6"])
    assert exited.value.code == 2
    assert "--admin-database-url" in capsys.readouterr().err
