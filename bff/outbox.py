"""``onecity outbox PHONE``: read the SMS simulator's outbox, e.g. a login code in dev;
``onecity outbox --push DEVICE_TOKEN``: the push simulator's notifications to one device.

The outbox is part of the SMS department's contract and needs a service token like every
department call, so this command signs one with the key store, exactly as the BFF does. The
settings come from the CLI with the embedded default of a running ``onecity dev`` filled in
(:func:`bff.embedded.use_running_default`).
"""

from __future__ import annotations

import httpx
import msgspec

from bff.settings import Settings, SettingsError
from core.crypto import Vault
from core.db import create_pool
from core.keys import KeyStore
from services.departments import build_departments
from services.departments.push import PushedMessage
from services.departments.sms import OutboxMessage
from services.tokens import ServiceTokenMinter

__all__ = ["read_outbox", "read_push_outbox", "render"]


async def read_outbox(settings: Settings, phone: str) -> list[OutboxMessage]:
    """Messages the SMS simulator delivered to ``phone``, oldest first."""
    return await _read(settings, phone, push=False)  # type: ignore[return-value]


async def read_push_outbox(settings: Settings, device_token: str) -> list[PushedMessage]:
    """Notifications the push simulator delivered to ``device_token``, oldest first."""
    return await _read(settings, device_token, push=True)  # type: ignore[return-value]


async def _read(settings: Settings, recipient: str, *, push: bool) -> list[OutboxMessage] | list[PushedMessage]:
    if not settings.database.url:
        raise SettingsError("ONECITY_DATABASE_URL is not set")
    master_key = settings.require_master_key()
    pool = await create_pool(settings.database.url, min_size=1, max_size=1)
    try:
        ring = await KeyStore(pool, Vault(master_key)).load()
    finally:
        await pool.close()
    async with httpx.AsyncClient(timeout=5.0) as http:
        departments = build_departments(settings.departments, http, ServiceTokenMinter(lambda: ring.signer("service")))
        if push:
            assert departments.push is not None
            pushed = await departments.push.outbox(recipient)
            return sorted(pushed.messages, key=lambda m: m.sent_at)
        outbox = await departments.sms.outbox(recipient)
    return sorted(outbox.messages, key=lambda m: m.sent_at)


def render(messages: list[OutboxMessage] | list[PushedMessage]) -> str:
    """One JSON line per message."""
    return "\n".join(msgspec.json.encode(m).decode() for m in messages)
