"""API fuzzing (issue 7, item 5): Schemathesis against the OpenAPI document of a real server.

``onecity serve`` runs in its own process on the test database and Redis; Schemathesis (its
``st`` CLI, in a subprocess, so this test's event loop stays free to serve the department
simulators the server calls) generates valid and invalid requests for every operation of
``/schema/openapi.json`` and checks every answer: no 5xx, a status code the document lists, the
content type it lists, and a body matching its schema. It runs four times: without credentials,
as a signed-in citizen (real OTP login, L3), as a partner (``codes:verify venues:write``), and as
staff (``admin``, ``health_officer``). Bounded for CI: at most 25 examples per operation.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest

from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from core.keys import KeyManager, KeyStore
from core.redis import Redis
from identity.seed import seed_demo_citizens
from identity.staff.admin import StaffAdmin
from identity.tokens import API_AUDIENCE, AccessTokens
from services.departments import DepartmentEndpoints
from services.departments.sms import SmsGateway
from tests.conftest import MASTER_KEY, reset_state
from tests.support.chaos import keep_stderr
from tests.support.citizens import bearer, latest_otp
from tests.support.processes import ServerProcess, server_process

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = 25
# The operation count doubled with the service hall, staff and FAPI endpoints; a busy machine
# needs the room. The test waits only as long as schemathesis runs.
RUN_TIMEOUT_S = 420


@pytest.fixture
async def server(
    database_url: str,
    redis_url: str,
    department_endpoints: DepartmentEndpoints,
    pool: Pool,
    redis: Redis,
    tmp_path: Path,
) -> AsyncIterator[ServerProcess]:
    await reset_state(pool, redis)
    departments = {name: getattr(department_endpoints, name) for name in department_endpoints.__struct_fields__}
    async with server_process(
        database_url=database_url,
        redis_url=redis_url,
        master_key=MASTER_KEY,
        departments=departments,
        workers=2,
        # The login limits would otherwise answer most of the run with 429s.
        extra_env={
            "ONECITY_AUTH_RATE_PER_MINUTE": "1000000",
            "ONECITY_OTP_SENDS_PER_IP_PER_HOUR": "1000000",
            "ONECITY_CODES_ISSUE_PER_MINUTE": "100000",
            "ONECITY_LOG_LEVEL": "WARNING",
        },
    ) as base:
        keep_stderr(base, tmp_path / "server.log")
        yield base


async def _citizen_token(server: str, sms: SmsGateway, pool: Pool, vault: Vault) -> str:
    """A real access token of the demo citizen 张三 (L3), through the OTP login."""
    await seed_demo_citizens(pool, vault)
    async with httpx.AsyncClient(base_url=server) as client:
        assert (await client.post("/v1/auth/otp", json={"phone": "13800000001"})).status_code == 202
        code = await latest_otp(sms, "13800000001")
        device = {"id": "fuzz", "name": "Fuzz phone", "platform": "ios"}
        response = await client.post("/v1/auth/login", json={"phone": "13800000001", "otp": code, "device": device})
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


async def _schemathesis(server: str, name: str, args: Sequence[str], report_dir: Path) -> tuple[int, str]:
    """``st run`` against the server's document; its exit code and output."""
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "run",
        f"{server}/schema/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        # One worker per run (the runs themselves go in parallel): Python 3.11's parser is not
        # thread-safe under Hypothesis's lambda descriptions ("AST constructor recursion depth
        # mismatch" errors with several workers in one process).
        "--workers",
        "1",
        "--seed",
        "1",
        "--no-color",
        "--request-timeout",
        "10",
        # The SSE stream never ends by design: every generated case would wait the whole
        # request timeout. tests/integration/messages/test_events.py covers it.
        "--exclude-path",
        "/v1/me/events",
        "--generation-database",
        "none",
        "--report",
        "junit",
        "--report-junit-path",
        str(report_dir / f"{name}.xml"),
        *args,
    ]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    # Output goes to a file, so a run that times out still shows how far it got.
    log = report_dir / f"{name}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=sink, stderr=asyncio.subprocess.STDOUT, env=env, cwd=report_dir
        )
        try:
            await asyncio.wait_for(process.wait(), timeout=RUN_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            partial = log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"schemathesis ({name}) did not finish in {RUN_TIMEOUT_S} s:\n{partial}") from None
    assert process.returncode is not None
    return process.returncode, log.read_text(errors="replace")


async def test_openapi_document_holds_under_fuzzing(
    server: ServerProcess,
    sms: SmsGateway,
    pool: Pool,
    vault: Vault,
    key_store: KeyStore,
    settings: Settings,
    tmp_path: Path,
) -> None:
    tokens = AccessTokens(await KeyManager.open(key_store), settings.identity)
    partner, _ = tokens.issue(
        subject="fuzz-partner", client_id="fuzz-partner", audience=API_AUDIENCE, scope="codes:verify venues:write"
    )
    officer = await StaffAdmin(pool, vault).add(
        "fuzz.officer",
        name="Fuzz Officer",
        phone="13900000000",
        password="a long enough password",
        roles=["admin", "health_officer"],
        region="110101",
    )
    staff, _ = tokens.issue(
        subject=officer.id,
        client_id="onecity-staff",
        audience="onecity-staff",
        extra={"roles": officer.roles, "region": officer.region},
    )
    citizen = await _citizen_token(server, sms, pool, vault)
    runs: dict[str, list[str]] = {
        "anonymous": [],
        # Everything a citizen can call except signing themselves out (the rest of the run
        # would only see 401s).
        "citizen": [
            "-H",
            f"Authorization: Bearer {citizen}",
            "--include-path-regex",
            "^/(v1/me|v1/auth|oauth)",
            "--exclude-path",
            "/v1/auth/logout",
        ],
        "partner": ["-H", f"Authorization: Bearer {partner}", "--include-path-regex", "^/v1/(codes|venues)"],
        "staff": ["-H", f"Authorization: Bearer {staff}", "--include-path-regex", "^/v1/(admin|staff)"],
    }
    started = time.monotonic()
    outcomes = await asyncio.gather(*(_schemathesis(server, name, args, tmp_path) for name, args in runs.items()))
    results = dict(zip(runs, outcomes, strict=True))
    elapsed = time.monotonic() - started
    for name, (code, output) in results.items():
        print(f"== schemathesis, {name}: exit {code}\n{output}")
    print(f"== schemathesis total: {elapsed:.1f} s")
    server_errors = (tmp_path / "server.log").read_text(errors="replace")
    failed = {name: output[-6000:] for name, (code, output) in results.items() if code != 0}
    assert not failed, "\n\n".join(
        [*(f"--- {name}\n{output}" for name, output in failed.items()), f"--- server log\n{server_errors[-4000:]}"]
    )


async def test_staff_token_of_no_staff_member_is_401(
    server: ServerProcess, key_store: KeyStore, settings: Settings
) -> None:
    """Found by the fuzzer: a validly signed staff token whose subject is not a staff id (not a
    UUID) made ``/v1/staff/me`` fail with a 500."""
    tokens = AccessTokens(await KeyManager.open(key_store), settings.identity)
    token, _ = tokens.issue(
        subject="officer-1",
        client_id="onecity-staff",
        audience="onecity-staff",
        extra={"roles": ["admin"], "region": "110101"},
    )
    async with httpx.AsyncClient(base_url=server) as client:
        response = await client.get("/v1/staff/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_rule_versions_a_health_code_cannot_carry_are_refused(
    server: ServerProcess, sms: SmsGateway, pool: Pool, vault: Vault, key_store: KeyStore, settings: Settings
) -> None:
    """Found by the fuzzer: the staff run published a rule set with a large version while the
    citizen run issued health codes, which then failed with a 500 (``PayloadTooLongError``: the
    ``rv`` claim no longer fit the 320-character payload). Such a version is refused at publish
    time now, and the highest one that fits keeps health codes issuing."""
    tokens = AccessTokens(await KeyManager.open(key_store), settings.identity)
    admin = await StaffAdmin(pool, vault).add(
        "rules.admin",
        name="Rules Admin",
        phone="13900000001",
        password="a long enough password",
        roles=["admin"],
        region="110101",
    )
    staff, _ = tokens.issue(
        subject=admin.id,
        client_id="onecity-staff",
        audience="onecity-staff",
        extra={"roles": ["admin"], "region": "110101"},
    )
    citizen = await _citizen_token(server, sms, pool, vault)
    rules = [{"id": "contact", "status": "Y", "reason": "close_contact", "when": {"kind": "close_contact"}}]
    async with httpx.AsyncClient(base_url=server) as client:
        publish = "/v1/admin/health-rules"
        too_high = await client.post(publish, json={"version": 100, "rules": rules}, headers=bearer(staff))
        highest = await client.post(publish, json={"version": 99, "rules": rules}, headers=bearer(staff))
        code = await client.post("/v1/me/codes/health", headers=bearer(citizen))
    assert too_high.status_code == 400 and too_high.json()["field"] == "version", too_high.text
    assert highest.status_code == 201, highest.text
    assert code.status_code == 200, code.text
    assert code.json()["rule_version"] == 99
