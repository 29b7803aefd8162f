"""A job as list-jobs shows it (scrapy-do's keys plus ours), written as JSON text straight
from a store row.

list-jobs spends its time here (a page of 1,000 jobs is 1,000 of these), so a row is
written with one template instead of row -> Job -> dict -> json.dumps: the same bytes
`json.dumps(dict, ensure_ascii=False)` gives (tests/test_daemon_listing.py pins them),
at about a third of the cost. Thread-safe: pages are shaped in a worker thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any
from zoneinfo import ZoneInfo

from daemon.job_store import Job

# The columns a row must have, in this order (Store.list_rows / Store.get_row).
JOB_COLUMNS = (
    "id",
    "status",
    "actor",
    "schedule",
    "project",
    "spider",
    "description",
    "payload",
    "settings",
    "max_runtime",
    "created",
    "updated",
    "started",
    "finished",
    "exit_code",
    "parent",
    "reason",
    "next_run",
    "last_fire",
    "skipped",
    "leftovers_killed",
    "node",
    "handle",
    "stats",
    "paused",
    "misfires",
    "last_run",
    "anomalies",
    "retries",
    "attempt",
    "next_attempt_at",
    "attempts",
    "after_job",
    "after_on",
    "waiting",
)

_fromtimestamp = datetime.fromtimestamp
_float_repr = float.__repr__
_int_repr = int.__repr__


def _attempt(handle: Any, attempt: Any) -> str:
    """Which attempt of the job runs, ran or waits: the jobs service's count (retries,
    the `attempt` column), or a Celery handle's (`celery:<n>:...`, see
    daemon.cluster.executor) when it is further on: the Celery executor runs an attempt
    lost with its node again under the next number by itself."""
    number = attempt if attempt.__class__ is int else 1
    if handle.__class__ is str and handle.startswith("celery:"):
        text = handle.split(":", 2)[1]
        if text.isascii() and text.isdigit():
            number = max(number, int(text))
    return str(number)


def _text(value: Any) -> str:
    """A JSON string (or null, or whatever else a loosely typed column holds)."""
    if value.__class__ is str:
        return encode_basestring(value)
    return _number(value)


def _number(value: Any) -> str:
    """Numbers as json.dumps writes them (NaN and the infinities included)."""
    if value is None:
        return "null"
    if value.__class__ is int:
        return _int_repr(value)
    if value.__class__ is float:
        if math.isfinite(value):
            return _float_repr(value)
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return json.dumps(value, ensure_ascii=False)


def _setting_names(value: Any) -> str:
    """Names only, sorted: a setting's value may be a secret. The store keeps settings
    as JSON text (sorted, '{}' when none); a Job has them as a dict."""
    if value == "{}" or not value:
        return "[]"
    names = sorted(json.loads(value) if isinstance(value, str) else value)
    return json.dumps(names, ensure_ascii=False)


class JobJson:
    """Writes jobs for one time zone (the daemon's). `live(job_id)` gives a running
    job's live stats (JSON text of an object, or None); a finished job's are in its row.
    """

    def __init__(self, tz: ZoneInfo, live: Callable[[str], str | None] | None = None) -> None:
        self.tz = tz
        self.live = live

    def iso(self, ts: float | None) -> str | None:
        """A timestamp in the daemon's zone, ISO 8601 with its offset.

        `fromtimestamp(ts, tz)` converts through UTC, as `astimezone` does, so an hour
        that comes twice (end of summer time) gets the offset it really had.
        """
        return None if ts is None else _fromtimestamp(ts, self.tz).isoformat()

    def job(self, row: Sequence[Any]) -> str:
        """One job's JSON object; `row` holds JOB_COLUMNS in order."""
        (
            id_,
            status,
            actor,
            schedule,
            project,
            spider,
            description,
            payload,
            settings,
            max_runtime,
            created,
            updated,
            started,
            finished,
            exit_code,
            parent,
            reason,
            next_run,
            last_fire,
            skipped,
            leftovers_killed,
            node,
            handle,
            stats,
            paused,
            misfires,
            last_run,
            anomalies,
            retries,
            attempt,
            next_attempt_at,
            attempts,
            after_job,
            after_on,
            waiting,
        ) = row
        tz = self.tz
        texts: tuple[str, ...]
        try:
            texts = (
                encode_basestring(id_),
                encode_basestring(status),
                encode_basestring(actor),
                encode_basestring(schedule),
                encode_basestring(project),
                encode_basestring(spider),
                encode_basestring(description),
                encode_basestring(payload),
            )
        except TypeError:  # a loosely typed column the daemon did not write
            texts = tuple(
                map(_text, (id_, status, actor, schedule, project, spider, description, payload))
            )
        id_j, status_j, actor_j, schedule_j, project_j, spider_j, description_j, payload_j = texts
        finished_iso = None if finished is None else _fromtimestamp(finished, tz).isoformat()
        if updated == finished:  # every completed job: write the time once
            updated_iso = finished_iso
        else:
            updated_iso = None if updated is None else _fromtimestamp(updated, tz).isoformat()
        if updated_iso is None:
            stamp = "null"
        else:
            # scrapy-do's "timestamp": the local time without its offset, ' ' for 'T'.
            end = 26 if updated_iso[19] == "." else 19
            stamp = f'"{updated_iso[:10]} {updated_iso[11:end]}"'
        finished_j = "null" if finished_iso is None else '"' + finished_iso + '"'
        if started is not None and finished is not None:
            duration = round(finished - started)
            duration_j = _int_repr(duration) if duration.__class__ is int else _number(duration)
        else:
            duration_j = "null"
        if stats is None and status == "RUNNING" and self.live is not None:
            stats = self.live(id_)
        # The store's text was checked to be a JSON object when it was written.
        stats_j = stats if stats.__class__ is str else "null"
        # Written by daemon.anomaly_watch with json.dumps: an object.
        anomalies_j = anomalies if anomalies.__class__ is str else "null"
        return (
            f'{{"identifier": {id_j}, "status": {status_j}, "actor": {actor_j}, '
            f'"schedule": {schedule_j}, "project": {project_j}, "spider": {spider_j}, '
            f'"description": {description_j}, "timestamp": {stamp}, '
            f'"duration": {duration_j}, "payload": {payload_j}, '
            f'"created": {_quoted(created, tz)}, "started": {_quoted(started, tz)}, '
            f'"finished": {finished_j}, '
            f'"exit_code": {_number(exit_code)}, "parent": {_text(parent)}, '
            f'"reason": {_text(reason)}, "settings": {_setting_names(settings)}, '
            f'"max_runtime": {_number(max_runtime)}, "next_run": {_quoted(next_run, tz)}, '
            f'"last_fire": {_quoted(last_fire, tz)}, "skipped": {_number(skipped)}, '
            f'"leftovers_killed": {_number(leftovers_killed)}, "node": {_text(node)}, '
            f'"attempt": {_attempt(handle, attempt)}, "stats": {stats_j}, '
            f'"paused": {"true" if paused else "false"}, "misfires": {_number(misfires)}, '
            f'"last_run": {self._last_run(last_run)}, "anomalies": {anomalies_j}, '
            f'"retries": {_number(retries)}, '
            f'"next_attempt_at": {_quoted(next_attempt_at, tz)}, '
            f'"attempts": {self._attempts(attempts)}, "after": {_text(after_job)}, '
            f'"on": {_text(after_on)}, '
            f'"waiting_for": {_text(after_job) if waiting else "null"}}}'
        )

    def _attempts(self, value: Any) -> str:
        """The ended attempts of a job that may retry, from the store's JSON array of
        [n, started, finished, status, reason, exit_code, stats] (job_store's
        _DERIVED_COLUMNS); [] when none ended yet, null for a job without retries."""
        if value.__class__ is not str:
            return "null"
        tz = self.tz
        parts = []
        for n, started, finished, status, reason, exit_code, stats in json.loads(value):
            stats_j = "null" if stats is None else json.dumps(stats, ensure_ascii=False)
            parts.append(
                f'{{"n": {_number(n)}, "started": {_quoted(started, tz)}, '
                f'"finished": {_quoted(finished, tz)}, "status": {_text(status)}, '
                f'"reason": {_text(reason)}, "exit_code": {_number(exit_code)}, '
                f'"stats": {stats_j}}}'
            )
        return "[" + ", ".join(parts) + "]"

    def _last_run(self, value: Any) -> str:
        """A schedule's newest run, from the store's [id, status, created, started,
        finished] (see job_store._DERIVED_COLUMNS); null when it has none."""
        if value.__class__ is not str:
            return "null"
        id_, status, created, started, finished = json.loads(value)
        tz = self.tz
        return (
            f'{{"identifier": {_text(id_)}, "status": {_text(status)}, '
            f'"created": {_quoted(created, tz)}, "started": {_quoted(started, tz)}, '
            f'"finished": {_quoted(finished, tz)}}}'
        )

    def jobs(self, rows: Iterable[Sequence[Any]]) -> str:
        """The items of a JSON list (no brackets), as json.dumps separates them."""
        job = self.job
        return ", ".join([job(row) for row in rows])


def _quoted(ts: float | None, tz: ZoneInfo) -> str:
    return "null" if ts is None else '"' + _fromtimestamp(ts, tz).isoformat() + '"'


def job_row(job: Job) -> tuple[Any, ...]:
    """A Job as a row of JOB_COLUMNS (for a job already read as a Job; the columns the
    store computes, such as last_run, are null)."""
    return tuple(getattr(job, name, None) for name in JOB_COLUMNS)
