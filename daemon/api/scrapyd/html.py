"""scrapyd's monitoring pages (home, jobs, log folders), laid out as scrapyd 1.6.0 lays
them out: ScrapydWeb reads the jobs table (its column order, one <tbody> per state)
and the log folder listings, so their structure is kept; the wording is ours. Pure:
each page is made from plain values; `base` is X-Forwarded-Prefix (or the mount path).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from urllib.parse import quote

JOB_HEADERS = ("Project", "Spider", "Job", "PID", "Start", "Runtime", "Finish", "Log", "Cancel")
_STYLE = (
    "body { font-family: system-ui, sans-serif; }\n"
    "table { border-collapse: collapse; }\n"
    "th, td { border-style: solid; border-width: 1px; padding: .5rem; }\n"
)


def _page(title: str, body: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>\n{_STYLE}</style>\n</head>\n<body>\n"
        f"{body}</body>\n</html>\n"
    ).encode()


def home(base: str, projects: Iterable[str]) -> bytes:
    names = sorted(projects)
    if names:
        items = "\n".join(f"<li>{escape(n)}</li>" for n in names)
        listing = f"<p>Scrapy projects:</p>\n<ul>\n{items}\n</ul>\n"
    else:
        listing = "<p>No Scrapy projects yet.</p>\n"
    body = (
        "<h1>Scrapyd</h1>\n<ul>\n"
        f'<li><a href="{escape(base)}/jobs">Jobs</a></li>\n'
        f'<li><a href="{escape(base)}/logs/">Logs</a></li>\n'
        "</ul>\n" + listing + "<p>This page is for monitoring; schedule crawls with the API, "
        "e.g. <code>curl http://HOST:PORT/schedule.json -d project=P -d spider=S</code>.</p>\n"
    )
    return _page("Scrapyd", body)


def cancel_button(base: str, project: str, job: str) -> str:
    return (
        f'<form method="post" onsubmit="return confirm(\'Are you sure?\');" '
        f'action="{escape(base)}/cancel.json">'
        f'<input type="hidden" name="project" value="{escape(project)}">'
        f'<input type="hidden" name="job" value="{escape(job)}">'
        '<input type="submit" style="float: left;" value="Cancel"></form>'
    )


def _row(cells: Mapping[str, str | None]) -> str:
    tds = "\n".join(f"<td>{cells.get(h) or ''}</td>" for h in JOB_HEADERS)
    return f"<tr>\n{tds}\n</tr>"


def job_row(base: str, job: Mapping[str, str | None], state: str) -> str:
    """A row of the jobs table; `job` holds text values (project, spider, id, pid,
    start, runtime, finish, log_url), escaped here."""
    cells: dict[str, str | None] = {
        "Project": escape(job["project"] or ""),
        "Spider": escape(job["spider"] or ""),
        "Job": escape(job["id"] or ""),
        "PID": escape(job.get("pid") or ""),
        "Start": escape(job.get("start") or ""),
        "Runtime": escape(job.get("runtime") or ""),
        "Finish": escape(job.get("finish") or ""),
    }
    if job.get("log_url"):
        cells["Log"] = f'<a href="{escape(base + (job["log_url"] or ""))}">Log</a>'
    if state in ("pending", "running"):
        cells["Cancel"] = cancel_button(base, job["project"] or "", job["id"] or "")
    return _row(cells)


def jobs(base: str, groups: Mapping[str, Sequence[Mapping[str, str | None]]]) -> bytes:
    ths = "\n".join(f"<th>{h}</th>" for h in JOB_HEADERS)
    parts = [f'<h1>Jobs</h1>\n<p><a href="./">Go up</a></p>\n<table id="jobs">\n'
             f"<thead>\n<tr>\n{ths}\n</tr>\n</thead>\n"]  # fmt: skip
    for state, title in (("pending", "Pending"), ("running", "Running"), ("finished", "Finished")):
        rows = "\n".join(job_row(base, j, state) for j in groups.get(state, []))
        parts.append(
            f'<tbody>\n<tr>\n<th colspan="{len(JOB_HEADERS)}">{title}</th>\n</tr>\n'
            f"{rows}\n</tbody>\n"
        )
    parts.append("</table>\n")
    return _page("Scrapyd", "".join(parts))


def listing(title: str, entries: Iterable[tuple[str, bool]]) -> bytes:
    """A folder listing: (name, is_folder) pairs as links relative to the folder."""
    rows = []
    for name, is_dir in sorted(entries):
        shown = name + ("/" if is_dir else "")
        kind = "[Directory]" if is_dir else "[text/plain]"
        rows.append(
            f'<tr>\n<td><a href="{quote(shown)}">{escape(shown)}</a></td>\n<td>{kind}</td>\n</tr>'
        )
    body = (
        f"<h1>{escape(title)}</h1>\n<table>\n<thead>\n<tr>\n<th>Filename</th>\n"
        "<th>Content type</th>\n</tr>\n</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n"
        "</table>\n"
    )
    return _page(title, body)
