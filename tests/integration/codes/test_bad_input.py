"""Junk at every codes endpoint is a 4xx problem document, never a 500; nothing leaks."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from core.db import Pool
from tests.integration.codes.conftest import ZHANG_SAN, App, Demo, PartnerHeaders, StaffHeaders, account_id_of, issue

JUNK_BODIES: list[Any] = [
    b'{"payload": "OC1',  # truncated JSON
    b"[]",
    b'"string"',
    b"null",
    b'{"payload": null}',
    b'{"payload": ["OC1:x"]}',
    b'{"unknown": 1}',
    b'{"payload": "' + b"A" * 3000 + b'"}',
    b'{"status": "R", "reason": 5, "until": []}',
    b'{"validator_id": "", "rides": [{"code": 1, "scanned_at": "x"}]}',
    b'{"validator_id": "v", "rides": [{"code": "OC1R:AAAA", "scanned_at": 1e300}]}',
    b'{"validator_id": "v", "rides": [{"code": "OC1R:AAAA", "scanned_at": -1}]}',
    b'{"version": 99999999999999, "rules": [{"id": "a", "status": "R", "reason": "r", '
    b'"when": {"kind": "close_contact"}}]}',
    b'{"public_key": "!!", "nonce": "x", "signature": "y"}',
    b'{"name": "", "address": "a", "region": "abc"}',
    b'{"version": 0, "rules": []}',
    b"\xff\xfe\x00garbage",
]


async def test_no_endpoint_answers_500_to_junk(
    app: App, demo: Demo, partner: PartnerHeaders, staff: StaffHeaders
) -> None:
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    citizen = demo[ZHANG_SAN]
    admin = staff(("admin", "health_officer"), "1101")
    targets: list[tuple[str, str, dict[str, str]]] = [
        ("POST", "/v1/codes/verify", partner()),
        ("POST", "/v1/codes/ride-logs", partner()),
        ("POST", "/v1/me/checkins", citizen),
        ("POST", "/v1/me/ride-devices", citizen),
        ("PUT", f"/v1/admin/citizens/{account_id}/health-status", admin),
        ("POST", "/v1/admin/health-rules", admin),
        ("POST", "/v1/admin/venues", admin),
        ("POST", "/v1/venues", partner(scope="venues:write")),
    ]
    for method, path, headers in targets:
        for body in JUNK_BODIES:
            response = await app.client.request(
                method, path, content=body, headers={**headers, "Content-Type": "application/json"}
            )
            assert 400 <= response.status_code < 500, (path, body[:40], response.status_code, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
        wrong_type = await app.client.request(
            method, path, content=b"payload=x", headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}
        )
        assert wrong_type.status_code == 415


@pytest.mark.parametrize(
    "path",
    [
        "/v1/me/codes/%00",
        "/v1/me/codes/health/image?format=%ff",
        "/v1/me/codes/" + "h" * 5000,
        "/v1/admin/venues/%2e%2e%2fetc/poster",
        "/v1/admin/venues/AAAAAAAAAAA/checkins?from=2026-01-01T00:00:00Z&to=not-a-date",
        "/v1/admin/citizens/12345/health-status",
        "/v1/admin/health-rules/99999999999999999999",
        "/v1/venues/" + "x" * 300,
    ],
)
async def test_odd_paths_and_queries(app: App, demo: Demo, staff: StaffHeaders, path: str) -> None:
    headers = staff() if "/admin/" in path else demo[ZHANG_SAN]
    response = await app.client.get(path, headers=headers)
    assert 400 <= response.status_code < 500, response.text


async def test_no_payload_or_identity_in_logs_or_tables(
    app: App, demo: Demo, partner: PartnerHeaders, pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="httpx")
    account_id = await account_id_of(app.client, demo[ZHANG_SAN])
    code = await issue(app.client, demo[ZHANG_SAN])
    await app.client.post("/v1/codes/verify", json={"payload": code["payload"]}, headers=partner())
    await app.client.post("/v1/codes/verify", json={"payload": code["payload"][:-3]}, headers=partner())
    logs = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records if r.name != "uvicorn.access")
    assert code["payload"] not in logs
    for secret in ("110101199003070011", "张三", ZHANG_SAN):
        assert secret not in logs
    # The scan log and the pseudonym tables name holders by pseudonym only.
    for table in ("scan_log", "holder_status", "code_subjects"):
        for row in await pool.fetch(f'SELECT * FROM "{table}"'):
            text = str(dict(row))
            assert "110101199003070011" not in text and ZHANG_SAN not in text and "张" not in text
            if table == "scan_log":
                assert account_id not in text
