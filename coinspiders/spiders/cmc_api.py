"""The `cmc_api` spider: Pro API listings, then info for links/contracts/logos.

`scrapy crawl cmc_api -a limit=500 [-a start=1] [-a convert=USD]` (or `-a payload=`
with the same keys). Listings are fetched one page after the other (a short page means
the list has ended, so no credit is spent on empty pages); each page's ids go to
`/v2/cryptocurrency/info` in batches of at most 100 with `skip_invalid=true` while the
next page loads. Logos go through LogoPipeline.

The key travels only in the `X-CMC_PRO_API_KEY` header of requests to `CMC_API_URL`;
redirects are not followed, so it cannot be carried to another host, and every API
message put in job.json or the log is scrubbed of it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from scrapy import Request
from scrapy.exceptions import CloseSpider
from scrapy.http import Response
from twisted.python.failure import Failure

from coinspiders.cmc_ratelimit import API_META, RATE_LIMIT_GAVE_UP_META
from coinspiders.items import CoinItem
from coinspiders.jobfolder import utc_now
from coinspiders.parsing.api import (
    FAILED,
    FATAL,
    INFO_MAX_IDS,
    LISTINGS_MAX_LIMIT,
    OK,
    RETRY,
    ApiVerdict,
    chunked,
    classify_response,
    coin_from_api,
    info_entries,
    listing_entries,
    load_payload,
    rank_key,
    redact,
)
from coinspiders.spiders.base import JobSpider

LISTINGS_PATH = "/v1/cryptocurrency/listings/latest"
INFO_PATH = "/v2/cryptocurrency/info"
KEY_HEADER = "X-CMC_PRO_API_KEY"
# Coins per listings call: the API bills one credit per 200 coins returned, so pages of
# 200 cost no more than one big call while keeping each body small.
DEFAULT_PAGE_SIZE = 200
ARGUMENTS = ("limit", "start", "convert")
_CONVERT_RE = re.compile(r"^[A-Za-z0-9]{1,10}$")


@dataclass(frozen=True)
class ListingPlan:
    """Which slice of the ranking to crawl, and in which currency."""

    start: int = 1
    limit: int = 100
    convert: str = "USD"

    @property
    def end(self) -> int:
        """The last position (1-based, inclusive) to crawl."""
        return self.start + self.limit - 1


def _whole_number(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        number = None
    if number is None or not low <= number <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return number


def listing_plan(arguments: Mapping[str, Any]) -> ListingPlan:
    """The spider's arguments as a plan, or a ValueError that names the bad one."""
    unknown = sorted(set(arguments) - set(ARGUMENTS))
    if unknown:
        raise ValueError(
            f"unknown argument(s) {', '.join(unknown)}; cmc_api takes {', '.join(ARGUMENTS)}"
        )
    plan = ListingPlan()
    start = _whole_number("start", arguments.get("start", plan.start), 1, 10**7)
    limit = _whole_number("limit", arguments.get("limit", plan.limit), 1, LISTINGS_MAX_LIMIT)
    convert = arguments.get("convert", plan.convert)
    if not isinstance(convert, str) or not _CONVERT_RE.match(convert.strip()):
        raise ValueError(
            f"convert must be one currency symbol such as USD, EUR or BTC, got {convert!r}"
        )
    return ListingPlan(start=start, limit=limit, convert=convert.strip().upper())


class CmcApiSpider(JobSpider):
    """Top coins by market cap from the Pro API, with info and logos, into one job folder."""

    name = "cmc_api"
    source = "api"
    custom_settings = {
        "DOWNLOADER_MIDDLEWARES": {
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            "coinspiders.cmc_ratelimit.CmcApiRetryMiddleware": 550,
        },
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # JobSpider keeps `-a start=11` in self.arguments without shadowing start().
        super().__init__(*args, **kwargs)
        self.plan: ListingPlan | None = None
        self.argument_error = ""
        try:
            if self.payload_error:
                raise ValueError(self.payload_error)
            self.plan = listing_plan(self.arguments)
        except ValueError as exc:
            self.argument_error = str(exc)
            # An unknown argument might be a secret passed by mistake: keep only names.
            self.arguments = {
                k: (v if k in ARGUMENTS else "(not recorded)") for k, v in self.arguments.items()
            }
        self._api_key = ""
        self._seen_ids: set[int] = set()
        # Listed coins not yet yielded as items, by id: what a stop must not lose.
        self._pending: dict[int, dict[str, Any]] = {}
        self._stopped = False
        self.credit_count = 0
        self.info_missing: list[int] = []
        self.manifest_extra.update(credit_count=0, coins_listed=0, info_missing=[])

    # --- requests ---------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Request]:
        self._api_key = str(self.settings.get("CMC_API_KEY") or "").strip()
        if self.plan is None:
            # The key pasted into an argument by mistake must not reach job.json either.
            self.arguments = {
                k: "***" if self._api_key and v == self._api_key else v
                for k, v in self.arguments.items()
            }
            message = redact(self.argument_error, self._api_key)
            self.record_job_error(f"bad arguments: {message}", "bad_arguments")
            return
        if not self._api_key:
            self.record_job_error(
                "no Pro API key: set CMC_API_KEY in the environment or with -s CMC_API_KEY=...;"
                " no request was sent",
                "no_api_key",
            )
            return
        self.logger.info(
            "listing coins %d..%d in %s, %d a page",
            self.plan.start,
            self.plan.end,
            self.plan.convert,
            self.page_size,
        )
        yield self._listing_request(self.plan.start)

    @property
    def page_size(self) -> int:
        size = self.settings.getint("CMC_API_PAGE_SIZE", DEFAULT_PAGE_SIZE)
        return min(max(size, 1), LISTINGS_MAX_LIMIT)

    @property
    def info_batch_size(self) -> int:
        size = self.settings.getint("CMC_API_INFO_BATCH", INFO_MAX_IDS)
        return min(max(size, 1), INFO_MAX_IDS)

    def _api_request(self, path: str, params: dict[str, Any], **kwargs: Any) -> Request:
        meta = kwargs.pop("meta", {})
        meta.update({API_META: True, "handle_httpstatus_all": True, "dont_redirect": True})
        base = str(self.settings.get("CMC_API_URL")).rstrip("/")
        return Request(
            f"{base}{path}?{urlencode(params, safe=',')}",
            headers={KEY_HEADER: self._api_key, "Accept": "application/json"},
            meta=meta,
            dont_filter=True,
            **kwargs,
        )

    def _listing_request(self, offset: int) -> Request:
        assert self.plan is not None
        count = min(self.page_size, self.plan.end - offset + 1)
        return self._api_request(
            LISTINGS_PATH,
            {"start": offset, "limit": count, "convert": self.plan.convert},
            callback=self.parse_listing,
            errback=self.listing_failed,
            meta={"page_start": offset, "page_limit": count},
            # Pages first: info batches queue behind the next page, never starve it.
            priority=10,
        )

    def _info_request(self, entries: list[dict[str, Any]]) -> Request:
        ids = [int(e["id"]) for e in entries]
        return self._api_request(
            INFO_PATH,
            {"id": ",".join(map(str, ids)), "skip_invalid": "true"},
            callback=self.parse_info,
            errback=self.info_failed,
            meta={"entries": entries},
        )

    # --- responses --------------------------------------------------------------------

    def _verdict(self, response: Response) -> tuple[ApiVerdict, dict[str, Any] | None]:
        payload = load_payload(response.body)
        verdict = classify_response(
            response.status,
            payload,
            response.headers.get(b"Retry-After"),
            self.settings.getfloat("CMC_RATE_LIMIT_DELAY", 60.0),
        )
        self.credit_count += verdict.credit_count
        self.manifest_extra["credit_count"] = self.credit_count
        return verdict, payload

    def _describe(self, verdict: ApiVerdict, response: Response) -> str:
        message = redact(verdict.message, self._api_key)
        if verdict.kind == RETRY:
            tries = response.meta.get(RATE_LIMIT_GAVE_UP_META, 0)
            return f"{message} (still limited after {tries} retries)"
        return message

    def _stop(self, verdict: ApiVerdict, response: Response, what: str) -> Iterable[CoinItem]:
        """Record a fatal answer, keep every coin listed so far, and close the spider."""
        self._stopped = True
        # The listing figures are paid for: coins still waiting for info keep them.
        yield from self._items(list(self._pending.values()), None)
        self.record_job_error(
            f"Pro API error {verdict.code} on {what}: {self._describe(verdict, response)};"
            " crawl stopped",
            verdict.code,
        )
        raise CloseSpider(f"cmc_api_error_{verdict.code}")

    async def parse_listing(self, response: Response) -> AsyncIterator[Any]:
        assert self.plan is not None
        offset = int(response.meta["page_start"])
        count = int(response.meta["page_limit"])
        what = f"listings start={offset} limit={count}"
        if self._stopped:
            return
        verdict, payload = self._verdict(response)
        if verdict.kind == FATAL:
            for item in self._stop(verdict, response, what):
                yield item
        if verdict.kind != OK or payload is None:
            self.record_job_error(
                f"{what} failed: {self._describe(verdict, response)}", verdict.code
            )
            # A server error may be this page alone; anything else (bad parameter, a limit
            # that will not clear) would fail every later page the same way.
            if verdict.kind == FAILED and isinstance(verdict.code, int) and verdict.code >= 500:
                next_offset = offset + count
                if next_offset <= self.plan.end:
                    yield self._listing_request(next_offset)
            return
        status = payload.get("status")
        if isinstance(status, Mapping) and isinstance(status.get("total_count"), int):
            self.manifest_extra["total_count"] = status["total_count"]
        entries = listing_entries(payload)
        raw = payload.get("data")
        received = len(raw) if isinstance(raw, list) else 0
        if not received and offset == self.plan.start:
            total = self.manifest_extra.get("total_count", "?")
            self.record_job_error(
                f"the API lists no coins from rank {offset} on (it lists {total})", "no_coins"
            )
            return
        next_offset = offset + count
        if received >= count and next_offset <= self.plan.end:
            yield self._listing_request(next_offset)
        fresh = []
        for entry in entries:
            coin_id = int(entry["id"])
            # Ranks move while we page: a coin can show up on two pages. Keep the first.
            if coin_id not in self._seen_ids:
                self._seen_ids.add(coin_id)
                self._pending[coin_id] = entry
                fresh.append(entry)
        self.manifest_extra["coins_listed"] = len(self._seen_ids)
        for batch in chunked(fresh, self.info_batch_size):
            yield self._info_request(batch)

    async def parse_info(self, response: Response) -> AsyncIterator[Any]:
        entries: list[dict[str, Any]] = response.meta["entries"]
        what = f"info for {len(entries)} coins (ids {_id_span(entries)})"
        if self._stopped:
            return
        verdict, payload = self._verdict(response)
        if verdict.kind == OK and payload is not None:
            infos = info_entries(payload)
            for item in self._items(entries, infos):
                yield item
            return
        if verdict.kind == FATAL:
            for item in self._stop(verdict, response, what):
                yield item
        self.record_job_error(
            f"{what} failed: {self._describe(verdict, response)}; kept their listing figures",
            verdict.code,
        )
        for item in self._items(entries, None):
            yield item

    def listing_failed(self, failure: Failure) -> Iterable[Request]:
        assert self.plan is not None
        if self._stopped:
            return
        request = failure.request  # type: ignore[attr-defined]
        offset = int(request.meta["page_start"])
        count = int(request.meta["page_limit"])
        self.record_job_error(
            f"listings start={offset} limit={count} failed: "
            + redact(_failure_text(failure), self._api_key),
            "connection",
        )
        if offset + count <= self.plan.end:
            yield self._listing_request(offset + count)

    def info_failed(self, failure: Failure) -> Iterable[CoinItem]:
        if self._stopped:
            return
        entries: list[dict[str, Any]] = failure.request.meta["entries"]  # type: ignore[attr-defined]
        self.record_job_error(
            f"info for {len(entries)} coins (ids {_id_span(entries)}) failed: "
            f"{redact(_failure_text(failure), self._api_key)}; kept their listing figures",
            "connection",
        )
        yield from self._items(entries, None)

    def _items(
        self, entries: list[dict[str, Any]], infos: Mapping[int, dict[str, Any]] | None
    ) -> Iterable[CoinItem]:
        assert self.plan is not None
        scraped_at = utc_now()
        template = str(self.settings.get("CMC_LOGO_URL"))
        for entry in entries:
            coin_id = int(entry["id"])
            if self._pending.pop(coin_id, None) is None:
                continue  # already yielded (a stop kept it before this answer came)
            info = infos.get(coin_id) if infos is not None else None
            if infos is not None and info is None:
                # skip_invalid dropped it (or the API does not know it): figures, no info.
                self.info_missing.append(coin_id)
                self.manifest_extra["info_missing"] = sorted(self.info_missing)
                self.logger.warning("info has no entry for coin %d", coin_id)
            yield CoinItem(**coin_from_api(entry, info, self.plan.convert, template, scraped_at))

    # --- the job folder ---------------------------------------------------------------

    def result_document(self, records: list[dict[str, Any]]) -> Any:
        return sorted(records, key=rank_key)


def _id_span(entries: list[dict[str, Any]]) -> str:
    ids = [int(e["id"]) for e in entries]
    return f"{ids[0]}..{ids[-1]}" if len(ids) > 1 else str(ids[0]) if ids else "-"


def _failure_text(failure: Failure) -> str:
    return f"{failure.type.__name__}: {failure.getErrorMessage()}" if failure.type else "error"
