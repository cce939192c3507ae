"""What every stand-alone benchmark tool (``python -m bench.<tool>``) shares: its command line
and the system it starts.

Such a tool measures one thing on a system of its own rather than a wrk scenario of
:mod:`bench.cli`. It takes the same three arguments as every other tool, then starts the
system with its own worker count and settings::

    parser = standalone_parser("python -m bench.upload_stall", __doc__, workdir=Path(".onecity/bench-x"))
    parser.add_argument("--uploads", type=int, default=5)
    args = parser.parse_args(argv)
    with started_system(args, workers=1, extra_env={"ONECITY_RIDE_VERIFY_PROCESSES": "1"}) as system:
        ...  # system.context(...), system.base_url, system.bff_pid
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bench.system import System, SystemConfig

__all__ = ["standalone_parser", "started_system"]


def standalone_parser(prog: str, doc: str | None, *, workdir: Path) -> argparse.ArgumentParser:
    """The command line every stand-alone tool takes; the tool adds its own options.

    Args:
        prog: How the tool is run (``python -m bench.sse``).
        doc: The tool's module docstring: its first line is the description.
        workdir: The tool's default folder for logs and data files.

    Returns:
        A parser with ``--admin-database-url`` and ``--redis-url`` (required) and ``--workdir``.
    """
    description = (doc or "").strip().splitlines()[0] if (doc or "").strip() else None
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--admin-database-url", required=True, help="PostgreSQL URL allowed to create and drop the run's database"
    )
    parser.add_argument("--redis-url", required=True, help="the Redis database of the run")
    parser.add_argument("--workdir", type=Path, default=workdir, help="logs and data files")
    return parser


@contextmanager
def started_system(args: argparse.Namespace, *, workers: int, extra_env: Mapping[str, str]) -> Iterator[System]:
    """The system of one run, started from a :func:`standalone_parser` command line and stopped
    (its processes ended, its database dropped) when the block ends.

    Args:
        args: The parsed command line.
        workers: granian worker processes of the BFF.
        extra_env: ``ONECITY_*`` settings of this run.

    Raises:
        StartError: Part of the system did not start (what did is stopped).
    """
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = SystemConfig(
        admin_database_url=args.admin_database_url,
        redis_url=args.redis_url,
        workers=workers,
        workdir=args.workdir,
        extra_env=dict(extra_env),
    )
    with System(config) as system:
        system.start()
        yield system
