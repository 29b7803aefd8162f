"""Writes daemon/openapi.json, the OpenAPI 3.1 description of the daemon's HTTP API.

The document is kept in the repo (and served at /openapi.json); this script is how it is
maintained: change the routes in daemon/api/, change this script, run
`python tools/gen_openapi.py`, commit both. tests/test_daemon_openapi.py checks the live
daemon against the committed file with schemathesis, and that the file is what this
script writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "daemon" / "openapi.json"

STR: dict[str, Any] = {"type": "string"}
STRN: dict[str, Any] = {"type": ["string", "null"]}
INT: dict[str, Any] = {"type": "integer"}
INTN: dict[str, Any] = {"type": ["integer", "null"]}
NUM: dict[str, Any] = {"type": "number"}
NUMN: dict[str, Any] = {"type": ["number", "null"]}
REPLACE: dict[str, Any] = {
    "type": "string",
    "enum": ["true", "false", "True", "False", "1", "0", "yes", "no", ""],
    "description": "a name guessed from the settings module may replace a pushed project "
    "only with replace=true",
}
STATUSES = ["SCHEDULED", "PENDING", "RUNNING", "CANCELED", "SUCCESSFUL", "FAILED"]


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def obj(props: dict[str, Any], required: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def ok_with(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return obj({"status": {"const": "ok"}, **props}, ("status", *required))


# Answered before any route runs (GuardedSite, Klein's error handlers), so every path
# may get them: 401/413 always in scrapy-do's envelope, 405 in the coin API's under /api/.
def site_errors(*, post: bool, api: bool = False) -> dict[str, Any]:
    out = {
        "401": json_response(
            "Authentication required (auth on, credentials missing or wrong); nothing else "
            "said. Decided from the request line and headers: a request with a body gets it "
            "before its body is read, and the connection closes after the body",
            ref("Error"),
        ),
        "405": json_response(
            "Wrong method (the Allow header lists the right one)",
            ref("CoinError") if api else ref("Error"),
        ),
    }
    if post:
        out["413"] = json_response("The request body is larger than upload_max_bytes", ref("Error"))
    return out


def scrapydo_errors(*codes: int, post: bool = False) -> dict[str, Any]:
    texts = {
        400: "Bad request (unknown, missing, repeated, malformed or non-UTF-8 parameter; "
        "bad body); the message names the unknown parameters and the accepted ones",
        404: "Unknown project, job or log",
        409: "Conflict (the project has active jobs or is local, or a name guessed from the "
        "settings module would replace a pushed project without replace=true)",
        500: "A fault of the daemon's host (cannot start `scrapy list`)",
        507: "Insufficient storage: the disk holding the data folder is full",
    }
    out = {str(c): json_response(texts[c], ref("Error")) for c in codes}
    out.update(site_errors(post=post))
    return out


def closed(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object of exactly these fields: the scrapy-do routes refuse any other (400)."""
    return {**obj(props, required), "additionalProperties": False}


def form_body(
    props: dict[str, Any],
    required: tuple[str, ...],
    example: dict[str, Any],
    json_props: dict[str, Any] | None = None,
) -> Any:
    """A form body; the same fields may come as a JSON object (with JSON types where
    `json_props` says so)."""
    schema = closed(props, required)
    json_schema = closed({**props, **(json_props or {})}, required)
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": schema, "example": example},
            "multipart/form-data": {"schema": schema},
            "application/json": {"schema": json_schema},
        },
    }


def query(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
        **extra,
    }


def int_or_empty(low: int, high: int | None = None) -> dict[str, Any]:
    """An integer parameter; given empty it means its default (as when left out)."""
    number: dict[str, Any] = {"type": "integer", "minimum": low}
    if high is not None:
        number["maximum"] = high
    return {"anyOf": [number, {"type": "string", "maxLength": 0}]}


def path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


STATS: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "item_scraped_count": INT,
                "response_received_count": INT,
                "finish_reason": STR,
                "elapsed_time_seconds": NUM,
                "start_time": STR,
                "field_coverage": {
                    "type": "object",
                    "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
                    "description": "for each item field, the share of items with a "
                    "non-empty value in it",
                },
            },
            "additionalProperties": True,
        },
        {"type": "null"},
    ],
    "description": "the crawl's stats under Scrapy's own names "
    "(e.g. downloader/response_status_count/200, log_count/ERROR; datetimes as ISO "
    "text) plus field_coverage: while it runs, as the crawl wrote them at most a second "
    "ago; once it ended, its final ones; null for a job that has none (never ran)",
}


ANOMALIES: dict[str, Any] = {
    "anyOf": [
        obj(
            {
                "compared_with": {
                    **INT,
                    "description": "how many earlier successful runs of the spider with the "
                    "same arguments it was compared with (their median)",
                },
                "findings": {
                    "type": "array",
                    "items": obj(
                        {
                            "what": {
                                "enum": [
                                    "items",
                                    "error_rate",
                                    "retry_rate",
                                    "duration",
                                    "field_coverage",
                                ]
                            },
                            "expected": {**NUM, "description": "the history's median"},
                            "seen": {**NUM, "description": "this run's figure"},
                            "field": {**STR, "description": "the item field (field_coverage)"},
                        },
                        ("what", "expected", "seen"),
                    ),
                },
                "note": {**STR, "description": "no history yet: why nothing was compared"},
            },
            ("compared_with", "findings"),
        ),
        {"type": "null"},
    ],
    "description": "the run compared with its history once it ended (config.yaml "
    "`anomalies:`); null while active, when canceled or never started, or for runs "
    "ended before the daemon compared runs",
}


WEBHOOK = obj(
    {
        "webhook": INT,
        "url": STR,
        "events": {"type": "array", "items": STR},
        "signed": {"type": "boolean", "description": "whether it has a secret_env"},
    },
    ("webhook", "url", "events", "signed"),
)
ATTEMPT = obj(
    {
        "time": STRN,
        "status": {**INTN, "description": "the receiver's HTTP status; null: no answer"},
        "answer": {**STR, "description": "the start of its answer, or why there was none"},
        "outcome": {"enum": ["delivered", "failed", "given_up"]},
        "delivery": {**STRN, "description": "the body's delivery id (the same on retries)"},
        "event": STRN,
        "job": STRN,
        "attempts": {**INTN, "description": "attempts of that delivery so far"},
    },
    ("time", "status", "answer", "outcome"),
)


JOB = obj(
    {
        "identifier": {"type": "string", "format": "uuid"},
        "status": {"enum": STATUSES},
        "actor": {"enum": ["USER", "SCHEDULER"]},
        "schedule": STR,
        "project": STR,
        "spider": STR,
        "description": STRN,
        "timestamp": {**STRN, "description": "last state change, local time, as scrapy-do"},
        "duration": {**INTN, "description": "seconds from start to end, null until it ends"},
        "payload": {**STR, "description": "the JSON object given at schedule, as text"},
        "created": STRN,
        "started": STRN,
        "finished": STRN,
        "exit_code": {**INTN, "description": "negative: killed by that signal"},
        "parent": {**STRN, "description": "the scheduled job that fired this run"},
        "reason": {**STRN, "description": "why it ended as it did (FAILED, CANCELED)"},
        "settings": {"type": "array", "items": STR, "description": "names only, never values"},
        "max_runtime": NUMN,
        "next_run": STRN,
        "last_fire": STRN,
        "skipped": INTN,
        "leftovers_killed": {
            **INTN,
            "description": "processes of the crawl still alive after its main process "
            "ended, killed then (null: not a run, or not ended yet)",
        },
        "node": {
            **STRN,
            "description": 'where the crawl runs or ran ("local": the daemon\'s machine); '
            "null until it starts",
        },
        "attempt": {
            **INT,
            "description": "the attempt running, or to run next while PENDING, or the last: "
            "a failed job with retries left runs again as attempt 2, ...; with executor: "
            "celery so does a job whose worker host was lost",
        },
        "stats": STATS,
        "paused": {
            "type": "boolean",
            "description": "a scheduled job that does not fire until resumed",
        },
        "misfires": {
            **INT,
            "description": "fire times of a scheduled job missed (daemon down, reactor held "
            "up) that gave no run: skipped beyond misfire_grace or coalesced with a later one",
        },
        "last_run": {
            "anyOf": [
                obj(
                    {
                        "identifier": {"type": "string", "format": "uuid"},
                        "status": {"enum": STATUSES},
                        "created": STRN,
                        "started": STRN,
                        "finished": STRN,
                    },
                    ("identifier", "status", "created", "started", "finished"),
                ),
                {"type": "null"},
            ],
            "description": "a scheduled job's newest run (null: none yet, or not a schedule)",
        },
        "anomalies": ANOMALIES,
        "retries": {**INTN, "description": "more attempts allowed after a failed one"},
        "next_attempt_at": {
            **STRN,
            "description": "a PENDING job waiting to retry does not start before this time",
        },
        "attempts": {
            "anyOf": [
                {
                    "type": "array",
                    "items": obj(
                        {
                            "n": INT,
                            "started": STRN,
                            "finished": STRN,
                            "status": {"enum": ["SUCCESSFUL", "FAILED", "CANCELED"]},
                            "reason": STRN,
                            "exit_code": INTN,
                            "stats": STATS,
                        },
                        ("n", "started", "finished", "status", "reason", "exit_code", "stats"),
                    ),
                },
                {"type": "null"},
            ],
            "description": "the ended attempts of a job with retries, oldest first (null: "
            "a job without retries)",
        },
        "after": {**STRN, "description": "the job (or scheduled job) this one runs after"},
        "on": {"enum": ["success", "failure", "always", None], "description": "see after"},
        "waiting_for": {
            **STRN,
            "description": "while PENDING: the job whose end this one waits for (never "
            "dispatched meanwhile)",
        },
        "events": {
            "type": "array",
            "description": "the job's history (only when asked by id)",
            "items": obj({"time": STR, "text": STR}, ("time", "text")),
        },
    },
    ("identifier", "status", "actor", "schedule", "project", "spider", "timestamp", "duration"),
)

# The coin API's record: the figures of coinspiders.items.COIN_FIELDS, as the crawl wrote
# them (typed loosely: the daemon shows what the crawl stored).
COIN = {
    "type": "object",
    "additionalProperties": True,
    "properties": {
        "id": INTN,
        "name": STRN,
        "symbol": STRN,
        "slug": STRN,
        "currency": {
            **STRN,
            "description": "currency of the figures: USD for coin pages, the crawl's convert "
            "for the Pro API (older records get theirs from the job's arguments, else USD)",
        },
        "source": STRN,
        "scraped_at": STRN,
    },
}

COIN_ERRORS = {
    "400": json_response(
        "Bad or unknown parameter, the message naming it and the accepted ones (coin API "
        "envelope), or a malformed body (scrapy-do envelope)",
        {"anyOf": [ref("CoinError"), ref("Error")]},
    ),
    "404": json_response(
        "Never collected (by that id or slug, or in that currency) / unknown job, or no such "
        "path (coin API envelope)",
        ref("CoinError"),
    ),
    **site_errors(post=False, api=True),
}

# The coin start/status endpoints' own error envelope, named in the replies below.
START_STATUS_ENVELOPE = 'the start/status envelope {"error": "..."}'
START_STATUS_ERRORS = {
    "400": json_response(
        f"Bad request ({START_STATUS_ENVELOPE}) or a malformed body (scrapy-do envelope)",
        {"anyOf": [ref("StartStatusError"), ref("Error")]},
    ),
    "404": json_response(
        f"Unknown job ({START_STATUS_ENVELOPE}), or no such path (coin API envelope)",
        {"anyOf": [ref("StartStatusError"), ref("CoinError")]},
    ),
}

LIMIT_OFFSET = [
    query("limit", int_or_empty(1, 1000), "page size (default 100)"),
    query("offset", int_or_empty(0, 10_000_000), "rows skipped"),
]
CURRENCY = query(
    "currency",
    {"type": "string", "pattern": "^[A-Za-z0-9]{0,10}$"},
    "currency code of the figures (USD, EUR, BTC...; any case; default USD): records in "
    "other currencies are left out, never mixed in",
)
COIN_KEY = path_param(
    "coin",
    {"type": "string", "minLength": 1, "maxLength": 200},
    "the coin's CMC id or its slug (not its symbol: use /api/coins/?symbol=)",
)
JOB_ID_PARAM = path_param(
    "job_id",
    {"type": "string", "format": "uuid"},
    "a job identifier (canonical lower-case UUID; anything else is an unknown job, 404)",
)

ID_BODY = form_body({"id": STR}, ("id",), {"id": "00000000-0000-4000-8000-000000000000"})
# In a JSON body: one id, a list of them, or null (left out, as for every field).
ID_OR_IDS: dict[str, Any] = {
    "anyOf": [STR, {"type": "array", "items": STR, "maxItems": 1000}, {"type": "null"}],
}
SCHEDULE_REPLY = ok_with(
    {
        "identifier": {"type": "string", "format": "uuid"},
        "job_status": {"enum": STATUSES},
        "schedule": STR,
        "paused": {"type": "boolean"},
        "next_run": {**STRN, "description": "null while paused"},
        "ignored": {"type": "array", "items": STR, "description": "past timestamps left out"},
    },
    ("identifier", "job_status", "schedule", "paused", "next_run"),
)

PATHS: dict[str, Any] = {
    "/status.json": {
        "get": {
            "summary": "Daemon status (scrapy-do keys plus slots, queue and reactor stall)",
            "operationId": "status",
            "responses": {
                "200": json_response(
                    "Status",
                    ok_with(
                        {
                            "memory-usage": {**NUM, "description": "RSS in MiB (sampled <= 1/s)"},
                            "cpu-usage": {**NUM, "description": "percent since the last sample"},
                            "time": STR,
                            "timezone": STR,
                            "hostname": STR,
                            "uptime": STR,
                            "jobs-run": INT,
                            "jobs-successful": INT,
                            "jobs-failed": INT,
                            "jobs-canceled": INT,
                            "jobs-scheduled": INT,
                            "slots": INT,
                            "running": INT,
                            "pending": INT,
                            "disk-free-bytes": {
                                **INTN,
                                "description": "free bytes on the file system of data_dir",
                            },
                            "min-free-bytes": {
                                **INT,
                                "description": "below it new crawls wait PENDING (0: no floor)",
                            },
                            "state-writes-waiting": {
                                **INT,
                                "description": "job state changes waiting for disk space",
                            },
                            "projects": INT,
                            "reactor-max-stall-ms": {
                                **NUMN,
                                "description": "longest delay of the reactor since start",
                            },
                            "reactor-max-busy-ms": {
                                **NUMN,
                                "description": "longest CPU time the reactor spent in one "
                                "loop iteration (its own stalls, not waiting for a CPU)",
                            },
                            "daemon-version": STR,
                            "zygotes": {
                                "type": "array",
                                "description": "warm starts: one zygote per project version "
                                "in use (its pid, running jobs, rss/pss bytes), or one that "
                                "failed to boot (failed, error: that version starts cold)",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "project": STR,
                                        "pid": INT,
                                        "ready": {"type": "boolean"},
                                        "retired": {"type": "boolean"},
                                        "jobs": INT,
                                        "rss": INT,
                                        "pss": INT,
                                        "failed": {"type": "boolean"},
                                        "error": STR,
                                    },
                                    "required": ["project"],
                                },
                            },
                        },
                        (
                            "memory-usage",
                            "cpu-usage",
                            "time",
                            "timezone",
                            "hostname",
                            "uptime",
                            "jobs-run",
                            "jobs-successful",
                            "jobs-failed",
                            "jobs-canceled",
                        ),
                    ),
                ),
                **scrapydo_errors(400),
            },
        }
    },
    "/push-project.json": {
        "post": {
            "summary": "Push a project archive (zip with scrapy.cfg at its top or in one folder)",
            "operationId": "push_project",
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": closed(
                            {"archive": {"type": "string", "format": "binary"}, "replace": REPLACE},
                            ("archive",),
                        ),
                    },
                    "application/x-www-form-urlencoded": {
                        "schema": closed({"archive": STR, "replace": REPLACE}, ("archive",)),
                    },
                },
            },
            "responses": {
                "200": json_response(
                    "Pushed",
                    ok_with(
                        {
                            "name": STR,
                            "spiders": {"type": "array", "items": STR},
                            "name_from": {
                                "enum": ["deploy", "settings"],
                                "description": "deploy: scrapy.cfg's [deploy] project; "
                                "settings: guessed from its settings module",
                            },
                            "replaced": {
                                "type": "boolean",
                                "description": "a pushed project of that name was replaced",
                            },
                        },
                        ("name", "spiders"),
                    ),
                ),
                **scrapydo_errors(400, 409, 500, 507, post=True),
            },
        }
    },
    "/list-projects.json": {
        "get": {
            "summary": "Names of the local and pushed projects",
            "operationId": "list_projects",
            "responses": {
                "200": json_response(
                    "Projects",
                    ok_with({"projects": {"type": "array", "items": STR}}, ("projects",)),
                ),
                **scrapydo_errors(400),
            },
        }
    },
    "/list-spiders.json": {
        "get": {
            "summary": "The spiders of a project",
            "operationId": "list_spiders",
            "parameters": [
                {**query("project", STR, "project name", example="coinspiders"), "required": True}
            ],
            "responses": {
                "200": json_response(
                    "Spiders",
                    ok_with(
                        {"project": STR, "spiders": {"type": "array", "items": STR}},
                        ("project", "spiders"),
                    ),
                ),
                **scrapydo_errors(400, 404, 500),
            },
        }
    },
    "/schedule-job.json": {
        "post": {
            "summary": "Schedule a job: `now`, `every ...`, cron, or ISO timestamps",
            "operationId": "schedule_job",
            "requestBody": form_body(
                {
                    "project": STR,
                    "spider": STR,
                    "when": {**STR, "description": "now | every 10 minutes | cron ... | at ..."},
                    "description": {**STR, "maxLength": 2000},
                    "payload": {**STR, "description": "a JSON object (at most 64 KiB)"},
                    "setting": {
                        "type": "array",
                        "items": STR,
                        "maxItems": 100,
                        "description": "KEY=VALUE Scrapy settings for this job",
                    },
                    "max_runtime": {**STR, "description": "seconds; the crawl is stopped after"},
                    "retries": {
                        **STR,
                        "description": "0-10 more attempts after a failure (default: the "
                        "project's retries in config.yaml, else 0)",
                    },
                    "retry_delay": {
                        **STR,
                        "description": "seconds before the first retry (0-3600), doubling "
                        "each attempt, at most one hour",
                    },
                    "after": {
                        **STR,
                        "description": "with when=now: wait until this job (or this "
                        "scheduled job's next run) ends",
                    },
                    "on": {
                        **STR,
                        "description": "success (default), failure or always: which end of "
                        "`after` lets this job run; otherwise it is CANCELED",
                    },
                },
                ("project", "spider", "when"),
                {
                    "project": "coinspiders",
                    "spider": "coin",
                    "when": "now",
                    "payload": '{"coins": ["BTC"]}',
                },
                {
                    "payload": {
                        "type": ["object", "string"],
                        "description": "a JSON object (or its text); for the coinspiders "
                        "project's coin spider it must name coins",
                    },
                    "setting": {
                        "anyOf": [
                            {"type": "array", "items": STR, "maxItems": 100},
                            {
                                "type": "object",
                                "additionalProperties": {"type": ["string", "number"]},
                            },
                        ],
                        "description": "KEY=VALUE strings, or an object of them",
                    },
                    "max_runtime": {"type": ["number", "string"]},
                    "retries": {"type": ["integer", "string"]},
                    "retry_delay": {"type": ["number", "string"]},
                },
            ),
            "responses": {
                "200": json_response(
                    "Scheduled",
                    ok_with(
                        {
                            "identifier": {"type": "string", "format": "uuid"},
                            "next_run": {**STR, "description": "first fire time (not for now)"},
                            "ignored": {
                                "type": "array",
                                "items": STR,
                                "description": "past timestamps left out",
                            },
                        },
                        ("identifier",),
                    ),
                ),
                **scrapydo_errors(400, 404, 500, 507, post=True),
            },
        }
    },
    "/list-jobs.json": {
        "get": {
            "summary": "Jobs by status (newest first, paged) or one job by id",
            "operationId": "list_jobs",
            "parameters": [
                query(
                    "status",
                    STR,
                    "a status, ACTIVE or COMPLETED (case-insensitive)",
                    example="ACTIVE",
                ),
                query("id", STR, "a job identifier (then status is not needed)"),
                query("project", STR, "only this project's jobs (unknown project: 404)"),
                query("spider", STR, "only this spider's jobs"),
                query(
                    "limit",
                    int_or_empty(0, 10000),
                    "page size (default 1000)",
                ),
                query("offset", int_or_empty(0, 10**9), "jobs skipped"),
            ],
            "responses": {
                "200": json_response(
                    "Jobs",
                    ok_with(
                        {
                            "jobs": {"type": "array", "items": ref("Job")},
                            "total": {
                                **INT,
                                "description": "jobs matching the filters, over all pages "
                                "(listing by status)",
                            },
                            "next_offset": {
                                **INTN,
                                "description": "offset of the next page; null on the last "
                                "(listing by status)",
                            },
                        },
                        ("jobs",),
                    ),
                ),
                **scrapydo_errors(400, 404),
            },
        }
    },
    "/cancel-job.json": {
        "post": {
            "summary": "Cancel a scheduled, pending or running job (SIGTERM, SIGKILL after grace)",
            "operationId": "cancel_job",
            "requestBody": form_body(
                {"id": STR}, ("id",), {"id": "00000000-0000-4000-8000-000000000000"}
            ),
            "responses": {
                "200": json_response("Cancelled", ref("Ok")),
                **scrapydo_errors(400, 404, post=True),
            },
        }
    },
    "/pause-schedule.json": {
        "post": {
            "summary": "Pause a scheduled job: it does not fire (even after a restart) until "
            "resumed; its running run goes on. Pausing a paused one changes nothing",
            "operationId": "pause_schedule",
            "requestBody": ID_BODY,
            "responses": {
                "200": json_response("Paused", SCHEDULE_REPLY),
                **scrapydo_errors(400, 404, 409, 507, post=True),
            },
        }
    },
    "/resume-schedule.json": {
        "post": {
            "summary": "Resume a paused scheduled job from its first fire time after now: fire "
            "times that fell in the pause are not run and not counted as misfires (a one-shot "
            "schedule whose times all passed is then complete, job_status SUCCESSFUL)",
            "operationId": "resume_schedule",
            "requestBody": ID_BODY,
            "responses": {
                "200": json_response("Resumed", SCHEDULE_REPLY),
                **scrapydo_errors(400, 404, 409, 507, post=True),
            },
        }
    },
    "/edit-schedule.json": {
        "post": {
            "summary": "Replace a scheduled job's `when` (schedule-job's grammar and 400 "
            "messages; not `now`); its fire times count from now, as preview-when shows them. "
            "A paused job stays paused",
            "operationId": "edit_schedule",
            "requestBody": form_body(
                {"id": STR, "when": {**STR, "description": "every ... | cron ... | at ..."}},
                ("id", "when"),
                {"id": "00000000-0000-4000-8000-000000000000", "when": "every day at 12:30"},
            ),
            "responses": {
                "200": json_response("Edited", SCHEDULE_REPLY),
                **scrapydo_errors(400, 404, 409, 507, post=True),
            },
        }
    },
    "/run-now.json": {
        "post": {
            "summary": "Start one run of a scheduled job now (actor USER, parent the schedule; "
            "its fire times do not move); 409 while its last run is pending or running",
            "operationId": "run_now",
            "requestBody": ID_BODY,
            "responses": {
                "200": json_response(
                    "The run, PENDING (started at once when a slot is free)",
                    ok_with(
                        {"identifier": {"type": "string", "format": "uuid"}, "parent": STR},
                        ("identifier", "parent"),
                    ),
                ),
                **scrapydo_errors(400, 404, 409, 507, post=True),
            },
        }
    },
    "/rerun-job.json": {
        "post": {
            "summary": "A new PENDING job with a finished run's project, spider, payload, "
            "settings, max_runtime, priority, description and version (pinned: the same; "
            "none: the latest); 409 for an active job, a schedule, or a project, version or "
            "spider that is gone",
            "operationId": "rerun_job",
            "requestBody": ID_BODY,
            "responses": {
                "200": json_response(
                    "Re-run",
                    ok_with(
                        {
                            "identifier": {"type": "string", "format": "uuid"},
                            "rerun_of": {"type": "string", "format": "uuid"},
                        },
                        ("identifier", "rerun_of"),
                    ),
                ),
                **scrapydo_errors(400, 404, 409, 500, 507, post=True),
            },
        }
    },
    "/cancel-jobs.json": {
        "post": {
            "summary": "Cancel many jobs at once (at most 1000 ids; repeated id, or a JSON "
            'body {"ids": [...]}); answers when all are settled, one result per id (an '
            "unknown or finished id does not stop the others; a malformed one refuses the "
            "request, nothing canceled)",
            "operationId": "cancel_jobs",
            "requestBody": form_body(
                {
                    "id": {"type": "array", "items": STR, "maxItems": 1000},
                    "ids": {"type": "array", "items": STR, "maxItems": 1000},
                },
                (),
                {"id": ["00000000-0000-4000-8000-000000000000"]},
                {
                    "id": ID_OR_IDS,
                    "ids": ID_OR_IDS,
                },
            ),
            "responses": {
                "200": json_response(
                    "One result per id given (a repeated id once)",
                    ok_with(
                        {
                            "results": {
                                "type": "array",
                                "items": obj(
                                    {
                                        "id": STR,
                                        "result": {
                                            "enum": [
                                                "canceled",
                                                "not active",
                                                "unknown",
                                                "error",
                                            ]
                                        },
                                        "status": {
                                            **STRN,
                                            "description": "the job's status after the call",
                                        },
                                        "msg": {**STR, "description": "for error"},
                                    },
                                    ("id", "result", "status"),
                                ),
                            },
                            "counts": {
                                "type": "object",
                                "additionalProperties": INT,
                            },
                        },
                        ("results", "counts"),
                    ),
                ),
                **scrapydo_errors(400, post=True),
            },
        }
    },
    "/preview-when.json": {
        "get": {
            "summary": "Validate a `when` spec as schedule-job would (same 400 messages) and "
            "show its next fire times and a plain reading; nothing is stored",
            "operationId": "preview_when",
            "parameters": [
                {
                    **query("when", STR, "the spec", example="every day at 12:30"),
                    "required": True,
                },
                query("count", int_or_empty(1, 20), "how many fire times (default 5)"),
                query(
                    "timezone",
                    STR,
                    "an IANA zone (e.g. the browser's) to show the times in as well, as "
                    "`local`; the spec is read in the daemon's zone, as schedule-job reads it",
                ),
            ],
            "responses": {
                "200": json_response(
                    "Preview",
                    ok_with(
                        {
                            "when": {**STR, "description": "the spec, normalised"},
                            "reading": {**STR, "description": 'e.g. "every day at 12:30"'},
                            "timezone": {**STR, "description": "the daemon's zone"},
                            "next_runs": {
                                "type": "array",
                                "items": obj(
                                    {
                                        "time": {**STR, "description": "in the daemon's zone"},
                                        "utc": STR,
                                        "local": {**STR, "description": "in `timezone`"},
                                    },
                                    ("time", "utc"),
                                ),
                            },
                            "ignored": {
                                "type": "array",
                                "items": STR,
                                "description": "past timestamps left out",
                            },
                        },
                        ("when", "reading", "timezone", "next_runs", "ignored"),
                    ),
                ),
                **scrapydo_errors(400),
            },
        }
    },
    "/remove-project.json": {
        "post": {
            "summary": "Remove a pushed project (refused while it has active jobs)",
            "operationId": "remove_project",
            "requestBody": form_body({"name": STR}, ("name",), {"name": "nosuchproject"}),
            "responses": {
                "200": json_response("Removed", ref("Ok")),
                **scrapydo_errors(400, 404, 409, 500, post=True),
            },
        }
    },
    "/get-log/data/{name}": {
        "get": {
            "summary": "A job's stdout (<id>.out) or stderr (<id>.err); Range and follow mode",
            "operationId": "get_log",
            "parameters": [
                path_param("name", STR, "<job id>.out or <job id>.err"),
                query("follow", STR, "1: stream until the job ends"),
                query("offset", int_or_empty(0, 2**62), "with follow: start at this byte"),
                query(
                    "attempt",
                    int_or_empty(1, 1000),
                    "a job that retried: this attempt's log (default: the current or last)",
                ),
            ],
            "responses": {
                "200": {"description": "Log text", "content": {"text/plain": {"schema": STR}}},
                "206": {
                    "description": "Part of the log (Range)",
                    "content": {"text/plain": {"schema": STR}},
                },
                "416": json_response(
                    "Range not satisfiable: no range starts within the log, or more than 8 "
                    "separate ranges remain once overlapping and adjacent ones are merged "
                    "(Content-Range: bytes */<size>)",
                    ref("Error"),
                ),
                **scrapydo_errors(400, 404),
            },
        }
    },
    "/api/crypto/start_scraping/": {
        "post": {
            "summary": "Start a coin crawl",
            "operationId": "start_scraping",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": obj({"coins": {"type": "array", "items": STR}}, ("coins",)),
                        "example": {"coins": ["BTC", "ethereum"]},
                    },
                    "application/x-www-form-urlencoded": {
                        "schema": obj(
                            {
                                "coins": {
                                    "type": ["array", "string"],
                                    "items": STR,
                                    "description": "repeated, or comma-separated names",
                                }
                            },
                            ("coins",),
                        ),
                    },
                },
            },
            "responses": {
                "200": json_response(
                    "Started",
                    obj(
                        {"job_id": STR, "task_ids": {**STR, "description": "JSON text"}},
                        ("job_id", "task_ids"),
                    ),
                ),
                **START_STATUS_ERRORS,
                "503": json_response(
                    "No coinspiders project in this daemon", ref("StartStatusError")
                ),
                **site_errors(post=True, api=True),
            },
        }
    },
    "/api/crypto/scraping_status/{job_id}/": {
        "get": {
            "summary": "Each asked coin's output so far",
            "operationId": "scraping_status",
            "parameters": [
                path_param("job_id", STR, "the job_id start_scraping answered"),
                query("task_ids", STR, "the task_ids start_scraping answered (JSON)"),
            ],
            "responses": {
                "200": json_response(
                    "Tasks",
                    obj(
                        {
                            "job_id": STR,
                            "tasks": {
                                "type": "array",
                                "items": obj(
                                    {"coin": STR, "output": {"type": ["object", "string"]}},
                                    ("coin", "output"),
                                ),
                            },
                        },
                        ("job_id", "tasks"),
                    ),
                ),
                **START_STATUS_ERRORS,
                **site_errors(post=False, api=True),
            },
        }
    },
    "/api/coins/": {
        "get": {
            "summary": "The latest record of every collected coin, by market-cap rank",
            "operationId": "coin_list",
            "parameters": [
                query("symbol", STR, "only this symbol"),
                query("slug", STR, "only this slug"),
                query("platform", STR, "only tokens on this platform"),
                query(
                    "source",
                    {"enum": ["page", "api", ""]},
                    "only records from this spider (empty: all)",
                ),
                query("job", STR, "only records of this job"),
                {
                    **CURRENCY,
                    "description": CURRENCY["description"]
                    + "; with job, the job's own currency unless given",
                },
                *LIMIT_OFFSET,
            ],
            "responses": {
                "200": json_response("Coins", {"type": "array", "items": COIN}),
                **COIN_ERRORS,
            },
        }
    },
    "/api/coins/{coin}/": {
        "get": {
            "summary": "The latest record of one coin in one currency",
            "operationId": "coin_detail",
            "parameters": [COIN_KEY, CURRENCY],
            "responses": {"200": json_response("Coin", COIN), **COIN_ERRORS},
        }
    },
    "/api/coins/{coin}/history/": {
        "get": {
            "summary": "Every record of one coin in one currency, oldest first",
            "operationId": "coin_history",
            "parameters": [
                COIN_KEY,
                CURRENCY,
                query("since", STR, "ISO 8601 date or time"),
                query("until", STR, "ISO 8601 date or time"),
                query(
                    "limit",
                    int_or_empty(1, 10000),
                    "page size (default 1000)",
                ),
                LIMIT_OFFSET[1],
            ],
            "responses": {
                "200": json_response("History", {"type": "array", "items": COIN}),
                **COIN_ERRORS,
            },
        }
    },
    "/api/coins/{coin}/logo.png": {
        "get": {
            "summary": "The newest stored logo of one coin",
            "operationId": "coin_logo",
            "parameters": [COIN_KEY],
            "responses": {
                "200": {
                    "description": "PNG",
                    "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                },
                **COIN_ERRORS,
            },
        }
    },
    "/api/jobs/{job_id}/data/": {
        "get": {
            "summary": "A job's data.json once written, else the records collected so far",
            "operationId": "job_data",
            "parameters": [JOB_ID_PARAM],
            "responses": {
                "200": {
                    "description": "The JSON document (header X-Job-Data: complete or partial)",
                    "content": {"application/json": {"schema": {}}},
                },
                **COIN_ERRORS,
            },
        }
    },
    "/api/jobs/{job_id}/stats": {
        "get": {
            "summary": "A job's crawl stats: live while it runs, its final ones after",
            "operationId": "job_stats",
            "parameters": [JOB_ID_PARAM],
            "responses": {
                "200": json_response(
                    "The job's status and stats",
                    obj(
                        {"job_id": STR, "status": {"enum": STATUSES}, "stats": STATS},
                        ("job_id", "status", "stats"),
                    ),
                ),
                **COIN_ERRORS,
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "The daemon's figures in Prometheus' text format (for a scraper)",
            "description": "Jobs by status, project and spider; running, pending, slots; "
            "dispatch latency and run duration histograms; items scraped; webhook delivery "
            "attempts; anomalies; the reactor's busy time. Same auth as the API, or "
            "`Authorization: Bearer <token>` with the token of `metrics.token_env` (that "
            "token opens /metrics only).",
            "operationId": "metrics",
            "responses": {
                "200": {
                    "description": "Prometheus text format 0.0.4",
                    "content": {"text/plain": {"schema": STR}},
                },
                **scrapydo_errors(400),
            },
        }
    },
    "/webhooks": {
        "get": {
            "summary": "The configured webhooks (config.yaml `webhooks:`), numbered from 0",
            "operationId": "list_webhooks",
            "responses": {
                "200": json_response(
                    "The webhooks (URL without credentials or query)",
                    ok_with({"webhooks": {"type": "array", "items": WEBHOOK}}, ("webhooks",)),
                ),
                **scrapydo_errors(400),
            },
        }
    },
    "/webhooks/{number}/deliveries": {
        "get": {
            "summary": "A webhook's delivery log: recent attempts, newest first, with the "
            "receiver's answers, and how many deliveries wait",
            "operationId": "webhook_deliveries",
            "parameters": [
                path_param("number", STR, "the webhook's number (its place in the config, from 0)"),
                query("limit", int_or_empty(1, 1000), "at most this many attempts (50)"),
            ],
            "responses": {
                "200": json_response(
                    "The log",
                    ok_with(
                        {
                            **WEBHOOK["properties"],
                            "pending": {**INT, "description": "deliveries not yet made"},
                            "attempts": {"type": "array", "items": ATTEMPT},
                        },
                        ("webhook", "url", "pending", "attempts"),
                    ),
                ),
                **scrapydo_errors(400, 404),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This description",
            "operationId": "openapi",
            "responses": {
                "200": json_response("OpenAPI 3.1 document", {"type": "object"}),
                **site_errors(post=False),
            },
        }
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "coinspiders crawl daemon",
        "version": "0.1.0",
        "description": (
            "scrapy-do 0.5 REST API (same paths, parameters and JSON keys) plus the coin "
            "API. Errors of the scrapy-do endpoints, 401 and 413 everywhere, and 404/405 "
            'outside /api/ are {"status": "error", "msg": ...}; the coin start/status '
            'endpoints answer {"error": "..."}, the coin data endpoints, and '
            'unknown paths and wrong methods under /api/, {"error": true, "message": "..."}. '
            "With auth on, every path "
            "(this document included) needs HTTP Basic or Digest credentials. "
            "Answered on any path before a request is routed, in the envelope of the path "
            "(scrapy-do's when the path is unknown), and the connection closed: 408 when "
            "the request line and headers take longer than header_timeout, 414 for a "
            "request line over 16 KiB, 431 for a header line or all headers over 16 KiB or "
            "more than 500 header fields."
        ),
    },
    "servers": [{"url": "http://127.0.0.1:7654"}],
    "components": {
        "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "digest": {"type": "http", "scheme": "digest"},
            "scrape_token": {"type": "http", "scheme": "bearer"},
        },
        "schemas": {
            "Error": obj({"status": {"const": "error"}, "msg": STR}, ("status", "msg")),
            "Ok": obj({"status": {"const": "ok"}}, ("status",)),
            "Job": JOB,
            "CoinError": obj({"error": {"const": True}, "message": STR}, ("error", "message")),
            "StartStatusError": obj({"error": STR}, ("error",)),
        },
    },
    "security": [{}, {"basic": []}, {"digest": []}],
    "paths": PATHS,
}


def render() -> str:
    return json.dumps(SPEC, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else OUT
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
