"""The ``onecity`` group: every documented command is there, and the application never
imports the benchmark."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from bff.cli import DOMAIN_COMMANDS, main, onecity

COMMANDS = (
    "audit",
    "clients",
    "codes",
    "dev",
    "keys",
    "migrate",
    "outbox",
    "partitions",
    "peak",
    "serve",
    "simulate",
    "staff",
    "verify",
)


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    commands = capsys.readouterr().out.split("Commands:\n", 1)[1]
    # One line per command ("  name  help"); longer help continues on indented lines.
    listed = [line.split()[0] for line in commands.splitlines() if line.startswith("  ") and line[2] != " "]
    assert tuple(listed) == COMMANDS


def test_each_domain_command_is_a_click_command_of_its_name() -> None:
    with click.Context(onecity) as ctx:
        for name in DOMAIN_COMMANDS:
            command = onecity.get_command(ctx, name)
            assert isinstance(command, click.Command) and command.name == name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--quick"], "No such command 'bench'"),
        (["clients"], "Usage: onecity clients"),
        (["keys", "rotate"], "Missing option '--purpose'"),
        (["simulate", "nowhere"], "Invalid value for '{health|"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err + captured.out


def test_the_application_never_imports_the_benchmark() -> None:
    probe = (
        "import importlib, pkgutil, sys, bff\n"
        "for module in pkgutil.walk_packages(bff.__path__, 'bff.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(sorted(m for m in sys.modules if m == 'bench' or m.startswith('bench.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
