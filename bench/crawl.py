"""Benchmark 6: the spiders. The `coin` spider over 2,000 generated coin pages from the CMC
test server, against a bare spider that only downloads the same pages with the same project
settings (ratio = the cost of our parsing and pipelines, logo downloads included; a third
run without the logo pipeline separates parsing from logos), and the
`cmc_api` spider over 5,000 coins (bench/bench_cmc_api.py, when it is there).

A coin crawl takes at most 1,000 coins, so each side runs as two crawls of 1,000 pages,
one after the other; wall time includes both crawls' start-up, on both sides alike.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import REPO, BenchError, log, ratio, save_results, table
from bench.runner import guard

PAGES = 2_000
PER_CRAWL = 1_000
API_COINS = 5_000
JOB_FOLDER_PIPELINE = "coinspiders.pipelines.JobFolderPipeline"


def timed_run(command: list[str], env: dict[str, str], log_path: Path) -> dict[str, float]:
    """Run a crawl, returning wall time and its peak RSS (sampled every 50 ms)."""
    start = time.perf_counter()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak = 0
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, ps.memory_info().rss)
            time.sleep(0.05)
            if time.perf_counter() - start > 600:
                proc.kill()
                raise BenchError(f"crawl took over 600 s: {' '.join(command[:6])}")
    elapsed = time.perf_counter() - start
    if proc.returncode:
        text = log_path.read_text(errors="replace")[-1500:]
        raise BenchError(f"crawl failed ({proc.returncode}): {' '.join(command[:6])}\n{text}")
    return {"seconds": elapsed, "peak_rss_mib": peak / 2**20}


def crawl_pages(pages: int, work: Path) -> dict[str, Any]:
    try:
        from tests.cmc_server import spawn_server
    except ImportError as exc:
        raise BenchError(f"the CMC test server is not there yet: {exc}") from None
    figures: dict[str, Any] = {"pages": pages, "per_crawl": PER_CRAWL}
    with spawn_server(coins=pages + 100) as cmc:
        # Generated coins only: the built-in ones include deliberately odd pages.
        builtin = {c["slug"] for c in cmc.control.coins()}
        everything = cmc.control.coins(everything=True)
        slugs = [c["slug"] for c in everything if c["slug"] not in builtin][:pages]
        if len(slugs) < pages:
            raise BenchError(f"the CMC test server has {len(slugs)} coins, {pages} asked")
        env = {**os.environ, **cmc.settings(api_key=""), "LOG_LEVEL": "INFO"}
        env.pop("CMC_API_KEY", None)
        chunks = [slugs[n : n + PER_CRAWL] for n in range(0, pages, PER_CRAWL)]
        sides: dict[str, list[dict[str, float]]] = {"coin": [], "coin_no_logos": [], "bare": []}
        items = 0
        for n, chunk in enumerate(chunks):
            data = work / f"data-{n}"
            slug_file = work / f"slugs-{n}.txt"
            slug_file.write_text("\n".join(chunk))
            coins = ",".join(f"slug:{s}" for s in chunk)
            job_id = f"bench-coin-{n}"
            run_env = {**env, "DATA_DIR": str(data), "JOB_ID": job_id}
            log(f"crawl: bare spider, {len(chunk)} pages")
            sides["bare"].append(
                timed_run(
                    [
                        sys.executable,
                        "-m",
                        "scrapy",
                        "runspider",
                        str(REPO / "bench" / "bare_spider.py"),
                        "-a",
                        f"slugs_file={slug_file}",
                        "-s",
                        "ITEM_PIPELINES={}",
                    ],
                    run_env,
                    work / f"bare-{n}.log",
                )
            )
            log(f"crawl: coin spider, {len(chunk)} pages")
            sides["coin"].append(
                timed_run(
                    [sys.executable, "-m", "scrapy", "crawl", "coin", "-a", f"coins={coins}"],
                    run_env,
                    work / f"coin-{n}.log",
                )
            )
            log(f"crawl: coin spider without the logo pipeline, {len(chunk)} pages")
            sides["coin_no_logos"].append(
                timed_run(
                    [
                        *[sys.executable, "-m", "scrapy", "crawl", "coin", "-a", f"coins={coins}"],
                        *["-s", f"ITEM_PIPELINES={json.dumps({JOB_FOLDER_PIPELINE: 900})}"],
                        *["-s", f"JOB_ID={job_id}-no-logos"],
                    ],
                    run_env,
                    work / f"coin-no-logos-{n}.log",
                )
            )
            manifest = json.loads((data / job_id / "job.json").read_text())
            items += int(manifest.get("items", 0))
            if manifest.get("coin_errors") or manifest.get("errors"):
                figures.setdefault("errors", []).append(
                    {k: manifest.get(k) for k in ("errors", "coin_errors", "job_errors")}
                )
    for side, runs in sides.items():
        seconds = sum(r["seconds"] for r in runs)
        figures[side] = {
            "seconds": seconds,
            "pages_per_s": pages / seconds,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        }
    figures["coin"]["items"] = items
    bare = figures["bare"]["pages_per_s"]
    figures["coin_over_bare"] = ratio(figures["coin"]["pages_per_s"], bare)
    figures["coin_no_logos_over_bare"] = ratio(figures["coin_no_logos"]["pages_per_s"], bare)
    return figures


def crawl_api(coins: int) -> dict[str, Any] | None:
    if importlib.util.find_spec("bench.bench_cmc_api") is None:
        log("crawl: bench/bench_cmc_api.py is not there; cmc_api benchmark skipped")
        return None
    from bench import bench_cmc_api

    log(f"crawl: cmc_api spider, {coins:,} coins (bench.bench_cmc_api.run)")
    try:
        return bench_cmc_api.run(coins=coins)
    except TypeError:
        return bench_cmc_api.run()


def run(quick: bool = False) -> dict[str, Any]:
    pages = 200 if quick else PAGES
    with tempfile.TemporaryDirectory(prefix="coinspiders-bench-crawl-") as tmp:
        results: dict[str, Any] = {"coin": crawl_pages(pages, Path(tmp))}
    api = crawl_api(500 if quick else API_COINS)
    if api is not None:
        results["cmc_api"] = api
    print_table(results)
    return results


def print_table(results: dict[str, Any]) -> None:
    r = results["coin"]
    print(f"\n6. Crawl: {r['pages']:,} coin pages from the CMC test server")
    rows = [
        [side, r[side]["seconds"], r[side]["pages_per_s"], r[side]["peak_rss_mib"]]
        for side in ("bare", "coin_no_logos", "coin")
    ]
    print(table(["spider", "wall s", "pages/s", "peak RSS MiB"], rows))
    print(
        f"coin / bare (pages/s): {r['coin_over_bare']:.2f} with logos, "
        f"{r['coin_no_logos_over_bare']:.2f} without   items: {r['coin']['items']:,}"
    )
    api = results.get("cmc_api")
    if api:
        print(f"cmc_api spider: {json.dumps(api, default=str)}")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    def body() -> None:
        save_results("crawl", run(args.quick))

    guard("crawl", body)


if __name__ == "__main__":
    main()
