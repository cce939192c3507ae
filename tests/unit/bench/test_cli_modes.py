"""bench.cli: every mode fails the same way, and runs on the servers the environment names."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import cli
from bench.system import StartError


def test_a_failed_mode_says_why_on_stderr_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    def fails() -> int:
        raise StartError("the BFF did not answer /health/ready")

    assert cli._guarded(fails) == 1
    assert capsys.readouterr().err == "bench: StartError: the BFF did not answer /health/ready\n"


def test_ctrl_c_exits_130_and_a_mode_keeps_its_own_status() -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert cli._guarded(interrupted) == 130
    assert cli._guarded(lambda: 0) == 0 and cli._guarded(lambda: 1) == 1


def test_a_bug_in_a_mode_is_not_swallowed() -> None:
    def broken() -> int:
        raise KeyError("tier")

    with pytest.raises(KeyError):
        cli._guarded(broken)


def test_every_mode_runs_on_the_environments_servers_and_topology(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ONECITY_BENCH_DATABASE_URL", "postgresql://bench@db:5432/postgres")
    monkeypatch.setenv("ONECITY_BENCH_REDIS_URL", "redis://cache:6379/7")
    options = cli.parse_options(["--peak", "--workers", "3", "--topology", "cluster", "--pgbouncer"])
    config = cli._config(options, tmp_path, {"ONECITY_OIDC_CLIENT_TOKEN_TTL_S": "4200"})
    assert (config.admin_database_url, config.redis_url, config.workers, config.workdir) == (
        "postgresql://bench@db:5432/postgres",
        "redis://cache:6379/7",
        3,
        tmp_path,
    )
    assert (config.topology, config.pgbouncer) == ("cluster", True)
    assert config.extra_env == {"ONECITY_OIDC_CLIENT_TOKEN_TTL_S": "4200"}


def test_the_scratch_directory_is_removed_unless_kept() -> None:
    with cli._scratch(cli.parse_options(["--peak"]), "onecity-test-") as workdir:
        (workdir / "log").write_text("x")
    assert not workdir.exists()
    with cli._scratch(cli.parse_options(["--peak", "--keep"]), "onecity-test-") as kept:
        pass
    assert kept.is_dir()
    kept.rmdir()
