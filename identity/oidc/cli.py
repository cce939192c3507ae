"""``onecity clients add|list|rotate-secret|disable``: the client registry on the command line.

``bff.cli`` adds the subcommand with :func:`add_arguments` and runs :func:`run` with the
database URL, master key and Redis URL from the settings. Secrets are printed once, to
stdout, when created or rotated; they are not stored anywhere in clear.
"""

from __future__ import annotations

import argparse
import sys

from core.crypto import Vault
from core.db import create_pool
from core.redis import create_redis
from identity.oidc.admin import GRANT_TYPES, ClientAdmin, ClientAdminError, load_jwks
from identity.oidc.clients import AUTH_METHODS
from identity.revocation import RevocationSet

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``clients`` subcommands to ``parser``."""
    commands = parser.add_subparsers(dest="clients_command", required=True)
    add = commands.add_parser("add", help="register a client (prints its secret once)")
    add.add_argument("client_id")
    add.add_argument("--name", help="shown to citizens on the consent page (default: the id)")
    add.add_argument("--type", dest="client_type", choices=["confidential", "public"], default="confidential")
    add.add_argument("--auth-method", choices=list(AUTH_METHODS), default=None)
    add.add_argument("--redirect-uri", action="append", default=[], help="exact redirect URI (repeatable)")
    add.add_argument("--scope", default="openid profile", help='space-separated, e.g. "openid profile phone"')
    add.add_argument("--grant-type", action="append", choices=list(GRANT_TYPES), default=None, help="(repeatable)")
    add.add_argument("--jwks", help="file with the client's public JWKS (private_key_jwt)")
    add.add_argument("--sector", help="pairwise sector shared with other clients of one organisation")
    add.add_argument(
        "--require-par",
        action="store_true",
        help="accept authorization requests only through POST /oauth/par (FAPI 2.0)",
    )
    add.add_argument(
        "--dpop-bound",
        action="store_true",
        help="issue only DPoP-bound access tokens: token requests need a DPoP proof (FAPI 2.0)",
    )
    add.add_argument("--fapi", action="store_true", help="FAPI 2.0 profile: --require-par and --dpop-bound")
    commands.add_parser("list", help="list clients (never their secrets)")
    rotate = commands.add_parser("rotate-secret", help="issue a new secret (prints it once)")
    rotate.add_argument("client_id")
    rotate.add_argument("--grace", type=int, default=0, help="seconds the old secret keeps working (default 0)")
    disable = commands.add_parser("disable", help="disable a client and revoke everything it holds")
    disable.add_argument("client_id")


async def run(
    args: argparse.Namespace,
    *,
    database_url: str,
    master_key: bytes,
    redis_url: str | None,
    redis_cluster: bool = False,
) -> int:
    """Run one ``clients`` subcommand; return the exit code."""
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = create_redis(redis_url, cluster=redis_cluster) if redis_url else None
    try:
        revocations = RevocationSet.for_administration(redis, pool)
        admin = ClientAdmin(pool, Vault(master_key), revocations)
        try:
            return await _dispatch(args, admin)
        except ClientAdminError as exc:
            print(f"onecity clients: {exc}", file=sys.stderr)
            return 2
    finally:
        if redis is not None:
            await redis.aclose()
        await pool.close()


async def _dispatch(args: argparse.Namespace, admin: ClientAdmin) -> int:
    command = args.clients_command
    if command == "add":
        created = await admin.add(
            args.client_id,
            name=args.name,
            client_type=args.client_type,
            auth_method=args.auth_method,
            redirect_uris=args.redirect_uri,
            scopes=args.scope.split(),
            grant_types=args.grant_type,
            jwks=load_jwks(args.jwks) if args.jwks else None,
            sector_id=args.sector,
            require_par=args.require_par or args.fapi,
            dpop_bound=args.dpop_bound or args.fapi,
        )
        assert created is not None
        client = created.client
        fapi = [name for name, on in (("require_par", client.require_par), ("dpop_bound", client.dpop_bound)) if on]
        print(f"added {client.client_id} ({client.client_type}, {client.auth_method}{''.join(', ' + f for f in fapi)})")
        if created.secret:
            print(f"client_secret: {created.secret}")
            print("store it now: it is not shown again")
        return 0
    if command == "list":
        for client in await admin.list():
            state = "disabled" if client.disabled else "enabled"
            print(
                f"{client.client_id}\t{state}\t{client.client_type}\t{client.auth_method}\t"
                f"scopes={' '.join(sorted(client.scopes))}\tgrants={','.join(sorted(client.grant_types))}\t"
                f"redirect_uris={' '.join(client.redirect_uris) or '-'}\t"
                f"require_par={str(client.require_par).lower()}\tdpop_bound={str(client.dpop_bound).lower()}"
            )
        return 0
    if command == "rotate-secret":
        secret = await admin.rotate_secret(args.client_id, grace_s=args.grace)
        print(f"client_secret: {secret}")
        print("store it now: it is not shown again")
        return 0
    count = await admin.disable(args.client_id)
    print(f"disabled {args.client_id}; {count} grant(s) revoked")
    return 0
