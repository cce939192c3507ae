"""``onecity clients add|list|rotate-secret|disable``: the client registry on the command line.

``bff.cli`` loads :data:`clients` when the command runs and hands it the shell
(:class:`core.cli.Shell`) with the database, master key and Redis. Secrets are printed once,
to stdout, when created or rotated; they are not stored anywhere in clear.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import click

from core.cli import CommandFailed, Shell
from core.crypto import Vault
from core.db import create_pool
from core.redis import create_redis
from identity.oidc.admin import GRANT_TYPES, ClientAdmin, ClientAdminError, load_jwks
from identity.oidc.clients import AUTH_METHODS
from identity.revocation import RevocationSet

__all__ = ["clients"]


@click.group(help="manage OpenID Connect clients (partners)")
def clients() -> None:
    """The ``clients`` commands."""


@asynccontextmanager
async def _admin(shell: Shell) -> AsyncIterator[ClientAdmin]:
    database_url, master_key, target = shell.database_url(), shell.master_key(), shell.redis()
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = create_redis(target.url, cluster=target.cluster) if target is not None else None
    try:
        revocations = RevocationSet.for_administration(redis, pool) if redis is not None else None
        yield ClientAdmin(pool, Vault(master_key), revocations)
    finally:
        if redis is not None:
            await redis.aclose()
        await pool.close()


def _run(work: Coroutine[Any, Any, None]) -> int:
    try:
        asyncio.run(work)
    except ClientAdminError as exc:
        raise CommandFailed("clients", str(exc)) from None
    return 0


@clients.command(help="register a client (prints its secret once)")
@click.argument("client_id")
@click.option("--name", help="shown to citizens on the consent page (default: the id)")
@click.option("--type", "client_type", type=click.Choice(["confidential", "public"]), default="confidential")
@click.option("--auth-method", type=click.Choice(list(AUTH_METHODS)), default=None)
@click.option("--redirect-uri", multiple=True, help="exact redirect URI (repeatable)")
@click.option("--scope", default="openid profile", help='space-separated, e.g. "openid profile phone"')
@click.option("--grant-type", type=click.Choice(list(GRANT_TYPES)), multiple=True, help="(repeatable)")
@click.option("--jwks", help="file with the client's public JWKS (private_key_jwt)")
@click.option("--sector", help="pairwise sector shared with other clients of one organisation")
@click.option(
    "--require-par", is_flag=True, help="accept authorization requests only through POST /oauth/par (FAPI 2.0)"
)
@click.option(
    "--dpop-bound",
    is_flag=True,
    help="issue only DPoP-bound access tokens: token requests need a DPoP proof (FAPI 2.0)",
)
@click.option("--fapi", is_flag=True, help="FAPI 2.0 profile: --require-par and --dpop-bound")
@click.pass_obj
def add(
    shell: Shell,
    client_id: str,
    name: str | None,
    client_type: str,
    auth_method: str | None,
    redirect_uri: tuple[str, ...],
    scope: str,
    grant_type: tuple[str, ...],
    jwks: str | None,
    sector: str | None,
    require_par: bool,
    dpop_bound: bool,
    fapi: bool,
) -> int:
    async def work() -> None:
        async with _admin(shell) as admin:
            created = await admin.add(
                client_id,
                name=name,
                client_type=client_type,
                auth_method=auth_method,
                redirect_uris=list(redirect_uri),
                scopes=scope.split(),
                grant_types=list(grant_type) or None,
                jwks=load_jwks(jwks) if jwks else None,
                sector_id=sector,
                require_par=require_par or fapi,
                dpop_bound=dpop_bound or fapi,
            )
        assert created is not None
        client = created.client
        profile = [f for f, on in (("require_par", client.require_par), ("dpop_bound", client.dpop_bound)) if on]
        click.echo(
            f"added {client.client_id} ({client.client_type}, {client.auth_method}{''.join(', ' + f for f in profile)})"
        )
        if created.secret:
            click.echo(f"client_secret: {created.secret}")
            click.echo("store it now: it is not shown again")

    return _run(work())


@clients.command("list", help="list clients (never their secrets)")
@click.pass_obj
def list_(shell: Shell) -> int:
    async def work() -> None:
        async with _admin(shell) as admin:
            listed = await admin.list()
        for client in listed:
            state = "disabled" if client.disabled else "enabled"
            click.echo(
                f"{client.client_id}\t{state}\t{client.client_type}\t{client.auth_method}\t"
                f"scopes={' '.join(sorted(client.scopes))}\tgrants={','.join(sorted(client.grant_types))}\t"
                f"redirect_uris={' '.join(client.redirect_uris) or '-'}\t"
                f"require_par={str(client.require_par).lower()}\tdpop_bound={str(client.dpop_bound).lower()}"
            )

    return _run(work())


@clients.command("rotate-secret", help="issue a new secret (prints it once)")
@click.argument("client_id")
@click.option("--grace", type=int, default=0, help="seconds the old secret keeps working (default 0)")
@click.pass_obj
def rotate_secret(shell: Shell, client_id: str, grace: int) -> int:
    async def work() -> None:
        async with _admin(shell) as admin:
            secret = await admin.rotate_secret(client_id, grace_s=grace)
        click.echo(f"client_secret: {secret}")
        click.echo("store it now: it is not shown again")

    return _run(work())


@clients.command(help="disable a client and revoke everything it holds")
@click.argument("client_id")
@click.pass_obj
def disable(shell: Shell, client_id: str) -> int:
    async def work() -> None:
        async with _admin(shell) as admin:
            count = await admin.disable(client_id)
        click.echo(f"disabled {client_id}; {count} grant(s) revoked")

    return _run(work())
