"""What every ``onecity`` command shares: the shell it runs in, how it fails, how it exits.

``bff.cli`` is one click group. Each domain contributes a click command or group from its own
``cli`` module (``identity.oidc.cli.clients``, ``codes.cli.codes`` …), which the group imports
only when that command runs. Domains never import ``bff``, so what a command needs from the
configuration (the database, the master key, Redis, its own settings section) it asks of
:class:`Shell`, which ``bff.cli`` hands every command as the click context's ``obj``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

import click
import msgspec

from core.errors import OperatorError

__all__ = ["CommandFailed", "RedisTarget", "Shell", "invoke"]

T = TypeVar("T")

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class RedisTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where Redis is: a URL, and whether it names one seed node of a Redis Cluster."""

    url: str
    cluster: bool = False


class Shell(Protocol):
    """The configuration as a command sees it (``click.Context.obj``).

    Each method reads the settings on first use, so a command that needs none (``verify``)
    never reads them. What is not configured comes from the embedded default a running
    ``onecity dev`` serves, if any; a value that is still missing raises an error naming its
    variable, which the shell prints as ``onecity: …`` with exit status 2.
    """

    def database_url(self) -> str:
        """The PostgreSQL URL (``ONECITY_DATABASE_URL``)."""
        ...

    def master_key(self) -> bytes:
        """The master key (``ONECITY_MASTER_KEY``) that encrypts keys and PII at rest."""
        ...

    def redis(self) -> RedisTarget | None:
        """Redis (``ONECITY_REDIS_URL``), or None when none is configured or running."""
        ...

    def section(self, kind: type[T]) -> T:
        """The domain settings of type ``kind`` (e.g. ``StaffSettings``)."""
        ...

    def city(self) -> str:
        """The issuing city's id (``ONECITY_CITY``), the ``iss`` of codes."""
        ...


class CommandFailed(OperatorError):
    """A command refused its input or failed: :func:`invoke` prints ``onecity COMMAND: MESSAGE``.

    Args:
        command: The command's name as typed (``clients``, ``codes`` …).
        message: What went wrong, for the operator; never a secret.
        exit_code: The process's exit status (2 unless the command documents another).
    """

    def __init__(self, command: str, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.command = command
        self.message = message
        self.exit_code = exit_code


def invoke(command: click.Command, argv: Sequence[str] | None, *, prog_name: str, obj: object = None) -> int:
    """Run ``command`` on ``argv`` (default ``sys.argv[1:]``) and return its exit status.

    A command returns its status (``None`` counts as 0); usage errors and :class:`CommandFailed`
    are printed and return theirs; Ctrl-C returns 130. Nothing here exits the process, so
    tests and other Python code can call it.
    """
    try:
        result = command.main(
            list(argv) if argv is not None else None, prog_name=prog_name, standalone_mode=False, obj=obj
        )
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except CommandFailed as exc:
        click.echo(f"onecity {exc.command}: {exc.message}", err=True)
        return exc.exit_code
    except click.Abort:  # click's form of KeyboardInterrupt
        return EXIT_INTERRUPTED
    return result if isinstance(result, int) else 0
