"""A health code's status change is a ``code`` message and a ``code_status`` event (staff
override; decided on a read; the periodic re-evaluation of current holders), once per change
however often it is decided."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import msgspec
from redis.asyncio import Redis

from core.db import Pool
from identity.staff import StaffAdmin
from messages.reevaluation import ENTRY_REEVALUATE
from services.departments.sms import SmsGateway
from tests.integration.hall.conftest import ZHANG_SAN, Hall, citizen, eventually
from tests.integration.identity.staff.conftest import PASSWORD, Member, sign_in
from tests.integration.messages.conftest import open_events


async def test_a_staff_override_is_a_code_message_and_a_code_status_event(
    hall: Hall, sms: SmsGateway, staff_admin: StaffAdmin, pool: Pool
) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    account_id = (await hall.http.get("/v1/me", headers=me)).json()["id"]
    # A read decides the baseline status (no message: nothing changed yet).
    issued = await hall.http.post("/v1/me/codes/health", headers=me)
    assert issued.status_code in (200, 201), issued.text
    assert (await hall.http.get("/v1/me/messages", headers=me)).json()["messages"] == []

    await staff_admin.add(
        "officer.msg", name="Officer", phone="13700009991", password=PASSWORD, roles=["health_officer"], region="110101"
    )
    officer = {
        "Authorization": f"Bearer {await sign_in(hall.http, sms, Member('officer.msg', '13700009991', '110101'))}"
    }
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
    async with open_events(hall.http, me) as stream:
        put = await hall.http.put(
            f"/v1/admin/citizens/{account_id}/health-status",
            json={"status": "R", "reason": "positive result from field test", "until": until},
            headers=officer,
        )
        assert put.status_code == 200, put.text
        status = await stream.next(kind="code_status")
        message = await stream.next()
    assert status["json"] == {"type": "health", "status": "R"}
    assert message["json"]["category"] == "code" and "红码" in message["json"]["body"]
    # Decided again on reads, by several requests at once: still one message.
    await asyncio.gather(*(hall.http.post("/v1/me/codes/health", headers=me) for _ in range(3)))
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE category = 'code'") == 1


async def _next_pass_queued(pool: Pool) -> bool:
    """The chain's next pass waits in the queue and no step is running."""
    rows = await pool.fetch(
        "SELECT status::text AS status FROM pgqueuer WHERE entrypoint = $1 AND status IN ('queued', 'picked')",
        ENTRY_REEVALUATE,
    )
    return [r["status"] for r in rows] == ["queued"]


async def test_a_periodic_reevaluation_reports_a_changed_status_once(
    hall: Hall, sms: SmsGateway, pool: Pool, redis: Redis
) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    health = hall.simulators["health"].base_url
    # A current health code: the baseline status (G), no message.
    issued = await hall.http.post("/v1/me/codes/health", headers=me)
    assert issued.status_code in (200, 201) and issued.json()["status"] == "G", issued.text
    # The worker scheduled the re-evaluation when it started: one chain, its next pass queued.
    jobs = hall.server.app.state.reevaluation_jobs
    await eventually(lambda: _next_pass_queued(pool), timeout_s=20)
    assert await jobs.schedule() is False
    try:
        # The health department learns of a quarantine order while the app is closed.
        quarantine = {
            "risk": {
                "close_contact": True,
                "quarantine_until": (dt.datetime.now(dt.UTC) + dt.timedelta(days=5)).isoformat(),
                "risk_area_visits": [],
            }
        }
        assert (await hall.http.put(f"{health}/_sim/health/{ZHANG_SAN[2]}", json=quarantine)).status_code == 200
        # OneCity's copies of the department's answers expire (a minute, in production).
        await redis.delete(*(await redis.keys("oc:fan:health:*")) or ["none"])
        async with open_events(hall.http, me) as stream:
            # Its time has come: the queued pass runs on the worker.
            await pool.execute(
                "UPDATE pgqueuer SET execute_after = now() WHERE entrypoint = $1 AND status = 'queued'",
                ENTRY_REEVALUATE,
            )
            status = await stream.next(kind="code_status", timeout_s=20)
            message = await stream.next()
        assert status["json"] == {"type": "health", "status": "R"}
        assert message["json"]["category"] == "code" and "红码" in message["json"]["body"]
        # Partners' verifications read the refreshed holder cache; the app's next code is red.
        [cached] = await redis.keys("oc:c:{H:*}:h")
        assert msgspec.json.decode(await redis.get(cached))[2] == "R"  # HolderEntry's status
        assert (await hall.http.post("/v1/me/codes/health", headers=me)).json()["status"] == "R"
        # Another pass with nothing changed: no message.
        await eventually(lambda: _next_pass_queued(pool), timeout_s=20)
        assert await hall.server.app.state.codes.reevaluation.run_pass() == 0
        assert await pool.fetchval("SELECT count(*) FROM messages WHERE category = 'code'") == 1
    finally:
        await hall.http.delete(f"{health}/_sim/health")
