"""Who may use the service: the API key (``S2R_API_KEY``) and the browser origins that may
call it (the server's own, plus ``S2R_CORS_ORIGINS``).  One place, so the HTTP endpoints, the
voice page and its WebSocket admit exactly the same clients."""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers


def key_matches(expected: str, presented: str) -> bool:
    """Whether ``presented`` is the key; always, when no key is set.  Constant time, so
    response times tell nothing about how much of a guess was right."""
    if not expected:
        return True
    return hmac.compare_digest(presented.encode(), expected.encode())


def bearer(headers: Headers) -> str:
    """The token of an ``Authorization: Bearer …`` header, spelled exactly so, or ``""``."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme == "Bearer" else ""


def cors_origins(setting: str) -> list[str]:
    """``S2R_CORS_ORIGINS`` as a list: the other origins browsers may call from."""
    return [origin.strip() for origin in setting.split(",") if origin.strip()]


def origin_allowed(headers: Headers, secure: bool, allowed: list[str]) -> bool:
    """Whether a WebSocket handshake may proceed.  Browsers always send ``Origin`` and
    enforce no same-origin rule on WebSockets themselves, so any page could otherwise open one
    to this server with the user's network position; other clients send no Origin and are
    held to the key alone."""
    origin = headers.get("origin")
    if origin is None:
        return True
    own = f"{'https' if secure else 'http'}://{headers.get('host', '')}"
    return origin == own or origin in allowed or "*" in allowed
