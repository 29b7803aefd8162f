"""Refusing cross-site requests to the dashboard's state-changing routes.

Browsers send cached Basic credentials with a form another site posts to the daemon, so
auth alone does not prove the user meant the action. The dashboard's own requests come
from htmx, which adds `HX-Request: true`: a custom header, which a cross-site page can
only send after a CORS preflight the daemon never grants. `Sec-Fetch-Site`, where the
browser sends it, must say the request came from the same origin.
"""

from __future__ import annotations

_ALLOWED_SITES = (b"same-origin", b"none")


def cross_site_refusal(hx_request: bytes | None, fetch_site: bytes | None) -> str | None:
    """Why a state-changing request is refused, or None when it may go on."""
    if hx_request != b"true":
        return "This action is only taken from the dashboard's pages (HX-Request header missing)"
    if fetch_site is not None and fetch_site.lower() not in _ALLOWED_SITES:
        return "Cross-site request refused"
    return None
