"""The webhooks' delivery log, mounted under /webhooks: which webhooks there are, and
each one's recent attempts with the receiver's answers (what to look at when a receiver
says it heard nothing)."""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred

from daemon.api.context import ApiContext
from daemon.api.http import ApiError, accepts, arg_int, error_body, ok
from daemon.api.routing import new_app
from daemon.webhooks import shown_url

LOG_LIMIT_DEFAULT = 50
LOG_LIMIT_MAX = 1000


def make_app(ctx: ApiContext) -> Klein:
    app = new_app(error_body)
    service = ctx.webhooks

    @app.route("/", methods=["GET"])
    @accepts()
    def list_webhooks(request: Any) -> bytes:
        hooks = [
            {
                "webhook": n,
                "url": shown_url(hook.url),
                "events": sorted(hook.events),
                "signed": hook.secret is not None,
            }
            for n, hook in enumerate(service.hooks)
        ]
        return ok(request, webhooks=hooks)

    @app.route("/<string:number>/deliveries", methods=["GET"])
    @accepts("limit")
    def deliveries(request: Any, number: str) -> Deferred[bytes]:
        if not number.isdigit() or int(number) >= len(service.hooks):
            count = len(service.hooks)
            raise ApiError(
                f"No webhook {number[:20]!r}: the config has {count} (numbered from 0)", 404
            )
        limit = arg_int(request, "limit", LOG_LIMIT_DEFAULT, 1, LOG_LIMIT_MAX)
        return service.deliveries(int(number), limit).addCallback(lambda log: ok(request, **log))

    return app
