"""`scrapy crawl coin -a coins=DUKO,bitcoin,1027`: CoinMarketCap coin pages into a job folder.

The spider only decides what to ask for; `coinspiders.parsing` reads the answers.
Symbols collide, so with a Pro API key every symbol is resolved in one map call and
numeric ids in one info call per 100; without a key a name is tried as a slug. Every
coin asked for ends as one item — its figures or the error that stopped it — so none
disappears silently and one bad coin never fails the others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

from scrapy import Request
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.http import Response, TextResponse
from twisted.python.failure import Failure

from coinspiders.cmc_ratelimit import API_META
from coinspiders.items import COIN_FIELDS, CoinItem
from coinspiders.jobfolder import coin_output, coin_task, utc_now
from coinspiders.parsing import api, identity, page
from coinspiders.spiders.base import JobSpider

# Statuses a coin page answers a bot with when it is blocked, not missing.
BLOCK_STATUSES = frozenset({403, 429, 503})
NOT_COLLECTED = "not collected: the crawl ended before this coin was done"
# A coin page shows its figures in US dollars (the site's default, no cookie sent).
PAGE_CURRENCY = "USD"


class CoinSpider(JobSpider):
    """One CMC coin detail page per coin asked for."""

    name = "coin"
    source = "page"
    custom_settings = {
        "DOWNLOADER_MIDDLEWARES": {
            # Scrapy's retry, plus the Pro API's rate-limit pause for `cmc_api` requests
            # (the same middleware as the cmc_api spider's); pages retry as before.
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            "coinspiders.cmc_ratelimit.CmcApiRetryMiddleware": 550,
            "coinspiders.middlewares.RetryBackoffMiddleware": 560,
        },
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[str] = []
        self.input_error: str | None = None
        if self.payload_error:
            self.input_error = f"bad arguments: {self.payload_error}"
        else:
            try:
                self.asked = identity.split_coins(self.arguments.get("coins"))
            except ValueError as exc:
                self.input_error = str(exc)
        # Problems of the symbol/id lookup that did not stop the crawl (job.json).
        self.lookup_warnings: list[str] = []

    # --- settings -------------------------------------------------------------------

    @property
    def site_url(self) -> str:
        return self.settings.get("CMC_SITE_URL").rstrip("/")

    @property
    def api_url(self) -> str:
        return self.settings.get("CMC_API_URL").rstrip("/")

    @property
    def api_key(self) -> str:
        return (self.settings.get("CMC_API_KEY") or "").strip()

    # --- start ----------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        if self.input_error:
            self.record_job_error(self.input_error, "bad_arguments")
            return
        self.logger.info("job %s: %d coins: %s", self.job_id, len(self.asked), self.asked)
        names: list[identity.CoinQuery] = []
        ids: list[identity.CoinQuery] = []
        for asked in self.asked:
            query = identity.classify(asked)
            if query is None:
                yield self.error_item(asked, "not a symbol, slug or CMC id")
            elif query.kind == identity.SLUG:
                yield self.page_request(query, query.slug)
            elif query.kind == identity.ID:
                ids.append(query)
            else:
                names.append(query)
        if self.api_key:
            if names:
                yield self.api_request(
                    "/v1/cryptocurrency/map",
                    {"symbol": ",".join(dict.fromkeys(q.symbol for q in names))},
                    self.parse_map,
                    names,
                )
            for chunk in _chunks(ids, api.INFO_MAX_IDS):
                yield self.api_request(
                    "/v2/cryptocurrency/info",
                    {
                        "id": ",".join(dict.fromkeys(str(int(q.value)) for q in chunk)),
                        "skip_invalid": "true",
                    },
                    self.parse_info,
                    chunk,
                )
            return
        for query in names:
            yield self.page_request(query, query.slug, note=_slug_only_note(query, None))
        for query in ids:
            yield self.error_item(
                query.asked,
                "a numeric CMC id needs CMC_API_KEY to be resolved "
                "(the site has no page by id); give its slug or symbol instead",
            )

    # --- requests -------------------------------------------------------------------

    def page_request(
        self,
        query: identity.CoinQuery,
        slug: str,
        *,
        fallback: str | None = None,
        candidates: list[dict[str, Any]] | None = None,
        note: str | None = None,
    ) -> Request:
        """The coin page of `slug`; `fallback` is the slug to try if it does not exist.

        `note` is added to a "not found": why a name that may be a symbol was only tried
        as a page name, so the user knows what to change.
        """
        return Request(
            f"{self.site_url}/currencies/{quote(slug, safe='')}/",
            callback=self.parse_page,
            errback=self.page_failed,
            # Two names for one coin (BTC, bitcoin) are two answers: never deduplicate.
            dont_filter=True,
            meta={
                "query": query,
                "fallback": fallback,
                "candidates": candidates or [],
                "note": note,
                "handle_httpstatus_all": True,
            },
        )

    def api_request(
        self,
        path: str,
        params: dict[str, str],
        callback: Any,
        queries: list[identity.CoinQuery],
    ) -> Request:
        # The key goes only in the header, so it never shows up in a logged URL.
        return Request(
            f"{self.api_url}{path}?{urlencode(params)}",
            headers={"X-CMC_PRO_API_KEY": self.api_key, "Accept": "application/json"},
            callback=callback,
            errback=self.api_failed,
            dont_filter=True,
            meta={
                "queries": queries,
                "handle_httpstatus_all": True,
                # CmcApiRetryMiddleware waits out rate limits; 5xx and connection errors
                # get Scrapy's retry (with backoff) before the spider sees the answer.
                API_META: True,
            },
        )

    # --- identity -------------------------------------------------------------------

    def _api_verdict(self, response: Response) -> tuple[api.ApiVerdict, dict | None]:
        """The answer's verdict once the middleware retried what it could.

        A rate limit still here is one the middleware gave up on: it counts as failed.
        """
        payload = api.load_payload(response.body)
        verdict = api.classify_response(response.status, payload)
        return verdict, payload

    def _lookup_failed(self, what: str, verdict: api.ApiVerdict) -> str:
        message = api.redact(
            f"{what} failed: {verdict.message} (code {verdict.code})", self.api_key
        )
        self.lookup_warnings.append(message)
        self.manifest_extra["lookup_warnings"] = self.lookup_warnings
        self.logger.warning(message)
        return message

    def parse_map(self, response: Response) -> Iterator[Any]:
        verdict, payload = self._api_verdict(response)
        groups: dict[str, list] | None = None
        if verdict.kind == api.OK and payload is not None:
            groups = identity.group_by_symbol(payload.get("data"))
        else:
            self._lookup_failed("symbol lookup", verdict)
        yield from self._pages_for_names(response.meta["queries"], groups)

    def _pages_for_names(
        self, queries: Iterable[identity.CoinQuery], groups: dict[str, list] | None
    ) -> Iterator[Request]:
        """Each name's page; `groups` None means the symbol lookup failed."""
        for query in queries:
            chosen, others = identity.choose((groups or {}).get(query.symbol, []))
            if chosen is None:
                # Map answered without this symbol: the plain "not found" says it all.
                note = None
                if groups is None:
                    note = _slug_only_note(query, "the symbol lookup failed (see job.json)")
                yield self.page_request(query, query.slug, note=note)
            elif query.slug_first and chosen["slug"] != query.slug:
                # `bitcoin` is a page name before it is a symbol; the symbol is the fallback.
                yield self.page_request(
                    query, query.slug, fallback=chosen["slug"], candidates=[chosen, *others]
                )
            else:
                yield self.page_request(query, chosen["slug"], candidates=others)

    def parse_info(self, response: Response) -> Iterator[Any]:
        verdict, payload = self._api_verdict(response)
        queries: list[identity.CoinQuery] = response.meta["queries"]
        if verdict.kind != api.OK or payload is None:
            message = self._lookup_failed("id lookup", verdict)
            for query in queries:
                yield self.error_item(query.asked, f"could not resolve the id: {message}")
            return
        slugs = identity.slugs_by_id(payload.get("data"))
        for query in queries:
            slug = slugs.get(int(query.value))
            if slug is None:
                yield self.error_item(
                    query.asked, f"not found: CMC has no coin with id {query.value}"
                )
            else:
                yield self.page_request(query, slug)

    def api_failed(self, failure: Failure) -> Iterator[Any]:
        # The retry middleware has already re-sent it as often as RETRY_TIMES allows.
        request = failure.request  # type: ignore[attr-defined]
        verdict = api.ApiVerdict(api.FAILED, None, str(failure.value), 0)
        queries: list[identity.CoinQuery] = request.meta["queries"]
        if request.callback == self.parse_map:
            self._lookup_failed("symbol lookup", verdict)
            yield from self._pages_for_names(queries, None)
            return
        message = self._lookup_failed("id lookup", verdict)
        for query in queries:
            yield self.error_item(query.asked, f"could not resolve the id: {message}")

    # --- pages ----------------------------------------------------------------------

    def parse_page(self, response: Response) -> Iterator[Any]:
        query: identity.CoinQuery = response.meta["query"]
        status = response.status
        result = page.parse_coin_page(_text(response)) if status == 200 else None
        if status == 404 or (result is not None and result.status == page.NOT_FOUND):
            fallback = response.meta.get("fallback")
            if fallback:
                yield self.page_request(query, fallback, candidates=_others(response, fallback))
            else:
                note = response.meta.get("note")
                yield self.error_item(
                    query.asked,
                    f"not found: the site has no coin page {_path(response.url)}"
                    + (f"; {note}" if note else ""),
                    candidates=response.meta.get("candidates"),
                )
            return
        if status in BLOCK_STATUSES or (result is not None and result.status == page.BLOCKED):
            reason = _block_reason(response, result)
            assert response.request is not None  # a callback's response has its request
            retry = get_retry_request(response.request, spider=self, reason="blocked page")
            if retry is not None:
                yield retry
            else:
                tries = response.meta.get("retry_times", 0) + 1
                yield self.error_item(
                    query.asked, f"blocked: {reason}, {tries} attempts at {_path(response.url)}"
                )
            return
        if result is None:
            yield self.error_item(query.asked, f"HTTP {status} for {_path(response.url)}")
            return
        if result.status != page.COIN or result.coin is None:
            yield self.error_item(query.asked, f"{result.reason} at {_path(response.url)}")
            return
        if result.method != page.VIA_NEXT_DATA:
            self.logger.warning(
                "%s: page data missing or changed, read the %s layout", response.url, result.method
            )
        yield self.coin_item(query, result.coin, response.meta.get("candidates") or [])

    def page_failed(self, failure: Failure) -> Iterator[Any]:
        request = failure.request  # type: ignore[attr-defined]
        query: identity.CoinQuery = request.meta["query"]
        yield self.error_item(
            query.asked, f"download failed: {failure.getErrorMessage()} ({_path(request.url)})"
        )

    # --- items and data.json ------------------------------------------------------------

    def coin_item(
        self, query: identity.CoinQuery, coin: dict[str, Any], candidates: list[dict[str, Any]]
    ) -> CoinItem:
        item = CoinItem(**{k: v for k, v in coin.items() if k in CoinItem.fields})
        item["query"] = query.asked
        item["currency"] = PAGE_CURRENCY
        item["logo"] = self.settings.get("CMC_LOGO_URL").format(id=coin["id"])
        item["logo_path"] = None
        item["scraped_at"] = utc_now()
        item["source"] = self.source
        others = [c for c in candidates if c.get("id") != coin["id"]]
        if others:
            item["candidates"] = others
        return item

    def error_item(
        self, asked: str, message: str, candidates: list[dict[str, Any]] | None = None
    ) -> CoinItem:
        self.logger.warning("coin %r: %s", asked, message)
        item = CoinItem(query=asked, error=message)
        if candidates:
            item["candidates"] = candidates
        return item

    def result_document(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """data.json: one entry per coin in the order asked, each `{coin, output}`."""
        by_query: dict[Any, dict[str, Any]] = {}
        for row in records:
            by_query.setdefault(row.get("query"), row)
        document = []
        for asked in self.asked:
            record = by_query.get(asked)
            if record is None:
                output: dict[str, Any] = {"error": NOT_COLLECTED}
            else:
                output = coin_output(record, COIN_FIELDS)
            document.append(coin_task(asked, output))
        return document


def _slug_only_note(query: identity.CoinQuery, lookup_failed: str | None) -> str | None:
    """Why a name that may be a symbol was only tried as a slug; None for a slug asked as such.

    `lookup_failed` is the reason the Pro API could not be asked (None: there is no key).
    """
    if query.kind != identity.AUTO:
        return None
    if lookup_failed is None:
        return (
            f"{query.asked!r} was tried as a slug only: finding a coin by its symbol needs "
            "CMC_API_KEY (the Pro API's map); without a key give the coin's slug "
            "(the name in its CMC page address, e.g. bitcoin)"
        )
    return f"{query.asked!r} was tried as a slug only: {lookup_failed}"


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _path(url: str) -> str:
    """The path of a site URL, for messages (the host is the same for every coin)."""
    after_scheme = url.split("://", 1)[-1]
    slash = after_scheme.find("/")
    return after_scheme[slash:] if slash != -1 else "/"


def _text(response: Response) -> str:
    """The body as text; a non-text answer (an image, a blob) is read leniently."""
    if isinstance(response, TextResponse):
        return response.text
    return response.body.decode("utf-8", "replace")


def _block_reason(response: Response, result: page.PageResult | None) -> str:
    """What the block looked like: the page's own words when they are known."""
    if result is not None:
        return f"{result.reason} (HTTP {response.status})"
    reason = page.block_reason(_text(response))
    if reason == page.NO_COIN_DATA:
        return f"HTTP {response.status}"
    return f"{reason} (HTTP {response.status})"


def _others(response: Response, chosen_slug: str) -> list[dict[str, Any]]:
    return [c for c in response.meta.get("candidates") or [] if c.get("slug") != chosen_slug]
