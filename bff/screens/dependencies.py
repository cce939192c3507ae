"""Litestar dependencies of the screens domain: every one its controllers receive."""

from __future__ import annotations

from typing import Final

from litestar.datastructures import State
from litestar.di import Provide

from bff.screens.service import ScreenService

__all__ = ["SCREENS_DEPENDENCIES", "provide_screens"]


def provide_screens(state: State) -> ScreenService:
    """The process's screen service (built in the app's lifespan by ``attach_domains``)."""
    service: ScreenService = state.screens
    return service


#: ``screens``: the service every screens controller calls (app-level).
SCREENS_DEPENDENCIES: Final = {"screens": Provide(provide_screens, sync_to_thread=False)}
