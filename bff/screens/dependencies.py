"""Litestar dependency provider of the screens domain."""

from __future__ import annotations

from litestar.datastructures import State

from bff.screens.service import ScreenService

__all__ = ["provide_screens"]


def provide_screens(state: State) -> ScreenService:
    """The process's screen service (built in the app's lifespan by ``attach_domains``)."""
    service: ScreenService = state.screens
    return service
