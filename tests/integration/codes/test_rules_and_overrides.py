"""Health rules as published, versioned data; staff overrides with region checks, audited."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bff.cli import main as onecity
from bff.settings import Settings
from codes.rules import DEFAULT_RULESET, encode_ruleset
from core.db import Pool
from tests.integration.codes.conftest import (
    LI_SI,
    WANG_WU,
    ZHANG_SAN,
    App,
    Demo,
    StaffHeaders,
    Verify,
    account_id_of,
    issue,
)

ADMIN = ("admin",)


def _rules(version: int, **extra: Any) -> dict[str, Any]:
    """The default rules plus a booster rule: fewer than 4 doses is yellow."""
    document = json.loads(encode_ruleset(DEFAULT_RULESET))
    document["version"] = version
    document["description"] = f"v{version}: booster required"
    document["rules"].append(
        {
            "id": "booster",
            "status": "Y",
            "reason": "no_booster",
            "when": {"kind": "vaccination_doses_below", "count": 4},
        }
    )
    document.update(extra)
    return document


def _until(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


async def test_publishing_a_version_changes_the_next_codes(
    app: App, demo: Demo, staff: StaffHeaders, pool: Pool, verify: Verify
) -> None:
    before = await issue(app.client, demo[ZHANG_SAN])
    assert before["status"] == "G" and before["rule_version"] == 1
    response = await app.client.post("/v1/admin/health-rules", json=_rules(2), headers=staff(ADMIN, "11"))
    assert response.status_code == 201, response.text
    published = response.json()
    assert published["version"] == 2 and published["active"] is True
    assert published["published_by"] == "staff:officer-1"
    after = await issue(app.client, demo[ZHANG_SAN])
    assert after["status"] == "Y" and after["rule_version"] == 2 and after["reasons"] == ["no_booster"]
    overview = {c["type"]: c for c in (await app.client.get("/v1/me/codes", headers=demo[ZHANG_SAN])).json()["codes"]}
    assert overview["health"]["rule_version"] == 2 and overview["health"]["reasons"] == ["no_booster"]
    # The old code keeps the rv it was decided with, and still verifies (current status: Y).
    old = await verify(before["payload"])
    assert old["valid"] and old["status"] == "Y"
    audit = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'codes.rules.publish'")
    assert audit is not None and audit["actor_id"] == "officer-1" and audit["details"]["version"] == 2
    listed = (await app.client.get("/v1/admin/health-rules", headers=staff(ADMIN, "11"))).json()["versions"]
    assert listed[0]["version"] == 2 and listed[0]["active"]
    one = (await app.client.get("/v1/admin/health-rules/2", headers=staff(ADMIN, "11"))).json()
    assert one["document"]["rules"][-1]["id"] == "booster"
    assert (await app.client.get("/v1/admin/health-rules/1", headers=staff(ADMIN, "11"))).json()["version"] == 1
    assert (await app.client.get("/v1/admin/health-rules/9", headers=staff(ADMIN, "11"))).status_code == 404


async def test_versions_only_go_up_and_documents_are_checked(app: App, staff: StaffHeaders) -> None:
    headers = staff(ADMIN, "11")
    assert (await app.client.post("/v1/admin/health-rules", json=_rules(1), headers=headers)).status_code == 409
    assert (await app.client.post("/v1/admin/health-rules", json=_rules(3), headers=headers)).status_code == 201
    again = await app.client.post("/v1/admin/health-rules", json=_rules(3), headers=headers)
    assert again.status_code == 409 and again.json()["current_version"] == 3
    assert (await app.client.post("/v1/admin/health-rules", json=_rules(2), headers=headers)).status_code == 409
    typo = _rules(4)
    typo["rules"][0]["when"] = {"kind": "positive_test_within", "day": 14}
    response = await app.client.post("/v1/admin/health-rules", json=typo, headers=headers)
    assert response.status_code == 400 and "day" in response.json()["detail"]
    huge = await app.client.post("/v1/admin/health-rules", json=_rules(2**40), headers=headers)
    assert huge.status_code == 400
    duplicate = _rules(4)
    duplicate["rules"].append(duplicate["rules"][0])
    response = await app.client.post("/v1/admin/health-rules", json=duplicate, headers=headers)
    assert response.status_code == 422 and "duplicate rule id" in response.json()["detail"]


async def test_only_administrators_publish(app: App, staff: StaffHeaders, demo: Demo) -> None:
    for headers in (staff(("health_officer",)), staff(("auditor",))):
        assert (await app.client.post("/v1/admin/health-rules", json=_rules(2), headers=headers)).status_code == 403
    assert (await app.client.post("/v1/admin/health-rules", json=_rules(2), headers=demo[ZHANG_SAN])).status_code == 401
    assert (await app.client.post("/v1/admin/health-rules", json=_rules(2))).status_code == 401


async def test_cli_publishes_too(app: App, settings: Settings, tmp_path: Path) -> None:
    document = tmp_path / "rules.json"
    document.write_text(json.dumps(_rules(5)))

    def publish(path: str) -> int:
        return onecity(["codes", "rules", "publish", path], settings=settings)

    assert await asyncio.to_thread(publish, str(document)) == 0
    assert await asyncio.to_thread(publish, str(document)) == 1  # same version again
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 9, "rules": []}')
    assert await asyncio.to_thread(publish, str(bad)) == 1
    app.state.codes.rules._loaded_at = float("-inf")  # as after rules_refresh_s
    assert (await app.state.codes.rules.active()).version == 5


# --- overrides -----------------------------------------------------------------------------


async def test_override_takes_effect_on_the_next_code_and_is_audited(
    app: App, demo: Demo, staff: StaffHeaders, pool: Pool
) -> None:
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    assert (await issue(app.client, demo[ZHANG_SAN]))["status"] == "G"
    until = _until(3 * 86400)
    response = await app.client.put(
        f"/v1/admin/citizens/{account_id}/health-status",
        json={"status": "R", "reason": "contact of a confirmed case", "until": until},
        headers=staff(staff_id="officer-7"),
    )
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["status"] == "R" and view["set_by"] == "officer-7" and view["account_id"] == account_id
    code = await issue(app.client, demo[ZHANG_SAN])
    assert code["status"] == "R" and code["reasons"][-1] == "staff_override"
    overview = {c["type"]: c for c in (await app.client.get("/v1/me/codes", headers=demo[ZHANG_SAN])).json()["codes"]}
    assert overview["health"]["overridden"] is True and overview["health"]["status"] == "R"
    audit = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'codes.health_override.set'")
    assert audit is not None
    assert (audit["actor_type"], audit["actor_id"], audit["subject_id"]) == ("staff", "officer-7", account_id)
    assert audit["details"]["status"] == "R" and audit["details"]["reason"] == "contact of a confirmed case"
    shown = await app.client.get(f"/v1/admin/citizens/{account_id}/health-status", headers=staff())
    assert shown.status_code == 200 and shown.json()["status"] == "R"
    # Lifting it: the rules decide again.
    assert (
        await app.client.delete(f"/v1/admin/citizens/{account_id}/health-status", headers=staff())
    ).status_code == 204
    assert (await issue(app.client, demo[ZHANG_SAN]))["status"] == "G"
    assert (
        await app.client.delete(f"/v1/admin/citizens/{account_id}/health-status", headers=staff())
    ).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'codes.health_override.lift'") == 1


async def test_a_milder_override_clears_a_false_positive(app: App, demo: Demo, staff: StaffHeaders) -> None:
    account_id = await account_id_of(app.client, demo[LI_SI])
    response = await app.client.put(
        f"/v1/admin/citizens/{account_id}/health-status",
        json={"status": "G", "reason": "lab confirmed a false positive", "until": _until(86400)},
        headers=staff(),
    )
    assert response.status_code == 200
    code = await issue(app.client, demo[LI_SI])
    assert code["status"] == "G" and "positive_test" in code["reasons"] and code["reasons"][-1] == "staff_override"


async def test_a_lapsed_override_is_ignored(app: App, demo: Demo, staff: StaffHeaders, pool: Pool) -> None:
    account_id = await account_id_of(app.client, demo[WANG_WU])
    response = await app.client.put(
        f"/v1/admin/citizens/{account_id}/health-status",
        json={"status": "G", "reason": "cleared after a negative test", "until": _until(3600)},
        headers=staff(),
    )
    assert response.status_code == 200
    assert (await issue(app.client, demo[WANG_WU]))["status"] == "G"
    await pool.execute("UPDATE health_overrides SET until = now() - interval '1 minute'")
    assert (await issue(app.client, demo[WANG_WU]))["status"] == "Y"


@pytest.mark.parametrize(
    ("roles", "region", "expected"),
    [
        (("health_officer",), "110101", 200),  # the citizen's district
        (("health_officer",), "1101", 200),  # the whole city
        (("admin",), "110101", 200),
        (("health_officer",), "110102", 403),  # another district
        (("health_officer",), "1102", 403),  # another city
        (("health_officer",), "110101001", 403),  # a street: finer than the record, fails closed
        (("auditor",), "110101", 403),  # a role that does not set statuses
    ],
)
async def test_override_needs_a_covering_region_and_role(
    app: App, demo: Demo, staff: StaffHeaders, roles: tuple[str, ...], region: str, expected: int
) -> None:
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    response = await app.client.put(
        f"/v1/admin/citizens/{account_id}/health-status",
        json={"status": "Y", "reason": "pending investigation", "until": _until(3600)},
        headers=staff(roles, region),
    )
    assert response.status_code == expected, response.text
    code = await issue(app.client, demo[ZHANG_SAN])
    assert code["status"] == ("Y" if expected == 200 else "G")
    read = await app.client.get(f"/v1/admin/citizens/{account_id}/health-status", headers=staff(roles, region))
    assert read.status_code == (200 if expected == 200 else 403)


async def test_override_input_is_checked(app: App, demo: Demo, staff: StaffHeaders) -> None:
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    path = f"/v1/admin/citizens/{account_id}/health-status"
    cases = [
        ({"status": "R", "reason": "x reason", "until": _until(-60)}, 422),
        ({"status": "R", "reason": "x reason", "until": _until(400 * 86400)}, 422),
        ({"status": "B", "reason": "x reason", "until": _until(60)}, 400),
        ({"status": "R", "until": _until(60)}, 400),
        ({"status": "R", "reason": "x reason", "until": "tomorrow"}, 400),
    ]
    for body, status in cases:
        response = await app.client.put(path, json=body, headers=staff())
        assert response.status_code == status, (body, response.text)
    good = {"status": "R", "reason": "a good reason", "until": _until(60)}
    missing = "/v1/admin/citizens/00000000-0000-4000-8000-000000000000/health-status"
    assert (await app.client.put(missing, json=good, headers=staff())).status_code == 404
    assert (
        await app.client.put("/v1/admin/citizens/not-a-uuid/health-status", json=good, headers=staff())
    ).status_code in (
        400,
        404,
    )
    assert (await app.client.put(path, json=good, headers=demo[ZHANG_SAN])).status_code == 401
    assert (await app.client.put(path, json=good)).status_code == 401
