"""``onecity dev`` must not let uvicorn pick the client address from forwarded headers."""

from __future__ import annotations

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bff.dev import uvicorn_config
from bff.settings import load_settings


def test_uvicorn_does_not_rewrite_the_client_from_forwarded_headers() -> None:
    config = uvicorn_config(load_settings({"ONECITY_ENV": "dev"}))
    config.load()
    # uvicorn's default wraps the app in ProxyHeadersMiddleware trusting 127.0.0.1, so any
    # local client could choose its address with X-Forwarded-For.
    app = config.loaded_app
    while app is not None:
        assert not isinstance(app, ProxyHeadersMiddleware)
        app = getattr(app, "app", None)
