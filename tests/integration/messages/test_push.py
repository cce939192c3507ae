"""Push through the job queue: generic payloads, preferences, quiet hours, the ``security``
SMS fallback; staff notices to a region they cover (403 otherwise)."""

from __future__ import annotations

import datetime as dt

from redis.asyncio import Redis

from core.db import Pool
from identity.staff import StaffAdmin
from services.departments import Departments
from services.departments.sms import SmsGateway
from tests.integration.hall.conftest import LI_SI, ZHANG_SAN, Hall, citizen, eventually, staff_token
from tests.integration.hall.test_applications import slug
from tests.integration.messages.test_inbox import event, manual
from tests.support.citizens import bearer, login

TOKEN = "device-token-zhang-0001"
QUIET_TOKEN = "device-token-zhang-quiet"  # the simulator outbox outlives a test


async def outcome(pool: Pool, category: str) -> str | None:
    value: str | None = await pool.fetchval(
        """SELECT d.outcome FROM message_deliveries d JOIN messages m ON m.id = d.message_id
           WHERE m.category = $1 ORDER BY m.id DESC LIMIT 1""",
        category,
    )
    return value


async def test_a_status_change_is_pushed_with_a_generic_body(
    hall: Hall, sms: SmsGateway, departments: Departments, pool: Pool
) -> None:
    assert departments.push is not None
    me, app, dept = await manual(hall, sms)
    assert (await hall.http.put("/v1/me/sessions/current/push", json={"token": TOKEN}, headers=me)).status_code == 204
    sent = await hall.http.post("/v1/departments/events", json=event(app["number"], "accepted", "ev-p"), headers=dept)
    assert sent.status_code == 202

    async def pushed() -> bool:
        return bool((await departments.push.outbox(TOKEN)).messages)  # type: ignore[union-attr]

    await eventually(pushed, timeout_s=20)
    [push] = (await departments.push.outbox(TOKEN)).messages
    assert push.title == "办件进度更新" and app["number"] not in push.body and push.data["category"] == "application"
    inbox = (await hall.http.get("/v1/me/messages", headers=me)).json()["messages"]
    assert push.data["message_id"] == inbox[0]["id"] and app["number"] in inbox[0]["body"]
    assert await outcome(pool, "application") == "pushed"


async def test_quiet_hours_suppress_push_but_not_the_inbox(
    hall: Hall, sms: SmsGateway, departments: Departments, pool: Pool
) -> None:
    assert departments.push is not None
    me, app, dept = await manual(hall, sms)
    await hall.http.put("/v1/me/sessions/current/push", json={"token": QUIET_TOKEN}, headers=me)
    now = dt.datetime.now(dt.UTC)
    # A window around now that crosses midnight in its own reckoning (start after end).
    quiet = {
        "start": (now - dt.timedelta(minutes=30)).strftime("%H:%M"),
        "end": (now - dt.timedelta(minutes=31)).strftime("%H:%M"),
        "timezone": "UTC",
    }
    put = await hall.http.put(
        "/v1/me/notification-preferences", json={"categories": {}, "quiet_hours": quiet}, headers=me
    )
    assert put.status_code == 200, put.text
    await hall.http.post("/v1/departments/events", json=event(app["number"], "accepted", "ev-q"), headers=dept)

    async def delivered() -> bool:
        return await outcome(pool, "application") is not None

    await eventually(delivered, timeout_s=20)
    assert await outcome(pool, "application") == "quiet_hours"
    assert (await departments.push.outbox(QUIET_TOKEN)).messages == []
    inbox = (await hall.http.get("/v1/me/messages", headers=me)).json()
    assert inbox["unread_count"] == 1 and inbox["messages"][0]["category"] == "application"


async def test_security_ignores_quiet_hours_and_falls_back_to_sms_without_a_token(
    hall: Hall, sms: SmsGateway, pool: Pool, redis: Redis
) -> None:
    phone = ZHANG_SAN[0]
    me = bearer((await login(hall.http, sms, phone))["access_token"])
    everything_off = {
        "categories": {"security": {"push": False, "sms": True}},
        "quiet_hours": {"start": "00:00", "end": "23:59", "timezone": "UTC"},
    }
    assert (await hall.http.put("/v1/me/notification-preferences", json=everything_off, headers=me)).status_code == 200
    before = len((await sms.outbox(phone)).messages)
    await redis.delete(*(await redis.keys("*otp*")) or ["none"])
    await login(hall.http, sms, phone, device_id="device-2")  # a new device: security, no push token

    async def delivered() -> bool:
        return await outcome(pool, "security") is not None

    await eventually(delivered, timeout_s=20)
    assert await outcome(pool, "security") == "sms"
    texts = [m.text for m in (await sms.outbox(phone)).messages]
    assert len(texts) == before + 2 and "新设备登录提醒" in texts[-1]  # the login's OTP, then the alert


async def test_an_sms_fallback_is_in_the_citizens_ledger(hall: Hall, sms: SmsGateway, pool: Pool, redis: Redis) -> None:
    phone = ZHANG_SAN[0]
    me = bearer((await login(hall.http, sms, phone))["access_token"])
    await redis.delete(*(await redis.keys("*otp*")) or ["none"])
    await login(hall.http, sms, phone, device_id="device-2")  # a new device: security, no push token

    async def delivered() -> bool:
        return await outcome(pool, "security") is not None

    await eventually(delivered, timeout_s=20)
    assert await outcome(pool, "security") == "sms"
    [message] = (await hall.http.get("/v1/me/messages", headers=me)).json()["messages"]
    response = await hall.http.get("/v1/me/data-access", params={"kind": "message_delivery"}, headers=me)
    assert response.status_code == 200, response.text
    [entry] = response.json()["items"]
    assert entry.pop("at")
    assert entry == {
        "kind": "message_delivery",
        "who": {"type": "department", "id": "sms"},
        "purpose": "security-alert",
        "channel": "sms",
        "category": "security",
        "message_id": message["id"],
        "released": ["phone_number", "title"],
    }
    assert phone not in response.text
    # Listed among all kinds too, once.
    everything = (await hall.http.get("/v1/me/data-access", headers=me)).json()["items"]
    assert [i["kind"] for i in everything].count("message_delivery") == 1


async def test_a_staff_notice_reaches_the_region_and_another_region_is_403(
    hall: Hall, sms: SmsGateway, staff_admin: StaffAdmin
) -> None:
    zhang = await citizen(hall.http, sms, ZHANG_SAN)  # registered in 110101
    li = await citizen(hall.http, sms, LI_SI)
    clerk = {"Authorization": f"Bearer {await staff_token(hall.http, sms, staff_admin, region='110101')}"}
    refused = await hall.http.post(
        "/v1/admin/notices", json={"region": "110102", "title": "停水通知", "body": "明日停水"}, headers=clerk
    )
    assert refused.status_code == 403 and slug(refused.json()) == "forbidden"
    as_citizen = await hall.http.post(
        "/v1/admin/notices", json={"region": "110101", "title": "停水通知", "body": "明日停水"}, headers=zhang
    )
    assert as_citizen.status_code == 401
    accepted = await hall.http.post(
        "/v1/admin/notices",
        json={"region": "110101", "title": "停水通知", "body": "明日 9:00-12:00 停水"},
        headers=clerk,
    )
    assert accepted.status_code == 202, accepted.text

    async def arrived() -> bool:
        return bool((await hall.http.get("/v1/me/messages", headers=zhang)).json()["messages"])

    await eventually(arrived, timeout_s=20)
    [notice] = (await hall.http.get("/v1/me/messages", headers=zhang)).json()["messages"]
    assert notice["category"] == "notice" and notice["title"] == "停水通知"
    li_region = LI_SI[2][:6]
    expected = 1 if li_region.startswith("110101") else 0
    assert len((await hall.http.get("/v1/me/messages", headers=li)).json()["messages"]) == expected
