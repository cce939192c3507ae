"""Applications end to end against the real case-owning simulators: submit with idempotency,
the departments' own progress events, the state machine, privacy between citizens."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from core.db import Pool
from services.departments.sms import SmsGateway
from tests.integration.hall.conftest import (
    BIRTH_FORM,
    LI_SI,
    ZHANG_SAN,
    Hall,
    citizen,
    configure_desks,
    department_token,
    eventually,
)

PROBLEM = "https://onecity.example/problems/"


def slug(body: dict[str, Any]) -> str:
    return str(body["type"]).rsplit("/", 1)[-1]


async def submit(
    hall: Hall,
    headers: dict[str, str],
    form: dict[str, Any],
    *,
    key: str | None = None,
    matter: str = "birth-medical-certificate",
) -> Any:
    extra = {"Idempotency-Key": key or str(uuid.uuid4())}
    return await hall.http.post(
        "/v1/me/applications", json={"matter": matter, "form": form}, headers={**headers, **extra}
    )


async def test_submit_needs_an_idempotency_key(hall: Hall, sms: SmsGateway) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    response = await hall.http.post(
        "/v1/me/applications", json={"matter": "birth-medical-certificate", "form": BIRTH_FORM}, headers=me
    )
    assert response.status_code == 400
    assert slug(response.json()) == "idempotency-key-required"


async def test_submit_replay_and_conflict_then_the_department_delivers(hall: Hall, sms: SmsGateway, pool: Pool) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    first = await submit(hall, me, BIRTH_FORM, key="k-1")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "submitted"
    assert [e["status"] for e in body["timeline"]] == ["submitted"]
    assert body["due_at"] > body["submitted_at"]
    again = await submit(hall, me, BIRTH_FORM, key="k-1")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    other = await submit(hall, me, {**BIRTH_FORM, "hospital": "another"}, key="k-1")
    assert other.status_code == 409 and slug(other.json()) == "idempotency-key-reused"

    async def delivered() -> bool:
        got = await hall.http.get(f"/v1/me/applications/{body['id']}", headers=me)
        return bool(got.json()["status"] == "delivered")

    await eventually(delivered)
    got = (await hall.http.get(f"/v1/me/applications/{body['id']}", headers=me)).json()
    assert [e["status"] for e in got["timeline"]] == ["submitted", "accepted", "under_review", "approved", "delivered"]
    stats = await hall.stats("health")
    assert stats["cases"] == {body["number"]: 1}
    # The department's events are audited with the citizen as subject.
    subjects = await pool.fetch(
        "SELECT DISTINCT actor_id, subject_id::text AS subject FROM audit_log WHERE action = 'hall.application.event'"
    )
    assert [(r["actor_id"], r["subject"]) for r in subjects] == [("dept-health", got["id"] and subjects[0]["subject"])]
    listed = (await hall.http.get("/v1/me/applications", headers=me)).json()
    assert [a["id"] for a in listed["applications"]] == [body["id"]]


async def test_form_errors_name_the_field(hall: Hall, sms: SmsGateway) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    bad_id = await submit(hall, me, {**BIRTH_FORM, "parent_id_number": "110101199003070012"})
    assert bad_id.status_code == 422 and bad_id.json()["field"] == "parent_id_number"
    missing = await submit(hall, me, {k: v for k, v in BIRTH_FORM.items() if k != "hospital"})
    assert missing.status_code == 422 and missing.json()["field"] == "hospital"
    stranger = await submit(hall, me, {**BIRTH_FORM, "favourite_colour": "red"})
    assert stranger.status_code == 422 and stranger.json()["field"] == "favourite_colour"
    date = await submit(hall, me, {**BIRTH_FORM, "child_birth_date": "20-11-2026"})
    assert date.status_code == 422 and date.json()["field"] == "child_birth_date"
    nul = await submit(hall, me, {**BIRTH_FORM, "hospital": "Xiangya\x00 Hospital"})
    assert nul.status_code == 422 and nul.json()["field"] == "hospital"
    assert nul.json()["type"].endswith("/unprocessable")
    assert (await hall.http.get("/v1/me/applications", headers=me)).json()["applications"] == []


async def test_a_citizen_never_sees_another_citizens_application(hall: Hall, sms: SmsGateway) -> None:
    zhang = await citizen(hall.http, sms, ZHANG_SAN)
    li = await citizen(hall.http, sms, LI_SI)
    created = (await submit(hall, zhang, BIRTH_FORM)).json()
    for path in ("", "/withdraw"):
        method = hall.http.get if not path else hall.http.post
        response = await method(f"/v1/me/applications/{created['id']}{path}", headers=li)
        assert response.status_code == 404 and slug(response.json()) == "not-found"
    assert (await hall.http.get("/v1/me/applications", headers=li)).json()["applications"] == []


async def test_events_duplicates_out_of_order_illegal_and_foreign(hall: Hall, sms: SmsGateway, pool: Pool) -> None:
    configure_desks(hall.simulators, auto_progress=False)
    me = await citizen(hall.http, sms, ZHANG_SAN)
    app = (await submit(hall, me, BIRTH_FORM)).json()
    health = await department_token(hall.http, "health")
    hukou = await department_token(hall.http, "hukou")
    t0 = dt.datetime.now(dt.UTC)

    async def send(token: dict[str, str], event_id: str, status: str, seconds: int) -> Any:
        at = (t0 + dt.timedelta(seconds=seconds)).isoformat()
        event = {"event_id": event_id, "application_number": app["number"], "status": status, "at": at}
        return await hall.http.post("/v1/departments/events", json=event, headers=token)

    foreign = await send(hukou, "e-x", "accepted", 1)
    assert foreign.status_code == 403
    first = await send(health, "e-1", "accepted", 1)
    assert first.status_code == 202 and first.json()["outcome"] == "applied"
    repeat = await send(health, "e-1", "accepted", 1)
    assert repeat.status_code == 202 and repeat.json()["outcome"] == "duplicate"
    early = await send(health, "e-3", "approved", 3)  # before its under_review
    assert early.status_code == 202 and early.json()["outcome"] == "held"
    assert (await hall.http.get(f"/v1/me/applications/{app['id']}", headers=me)).json()["status"] == "accepted"
    late = await send(health, "e-2", "under_review", 2)
    assert late.status_code == 202
    assert (await hall.http.get(f"/v1/me/applications/{app['id']}", headers=me)).json()["status"] == "approved"
    backwards = await send(health, "e-4", "accepted", 4)  # behind the current state: never legal
    assert backwards.status_code == 409 and slug(backwards.json()) == "illegal-transition"
    citizen_only = await send(health, "e-5", "submitted", 5)
    assert citizen_only.status_code == 409
    assert (await send(health, "e-6", "delivered", 6)).status_code == 202
    after_end = await send(health, "e-7", "approved", 7)
    assert after_end.status_code == 409
    got = (await hall.http.get(f"/v1/me/applications/{app['id']}", headers=me)).json()
    assert [e["status"] for e in got["timeline"]] == ["submitted", "accepted", "under_review", "approved", "delivered"]
    rows = await pool.fetchval("SELECT count(*) FROM hall_application_history WHERE event_id IS NOT NULL")
    assert rows == 4
    unknown = await hall.http.post(
        "/v1/departments/events",
        json={"event_id": "e-9", "application_number": "WJ0000", "status": "accepted", "at": t0.isoformat()},
        headers=health,
    )
    assert unknown.status_code == 404
    anonymous = await hall.http.post(
        "/v1/departments/events",
        json={"event_id": "e-9", "application_number": app["number"], "status": "accepted", "at": t0.isoformat()},
    )
    assert anonymous.status_code == 401
    metrics = (await hall.http.get("/metrics")).text
    for outcome in ("applied", "held", "duplicate", "refused"):
        assert f'onecity_hall_department_events_total{{department="health",outcome="{outcome}"}}' in metrics
    assert app["number"] not in metrics


async def test_a_department_down_is_still_201_submitted_and_delivered_later(hall: Hall, sms: SmsGateway) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    await hall.faults("health", error_rate=1.0)
    created = await submit(hall, me, BIRTH_FORM)
    assert created.status_code == 201 and created.json()["status"] == "submitted"

    async def refused_twice() -> bool:
        return bool((await hall.stats("health"))["requests"].get("POST /v1/cases", 0) >= 2)

    await eventually(refused_twice)
    await hall.faults("health")

    async def delivered() -> bool:
        got = await hall.http.get(f"/v1/me/applications/{created.json()['id']}", headers=me)
        return bool(got.json()["status"] == "delivered")

    await eventually(delivered)
    assert (await hall.stats("health"))["cases"] == {created.json()["number"]: 1}


async def test_the_citizens_ledger_shows_who_handled_their_application(hall: Hall, sms: SmsGateway) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    body = (await submit(hall, me, BIRTH_FORM, key="ledger-1")).json()

    async def delivered() -> bool:
        got = await hall.http.get(f"/v1/me/applications/{body['id']}", headers=me)
        return bool(got.json()["status"] == "delivered")

    await eventually(delivered)
    page = await hall.http.get("/v1/me/data-access", params={"kind": "application_handling"}, headers=me)
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert {i["kind"] for i in items} == {"application_handling"}
    handed = [i for i in items if i["action"] == "delivered_to_department"]
    assert [(i["who"], i["application_number"], i["matter"]) for i in handed] == [
        ({"type": "department", "id": "health"}, body["number"], "birth-medical-certificate")
    ]
    reported = sorted(i["status"] for i in items if i["action"] == "status_reported")
    assert reported == sorted(["accepted", "under_review", "approved", "delivered"])
    # Another citizen's ledger shows none of it.
    other = await citizen(hall.http, sms, LI_SI)
    theirs = await hall.http.get("/v1/me/data-access", params={"kind": "application_handling"}, headers=other)
    assert theirs.json()["items"] == []
