"""The audit batch writer on a real PostgreSQL: a bad row is quarantined, never a blocker."""

from __future__ import annotations

import asyncio

import msgspec
from prometheus_client import REGISTRY

from core.audit import AuditBatcher, AuditEvent
from core.db import Pool, create_pool


def _quarantined(target: str) -> float:
    return REGISTRY.get_sample_value("onecity_write_quarantined_total", {"target": target}) or 0.0


def _shed(target: str, reason: str) -> float:
    return REGISTRY.get_sample_value("onecity_write_shed_total", {"target": target, "reason": reason}) or 0.0


def _ride_upload(validator_id: str) -> AuditEvent:
    return AuditEvent(
        action="codes.ride_log.upload",
        outcome="success",
        actor_type="partner",
        actor_id="metro",
        details={"validator_id": validator_id, "accepted": 1},
    )


async def test_a_nul_byte_row_is_quarantined_and_the_rest_written(pool: Pool, clean: None) -> None:
    before = _quarantined("audit_log")
    batcher = AuditBatcher(pool, interval_s=60)
    events = [_ride_upload(f"gate-{i}") for i in range(20)]
    events.insert(7, _ride_upload("gate\x00evil"))  # jsonb refuses \u0000: a data error
    for event in events:
        batcher.add(event)
    assert await batcher.flush() is True
    stored = [r["v"] for r in await pool.fetch("SELECT details->>'validator_id' AS v FROM audit_log ORDER BY id")]
    assert stored == [f"gate-{i}" for i in range(20)]
    rows = await pool.fetch("SELECT target, error_class, sqlstate, raw FROM write_quarantine")
    assert len(rows) == 1
    assert rows[0]["target"] == "audit_log"
    assert rows[0]["error_class"] == "UntranslatableCharacterError" and rows[0]["sqlstate"] == "22P05"
    raw = msgspec.json.decode(rows[0]["raw"])
    assert raw["details"]["validator_id"] == "gate\x00evil" and raw["action"] == "codes.ride_log.upload"
    assert _quarantined("audit_log") - before == 1
    assert batcher.written == 20 and batcher.quarantined == 1


async def test_the_background_writer_keeps_going_after_a_bad_row(pool: Pool, clean: None) -> None:
    """Today's failure mode: the batch was retried forever and nothing else got written."""
    batcher = AuditBatcher(pool, interval_s=0.01)
    batcher.start()
    try:
        batcher.add(_ride_upload("bad\x00"))
        batcher.add(AuditEvent(action="department.read", outcome="success", subject_id="a1"))
        await asyncio.sleep(0.3)
        batcher.add(AuditEvent(action="oidc.token", outcome="success", actor_id="p1"))
        for _ in range(100):
            if await pool.fetchval("SELECT count(*) FROM audit_log") == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await batcher.stop()
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["department.read", "oidc.token"]
    assert await pool.fetchval("SELECT count(*) FROM write_quarantine") == 1


async def test_an_outage_keeps_the_events_and_backs_off(database_url: str, pool: Pool, clean: None) -> None:
    own = await create_pool(database_url, min_size=1, max_size=1)
    batcher = AuditBatcher(own, interval_s=0.01, backoff_s=0.2, backoff_cap_s=0.4)
    attempts = 0
    copy = batcher._copy

    async def counting(rows: object) -> None:
        nonlocal attempts
        attempts += 1
        await copy(rows)  # type: ignore[arg-type]

    batcher._copy = counting  # type: ignore[method-assign]
    await own.close()  # the database is gone for this writer
    batcher.start()
    for i in range(5):
        batcher.add(AuditEvent(action="department.read", outcome="success", subject_id=f"s{i}"))
    await asyncio.sleep(1.0)
    # Backoff, not a hot loop: a few attempts in a second, not hundreds.
    assert 1 <= attempts <= 6, attempts
    assert len(batcher._buffer) == 5  # nothing dropped
    # The database comes back (a fresh pool): stop() writes the backlog.
    batcher._pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        await batcher.stop()
        assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'department.read'") == 5
    finally:
        await batcher._pool.close()


async def test_a_full_queue_sheds_with_a_count(pool: Pool, clean: None) -> None:
    before = _shed("audit_log", "queue_full")
    batcher = AuditBatcher(pool, interval_s=60, max_batch=1000, max_queue=3)
    for i in range(5):
        batcher.add(AuditEvent(action="department.read", outcome="success", subject_id=f"s{i}"))
    assert _shed("audit_log", "queue_full") - before == 2 and batcher.shed == 2
    await batcher.stop()
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 3


async def test_stop_lets_a_write_in_flight_finish(pool: Pool, clean: None) -> None:
    """Cancelling the writer mid-COPY lost that batch (it was already off the queue)."""
    batcher = AuditBatcher(pool, interval_s=0.01)
    copy = batcher._copy
    started = asyncio.Event()

    async def slow(rows: object) -> None:
        started.set()
        await asyncio.sleep(0.3)  # a slow commit under load
        await copy(rows)  # type: ignore[arg-type]

    batcher._copy = slow  # type: ignore[method-assign]
    batcher.start()
    for i in range(10):
        batcher.add(AuditEvent(action="department.read", outcome="success", subject_id=f"s{i}"))
    await started.wait()
    batcher.add(AuditEvent(action="department.read", outcome="success", subject_id="late"))
    await batcher.stop()
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 11
