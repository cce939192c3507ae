"""Bundles (一件事) as a saga on the job queue: steps in order, each submitted once, one
progress view; a denial needs attention at once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from services.departments.sms import SmsGateway
from tests.integration.hall.conftest import NEWBORN_FORM, ZHANG_SAN, Hall, citizen, eventually
from tests.integration.hall.test_applications import slug


async def start(hall: Hall, headers: dict[str, str], code: str, form: dict[str, Any], key: str | None = None) -> Any:
    return await hall.http.post(
        f"/v1/me/bundles/{code}", json={"form": form}, headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())}
    )


async def bundle(hall: Hall, headers: dict[str, str], bundle_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await hall.http.get(f"/v1/me/bundles/{bundle_id}", headers=headers)).json()
    return body


async def test_templates_are_listed(hall: Hall) -> None:
    templates = {t["code"]: t for t in (await hall.http.get("/v1/bundles")).json()}
    assert set(templates) == {"newborn", "school-enrolment"}
    assert templates["newborn"]["steps"] == [
        {"matter": "birth-medical-certificate", "after": []},
        {"matter": "newborn-household-registration", "after": ["birth-medical-certificate"]},
        {"matter": "medical-insurance-enrolment", "after": ["newborn-household-registration"]},
        {"matter": "social-security-card", "after": ["newborn-household-registration"]},
    ]


async def test_newborn_runs_in_order_and_completes(hall: Hall, sms: SmsGateway) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    created = await start(hall, me, "newborn", NEWBORN_FORM, key="b-1")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "running" and len(body["steps"]) == 4
    replay = await start(hall, me, "newborn", NEWBORN_FORM, key="b-1")
    assert replay.status_code == 200 and replay.json()["id"] == body["id"]
    other = await start(hall, me, "newborn", {**NEWBORN_FORM, "child_name": "张小四"}, key="b-1")
    assert other.status_code == 409 and slug(other.json()) == "idempotency-key-reused"

    async def completed() -> bool:
        return (await bundle(hall, me, body["id"]))["status"] == "completed"

    await eventually(completed, timeout_s=60)
    view = await bundle(hall, me, body["id"])
    assert {s["status"] for s in view["steps"]} == {"delivered"}
    apps = {s["matter"]: s["application_id"] for s in view["steps"]}
    details = {m: (await hall.http.get(f"/v1/me/applications/{i}", headers=me)).json() for m, i in apps.items()}
    # The registration starts only after the certificate was accepted; the socsec steps after it.
    accepted_at = {m: next(e["at"] for e in d["timeline"] if e["status"] == "accepted") for m, d in details.items()}
    assert details["newborn-household-registration"]["submitted_at"] >= accepted_at["birth-medical-certificate"]
    for later in ("medical-insurance-enrolment", "social-security-card"):
        assert details[later]["submitted_at"] >= accepted_at["newborn-household-registration"]
    for department, matters in {"health": 1, "hukou": 1, "socsec": 2}.items():
        cases = (await hall.stats(department))["cases"]
        assert len(cases) == matters and set(cases.values()) == {1}


async def test_a_denied_step_needs_attention_at_once(hall: Hall, sms: SmsGateway) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    body = (await start(hall, me, "newborn", {**NEWBORN_FORM, "simulate": "deny"})).json()

    async def attention() -> bool:
        return (await bundle(hall, me, body["id"]))["status"] == "needs_attention"

    await eventually(attention)
    steps = (await bundle(hall, me, body["id"]))["steps"]
    # Every step's form says "deny"; later steps start once earlier ones are accepted, so some
    # may be under way, but after the first denial the saga submits nothing more.
    assert "denied" in {s["status"] for s in steps}
    waiting = [s["matter"] for s in steps if s["status"] == "waiting"]
    await asyncio.sleep(1.0)
    later = await bundle(hall, me, body["id"])
    assert later["status"] == "needs_attention"
    assert [s["matter"] for s in later["steps"] if s["status"] == "waiting"] == waiting


async def test_school_enrolment_maps_the_one_form_to_each_step(hall: Hall, sms: SmsGateway) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    form = {
        "parent_name": "张三",
        "parent_id_number": "110101199003070011",
        "phone": "13800000001",
        "child_name": "张小三",
        "child_id_number": "110101201901010010",
        "school_district": "芙蓉区",
    }
    created = await start(hall, me, "school-enrolment", form)
    assert created.status_code == 201, created.text

    async def completed() -> bool:
        return (await bundle(hall, me, created.json()["id"]))["status"] == "completed"

    await eventually(completed, timeout_s=60)
    assert (
        await hall.http.get(
            f"/v1/me/bundles/{created.json()['id']}",
            headers=await citizen(hall.http, sms, ("13800000002", "李四", "110101198512120019")),
        )
    ).status_code == 404
