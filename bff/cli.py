"""The ``onecity`` command line.

Subcommands: ``dev`` (everything, embedded default), ``serve`` (production server),
``migrate``, ``keys rotate|list``, ``simulate NAME`` (one department simulator).
Every command reads settings once, from the environment, at start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import msgspec

from services.departments.container import DEPARTMENTS

if TYPE_CHECKING:
    from bff.settings import Settings, SettingsError

__all__ = ["main"]


# The settings module imports prometheus_client, which must not be imported before
# `onecity serve` has set PROMETHEUS_MULTIPROC_DIR (bff.metrics): settings are imported late.
def _settings_error(message: str) -> SettingsError:
    from bff.settings import SettingsError

    return SettingsError(message)


def _cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from bff.dev import run_dev

    server = msgspec.structs.replace(settings.server, port=args.port or settings.server.port)
    overrides: dict[str, object] = {"server": server}
    if "ONECITY_ENV" not in os.environ:
        overrides["env"] = "dev"
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    return run_dev(msgspec.structs.replace(settings, **overrides), simulators=not args.no_simulators)


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from bff.serve import serve

    return serve(settings, workers=args.workers, host=args.host, port=args.port)


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from bff.storage import migrate

    url = settings.database.migration_url
    if not url:
        raise _settings_error("ONECITY_DATABASE_URL (or ONECITY_MIGRATE_DATABASE_URL) is not set")
    applied = asyncio.run(migrate(url, statement_cache_size=settings.database.statement_cache_size))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def _cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from bff.storage import prepare, rotate_key

    if not settings.database.url:
        raise _settings_error("ONECITY_DATABASE_URL is not set")
    if args.keys_command == "rotate":
        kid = asyncio.run(rotate_key(settings, args.purpose, activate_in=timedelta(seconds=args.activate_in)))
        print(f"new {args.purpose} key {kid}; the previous key keeps verifying until what it signed expires")
    else:
        created = asyncio.run(prepare(settings))
        print(f"created {len(created)} key(s)" + (": " + ", ".join(created) if created else ""))
    return 0


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from services.simulators import DEFAULT_PORTS, serve

    serve(
        args.name,
        host=args.host,
        port=args.port or DEFAULT_PORTS[args.name],
        jwks_url=args.jwks_url,
        dev_mode=settings.env != "prod" or args.dev_mode,
    )
    return 0


def _cmd_codes(args: argparse.Namespace, settings: Settings) -> int:
    from codes.cli import run

    if not settings.database.url:
        raise _settings_error("ONECITY_DATABASE_URL is not set")
    return run(
        args,
        database_url=settings.database.url,
        master_key=settings.require_master_key(),
        settings=settings.codes,
        issuer=settings.city,
    )


def _cmd_outbox(args: argparse.Namespace, settings: Settings) -> int:
    from bff.outbox import read_outbox, read_push_outbox, render

    if args.push:
        pushed = asyncio.run(read_push_outbox(settings, args.push))
        print(render(pushed) if pushed else "no messages")
        return 0
    if not args.phone:
        print("onecity outbox: give a PHONE or --push DEVICE_TOKEN", file=sys.stderr)
        return 2
    messages = asyncio.run(read_outbox(settings, args.phone))
    print(render(messages) if messages else "no messages")
    return 0


def _cmd_clients(args: argparse.Namespace, settings: Settings) -> int:
    from identity.oidc.cli import run

    if not settings.database.url:
        raise _settings_error("ONECITY_DATABASE_URL is not set")
    return asyncio.run(
        run(
            args,
            database_url=settings.database.url,
            master_key=settings.require_master_key(),
            redis_url=settings.redis.url,
            redis_cluster=settings.redis.cluster,
        )
    )


def _cmd_staff(args: argparse.Namespace, settings: Settings) -> int:
    from identity.staff.cli import run

    if not settings.database.url:
        raise _settings_error("ONECITY_DATABASE_URL is not set")
    return asyncio.run(
        run(
            args,
            database_url=settings.database.url,
            master_key=settings.require_master_key(),
            redis_url=settings.redis.url,
            redis_cluster=settings.redis.cluster,
            settings=settings.staff,
        )
    )


def _cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from core.audit_cli import run

    if not settings.database.url:
        raise _settings_error("ONECITY_DATABASE_URL is not set")
    return asyncio.run(run(args, database_url=settings.database.url, settings=settings.audit))


def _cmd_peak(args: argparse.Namespace, settings: Settings) -> int:
    from bff.peak import peak_status, set_peak
    from core.redis import create_redis

    if not settings.redis.url:
        raise _settings_error("ONECITY_REDIS_URL is not set")

    async def run() -> dict[str, object]:
        redis = create_redis(settings.redis.url or "", max_connections=2)
        try:
            if args.peak_command in ("on", "off"):
                await set_peak(redis, args.peak_command == "on", for_s=getattr(args, "for_s", None))
            return await peak_status(redis)
        finally:
            await redis.aclose()

    status = asyncio.run(run())
    print(msgspec.json.encode(status).decode())
    return 0


def _cmd_partitions(args: argparse.Namespace, settings: Settings) -> int:
    from core.db import create_pool
    from core.partitions import maintain, partitions

    if not settings.database.url:
        raise _settings_error("ONECITY_DATABASE_URL is not set")

    async def run() -> int:
        pool = await create_pool(settings.database.url or "", min_size=1, max_size=1)
        try:
            if args.partitions_command == "maintain":
                async with pool.acquire() as conn, conn.transaction():
                    created = await maintain(conn)
                print(f"created {len(created)} partition(s)" + (": " + ", ".join(created) if created else ""))
                return 0
            for part in await partitions(pool):
                # A catalog name, quoted; only the DEFAULT partitions are counted (they stay small).
                sql = f'SELECT count(*) FROM "{part.name}"'  # noqa: S608
                rows = await pool.fetchval(sql) if part.upper is None else None
                span = f"{part.lower:%Y-%m-%d} .. {part.upper:%Y-%m-%d}" if part.upper and part.lower else "DEFAULT"
                print(f"{part.parent:10} {part.name:24} {span}" + (f"  rows={rows}" if rows is not None else ""))
            return 0
        finally:
            await pool.close()

    return asyncio.run(run())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onecity", description="OneCity backend-for-frontend")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run everything on the embedded default (or the configured servers)")
    dev.add_argument("--port", type=int, default=None, help="BFF port (default 8000)")
    dev.add_argument("--data-dir", default=None, help="data folder (default .onecity)")
    dev.add_argument("--no-simulators", action="store_true", help="use the configured department URLs as they are")
    dev.set_defaults(handler=_cmd_dev)

    serve = commands.add_parser("serve", help="run the production server (one worker per core)")
    serve.add_argument("--workers", type=int, default=None)
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(handler=_cmd_serve)

    peak = commands.add_parser("peak", help="peak mode: shed tier 2, limit tier 1 (every worker within a second)")
    peak_commands = peak.add_subparsers(dest="peak_command", required=True)
    peak_on = peak_commands.add_parser("on", help="turn peak mode on")
    peak_on.add_argument("--for", dest="for_s", type=int, default=None, help="turn it off again after SECONDS")
    peak_commands.add_parser("off", help="turn peak mode off")
    peak_commands.add_parser("status", help="print whether peak mode is on (JSON)")
    peak.set_defaults(handler=_cmd_peak)

    parts = commands.add_parser("partitions", help="time partitions of audit_log, scan_log and checkins")
    part_commands = parts.add_subparsers(dest="partitions_command", required=True)
    part_commands.add_parser("maintain", help="make the current and next periods' partitions (idempotent)")
    part_commands.add_parser("status", help="list the partitions (and the rows in each DEFAULT partition)")
    parts.set_defaults(handler=_cmd_partitions)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(handler=_cmd_migrate)

    keys = commands.add_parser("keys", help="manage signing keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = key_commands.add_parser("rotate", help="add a new signing key; the old one keeps verifying")
    rotate.add_argument("--purpose", required=True, choices=["token", "code", "service"])
    rotate.add_argument("--activate-in", type=int, default=0, help="seconds before the new key starts signing")
    key_commands.add_parser("ensure", help="create a key for every purpose that has none")
    keys.set_defaults(handler=_cmd_keys)

    simulate = commands.add_parser("simulate", help="run one department simulator")
    simulate.add_argument(
        "name",
        choices=list(DEPARTMENTS),
    )
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=None)
    simulate.add_argument("--jwks-url", default="http://127.0.0.1:8000/.well-known/jwks.json")
    simulate.add_argument("--dev-mode", action="store_true", help="accept live- liveness tokens even in prod env")
    simulate.set_defaults(handler=_cmd_simulate)

    # Listed for --help only: main() hands `onecity bench ...` to bench.cli.main before parsing.
    commands.add_parser("bench", help="load-test the system with wrk (python -m bench --help)")

    # Listed for --help only: main() hands `onecity verify ...` to codes.verify_cli.main.
    commands.add_parser("verify", help="verify a scanned code offline against the code keys (JWKS file or URL)")
    from codes.cli import add_commands as add_codes_commands

    add_codes_commands(commands).set_defaults(handler=_cmd_codes)

    outbox = commands.add_parser("outbox", help="show the SMS simulator's messages to a phone (dev login codes)")
    outbox.add_argument("phone", nargs="?")
    outbox.add_argument("--push", metavar="DEVICE_TOKEN", help="the push simulator's notifications to a device instead")
    outbox.set_defaults(handler=_cmd_outbox)

    from identity.oidc.cli import add_arguments as add_client_arguments
    from identity.staff.cli import add_arguments as add_staff_arguments

    clients = commands.add_parser("clients", help="manage OpenID Connect clients (partners)")
    add_client_arguments(clients)
    clients.set_defaults(handler=_cmd_clients)
    staff = commands.add_parser("staff", help="manage staff accounts")
    add_staff_arguments(staff)
    staff.set_defaults(handler=_cmd_staff)

    from core.audit_cli import add_arguments as add_audit_arguments

    audit = commands.add_parser("audit", help="verify the audit log's hash chains, apply its retention")
    add_audit_arguments(audit)
    audit.set_defaults(handler=_cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``onecity`` console script."""
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["verify"]:
        # Offline verification needs no settings, database or network (beyond a keys URL).
        from codes.verify_cli import main as verify_main

        return verify_main(given[1:])
    if given[:1] == ["bench"]:
        # The benchmark has its own options (argparse cannot pass `--quick` etc. through a
        # subparser) and reads its own environment, so it takes over before settings load.
        from bench.cli import main as bench_main

        return bench_main(given[1:])
    if given[:1] == ["serve"]:
        # Before anything imports prometheus_client: every worker then writes its samples to
        # this directory and /metrics sums them (one view of all workers).
        from bff.metrics import prepare_multiprocess_dir

        prepare_multiprocess_dir()
    from bff.observability import configure_logging
    from bff.resources import StartupError
    from bff.settings import SettingsError, load_settings
    from core.db import set_statement_cache_size

    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        # Every pool any command opens (admin commands included) honours the setting.
        set_statement_cache_size(settings.database.statement_cache_size)
        code: int = args.handler(args, settings)
        return code
    except (SettingsError, StartupError) as exc:
        print(f"onecity: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
