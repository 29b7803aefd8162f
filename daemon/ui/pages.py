"""The dashboard's app: one Klein app whose areas (overview, jobs, schedules, projects,
coins, actions) each add their routes; they share the rendering and guarding of
daemon/ui/kit.py and the services of the ApiContext, built in daemon/app.py.

Reads that may take more than a millisecond (job pages, the day's figures, logs, coin
data) run in worker threads through the services; state changes go through the same
service calls as the JSON API, behind the cross-site guard (daemon/ui/guard.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from klein import Klein
from twisted.web.static import File

from daemon.api.context import ApiContext
from daemon.api.routing import new_app
from daemon.ui import actions, coins_pages, jobs_pages, overview, projects_pages, schedules
from daemon.ui.kit import Kit, UiError
from daemon.ui.stream import Hub

STATIC = Path(__file__).resolve().parent / "static"


def make_app(ctx: ApiContext) -> Klein:
    from twisted.internet import reactor

    kit = Kit(ctx.config)
    app = new_app(kit.error_page)
    overview.add_routes(app, ctx, kit)
    jobs_pages.add_routes(app, ctx, kit, Hub(reactor, ctx.bus))
    schedules.add_routes(app, ctx, kit)
    projects_pages.add_routes(app, ctx, kit)
    coins_pages.add_routes(app, ctx, kit)
    actions.add_routes(app, ctx, kit)

    @app.route("/static/<string:name>", methods=["GET"])
    def static(request: Any, name: str) -> Any:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise UiError(f"No file {name[:60]}", 404)
        request.setHeader(b"Cache-Control", b"max-age=3600")
        return File(str(path))

    return app
