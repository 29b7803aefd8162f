"""What a crawl process runs, warm (forked from a zygote) or cold (`python -m
daemon.runner.boot crawl <spider> ...`): Scrapy's own `scrapy` command, unchanged,
with the live stats extension added and the job's id in the process title.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: The live stats extension every crawl gets (daemon.runner.stats), with its order: after
#: CoreStats (0), so `finish_reason` and `elapsed_time_seconds` are set when it writes.
LIVE_STATS_EXTENSION = ("daemon.runner.stats.LiveStats", 1000)


def add_live_stats() -> None:
    """Add the extension to Scrapy's default EXTENSIONS_BASE: `-s EXTENSIONS=...` would
    replace a project's EXTENSIONS dict and `-s EXTENSIONS_BASE` Scrapy's own
    extensions, while a default is merged under both (getwithbase), so the project keeps
    every extension it has (and can still turn this one off with None)."""
    try:
        import scrapy.settings.default_settings as defaults

        import daemon.runner.stats  # noqa: F401  (fails here, not inside the crawl)
    except Exception as exc:  # a crawl runs without live stats rather than not at all
        print("live stats off:", exc, file=sys.stderr)
        return
    name, order = LIVE_STATS_EXTENSION
    defaults.EXTENSIONS_BASE = {**defaults.EXTENSIONS_BASE, name: order}


def job_of(args: Sequence[str]) -> tuple[str, str]:
    """(spider, job id) of `crawl <spider> ... -s JOB_ID=<id>` ('' when absent)."""
    spider = args[1] if len(args) > 1 and args[0] == "crawl" else ""
    job = ""
    for arg in args:
        if arg.startswith("JOB_ID="):
            job = arg.partition("=")[2]
    return spider, job


def run_scrapy(args: Sequence[str]) -> None:
    """`scrapy <args>` in this interpreter; leaves by sys.exit with scrapy's status."""
    from daemon.runner.title import crawl_title, set_title

    spider, job = job_of(args)
    if job:
        set_title(crawl_title(spider, job))
    add_live_stats()
    sys.argv = ["scrapy", *args]
    from scrapy.cmdline import execute

    execute(sys.argv)


def main() -> None:
    import os

    os.setsid()  # the crawl leads a session (and process group) of its own
    run_scrapy(sys.argv[1:])


if __name__ == "__main__":
    main()
