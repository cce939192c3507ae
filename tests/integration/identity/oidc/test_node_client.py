"""A stock FAPI 2.0 client library against the real server: openid-client v6 (Node).

The partner's script (``tests/support/node_client/fapi_flow.mjs``) runs the whole flow with
openid-client's own PAR, DPoP and private_key_jwt support against ``onecity serve`` on a real
port (openid-client discovers the issuer over HTTP and insists the issuer is the URL it
called). Node is a test requirement: in CI a missing Node fails this test (see tests/support/tools.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.crypto import Vault
from core.db import Pool
from core.redis import Redis
from core.signing import b64url_encode
from identity.oidc import ClientAdmin
from services.departments import DepartmentEndpoints
from services.departments.sms import SmsGateway
from tests.conftest import MASTER_KEY, reset_state
from tests.support.citizens import login
from tests.support.processes import ServerProcess, free_port, server_process
from tests.support.tools import require_programs

NODE_CLIENT = Path(__file__).resolve().parents[3] / "support" / "node_client"
REDIRECT = "https://bank.example/cb"


@pytest.fixture(scope="session")
def node_client() -> Path:
    """The Node client folder with its locked dependencies installed (``npm ci``, once)."""
    require_programs("node", "npm", why="the openid-client test needs Node 20 or later")
    npm = shutil.which("npm")
    assert npm is not None
    marker = NODE_CLIENT / "node_modules" / ".package-lock.json"
    lock = NODE_CLIENT / "package-lock.json"
    if not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_CLIENT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed: {done.stderr[-2000:]}"
    return NODE_CLIENT


@pytest.fixture
async def served(
    database_url: str, redis_url: str, department_endpoints: DepartmentEndpoints, pool: Pool, redis: Redis
) -> AsyncIterator[ServerProcess]:
    """``onecity serve`` whose public URL (the issuer) is its real address."""
    await reset_state(pool, redis)
    port = free_port()
    async with server_process(
        database_url=database_url,
        redis_url=redis_url,
        master_key=MASTER_KEY,
        departments={name: getattr(department_endpoints, name) for name in department_endpoints.__struct_fields__},
        extra_env={"ONECITY_PUBLIC_URL": f"http://127.0.0.1:{port}"},
        port=port,
    ) as url:
        yield url


async def test_openid_client_fapi_flow_with_par_dpop_and_private_key_jwt(
    node_client: Path, served: ServerProcess, pool: Pool, vault: Vault, sms: SmsGateway
) -> None:
    key = Ed25519PrivateKey.generate()
    public = {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url_encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
        "kid": "bank-1",
    }
    admin = ClientAdmin(pool, vault)
    await admin.add(
        "bank",
        name="City Bank",
        auth_method="private_key_jwt",
        jwks={"keys": [public]},
        redirect_uris=[REDIRECT],
        scopes=["openid", "profile", "codes:verify"],
        require_par=True,
        dpop_bound=True,
    )
    async with httpx.AsyncClient(base_url=served) as http:
        citizen_token = (await login(http, sms, "13900000077"))["access_token"]

    env = {
        **os.environ,
        "ONECITY_ISSUER": str(served),
        "ONECITY_CLIENT_ID": "bank",
        "ONECITY_CLIENT_JWK": json.dumps({**public, "d": b64url_encode(key.private_bytes_raw())}),
        "ONECITY_REDIRECT_URI": REDIRECT,
        "ONECITY_CITIZEN_TOKEN": citizen_token,
    }
    process = await asyncio.create_subprocess_exec(
        "node",
        str(node_client / "fapi_flow.mjs"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()[-3000:]
    seen: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])

    assert seen["server"]["pushed_authorization_request_endpoint"] == f"{served}/oauth/par"
    assert "Ed25519" in seen["server"]["dpop_signing_alg_values_supported"]
    jkt = seen["dpop_jkt"]
    # Authorization code → DPoP-bound tokens; the ID token's signature, nonce and iss checked.
    assert seen["token_type"] == "dpop"
    assert seen["id_token"]["iss"] == served and seen["id_token"]["aud"] == "bank"
    assert seen["access_token_cnf"] == {"jkt": jkt}
    assert seen["userinfo"]["sub"] == seen["id_token"]["sub"]
    assert seen["userinfo_as_bearer"]["status"] == 401
    assert seen["userinfo_as_bearer"]["www_authenticate"].startswith('DPoP error="invalid_token"')
    assert seen["refreshed_token_type"] == "dpop" and seen["refresh_rotated"] is True
    assert seen["introspection"]["active"] is True
    assert seen["introspection"]["token_type"] == "DPoP" and seen["introspection"]["cnf"] == {"jkt": jkt}
    # Machine access with the same key at the code verification API.
    assert seen["machine"] == {"token_type": "dpop", "scope": "codes:verify", "cnf": {"jkt": jkt}}
    assert seen["verify"]["status"] == 200
    assert seen["verify"]["body"]["valid"] is False and seen["verify"]["body"]["reason"] == "malformed"
