"""``onecity clients ...`` and the demo partner seed, against the real database."""

from __future__ import annotations

import asyncio

import pytest
from httpx import AsyncClient as AsyncTestClient

from bff.cli import main as onecity
from bff.settings import Settings
from core.crypto import Vault
from core.db import Pool
from identity.oidc import ClientAdmin, ClientAdminError, seed_demo_partner


async def _run(settings: Settings, *argv: str) -> int:
    return await asyncio.to_thread(onecity, ["clients", *argv], settings=settings)


async def test_add_list_rotate_disable(
    client: AsyncTestClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await _run(
        settings,
        "add",
        "bookings",
        "--name",
        "Hospital bookings",
        "--redirect-uri",
        "https://bookings.example/cb",
        "--scope",
        "openid profile codes:verify",
    )
    assert code == 0
    out = capsys.readouterr().out
    secret = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("client_secret: "))
    assert len(secret) >= 43

    assert await _run(settings, "list") == 0
    listed = capsys.readouterr().out
    assert "bookings\tenabled\tconfidential\tclient_secret_basic" in listed
    assert "grants=authorization_code,client_credentials,refresh_token" in listed
    assert secret not in listed

    ok = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("bookings", secret))
    assert ok.status_code == 200
    machine_token = ok.json()["access_token"]

    assert await _run(settings, "rotate-secret", "bookings") == 0
    new_secret = capsys.readouterr().out.split("client_secret: ", 1)[1].split()[0]
    old = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("bookings", secret))
    assert old.status_code == 401
    new = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("bookings", new_secret))
    assert new.status_code == 200

    assert await _run(settings, "disable", "bookings") == 0
    assert "disabled bookings" in capsys.readouterr().out
    refused = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("bookings", new_secret)
    )
    assert refused.status_code == 401
    # The machine token issued before is dead too: partner APIs check the revocation set.
    verify = await client.post(
        "/v1/codes/verify", json={"payload": "OC1:x.y.z"}, headers={"Authorization": f"Bearer {machine_token}"}
    )
    assert verify.status_code == 401
    assert await _run(settings, "disable", "bookings") == 2


async def test_rotation_with_grace_keeps_the_old_secret_for_a_while(
    client: AsyncTestClient, pool: Pool, vault: Vault
) -> None:
    admin = ClientAdmin(pool, vault)
    created = await admin.add("graceful", scopes=["codes:verify"])
    assert created is not None and created.secret
    new_secret = await admin.rotate_secret("graceful", grace_s=300)
    for secret in (created.secret, new_secret):
        response = await client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=("graceful", secret)
        )
        assert response.status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client_id": "Bad Id"}, "client_id"),
        ({"client_type": "public", "scopes": ["codes:verify"]}, "client_credentials"),
        ({"redirect_uris": ["http://partner.example/cb"]}, "loopback"),
        ({"redirect_uris": ["https://partner.example/*"]}, "wildcards"),
        ({"redirect_uris": ["https://partner.example/cb#x"]}, "fragment"),
        ({"redirect_uris": []}, "redirect"),
        ({"scopes": ["openid", "everything"]}, "unknown scope"),
        ({"auth_method": "private_key_jwt"}, "jwks"),
        ({"auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "jwks"),
        ({"auth_method": "none"}, "public"),
        ({"grant_types": ["password"]}, "grant types"),
    ],
)
async def test_invalid_registrations_are_refused(
    clean: None, pool: Pool, vault: Vault, kwargs: dict[str, object], message: str
) -> None:
    params: dict[str, object] = {"client_id": "partner", "redirect_uris": ["https://partner.example/cb"]}
    params.update(kwargs)
    client_id = str(params.pop("client_id"))
    with pytest.raises(ClientAdminError, match=message):
        await ClientAdmin(pool, vault).add(client_id, **params)  # type: ignore[arg-type]
    assert await pool.fetchval("SELECT count(*) FROM oauth_clients") == 0


async def test_cli_reports_errors_without_a_traceback(
    client: AsyncTestClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _run(settings, "add", "x", "--redirect-uri", "http://evil.example/cb") == 2
    assert "onecity clients:" in capsys.readouterr().err
    assert await _run(settings, "rotate-secret", "nobody") == 2
    assert await _run(settings, "add", "twice", "--scope", "codes:verify") == 0
    capsys.readouterr()
    assert await _run(settings, "add", "twice", "--scope", "codes:verify") == 2
    assert "onecity clients: client 'twice' exists" in capsys.readouterr().err


async def test_demo_partner_seed_is_idempotent_and_works(client: AsyncTestClient, pool: Pool, vault: Vault) -> None:
    assert await seed_demo_partner(pool, vault) is True
    assert await seed_demo_partner(pool, vault) is False
    row = await pool.fetchrow("SELECT redirect_uris, scopes FROM oauth_clients WHERE client_id = 'demo-partner'")
    assert row["redirect_uris"] == ["http://127.0.0.1:9000/callback"]
    assert row["scopes"] == ["openid", "profile", "codes:verify"]
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "codes:verify"},
        auth=("demo-partner", "demo-partner-secret"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "codes:verify"
