"""Lazy package exports (PEP 562): a package names its public surface without importing it.

A package whose ``__init__`` re-exports names from heavy submodules would load all of them
(Litestar, asyncpg, ...) for anyone who imports one light module beneath it: ``import
codes.verifier`` in a partner's scanner, ``import core.levels`` in a setting. Instead the
package maps each public name to its module and imports the module on first access::

    __getattr__ = lazy_exports(__name__, {"create_app": "bff.app"}, globals())
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports", "sources_of"]


def sources_of(exports: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """``{module: (name, ...)}`` turned into ``{name: module}``."""
    return {name: module for module, names in exports.items() for name in names}


def lazy_exports(package: str, sources: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """The module-level ``__getattr__`` of ``package``.

    Args:
        package: The package's ``__name__`` (for the ``AttributeError`` message).
        sources: Each public name and the module that defines it.
        namespace: The package's ``globals()``: a name imported once is stored there, so later
            accesses do not come back here.
    """

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook PEP 562 names
        module = sources.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
