"""Prometheus metrics of the message centre (default registry, served at ``/metrics``).

Labels come from fixed sets (category, outcome): never a citizen, a message or a token.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

__all__ = ["DELIVERIES", "MESSAGES", "STREAMS"]

MESSAGES: Final = Counter(
    "onecity_messages_produced", "Messages added to inboxes (a repeated event adds none)", ["category"]
)
DELIVERIES: Final = Counter(
    "onecity_messages_deliveries",
    "Push/SMS delivery outcomes (pushed, sms, quiet_hours, push_off, push_failed, sms_failed, no_channel)",
    ["category", "outcome"],
)
STREAMS: Final = Gauge("onecity_messages_streams", "Event streams open in this process")
