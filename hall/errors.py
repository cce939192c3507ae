"""The service hall's domain errors (each derives from the core hierarchy: one problem type each)."""

from __future__ import annotations

from core.errors import BadRequest, Conflict

__all__ = ["AlreadyRated", "IdempotencyKeyRequired", "IdempotencyKeyReused", "IllegalTransition"]


class IdempotencyKeyRequired(BadRequest):
    """``Idempotency-Key`` is missing or unusable."""

    type_slug = "idempotency-key-required"
    title = "Idempotency-Key header required"


class IllegalTransition(Conflict):
    """The state machine does not allow this change; nothing changed."""

    type_slug = "illegal-transition"
    title = "Illegal status transition"


class IdempotencyKeyReused(Conflict):
    """The key was used before with another body."""

    type_slug = "idempotency-key-reused"
    title = "Idempotency-Key reused with another body"


class AlreadyRated(Conflict):
    """An application is rated once."""

    type_slug = "already-rated"
    title = "Already rated"
