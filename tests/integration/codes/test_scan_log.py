"""The scan log: group commit, durability of acknowledged scans, retention."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bff.app import create_app
from bff.settings import Settings
from codes.payload import CodeType
from codes.repository import RETENTION_LOCK_ID
from core.db import Pool
from core.signing import Ed25519Signer
from tests.integration.codes.conftest import ZHANG_SAN, App, Demo, PartnerHeaders, account_id_of, mint
from tests.support.asgi import running_app


def _jti(payload: str) -> str:
    claims = payload[4:].split(".")[1]
    jti: str = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["jti"]
    return jti


async def _holder_codes(app: App, demo: Demo, signer: Ed25519Signer, count: int) -> list[str]:
    """``count`` distinct valid health codes of 张三 (minted: issuing is rate-limited)."""
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    subject = await app.state.codes.holders.register(CodeType.HEALTH, account_id)
    return [mint(signer, subject=subject) for _ in range(count)]


async def test_concurrent_verifications_share_commits(
    app: App, demo: Demo, partner: PartnerHeaders, code_signer: Ed25519Signer, pool: Pool
) -> None:
    codes = await _holder_codes(app, demo, code_signer, 300)
    scan_log = app.state.codes.scan_log
    batches, rows = scan_log.batches, scan_log.rows
    headers = partner()
    # One burst: 300 verifications at the same instant, with a token this process has not
    # seen yet (one authentication for all, one Redis pipeline per batch).
    responses = await asyncio.gather(
        *(app.client.post("/v1/codes/verify", json={"payload": c}, headers=headers) for c in codes)
    )
    bad = [r.text for r in responses if r.status_code != 200 or not r.json()["valid"]]
    assert not bad, bad[:2]
    assert scan_log.rows - rows == 300
    # Many verifications per INSERT: far fewer commits than scans.
    assert scan_log.batches - batches < 150, scan_log.batches - batches
    stored = {r["jti"] for r in await pool.fetch("SELECT jti FROM scan_log")}
    assert stored == {_jti(c) for c in codes}


async def test_acknowledged_scans_survive_an_abrupt_crash(
    settings: Settings, clean: None, pool: Pool, code_signer: Ed25519Signer, partner: PartnerHeaders
) -> None:
    application = create_app(settings)
    acknowledged: list[str] = []
    codes = [mint(code_signer, now=None) for _ in range(400)]
    headers = partner()
    async with running_app(application) as client:
        in_flight = asyncio.Semaphore(48)

        enough = asyncio.Event()

        async def scan(payload: str) -> None:
            async with in_flight:
                response = await client.post("/v1/codes/verify", json={"payload": payload}, headers=headers)
            if response.status_code == 200:
                acknowledged.append(_jti(payload))
                if len(acknowledged) >= 100:
                    enough.set()

        tasks = [asyncio.create_task(scan(c)) for c in codes]
        await enough.wait()
        # The worker dies: every database connection is cut and every request in flight is
        # abandoned, with batches half-written.
        application.state.resources.pool.terminate()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(BaseException):
            await application.state.codes.scan_log.close()
    assert len(acknowledged) >= 100
    stored = {r["jti"] for r in await pool.fetch("SELECT jti FROM scan_log")}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged scans lost"


async def test_a_failing_scan_log_means_no_answer(
    app: App, partner: PartnerHeaders, code_signer: Ed25519Signer, pool: Pool
) -> None:
    async def broken(rows: Any) -> None:
        raise OSError("database gone")

    app.state.codes.repository.insert_scans = broken
    response = await app.client.post("/v1/codes/verify", json={"payload": mint(code_signer)}, headers=partner())
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")


def _scan_row(jti: str, venue_id: str | None = None) -> tuple[Any, ...]:
    return (datetime.now(UTC).timestamp(), "metro-gates", venue_id, "H", "sub", jti, None, "valid", False)


async def test_a_nul_byte_venue_is_quarantined_and_its_batch_written(app: App, pool: Pool) -> None:
    scan_log = app.state.codes.scan_log
    rows = [_scan_row(f"ok-{i}", "venue000001") for i in range(30)]
    rows.insert(11, _scan_row("bad", "venue\x00001"))  # PostgreSQL text refuses NUL: a data error
    # Gathered: every row is queued before the writer runs, so all 31 share one batch.
    results = await asyncio.gather(*(scan_log.write(row) for row in rows), return_exceptions=True)
    assert results == [None] * 31
    stored = sorted(r["jti"] for r in await pool.fetch("SELECT jti FROM scan_log"))
    assert stored == sorted(f"ok-{i}" for i in range(30))
    bad = await pool.fetchrow("SELECT target, error_class, raw FROM write_quarantine")
    assert bad is not None and bad["target"] == "scan_log"
    assert bad["error_class"] == "CharacterNotInRepertoireError"
    assert json.loads(bad["raw"])["jti"] == "bad"
    assert scan_log.quarantined == 1


async def test_verifications_alongside_a_bad_venue_row_all_answer(
    app: App, demo: Demo, partner: PartnerHeaders, code_signer: Ed25519Signer, pool: Pool
) -> None:
    """Today one NUL byte failed the whole group commit: its neighbours were answered 503."""
    codes = await _holder_codes(app, demo, code_signer, 60)
    headers = partner()
    scan_log = app.state.codes.scan_log

    async def bad_rows() -> None:
        for i in range(6):  # interleaved with the burst, so they share batches with it
            await asyncio.gather(scan_log.write(_scan_row(f"bad-{i}", "v\x00")), asyncio.sleep(0.005))

    verifications = asyncio.gather(
        *(app.client.post("/v1/codes/verify", json={"payload": c}, headers=headers) for c in codes)
    )
    responses, _ = await asyncio.gather(verifications, bad_rows())
    assert [r.status_code for r in responses] == [200] * 60
    assert all(r.json()["valid"] for r in responses)
    stored = {r["jti"] for r in await pool.fetch("SELECT jti FROM scan_log")}
    assert stored == {_jti(c) for c in codes}
    assert await pool.fetchval("SELECT count(*) FROM write_quarantine WHERE target = 'scan_log'") == 6


async def _venue(pool: Pool) -> str:
    await pool.execute(
        """INSERT INTO venues (id, name, address, region_code, owner_type, owner_id)
           VALUES ('venue000001', 'v', 'a', '110101', 'system', 'test')"""
    )
    return "venue000001"


async def test_retention_deletes_what_is_past_its_period(app: App, pool: Pool) -> None:
    now = datetime.now(UTC)
    settings = app.state.codes.settings
    old_scan = now - timedelta(days=settings.scan_retention_days, hours=1)
    new_scan = now - timedelta(days=settings.scan_retention_days - 1)
    await pool.executemany(
        "INSERT INTO scan_log (scanned_at, partner_id, result, jti) VALUES ($1, 'p', 'valid', $2)",
        [(old_scan, "old-1"), (old_scan, "old-2"), (new_scan, "new-1"), (now, "new-2")],
    )
    venue = await _venue(pool)
    await pool.executemany(
        "INSERT INTO checkins (venue_id, pseudonym, checked_in_at) VALUES ($1, $2, $3)",
        [
            (venue, "old", now - timedelta(days=settings.checkin_retention_days, minutes=1)),
            (venue, "new", now - timedelta(days=settings.checkin_retention_days - 1)),
        ],
    )
    await pool.executemany(
        """INSERT INTO ride_records (device_id, counter, ride_at, validator_id, scanned_at, partner_id)
           VALUES ('dev', $1, 0, 'val', $2, 'p')""",
        [(1, now - timedelta(days=settings.ride_retention_days + 1)), (2, now)],
    )
    deleted = await app.state.codes.retention.run_once()
    assert deleted is not None
    assert deleted["scan_log"] == 2 and deleted["checkins"] == 1 and deleted["ride_records"] == 1
    assert sorted(r["jti"] for r in await pool.fetch("SELECT jti FROM scan_log")) == ["new-1", "new-2"]
    assert [r["pseudonym"] for r in await pool.fetch("SELECT pseudonym FROM checkins")] == ["new"]
    assert [r["counter"] for r in await pool.fetch("SELECT counter FROM ride_records")] == [2]
    audit = await pool.fetchrow("SELECT details FROM audit_log WHERE action = 'codes.retention'")
    assert audit is not None and audit["details"]["deleted"]["scan_log"] == 2
    # Nothing left to delete: a second run deletes nothing.
    again = await app.state.codes.retention.run_once()
    assert again is not None and again["scan_log"] == 0


async def test_retention_runs_in_one_process_at_a_time(app: App, pool: Pool) -> None:
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_ID)
        try:
            assert await app.state.codes.retention.run_once() is None
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_ID)
    assert await app.state.codes.retention.run_once() is not None


async def test_retention_period_is_configurable(settings: Settings, clean: None, pool: Pool) -> None:
    import msgspec

    short = msgspec.structs.replace(
        settings, codes=msgspec.structs.replace(settings.codes, scan_retention_days=1, retention_interval_s=0)
    )
    application = create_app(short)
    await pool.execute(
        "INSERT INTO scan_log (scanned_at, partner_id, result) VALUES (now() - interval '2 days', 'p', 'valid')"
    )
    async with running_app(application) as client:
        assert isinstance(client, httpx.AsyncClient)
        deleted = await application.state.codes.retention.run_once()
    assert deleted is not None and deleted["scan_log"] == 1
