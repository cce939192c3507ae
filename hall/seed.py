"""The departments' own OAuth clients for ``onecity dev`` (DESIGN, "Department contracts").

Each case-owning simulator reports progress with ``client_credentials`` of ``dept-<name>``
(secret ``dept-<name>-secret``, scope ``applications:events``). The secrets are published demo
values, so these clients are seeded by ``onecity dev`` (and tests) only, never in production,
where each department gets a generated secret or a ``private_key_jwt`` client.
"""

from __future__ import annotations

from core.crypto import Vault
from core.db import Pool
from hall.dependencies import EVENTS_SCOPE
from hall.service import DEPARTMENT_CLIENT_PREFIX
from identity.oidc.admin import ClientAdmin
from services.departments import CASE_DEPARTMENTS

__all__ = ["seed_department_clients"]


async def seed_department_clients(pool: Pool, vault: Vault) -> list[str]:
    """Register ``dept-<name>`` for every case-owning department unless it exists; the ids
    created now."""
    admin = ClientAdmin(pool, vault)
    created = []
    for department in CASE_DEPARTMENTS:
        client_id = f"{DEPARTMENT_CLIENT_PREFIX}{department}"
        new = await admin.add(
            client_id,
            name=f"Department: {department}",
            client_type="confidential",
            auth_method="client_secret_basic",
            scopes=[EVENTS_SCOPE],
            grant_types=["client_credentials"],
            secret=f"{client_id}-secret",
            if_absent=True,
        )
        if new is not None:
            created.append(client_id)
    return created
