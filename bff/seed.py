"""Demo data for ``onecity dev``: each domain seeds its own part, idempotently."""

from __future__ import annotations

from bff.settings import Settings

__all__ = ["seed_demo"]


async def seed_demo(settings: Settings) -> None:
    """Seed the demo citizens and the demo partner (DESIGN.md "Demo data"); safe to repeat."""
    # The identity and single sign-on domains add their seeders here as they land.
    return None
