"""Backoff for retried requests.

Scrapy's retry machinery (RetryMiddleware, `get_retry_request`) re-sends a request at
once; a site that just blocked us (Cloudflare 403, 429) only gets angrier. This waits
before a retry goes out: `RETRY_BACKOFF_BASE * 2**(n-1)` seconds for the n-th retry,
at most `RETRY_BACKOFF_MAX`. The Pro API's rate limit has its own wait, the one the API
asks for (coinspiders.cmc_ratelimit).
"""

from __future__ import annotations

from typing import Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.utils.asyncio import sleep


class RetryBackoffMiddleware:
    """Delay each retried request by an exponential backoff before it is downloaded."""

    def __init__(self, base: float, maximum: float) -> None:
        self.base = max(base, 0.0)
        self.maximum = max(maximum, 0.0)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        return cls(
            settings.getfloat("RETRY_BACKOFF_BASE", 2.0),
            settings.getfloat("RETRY_BACKOFF_MAX", 60.0),
        )

    def delay_for(self, request: Request) -> float:
        """Seconds to wait before sending `request` (0 for a first attempt)."""
        tries = int(request.meta.get("retry_times", 0) or 0)
        if tries <= 0:
            return 0.0
        return min(self.base * 2 ** (tries - 1), self.maximum)

    async def process_request(self, request: Request) -> None:
        delay = self.delay_for(request)
        if delay > 0:
            await sleep(delay)
