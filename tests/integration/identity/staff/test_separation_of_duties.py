"""Separation of duties (三员分立): system administrator, security administrator and auditor
are three accounts; the auditor reads the audit log and changes nothing."""

from __future__ import annotations

import asyncio
import io
import re
import time
from pathlib import Path

import asyncpg
import msgspec
import pytest
from httpx import AsyncClient as AsyncTestClient

from bff.app import create_app
from bff.cli import main as onecity
from bff.settings import Settings
from core.audit import AuditEvent, write_audit
from core.crypto import Vault
from core.db import Pool
from identity.seed import seed_demo_citizens
from identity.staff import SeparationOfDuties, StaffAdmin, StaffAdminError
from identity.staff.schemas import StaffProfile
from identity.tokens import AccessTokens
from tests.integration.identity.staff.conftest import PASSWORD, add_member, staff_headers
from tests.support.citizens import bearer

MIGRATION = Path(__file__).resolve().parents[4] / "migrations" / "0015_staff_separation_of_duties.sql"


def _type(response_json: dict[str, object]) -> str:
    return str(response_json["type"]).rsplit("/", 1)[-1]


@pytest.mark.parametrize(
    "roles",
    [
        ["system_admin", "security_admin"],
        ["system_admin", "auditor"],
        ["security_admin", "auditor"],
        ["auditor", "health_officer"],
        ["system_admin", "security_admin", "auditor"],
    ],
)
async def test_staff_add_refuses_combined_duties(clean: None, staff_admin: StaffAdmin, roles: list[str]) -> None:
    with pytest.raises(SeparationOfDuties, match="separation of duties"):
        await add_member(staff_admin, "two.hats", roles)


async def test_cli_staff_add_refuses_combined_duties(
    clean: None, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pool: Pool
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    argv = ["add", "root.of.all", "--name", "R", "--phone", "13700000003", "--region", "4301", "--password-stdin"]
    argv += ["--role", "system_admin", "--role", "auditor"]
    code = await asyncio.to_thread(onecity, ["staff", *argv], settings=settings)
    assert code == 2
    assert "separation of duties" in capsys.readouterr().err
    assert await pool.fetchval("SELECT count(*) FROM staff") == 0


async def test_the_database_refuses_combined_duties_from_any_writer(
    clean: None, staff_admin: StaffAdmin, pool: Pool
) -> None:
    member = await add_member(staff_admin, "sys.admin", ["system_admin"])
    for roles in (["system_admin", "auditor"], ["system_admin", "security_admin"], ["auditor", "health_officer"]):
        with pytest.raises(asyncpg.CheckViolationError, match="staff_separation_of_duties"):
            await pool.execute("UPDATE staff SET roles = $2 WHERE id = $1::uuid", member.id, roles)
    with pytest.raises(asyncpg.CheckViolationError, match="staff_roles_known"):
        await pool.execute("UPDATE staff SET roles = $2 WHERE id = $1::uuid", member.id, ["admin"])


async def test_migration_maps_the_old_roles(clean: None, pool: Pool, vault: Vault) -> None:
    """Run 0015 on staff rows of the 0011 era (inside a transaction that is rolled back)."""
    phone = vault.encrypt_text("13700000009", context="staff-phone")
    old_rows = {
        "old.admin": ["admin"],
        "old.mixed": ["admin", "health_officer", "auditor"],
        "old.officer": ["health_officer"],
        "old.auditor": ["auditor"],
        "old.officer.auditor": ["health_officer", "auditor"],
    }
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("ALTER TABLE staff DROP CONSTRAINT staff_roles_known")
            await conn.execute("ALTER TABLE staff DROP CONSTRAINT staff_separation_of_duties")
            await conn.execute(
                "ALTER TABLE staff ADD CONSTRAINT staff_roles_check CHECK (cardinality(roles) > 0 "
                "AND roles <@ ARRAY['health_officer', 'auditor', 'admin']::text[])"
            )
            for username, roles in old_rows.items():
                await conn.execute(
                    "INSERT INTO staff (username, display_name, phone_enc, password_hash, roles, region_code) "
                    "VALUES ($1, 'n', $2, 'x', $3, '4301')",
                    username,
                    phone,
                    roles,
                )
            await conn.execute(MIGRATION.read_text())
            mapped = {r["username"]: r["roles"] for r in await conn.fetch("SELECT username, roles FROM staff")}
            audited = await conn.fetch(
                "SELECT details FROM audit_log WHERE action = 'staff.roles.changed' AND actor_id = 'migration-0015'"
            )
        finally:
            await transaction.rollback()
    assert mapped == {
        "old.admin": ["system_admin"],
        "old.mixed": ["system_admin", "health_officer"],
        "old.officer": ["health_officer"],  # health officers keep what they had
        "old.auditor": ["auditor"],
        "old.officer.auditor": ["health_officer"],
    }
    assert sorted(tuple(r["details"]["to"]) for r in audited) == [
        ("health_officer",),
        ("system_admin", "health_officer"),
    ]


async def test_security_admin_changes_roles_but_never_into_combined_duties(
    client: AsyncTestClient, staff_admin: StaffAdmin, tokens: AccessTokens, pool: Pool
) -> None:
    security = await add_member(staff_admin, "sec.admin", ["security_admin"], region="1101")
    system = await add_member(staff_admin, "sys.admin", ["system_admin"], region="1101")
    officer = await add_member(staff_admin, "officer.one", ["health_officer"])
    path = f"/v1/admin/staff/{officer.id}/roles"

    ok = await client.put(
        path, json={"roles": ["health_officer", "system_admin"]}, headers=staff_headers(tokens, security)
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["roles"] == ["health_officer", "system_admin"]
    audit = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'staff.roles.changed'")
    assert (audit["actor_id"], audit["subject_id"]) == (security.id, officer.id)
    assert audit["details"] == {"from": ["health_officer"], "to": ["health_officer", "system_admin"]}

    combined = await client.put(
        path, json={"roles": ["system_admin", "auditor"]}, headers=staff_headers(tokens, security)
    )
    assert combined.status_code == 422
    assert _type(combined.json()) == "separation-of-duties"
    assert await pool.fetchval("SELECT roles FROM staff WHERE id = $1::uuid", officer.id) == [
        "health_officer",
        "system_admin",
    ]

    unknown = await client.put(path, json={"roles": ["superuser"]}, headers=staff_headers(tokens, security))
    assert unknown.status_code == 422
    by_sysadmin = await client.put(path, json={"roles": ["health_officer"]}, headers=staff_headers(tokens, system))
    assert by_sysadmin.status_code == 403 and _type(by_sysadmin.json()) == "forbidden"
    own = await client.put(
        f"/v1/admin/staff/{security.id}/roles",
        json={"roles": ["security_admin", "health_officer"]},
        headers=staff_headers(tokens, security),
    )
    assert own.status_code == 403
    missing = await client.put(
        "/v1/admin/staff/00000000-0000-4000-8000-000000000000/roles",
        json={"roles": ["health_officer"]},
        headers=staff_headers(tokens, security),
    )
    assert missing.status_code == 404


async def test_role_changes_are_refused_on_the_command_line_too(clean: None, staff_admin: StaffAdmin) -> None:
    await add_member(staff_admin, "auditor.one", ["auditor"])
    with pytest.raises(SeparationOfDuties):
        await staff_admin.set_roles("auditor.one", ["auditor", "security_admin"])
    with pytest.raises(StaffAdminError, match="no staff member"):
        await staff_admin.set_roles("nobody.here", ["auditor"])


async def test_every_state_changing_admin_endpoint_refuses_an_auditor(
    client: AsyncTestClient, settings: Settings, staff_admin: StaffAdmin, tokens: AccessTokens, pool: Pool
) -> None:
    """Enumerated from the app itself, so an endpoint added later is covered too."""
    auditor = staff_headers(tokens, await add_member(staff_admin, "auditor.city", ["auditor"], region="1101"))
    target = await add_member(staff_admin, "officer.one", ["health_officer"], phone="13700000006")
    samples = {"uuid": target.id, "str": "AAAAAAAAAAA", "int": "1"}
    writes = [
        (method, re.sub(r"\{[a-z_]+:([a-z]+)\}", lambda m: samples.get(m.group(1), "x"), route.path))
        for route in create_app(settings).routes
        if route.path.startswith("/v1/admin/")
        for method in sorted(route.methods)
        if method in ("POST", "PUT", "PATCH", "DELETE")
    ]
    assert len(writes) >= 6  # health status put/delete, rules, venues, venue code, staff roles
    before = await pool.fetchval("SELECT count(*) FROM audit_log")
    for method, path in writes:
        response = await client.request(method, path, json={"roles": ["auditor"]}, headers=auditor)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["type"].endswith("/auditor-read-only"), (method, path)
    assert await pool.fetchval("SELECT roles FROM staff WHERE id = $1::uuid", target.id) == ["health_officer"]
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == before  # nothing changed, nothing logged


async def test_the_auditor_reads_the_audit_log_in_pages_within_their_region(
    client: AsyncTestClient, staff_admin: StaffAdmin, tokens: AccessTokens, pool: Pool, vault: Vault
) -> None:
    await seed_demo_citizens(pool, vault)
    citizen = await pool.fetchval("SELECT id::text FROM accounts WHERE region_code = '110101' LIMIT 1")
    neighbour = await add_member(staff_admin, "officer.xicheng", ["health_officer"], region="110102")
    city = staff_headers(tokens, await add_member(staff_admin, "auditor.city", ["auditor"], "1101", "13700000007"))
    district_auditor = await add_member(staff_admin, "auditor.dc", ["auditor"], "110101", "13700000008")
    district = staff_headers(tokens, district_auditor)
    await write_audit(
        pool,
        [AuditEvent(action="test.citizen", outcome="success", subject_id=citizen) for _ in range(3)]
        + [AuditEvent(action="test.neighbour", outcome="success", subject_id=neighbour.id)]
        + [AuditEvent(action="test.partner", outcome="success", subject_id="demo-partner")],
    )

    seen: list[str] = []
    cursor = None
    while True:
        query = {"action": "test.*", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/admin/audit", params=query, headers=city)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["events"]) <= 2
        seen += [e["action"] for e in body["events"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["test.partner", "test.neighbour", "test.citizen", "test.citizen", "test.citizen"]

    scoped = (await client.get("/v1/admin/audit", params={"action": "test.*"}, headers=district)).json()
    assert [e["action"] for e in scoped["events"]] == ["test.citizen"] * 3
    assert {e["subject_id"] for e in scoped["events"]} == {citizen}
    exact = (await client.get("/v1/admin/audit", params={"action": "test.partner"}, headers=city)).json()
    assert [e["subject_id"] for e in exact["events"]] == ["demo-partner"]
    future = await client.get("/v1/admin/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=city)
    assert future.json() == {"events": [], "next_cursor": None}
    naive = await client.get(
        "/v1/admin/audit", params={"since": "2000-01-01T00:00:00", "action": "test.*"}, headers=city
    )
    assert naive.status_code == 200 and len(naive.json()["events"]) == 5

    reads = await pool.fetch("SELECT actor_id FROM audit_log WHERE action = 'audit.read'")
    assert district_auditor.id in {r["actor_id"] for r in reads}  # the auditors are audited too
    bad = await client.get("/v1/admin/audit", params={"cursor": "not-a-cursor"}, headers=city)
    assert bad.status_code == 400
    bad_action = await client.get("/v1/admin/audit", params={"action": "DROP TABLE"}, headers=city)
    assert bad_action.status_code == 400


@pytest.mark.parametrize("roles", [["system_admin"], ["security_admin"], ["health_officer"]])
async def test_only_auditors_read_the_audit_log(
    client: AsyncTestClient, staff_admin: StaffAdmin, tokens: AccessTokens, roles: list[str]
) -> None:
    headers = staff_headers(tokens, await add_member(staff_admin, "not.auditor", roles, region="1101"))
    response = await client.get("/v1/admin/audit", headers=headers)
    assert response.status_code == 403 and _type(response.json()) == "forbidden"
    assert (await client.get("/v1/admin/audit")).status_code == 401


async def test_cli_roles_and_recover(
    clean: None, settings: Settings, staff_admin: StaffAdmin, pool: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    async def cli(*argv: str) -> int:
        return await asyncio.to_thread(onecity, ["staff", *argv], settings=settings)

    member = await add_member(staff_admin, "officer.one", ["health_officer"])
    assert await cli("roles", "officer.one", "--role", "health_officer", "--role", "security_admin") == 0
    assert "officer.one: health_officer, security_admin" in capsys.readouterr().out
    assert await cli("roles", "officer.one", "--role", "security_admin", "--role", "system_admin") == 2
    assert "separation of duties" in capsys.readouterr().err
    assert await pool.fetchval("SELECT roles FROM staff WHERE id = $1::uuid", member.id) == [
        "health_officer",
        "security_admin",
    ]
    assert await cli("recover", "officer.one") == 0
    assert "0 security key(s) revoked" in capsys.readouterr().out
    actions = [
        r["action"]
        for r in await pool.fetch("SELECT action FROM audit_log WHERE subject_id = $1 ORDER BY id", member.id)
    ]
    assert actions == ["staff.added", "staff.roles.changed", "staff.authenticator.recovery"]
    assert await cli("recover", "nobody.here") == 2


async def test_a_role_change_or_a_recovery_ends_the_members_live_tokens(
    client: AsyncTestClient, staff_admin: StaffAdmin, tokens: AccessTokens
) -> None:
    security = await add_member(staff_admin, "sec.admin", ["security_admin"], region="1101")
    officer = await add_member(staff_admin, "officer.one", ["health_officer", "system_admin"], phone="13700000006")

    def issued_seconds_ago(profile: StaffProfile, seconds: int) -> dict[str, str]:
        token, _ = tokens.issue(
            subject=profile.id,
            client_id="onecity-staff",
            audience="onecity-staff",
            extra={"roles": profile.roles, "region": profile.region},
            now=int(time.time()) - seconds,
        )
        return bearer(token)

    live = issued_seconds_ago(officer, 5)
    assert (await client.get("/v1/staff/me", headers=live)).status_code == 200
    security_headers = staff_headers(tokens, security)
    changed = await client.put(
        f"/v1/admin/staff/{officer.id}/roles", json={"roles": ["health_officer"]}, headers=security_headers
    )
    assert changed.status_code == 200
    # The old token still says system_admin: it is refused everywhere, not just downgraded.
    assert (await client.get("/v1/staff/me", headers=live)).status_code == 401
    assert (await client.post("/v1/admin/health-rules", json={}, headers=live)).status_code == 401
    after = StaffProfile(**{**msgspec.structs.asdict(officer), "roles": ["health_officer"]})
    assert (await client.get("/v1/staff/me", headers=staff_headers(tokens, after))).status_code == 200

    # The check has one-second resolution (JWT iat): a token of the same second survives.
    await asyncio.sleep(2.1)
    live = issued_seconds_ago(after, 1)
    assert (await client.get("/v1/staff/me", headers=live)).status_code == 200
    await staff_admin.recover(officer.username, actor_id="cli")
    assert (await client.get("/v1/staff/me", headers=live)).status_code == 401
