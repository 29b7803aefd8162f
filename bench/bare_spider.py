"""The baseline of the crawl benchmark: download the same coin pages as the `coin` spider,
with the same project settings, and do nothing with them (no parse, no items, no logos)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import scrapy


class BareSpider(scrapy.Spider):
    name = "bare"

    def __init__(self, slugs_file: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.slugs = Path(slugs_file).read_text().split()

    async def start(self) -> AsyncIterator[scrapy.Request]:
        site = self.settings.get("CMC_SITE_URL").rstrip("/")
        for slug in self.slugs:
            yield scrapy.Request(f"{site}/currencies/{slug}/", callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> None:
        self.crawler.stats.inc_value("bare/bytes", len(response.body))
