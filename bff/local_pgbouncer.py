"""A throwaway PgBouncer in transaction mode: its binary and its configuration.

What the benchmark's ``--pgbouncer`` puts between the BFF and PostgreSQL and what the
topology tests start (tests/support/pgbouncer.py runs the process for them). It lives here,
next to :mod:`bff.local_cluster`, so that both use one configuration without the benchmark
importing the test suite. The binary is Debian's ``pgbouncer`` package.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["pgbouncer_binary", "write_pgbouncer_config"]


def pgbouncer_binary() -> str | None:
    """The ``pgbouncer`` executable, or ``None`` (``apt-get install -y pgbouncer``)."""
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
    )


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def write_pgbouncer_config(
    folder: Path, *, port: int, server_url: str, pool_size: int = 10, query_wait_timeout_s: int = 5
) -> Path:
    """Write ``pgbouncer.ini`` (and its users file) into ``folder``; the path of the ini.

    Every database name is passed on to the server of ``server_url`` (host and port), as its
    user, with ``trust`` authentication (the local test and benchmark servers accept
    ``postgres`` without a password). Log and pid file go to ``folder`` too.

    Args:
        folder: An empty folder of its own; as root it is handed to the account PgBouncer
            drops to (it refuses to run as root).
        port: Where PgBouncer listens (127.0.0.1).
        server_url: The PostgreSQL server behind it.
        pool_size: Server connections per database and user.
        query_wait_timeout_s: How long a query waits for a server connection before the
            client gets an error.
    """
    parts = urlsplit(server_url)
    user = parts.username or "postgres"
    (folder / "users.txt").write_text(f'"{user}" ""\n')
    config = folder / "pgbouncer.ini"
    as_user = ""
    if os.geteuid() == 0:
        account = "postgres" if _has_user("postgres") else "nobody"
        as_user = f"user = {account}\n"
        shutil.chown(folder, user=account)
        for path in folder.iterdir():
            shutil.chown(path, user=account)
    config.write_text(
        "[databases]\n"
        f"* = host={parts.hostname or '127.0.0.1'} port={parts.port or 5432}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        "max_client_conn = 500\n"
        f"query_wait_timeout = {query_wait_timeout_s}\n"
        "server_connect_timeout = 2\n"
        "server_login_retry = 1\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
        f"pidfile = {folder / 'pgbouncer.pid'}\n"
        "admin_users = \n" + as_user
    )
    if os.geteuid() == 0:
        shutil.chown(config, user=as_user.split("=")[1].strip())
    return config
