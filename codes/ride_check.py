"""Checking the lines of a validator's ride log, away from the event loop.

Two Ed25519 verifications per line make a 1 MiB upload (about 2,800 lines) half a second of
CPU or more, and ``cryptography`` holds the GIL while it verifies: in a worker thread the event
loop would only get the interpreter between lines, at the mercy of the GIL's hand-over (up to
its 5 ms switch interval per wait). So :class:`RideLogChecker` runs :func:`check_lines` in
worker processes (``concurrent.futures.ProcessPoolExecutor``), whose CPU never touches the
BFF process's GIL. The event loop only decodes the body, sends the lines out and stores what
comes back.

:func:`check_lines` is module level and its arguments and results are plain values (strings,
numbers, raw key bytes), so it pickles; this module imports only the standard library,
``cryptography`` and :mod:`codes.ride`, so a worker process starts without the BFF's domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from codes.ride import verify_ride_code

__all__ = ["CHECK_CHUNK", "Accepted", "CheckerUnavailable", "RideLogChecker", "check_lines", "raw_keys"]

log = logging.getLogger("onecity.codes.rides")

#: Lines per unit of work handed to a worker: small enough that several workers share a large
#: upload and that pickling one chunk is microseconds, large enough to amortise the hand-over.
CHECK_CHUNK: Final = 256

#: An accepted line: ``(device id, counter, ride time, subject)``; a rejected one is its reason.
Accepted = tuple[str, int, int, str | None]

# Public key objects by raw bytes, per process: a worker builds each code key once.
_PUBLIC_KEYS: dict[bytes, Ed25519PublicKey] = {}
_MAX_CACHED_KEYS: Final = 64


class CheckerUnavailable(Exception):
    """The worker processes died or could not start, twice in a row: nothing was checked."""


def raw_keys(keys: Mapping[str, Ed25519PublicKey]) -> dict[str, bytes]:
    """``kid -> raw 32-byte public key``: what :func:`check_lines` takes (key objects do not
    pickle)."""
    return {kid: key.public_bytes(Encoding.Raw, PublicFormat.Raw) for kid, key in keys.items()}


def _public(raw: bytes) -> Ed25519PublicKey:
    key = _PUBLIC_KEYS.get(raw)
    if key is None:
        if len(_PUBLIC_KEYS) >= _MAX_CACHED_KEYS:  # rotated keys: never grows without bound
            _PUBLIC_KEYS.clear()
        key = _PUBLIC_KEYS[raw] = Ed25519PublicKey.from_public_bytes(raw)
    return key


def check_lines(
    lines: Sequence[tuple[str, float]],
    keys: Mapping[str, bytes],
    *,
    now: float,
    skew_s: int,
    oldest: float,
    yield_gil: bool = False,
) -> list[Accepted | str]:
    """Judge each ``(code, scanned_at)`` line of a ride log on its own.

    The scan time is the validator's word, so it is bounded by the server's clock first: a log
    cannot place rides in the future (``scanned_in_future``) or resurrect codes from long ago
    (``upload_too_late``); then the code is verified at its scan time.

    Args:
        lines: The uploaded lines.
        keys: The ``code`` keys, ``kid -> raw public key`` (:func:`raw_keys`).
        now: The server's time of the upload (Unix seconds).
        skew_s: Clock tolerance.
        oldest: The earliest scan time accepted.
        yield_gil: Give the GIL back before every line (when run in a thread of the BFF
            process rather than in a worker process).

    Returns:
        Per line, in order: the accepted ride or the reason it was refused.
    """
    verifying = {kid: _public(raw) for kid, raw in keys.items()}
    out: list[Accepted | str] = []
    for code, scanned_at in lines:
        if yield_gil:
            time.sleep(0)
        if scanned_at > now + skew_s:
            out.append("scanned_in_future")
            continue
        if scanned_at < oldest:
            out.append("upload_too_late")
            continue
        result = verify_ride_code(code, verifying, now=scanned_at, skew_s=skew_s)
        if not result.valid or result.device_id is None or result.counter is None or result.at is None:
            out.append(result.reason or "malformed")
            continue
        out.append((result.device_id, result.counter, result.at, result.subject))
    return out


#: How much lower than the BFF process the worker processes run (``nice``): verification is
#: batch work, and on a busy host the kernel must hand the CPU to the event loop first.
WORKER_NICENESS: Final = 10


def _lower_priority() -> None:
    """Worker initializer: yield the CPU to the BFF's event loop whenever both want it."""
    with contextlib.suppress(OSError, AttributeError):  # not permitted, or not a POSIX host
        os.nice(WORKER_NICENESS)


class RideLogChecker:
    """Runs :func:`check_lines` off the event loop for every upload of this process.

    With ``processes`` > 0, in a pool of that many worker processes, started with ``spawn`` (a
    clean interpreter: forking a process that runs threads and an event loop is unsafe) on the
    first upload, at a lower CPU priority (:data:`WORKER_NICENESS`), and kept for the life of
    the app; ``0`` checks in a worker thread instead
    (one process, no extra memory; the event loop then waits for the GIL now and then).

    Args:
        processes: Worker processes (``ONECITY_RIDE_VERIFY_PROCESSES``).
    """

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority,
            )
        return self._executor

    async def check(
        self,
        lines: Sequence[tuple[str, float]],
        keys: Mapping[str, bytes],
        *,
        now: float,
        skew_s: int,
        oldest: float,
    ) -> list[Accepted | str]:
        """Every line's outcome, in order (see :func:`check_lines`).

        Raises:
            CheckerUnavailable: the worker processes died, and again after a restart.
        """
        chunks = [lines[start : start + CHECK_CHUNK] for start in range(0, len(lines), CHECK_CHUNK)]
        out: list[Accepted | str] = []
        if self.processes == 0:
            for chunk in chunks:
                out.extend(
                    await asyncio.to_thread(
                        check_lines, chunk, keys, now=now, skew_s=skew_s, oldest=oldest, yield_gil=True
                    )
                )
            return out
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor: Executor = self._pool()
            calls: list[asyncio.Future[list[Accepted | str]]] = []
            try:
                for chunk in chunks:
                    work = functools.partial(check_lines, chunk, keys, now=now, skew_s=skew_s, oldest=oldest)
                    calls.append(loop.run_in_executor(executor, work))
                results = await asyncio.gather(*calls)
            except (BrokenProcessPool, OSError) as exc:
                for call in calls:  # a submission refused half-way: the others are void too
                    call.cancel()
                # A worker died (killed, out of memory) or could not be started: the pool is
                # unusable; start a new one.
                log.warning(
                    "ride-log worker processes died; starting new ones",
                    extra={"attempt": attempt, "error": type(exc).__name__},
                )
                self._discard(executor)
                continue
            for result in results:
                out.extend(result)
            return out
        raise CheckerUnavailable("the ride-log worker processes keep dying")

    def _discard(self, executor: Executor) -> None:
        if self._executor is executor:
            self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        """Stop the worker processes (at shutdown); a later upload starts new ones."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(functools.partial(executor.shutdown, wait=True, cancel_futures=True))
