"""The shell: the one Litestar application and the ``onecity`` command, assembled from the domains.

``bff`` reads the settings from the environment once (:func:`load_settings`), opens the pools
and clients every request shares (:mod:`bff.resources`), attaches each domain's services
(:mod:`bff.domains`), builds the app (:func:`create_app`) with the problem-JSON error mapping
(:mod:`bff.problems`) and the request middleware, and runs it (``onecity serve``, ``onecity
dev`` on the embedded default). Domains never import ``bff``.

Names are imported from their submodule on first use (PEP 562): ``onecity serve`` must prepare
its metrics directory before anything imports ``prometheus_client``, so importing the package
loads nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bff.app import create_app
    from bff.cli import main
    from bff.problems import problem_response, send_problem
    from bff.resources import Resources, StartupError
    from bff.settings import ENVIRONMENT, Settings, SettingsError, load_settings

_EXPORTS: dict[str, tuple[str, ...]] = {
    "bff.app": ("create_app",),
    "bff.cli": ("main",),
    "bff.problems": ("problem_response", "send_problem"),
    "bff.resources": ("Resources", "StartupError"),
    "bff.settings": ("ENVIRONMENT", "Settings", "SettingsError", "load_settings"),
}
_SOURCES = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access."""
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module 'bff' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ENVIRONMENT",
    "Resources",
    "Settings",
    "SettingsError",
    "StartupError",
    "create_app",
    "load_settings",
    "main",
    "problem_response",
    "send_problem",
]
