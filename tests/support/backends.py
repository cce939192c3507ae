"""Real PostgreSQL and Redis for the test suite.

With ``ONECITY_TEST_DATABASE_URL`` and ``ONECITY_TEST_REDIS_URL`` set (CI: the servers on
127.0.0.1), those servers are used; otherwise the embedded ones start in a temporary folder,
exactly as ``onecity dev`` would. Each run works in databases of its own, named
``onecity_test_<random>``, dropped at the end.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import asyncpg

__all__ = ["DatabaseFactory"]


@dataclass
class DatabaseFactory:
    """Creates empty databases on one server and drops them all at the end of the run."""

    admin_url: str
    created: list[str] = field(default_factory=list)

    def _url_for(self, name: str) -> str:
        return urlsplit(self.admin_url)._replace(path=f"/{name}").geturl()

    async def create(self) -> str:
        """A new empty database; returns its URL."""
        name = f"onecity_test_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return self._url_for(name)

    async def drop_all(self) -> None:
        """Drop every database this factory created (terminating leftover connections)."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            for name in self.created:
                # FORCE ends the remaining sessions and drops in one step: a pool still running
                # somewhere could reconnect between a separate terminate and the drop.
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self.created.clear()
