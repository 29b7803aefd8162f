"""Pipelines that turn items into the job folder `DATA_DIR/<job-id>/`.

- LogoPipeline: Scrapy's FilesPipeline (deduplicated, retried, with stats) storing each
  coin's logo as `Images/<id>.png` inside the job folder, byte for byte.
- JobFolderPipeline: streams `items.jl` (flushed per item, so a killed crawl keeps every
  complete line), then writes `data.json` and `job.json` atomically when the spider closes.
"""

from __future__ import annotations

import fcntl
import json
import logging
from pathlib import Path
from typing import IO, Any, Self

from itemadapter import ItemAdapter
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.http.request import NO_CALLBACK
from scrapy.pipelines.files import FilesPipeline
from scrapy.pipelines.media import FileInfoOrError

from coinspiders.items import COIN_FIELDS
from coinspiders.jobfolder import (
    DATA_FILE,
    ITEMS_FILE,
    MANIFEST_FILE,
    job_dir,
    logo_relpath,
    utc_now,
    write_json_atomic,
)
from coinspiders.spiders.base import JobSpider

logger = logging.getLogger(__name__)

# Keys of a record besides the coin figures, in the order they are written.
_EXTRA_FIELDS = ("query", "candidates", "error")


def item_record(item: Any) -> dict[str, Any]:
    """An item as a plain dict: coin figures in a stable order, then query/error."""
    adapter = ItemAdapter(item)
    keys: tuple[str, ...]
    if adapter.get("error"):
        keys = ("query", "id", "slug", "symbol", "candidates", "error")
    else:
        keys = COIN_FIELDS + _EXTRA_FIELDS
    return {k: adapter.get(k) for k in keys if k in adapter or k in COIN_FIELDS}


def _job_spider(crawler: Crawler) -> JobSpider:
    """The crawl's spider: these pipelines write a job folder, so they serve JobSpiders."""
    spider = crawler.spider
    assert isinstance(spider, JobSpider), f"{spider!r} is not a JobSpider"
    return spider


class LogoPipeline(FilesPipeline):
    """Each coin's logo, stored as `<job-id>/Images/<id>.png` under DATA_DIR."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        cls._update_stores(crawler.settings)
        # The store root follows DATA_DIR, so `-s DATA_DIR=...` moves logos with the rest.
        return cls(str(Path(crawler.settings["DATA_DIR"]).resolve()), crawler=crawler)

    def get_media_requests(self, item: Any, info: Any) -> list[Request]:
        adapter = ItemAdapter(item)
        if adapter.get("error") or not adapter.get("logo") or adapter.get("id") is None:
            return []
        return [Request(adapter["logo"], callback=NO_CALLBACK, meta={"coin_id": adapter["id"]})]

    def file_path(
        self,
        request: Request,
        response: Any = None,
        info: Any = None,
        *,
        item: Any = None,
    ) -> str:
        spider = _job_spider(self.crawler)
        return f"{spider.job_id}/{logo_relpath(request.meta['coin_id'])}"

    def item_completed(self, results: list[FileInfoOrError], item: Any, info: Any) -> Any:
        adapter = ItemAdapter(item)
        if adapter.get("error"):
            return item
        stored = [res for ok, res in results if ok]
        adapter["logo_path"] = logo_relpath(adapter["id"]) if stored else None
        if not stored and results:
            logger.warning("logo of coin %s could not be stored", adapter.get("id"))
        return item


class JobFolderPipeline:
    """items.jl as items arrive; data.json and job.json, atomically, at the end."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.records: list[dict[str, Any]] = []
        self.items_ok = 0
        self.item_errors = 0
        self.started = ""
        self.folder: Path | None = None
        self._items_fh: IO[bytes] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        pipeline = cls(crawler)
        # spider_closed carries the close reason and fires after every pipeline closed.
        crawler.signals.connect(pipeline.spider_closed, signal=signals.spider_closed)
        for signal in (signals.item_scraped, signals.item_dropped, signals.item_error):
            crawler.signals.connect(pipeline._wake_engine, signal=signal)
        return pipeline

    def open_spider(self) -> None:
        spider = _job_spider(self.crawler)
        folder = job_dir(self.crawler.settings["DATA_DIR"], spider.job_id)
        folder.mkdir(parents=True, exist_ok=True)
        items_fh = open(folder / ITEMS_FILE, "ab")  # noqa: SIM115 - open for the crawl
        try:
            # Two crawls never share a folder: the second one stops here.
            fcntl.flock(items_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            items_fh.close()
            raise RuntimeError(f"job folder {folder} is in use by another crawl") from None
        # The folder is ours only once locked: spider_closed still fires after a failed
        # open and must not write into the folder of the crawl that holds the lock.
        self.folder = folder
        self._items_fh = items_fh
        self.started = utc_now()
        logger.info("job %s: output in %s", spider.job_id, self.folder)
        write_json_atomic(self.folder / MANIFEST_FILE, self._manifest(finished=None, reason=None))

    def process_item(self, item: Any) -> Any:
        record = item_record(item)
        assert self._items_fh is not None
        self._items_fh.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        self._items_fh.flush()
        self.records.append(record)
        if record.get("error"):
            self.item_errors += 1
        else:
            self.items_ok += 1
        return item

    def _wake_engine(self, *args: Any, **kwargs: Any) -> None:
        """Let the engine notice at once when this was the last piece of work.

        Scrapy re-checks whether a spider is idle after each download or on a 5-second
        heartbeat. An item whose logo download ended inside the media pipeline is
        finished after that check, so without this nudge every crawl idles for up to
        5 s before closing. The slot is private API; without it we only lose the nudge.
        Connected to item_scraped/item_dropped/item_error.
        """
        slot = getattr(self.crawler.engine, "_slot", None)
        nextcall = getattr(slot, "nextcall", None)
        if nextcall is not None:
            # The scraper counts the item as done only after the signal handlers return,
            # a few loop turns later; a short delay lands after that.
            nextcall.schedule(0.05)

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self.folder is None:
            return
        spider.job_failed = reason != "finished" or not spider.job_succeeded(
            self.items_ok, self.item_errors
        )
        write_json_atomic(self.folder / DATA_FILE, spider.result_document(self.records))
        write_json_atomic(
            self.folder / MANIFEST_FILE, self._manifest(finished=utc_now(), reason=reason)
        )
        if self._items_fh is not None:
            self._items_fh.close()  # releases the folder lock
            self._items_fh = None
        logger.info(
            "job %s: %d items, %d coin errors, close reason %s%s",
            spider.job_id,
            self.items_ok,
            self.item_errors,
            reason,
            " (failed)" if spider.job_failed else "",
        )

    def _manifest(self, finished: str | None, reason: str | None) -> dict[str, Any]:
        spider = _job_spider(self.crawler)
        coin_errors = [
            {"coin": r.get("query") or r.get("id"), "error": r["error"]}
            for r in self.records
            if r.get("error")
        ]
        manifest = {
            "job_id": spider.job_id,
            "spider": spider.name,
            "arguments": spider.arguments,
            "started": self.started,
            "finished": finished,
            "close_reason": reason,
            "succeeded": None if finished is None else not spider.job_failed,
            "items": self.items_ok,
            "errors": self.item_errors + len(spider.job_errors),
            "job_errors": spider.job_errors,
            "coin_errors": coin_errors,
        }
        manifest.update(spider.manifest_extra)
        return manifest
