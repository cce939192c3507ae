"""A department simulator reporting a burst of cases back: at most ``report_concurrency``
events in flight at once, and every event still arrives, once.

Before the bound, every case's report went out at once through one httpx client: behind a
``hall_submit`` burst its connection pool queued thousands of requests and the simulator spent
its event loop sorting that queue, so it answered OneCity's own case submissions in tens of
seconds and the hall's jobs timed out and backed off (bench/RESULTS.md, "after ``hall_submit``").
"""

from __future__ import annotations

from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from services.departments.sms import SmsGateway
from services.simulators import RunningServer
from services.simulators.cases import REPORT_CONCURRENCY, CaseBody
from services.simulators.server import case_desk
from tests.integration.hall.conftest import ZHANG_SAN, citizen, configure_desks, eventually, serve_hall, without_worker

CASES = 60
PATH = ["submitted", "accepted", "under_review", "approved", "delivered"]


async def test_a_burst_of_cases_reports_through_a_bounded_number_of_requests(
    settings: Settings, clean: None, pool: Pool, vault: Vault, simulators: dict[str, RunningServer], sms: SmsGateway
) -> None:
    # No worker: the cases are opened below, all in one go, as a burst of submissions would.
    async with serve_hall(without_worker(settings), pool, vault, simulators) as hall:
        configure_desks(simulators, auto_progress=False)
        me = await citizen(hall.http, sms, ZHANG_SAN)
        numbers = []
        for i in range(CASES):
            response = await hall.http.post(
                "/v1/me/applications",
                json={"matter": "vaccination-record-copy", "form": {"name": "张三", "phone": "13800000001"}},
                headers={**me, "Idempotency-Key": f"burst-{i}"},
            )
            assert response.status_code == 201, response.text
            numbers.append(str(response.json()["number"]))

        desk = case_desk(simulators["health"].app)
        assert desk is not None
        desk.configure(auto_progress=True, step_delay_s=0.0)
        # Every case's first event is due at the same moment.
        for number in numbers:
            desk.open_case(f"{number}:submit", CaseBody(application_number=number, matter="vaccination-record-copy"))

        async def all_delivered() -> bool:
            done = await pool.fetchval("SELECT count(*) FROM hall_applications WHERE status = 'delivered'")
            return bool(done == CASES)

        async def all_reported() -> bool:
            return bool((await hall.stats("health"))["events"].get("sent") == CASES * 4)

        await eventually(all_delivered, timeout_s=120, every_s=0.2)
        await eventually(all_reported)

        stats = await hall.stats("health")
        assert stats["events"] == {"sent": CASES * 4, "in_flight_max": REPORT_CONCURRENCY}  # none given up
        assert stats["cases"] == dict.fromkeys(numbers, 1)
        rows = await pool.fetch(
            "SELECT a.number, array_agg(h.status ORDER BY h.at, h.status) AS statuses"
            " FROM hall_applications a JOIN hall_application_history h ON h.application_id = a.id GROUP BY a.number"
        )
        assert {r["number"]: list(r["statuses"]) for r in rows} == dict.fromkeys(numbers, PATH)
