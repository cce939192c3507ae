"""Building blocks every OneCity domain shares: errors, schemas, settings, storage, crypto and keys.

``core`` sits below ``identity``, ``codes``, ``hall``, ``messages`` and ``services`` and imports
none of them; only :mod:`core.http` knows Litestar. What a domain needs is exported here:

- errors (:mod:`core.errors`): :class:`OneCityError` and its HTTP-status subclasses for what a
  client may see, :class:`OperatorError` for what only the operator sees;
- payloads (:mod:`core.structs`): :class:`Request` and :class:`FrozenStruct`, :func:`text`,
  :func:`whole` and the shared constraint aliases (``Phone``, ``ShortStr`` …);
- settings (:mod:`core.settings`): the bounds every settings Struct uses (``Seconds``,
  ``Count`` …), :func:`refuse`, :class:`SettingsError`;
- storage: the asyncpg pool and :class:`Repository` base (:mod:`core.db`), Redis
  (:mod:`core.redis`), the audit log (:mod:`core.audit`);
- crypto and keys: the :class:`Vault` (:mod:`core.crypto`), the Ed25519 key ring
  (:mod:`core.keys`);
- identity levels (:mod:`core.levels`), problem documents (:mod:`core.problem`), the command
  shell (:mod:`core.cli`).

Names are imported from their submodule on first use (PEP 562), so ``import core.levels``
does not load asyncpg or redis-py; other modules of ``core`` are imported by their path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_exports, sources_of

if TYPE_CHECKING:
    from core.audit import AuditBatcher, AuditEvent, write_audit
    from core.cli import CommandFailed, Shell
    from core.crypto import DecryptionError, MasterKeyError, Vault, parse_master_key
    from core.db import Connection, Pool, Repository, create_pool, row_as, rows_as
    from core.errors import (
        BadRequest,
        Conflict,
        DependencyUnavailable,
        Forbidden,
        InsufficientLevel,
        InvalidValue,
        JsonTooDeep,
        NotFound,
        OneCityError,
        OperatorError,
        RateLimited,
        Unauthorized,
        UnprocessableEntity,
    )
    from core.keys import KeyManager, KeyRing, KeyStore, Purpose
    from core.levels import LEVELS, Level, level_rank, meets_level
    from core.problem import PROBLEM_MEDIA_TYPE, ProblemDocument, problem_document
    from core.redis import Redis, create_redis
    from core.settings import (
        Count,
        Days,
        FractionalSeconds,
        Milliseconds,
        NonNegative,
        Port,
        Seconds,
        SettingsError,
        refuse,
    )
    from core.structs import (
        FrozenStruct,
        IdNumber,
        NonEmptyStr,
        Phone,
        Request,
        ShortStr,
        Slug,
        Token,
        text,
        whole,
    )

_EXPORTS: dict[str, tuple[str, ...]] = {
    "core.audit": ("AuditBatcher", "AuditEvent", "write_audit"),
    "core.cli": ("CommandFailed", "Shell"),
    "core.crypto": ("DecryptionError", "MasterKeyError", "Vault", "parse_master_key"),
    "core.db": ("Connection", "Pool", "Repository", "create_pool", "row_as", "rows_as"),
    "core.errors": (
        "BadRequest",
        "Conflict",
        "DependencyUnavailable",
        "Forbidden",
        "InsufficientLevel",
        "InvalidValue",
        "JsonTooDeep",
        "NotFound",
        "OneCityError",
        "OperatorError",
        "RateLimited",
        "Unauthorized",
        "UnprocessableEntity",
    ),
    "core.keys": ("KeyManager", "KeyRing", "KeyStore", "Purpose"),
    "core.levels": ("LEVELS", "Level", "level_rank", "meets_level"),
    "core.problem": ("PROBLEM_MEDIA_TYPE", "ProblemDocument", "problem_document"),
    "core.redis": ("Redis", "create_redis"),
    "core.settings": (
        "Count",
        "Days",
        "FractionalSeconds",
        "Milliseconds",
        "NonNegative",
        "Port",
        "Seconds",
        "SettingsError",
        "refuse",
    ),
    "core.structs": (
        "FrozenStruct",
        "IdNumber",
        "NonEmptyStr",
        "Phone",
        "Request",
        "ShortStr",
        "Slug",
        "Token",
        "text",
        "whole",
    ),
}


__getattr__ = lazy_exports(__name__, sources_of(_EXPORTS), globals())


__all__ = [
    "LEVELS",
    "PROBLEM_MEDIA_TYPE",
    "AuditBatcher",
    "AuditEvent",
    "BadRequest",
    "CommandFailed",
    "Conflict",
    "Connection",
    "Count",
    "Days",
    "DecryptionError",
    "DependencyUnavailable",
    "Forbidden",
    "FractionalSeconds",
    "FrozenStruct",
    "IdNumber",
    "InsufficientLevel",
    "InvalidValue",
    "JsonTooDeep",
    "KeyManager",
    "KeyRing",
    "KeyStore",
    "Level",
    "MasterKeyError",
    "Milliseconds",
    "NonEmptyStr",
    "NonNegative",
    "NotFound",
    "OneCityError",
    "OperatorError",
    "Phone",
    "Pool",
    "Port",
    "ProblemDocument",
    "Purpose",
    "RateLimited",
    "Redis",
    "Repository",
    "Request",
    "Seconds",
    "SettingsError",
    "Shell",
    "ShortStr",
    "Slug",
    "Token",
    "Unauthorized",
    "UnprocessableEntity",
    "Vault",
    "create_pool",
    "create_redis",
    "level_rank",
    "meets_level",
    "parse_master_key",
    "problem_document",
    "refuse",
    "row_as",
    "rows_as",
    "text",
    "whole",
    "write_audit",
]
