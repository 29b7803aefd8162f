"""The HTTP API: one Klein app per API, each mounted under its own prefix.

- scrapy-do's API at the root (daemon/api/scrapydo.py), with `/openapi.json`
  (daemon/api/openapi.py) describing every app;
- the coin API under `/api/` (daemon/api/coins.py);
- Prometheus' scrape endpoint at `/metrics` (daemon/api/metrics.py);
- the webhooks' delivery log under `/webhooks/` (daemon/api/webhooks.py);
- scrapyd's API under `/scrapyd/` when `scrapyd.enabled` (daemon/api/scrapyd/), and alone
  at the root of a second listener when `scrapyd.port` is set (app.py);
- the dashboard's HTML pages under `/ui/` (daemon/ui/), where `/` redirects. Pages are
  not API routes: they are mounted beside the APIs but not described in openapi.json.

A new endpoint is a route in the app of its API. A new API is a module with
`make_app(ctx) -> Klein` (built with `routing.new_app(envelope)`) added to `MOUNTED`.
Auth, body caps and the JSON helpers are shared plumbing (daemon/api/http.py), applied
by the site before any app sees a request. Routes stay thin: parse, call a service,
shape the JSON; services come from the typed `ApiContext`.
"""

from __future__ import annotations

from collections.abc import Callable

from klein import Klein

from daemon.api import coins, metrics, openapi, scrapydo, webhooks
from daemon.api.context import ApiContext
from daemon.api.routing import Mounts
from daemon.api.scrapyd import listener as scrapyd_listener

__all__ = ["MOUNTED", "ApiContext", "Apps", "make_apps"]

#: prefix (first path segment) -> the factory of the app served under it.
MOUNTED: dict[str, Callable[[ApiContext], Klein]] = {
    "api": coins.make_app,
    "metrics": metrics.make_app,
    "webhooks": webhooks.make_app,
}


class Apps:
    """The daemon's apps: `root` serves every path no prefix claims; `pages` are the
    HTML apps (the dashboard), mounted like the APIs but not API routes."""

    def __init__(
        self, root: Klein, mounted: dict[str, Klein], pages: dict[str, Klein] | None = None
    ) -> None:
        self.root = root
        self.mounted = mounted
        self.pages = pages or {}

    def resource(self) -> Mounts:
        home = next(iter(self.pages), None)
        return Mounts(self.root, {**self.mounted, **self.pages}, home=home)

    def routes(self) -> list[tuple[str, str, set[str]]]:
        """(prefix, rule, methods) of every route of every app; prefix "" is the root."""
        out = []
        for prefix, app in [("", self.root), *self.mounted.items()]:
            base = f"/{prefix}" if prefix else ""
            for rule in app.url_map.iter_rules():
                # A mounted app's own root is its prefix ("/metrics", not "/metrics/").
                path = "" if base and rule.rule == "/" else rule.rule
                out.append((base, path, set(rule.methods or ())))
        return out


def make_apps(ctx: ApiContext) -> Apps:
    root = scrapydo.make_app(ctx)
    openapi.add_route(root)
    mounted = {prefix: factory(ctx) for prefix, factory in MOUNTED.items()}
    if ctx.config.scrapyd.enabled:
        mounted["scrapyd"] = scrapyd_listener.mounted_app(ctx)
    from daemon import ui  # the dashboard imports this package's plumbing

    return Apps(root, mounted, {"ui": ui.make_app(ctx)})
