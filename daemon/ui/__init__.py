"""The dashboard: server-rendered HTML pages under `/ui/`, live over Server-Sent Events.

One Klein app (daemon/ui/pages.py) mounted beside the APIs (daemon/api/__init__.py);
the same auth applies (the site checks it before any app). Templates are Jinja2 with
autoescape; htmx and uPlot are vendored in static/ (see VENDORED.md). Every link is
relative (each page sets <base href> to the dashboard's root), so a reverse proxy may
serve it under any sub-path.
"""

from daemon.ui.pages import make_app

__all__ = ["make_app"]
