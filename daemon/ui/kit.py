"""What every area of the dashboard shares: the template environment, page and
fragment rendering, the refusal shape, the cross-site guard and "copy as curl".

Built once per app by daemon/ui/pages.py and handed to each area's `add_routes`.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from daemon.config import Config
from daemon.ui import fmt
from daemon.ui.guard import cross_site_refusal


class UiError(Exception):
    """A refused UI request: shown to the person as a page or a message, with a code."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = code


def anomaly_report(text: str | None) -> dict[str, Any]:
    """A run's stored anomaly report (daemon.anomalies.compare) with its findings as a
    list of objects; {} when it has none or the text is not a report."""
    try:
        report = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(report, dict):
        return {}
    found = report.get("findings")
    report["findings"] = (
        [f for f in found if isinstance(f, dict)] if isinstance(found, list) else []
    )
    return report


def anomaly_findings(text: str | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = anomaly_report(text).get("findings", [])
    return found


def _env(config: Config) -> Environment:
    env = Environment(
        loader=PackageLoader("daemon.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    for name in (
        "integer",
        "compact",
        "price",
        "money_compact",
        "percent",
        "size",
        "duration",
        "iso",
    ):
        env.filters[name] = getattr(fmt, name)
    env.filters["when"] = lambda ts: fmt.timestamp(ts, config.tz)
    env.filters["ago"] = lambda ts: fmt.ago(ts, time.time())
    env.filters["findings"] = anomaly_findings
    env.filters["report"] = anomaly_report
    env.globals["fmt"] = fmt
    return env


class Kit:
    """Rendering and guarding for the routes of every area."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = _env(config)

    def render(self, request: Any, name: str, depth: int, **values: Any) -> bytes:
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Referrer-Policy", b"same-origin")
        base = "./" if depth == 0 else "../" * depth
        return self.env.get_template(name).render(base=base, **values).encode("utf-8")

    def fragment(self, request: Any, template: str, **values: Any) -> bytes:
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return self.env.get_template(template).render(**values).encode("utf-8")

    def error_page(self, request: Any, message: str, code: int) -> bytes:
        request.setResponseCode(code)
        if request.getHeader(b"hx-request") == b"true":
            return self.fragment(request, "_message.html", ok=False, message=message)
        return self.render(request, "error.html", depth(request), message=message, code=code)

    def message(self, request: Any, text: str, ok: bool = True, **extra: Any) -> bytes:
        return self.fragment(request, "_message.html", ok=ok, message=text, **extra)

    def guard(self, request: Any) -> None:
        """Browsers send Basic credentials on cross-site form posts: every state change
        must come from our own pages."""
        why = cross_site_refusal(
            request.getHeader(b"hx-request"), request.getHeader(b"sec-fetch-site")
        )
        if why is not None:
            raise UiError(why, 403)

    def curl_for(
        self,
        path: str,
        data: dict[str, str] | list[tuple[str, str]],
        form: dict[str, str] | None = None,
    ) -> str:
        """The API call an action stands for, with `{base}` for the daemon's URL (the page
        fills in its own, which includes any proxy prefix)."""
        parts = ["curl", "-u", "USER:PASSWORD"] if self.config.auth is not None else ["curl"]
        pairs = data.items() if isinstance(data, dict) else data
        for key, value in pairs:
            parts += ["-d", f"{key}={value}"]
        for key, value in (form or {}).items():
            parts += ["-F", f"{key}={value}"]
        return " ".join(shlex.quote(p) for p in parts) + " {base}" + path


def chart(labels: list[str], data: list[list[Any]]) -> Markup:
    """A chart's series for the page's <script type=application/json> (app.js draws it)."""
    text = json.dumps({"labels": labels, "data": data}, ensure_ascii=True)
    return Markup(text.replace("<", "\\u003c"))


def depth(request: Any) -> int:
    """How many folders below the dashboard's root a page is (/ui/jobs/<id>: 1)."""
    return max(0, request.path.count(b"/") - 2)
