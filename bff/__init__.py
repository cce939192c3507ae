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

from typing import TYPE_CHECKING

from core.lazy import lazy_exports, sources_of

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


__getattr__ = lazy_exports(__name__, sources_of(_EXPORTS), globals())


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
