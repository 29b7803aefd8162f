"""Jobs of the ledger as scrapyd's listjobs.json and status.json show them (pure)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from daemon.api.scrapyd.replies import ScrapydError
from daemon.spider_args import read_scrapyd_payload

#: A caller's own job id: it names the crawl's log and output folder, so only safe
#: characters (ScrapydWeb's "2024-05-01T12_00_00" and UUIDs fit).
_JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

#: scrapyd's three groups and the ledger statuses in each. SCHEDULED (a recurring
#: scrapy-do job) has no scrapyd counterpart; its runs show up as they are queued.
GROUPS = {
    "pending": ("PENDING",),
    "running": ("RUNNING",),
    "finished": ("SUCCESSFUL", "FAILED", "CANCELED"),
}
STATE_OF = {status: group for group, statuses in GROUPS.items() for status in statuses}


def check_job_id(job_id: str) -> str:
    """A caller's job id names a folder beside the daemon's own (logs, projects, the
    store) under the data folder: besides safe characters it must hold a digit, which
    none of those names have (the caller also refuses any name already there)."""
    if not _JOB_ID_RE.fullmatch(job_id) or ".." in job_id or not re.search(r"\d", job_id):
        raise ScrapydError(
            f"jobid {job_id[:120]!r} is not allowed: use 1-100 letters, digits, '_', '-' "
            "or '.', starting with a letter or digit",
            400,
        )
    return job_id


def scrapyd_time(ts: float | None, tz: ZoneInfo) -> str | None:
    """str() of a naive local datetime, as scrapyd writes start_time and end_time."""
    if ts is None:
        return None
    return str(datetime.fromtimestamp(ts, tz).replace(tzinfo=None))


def seconds_time(ts: float | None, tz: ZoneInfo) -> str | None:
    """A local time to the second, as scrapyd's jobs page shows it."""
    if ts is None:
        return None
    return str(datetime.fromtimestamp(int(ts), tz).replace(tzinfo=None))


def runtime(start: float | None, end: float | None) -> str | None:
    """H:MM:SS, as str() of a timedelta without microseconds."""
    if start is None or end is None:
        return None
    return str(timedelta(seconds=int(max(0.0, end - start))))


def job_args(payload: str) -> tuple[dict[str, str], str | None]:
    """(spider arguments, version asked for) of a job, whichever API scheduled it."""
    scrapyd = read_scrapyd_payload(payload)
    if scrapyd is not None:
        return scrapyd
    if payload and payload != "{}":
        return {"payload": payload}, None
    return {}, None


def log_url(prefix: str, job: Any) -> str | None:
    """Where the job's Scrapy log is served; None before the crawl started."""
    if job.started is None:
        return None
    return f"{prefix}/logs/{job.project}/{job.spider}/{job.id}.log"


def items_url(prefix: str, job: Any) -> str:
    """Where the job's items (items.jl) are served."""
    return f"{prefix}/items/{job.project}/{job.spider}/{job.id}.jl"


def job_entry(
    job: Any, group: str, tz: ZoneInfo, prefix: str, has_items: bool = False
) -> dict[str, Any]:
    """One job of listjobs.json: scrapyd's keys for its group, then args and settings
    for every group (scrapyd#529); `items_url` only when the crawl wrote items."""
    args, version = job_args(job.payload)
    entry: dict[str, Any] = {"id": job.id, "project": job.project, "spider": job.spider}
    if group == "pending":
        entry["version"] = version
        entry["settings"] = dict(job.settings)
        entry["args"] = args
        return entry
    if group == "running":
        entry["pid"] = job.pid
        entry["start_time"] = scrapyd_time(job.started, tz)
    else:
        entry["start_time"] = scrapyd_time(job.started, tz)
        entry["end_time"] = scrapyd_time(job.finished, tz)
    entry["log_url"] = log_url(prefix, job)
    entry["items_url"] = items_url(prefix, job) if has_items else None
    entry["version"] = version
    entry["settings"] = dict(job.settings)
    entry["args"] = args
    return entry
