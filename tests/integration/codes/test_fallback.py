"""When a department does not answer: the last known status while fresh, then the fallback."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from core.db import Pool
from tests.integration.codes.conftest import LI_SI, ZHANG_SAN, App, Demo, StaffHeaders, Verify, account_id_of, issue

Faults = Callable[[str], Awaitable[None]]


async def _overview(app: App, headers: dict[str, str]) -> dict[str, dict[str, object]]:
    response = await app.client.get("/v1/me/codes", headers=headers)
    assert response.status_code == 200, response.text
    return {c["type"]: c for c in response.json()["codes"]}


async def test_nothing_known_falls_back_to_yellow_never_green(app: App, demo: Demo, faults: Faults) -> None:
    await faults("health")
    code = await issue(app.client, demo[ZHANG_SAN])  # 张三 would be green
    assert code["status"] == "Y"
    assert code["reasons"] == ["health_data_unavailable"] and code["rule_version"] == 1
    health = (await _overview(app, demo[ZHANG_SAN]))["health"]
    assert health["status"] == "Y" and health["source"] == "fallback"


async def test_last_known_status_stands_in_while_fresh(app: App, demo: Demo, faults: Faults, verify: Verify) -> None:
    red = await issue(app.client, demo[LI_SI])
    assert red["status"] == "R"
    await faults("health")
    code = await issue(app.client, demo[LI_SI])
    assert code["status"] == "R" and code["reasons"] == red["reasons"]
    health = (await _overview(app, demo[LI_SI]))["health"]
    assert health["source"] == "last_known" and health["status"] == "R"
    assert (await verify(code["payload"]))["status"] == "R"


async def test_stale_last_known_status_gives_the_fallback(app: App, demo: Demo, faults: Faults, pool: Pool) -> None:
    assert (await issue(app.client, demo[ZHANG_SAN]))["status"] == "G"
    fresh_s = app.state.codes.settings.status_fresh_s
    await pool.execute("UPDATE holder_status SET decided_at = now() - make_interval(secs => $1)", float(fresh_s + 3600))
    await faults("health")
    code = await issue(app.client, demo[ZHANG_SAN])
    assert code["status"] == "Y" and code["reasons"] == ["health_data_unavailable"]


async def test_an_override_still_applies_without_department_data(
    app: App, demo: Demo, faults: Faults, staff: StaffHeaders
) -> None:
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    response = await app.client.put(
        f"/v1/admin/citizens/{account_id}/health-status",
        json={"status": "R", "reason": "confirmed case", "until": until},
        headers=staff(),
    )
    assert response.status_code == 200
    await faults("health")
    code = await issue(app.client, demo[ZHANG_SAN])
    assert code["status"] == "R" and code["reasons"] == ["health_data_unavailable", "staff_override"]


async def test_transit_without_any_status_is_unavailable(app: App, demo: Demo, faults: Faults) -> None:
    await faults("transport")
    response = await app.client.post("/v1/me/codes/transit", headers=demo[ZHANG_SAN])
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "retry-after" in response.headers
    transit = (await _overview(app, demo[ZHANG_SAN]))["transit"]
    assert transit["status"] is None and transit["source"] == "unavailable"


async def test_transit_uses_the_last_known_card_status(app: App, demo: Demo, faults: Faults) -> None:
    assert (await issue(app.client, demo[ZHANG_SAN], "transit"))["status"] == "A"
    await faults("transport")
    assert (await issue(app.client, demo[ZHANG_SAN], "transit"))["status"] == "A"
    assert (await _overview(app, demo[ZHANG_SAN]))["transit"]["source"] == "last_known"
