"""A health code's status change is a ``code`` message and a ``code_status`` event (staff
override; decided on a read), once per change however often it is decided."""

from __future__ import annotations

import asyncio
import time

from core.db import Pool
from identity.staff import StaffAdmin
from services.departments.sms import SmsGateway
from tests.integration.hall.conftest import ZHANG_SAN, Hall, citizen
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
