"""The message centre (消息中心): each citizen's inbox, live events (SSE through Redis),
notification preferences and push tokens; producers in the other domains add messages in
their own transactions with a dedupe key per event."""

from messages.controllers import MyMessagesController, NoticesController
from messages.dependencies import MESSAGES_DEPENDENCIES, provide_messages
from messages.repository import MessagesRepository
from messages.service import MessageCentre
from messages.settings import MessagesSettings

MESSAGES_CONTROLLERS = (MyMessagesController, NoticesController)

__all__ = [
    "MESSAGES_CONTROLLERS",
    "MESSAGES_DEPENDENCIES",
    "MessageCentre",
    "MessagesRepository",
    "MessagesSettings",
    "MyMessagesController",
    "provide_messages",
]
