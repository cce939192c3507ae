"""core.db: a pooled connection learns every array type OneCity's SQL uses inside one transaction.

asyncpg learns a type it has no built-in codec for with a catalog query, and turns PostgreSQL's
JIT off around it with session settings; behind a transaction pooler only a transaction keeps
those three statements on one server connection (the query JIT-compiled took 0.8-3.5 s each,
bench/RESULTS.md). The spy below wraps asyncpg's own method and calls through: it records
whether the connection was inside a transaction each time asyncpg learnt types.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import hall.jobs
from core.db import WARMED_ARRAY_TYPES, create_pool

_ROOT = Path(__file__).resolve().parents[3]
_PACKAGES = ("bff", "codes", "core", "hall", "identity", "messages", "services")
_ARRAY_CAST = re.compile(r"::\s*([a-z][a-z0-9_]*(?:\s*\(\d+\))?)\s*\[\]", re.IGNORECASE)


def _array_types_in_code() -> set[str]:
    def sql() -> Iterator[str]:
        for package in _PACKAGES:
            yield from (path.read_text() for path in (_ROOT / package).rglob("*.py"))
        # pgqueuer's enqueue statements, built by its query builder and run on our pool.
        yield hall.jobs._ENQUEUE
        yield hall.jobs._ENQUEUE_ONCE

    return {match.lower() for text in sql() for match in _ARRAY_CAST.findall(text)}


def test_the_scan_finds_the_warmed_array_types_and_text_which_asyncpg_knows() -> None:
    found = _array_types_in_code()
    assert found == {*WARMED_ARRAY_TYPES, "text"}


@pytest.mark.parametrize("statement_cache_size", [0, 100])
async def test_every_array_type_in_the_code_is_learnt_at_connect_inside_a_transaction(
    database_url: str, monkeypatch: pytest.MonkeyPatch, statement_cache_size: int
) -> None:
    learnt: list[tuple[bool, list[int]]] = []
    original = asyncpg.Connection._introspect_types

    async def spy(self: asyncpg.Connection[Any], typeoids: Any, timeout: Any) -> Any:  # noqa: ASYNC109 - asyncpg's signature
        learnt.append((self.is_in_transaction(), sorted(typeoids)))
        return await original(self, typeoids, timeout)

    monkeypatch.setattr(asyncpg.Connection, "_introspect_types", spy)
    pool = await create_pool(database_url, min_size=1, max_size=1, statement_cache_size=statement_cache_size)
    try:
        async with pool.acquire() as conn:
            at_connect = list(learnt)
            for name in sorted(_array_types_in_code()):
                assert await conn.fetchval(f"SELECT ARRAY[NULL]::{name}[]") == [None], name
    finally:
        await pool.close()
    # bool[], bytea[], int4[], bpchar[], int8[], float8[], interval[], uuid[] and jsonb[] were
    # learnt while connecting, in one transaction ...
    assert at_connect == [(True, [1000, 1001, 1007, 1014, 1016, 1022, 1187, 2951, 3807])]
    # ... and nothing the code casts to was learnt afterwards, outside one.
    assert learnt == at_connect
