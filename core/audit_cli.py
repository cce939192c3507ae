"""``onecity audit verify|retention|quarantine``: the audit log's integrity on the command line.

``verify [--since TIME]`` recomputes every hash chain and exits 1 naming the first bad row;
``retention`` removes what is older than ``ONECITY_AUDIT_RETENTION_DAYS`` (run it daily from
cron; one process at a time); ``quarantine`` lists the rows the batch writers set aside.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import click

from core.audit_chain import AuditRetention, AuditSettings, verify_chain
from core.cli import Shell
from core.db import Pool, create_pool

__all__ = ["audit"]


def _time(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.group(help="verify the audit log's hash chains, apply its retention")
def audit() -> None:
    """The ``audit`` commands."""


async def _pool(shell: Shell) -> Pool:
    return await create_pool(shell.database_url(), min_size=1, max_size=2)


@audit.command(help="check the audit log's hash chains; exit 1 at the first bad row")
@click.option("--since", callback=_time, help="only rows from this ISO 8601 time on (UTC if no offset)")
@click.pass_obj
def verify(shell: Shell, since: datetime | None) -> int:
    async def work() -> int:
        pool = await _pool(shell)
        try:
            report = await verify_chain(pool, since=since)
        finally:
            await pool.close()
        for stream, head in sorted(report.heads.items()):
            click.echo(f"head stream={stream} {head}")
        click.echo(f"verified {report.rows} rows in {report.streams} streams")
        for found in report.breaks:
            click.echo(f"BROKEN stream={found.stream} seq={found.seq} row_id={found.row_id} problem={found.problem}")
        first = report.first_bad
        if first is not None:
            click.echo(f"first bad row id: {first.row_id} ({first.problem})")
            return 1
        return 0

    return asyncio.run(work())


@audit.command(help="remove audit rows older than ONECITY_AUDIT_RETENTION_DAYS")
@click.pass_obj
def retention(shell: Shell) -> int:
    settings = shell.section(AuditSettings)

    async def work() -> int | None:
        pool = await _pool(shell)
        try:
            return await AuditRetention(pool, settings).run_once()
        finally:
            await pool.close()

    removed = asyncio.run(work())
    if removed is None:
        click.echo("another process is running the audit retention; nothing done")
    else:
        click.echo(f"removed {removed} audit rows older than {settings.retention_days} days")
    return 0


@audit.command(help="list rows the batch writers could not store")
@click.option("--limit", type=int, default=50)
@click.pass_obj
def quarantine(shell: Shell, limit: int) -> int:
    async def work() -> None:
        pool = await _pool(shell)
        try:
            rows = await pool.fetch(
                """SELECT id, quarantined_at, target, error_class, sqlstate, length(raw) AS size, replayed_at
                   FROM write_quarantine ORDER BY id DESC LIMIT $1""",
                limit,
            )
        finally:
            await pool.close()
        for r in rows:
            state = f"replayed {r['replayed_at'].isoformat()}" if r["replayed_at"] else "pending"
            click.echo(
                f"{r['id']}\t{r['quarantined_at'].isoformat()}\t{r['target']}\t{r['error_class']}"
                f"\t{r['sqlstate'] or '-'}\t{r['size']} bytes\t{state}"
            )

    asyncio.run(work())
    return 0
