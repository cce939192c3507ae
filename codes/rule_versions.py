"""Versioned health rules as stored data: publishing, listing, and the active version.

A published version is immutable (a database trigger refuses changes); a change is a new
document with a higher ``version``, and the highest stored version is active. Each process keeps
the active version in memory and re-reads it every ``refresh_s`` seconds, so a publication
reaches every process within that time (at once in the publishing process). Evaluating a
version is the pure :mod:`codes.rules`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from codes.repository import CodesRepository
from codes.rules import DEFAULT_RULESET, RuleSet, RuleSetError, validate_ruleset
from codes.schemas import RuleSetList, RuleSetVersion
from core.audit import AuditEvent, write_audit
from core.errors import Conflict, NotFound, UnprocessableEntity

__all__ = ["RuleBook"]


class RuleBook:
    """The health rule versions.

    Args:
        repository: SQL.
        refresh_s: How long the cached active version is trusted before re-reading.
    """

    def __init__(self, repository: CodesRepository, *, refresh_s: float) -> None:
        self._repository = repository
        self._refresh_s = refresh_s
        self._active: RuleSet | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def active(self) -> RuleSet:
        """The rules in force: the highest published version (the built-in default if none)."""
        if self._active is not None and time.monotonic() - self._loaded_at < self._refresh_s:
            return self._active
        async with self._lock:
            if self._active is None or time.monotonic() - self._loaded_at >= self._refresh_s:
                row = await self._repository.latest_ruleset()
                self._active = DEFAULT_RULESET if row is None else validate_ruleset(row.document)
                self._loaded_at = time.monotonic()
            return self._active

    async def publish(self, document: bytes | str | dict[str, Any] | RuleSet, *, published_by: str) -> RuleSetVersion:
        """Validate and store a new version, audited.

        Args:
            document: The rule document (JSON, parsed JSON or a :class:`RuleSet`).
            published_by: Who publishes: ``staff:<id>`` or ``cli:<user>``.

        Raises:
            UnprocessableEntity: the document is not a valid rule set (the problem says where).
            Conflict: its version is not higher than the active one.
        """
        try:
            ruleset = validate_ruleset(document)
        except RuleSetError as exc:
            raise UnprocessableEntity(str(exc), extensions={"field": "document"}) from None
        repository = self._repository
        async with repository.transaction() as tx:
            stored = await repository.lock_rules(tx)
            current = stored if stored is not None else DEFAULT_RULESET.version
            if ruleset.version <= current:
                raise Conflict(
                    f"Version {ruleset.version} is not higher than the current version {current}",
                    extensions={"current_version": current},
                )
            published = await repository.insert_ruleset(
                tx,
                version=ruleset.version,
                document=msgspec.to_builtins(ruleset),
                published_by=published_by,
            )
            actor_type, _, actor_id = published_by.partition(":")
            await write_audit(
                tx,
                [
                    AuditEvent(
                        action="codes.rules.publish",
                        outcome="success",
                        actor_type=actor_type if actor_type in ("staff", "system") else "system",
                        actor_id=actor_id or published_by,
                        details={"version": ruleset.version, "rules": len(ruleset.rules)},
                    )
                ],
            )
        self._active, self._loaded_at = ruleset, time.monotonic()
        return RuleSetVersion(
            version=published.version,
            published_by=published.published_by,
            published_at=published.published_at,
            active=True,
            document=ruleset,
        )

    async def versions(self) -> RuleSetList:
        """Every stored version, newest first; the first is active."""
        rows = await self._repository.list_rulesets()
        return RuleSetList(
            versions=[
                RuleSetVersion(
                    version=r.version, published_by=r.published_by, published_at=r.published_at, active=i == 0
                )
                for i, r in enumerate(rows)
            ]
        )

    async def get(self, version: int) -> RuleSetVersion:
        """One version with its document.

        Raises:
            NotFound: no such version is stored.
        """
        stored = await self._repository.get_ruleset(version)
        if stored is None:
            if version == DEFAULT_RULESET.version:
                # Not stored (an emptied table): the built-in default is version 1.
                return RuleSetVersion(
                    version=1,
                    published_by="system",
                    published_at=datetime(1970, 1, 1, tzinfo=UTC),
                    active=(await self.active()).version == 1,
                    document=DEFAULT_RULESET,
                )
            raise NotFound(f"No health rules version {version}")
        active = await self.active()
        return RuleSetVersion(
            version=stored.version,
            published_by=stored.published_by,
            published_at=stored.published_at,
            active=active.version == stored.version,
            document=validate_ruleset(stored.document),
        )
