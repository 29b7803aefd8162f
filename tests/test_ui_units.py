"""The dashboard's pure parts, tested directly: number formatting, log reading and
marking, the cross-site guard, the vendored files and the size of what pages load, and
the store's dashboard queries."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from daemon.job_store import Job, JobQuery, Store, day_summary, search_jobs, spider_summaries
from daemon.ui import fmt
from daemon.ui.guard import cross_site_refusal
from daemon.ui.logtail import line_level, lines_html, read_from, read_tail
from tests.daemon_support import write_store_without_added_columns

UI = Path(__file__).resolve().parent.parent / "daemon" / "ui"


# -- numbers for people ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (97144.1234, "$97,144.12"),
        (1, "$1.00"),
        (0.5, "$0.5"),
        (0.1234567, "$0.1235"),
        (0.00123456, "$0.001235"),
        (0.0001234, "$0.0001234"),
        (0.00003913, "$0.0₄3913"),
        (0.000000000012, "$0.0₁₀12"),
        (0, "$0.00"),
        (-2.5, "-$2.50"),
        (None, "—"),
        (float("nan"), "—"),
        ("abc", "—"),
        (True, "—"),
    ],
)
def test_prices(value: object, text: str) -> None:
    assert fmt.price(value) == text


def test_prices_in_other_currencies() -> None:
    assert fmt.price(1234.5, "EUR") == "€1,234.50"
    assert fmt.price(0.00003913, "BTC") == "0.0₄3913 BTC"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1_234_567_890, "1.2B"),
        (1_960_000_000_000, "2T"),
        (999_999, "1M"),
        (12_500, "12.5K"),
        (950, "950"),
        (12.5, "12.5"),
        (-3_400_000, "-3.4M"),
        (None, "—"),
    ],
)
def test_compact(value: object, text: str) -> None:
    assert fmt.compact(value) == text


def test_money_percent_integer_size_duration() -> None:
    assert fmt.money_compact(1.93e12) == "$1.9T"
    assert fmt.money_compact(-5e6) == "-$5M"
    assert fmt.percent(2.345) == "+2.35%"
    assert fmt.percent(-0.4) == "-0.40%"
    assert fmt.integer(1234567) == "1,234,567"
    assert fmt.size(1536) == "1.5 KiB"
    assert fmt.size(3 * 1024**3) == "3.0 GiB"
    assert fmt.size(12) == "12 B"
    assert fmt.duration(0.42) == "0.4s"
    assert fmt.duration(42) == "42s"
    assert fmt.duration(187) == "3m 07s"
    assert fmt.duration(7500) == "2h 05m"
    assert fmt.duration(90000) == "1d 01h"
    assert fmt.duration(-1) == "—"


def test_times() -> None:
    assert fmt.timestamp(0) == "1970-01-01 00:00:00 UTC"
    assert fmt.iso(0) == "1970-01-01T00:00:00Z"
    assert fmt.iso(None) == ""
    assert fmt.ago(100, 400) == "5m ago"
    assert fmt.ago(1000, 400) == "in 10m"
    assert fmt.ago(100, 100.5) == "now"
    assert fmt.ago(100, 105.5) == "5s ago"


def test_sparkline_points_span_the_box_highest_on_top() -> None:
    points = fmt.sparkline([1, 3, 2], width=100, height=20)
    assert points == "0.0,20.0 50.0,0.0 100.0,10.0"
    assert fmt.sparkline([5]) == ""
    assert fmt.sparkline([2, 2]) == "0.0,24.0 100.0,24.0"


# -- logs ----------------------------------------------------------------------------------


def test_line_levels() -> None:
    assert line_level("2026-01-01 [scrapy.core] ERROR: boom") == "e"
    assert line_level("2026-01-01 [x] CRITICAL: down") == "e"
    assert line_level("Traceback (most recent call last):") == "e"
    assert line_level("ValueError: bad") == "e"
    assert line_level("2026-01-01 [x] WARNING: hm") == "w"
    assert line_level("2026-01-01 [x] INFO: errors=0") == ""


def test_lines_are_escaped_and_one_line_of_html() -> None:
    html = lines_html(b"<script>alert(1)</script>\r\nERROR: x & y\n\xff bad byte")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<div class="e">ERROR: x &amp; y</div>' in html
    assert "\n" not in html and "\r" not in html
    assert "\ufffd bad byte" in html


def test_tail_starts_at_a_whole_line_and_ends_at_the_last_newline(tmp_path: Path) -> None:
    log = tmp_path / "x.err"
    lines = [f"line {n:05d}\n".encode() for n in range(10000)]
    log.write_bytes(b"".join(lines) + b"partial")
    size = log.stat().st_size
    chunk = read_tail(log, limit=1000)
    assert chunk.size == size
    assert chunk.data.startswith(b"line ") and chunk.data.endswith(b"\n")
    assert chunk.end == size - len(b"partial")
    assert chunk.start == chunk.end - len(chunk.data)
    assert log.read_bytes()[chunk.start : chunk.end] == chunk.data
    assert len(chunk.data) <= 1000


def test_following_resumes_exactly_where_it_stopped(tmp_path: Path) -> None:
    log = tmp_path / "x.out"
    log.write_bytes(b"a\nbb\nccc")
    first = read_from(log, 0, final=False, limit=4)
    assert (first.data, first.end) == (b"a\n", 2)
    second = read_from(log, first.end, final=False)
    assert (second.data, second.end) == (b"bb\n", 5)
    # The crawl has ended: the last line without a newline comes too.
    last = read_from(log, second.end, final=True)
    assert (last.data, last.end) == (b"ccc", 8)
    # A line longer than a chunk comes in pieces rather than never.
    log.write_bytes(b"x" * 100)
    assert read_from(log, 0, final=False, limit=10).data == b"x" * 10


# -- cross-site guard --------------------------------------------------------------------


def test_cross_site_guard() -> None:
    assert cross_site_refusal(b"true", None) is None
    assert cross_site_refusal(b"true", b"same-origin") is None
    assert cross_site_refusal(None, b"same-origin") is not None
    assert cross_site_refusal(b"true", b"cross-site") == "Cross-site request refused"
    assert cross_site_refusal(b"true", b"same-site") is not None


# -- vendored files and the page weight ------------------------------------------------


def test_vendored_files_match_their_recorded_hashes() -> None:
    table = (UI / "VENDORED.md").read_text()
    rows = re.findall(r"^\| (static/\S+) \|.*\| ([0-9a-f]{64}) \|$", table, re.MULTILINE)
    assert {name for name, _ in rows} == {"static/htmx.min.js", "static/uPlot.iife.min.js"}
    for name, digest in rows:
        assert hashlib.sha256((UI / name).read_bytes()).hexdigest() == digest, name


def test_shipped_js_and_css_stay_under_40_kib_gzipped() -> None:
    shipped = sorted(p for p in (UI / "static").iterdir() if p.suffix in (".js", ".css"))
    total = sum(len(gzip.compress(p.read_bytes(), 9, mtime=0)) for p in shipped)
    assert total < 40 * 1024, f"{total} bytes gzipped"
    own = (UI / "static" / "app.js").read_text()
    assert len(own.splitlines()) < 80  # a few dozen lines of our own


def test_templates_and_static_files_are_package_data() -> None:
    setup = (UI.parent.parent / "setup.py").read_text()
    assert '"daemon.ui": ["templates/*.html", "static/*", "VENDORED.md"]' in setup


# -- the store's dashboard queries -------------------------------------------------------


def _job(status: str, project: str, spider: str, created: float, **kw: object) -> Job:
    return Job(
        id=str(uuid.uuid4()),
        status=status,
        actor="USER",
        schedule="now",
        project=project,
        spider=spider,
        created=created,
        **kw,  # type: ignore[arg-type]
    )


def test_search_filters_by_status_project_spider_id_prefix_and_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "daemon.sqlite")
    base = 1_700_000_000.0
    made = [
        store.insert(_job(("FAILED", "SUCCESSFUL")[n % 2], f"p{n % 3}", "s", base + n))
        for n in range(300)
    ]
    newest_first = list(reversed(made))

    def ids(query: JobQuery, limit: int = 1000, offset: int = 0) -> tuple[list[str], int]:
        found, total = search_jobs(store._conn, query, limit, offset)
        return [j.id for j in found], total

    expected = [j.id for j in newest_first if j.status == "FAILED" and j.project == "p0"]
    assert ids(JobQuery(statuses=("FAILED",), project="p0")) == (expected, 50)
    target = made[123]
    found, _ = ids(JobQuery(id_prefix=target.id[:13]))
    assert found == [target.id]
    found, total = ids(JobQuery(since=base + 10, until=base + 20))
    assert total == 10 and set(found) == {j.id for j in made[10:20]}
    assert ids(JobQuery(), limit=50, offset=50) == ([j.id for j in newest_first][50:100], 300)


def test_day_summary_and_spider_summary(tmp_path: Path) -> None:
    store = Store(tmp_path / "daemon.sqlite")
    now = time.time()
    old = store.insert(_job("PENDING", "p", "b", now - 90000))
    store.mark_running(old.id)
    store.finish(old.id, "FAILED", at=now - 90000)
    ok = store.insert(_job("PENDING", "p", "a", now - 100))
    store.mark_running(ok.id)
    store.finish(ok.id, "SUCCESSFUL")
    bad = store.insert(_job("PENDING", "p", "b", now - 50))
    store.mark_running(bad.id)
    store.finish(bad.id, "FAILED", reason="exit code 3", exit_code=3)
    plan = Job(
        id=str(uuid.uuid4()),
        status="SCHEDULED",
        actor="USER",
        schedule="every 1h",
        project="p",
        spider="a",
        next_run=now + 60,
    )
    store.insert(plan)
    store.finish(store.insert(replace(plan, id=str(uuid.uuid4()))).id, "CANCELED")

    day = day_summary(store._conn, now + 1)
    assert day.failed == 1
    assert [j.id for j in day.failures] == [bad.id]
    assert day.per_hour[-1] == 2 and sum(day.per_hour) == 2
    assert [j.id for j in day.next_runs] == [plan.id]
    spiders = spider_summaries(store._conn, "p")
    assert [(s.spider, s.runs, s.last_status, s.last_id) for s in spiders] == [
        ("a", 1, "SUCCESSFUL", ok.id),
        ("b", 2, "FAILED", bad.id),
    ]


def test_an_older_store_gains_the_dashboard_indexes_on_open(tmp_path: Path) -> None:
    path = tmp_path / "daemon.sqlite"
    write_store_without_added_columns(path)
    store = Store(path)
    names = {r[0] for r in store._conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"jobs_finished", "jobs_created"} <= names
    plan = " ".join(
        str(r)
        for r in store._conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE finished >= 0 AND status = 'FAILED'"
        )
    )
    assert "jobs_finished" in plan or "jobs_status" in plan


# -- a crawl's counters over its life ----------------------------------------------------


def test_stats_series_keeps_each_crawls_published_stats_and_thins_a_long_life() -> None:
    from twisted.internet.task import Clock

    from daemon.events import JOB_CHANGED, EventBus
    from daemon.executor import CRAWL_STATS, CrawlStats
    from daemon.stats_series import StatsSeries

    clock, bus = Clock(), EventBus()
    series = StatsSeries(clock, bus, points=10)
    running = Job(id="j", status="RUNNING", actor="USER", schedule="now", project="p", spider="s")
    bus.publish(JOB_CHANGED, running)

    def tick(n: int) -> None:
        clock.advance(1)
        stats = json.dumps({"item_scraped_count": n, "log_count/ERROR": 2})
        bus.publish(CRAWL_STATS, CrawlStats("j", stats))

    for n in range(1, 6):
        tick(n)
    times, counted, requests, errors = series.columns("j")
    assert times == [1.0, 2.0, 3.0, 4.0, 5.0] and counted == [1, 2, 3, 4, 5]
    assert errors == [2.0] * 5 and requests == [0.0] * 5
    bus.publish(CRAWL_STATS, CrawlStats("j", "not json"))  # ignored, not a crash
    for n in range(6, 46):
        tick(n)
    times = series.columns("j")[0]
    assert len(times) < 10 and times[0] == 1.0  # thinned, the start kept
    final = json.dumps({"item_scraped_count": 99})
    bus.publish(JOB_CHANGED, replace(running, status="SUCCESSFUL", stats=final))
    assert series.columns("j")[1][-1] == 99.0
    assert "j" not in series.running
    assert series.columns("unknown") == [[], [], [], []]


# -- the coin list's orders -------------------------------------------------------------


def test_coins_sort_by_a_figure_across_the_whole_market(tmp_path: Path) -> None:
    from daemon.coin_index import CoinFilter, CoinIndex
    from tests.test_coin_index import coin, write_lines

    job = "11111111-1111-4111-8111-111111111111"
    records = [coin(n, f"C{n}", rank=n, price=float(n % 7)) for n in range(1, 31)]
    for n, record in enumerate(records):
        record["price_change"] = float((n * 13) % 11) - 5
    records[3]["price"] = None
    write_lines(tmp_path, job, records)
    index = CoinIndex(tmp_path)
    index.open()
    try:
        index.ingest_job(job)
        by_rank = [c["symbol"] for c in index.coins(CoinFilter(), 5, 0)]
        assert by_rank == ["C1", "C2", "C3", "C4", "C5"]
        prices = [c["price"] for c in index.coins(CoinFilter(), 100, 0, "price")]
        assert prices[:-1] == sorted(prices[:-1], reverse=True) and prices[-1] is None
        changes = [c["price_change"] for c in index.coins(CoinFilter(), 100, 0, "change")]
        assert changes == sorted(changes, reverse=True)
        second = index.coins(CoinFilter(), 10, 10, "cap")
        first = index.coins(CoinFilter(), 10, 0, "cap")
        assert min(c["market_cap"] for c in first) >= max(c["market_cap"] for c in second)
    finally:
        index.close()


# -- a run's anomalies and node on the Jobs rows and the job page ---------------------------


def test_anomalies_show_as_a_badge_on_the_row_and_a_table_on_the_job_page() -> None:
    from datetime import UTC
    from types import SimpleNamespace
    from typing import Any, cast

    from daemon.ui.kit import Kit

    kit = Kit(cast(Any, SimpleNamespace(tz=UTC, auth=None, timezone="UTC")))
    report = {
        "compared_with": 5,
        "findings": [
            {"what": "items", "expected": 120.0, "seen": 3.0},
            {"what": "field_coverage", "expected": 1.0, "seen": 0.0, "field": "price"},
        ],
    }
    job = Job(
        id=str(uuid.uuid4()),
        status="SUCCESSFUL",
        actor="USER",
        schedule="now",
        project="p",
        spider="s",
        node="worker-2",
        anomalies=json.dumps(report),
        created=time.time(),
    )
    rows = kit.env.get_template("_job_rows.html").render(
        jobs=[job], ticked=set(), total=1, page=1, pages=1, rows_link="jobs/rows"
    )
    assert 'aria-label="2 anomalies"' in rows and "on worker-2" in rows
    assert f'aria-label="Re-run job {job.id}"' in rows  # an ended run: re-run, no cancel
    assert "Cancel job" not in rows
    summary = kit.env.get_template("_job_summary.html").render(
        job=job,
        status="SUCCESSFUL",
        stats={},
        payload="{}",
        coverage=[],
        items=0,
        requests=0,
        errors=0,
        per_minute=None,
        elapsed=None,
    )
    table = summary[summary.index('aria-label="Anomalies"') :]
    assert "<td>items</td><td>120.0</td><td>3.0</td>" in table
    assert "<td>field_coverage (price)</td><td>1.0</td><td>0.0</td>" in table
    assert "<dt>Node</dt><dd>worker-2</dd>" in summary
    calm = replace(job, anomalies=json.dumps({"compared_with": 4, "findings": []}), node=None)
    rows = kit.env.get_template("_job_rows.html").render(
        jobs=[calm], ticked=set(), total=1, page=1, pages=1, rows_link="jobs/rows"
    )
    assert "anomal" not in rows and "on None" not in rows
