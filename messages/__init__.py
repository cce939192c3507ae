"""The message centre (消息中心): each citizen's inbox, live events (SSE through Redis),
notification preferences and push tokens; producers in the other domains add messages in
their own transactions with a dedupe key per event."""

from messages.controllers import MyMessagesController, NoticesController
from messages.delivery import ENTRY_DELIVER, ENTRY_NOTICE, Delivery
from messages.dependencies import MESSAGES_DEPENDENCIES, provide_messages
from messages.producers import CodeStatusMessages, SecurityMessages
from messages.reevaluation import ENTRY_REEVALUATE, ReevaluationJobs
from messages.repository import MessagesRepository
from messages.service import MessageCentre
from messages.settings import MessagesSettings

MESSAGES_CONTROLLERS = (MyMessagesController, NoticesController)

__all__ = [
    "ENTRY_DELIVER",
    "ENTRY_NOTICE",
    "ENTRY_REEVALUATE",
    "MESSAGES_CONTROLLERS",
    "MESSAGES_DEPENDENCIES",
    "CodeStatusMessages",
    "Delivery",
    "MessageCentre",
    "MessagesRepository",
    "MessagesSettings",
    "MyMessagesController",
    "NoticesController",
    "ReevaluationJobs",
    "SecurityMessages",
    "provide_messages",
]
