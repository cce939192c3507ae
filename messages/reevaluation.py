"""The periodic re-evaluation of current health-code holders, scheduled on the hall's job queue.

A pass is a chain of ``codes.reevaluate_health`` jobs: each re-evaluates one batch of holders
(:meth:`codes.reevaluation.HealthReevaluation.batch`, whose status hook makes the ``code``
message and the ``code_status`` event of a change) and enqueues the next batch, or, after the
last one, the next pass ``codes.reevaluate_interval_s`` after this one began. Any process with
``ONECITY_HALL_WORKER`` on may run a step; a step's successor carries a dedupe key derived from
the step, so a step retried after a crash does not fork the chain. Each worker calls
:meth:`ReevaluationJobs.schedule` when it starts: it queues a pass (one interval later) only
when none is queued or running (one chain for the whole deployment, under an advisory lock), so a chain lost to a job
an operator put on hold comes back with the next restart.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from codes.reevaluation import HealthReevaluation
from hall.jobs import JobPayload, enqueue
from messages.repository import MessagesRepository

__all__ = ["ENTRY_REEVALUATE", "ReevaluationJobs"]

log = logging.getLogger("onecity.messages.reevaluation")

ENTRY_REEVALUATE: Final = "codes.reevaluate_health"
# Serialises the "is a chain there?" check of starting workers (transaction-scoped).
_SCHEDULE_LOCK: Final = 0x0C17_0090


class ReevaluationJobs:
    """The job handler and the scheduler of the health re-evaluation.

    Args:
        reevaluation: Re-evaluates a batch.
        repository: Where the queue is (the message centre's database).
        interval_s: From the start of one pass to the start of the next.
    """

    def __init__(self, reevaluation: HealthReevaluation, repository: MessagesRepository, *, interval_s: int) -> None:
        self.reevaluation = reevaluation
        self._repository = repository
        self.interval_s = interval_s

    async def run(self, payload: JobPayload, attempts: int) -> None:
        """Job: one batch of a pass, then enqueue the next batch or the next pass."""
        del attempts
        changed, last = await self.reevaluation.batch(payload.after)
        if changed:
            log.info("health statuses changed on re-evaluation", extra={"changed": changed})
        async with self._repository.connection() as conn:
            if last is not None:
                await enqueue(
                    conn,
                    ENTRY_REEVALUATE,
                    JobPayload(after=last, first_at=payload.first_at),
                    dedupe_key=f"{ENTRY_REEVALUATE}:{int(payload.first_at)}:{last}",
                )
                return
            start = payload.first_at + self.interval_s
            now = time.time()
            await enqueue(
                conn,
                ENTRY_REEVALUATE,
                JobPayload(first_at=max(start, now)),
                delay_s=max(0.0, start - now),
                dedupe_key=f"{ENTRY_REEVALUATE}:{int(start)}",
            )

    async def schedule(self) -> bool:
        """Queue a pass ``interval_s`` from now unless one is queued or running; whether one was
        queued. (Not at once: a fleet restarting must not re-read every holder's data.)"""
        async with self._repository.transaction() as tx:
            await self._repository.lock_schedule(tx, _SCHEDULE_LOCK)
            if await self._repository.job_pending(tx, ENTRY_REEVALUATE):
                return False
            await enqueue(
                tx,
                ENTRY_REEVALUATE,
                JobPayload(first_at=time.time() + self.interval_s),
                delay_s=float(self.interval_s),
            )
        return True
