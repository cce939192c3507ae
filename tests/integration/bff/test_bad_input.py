"""Bad input of every kind is a 4xx problem document, never a 500, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient as AsyncTestClient

from core.db import Pool

PROBLEM = "application/problem+json"


def _is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


async def test_malformed_json(client: AsyncTestClient) -> None:
    response = await client.post(
        "/v1/auth/otp", content=b'{"phone": "138', headers={"Content-Type": "application/json"}
    )
    _is_problem(response, 400)


async def test_wrong_field_type_names_the_field(client: AsyncTestClient) -> None:
    body = _is_problem(await client.post("/v1/auth/otp", json={"phone": 13800000001}), 400)
    assert body["field"] == "phone"


async def test_nested_field_is_named_with_its_path(client: AsyncTestClient) -> None:
    response = await client.post(
        "/v1/auth/login",
        json={"phone": "13800000001", "otp": "123456", "device": {"id": "d", "name": "n", "platform": 7}},
    )
    assert _is_problem(response, 400)["field"] == "device.platform"


async def test_unknown_field_is_refused_and_named(client: AsyncTestClient) -> None:
    body = _is_problem(await client.post("/v1/auth/otp", json={"phone": "13800000001", "admin": True}), 400)
    assert body["field"] == "admin"


async def test_missing_field(client: AsyncTestClient) -> None:
    body = _is_problem(await client.post("/v1/auth/otp", json={}), 400)
    assert body["field"] == "phone"


@pytest.mark.parametrize(
    "phone", ["12800000001", "1380000000", "138000000011", "+8613800000001", "１３８００００００１"]
)
async def test_invalid_phone_formats(client: AsyncTestClient, phone: str) -> None:
    body = _is_problem(await client.post("/v1/auth/otp", json={"phone": phone}), 400)
    assert phone not in body.get("detail", "")


async def test_oversized_body_is_413(client: AsyncTestClient) -> None:
    response = await client.post(
        "/v1/auth/otp", content=b'{"phone": "' + b"1" * 200_000 + b'"}', headers={"Content-Type": "application/json"}
    )
    _is_problem(response, 413)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_wrong_content_type_is_415(client: AsyncTestClient, content_type: str) -> None:
    response = await client.post(
        "/v1/auth/otp", content=b'{"phone": "13800000001"}', headers={"Content-Type": content_type}
    )
    _is_problem(response, 415)


async def test_a_failed_request_writes_nothing(client: AsyncTestClient, pool: Pool) -> None:
    await client.post(
        "/v1/auth/login",
        json={"phone": "13800000001", "otp": "12345", "device": {"id": "d", "name": "n", "platform": "ios"}},
    )
    await client.post("/v1/auth/login", json={"phone": "13800000001", "otp": "123456"})
    assert await pool.fetchval("SELECT count(*) FROM accounts") == 0
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 0


@pytest.mark.parametrize("path", ["/v1/me/sessions/not-a-uuid", "/v1/me/sessions/%00"])
async def test_bad_path_parameters(client: AsyncTestClient, path: str) -> None:
    response = await client.delete(path, headers={"Authorization": "Bearer x.y.z"})
    assert response.status_code in {400, 401, 404}
    assert response.headers["content-type"].startswith(PROBLEM)
