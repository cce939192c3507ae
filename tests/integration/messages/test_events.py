"""Live events: across two app instances within a second, resumption without gap or repeat,
keep-alives, the per-citizen stream limit."""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec

from bff.app import create_app
from bff.settings import Settings
from services.departments.sms import SmsGateway
from services.simulators import start_in_process
from tests.integration.hall.conftest import Hall, eventually
from tests.integration.hall.test_applications import slug
from tests.integration.messages.conftest import open_events
from tests.integration.messages.test_inbox import event, manual


async def test_a_message_produced_on_instance_b_reaches_a_stream_on_instance_a_within_a_second(
    hall: Hall, sms: SmsGateway, settings: Settings
) -> None:
    me, app, dept = await manual(hall, sms)
    other = await start_in_process(create_app(settings))  # instance B: same PostgreSQL and Redis
    try:
        async with httpx.AsyncClient(base_url=other.base_url, timeout=30.0) as b, open_events(hall.http, me) as stream:
            started = time.monotonic()
            sent = await b.post("/v1/departments/events", json=event(app["number"], "accepted", "ev-1"), headers=dept)
            assert sent.status_code == 202, sent.text
            got = await stream.next(timeout_s=1.0)
            assert time.monotonic() - started < 1.0
            assert got["json"]["category"] == "application" and got["json"]["link"]["id"] == app["id"]
            assert got["id"] == got["json"]["id"]
            assert stream.response.headers["cache-control"] == "no-cache"
            assert stream.response.headers["x-accel-buffering"] == "no"
            assert stream.response.headers["content-type"].startswith("text/event-stream")
    finally:
        await other.stop()


async def test_resume_after_a_dropped_connection_has_no_gap_and_no_repeat(hall: Hall, sms: SmsGateway) -> None:
    me, app, dept = await manual(hall, sms)

    async def report(status: str, n: int) -> None:
        sent = await hall.http.post(
            "/v1/departments/events", json=event(app["number"], status, f"ev-{n}", n), headers=dept
        )
        assert sent.status_code == 202, sent.text

    async with open_events(hall.http, me) as stream:
        await report("accepted", 1)
        first = await stream.next()
    # Dropped; two changes happen while the app is away.
    await report("under_review", 2)
    await report("approved", 3)
    async with open_events(hall.http, me, last_event_id=first["id"]) as resumed:
        missed = [await resumed.next(), await resumed.next()]
        assert ["审核中" in missed[0]["data"], "已办结" in missed[1]["data"]] == [True, True]
        assert int(first["id"]) < int(missed[0]["id"]) < int(missed[1]["id"])
        await resumed.nothing_within(1.2)  # two keep-alive catch-ups later: nothing repeated
        assert resumed.comments >= 2  # the opening comment and keep-alives
        await report("delivered", 4)
        live = await resumed.next()
        assert "已送达" in live["data"] and int(live["id"]) > int(missed[1]["id"])

    # A stream opened without Last-Event-ID starts with new events only.
    async with open_events(hall.http, me) as fresh:
        await fresh.nothing_within(0.8)


async def test_one_stream_too_many_is_429_until_one_closes(hall: Hall, sms: SmsGateway) -> None:
    me, _, _ = await manual(hall, sms)
    async with open_events(hall.http, me), open_events(hall.http, me):
        third = await hall.http.get("/v1/me/events", headers=me)
        assert third.status_code == 429 and slug(third.json()) == "too-many-streams"
        assert third.headers["retry-after"]

    async def can_open() -> bool:
        async with hall.http.stream("GET", "/v1/me/events", headers=me) as response:
            return response.status_code == 200

    await eventually(can_open, timeout_s=10)
    await asyncio.sleep(0)


async def test_open_streams_hold_no_admission_slot(hall: Hall, sms: SmsGateway, settings: Settings) -> None:
    me, _, _ = await manual(hall, sms)
    # A worker that serves two requests at once, one of them tier 2: if waiting streams held
    # slots, the second stream and every later tier 2 request would be shed as overloaded.
    tight = msgspec.structs.replace(settings, peak=msgspec.structs.replace(settings.peak, max_in_flight=2))
    small = await start_in_process(create_app(tight))
    try:
        async with (
            httpx.AsyncClient(base_url=small.base_url, timeout=30.0) as http,
            open_events(http, me),
            open_events(http, me),
        ):
            inbox = await http.get("/v1/me/messages", headers=me)
            assert inbox.status_code == 200, inbox.text
            assert "messages" in inbox.json()
    finally:
        await small.stop()
