"""The ``onecity`` command line: one click group.

The shell's own commands live here: ``dev`` (everything, embedded default), ``serve``
(production server), ``migrate``, ``keys``, ``simulate``, ``outbox``, ``peak``,
``partitions``. Each domain contributes its commands from its own ``cli`` module, listed by
import path in :data:`DOMAIN_COMMANDS` and imported only when that command runs (or ``--help``
lists it). Every command reads the settings once, from the environment, when it first needs
them, with what is not configured taken from a running ``onecity dev``
(:func:`bff.embedded.use_running_default`); ``verify`` never reads them.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import click
import msgspec

from core.cli import RedisTarget, invoke
from services.departments.container import DEPARTMENTS

if TYPE_CHECKING:
    from bff.settings import Settings, SettingsError
    from core.cli import Shell

__all__ = ["DOMAIN_COMMANDS", "main", "onecity"]

T = TypeVar("T")

#: Command name → ``module:attribute`` of the click command a domain contributes.
DOMAIN_COMMANDS: Mapping[str, str] = {
    "audit": "core.audit_cli:audit",
    "clients": "identity.oidc.cli:clients",
    "codes": "codes.cli:codes",
    "staff": "identity.staff.cli:staff",
    "verify": "codes.verify_cli:verify",
}


class _Shell:
    """The click context's ``obj`` (:class:`core.cli.Shell`): the settings, read on first use.

    The settings module imports prometheus_client, which must not be imported before
    ``onecity serve`` has set ``PROMETHEUS_MULTIPROC_DIR`` (:mod:`bff.metrics`), so nothing
    here imports it before a command asks.
    """

    def __init__(self, settings: Settings | None) -> None:
        self._given = settings
        self._settings: Settings | None = None
        #: Whether any value came from the embedded default rather than the environment.
        self.embedded = False

    def configured(self) -> Settings:
        """The settings as configured: the environment alone (what ``dev`` starts from)."""
        if self._given is not None:
            return self._given
        from bff.observability import configure_logging
        from bff.settings import load_settings
        from core.db import set_statement_cache_size

        settings = load_settings()
        configure_logging(settings.log_level)
        # Every pool any command opens (admin commands included) honours the setting.
        set_statement_cache_size(settings.database.statement_cache_size)
        return settings

    @property
    def settings(self) -> Settings:
        """The settings, with what is not configured taken from a running ``onecity dev``."""
        if self._settings is None:
            from bff.embedded import use_running_default

            configured = self.configured()
            self._settings, self.embedded = (
                (configured, False) if self._given is not None else use_running_default(configured)
            )
        return self._settings

    def database_url(self) -> str:
        url = self.settings.database.url
        if not url:
            raise _not_set("ONECITY_DATABASE_URL", self.settings)
        return url

    def master_key(self) -> bytes:
        if self.settings.master_key is None:
            raise _not_set("ONECITY_MASTER_KEY", self.settings, "32 random bytes, base64url")
        return self.settings.require_master_key()

    def redis(self) -> RedisTarget | None:
        url = self.settings.redis.url
        return RedisTarget(url=url, cluster=self.settings.redis.cluster) if url else None

    def section(self, kind: type[T]) -> T:
        settings = self.settings
        for name in settings.__struct_fields__:
            value = getattr(settings, name)
            if isinstance(value, kind):
                return value
        raise LookupError(f"no settings section of type {kind.__name__}")

    def city(self) -> str:
        return self.settings.city


if TYPE_CHECKING:

    def _is_a_shell(shell: _Shell) -> Shell:  # mypy checks _Shell against the protocol domains use
        return shell


def _not_set(variable: str, settings: Settings, what: str = "") -> SettingsError:
    from bff.embedded import find_running
    from bff.settings import SettingsError, data_path

    folder = data_path(settings)
    hint = f" ({what})" if what else ""
    if find_running(folder) is None:
        source = f"no `onecity dev` is running in {folder} to take it from (start ./dev, or set the variable)"
    else:
        source = f"the `onecity dev` running in {folder} uses a configured one (set the variable here too)"
    return SettingsError(f"{variable} is not set{hint}, and {source}")


class _OneCity(click.Group):
    """The root group: the shell's commands, plus the domains' loaded by import path."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *DOMAIN_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in DOMAIN_COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = DOMAIN_COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), DOMAIN_COMMANDS[cmd_name]
        return command


@click.group(cls=_OneCity, help="OneCity backend-for-frontend")
def onecity() -> None:
    """The root of every command; its context's ``obj`` is the shell (set by :func:`main`)."""


pass_shell = click.make_pass_decorator(_Shell)


@onecity.command(help="run everything on the embedded default (or the configured servers)")
@click.option("--port", type=int, default=None, help="BFF port (default 8000)")
@click.option("--data-dir", default=None, help="data folder (default .onecity)")
@click.option("--no-simulators", is_flag=True, help="use the configured department URLs as they are")
@pass_shell
def dev(shell: _Shell, port: int | None, data_dir: str | None, no_simulators: bool) -> int:
    from bff.embedded import require_extra

    require_extra("uvicorn", purpose="onecity dev")
    from bff.dev import run_dev

    # `dev` starts the embedded default itself, so it reads the environment alone.
    settings = shell.configured()
    server = msgspec.structs.replace(settings.server, port=port or settings.server.port)
    overrides: dict[str, object] = {"server": server}
    if "ONECITY_ENV" not in os.environ:
        overrides["env"] = "dev"
    if data_dir:
        overrides["data_dir"] = data_dir
    return run_dev(msgspec.structs.replace(settings, **overrides), simulators=not no_simulators)


@onecity.command(help="run the production server (one worker per core)")
@click.option("--workers", type=int, default=None)
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@pass_shell
def serve(shell: _Shell, workers: int | None, host: str | None, port: int | None) -> int:
    from bff.metrics import prepare_multiprocess_dir

    # Before anything imports prometheus_client: every worker then writes its samples to
    # this directory and /metrics sums them (one view of all workers).
    prepare_multiprocess_dir()
    from bff.serve import serve as run_server

    settings = shell.settings
    if shell.embedded:
        settings = _hand_embedded_default_to_workers(settings)
    return run_server(settings, workers=workers, host=host, port=port)


def _hand_embedded_default_to_workers(settings: Settings) -> Settings:
    """Put the embedded default into the environment the granian workers read theirs from."""
    import base64

    if settings.database.url:
        os.environ["ONECITY_DATABASE_URL"] = settings.database.url
    if settings.redis.url:
        os.environ["ONECITY_REDIS_URL"] = settings.redis.url
    if settings.master_key is not None:
        os.environ["ONECITY_MASTER_KEY"] = base64.urlsafe_b64encode(settings.master_key.reveal()).decode()
    if "ONECITY_ENV" not in os.environ:
        # The embedded default is the development system, as under `onecity dev`.
        os.environ["ONECITY_ENV"] = "dev"
        settings = msgspec.structs.replace(settings, env="dev")
    return settings


@onecity.group(help="peak mode: shed tier 2, limit tier 1 (every worker within a second)")
def peak() -> None:
    """Peak mode, a Redis key every worker reads twice a second."""


@peak.command("on", help="turn peak mode on")
@click.option("--for", "for_s", type=int, default=None, help="turn it off again after SECONDS")
@pass_shell
def peak_on(shell: _Shell, for_s: int | None) -> int:
    return _peak(shell, True, for_s)


@peak.command("off", help="turn peak mode off")
@pass_shell
def peak_off(shell: _Shell) -> int:
    return _peak(shell, False, None)


@peak.command("status", help="print whether peak mode is on (JSON)")
@pass_shell
def peak_status(shell: _Shell) -> int:
    return _peak(shell, None, None)


def _peak(shell: _Shell, on: bool | None, for_s: int | None) -> int:
    from bff.peak import peak_status, set_peak
    from core.redis import create_redis

    target = shell.redis()
    if target is None:
        raise _not_set("ONECITY_REDIS_URL", shell.settings)

    async def run() -> dict[str, object]:
        redis = create_redis(target.url, max_connections=2)
        try:
            if on is not None:
                await set_peak(redis, on, for_s=for_s)
            return await peak_status(redis)
        finally:
            await redis.aclose()

    click.echo(msgspec.json.encode(asyncio.run(run())).decode())
    return 0


@onecity.group(help="time partitions of audit_log, scan_log and checkins")
def partitions() -> None:
    """The log tables' time partitions."""


@partitions.command("maintain", help="make the current and next periods' partitions (idempotent)")
@pass_shell
def partitions_maintain(shell: _Shell) -> int:
    from core.db import create_pool
    from core.partitions import maintain

    async def run() -> list[str]:
        pool = await create_pool(shell.database_url(), min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await maintain(conn)
        finally:
            await pool.close()

    created = asyncio.run(run())
    click.echo(f"created {len(created)} partition(s)" + (": " + ", ".join(created) if created else ""))
    return 0


@partitions.command("status", help="list the partitions (and the rows in each DEFAULT partition)")
@pass_shell
def partitions_status(shell: _Shell) -> int:
    from core.db import create_pool
    from core.partitions import partitions as list_partitions

    async def run() -> None:
        pool = await create_pool(shell.database_url(), min_size=1, max_size=1)
        try:
            for part in await list_partitions(pool):
                # A catalog name, quoted; only the DEFAULT partitions are counted (they stay small).
                sql = f'SELECT count(*) FROM "{part.name}"'  # noqa: S608
                rows = await pool.fetchval(sql) if part.upper is None else None
                span = f"{part.lower:%Y-%m-%d} .. {part.upper:%Y-%m-%d}" if part.upper and part.lower else "DEFAULT"
                click.echo(f"{part.parent:10} {part.name:24} {span}" + (f"  rows={rows}" if rows is not None else ""))
        finally:
            await pool.close()

    asyncio.run(run())
    return 0


@onecity.command(help="apply pending database migrations")
@pass_shell
def migrate(shell: _Shell) -> int:
    from bff.storage import migrate as apply

    database = shell.settings.database
    url = database.migration_url
    if not url:
        raise _not_set("ONECITY_DATABASE_URL (or ONECITY_MIGRATE_DATABASE_URL)", shell.settings)
    applied = asyncio.run(apply(url, statement_cache_size=database.statement_cache_size))
    click.echo(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


@onecity.group(help="manage signing keys")
def keys() -> None:
    """Signing keys per purpose (token, code, service)."""


@keys.command("rotate", help="add a new signing key; the old one keeps verifying")
@click.option("--purpose", required=True, type=click.Choice(["token", "code", "service"]))
@click.option("--activate-in", type=int, default=0, help="seconds before the new key starts signing")
@pass_shell
def keys_rotate(shell: _Shell, purpose: str, activate_in: int) -> int:
    from bff.storage import rotate_key

    shell.database_url()
    shell.master_key()
    kid = asyncio.run(rotate_key(shell.settings, purpose, activate_in=timedelta(seconds=activate_in)))
    click.echo(f"new {purpose} key {kid}; the previous key keeps verifying until what it signed expires")
    return 0


@keys.command("ensure", help="create a key for every purpose that has none")
@pass_shell
def keys_ensure(shell: _Shell) -> int:
    from bff.storage import prepare

    shell.database_url()
    shell.master_key()
    created = asyncio.run(prepare(shell.settings))
    click.echo(f"created {len(created)} key(s)" + (": " + ", ".join(created) if created else ""))
    return 0


@onecity.command(help="run one department simulator")
@click.argument("name", type=click.Choice(list(DEPARTMENTS)))
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, default=None)
@click.option("--jwks-url", default="http://127.0.0.1:8000/.well-known/jwks.json")
@click.option("--dev-mode", is_flag=True, help="accept live- liveness tokens even in prod env")
@pass_shell
def simulate(shell: _Shell, name: str, host: str, port: int | None, jwks_url: str, dev_mode: bool) -> int:
    from bff.embedded import require_extra

    require_extra("uvicorn", purpose="onecity simulate")
    from services.simulators import DEFAULT_PORTS
    from services.simulators import serve as run_simulator

    settings = shell.settings
    run_simulator(
        name,
        host=host,
        port=port or DEFAULT_PORTS[name],
        jwks_url=jwks_url,
        dev_mode=settings.env != "prod" or dev_mode,
    )
    return 0


@onecity.command(help="show the SMS simulator's messages to a phone (dev login codes)")
@click.argument("phone", required=False)
@click.option("--push", metavar="DEVICE_TOKEN", help="the push simulator's notifications to a device instead")
@pass_shell
def outbox(shell: _Shell, phone: str | None, push: str | None) -> int:
    from bff.outbox import read_outbox, read_push_outbox, render

    if not push and not phone:
        click.echo("onecity outbox: give a PHONE or --push DEVICE_TOKEN", err=True)
        return 2
    shell.database_url()
    shell.master_key()
    if push:
        pushed = asyncio.run(read_push_outbox(shell.settings, push))
        click.echo(render(pushed) if pushed else "no messages")
        return 0
    assert phone
    messages = asyncio.run(read_outbox(shell.settings, phone))
    click.echo(render(messages) if messages else "no messages")
    return 0


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None) -> int:
    """Entry point of the ``onecity`` console script; returns the exit status.

    Args:
        argv: The arguments after the program name (default ``sys.argv[1:]``).
        settings: Use these instead of reading the environment (and the embedded default);
            for tests and other Python callers.
    """
    try:
        return invoke(onecity, argv, prog_name="onecity", obj=_Shell(settings))
    except Exception as exc:
        # Imported only now: `serve` must set up its metrics directory before these load.
        from bff.embedded import ExtraMissing
        from bff.resources import StartupError
        from bff.settings import SettingsError

        if not isinstance(exc, SettingsError | StartupError | ExtraMissing):
            raise
        click.echo(f"onecity: {exc}", err=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
