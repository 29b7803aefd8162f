"""What every coinspiders spider shares: its job id, its arguments, and its verdict.

The pipelines write the job folder; the spider only says what the job was asked, what
went wrong, and how its records make up `data.json`.
"""

from __future__ import annotations

import json
from typing import Any, Self

import scrapy
from scrapy.crawler import Crawler

from coinspiders.jobfolder import resolve_job_id


class JobSpider(scrapy.Spider):
    """A spider whose output is one job folder `DATA_DIR/<job_id>/`."""

    # "page" or "api": the `source` field of every item this spider yields.
    source: str = ""

    def __init__(self, *args: Any, payload: str | dict | None = None, **kwargs: Any) -> None:
        # scrapy-do passes every argument as one JSON object in `payload`; plain `-a`
        # arguments win over the payload's keys when both are given.
        # A payload that cannot be read is the job's error, not the spider's: raising
        # here would leave no job folder and only an asyncio traceback on stderr, so the
        # spider starts, records `payload_error` in job.json and sends no request.
        self.payload_error: str | None = None
        try:
            merged = dict(_parse_payload(payload))
        except ValueError as exc:
            self.payload_error = str(exc)
            # The text may hold anything (a key pasted by mistake): its name only.
            merged = {"payload": "(not recorded: not a JSON object)"}
        merged.update({k: v for k, v in kwargs.items() if k not in ("name",)})
        # Scrapy copies `-a` arguments onto the spider; one named like a spider
        # attribute (`start`, `name`, `parse`) would replace it, so those stay in
        # `self.arguments` only.
        plain = {k: v for k, v in kwargs.items() if not hasattr(type(self), k)}
        super().__init__(*args, **plain)
        self.arguments: dict[str, Any] = merged
        self.job_id: str = ""
        # Job-level errors (a fatal API code, a blocked site): {"code", "message"}.
        self.job_errors: list[dict[str, Any]] = []
        # Extra keys for job.json (e.g. the API's credit_count total).
        self.manifest_extra: dict[str, Any] = {}
        # Set by JobFolderPipeline at close; read by the `crawl` command for the exit status.
        self.job_failed: bool = False

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.job_id = resolve_job_id(crawler.settings.get("JOB_ID"))
        return spider

    def record_job_error(self, message: str, code: int | str | None = None) -> None:
        """Remember an error of the whole job for job.json (never a secret in `message`)."""
        self.job_errors.append({"code": code, "message": message})
        self.logger.error("job error%s: %s", f" {code}" if code is not None else "", message)

    def result_document(self, records: list[dict[str, Any]]) -> Any:
        """What data.json holds; spiders override it to order and shape their records."""
        return records

    def job_succeeded(self, items_ok: int, item_errors: int) -> bool:
        """A job that collected nothing, or hit a fatal error, did not do its work."""
        return items_ok > 0 and not self.job_errors


def _parse_payload(payload: str | dict | None) -> dict[str, Any]:
    if payload is None or payload == "":
        return {}
    if isinstance(payload, dict):
        return payload
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise ValueError(f"payload is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(
            'payload must be a JSON object of arguments ({"name": value, ...}), '
            f"got a JSON {_json_kind(value)}"
        )
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
