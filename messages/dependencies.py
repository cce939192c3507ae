"""Litestar dependency providers of the message centre."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide

from messages.service import MessageCentre

__all__ = ["MESSAGES_DEPENDENCIES", "provide_messages"]


def provide_messages(state: State) -> MessageCentre:
    """The process's message centre (built in the app's lifespan)."""
    service: MessageCentre = state.messages
    return service


#: App-level dependency of the message centre (register with the app's other dependencies).
MESSAGES_DEPENDENCIES = {"messages": Provide(provide_messages, sync_to_thread=False)}
