"""The inbox: producers in the hall, dedupe per event, read/read-all, paging, privacy."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from redis.asyncio import Redis

from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from messages import MessageCentre, MessagesRepository
from services.departments.sms import SmsGateway
from tests.integration.hall.conftest import (
    BIRTH_FORM,
    LI_SI,
    NEWBORN_FORM,
    ZHANG_SAN,
    Hall,
    citizen,
    configure_desks,
    department_token,
    eventually,
)
from tests.integration.hall.test_applications import slug, submit


def event(number: str, status: str, event_id: str, seconds: int = 0) -> dict[str, Any]:
    at = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return {"event_id": event_id, "application_number": number, "status": status, "at": at.isoformat()}


async def manual(hall: Hall, sms: SmsGateway) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    """A citizen with one submitted application whose department reports only what we send."""
    configure_desks(hall.simulators, auto_progress=False)
    me = await citizen(hall.http, sms, ZHANG_SAN)
    app = (await submit(hall, me, BIRTH_FORM)).json()
    return me, app, await department_token(hall.http, "health")


async def test_a_status_change_is_one_message_even_when_delivered_twice_concurrently(
    hall: Hall, sms: SmsGateway, pool: Pool
) -> None:
    me, app, dept = await manual(hall, sms)
    accepted = event(app["number"], "accepted", "ev-accepted")
    # The same event twice at once (two workers), then once more later (a redelivery).
    first = await asyncio.gather(
        *(hall.http.post("/v1/departments/events", json=accepted, headers=dept) for _ in range(2))
    )
    assert sorted(r.status_code for r in first) == [202, 202]
    again = await hall.http.post("/v1/departments/events", json=accepted, headers=dept)
    assert again.status_code == 202 and again.json()["outcome"] == "duplicate"

    inbox = (await hall.http.get("/v1/me/messages", headers=me)).json()
    assert inbox["unread_count"] == 1 and inbox["next_cursor"] is None
    [message] = inbox["messages"]
    assert message["category"] == "application"
    assert message["link"] == {"kind": "application", "id": app["id"]}
    assert app["number"] in message["body"] and "已受理" in message["body"]
    assert message["read_at"] is None
    # No ID number or phone ever reaches a message (they may show on a lock screen).
    assert BIRTH_FORM["parent_id_number"] not in str(message) and BIRTH_FORM["phone"] not in str(message)
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1


async def test_two_workers_producing_the_same_event_make_one_message(
    pool: Pool, redis: Redis, vault: Vault, settings: Settings, clean: None
) -> None:
    centres = [
        MessageCentre(repository=MessagesRepository(pool), redis=redis, vault=vault, settings=settings.messages)
        for _ in range(2)
    ]
    account = "00000000-0000-4000-8000-000000000001"

    async def produce(centre: MessageCentre) -> int | None:
        async with pool.acquire() as conn, conn.transaction():
            ident = await centre.produce(
                conn, account_id=account, category="security", title="t", body="b", dedupe_key="login:s1"
            )
            await asyncio.sleep(0.05)  # both transactions open at once
            return ident

    results = await asyncio.gather(*(produce(c) for c in centres))
    assert sorted(results, key=lambda r: r is None)[1] is None and any(results)
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE account_id = $1::uuid", account) == 1


async def test_read_read_all_paging_and_another_citizen_gets_404(hall: Hall, sms: SmsGateway) -> None:
    me, app, dept = await manual(hall, sms)
    for i, status in enumerate(("accepted", "under_review", "approved", "delivered")):
        sent = await hall.http.post(
            "/v1/departments/events", json=event(app["number"], status, f"ev-{i}", i), headers=dept
        )
        assert sent.status_code == 202, sent.text
    first = (await hall.http.get("/v1/me/messages", headers=me)).json()
    assert first["unread_count"] == 4 and len(first["messages"]) == 3 and first["next_cursor"]
    assert ["已送达" in first["messages"][0]["body"], "已受理" in first["messages"][-1]["body"]] == [True, False]
    second = (await hall.http.get("/v1/me/messages", params={"cursor": first["next_cursor"]}, headers=me)).json()
    assert len(second["messages"]) == 1 and second["next_cursor"] is None and "已受理" in second["messages"][0]["body"]
    bad = await hall.http.get("/v1/me/messages", params={"cursor": "x'--"}, headers=me)
    assert bad.status_code == 422 and slug(bad.json()) == "unprocessable"

    oldest = second["messages"][0]["id"]
    other = await citizen(hall.http, sms, LI_SI)
    assert (await hall.http.get("/v1/me/messages", headers=other)).json() == {
        "messages": [],
        "unread_count": 0,
        "next_cursor": None,
    }
    stolen = await hall.http.post(f"/v1/me/messages/{oldest}/read", headers=other)
    assert stolen.status_code == 404 and slug(stolen.json()) == "not-found"
    assert (await hall.http.post("/v1/me/messages/not-a-number/read", headers=me)).status_code == 404
    assert (await hall.http.post("/v1/me/messages/read-all", headers=other)).json()["marked"] == 0

    read = await hall.http.post(f"/v1/me/messages/{oldest}/read", headers=me)
    assert read.status_code == 200 and read.json()["read_at"] is not None
    unread = (await hall.http.get("/v1/me/messages", params={"unread": "true"}, headers=me)).json()
    assert unread["unread_count"] == 3 and oldest not in [m["id"] for m in unread["messages"]]
    everything = await hall.http.post("/v1/me/messages/read-all", headers=me)
    assert everything.status_code == 200 and everything.json() == {"marked": 3, "unread_count": 0}


async def test_a_withdrawal_is_a_message(hall: Hall, sms: SmsGateway) -> None:
    me, app, _ = await manual(hall, sms)
    withdrawn = await hall.http.post(f"/v1/me/applications/{app['id']}/withdraw", headers=me)
    assert withdrawn.status_code == 200, withdrawn.text
    [message] = (await hall.http.get("/v1/me/messages", headers=me)).json()["messages"]
    assert "已撤回" in message["body"] and message["link"]["id"] == app["id"]


async def test_preferences_replace_the_whole_document_and_security_push_stays_on(hall: Hall, sms: SmsGateway) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    defaults = (await hall.http.get("/v1/me/notification-preferences", headers=me)).json()
    assert defaults["categories"]["security"] == {"push": True, "sms": True} and "quiet_hours" not in defaults
    assert defaults["categories"]["notice"] == {"push": True, "sms": False} and len(defaults["categories"]) == 5
    document = {
        "categories": {"code": {"push": False, "sms": False}, "security": {"push": False, "sms": False}},
        "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Asia/Shanghai"},
    }
    put = await hall.http.put("/v1/me/notification-preferences", json=document, headers=me)
    assert put.status_code == 200, put.text
    assert put.json()["categories"]["security"] == {"push": True, "sms": False}
    replaced = await hall.http.put(
        "/v1/me/notification-preferences", json={"categories": {"notice": {"push": False}}}, headers=me
    )
    # The quiet hours and the code preference are gone: the document was replaced whole.
    assert "quiet_hours" not in replaced.json() and replaced.json()["categories"]["code"]["push"] is True
    assert replaced.json()["categories"]["notice"] == {"push": False, "sms": False}
    assert (await hall.http.get("/v1/me/notification-preferences", headers=me)).json() == replaced.json()
    bad = await hall.http.put(
        "/v1/me/notification-preferences",
        json={"categories": {}, "quiet_hours": {"start": "25:00", "end": "07:00"}},
        headers=me,
    )
    assert bad.status_code == 400 and slug(bad.json()) == "validation-error"
    unknown = await hall.http.put(
        "/v1/me/notification-preferences",
        json={"categories": {}, "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Base"}},
        headers=me,
    )
    assert unknown.status_code == 422 and slug(unknown.json()) == "unprocessable"
    token = await hall.http.put("/v1/me/sessions/current/push", json={"token": "device-token-0001"}, headers=me)
    assert token.status_code == 204


async def test_a_completed_bundle_is_a_bundle_message(hall: Hall, sms: SmsGateway) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    created = await hall.http.post(
        "/v1/me/bundles/newborn", json={"form": NEWBORN_FORM}, headers={**me, "Idempotency-Key": "msg-b-1"}
    )
    assert created.status_code == 201, created.text
    bundle_id = created.json()["id"]

    async def settled() -> bool:
        return (await hall.http.get(f"/v1/me/bundles/{bundle_id}", headers=me)).json()["status"] == "completed"

    await eventually(settled, timeout_s=60)
    messages = (await hall.http.get("/v1/me/messages", params={"unread": "true"}, headers=me)).json()["messages"]
    bundles = [m for m in messages if m["category"] == "bundle"]
    assert len(bundles) == 1 and bundles[0]["link"] == {"kind": "bundle", "id": bundle_id}
    assert "已全部办结" in bundles[0]["body"]
