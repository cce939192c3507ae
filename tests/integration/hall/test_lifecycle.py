"""The rest of an application's life: catalogue and prefill, correction and resubmission,
withdrawal, ratings with follow-ups, and the staff queue of a region."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool, connect
from core.migrate import apply_migrations
from identity.staff import StaffAdmin
from services.departments.sms import SmsGateway
from services.simulators import RunningServer
from tests.integration.hall.conftest import (
    BIRTH_FORM,
    ZHANG_SAN,
    Hall,
    citizen,
    configure_desks,
    department_token,
    eventually,
    serve_hall,
    staff_token,
)
from tests.integration.hall.test_applications import slug, submit
from tests.support.backends import DatabaseFactory
from tests.support.citizens import bearer


async def status_of(hall: Hall, headers: dict[str, str], application_id: str) -> str:
    got = await hall.http.get(f"/v1/me/applications/{application_id}", headers=headers)
    return str(got.json()["status"])


async def test_catalogue_search_pages_and_prefill(hall: Hall, sms: SmsGateway) -> None:
    everything = (await hall.http.get("/v1/matters")).json()
    codes = [m["code"] for m in everything["matters"]]
    assert "birth-medical-certificate" in codes and codes == sorted(codes)
    socsec = (await hall.http.get("/v1/matters", params={"department": "socsec"})).json()["matters"]
    assert {m["department"] for m in socsec} == {"socsec"} and len(socsec) == 3
    found = (await hall.http.get("/v1/matters", params={"q": "户口"})).json()["matters"]
    assert [m["code"] for m in found] == ["newborn-household-registration"]
    one = (await hall.http.get("/v1/matters/birth-medical-certificate")).json()
    assert one["department"] == "health" and one["required_level"] == "L3" and one["version"] == 1
    assert (await hall.http.get("/v1/matters/no-such-matter")).status_code == 404

    me = await citizen(hall.http, sms, ZHANG_SAN)
    prefill = (await hall.http.get("/v1/me/matters/social-security-card-replacement/prefill", headers=me)).json()
    assert prefill["form"]["name"] == "张三" and prefill["form"]["id_number"] == "110101199003070011"
    assert prefill["form"]["card_no"]  # read from the social-security department
    assert prefill["sources"] == {"name": "registry", "id_number": "registry", "card_no": "socsec"}
    birth = (await hall.http.get("/v1/me/matters/birth-medical-certificate/prefill", headers=me)).json()
    assert birth["form"]["phone"] == "13800000001" and birth["sources"]["phone"] == "onecity"


async def test_correction_then_resubmission_then_delivered(hall: Hall, sms: SmsGateway) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    app = (await submit(hall, me, {**BIRTH_FORM, "simulate": "correction"})).json()

    async def correction() -> bool:
        return await status_of(hall, me, app["id"]) == "correction_requested"

    await eventually(correction)
    early = await hall.http.post(f"/v1/me/applications/{app['id']}/rating", json={"score": 5}, headers=me)
    assert early.status_code == 409 and slug(early.json()) == "illegal-transition"
    fixed = {**BIRTH_FORM, "hospital": "市第一医院"}
    resubmitted = await hall.http.post(f"/v1/me/applications/{app['id']}/resubmit", json={"form": fixed}, headers=me)
    assert resubmitted.status_code == 200 and resubmitted.json()["status"] == "submitted"
    again = await hall.http.post(f"/v1/me/applications/{app['id']}/resubmit", json={"form": fixed}, headers=me)
    assert again.status_code == 409 and slug(again.json()) == "illegal-transition"

    async def delivered() -> bool:
        return await status_of(hall, me, app["id"]) == "delivered"

    await eventually(delivered)
    timeline = (await hall.http.get(f"/v1/me/applications/{app['id']}", headers=me)).json()["timeline"]
    assert [e["status"] for e in timeline] == [
        "submitted", "accepted", "correction_requested", "submitted",
        "accepted", "under_review", "approved", "delivered",
    ]  # fmt: skip
    stats = await hall.stats("health")
    assert stats["cases"] == {app["number"]: 1}
    assert stats["requests"]["POST /v1/cases/{case_id}/resubmission"] == 1


async def test_withdraw_before_review_only(hall: Hall, sms: SmsGateway) -> None:
    configure_desks(hall.simulators, auto_progress=False)
    me = await citizen(hall.http, sms, ZHANG_SAN)
    first = (await submit(hall, me, BIRTH_FORM)).json()
    withdrawn = await hall.http.post(f"/v1/me/applications/{first['id']}/withdraw", headers=me)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    twice = await hall.http.post(f"/v1/me/applications/{first['id']}/withdraw", headers=me)
    assert twice.status_code == 409

    second = (await submit(hall, me, BIRTH_FORM)).json()
    health = await department_token(hall.http, "health")
    now = dt.datetime.now(dt.UTC)
    for i, status in enumerate(("accepted", "under_review")):
        event = {
            "event_id": f"w-{i}",
            "application_number": second["number"],
            "status": status,
            "at": (now + dt.timedelta(seconds=i)).isoformat(),
        }
        assert (await hall.http.post("/v1/departments/events", json=event, headers=health)).status_code == 202
    late = await hall.http.post(f"/v1/me/applications/{second['id']}/withdraw", headers=me)
    assert late.status_code == 409 and slug(late.json()) == "illegal-transition"
    assert await status_of(hall, me, second["id"]) == "under_review"
    only_withdrawn = (await hall.http.get("/v1/me/applications", params={"status": "withdrawn"}, headers=me)).json()
    assert [a["id"] for a in only_withdrawn["applications"]] == [first["id"]]


async def test_rating_once_and_a_low_score_opens_a_follow_up(
    hall: Hall, sms: SmsGateway, staff_admin: StaffAdmin, pool: Pool
) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    denied = (await submit(hall, me, {**BIRTH_FORM, "simulate": "deny"})).json()
    good = (await submit(hall, me, BIRTH_FORM)).json()

    async def concluded() -> bool:
        return (
            await status_of(hall, me, denied["id"]) == "denied" and await status_of(hall, me, good["id"]) == "delivered"
        )

    await eventually(concluded)
    low = await hall.http.post(
        f"/v1/me/applications/{denied['id']}/rating", json={"score": 1, "comment": "没说明理由"}, headers=me
    )
    assert low.status_code == 201 and low.json()["follow_up"] is True
    high = await hall.http.post(f"/v1/me/applications/{good['id']}/rating", json={"score": 5}, headers=me)
    assert high.status_code == 201 and high.json()["follow_up"] is False
    twice = await hall.http.post(f"/v1/me/applications/{good['id']}/rating", json={"score": 4}, headers=me)
    assert twice.status_code == 409 and slug(twice.json()) == "already-rated"
    out_of_range = await hall.http.post(f"/v1/me/applications/{good['id']}/rating", json={"score": 6}, headers=me)
    assert out_of_range.status_code == 400
    assert await pool.fetchval("SELECT count(*) FROM hall_followups WHERE status = 'open'") == 1

    token = await staff_token(hall.http, sms, staff_admin, region="110101")
    summary = (await hall.http.get("/v1/admin/ratings/summary", headers=bearer(token))).json()
    assert summary == {
        "departments": [{"department": "health", "count": 2, "average": 3.0, "low": 1, "open_follow_ups": 1}]
    }


async def test_staff_queue_is_region_scoped_flags_overdue_and_is_audited(
    hall: Hall, sms: SmsGateway, staff_admin: StaffAdmin, pool: Pool
) -> None:
    configure_desks(hall.simulators, auto_progress=False)
    me = await citizen(hall.http, sms, ZHANG_SAN)  # registered in 110101 (Dongcheng, Beijing)
    apps: list[dict[str, Any]] = [(await submit(hall, me, BIRTH_FORM)).json() for _ in range(2)]
    await pool.execute(
        "UPDATE hall_applications SET due_at = now() - interval '1 day' WHERE id = $1::uuid", apps[0]["id"]
    )
    inside = bearer(await staff_token(hall.http, sms, staff_admin, region="110101"))
    city = bearer(await staff_token(hall.http, sms, staff_admin, region="1101"))
    outside = bearer(await staff_token(hall.http, sms, staff_admin, region="430102"))

    queue = (await hall.http.get("/v1/admin/applications", headers=inside)).json()["applications"]
    assert {a["id"] for a in queue} == {a["id"] for a in apps}
    assert {a["id"]: a["overdue"] for a in queue} == {apps[0]["id"]: True, apps[1]["id"]: False}
    overdue = (await hall.http.get("/v1/admin/applications", params={"overdue": "true"}, headers=city)).json()
    assert [a["id"] for a in overdue["applications"]] == [apps[0]["id"]]
    assert (await hall.http.get("/v1/admin/applications", headers=outside)).json()["applications"] == []
    citizen_token = await hall.http.get("/v1/admin/applications", headers=me)
    assert citizen_token.status_code == 401

    account = await pool.fetchval("SELECT id::text FROM accounts LIMIT 1")
    reads = await pool.fetch(
        "SELECT actor_type, subject_id::text AS subject FROM audit_log WHERE action = 'hall.application.read'"
    )
    assert len(reads) == 3 and {(r["actor_type"], r["subject"]) for r in reads} == {("staff", account)}


async def test_pages_follow_the_cursor_and_a_forged_cursor_is_422(
    settings: Settings, clean: None, pool: Pool, vault: Vault, simulators: dict[str, RunningServer], sms: SmsGateway
) -> None:
    small = msgspec.structs.replace(settings, hall=msgspec.structs.replace(settings.hall, page_size=2))
    async with serve_hall(small, pool, vault, simulators) as hall:
        configure_desks(hall.simulators, auto_progress=False)
        me = await citizen(hall.http, sms, ZHANG_SAN)
        created = [(await submit(hall, me, BIRTH_FORM)).json()["id"] for _ in range(3)]
        first = (await hall.http.get("/v1/me/applications", headers=me)).json()
        assert len(first["applications"]) == 2 and first["next_cursor"]
        second = (
            await hall.http.get("/v1/me/applications", params={"cursor": first["next_cursor"]}, headers=me)
        ).json()
        assert second["next_cursor"] is None
        seen = [a["id"] for a in first["applications"] + second["applications"]]
        assert seen == list(reversed(created))  # newest first, each once
        forged = await hall.http.get("/v1/me/applications", params={"cursor": "not-a-cursor"}, headers=me)
        assert forged.status_code == 422 and forged.json()["field"] == "cursor"

        codes: list[str] = []
        cursor = None
        while True:
            page = (await hall.http.get("/v1/matters", params={"cursor": cursor} if cursor else {})).json()
            codes += [m["code"] for m in page["matters"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(codes) == len(set(codes)) == 9 and codes == sorted(codes)


async def test_the_staff_queue_is_read_from_the_read_replica(
    settings: Settings,
    clean: None,
    pool: Pool,
    vault: Vault,
    simulators: dict[str, RunningServer],
    sms: SmsGateway,
    staff_admin: StaffAdmin,
    database_factory: DatabaseFactory,
) -> None:
    # A second database on the same server stands in for a lagging replica: it has replayed
    # only the first of two applications, so the queue shows what was read from where.
    replica_url = await database_factory.create()
    replica = await connect(replica_url)
    try:
        await apply_migrations(replica)
        database = msgspec.structs.replace(settings.database, read_url=replica_url)
        async with serve_hall(msgspec.structs.replace(settings, database=database), pool, vault, simulators) as hall:
            configure_desks(hall.simulators, auto_progress=False)
            me = await citizen(hall.http, sms, ZHANG_SAN)
            first, _ = [(await submit(hall, me, BIRTH_FORM)).json() for _ in range(2)]
            row = await pool.fetchrow("SELECT * FROM hall_applications WHERE id = $1::uuid", first["id"])
            assert row is not None
            columns = ", ".join(row.keys())
            values = ", ".join(f"${i}" for i in range(1, len(row) + 1))
            async with replica.transaction():
                # As logical replication applies rows: the replica's foreign keys are not re-checked.
                await replica.execute("SET LOCAL session_replication_role = replica")
                await replica.execute(f"INSERT INTO hall_applications ({columns}) VALUES ({values})", *row.values())
            officer = bearer(await staff_token(hall.http, sms, staff_admin, region="110101"))
            queue = await hall.http.get("/v1/admin/applications", headers=officer)
            assert queue.status_code == 200, queue.text
            assert [a["id"] for a in queue.json()["applications"]] == [first["id"]]
    finally:
        await replica.close()
