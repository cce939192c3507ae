"""``onecity audit verify|retention|quarantine``: the audit log's integrity on the command line.

``verify [--since TIME]`` recomputes every hash chain and exits 1 naming the first bad row;
``retention`` removes what is older than ``ONECITY_AUDIT_RETENTION_DAYS`` (run it daily from
cron; one process at a time); ``quarantine`` lists the rows the batch writers set aside.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from core.audit_chain import AuditRetention, AuditSettings, verify_chain
from core.db import create_pool

__all__ = ["add_arguments", "run"]


def _time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``audit`` subcommands to ``parser``."""
    commands = parser.add_subparsers(dest="audit_command", required=True)
    verify = commands.add_parser("verify", help="check the audit log's hash chains; exit 1 at the first bad row")
    verify.add_argument("--since", type=_time, help="only rows from this ISO 8601 time on (UTC if no offset)")
    commands.add_parser("retention", help="remove audit rows older than ONECITY_AUDIT_RETENTION_DAYS")
    quarantine = commands.add_parser("quarantine", help="list rows the batch writers could not store")
    quarantine.add_argument("--limit", type=int, default=50)


async def run(args: argparse.Namespace, *, database_url: str, settings: AuditSettings) -> int:
    """Run one ``audit`` subcommand; return the exit code (1: the chain is broken)."""
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        if args.audit_command == "verify":
            report = await verify_chain(pool, since=args.since)
            for stream, head in sorted(report.heads.items()):
                print(f"head stream={stream} {head}")
            print(f"verified {report.rows} rows in {report.streams} streams")
            for found in report.breaks:
                print(f"BROKEN stream={found.stream} seq={found.seq} row_id={found.row_id} problem={found.problem}")
            first = report.first_bad
            if first is not None:
                print(f"first bad row id: {first.row_id} ({first.problem})")
                return 1
            return 0
        if args.audit_command == "retention":
            removed = await AuditRetention(pool, settings).run_once()
            if removed is None:
                print("another process is running the audit retention; nothing done")
                return 0
            print(f"removed {removed} audit rows older than {settings.retention_days} days")
            return 0
        rows = await pool.fetch(
            """SELECT id, quarantined_at, target, error_class, sqlstate, length(raw) AS size, replayed_at
               FROM write_quarantine ORDER BY id DESC LIMIT $1""",
            args.limit,
        )
        for r in rows:
            state = f"replayed {r['replayed_at'].isoformat()}" if r["replayed_at"] else "pending"
            print(
                f"{r['id']}\t{r['quarantined_at'].isoformat()}\t{r['target']}\t{r['error_class']}"
                f"\t{r['sqlstate'] or '-'}\t{r['size']} bytes\t{state}"
            )
        return 0
    finally:
        await pool.close()
