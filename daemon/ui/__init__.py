"""The dashboard: server-rendered HTML pages under `/ui/`, live over Server-Sent Events.

One Klein app (daemon/ui/pages.py) mounted beside the APIs (daemon/api/__init__.py);
the same auth applies (the site checks it before any app). Templates are Jinja2 with
autoescape; htmx and uPlot are vendored in static/ (see VENDORED.md). Every link is
relative (each page sets <base href> to the dashboard's root), so a reverse proxy may
serve it under any sub-path.

static/app.js (our few dozen lines): one tab, holding a Web Lock, keeps the event
stream (daemon/ui/stream.py) and passes its "changed" events to the other tabs over a
BroadcastChannel, since browsers allow six connections per host and a seventh tab's
stream would hang; a hidden tab gives its stream and the lock back, and refreshes when
shown again. A job page follows its log on a stream of its own (resuming from the last
byte offset it got). Without EventSource the pages poll.
"""

from daemon.ui.pages import make_app

__all__ = ["make_app"]
