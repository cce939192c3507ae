"""The TLS context every department client shares.

Building one (``httpx.create_ssl_context``) loads the whole CA bundle, tens of milliseconds of
CPU; each process needs it once, not once per ``httpx.AsyncClient`` (the app opens several,
and again at every start in tests). An ``SSLContext`` is safe to share between clients.
"""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["department_tls_context"]


@functools.cache
def department_tls_context() -> ssl.SSLContext:
    """The process's TLS context for calls to the departments (system CA bundle, verified)."""
    return httpx.create_ssl_context()
