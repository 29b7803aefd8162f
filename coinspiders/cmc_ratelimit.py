"""Scrapy's retry middleware, taught to wait out the Pro API's per-minute limit.

Scrapy's own RetryMiddleware would resend a 429 at once, spending the retries (and the
key's credits) inside the same minute. For requests marked `meta["cmc_api"]`, a 429 or an
`error_code` 1008 instead pauses every Pro API request for `CMC_RATE_LIMIT_DELAY` seconds
(or the response's Retry-After) and then resends, at most `CMC_RATE_LIMIT_RETRIES` times.
The pause is an awaited timer, so the reactor keeps serving logos and everything else.
A 429 with a fatal code (credits used up) is never resent. Server errors and connection
errors keep Scrapy's usual retry.
"""

from __future__ import annotations

import logging
import re
import time

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response
from scrapy.settings import BaseSettings
from scrapy.utils.asyncio import sleep

from coinspiders.parsing.api import RETRY, classify_response, load_payload

logger = logging.getLogger(__name__)

# Request meta keys shared with the spider.
API_META = "cmc_api"
RATE_LIMIT_RETRIES_META = "cmc_rate_limit_retries"
# Set on a response the middleware gave up on, so the spider can say why.
RATE_LIMIT_GAVE_UP_META = "cmc_rate_limit_gave_up"

_RATE_LIMIT_CODE_RE = re.compile(rb'"error_code"\s*:\s*"?1008\b')


class CmcApiRetryMiddleware(RetryMiddleware):
    """RetryMiddleware plus a shared, non-blocking pause after a rate-limit answer."""

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.rate_limit_delay = max(0.0, settings.getfloat("CMC_RATE_LIMIT_DELAY", 60.0))
        self.rate_limit_retries = max(0, settings.getint("CMC_RATE_LIMIT_RETRIES", 3))
        # time.monotonic() before which no Pro API request leaves.
        self._resume_at = 0.0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CmcApiRetryMiddleware:
        middleware = cls(crawler.settings)
        middleware.crawler = crawler
        return middleware

    async def process_request(self, request: Request) -> None:
        if request.meta.get(API_META):
            wait = self._resume_at - time.monotonic()
            if wait > 0:
                await sleep(wait)

    # Nothing is awaited here: the pause happens in process_request. RetryMiddleware still
    # declares the `spider` parameter Scrapy deprecated (declaring it draws a warning).
    def process_response(  # type: ignore[override]
        self, request: Request, response: Response
    ) -> Request | Response:
        if not request.meta.get(API_META) or not _may_be_rate_limited(response):
            return super().process_response(request, response)
        verdict = classify_response(
            response.status,
            load_payload(response.body),
            response.headers.get(b"Retry-After"),
            self.rate_limit_delay,
        )
        if verdict.kind != RETRY:
            # A 429 that is not the per-minute limit (1009/1010 credits used up, 1011 IP
            # limit) will not clear by asking again: hand it to the spider untouched.
            return response
        stats = self.crawler.stats
        assert stats is not None
        retries = int(request.meta.get(RATE_LIMIT_RETRIES_META, 0))
        if retries >= self.rate_limit_retries:
            stats.inc_value("cmc_api/rate_limit/max_reached")
            logger.error(
                "Pro API rate limit (%s) did not clear after %d retries: %s",
                verdict.code,
                retries,
                request.url,
            )
            request.meta[RATE_LIMIT_GAVE_UP_META] = retries
            return response
        delay = verdict.delay or 0.0
        self._resume_at = max(self._resume_at, time.monotonic() + delay)
        stats.inc_value("cmc_api/rate_limit/retry_count")
        logger.warning(
            "Pro API rate limit (%s); pausing API requests %.1f s, retry %d of %d: %s",
            verdict.code,
            delay,
            retries + 1,
            self.rate_limit_retries,
            request.url,
        )
        retry: Request = request.replace(dont_filter=True)
        retry.meta[RATE_LIMIT_RETRIES_META] = retries + 1
        return retry


def _may_be_rate_limited(response: Response) -> bool:
    """Cheap pre-check so a normal 200 body is not parsed twice."""
    return response.status == 429 or (
        response.status == 200 and _RATE_LIMIT_CODE_RE.search(response.body) is not None
    )
