"""`scrapy crawl` with an exit status that tells whether the job did its work.

Scrapy's own command exits 0 whenever the crawl ran, even when every request was
blocked; the daemon and shell users need a non-zero status for a job that failed.
"""

from __future__ import annotations

import argparse

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError


class Command(ScrapyCrawlCommand):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one spider name")
        assert self.crawler_process
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed or getattr(crawler.spider, "job_failed", False):
            self.exitcode = 1
