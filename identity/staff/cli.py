"""``onecity staff add|list|disable|roles|recover``: staff accounts on the command line.

The password is read from the terminal (twice, not echoed) or, with ``--password-stdin``,
from the first line of standard input; it never appears in arguments, where ``ps`` and
shell history would show it.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import click

from core.cli import CommandFailed, Shell
from core.crypto import Vault
from core.db import create_pool
from core.redis import create_redis
from identity.revocation import RevocationSet
from identity.staff.admin import StaffAdmin, StaffAdminError
from identity.staff.passwords import Passwords
from identity.staff.permissions import Role
from identity.staff.settings import StaffSettings

__all__ = ["staff"]

_ROLES = click.Choice([r.value for r in Role])


@click.group(help="manage staff accounts")
def staff() -> None:
    """The ``staff`` commands."""


@asynccontextmanager
async def _admin(shell: Shell) -> AsyncIterator[StaffAdmin]:
    database_url, master_key, target = shell.database_url(), shell.master_key(), shell.redis()
    settings = shell.section(StaffSettings)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = create_redis(target.url, cluster=target.cluster) if target is not None else None
    try:
        revocations = RevocationSet.for_administration(redis, pool) if redis is not None else None
        yield StaffAdmin(
            pool,
            Vault(master_key),
            passwords=Passwords.from_settings(settings),
            revocations=revocations,
            min_password_length=settings.min_password_length,
        )
    finally:
        if redis is not None:
            await redis.aclose()
        await pool.close()


def _run(work: Coroutine[Any, Any, None]) -> int:
    try:
        asyncio.run(work)
    except StaffAdminError as exc:
        raise CommandFailed("staff", str(exc)) from None
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise CommandFailed("staff", "the passwords differ")
    return first


@staff.command(help="create a staff account")
@click.argument("username")
@click.option("--name", required=True, help="display name")
@click.option("--phone", required=True, help="mobile number that receives the sign-in codes")
@click.option("--role", type=_ROLES, multiple=True, required=True, help="(repeatable)")
@click.option("--region", required=True, help="division code: 4 city, 6 district, 9 street, 12 community")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.pass_obj
def add(
    shell: Shell, username: str, name: str, phone: str, role: tuple[str, ...], region: str, password_stdin: bool
) -> int:
    # A configuration error is reported before anyone types a password.
    shell.database_url()
    shell.master_key()
    password = _read_password(password_stdin)

    async def work() -> None:
        async with _admin(shell) as admin:
            profile = await admin.add(username, name=name, phone=phone, password=password, roles=role, region=region)
        click.echo(f"added {profile.username} ({', '.join(profile.roles)}; {profile.region_level} {profile.region})")

    return _run(work())


@staff.command("list", help="list staff accounts")
@click.pass_obj
def list_(shell: Shell) -> int:
    async def work() -> None:
        async with _admin(shell) as admin:
            listed = await admin.list()
        for profile, disabled in listed:
            state = "disabled" if disabled else "enabled"
            click.echo(f"{profile.username}\t{state}\t{profile.name}\t{','.join(profile.roles)}\t{profile.region}")

    return _run(work())


@staff.command(help="disable a staff account (its tokens stop working)")
@click.argument("username")
@click.pass_obj
def disable(shell: Shell, username: str) -> int:
    async def work() -> None:
        async with _admin(shell) as admin:
            await admin.disable(username)
        click.echo(f"disabled {username}")

    return _run(work())


@staff.command(help="replace a staff member's roles (separation of duties is checked)")
@click.argument("username")
@click.option("--role", type=_ROLES, multiple=True, required=True, help="(repeatable)")
@click.pass_obj
def roles(shell: Shell, username: str, role: tuple[str, ...]) -> int:
    async def work() -> None:
        async with _admin(shell) as admin:
            profile = await admin.set_roles(username, role)
        click.echo(f"{profile.username}: {', '.join(profile.roles)}")

    return _run(work())


@staff.command(help="revoke a staff member's security keys; their next sign-in by SMS may only enrol a new one")
@click.argument("username")
@click.pass_obj
def recover(shell: Shell, username: str) -> int:
    async def work() -> None:
        async with _admin(shell) as admin:
            result = await admin.recover(username)
        click.echo(f"recovery for {username}: {result.revoked} security key(s) revoked")

    return _run(work())
