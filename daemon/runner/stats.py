"""Live stats of a crawl, written where the daemon can read them while it runs.

Every crawl the daemon starts gets the LiveStats extension (see daemon.children, which
adds it to Scrapy's EXTENSIONS_BASE so a project's own EXTENSIONS stay as they are). It
writes the crawl's stats under Scrapy's own names, plus `field_coverage`, to the file
named by the LIVE_STATS_PATH setting: at most once a second and at the crawl's close.
The file is replaced atomically (temp file + rename), so a reader never sees half of it.
Nothing here may break a crawl: every failure is logged and the crawl goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

logger = logging.getLogger(__name__)

#: The setting naming the file; without it the extension stays off (e.g. `scrapy list`).
PATH_SETTING = "LIVE_STATS_PATH"
INTERVAL = 1.0


def _empty(value: Any) -> bool:
    """None, blank text and empty containers count as no value; 0 and False do not."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (bytes, list, tuple, dict, set, frozenset)):
        return len(value) == 0
    return False


class FieldCoverage:
    """For each item field seen, how many items had a non-empty value in it."""

    def __init__(self) -> None:
        self.items = 0
        self.filled: dict[str, int] = {}

    def add(self, item: Any) -> None:
        try:
            fields = dict(item)  # dicts, scrapy Items, dataclass-like mappings
        except (TypeError, ValueError):
            return
        self.items += 1
        for name, value in fields.items():
            key = str(name)
            self.filled[key] = self.filled.get(key, 0) + (0 if _empty(value) else 1)

    def shares(self) -> dict[str, float]:
        """Field -> share of items with a value in it (0..1). A field absent from some
        items counts those items as empty."""
        if not self.items:
            return {}
        return {name: round(n / self.items, 4) for name, n in sorted(self.filled.items())}


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def stats_text(stats: Mapping[str, Any], coverage: FieldCoverage) -> str:
    """The file's JSON: Scrapy's stats (datetimes as ISO text) and `field_coverage`."""
    data = {str(k): v for k, v in stats.items()}
    data["field_coverage"] = coverage.shares()
    return json.dumps(data, default=_plain, sort_keys=True)


def write_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".stats-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class LiveStats:
    """The Scrapy extension."""

    def __init__(self, crawler: Any, path: str) -> None:
        self.crawler = crawler
        self.path = path
        self.coverage = FieldCoverage()
        self.loop: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> LiveStats:
        from scrapy import signals
        from scrapy.exceptions import NotConfigured

        path = crawler.settings.get(PATH_SETTING)
        if not path:
            raise NotConfigured(f"{PATH_SETTING} is not set")
        ext = cls(crawler, str(path))
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Any) -> None:
        try:
            from twisted.internet.task import LoopingCall

            self.loop = LoopingCall(self.write)
            self.loop.start(INTERVAL, now=True).addErrback(
                lambda f: logger.error("live stats loop stopped: %s", f.value)
            )
        except Exception:
            logger.exception("live stats: cannot start the loop")

    def item_scraped(self, item: Any, spider: Any) -> None:
        try:
            self.coverage.add(item)
        except Exception:
            logger.exception("live stats: cannot count an item's fields")

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        stats = self.crawler.stats
        try:
            if stats.get_value("finish_reason") is None:
                stats.set_value("finish_reason", reason)
        except Exception:
            logger.exception("live stats: cannot set finish_reason")
        self.write()

    def write(self) -> None:
        try:
            write_atomically(self.path, stats_text(self.crawler.stats.get_stats(), self.coverage))
        except Exception:
            logger.exception("live stats: cannot write %s", self.path)
