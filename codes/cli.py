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
the code key, or a running ``onecity dev``'s embedded default); every change is audited like
its endpoint counterpart, with actor ``cli:<user>``.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click
import msgspec

from codes.jobs import RetentionJob
from codes.repository import CodesRepository
from codes.rule_versions import RuleBook
from codes.schemas import RegionCode, VenueCreate
from codes.settings import CodesSettings
from codes.venues import register_venue
from core.audit import AuditEvent, write_audit
from core.cli import CommandFailed, Shell
from core.crypto import Vault
from core.db import Pool, create_pool
from core.errors import OneCityError
from core.keys import KeyStore

__all__ = ["codes"]


@click.group(help="codes administration: health rules, venues, retention")
def codes() -> None:
    """The ``codes`` commands."""


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a minimal container
        return "cli:unknown"


def _print(value: Any) -> None:
    click.echo(json.dumps(msgspec.to_builtins(value), ensure_ascii=False, indent=2))


def _run(work: Coroutine[Any, Any, None]) -> int:
    """Run one command's work; a refusal exits 1 with ``onecity codes: …``."""
    try:
        asyncio.run(work)
    except (OneCityError, msgspec.ValidationError, OSError, LookupError) as exc:
        detail = exc.detail if isinstance(exc, OneCityError) else str(exc)
        raise CommandFailed("codes", detail, exit_code=1) from None
    return 0


async def _pool(shell: Shell) -> Pool:
    return await create_pool(shell.database_url(), min_size=1, max_size=2)


async def _repository(shell: Shell) -> CodesRepository:
    return CodesRepository(await _pool(shell))


@codes.group(help="health status rules")
def rules() -> None:
    """Versions of the health rule document."""


@rules.command(help="publish a rule document (JSON file, or - for stdin)")
@click.argument("file")
@click.pass_obj
def publish(shell: Shell, file: str) -> int:
    shell.database_url()  # a configuration error first, as for every other command
    try:
        # Read before the event loop starts: file I/O has no business blocking it.
        document = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise CommandFailed("codes", str(exc), exit_code=1) from None

    async def work() -> None:
        repository = await _repository(shell)
        try:
            _print(await RuleBook(repository, refresh_s=0.001).publish(document, published_by=_actor()))
        finally:
            await repository.close()

    return _run(work())


@rules.command("list", help="list published versions")
@click.pass_obj
def list_(shell: Shell) -> int:
    async def work() -> None:
        repository = await _repository(shell)
        try:
            _print(await RuleBook(repository, refresh_s=0.001).versions())
        finally:
            await repository.close()

    return _run(work())


@rules.command(help="print a version's document")
@click.argument("version", type=int, required=False)
@click.pass_obj
def show(shell: Shell, version: int | None) -> int:
    async def work() -> None:
        repository = await _repository(shell)
        try:
            book = RuleBook(repository, refresh_s=0.001)
            _print(await book.get(version if version is not None else (await book.active()).version))
        finally:
            await repository.close()

    return _run(work())


@codes.group(help="venues")
def venue() -> None:
    """Venues and where partners may register them."""


@venue.command(help="register a venue and print its venue code")
@click.option("--name", required=True)
@click.option("--address", required=True)
@click.option("--region", required=True, help="division code of the venue (6, 9 or 12 digits)")
@click.pass_obj
def add(shell: Shell, name: str, address: str, region: str) -> int:
    master_key, issuer = shell.master_key(), shell.city()

    async def work() -> None:
        pool = await _pool(shell)
        repository = CodesRepository(pool)
        try:
            ring = await KeyStore(pool, Vault(master_key)).load()
            request = msgspec.convert({"name": name, "address": address, "region": region}, VenueCreate)
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
        finally:
            await repository.close()

    return _run(work())


@venue.command(help="show, or replace, the regions where a partner client may register venues")
@click.argument("client_id")
@click.argument("regions", nargs=-1)
@click.option("--clear", is_flag=True, help="remove every region: no more venue registrations")
@click.pass_obj
def regions(shell: Shell, client_id: str, regions: tuple[str, ...], clear: bool) -> int:
    async def work() -> None:
        repository = await _repository(shell)
        try:
            await _venue_regions(repository, client_id, regions, clear=clear)
        finally:
            await repository.close()

    return _run(work())


async def _venue_regions(repository: CodesRepository, client_id: str, given: tuple[str, ...], *, clear: bool) -> None:
    if given or clear:
        wanted = msgspec.convert(sorted(set(given)), list[RegionCode])
        async with repository.transaction() as tx:
            await repository.set_partner_venue_regions(tx, client_id, [] if clear else wanted)
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="codes.venue_regions.set",
                        outcome="success",
                        actor_type="system",
                        actor_id=_actor(),
                        details={"client_id": client_id, "regions": [] if clear else wanted},
                    )
                ],
            )
    _print({"client_id": client_id, "venue_regions": await repository.partner_venue_regions(client_id)})


@codes.group(help="offline ride-code devices")
def device() -> None:
    """Devices that hold offline ride-code certificates."""


@device.command(help="flag a device after reviewing a replay: no more certificates")
@click.argument("device_id")
@click.pass_obj
def flag(shell: Shell, device_id: str) -> int:
    async def work() -> None:
        repository = await _repository(shell)
        try:
            await _flag_device(repository, device_id)
        finally:
            await repository.close()

    return _run(work())


async def _flag_device(repository: CodesRepository, device_id: str) -> None:
    if await repository.get_device(device_id) is None:
        raise LookupError(f"no registered device {device_id!r}")
    flagged = await repository.flag_devices([device_id])
    await repository.audit(
        [
            AuditEvent(
                action="codes.device.flag",
                outcome="success",
                actor_type="system",
                actor_id=_actor(),
                details={"device_id": device_id, "already_flagged": not flagged},
            )
        ]
    )
    click.echo(f"flagged {device_id}" if flagged else f"{device_id} was already flagged")


@codes.command(help="delete scan log rows, check-ins and ride records past retention")
@click.pass_obj
def retention(shell: Shell) -> int:
    settings = shell.section(CodesSettings)

    async def work() -> None:
        repository = await _repository(shell)
        try:
            deleted = await RetentionJob(repository, settings).run_once()
        finally:
            await repository.close()
        click.echo("another process is running the retention job" if deleted is None else json.dumps(deleted))

    return _run(work())
