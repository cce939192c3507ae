import asyncio
import base64
import gc
import re
import secrets

import asyncpg
import msgspec
import pytest
from httpx import AsyncClient as AsyncTestClient

from bff.app import create_app
from bff.resources import StartupError
from bff.settings import Secret, Settings, SettingsError, load_settings
from core.db import create_pool
from core.migrate import apply_migrations
from tests.support.asgi import LifespanError, running_app
from tests.support.backends import DatabaseFactory

PROBLEM = "application/problem+json"


async def test_live_and_ready(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    assert (await client.get("/health/live")).json() == {"status": "live"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


async def test_ready_is_503_problem_when_redis_is_unreachable(settings: Settings, clean: None) -> None:
    broken = msgspec.structs.replace(
        settings, redis=msgspec.structs.replace(settings.redis, url="redis://127.0.0.1:1/0")
    )
    async with running_app(create_app(broken)) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["retry-after"]
    body = response.json()
    assert body["status"] == 503 and body["checks"] == {"postgres": "ok", "redis": "down"}


async def test_ready_goes_red_and_back_when_postgres_refuses_connections(
    settings: Settings, database_factory: DatabaseFactory
) -> None:
    url = await database_factory.create()
    setup = await create_pool(url, min_size=1, max_size=1)
    async with setup.acquire() as conn:
        await apply_migrations(conn)
    await setup.close()
    name = url.rsplit("/", 1)[1].split("?")[0]
    own = msgspec.structs.replace(settings, database=msgspec.structs.replace(settings.database, url=url))
    admin = await asyncpg.connect(database_factory.admin_url)
    try:
        async with running_app(create_app(own)) as client:
            assert (await client.get("/health/ready")).status_code == 200
            # The database stops accepting connections and drops the ones it has: an outage.
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            down = await client.get("/health/ready")
            assert down.status_code == 503
            assert down.json()["checks"]["postgres"] == "down"
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            for _ in range(50):  # the pool reconnects by itself
                if (await client.get("/health/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await client.get("/health/ready")).status_code == 200
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_unknown_route_is_problem_json(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/v1/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"].endswith("/not-found") and body["status"] == 404 and body["title"]


async def test_wrong_method_is_problem_json(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await client.delete("/health/live")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_metrics_count_requests_by_route_template(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    await client.get("/health/live")
    text = (await client.get("/metrics")).text
    assert "onecity_requests_total" in text
    assert 'path="/health/live"' in text and 'status_code="200"' in text
    assert "onecity_request_duration_seconds_bucket" in text


async def test_openapi_document_and_ui(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    document = (await client.get("/schema/openapi.json")).json()
    assert document["info"]["title"] == "OneCity"
    assert "/health/ready" in document["paths"]
    assert (await client.get("/schema")).status_code == 200


async def test_jwks_publishes_token_and_service_keys_only(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/.well-known/jwks.json")
    keys = response.json()["keys"]
    purposes = {k["kid"].split("-")[0] for k in keys}
    assert purposes == {"token", "service"}
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["use"] == "sig" for k in keys)
    assert all("d" not in k for k in keys)


async def test_request_id_is_echoed_or_made(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    echoed = await client.get("/health/live", headers={"X-Request-ID": "abcdef0123456789"})
    assert echoed.headers["x-request-id"] == "abcdef0123456789"
    made = await client.get("/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces" and len(made.headers["x-request-id"]) == 32


async def test_cors_preflight_allows_the_app_origin_only(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    origin = "http://localhost:8080"
    allowed = await client.options("/health/live", headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
    assert allowed.headers.get("access-control-allow-origin") == origin
    denied = await client.options(
        "/health/live", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert denied.headers.get("access-control-allow-origin") != "https://evil.example"


async def _start_up_error(settings: Settings) -> StartupError:
    """Start the app and return the StartupError its lifespan raised."""
    with pytest.raises(LifespanError) as info:
        async with running_app(create_app(settings)):
            pass
    error = info.value.__cause__
    while isinstance(error, BaseExceptionGroup):  # the lifespan runs in a task group
        error = error.exceptions[0]
    assert isinstance(error, StartupError), repr(error)
    return error


async def test_wrong_master_key_stops_start_up_clearly(settings: Settings) -> None:
    wrong = msgspec.structs.replace(settings, master_key=Secret(secrets.token_bytes(32)))
    assert "wrong master key" in str(await _start_up_error(wrong))


async def test_missing_master_key_stops_start_up_clearly(settings: Settings) -> None:
    missing = msgspec.structs.replace(settings, master_key=None)
    assert "ONECITY_MASTER_KEY" in str(await _start_up_error(missing))


async def test_pending_migrations_stop_start_up(settings: Settings, database_factory: DatabaseFactory) -> None:
    empty = msgspec.structs.replace(
        settings, database=msgspec.structs.replace(settings.database, url=await database_factory.create())
    )
    assert "onecity migrate" in str(await _start_up_error(empty))


def test_master_key_in_settings_is_base64url(settings: Settings) -> None:
    assert settings.master_key is not None
    assert len(base64.urlsafe_b64encode(settings.master_key.reveal())) == 44


METRICS_TOKEN = "m" * 8 + secrets.token_urlsafe(32)


async def test_metrics_need_the_token_when_one_is_set(settings: Settings, clean: None) -> None:
    guarded = msgspec.structs.replace(settings, metrics_token=Secret(METRICS_TOKEN.encode()))
    async with running_app(create_app(guarded)) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})
        basic = await client.get("/metrics", headers={"Authorization": "Basic " + METRICS_TOKEN})
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    for response in (missing, wrong, basic):
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["type"].endswith("/unauthorized")
        assert METRICS_TOKEN not in response.text
    assert right.status_code == 200 and "onecity_requests_total" in right.text


def test_production_without_a_metrics_token_does_not_start(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="ONECITY_METRICS_TOKEN"):
        create_app(msgspec.structs.replace(settings, env="prod", metrics_token=None))
    create_app(msgspec.structs.replace(settings, env="prod", metrics_token=Secret(METRICS_TOKEN.encode())))


def test_metrics_token_is_validated_without_echoing_it() -> None:
    with pytest.raises(SettingsError, match="ONECITY_METRICS_TOKEN") as caught:
        load_settings({"ONECITY_METRICS_TOKEN": "short secret"})
    assert "short secret" not in str(caught.value)
    settings = load_settings({"ONECITY_METRICS_TOKEN": METRICS_TOKEN})
    assert settings.metrics_token is not None and settings.metrics_token.reveal() == METRICS_TOKEN.encode()
    assert METRICS_TOKEN not in repr(settings)


async def test_api_docs_load_nothing_from_another_origin(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    """``GET /schema`` works on an intranet without a CDN: every asset is served by us."""
    page = await client.get("/schema")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
    assert urls, page.text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.DOTALL)
    assert scripts and all(not body.strip() for _, body in scripts), "no inline script (CSP forbids it)"
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0
    assert any(url.endswith("swagger-ui-bundle.js") for url in urls)
    init = (await client.get("/schema/ui.js")).text
    assert "/schema/openapi.json" in init and "http" not in init


async def test_docs_pages_are_not_in_the_document(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/schema")]


async def test_a_served_worker_freezes_its_start_up_objects(settings: Settings) -> None:
    serving = msgspec.structs.replace(settings, server=msgspec.structs.replace(settings.server, gc_freeze=True))
    gc.unfreeze()
    try:
        async with running_app(create_app(serving)) as client:
            assert (await client.get("/health/live")).status_code == 200
            # The modules, app, pools and caches made at start-up are out of the collector's walk.
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
