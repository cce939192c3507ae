"""``onecity codes ...``: administration of the codes domain from the command line.

Subcommands::

    onecity codes rules publish FILE     publish a health rule document (JSON) as a new version
    onecity codes rules list             list the published versions
    onecity codes rules show [VERSION]   print a version's document (default: the active one)
    onecity codes venue add --name N --address A --region R
                                         register a venue and print its venue code
    onecity codes venue regions CLIENT_ID [REGION ...] [--clear]
                                         show or replace where a partner may register venues
    onecity codes device flag DEVICE_ID  flag a ride-code device after reviewing a replay
    onecity codes retention              delete scans, check-ins and ride records past retention

The commands talk to PostgreSQL directly (``ONECITY_DATABASE_URL``, ``ONECITY_MASTER_KEY`` for
the code key); every change is audited like its endpoint counterpart, with actor ``cli:<user>``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from codes.jobs import RetentionJob
from codes.repository import CodesRepository
from codes.rulebook import RuleBook
from codes.schemas import RegionCode, VenueCreate
from codes.settings import CodesSettings
from codes.venues import register_venue
from core.audit import AuditEvent, write_audit
from core.crypto import Vault
from core.db import create_pool
from core.errors import OneCityError
from core.keys import KeyStore

__all__ = ["add_commands", "run"]


def add_commands(commands: Any) -> argparse.ArgumentParser:
    """Add the ``codes`` subcommand tree to the ``onecity`` parser's subparsers."""
    codes: argparse.ArgumentParser = commands.add_parser(
        "codes", help="codes administration: health rules, venues, retention"
    )
    sub = codes.add_subparsers(dest="codes_command", required=True)

    rules = sub.add_parser("rules", help="health status rules")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    publish = rules_sub.add_parser("publish", help="publish a rule document (JSON file, or - for stdin)")
    publish.add_argument("file")
    rules_sub.add_parser("list", help="list published versions")
    show = rules_sub.add_parser("show", help="print a version's document")
    show.add_argument("version", type=int, nargs="?", default=None)

    venue = sub.add_parser("venue", help="venues")
    venue_sub = venue.add_subparsers(dest="venue_command", required=True)
    add = venue_sub.add_parser("add", help="register a venue and print its venue code")
    add.add_argument("--name", required=True)
    add.add_argument("--address", required=True)
    add.add_argument("--region", required=True, help="division code of the venue (6, 9 or 12 digits)")
    regions = venue_sub.add_parser(
        "regions", help="show, or replace, the regions where a partner client may register venues"
    )
    regions.add_argument("client_id")
    regions.add_argument("regions", nargs="*", help="division codes (6, 9 or 12 digits); replaces the list")
    regions.add_argument("--clear", action="store_true", help="remove every region: no more venue registrations")

    device = sub.add_parser("device", help="offline ride-code devices")
    device_sub = device.add_subparsers(dest="device_command", required=True)
    flag = device_sub.add_parser("flag", help="flag a device after reviewing a replay: no more certificates")
    flag.add_argument("device_id")

    sub.add_parser("retention", help="delete scan log rows, check-ins and ride records past retention")
    return codes


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a minimal container
        return "cli:unknown"


def _print(value: Any) -> None:
    print(json.dumps(msgspec.to_builtins(value), ensure_ascii=False, indent=2))


async def _run(
    args: argparse.Namespace, *, database_url: str, master_key: bytes, settings: CodesSettings, issuer: str
) -> int:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        repository = CodesRepository(pool)
        if args.codes_command == "rules":
            book = RuleBook(repository, refresh_s=0.001)
            if args.rules_command == "publish":
                _print(await book.publish(args.document, published_by=_actor()))
            elif args.rules_command == "list":
                _print(await book.versions())
            else:
                version = args.version if args.version is not None else (await book.active()).version
                _print(await book.get(version))
        elif args.codes_command == "device":
            await _flag_device(repository, args.device_id)
        elif args.codes_command == "venue" and args.venue_command == "regions":
            await _venue_regions(repository, args)
        elif args.codes_command == "venue":
            ring = await KeyStore(pool, Vault(master_key)).load()
            request = msgspec.convert({"name": args.name, "address": args.address, "region": args.region}, VenueCreate)
            _print(
                await register_venue(
                    repository,
                    ring.signer("code"),
                    issuer=issuer,
                    request=request,
                    owner_type="system",
                    owner_id=_actor(),
                )
            )
        else:
            deleted = await RetentionJob(repository, settings).run_once()
            print("another process is running the retention job" if deleted is None else json.dumps(deleted))
        return 0
    finally:
        await pool.close()


async def _flag_device(repository: CodesRepository, device_id: str) -> None:
    if await repository.get_device(device_id) is None:
        raise LookupError(f"no registered device {device_id!r}")
    flagged = await repository.flag_devices([device_id])
    await write_audit(
        repository.pool,
        [
            AuditEvent(
                action="codes.device.flag",
                outcome="success",
                actor_type="system",
                actor_id=_actor(),
                details={"device_id": device_id, "already_flagged": not flagged},
            )
        ],
    )
    print(f"flagged {device_id}" if flagged else f"{device_id} was already flagged")


async def _venue_regions(repository: CodesRepository, args: argparse.Namespace) -> None:
    if args.regions or args.clear:
        wanted = msgspec.convert(sorted(set(args.regions)), list[RegionCode])
        try:
            async with repository.pool.acquire() as conn, conn.transaction():
                await CodesRepository.set_partner_venue_regions(conn, args.client_id, [] if args.clear else wanted)
                await write_audit(
                    conn,
                    [
                        AuditEvent(
                            action="codes.venue_regions.set",
                            outcome="success",
                            actor_type="system",
                            actor_id=_actor(),
                            details={"client_id": args.client_id, "regions": [] if args.clear else wanted},
                        )
                    ],
                )
        except asyncpg.ForeignKeyViolationError:
            raise LookupError(f"no registered client {args.client_id!r}") from None
    _print({"client_id": args.client_id, "venue_regions": await repository.partner_venue_regions(args.client_id)})


def run(args: argparse.Namespace, *, database_url: str, master_key: bytes, settings: CodesSettings, issuer: str) -> int:
    """Run one ``onecity codes`` command; returns the exit status (0 ok, 1 refused)."""
    try:
        if getattr(args, "rules_command", None) == "publish":
            # Read before the event loop starts: file I/O has no business blocking it.
            args.document = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        return asyncio.run(
            _run(args, database_url=database_url, master_key=master_key, settings=settings, issuer=issuer)
        )
    except (OneCityError, msgspec.ValidationError, OSError, LookupError) as exc:
        detail = exc.detail if isinstance(exc, OneCityError) else str(exc)
        print(f"onecity codes: {detail}", file=sys.stderr)
        return 1
