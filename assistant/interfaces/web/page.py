"""``GET /``: the voice page.  ``page.html`` is one file with its script inline and nothing
loaded from elsewhere, so it works offline and needs no build step.  While S2R_API_KEY is set,
a request without the key (``?key=`` or a bearer header) gets ``key.html`` instead, a form
that asks for it."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi.responses import HTMLResponse

# The page loads nothing but itself: its inline script and style, its worklet (a blob: URL),
# its WebSocket and the spans it fetches (the same origin), the spans it plays (blob: URLs).
# It may not be framed (no clickjacking of the microphone button), and never sends a Referer,
# whose URL could carry ?key=.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline' blob:; "
    "style-src 'unsafe-inline'; connect-src 'self'; media-src blob:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'",
}


@cache
def _html(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def page() -> HTMLResponse:
    return HTMLResponse(_html("page.html"), headers=HEADERS)


def key_form() -> HTMLResponse:
    return HTMLResponse(_html("key.html"), status_code=401, headers=HEADERS)
