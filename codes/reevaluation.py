"""The periodic re-evaluation of health statuses of citizens who hold a current health code.

A health code's status is decided whenever the citizen reads it; but a test result or a
quarantine order reaches the health department while the app is closed. So every holder issued
a health code within ``codes.reevaluate_window_s`` (24 h) is decided again, from department data,
every ``codes.reevaluate_interval_s`` (15 min), in batches of ``codes.reevaluate_batch``. A
decision goes through :meth:`codes.status.StatusResolver.decide` like any read, so its hooks see
it: the message centre turns a *change* into one ``code`` message and one ``code_status``
event, and nothing when the status is the same. A changed status also refreshes the holder
cache that partners' verifications read, and drops the citizen's current code (the app's next
request gets a code with the new status), as a staff override does.

This module decides; the schedule is a chain of jobs on the hall's queue
(:mod:`messages.reevaluation`), which the codes domain cannot import.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Final

from codes.holders import Holders
from codes.live import HolderEntry, LiveCodes
from codes.payload import CodeType
from codes.repository import CodesRepository
from codes.settings import CodesSettings
from codes.status import StatusResolver

__all__ = ["HealthReevaluation"]

log = logging.getLogger("onecity.codes.reevaluation")

#: Holders decided at once within a batch (each decision is three department reads).
_CONCURRENCY: Final = 8


class HealthReevaluation:
    """Decides the health status of current holders again, a batch at a time.

    Args:
        repository: Who holds a current code.
        holders: The holders' accounts (ID numbers for the department reads).
        status: Decides (and tells its hooks).
        live: The holder cache and the current codes.
        settings: Window and batch size.
    """

    def __init__(
        self,
        *,
        repository: CodesRepository,
        holders: Holders,
        status: StatusResolver,
        live: LiveCodes,
        settings: CodesSettings,
    ) -> None:
        self._repository = repository
        self._holders = holders
        self._status = status
        self._live = live
        self._settings = settings

    async def batch(self, after: str | None) -> tuple[int, str | None]:
        """Re-evaluate the next batch of holders after account id ``after`` (``None``: from the
        first).

        Returns:
            How many holders' statuses changed, and the last account id of the batch to
            continue after (``None`` when this was the last batch of the pass).
        """
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self._settings.reevaluate_window_s)
        limit = self._settings.reevaluate_batch
        accounts = await self._repository.current_holders(CodeType.HEALTH.value, since=since, after=after, limit=limit)
        slots = asyncio.Semaphore(_CONCURRENCY)

        async def one(account_id: str) -> bool:
            async with slots:
                try:
                    return await self._reevaluate(account_id)
                except Exception as exc:
                    # One holder's trouble (a vanished account, a database hiccup) must not stop
                    # everyone else's re-evaluation; they are looked at again next pass.
                    log.warning("health re-evaluation failed for one holder", extra={"error": type(exc).__name__})
                    return False

        changed = sum(await asyncio.gather(*(one(a) for a in accounts)))
        return changed, (accounts[-1] if len(accounts) == limit else None)

    async def run_pass(self) -> int:
        """Every batch of one pass, here and now; how many statuses changed."""
        changed, after = await self.batch(None)
        while after is not None:
            more, after = await self.batch(after)
            changed += more
        return changed

    async def _reevaluate(self, account_id: str) -> bool:
        """Decide one holder's health status again; whether it changed."""
        holder = await self._holders.get(account_id)
        if holder is None:
            return False
        before = await self._status.current(account_id, CodeType.HEALTH)
        decision = await self._status.decide(holder, CodeType.HEALTH)
        if decision.source == "fallback" or (before is not None and before.status == decision.status):
            return False
        # Verification reads the cached status: it must answer the new one at once.
        await self._live.put_holder(
            CodeType.HEALTH.value,
            self._holders.subject(CodeType.HEALTH, account_id),
            HolderEntry(account_id=account_id, name=holder.masked_name, status=decision.status),
        )
        await self._live.drop_current(account_id, CodeType.HEALTH.api_name)
        return True
