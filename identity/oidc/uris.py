"""Redirect URIs: what may be registered, and how parameters are added to one.

Matching is exact string comparison against the registered list, always: no prefix, no
wildcard, no normalisation, so ``https://partner.example/cb.evil.example`` or
``https://partner.example/cb/../x`` never match ``https://partner.example/cb``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redirect_uri_problem", "with_params"]

_LOOPBACK = {"127.0.0.1", "[::1]", "localhost"}


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be registered as a redirect URI, or ``None`` if it can.

    Accepted: ``https`` URLs; ``http`` on loopback only (development, RFC 8252 section 7.3);
    private-use schemes with a dot (``com.example.app:/callback``, RFC 8252 section 7.1)
    for native apps. Never a fragment, user info or wildcard.
    """
    if len(uri) > 512 or any(c.isspace() for c in uri) or "*" in uri:
        return "must be at most 512 characters, without spaces or wildcards"
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        return "must not contain a fragment"
    if parts.scheme == "https":
        if not parts.hostname or "@" in parts.netloc:
            return "needs a host and no user info"
        return None
    if parts.scheme == "http":
        if (
            parts.hostname is None
            or ("[" + parts.hostname + "]" if ":" in parts.hostname else parts.hostname) not in _LOOPBACK
        ):
            return "http is allowed on loopback only (127.0.0.1, [::1], localhost); use https"
        return None
    if "." in parts.scheme and parts.path:
        return None
    return "must be https, http on loopback, or a private-use scheme like com.example.app:/callback"


def with_params(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` added to its query (existing parameters kept, ``None`` skipped)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))
