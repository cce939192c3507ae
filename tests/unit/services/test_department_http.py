"""DepartmentHttp's status mapping and tolerant-but-typed decoding, over httpx's mock transport."""

from __future__ import annotations

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.signing import Ed25519Signer
from services import (
    DepartmentBadStatusError,
    DepartmentEndpoints,
    DepartmentError,
    DepartmentHttp,
    DepartmentMalformedError,
    DepartmentRejectedError,
    DepartmentTimeoutError,
    DepartmentUnavailableError,
    HttpTransportDepartment,
    ServiceTokenMinter,
    TransportCard,
    department_error,
)

SIGNER = Ed25519Signer("k", Ed25519PrivateKey.generate())
MINTER = ServiceTokenMinter(lambda: SIGNER)


def transport_with(response: httpx.Response) -> tuple[HttpTransportDepartment, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return response

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpTransportDepartment(DepartmentHttp("transport", "http://dept/prefix/", http, MINTER)), seen


async def test_unknown_fields_are_ignored_and_the_prefix_kept() -> None:
    body = {"card_no": "1", "balance_cents": 5, "status": "active", "new_field": {"x": 1}}
    client, seen = transport_with(httpx.Response(200, json=body))
    card = await client.card("110101199003070011", purpose="p")
    assert card == TransportCard(card_no="1", balance_cents=5, status="active")
    assert str(seen[0].url) == "http://dept/prefix/v1/me/card"
    token = seen[0].headers["authorization"].removeprefix("Bearer ")
    import jwt

    claims = jwt.decode(token, SIGNER.public_key, algorithms=["EdDSA"], audience="transport")
    assert (claims["sub"], claims["scope"], claims["purpose"]) == ("110101199003070011", "transport:card", "p")


@pytest.mark.parametrize(
    "body",
    [
        {"card_no": 1, "balance_cents": 5, "status": "active"},  # wrong type
        {"card_no": "1", "balance_cents": "5", "status": "active"},
        {"card_no": "1", "balance_cents": 5, "status": "lost"},  # not a contract value
        {"card_no": "1", "balance_cents": 5},  # missing field
        [],
    ],
)
async def test_wrong_shapes_are_malformed(body: object) -> None:
    client, _ = transport_with(httpx.Response(200, json=body))
    with pytest.raises(DepartmentMalformedError):
        await client.card("110101199003070011", purpose="p")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, DepartmentRejectedError),
        (401, DepartmentRejectedError),
        (404, DepartmentRejectedError),
        (429, DepartmentUnavailableError),
        (500, DepartmentBadStatusError),
        (502, DepartmentUnavailableError),
        (503, DepartmentUnavailableError),
        (504, DepartmentUnavailableError),
        (302, DepartmentBadStatusError),
    ],
)
async def test_status_mapping(status: int, error: type[DepartmentError]) -> None:
    client, _ = transport_with(httpx.Response(status, text="110101199003070011 secret"))
    with pytest.raises(error) as caught:
        await client.card("110101199003070011", purpose="p")
    assert caught.value.upstream_status == status
    assert "110101199003070011" not in str(caught.value)  # the body never leaks into the message


def test_department_error_factory() -> None:
    error = department_error("sms", "dropped")
    assert (error.kind, error.department, error.upstream_status) == ("dropped", "sms", None)
    assert str(error) == "The sms department call failed: dropped"
    built = DepartmentError("health", "timeout", upstream_status=None)
    assert isinstance(built, DepartmentTimeoutError)
    assert built.retryable
    with pytest.raises(TypeError):
        DepartmentError("health")
    with pytest.raises(ValueError, match="kind"):
        DepartmentTimeoutError("health", "rejected")


def test_endpoints() -> None:
    assert DepartmentEndpoints().health == "http://127.0.0.1:8101"
    assert DepartmentEndpoints().miniprogram == "http://127.0.0.1:8107"
    local = DepartmentEndpoints.local("10.0.0.5", {"sms": 9000})
    assert local.sms == "http://10.0.0.5:9000"
    assert local.url("registry") == "http://10.0.0.5:8104"
    with pytest.raises(KeyError):
        local.url("police")
