"""Building each domain's service from the shared resources, once per process."""

from __future__ import annotations

from litestar.datastructures import State

from bff.resources import Resources
from bff.screens import DataAccessRepository, ScreenService
from identity import AccessTokens, IdentityRepository, IdentityService

__all__ = ["attach_domains"]


def attach_domains(state: State, resources: Resources) -> None:
    """Build every domain service and put it on the app state for dependency injection."""
    settings = resources.settings
    tokens = AccessTokens(resources.keys, settings.identity)
    state.access_tokens = tokens
    state.identity = IdentityService(
        repository=IdentityRepository(resources.pool),
        redis=resources.redis,
        vault=resources.vault,
        tokens=tokens,
        departments=resources.departments,
        settings=settings.identity,
    )
    assert resources.fanout is not None
    # The home screen's `codes` comes from codes_summary (default: none); the codes domain
    # wires its summary here.
    state.screens = ScreenService(
        departments=resources.fanout,
        identity=state.identity,
        repository=DataAccessRepository(resources.pool),
        hasher=resources.vault,
    )
