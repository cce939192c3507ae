"""``security`` messages: a login on a new device, someone trying to bind your identity, an
identity correction."""

from __future__ import annotations

from redis.asyncio import Redis

from core.db import Pool
from services.departments.sms import SmsGateway
from services.idnumber import check_digit
from services.simulators import registry_name
from tests.integration.hall.conftest import LI_SI, ZHANG_SAN, Hall, citizen, eventually
from tests.integration.messages.conftest import open_events
from tests.support.citizens import bearer, login


async def test_a_login_on_a_new_device_is_a_security_message_live_and_in_the_inbox(
    hall: Hall, sms: SmsGateway, redis: Redis
) -> None:
    phone = ZHANG_SAN[0]
    first = bearer((await login(hall.http, sms, phone))["access_token"])
    await redis.flushdb()  # the OTP resend cooldown (this test's own Redis database)
    again = bearer((await login(hall.http, sms, phone))["access_token"])  # the same device again
    assert (await hall.http.get("/v1/me/messages", headers=again)).json()["messages"] == []
    async with open_events(hall.http, first) as stream:
        await redis.delete(*(await redis.keys("*otp*")) or ["none"])
        await login(hall.http, sms, phone, device_id="device-2")
        got = await stream.next()
    assert got["json"]["category"] == "security" and "Test phone" in got["json"]["body"]
    assert phone not in got["data"]
    inbox = (await hall.http.get("/v1/me/messages", headers=first)).json()
    assert [m["category"] for m in inbox["messages"]] == ["security"] and inbox["unread_count"] == 1


async def test_someone_binding_your_identity_tells_you(hall: Hall, sms: SmsGateway) -> None:
    owner = await citizen(hall.http, sms, ZHANG_SAN)
    tokens = await login(hall.http, sms, LI_SI[0])
    intruder = bearer(tokens["access_token"])
    for _ in range(2):  # the same session trying twice: one message
        tried = await hall.http.post(
            "/v1/me/verification/real-name", json={"name": ZHANG_SAN[1], "id_number": ZHANG_SAN[2]}, headers=intruder
        )
        assert tried.status_code == 422, tried.text
    messages = (await hall.http.get("/v1/me/messages", headers=owner)).json()["messages"]
    assert [m["category"] for m in messages] == ["security"]
    assert ZHANG_SAN[2] not in str(messages) and LI_SI[0] not in str(messages)
    assert (await hall.http.get("/v1/me/messages", headers=intruder)).json()["messages"] == []


async def test_an_identity_correction_tells_the_citizen_once(hall: Hall, sms: SmsGateway, pool: Pool) -> None:
    phone = ZHANG_SAN[0]
    me = await citizen(hall.http, sms, ZHANG_SAN)
    first17 = "11010119900101071"
    corrected = {"name": registry_name(first17 + check_digit(first17)), "id_number": first17 + check_digit(first17)}

    async def alerts() -> int:  # the simulator's outbox outlives a test
        return sum("实名信息已更正" in m.text for m in (await sms.outbox(phone)).messages)

    before = await alerts()
    async with open_events(hall.http, me) as stream:
        response = await hall.http.post(
            "/v1/me/verification/correction",
            json={**corrected, "liveness_token": "live-abcdefghijklmnop"},
            headers=me,
        )
        assert response.status_code == 200, response.text
        got = await stream.next()
    assert got["json"]["category"] == "security" and got["json"]["title"] == "实名信息已更正"
    # The same identity again is no correction: no second message.
    again = await hall.http.post(
        "/v1/me/verification/correction", json={**corrected, "liveness_token": "live-abcdefghijklmnop"}, headers=me
    )
    assert again.status_code == 200, again.text
    inbox = (await hall.http.get("/v1/me/messages", headers=me)).json()
    assert [m["title"] for m in inbox["messages"]] == ["实名信息已更正"] and inbox["unread_count"] == 1
    # Neither identity appears in the message; it was committed with the correction's audit row.
    assert ZHANG_SAN[2] not in str(inbox) and corrected["id_number"] not in str(inbox)
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'identity.corrected'") == 1

    async def alerted() -> bool:  # no push token on this account: the security SMS fallback
        return await alerts() == before + 1

    await eventually(alerted, timeout_s=20)
