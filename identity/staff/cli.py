"""``onecity staff add|list|disable|roles|recover``: staff accounts on the command line.

The password is read from the terminal (twice, not echoed) or, with ``--password-stdin``,
from the first line of standard input; it never appears in arguments, where ``ps`` and
shell history would show it.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from core.crypto import Vault
from core.db import create_pool
from core.redis import create_redis
from identity.revocation import RevocationSet
from identity.staff.admin import StaffAdmin, StaffAdminError
from identity.staff.passwords import Passwords
from identity.staff.permissions import Role
from identity.staff.settings import StaffSettings

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``staff`` subcommands to ``parser``."""
    commands = parser.add_subparsers(dest="staff_command", required=True)
    add = commands.add_parser("add", help="create a staff account")
    add.add_argument("username")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--phone", required=True, help="mobile number that receives the sign-in codes")
    add.add_argument("--role", action="append", required=True, choices=[r.value for r in Role], help="(repeatable)")
    add.add_argument("--region", required=True, help="division code: 4 city, 6 district, 9 street, 12 community")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    commands.add_parser("list", help="list staff accounts")
    disable = commands.add_parser("disable", help="disable a staff account (its tokens stop working)")
    disable.add_argument("username")
    roles = commands.add_parser("roles", help="replace a staff member's roles (separation of duties is checked)")
    roles.add_argument("username")
    roles.add_argument("--role", action="append", required=True, choices=[r.value for r in Role], help="(repeatable)")
    recover = commands.add_parser(
        "recover", help="revoke a staff member's security keys; their next sign-in by SMS may only enrol a new one"
    )
    recover.add_argument("username")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise StaffAdminError("the passwords differ")
    return first


async def run(
    args: argparse.Namespace,
    *,
    database_url: str,
    master_key: bytes,
    redis_url: str | None,
    settings: StaffSettings | None = None,
    redis_cluster: bool = False,
) -> int:
    """Run one ``staff`` subcommand; return the exit code."""
    staff_settings = settings or StaffSettings()
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = create_redis(redis_url, cluster=redis_cluster) if redis_url else None
    try:
        revocations = RevocationSet.for_administration(redis, pool)
        admin = StaffAdmin(
            pool,
            Vault(master_key),
            passwords=Passwords.from_settings(staff_settings),
            revocations=revocations,
            min_password_length=staff_settings.min_password_length,
        )
        try:
            return await _dispatch(args, admin)
        except StaffAdminError as exc:
            print(f"onecity staff: {exc}", file=sys.stderr)
            return 2
    finally:
        if redis is not None:
            await redis.aclose()
        await pool.close()


async def _dispatch(args: argparse.Namespace, admin: StaffAdmin) -> int:
    if args.staff_command == "add":
        profile = await admin.add(
            args.username,
            name=args.name,
            phone=args.phone,
            password=_read_password(args.password_stdin),
            roles=args.role,
            region=args.region,
        )
        print(f"added {profile.username} ({', '.join(profile.roles)}; {profile.region_level} {profile.region})")
        return 0
    if args.staff_command == "list":
        for profile, disabled in await admin.list():
            state = "disabled" if disabled else "enabled"
            print(f"{profile.username}\t{state}\t{profile.name}\t{','.join(profile.roles)}\t{profile.region}")
        return 0
    if args.staff_command == "roles":
        profile = await admin.set_roles(args.username, args.role)
        print(f"{profile.username}: {', '.join(profile.roles)}")
        return 0
    if args.staff_command == "recover":
        result = await admin.recover(args.username)
        print(f"recovery for {args.username}: {result.revoked} security key(s) revoked")
        return 0
    await admin.disable(args.username)
    print(f"disabled {args.username}")
    return 0
