"""ASGI entry point for process managers (``onecity serve`` and granian/uvicorn workers).

The factory is called once per worker process; it reads the environment then, never at
import, so importing this module has no side effects.
"""

from __future__ import annotations

from litestar import Litestar

from bff.app import create_app
from bff.observability import configure_logging
from bff.settings import load_settings

__all__ = ["app_factory"]


def app_factory() -> Litestar:
    """Build the app from ``ONECITY_*`` variables (granian/uvicorn ``--factory`` target)."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
