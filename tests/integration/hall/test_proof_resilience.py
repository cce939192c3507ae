"""Proof: a department down for a while during 200 bundles, and a worker killed mid-saga.
Every bundle completes once the department is back; every step reached its department
exactly once (the simulators count cases per application number)."""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec

from bff.domains import hall_worker
from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from services.departments.sms import SmsGateway
from services.simulators import RunningServer
from tests.integration.hall.conftest import NEWBORN_FORM, ZHANG_SAN, Hall, citizen, eventually, serve_hall

BUNDLES = 200


async def test_a_department_down_during_200_bundles(hall: Hall, sms: SmsGateway, pool: Pool) -> None:
    me = await citizen(hall.http, sms, ZHANG_SAN)
    await hall.faults("hukou", error_rate=1.0)  # every case submission answered 503
    limit = asyncio.Semaphore(8)

    async def start(i: int) -> str:
        async with limit:
            response = await hall.http.post(
                "/v1/me/bundles/newborn", json={"form": NEWBORN_FORM}, headers={**me, "Idempotency-Key": f"nb-{i}"}
            )
            assert response.status_code == 201, response.text  # never a 503 to the citizen
            return str(response.json()["id"])

    started = time.monotonic()
    ids = await asyncio.gather(*(start(i) for i in range(BUNDLES)))

    async def registrations_refused() -> bool:
        refused = (await hall.stats("hukou"))["requests"].get("POST /v1/cases", 0)
        return bool(refused >= BUNDLES)

    await eventually(registrations_refused, timeout_s=120, every_s=0.5)
    running = await pool.fetchval("SELECT count(*) FROM hall_bundles WHERE status = 'running'")
    assert running == BUNDLES  # waiting for hukou, not given up
    await hall.faults("hukou")  # back

    async def all_completed() -> bool:
        done = await pool.fetchval("SELECT count(*) FROM hall_bundles WHERE status = 'completed'")
        return bool(done == BUNDLES)

    await eventually(all_completed, timeout_s=300, every_s=1.0)
    print(f"\n{BUNDLES} bundles completed in {time.monotonic() - started:.1f} s with hukou down for a while")
    view = (await hall.http.get(f"/v1/me/bundles/{ids[0]}", headers=me)).json()
    assert view["status"] == "completed" and {s["status"] for s in view["steps"]} == {"delivered"}
    for department, steps in {"health": 1, "hukou": 1, "socsec": 2}.items():
        cases = (await hall.stats(department))["cases"]
        assert len(cases) == BUNDLES * steps, department
        assert set(cases.values()) == {1}, department  # exactly one case per step


async def test_a_worker_killed_mid_saga_resumes_elsewhere(
    settings: Settings, clean: None, pool: Pool, vault: Vault, simulators: dict[str, RunningServer], sms: SmsGateway
) -> None:
    async with serve_hall(settings, pool, vault, simulators) as hall:
        me = await citizen(hall.http, sms, ZHANG_SAN)
        await hall.faults("hukou", hang=True)  # the registration's submission hangs in flight
        created = await hall.http.post(
            "/v1/me/bundles/newborn", json={"form": NEWBORN_FORM}, headers={**me, "Idempotency-Key": str(uuid.uuid4())}
        )
        bundle_id = created.json()["id"]

        async def registration_in_flight() -> bool:
            picked = await pool.fetchval(
                "SELECT count(*) FROM pgqueuer WHERE status = 'picked' AND entrypoint = 'hall.submit_case'"
            )
            return bool(picked == 1)

        await eventually(registration_in_flight)
        worker = hall.server.app.state.hall_worker
        worker.kill()  # as a crash: its connections die, the job stays picked, no heartbeat
        await hall.faults("hukou")
        await asyncio.sleep(0.5)
        # The registration's job (and any bundle step the health events woke) stays picked.
        stranded = await pool.fetchval(
            "SELECT count(*) FROM pgqueuer WHERE status = 'picked' AND entrypoint = 'hall.submit_case'"
        )
        assert stranded == 1
        # Another process's worker (same code, its own pool) takes over after the heartbeat.
        quick = msgspec.structs.replace(settings.hall, heartbeat_s=2.0)
        assert settings.database.url
        other = hall_worker(hall.server.app.state.hall, settings.database.url, quick)
        await other.start()
        try:

            async def completed() -> bool:
                view = (await hall.http.get(f"/v1/me/bundles/{bundle_id}", headers=me)).json()
                return bool(view["status"] == "completed")

            await eventually(completed, timeout_s=60)
        finally:
            await other.stop()
        numbers = await pool.fetch("SELECT number, department FROM hall_applications")
        for row in numbers:
            cases = (await hall.stats(row["department"]))["cases"]
            assert cases[row["number"]] == 1


async def test_a_spent_retry_budget_needs_attention(
    settings: Settings, clean: None, pool: Pool, vault: Vault, simulators: dict[str, RunningServer], sms: SmsGateway
) -> None:
    short = msgspec.structs.replace(settings, hall=msgspec.structs.replace(settings.hall, retry_budget_s=1.5))
    async with serve_hall(short, pool, vault, simulators) as hall:
        me = await citizen(hall.http, sms, ZHANG_SAN)
        await hall.faults("hukou", error_rate=1.0)
        created = await hall.http.post(
            "/v1/me/bundles/newborn", json={"form": NEWBORN_FORM}, headers={**me, "Idempotency-Key": "budget"}
        )
        bundle_id = created.json()["id"]

        async def attention() -> bool:
            view = (await hall.http.get(f"/v1/me/bundles/{bundle_id}", headers=me)).json()
            return bool(view["status"] == "needs_attention")

        await eventually(attention)
        steps = (await hall.http.get(f"/v1/me/bundles/{bundle_id}", headers=me)).json()["steps"]
        assert [s["status"] for s in steps[1:]] == ["submission_failed", "waiting", "waiting"]
        assert (await hall.stats("hukou"))["requests"]["POST /v1/cases"] >= 2  # it was retried first
        disclosed = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'hall.case.submitted'")
        assert disclosed == 1  # the certificate reached health; nothing reached hukou
