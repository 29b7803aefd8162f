"""The coin index with 100,000 stored records: ingest time and the cost of a filtered page.

`python -m bench.coin_index_bench [--records N] [--coins N] [--jobs N]` writes N records
spread over job folders in a temp dir (like a daemon that ran many crawls), builds the
index from them, then times each coin API query many times and prints the median and p95
per query in milliseconds. Nothing here is asserted: it is a measurement.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.coin_index import CoinFilter, CoinIndex
from daemon.coin_records import parse_time

PLATFORMS = ("Ethereum", "Solana", "BNB Smart Chain (BEP20)", "Tron", "Base", "Arbitrum")


def make_record(coin_id: int, rank: int, day: int, rng: random.Random) -> dict[str, Any]:
    platforms = rng.sample(PLATFORMS, rng.choice((0, 0, 1, 1, 2)))
    price = rng.uniform(0.0001, 1000)
    return {
        "id": coin_id,
        "name": f"Coin {coin_id}",
        "symbol": f"C{coin_id % 4000}",
        "slug": f"coin-{coin_id}",
        "price": price,
        "price_change": rng.uniform(-10, 10),
        "market_cap": price * 1e6,
        "market_cap_rank": rank,
        "volume": price * 1e4,
        "contracts": [{"name": p, "address": f"0x{coin_id:040x}"} for p in platforms],
        "official_links": [{"name": "website", "link": f"https://coin-{coin_id}.example"}],
        "socials": [],
        "logo_path": f"Images/{coin_id}.png",
        "scraped_at": f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T12:00:00.000Z",
        "source": "api" if coin_id % 3 == 0 else "page",
        "query": f"coin-{coin_id}",
    }


def write_folders(data_dir: Path, records: int, coins: int, jobs: int) -> list[str]:
    rng = random.Random(7)
    per_job = records // jobs
    job_ids = []
    for day in range(jobs):
        job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        job_ids.append(job_id)
        folder = data_dir / job_id
        folder.mkdir(parents=True)
        chosen = rng.sample(range(1, coins + 1), min(per_job, coins))
        with (folder / "items.jl").open("w") as fh:
            for coin_id in chosen:
                record = make_record(coin_id, coin_id, day, rng)
                fh.write(json.dumps(record) + "\n")
    return job_ids


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, int]:
    times = []
    size = 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = len(fn())
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--coins", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        start = time.perf_counter()
        job_ids = write_folders(data_dir, args.records, args.coins, args.jobs)
        print(
            f"wrote {args.records} records in {args.jobs} job folders: "
            f"{time.perf_counter() - start:.1f} s"
        )
        index = CoinIndex(data_dir)
        index.open()
        start = time.perf_counter()
        count = index.rebuild()
        took = time.perf_counter() - start
        size = sum(p.stat().st_size for p in data_dir.glob("coins.sqlite*"))
        print(
            f"rebuild: {count} records in {took:.1f} s ({count / took:,.0f} records/s), "
            f"index {size / 1e6:.0f} MB"
        )
        # Incremental ingest of one more line into a big job (the status-poll path).
        job = job_ids[-1]
        with (data_dir / job / "items.jl").open("a") as fh:
            fh.write(json.dumps(make_record(1, 1, 99, random.Random(1))) + "\n")
        start = time.perf_counter()
        index.ingest_job(job)
        print(
            f"incremental ingest of 1 appended line: {(time.perf_counter() - start) * 1000:.2f} ms"
        )
        since = parse_time("2026-01-10")
        queries: dict[str, Callable[[], Any]] = {
            "list, first page (100)": lambda: index.coins(CoinFilter(), 100, 0),
            "list, page at offset 5000": lambda: index.coins(CoinFilter(), 100, 5000),
            "list symbol=C42": lambda: index.coins(CoinFilter(symbol="C42"), 100, 0),
            "list slug=coin-4242": lambda: index.coins(CoinFilter(slug="coin-4242"), 100, 0),
            "list platform=solana": lambda: index.coins(CoinFilter(platform="solana"), 100, 0),
            "list source=api": lambda: index.coins(CoinFilter(source="api"), 100, 0),
            "list platform+source": lambda: index.coins(
                CoinFilter(platform="tron", source="page"), 100, 0
            ),
            "list job=<one job>": lambda: index.coins(CoinFilter(job=job_ids[3]), 100, 0),
            "detail by slug": lambda: [index.coin("coin-4242")],
            "history of a coin since": lambda: index.history("4242", since, None, 1000, 0),
            "status of 3 coins": lambda: index.task_records(
                job_ids[3], ["coin-1", "coin-2", "coin-3"]
            ),
        }
        print(f"{'query':34} {'median ms':>10} {'p95 ms':>8} {'rows':>5}")
        for name, fn in queries.items():
            median, p95, rows = timed(fn, args.repeat)
            print(f"{name:34} {median:10.3f} {p95:8.3f} {rows:5d}")
        index.close()


if __name__ == "__main__":
    main()
