"""The `cmc_api` spider over N generated coins from the CMC test server.

The server runs as its own process (`python -m tests.cmc_server`), so the crawl's
figures are not mixed with the server's work; the crawl is the real `scrapy crawl
cmc_api` process: listings pages, info batches of 100, every logo, the job folder.
Reported: wall time of the crawl process (start-up included), items/s, peak RSS of
the crawl process (sampled every 50 ms), and the API calls and credits it used.

    python -m bench.bench_cmc_api [--coins 5000] [--page-size 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import REPO, BenchError, log, table

COINS = 5000
LISTINGS = "/v1/cryptocurrency/listings/latest"
INFO = "/v2/cryptocurrency/info"
LOGOS = "/static/img/coins/64x64/"


def _sample_crawl(command: list[str], env: dict[str, str], log_path: Path) -> dict[str, Any]:
    """Run one crawl to its end; wall seconds and the peak RSS of its process."""
    started = time.perf_counter()
    peak = 0
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, watched.memory_info().rss)
            time.sleep(0.05)
            if time.perf_counter() - started > 900:
                proc.kill()
                proc.wait()
                raise BenchError("the cmc_api crawl took over 900 s")
    seconds = time.perf_counter() - started
    if proc.returncode:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise BenchError(f"the cmc_api crawl failed ({proc.returncode}):\n{tail}")
    return {"seconds": seconds, "peak_rss_mib": peak / 2**20}


def run(coins: int = COINS, page_size: int = 200) -> dict[str, Any]:
    """Crawl `coins` coins once and return the figures (also printed as a table)."""
    try:
        from tests.cmc_server import spawn_server
    except ImportError as exc:
        raise BenchError(f"the CMC test server is not importable: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="coinspiders-bench-cmc-api-") as tmp:
        work = Path(tmp)
        log(f"cmc_api: starting the CMC test server with {coins:,} coins")
        with spawn_server(coins=coins) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("CMC_", "SCRAPY_"))}
            env.update(server.settings())
            env.update(DATA_DIR=str(work / "data"), JOB_ID="bench-cmc-api", LOG_LEVEL="INFO")
            command = [sys.executable, "-m", "scrapy", "crawl", "cmc_api"]
            command += ["-a", f"limit={coins}", "-s", f"CMC_API_PAGE_SIZE={page_size}"]
            log(f"cmc_api: crawling {coins:,} coins, listings pages of {page_size}")
            figures = _sample_crawl(command, env, work / "crawl.log")
            requests = server.control.requests()
        folder = work / "data" / "bench-cmc-api"
        job = json.loads((folder / "job.json").read_text(encoding="utf-8"))
        data = json.loads((folder / "data.json").read_text(encoding="utf-8"))
        logos = sum(1 for _ in (folder / "Images").glob("*.png"))
    items = int(job["items"])
    if items != coins or len(data) != coins or logos != coins:
        raise BenchError(
            f"asked {coins} coins, got {items} items, {len(data)} records, {logos} logos"
        )
    result = {
        "coins": coins,
        "page_size": page_size,
        "seconds": round(figures["seconds"], 2),
        "items_per_s": round(items / figures["seconds"], 1),
        "peak_rss_mib": round(figures["peak_rss_mib"], 1),
        "listings_calls": sum(1 for r in requests if r["path"] == LISTINGS),
        "info_calls": sum(1 for r in requests if r["path"] == INFO),
        "logo_requests": sum(1 for r in requests if r["path"].startswith(LOGOS)),
        "credit_count": job.get("credit_count"),
        "logos_stored": logos,
    }
    print_table(result)
    return result


def print_table(result: dict[str, Any]) -> None:
    print(f"\ncmc_api spider: {result['coins']:,} coins from the CMC test server")
    rows = [
        [
            result["page_size"],
            result["seconds"],
            result["items_per_s"],
            result["peak_rss_mib"],
            f"{result['listings_calls']}+{result['info_calls']}",
            result["credit_count"],
            result["logo_requests"],
        ]
    ]
    headers = ["page", "wall s", "items/s", "peak RSS MiB", "API calls", "credits", "logos"]
    print(table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=COINS)
    parser.add_argument("--page-size", type=int, default=200)
    args = parser.parse_args()
    try:
        run(args.coins, args.page_size)
    except BenchError as exc:
        print(f"bench cmc_api: cannot run: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
