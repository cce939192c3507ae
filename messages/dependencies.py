"""Litestar dependencies of the message centre: every one its controllers receive.

``MESSAGES_DEPENDENCIES`` is registered once on the app (the message centre, for every
route); ``NOTICE_DEPENDENCIES`` sits on the staff notice controller (the fan-out service and
the authenticated staff member), so no citizen route authenticates staff.
"""

from __future__ import annotations

from typing import Final

from litestar.datastructures import State
from litestar.di import Provide

from identity.staff.permissions import provide_staff_principal
from messages.delivery import Delivery
from messages.service import MessageCentre

__all__ = ["MESSAGES_DEPENDENCIES", "NOTICE_DEPENDENCIES", "provide_delivery", "provide_messages"]


def provide_messages(state: State) -> MessageCentre:
    """The process's message centre (built in the app's lifespan)."""
    service: MessageCentre = state.messages
    return service


def provide_delivery(state: State) -> Delivery:
    """The process's push deliveries and notice fan-outs (built in the app's lifespan, once
    identity and the gateways exist)."""
    delivery: Delivery | None = state.messages.delivery
    assert delivery is not None
    return delivery


#: ``messages``: the service every message-centre controller calls (app-level).
MESSAGES_DEPENDENCIES: Final = {"messages": Provide(provide_messages, sync_to_thread=False)}
#: ``notices``: the notice fan-out; ``staff``: the authenticated staff member (the region
#: check needs the notice's region: the service).
NOTICE_DEPENDENCIES: Final = {
    "notices": Provide(provide_delivery, sync_to_thread=False),
    "staff": Provide(provide_staff_principal),
}
