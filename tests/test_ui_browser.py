"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright,
against a real daemon running real crawls. Selectors are roles and labels (what a
screen reader sees), so the markup's accessibility is tested along the way.

Every test checks that its pages logged no console error; every page is photographed
into the artifacts folder (tests/browser_support.py).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.job_store import Job, Store
from tests.browser_support import ConsoleWatch, Proxy, chromium, shoot
from tests.daemon_support import (
    DaemonFactory,
    DaemonProcess,
    toy_projects,
    write_scrapy_project,
    zip_project,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(300)
WAIT = 60_000  # ms: the machine may be busy
HISTORY_JOBS = 1000

TALK_SPIDERS = """
import asyncio
import json
from pathlib import Path

import scrapy


class Talker(scrapy.Spider):
    name = "talker"

    async def start(self):
        args = json.loads(getattr(self, "payload", "{}"))
        self.logger.warning("a warning to highlight")
        self.logger.error("an error to jump to")
        n = 0
        while not Path(args["until_file"]).exists():
            n += 1
            self.logger.info("tick %d", n)
            print("out tick", n, flush=True)
            await asyncio.sleep(0.2)
        for i in range(5):
            yield {"n": i, "name": "x" if i % 2 else ""}
"""

PUSHED_SPIDERS = """
import scrapy


class Hello(scrapy.Spider):
    name = "hello"

    async def start(self):
        yield {"hello": 1}


class World(scrapy.Spider):
    name = "world"

    async def start(self):
        yield {"world": 1}
"""


def projects(folder: Path) -> dict[str, dict[str, Any]]:
    talk = write_scrapy_project(folder / "talk", "talk", {"talk.py": TALK_SPIDERS})
    return {**toy_projects(folder), "talk": {"path": str(talk)}}


def _history(data_dir: Path) -> None:
    """1,000 ended jobs of a project `hist` (written by the store itself before the
    daemon starts), and a coin's records over the last week in a job folder."""
    data_dir.mkdir(parents=True)
    store = Store(data_dir / "daemon.sqlite")
    now = time.time()
    statuses = ("SUCCESSFUL", "FAILED", "CANCELED", "SUCCESSFUL")
    for n in range(HISTORY_JOBS):
        store.insert(
            Job(
                id=str(uuid.uuid4()),
                status=statuses[n % 4],
                actor="USER",
                schedule="now",
                project="hist",
                spider="alpha" if n % 2 else "beta",
                created=now - (HISTORY_JOBS - n) * 60,
            )
        )
    store.close()
    job_id = str(uuid.uuid4())
    folder = data_dir / job_id
    folder.mkdir()
    with (folder / "items.jl").open("w") as fh:
        for hour in range(0, 24 * 6, 3):
            at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - hour * 3600))
            price = 97144.12 + (hour % 17) * 150.5
            record = {
                "id": 1,
                "name": "Bitcoin",
                "symbol": "BTC",
                "slug": "bitcoin",
                "currency": "USD",
                "price": price,
                "price_change": 1.25,
                "market_cap": price * 19_800_000,
                "market_cap_rank": 1,
                "volume": 3.1e10,
                "scraped_at": at,
                "source": "page",
                "query": "BTC",
            }
            fh.write(json.dumps(record) + "\n")
        tiny = dict(record, id=2, name="Tiny", symbol="TINY", slug="tiny", price=0.00003913)
        tiny.update(market_cap=39130.0, market_cap_rank=2, query="TINY", price_change=5.0)
        fh.write(json.dumps(tiny) + "\n")


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory, tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("ui-data") / "data"
    _history(data)
    return start_module_daemon(projects=projects, data_dir=data, slots=4, completed_cap=0)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def console() -> Iterator[ConsoleWatch]:
    watch = ConsoleWatch()
    yield watch
    assert watch.errors == [], "console errors: " + "\n".join(watch.errors)


@pytest.fixture
def page(browser: Any, console: ConsoleWatch) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = console.watch(context.new_page())
    tab.set_default_timeout(WAIT)
    yield tab
    context.close()


def ui(daemon: DaemonProcess, path: str = "") -> str:
    return f"{daemon.url}/ui/{path}"


def talk(daemon: DaemonProcess, stop_file: Path) -> str:
    return daemon.schedule(
        "talker", project="talk", payload=json.dumps({"until_file": str(stop_file)})
    )


def row(page: Any, job_id: str) -> Any:
    return page.locator(f'tr[data-id="{job_id}"]')


def test_root_redirects_to_the_overview_with_its_figures(page: Any, daemon: DaemonProcess) -> None:
    failed = daemon.schedule("fails")
    daemon.wait_status(failed, ("FAILED",))
    planned = daemon.schedule("items", when="every day at 03:00")
    try:
        page.goto(daemon.url + "/")
        assert page.url == ui(daemon)
        page.get_by_role("heading", name="Overview").wait_for()
        assert page.get_by_test_id("slots").inner_text() == "0 / 4"
        failures = page.get_by_role("region", name="Failures of the last 24 hours")
        entry = failures.get_by_role("listitem").filter(
            has=page.locator(f'a[href="jobs/{failed}"]')
        )
        assert "exit" in entry.inner_text()  # the reason the daemon recorded
        assert entry.get_by_role("link", name="log").get_attribute("href") == (
            f"jobs/{failed}?log=err#log"
        )
        upcoming = page.get_by_role("region", name="Next runs")
        assert upcoming.get_by_role("link", name="toy/items").get_attribute("href") == (
            f"jobs/{planned}"
        )
        assert "every day at 03:00" in upcoming.inner_text()
        health = page.get_by_role("region", name="Daemon")
        for label in ("Uptime", "CPU", "Memory", "Free disk (data)"):
            assert health.get_by_text(label, exact=True).count() == 1
        assert page.get_by_role("link", name="API", exact=True).get_attribute("href") == (
            "../openapi.json"
        )
        chart = page.get_by_role("img", name=re.compile("Runs ended per hour"))
        last_hour = chart.get_attribute("aria-label").rsplit(", ", 1)[1]
        assert int(last_hour) >= 1  # this hour: the failure at least
        shoot(page, "overview")
        background = "getComputedStyle(document.body).backgroundColor"
        assert page.evaluate(background) == "rgb(255, 255, 255)"
        page.emulate_media(color_scheme="dark")
        assert page.evaluate(background) == "rgb(18, 20, 23)"
        shoot(page, "overview-dark")
    finally:
        daemon.post("/cancel-job.json", data={"id": planned})


def test_push_run_and_watch_a_row_go_running_then_successful(
    page: Any, daemon: DaemonProcess, tmp_path: Path
) -> None:
    page.goto(ui(daemon, "projects"))
    archive = tmp_path / "pushed.zip"
    archive.write_bytes(
        zip_project(write_scrapy_project(tmp_path / "src", "pushed", {"s.py": PUSHED_SPIDERS}))
    )
    page.get_by_label("Project archive (.zip or .egg)").set_input_files(str(archive))
    page.get_by_role("button", name="Push", exact=True).click()
    reply = page.locator("#push-result")
    reply.get_by_text("Pushed project pushed: hello, world").wait_for()
    page.reload()
    page.get_by_role("table", name="Spiders of pushed").wait_for()
    shoot(page, "projects")
    page.get_by_role("button", name="Run pushed/hello now").click()
    page.locator("#flash").get_by_text("Started pushed/hello").wait_for()
    run_id = page.locator("#flash a").get_attribute("href").split("/")[-1]
    daemon.wait_status(run_id, ("SUCCESSFUL",))
    page.reload()
    spiders = page.get_by_role("table", name="Spiders of pushed")
    hello = spiders.get_by_role("row").filter(has_text="hello")
    assert "SUCCESSFUL" in hello.inner_text() and "never" not in hello.inner_text()
    assert "never" in spiders.get_by_role("row").filter(has_text="world").inner_text()
    page.get_by_role("button", name="Remove project pushed").click()
    confirm = page.get_by_role("dialog", name="Remove project pushed")
    assert "hello, world" in confirm.inner_text()
    confirm.get_by_role("button", name="Remove pushed").click()
    page.locator("#flash").get_by_text("Removed project pushed").wait_for()
    assert "pushed" not in daemon.get("/list-projects.json").json()["projects"]
    page.get_by_label("Project archive (.zip or .egg)").set_input_files(str(archive))
    page.get_by_role("button", name="Push", exact=True).click()
    reply.get_by_text("Pushed project pushed: hello, world").wait_for()

    page.goto(ui(daemon, "jobs"))
    page.evaluate("window.__loaded_once = true")
    stop = tmp_path / "stop"
    job_id = talk(daemon, stop)
    page.wait_for_selector(f'tr[data-id="{job_id}"][data-status="RUNNING"]')
    shoot(page, "jobs")
    stop.touch()
    page.wait_for_selector(f'tr[data-id="{job_id}"][data-status="SUCCESSFUL"]')
    assert page.evaluate("window.__loaded_once") is True, "the page was reloaded"


def _series(daemon: DaemonProcess, job_id: str) -> list[list[float]]:
    """The chart data the job page carries (uPlot's columns)."""
    page = daemon.get(f"/ui/jobs/{job_id}").text
    found = re.search(r'<script type="application/json" id="series">(.*?)</script>', page, re.S)
    assert found, "the job page carries no chart data"
    return json.loads(found.group(1))["data"]


def test_job_page_shows_the_tail_then_live_lines_and_marks_errors(
    page: Any, daemon: DaemonProcess, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    job_id = talk(daemon, stop)
    daemon.wait_log(job_id, "out tick 3")
    page.goto(ui(daemon, f"jobs/{job_id}"))
    log = page.get_by_role("log", name="Log err")
    log.get_by_text("an error to jump to").wait_for()
    first = int(page.evaluate("document.body.dataset.offset"))
    seen = log.locator("div", has_text="tick").count()
    # Lines the crawl writes after the page was rendered arrive over the stream.
    page.wait_for_function(
        "n => document.querySelectorAll('#logview div').length > n + 5",
        arg=log.locator("div").count(),
    )
    assert log.locator("div", has_text="tick").count() > seen
    assert log.locator("div.e", has_text="an error to jump to").count() == 1
    assert log.locator("div.w", has_text="a warning to highlight").count() == 1
    page.get_by_role("button", name="Jump to first error").click()
    assert page.get_by_label("Follow").is_checked() is False
    assert first > 0
    page.get_by_role("link", name=".out (print)").click()
    page.get_by_role("log", name="Log out").get_by_text("out tick 1", exact=True).wait_for()
    assert page.get_by_role("link", name="Download the full log").get_attribute("href") == (
        f"../get-log/data/{job_id}.out"
    )
    # The chart is sampled every few seconds: let the crawl live through three samples
    # (on a loaded machine the steps above may take less time than that).
    wait_until(
        lambda: len(_series(daemon, job_id)[0]),
        120,
        "three samples of the running crawl's counters",
        until=lambda n: n >= 3,
    )
    stop.touch()
    page.get_by_test_id("job-status").locator(".st-successful").wait_for()
    page.get_by_role("table", name="Field coverage").wait_for()
    # Opened after the end, the page still charts the counters over the job's life.
    page.reload()
    samples = page.evaluate("JSON.parse(document.getElementById('series').textContent).data")
    assert len(samples[0]) >= 3 and samples[1][-1] == 5  # the five items, at the end
    page.get_by_role("img", name="Items, requests and errors over time").locator(
        "canvas"
    ).first.wait_for()
    shoot(page, "job")


def test_cancel_a_running_job_from_its_row(
    page: Any, daemon: DaemonProcess, tmp_path: Path
) -> None:
    job_id = talk(daemon, tmp_path / "never")
    page.goto(ui(daemon, f"jobs?id={job_id}"))
    page.wait_for_selector(f'tr[data-id="{job_id}"][data-status="RUNNING"]')
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Cancel job {job_id}").click()
    page.get_by_text(f"Job {job_id} canceled").wait_for()
    assert daemon.job(job_id)["status"] == "CANCELED"
    page.wait_for_selector(f'tr[data-id="{job_id}"][data-status="CANCELED"]')
    assert page.get_by_role("button", name=f"Cancel job {job_id}").count() == 0


def test_copy_as_curl_gives_the_api_call(page: Any, daemon: DaemonProcess, tmp_path: Path) -> None:
    job_id = talk(daemon, tmp_path / "never")
    try:
        page.goto(ui(daemon, f"jobs?id={job_id[:13]}"))
        page.get_by_role("button", name=f"Copy cancel of {job_id} as curl").click()
        command = page.locator("#flash code").inner_text()
        assert command == f"curl -d id={job_id} {daemon.url}/cancel-job.json"
    finally:
        daemon.post("/cancel-job.json", data={"id": job_id})


BAD_REQUEST = "Failed to load resource: the server responded with a status of 400 (Bad Request)"


def test_page_and_filter_through_a_thousand_jobs(
    page: Any, console: ConsoleWatch, daemon: DaemonProcess
) -> None:
    page.goto(ui(daemon, "jobs"))
    page.get_by_label("Project").fill("hist")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/ui/jobs?status=failed&project=hist**")
    info = page.get_by_test_id("page-info")
    assert info.inner_text() == "Page 1 of 5 · 250 jobs"
    rows = page.get_by_role("table", name="Jobs").locator("tbody tr[data-id]")
    assert rows.count() == 50
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.status)")) == {"FAILED"}
    first_page = rows.evaluate_all("rs => rs.map(r => r.dataset.id)")
    page.get_by_role("link", name="Next").click()
    page.wait_for_url("**page=2**")
    assert info.inner_text() == "Page 2 of 5 · 250 jobs"
    second_page = rows.evaluate_all("rs => rs.map(r => r.dataset.id)")
    assert not set(first_page) & set(second_page)
    # The filters stay in the URL: the link opens the same page in a new tab.
    shared = page.context.new_page()
    shared.goto(page.url)
    assert shared.get_by_test_id("page-info").inner_text() == "Page 2 of 5 · 250 jobs"
    shared.close()
    page.goto(ui(daemon, "jobs?project=hist&spider=alpha&status=successful"))
    assert info.inner_text() == "Page 1 of 5 · 250 jobs"
    bad = ui(daemon, "jobs?project=hist&status=bogus")
    assert page.goto(bad).status == 400
    assert page.get_by_role("alert").inner_text() == "Unknown status 'bogus'"
    console.errors.remove(f"{bad}: {BAD_REQUEST}")  # the 400 itself, as asked for


def test_coins_list_and_a_coins_chart(page: Any, daemon: DaemonProcess) -> None:
    page.goto(ui(daemon, "coins"))
    table = page.get_by_role("table", name="Coins")
    btc = table.get_by_role("row").filter(has_text="Bitcoin")
    assert "$" in btc.inner_text() and "+1.25%" in btc.inner_text()
    assert btc.get_by_role("img", name="7-day price of BTC").count() == 1
    assert "$0.0₄3913" in table.get_by_role("row").filter(has_text="Tiny").inner_text()
    shoot(page, "coins")
    names = table.locator("tbody tr td:nth-child(2) a")
    assert names.all_inner_texts()[:2] == ["Bitcoin", "Tiny"]
    page.get_by_label("Sort").select_option("change")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**sort=change**")
    assert names.all_inner_texts()[:2] == ["Tiny", "Bitcoin"]
    page.get_by_label("Symbol or slug").fill("TINY")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**q=TINY**")
    assert table.get_by_role("row").count() == 2  # the header and Tiny
    page.goto(ui(daemon, "coins"))
    table.get_by_role("link", name="Bitcoin").click()
    page.get_by_role("heading", name="Bitcoin BTC").wait_for()
    chart = page.get_by_role("img", name="Price of BTC over 7d: 48 records")
    chart.locator("canvas").first.wait_for()
    page.get_by_role("link", name="24h").click()
    page.get_by_role("img", name="Price of BTC over 24h: 8 records").locator(
        "canvas"
    ).first.wait_for()
    shoot(page, "coin")


def test_eight_tabs_all_see_a_new_job(
    browser: Any, console: ConsoleWatch, daemon: DaemonProcess
) -> None:
    context = browser.new_context()
    try:
        tabs = []
        for _ in range(8):
            tab = console.watch(context.new_page())
            tab.set_default_timeout(WAIT)
            tab.goto(ui(daemon, "jobs"))
            tabs.append(tab)
        wait_until(
            lambda: [t.locator("#live").inner_text() for t in tabs],
            30,
            "one tab to hold the stream",
            until=lambda states: "live" in states,
        )
        job_id = daemon.schedule("items")
        for tab in tabs:
            tab.wait_for_selector(f'tr[data-id="{job_id}"]')
    finally:
        context.close()


def test_the_dashboard_works_behind_a_proxy_sub_path(page: Any, daemon: DaemonProcess) -> None:
    proxy = Proxy(daemon.port, "/deep/prefix")
    try:
        page.goto(proxy.url)
        assert page.url == proxy.url + "ui/"
        page.get_by_role("link", name="Jobs").click()
        page.wait_for_url(proxy.url + "ui/jobs")
        page.wait_for_function("document.getElementById('live').textContent == 'live'")
        job_id = daemon.schedule("items")
        page.wait_for_selector(f'tr[data-id="{job_id}"]')
        page.locator(f'tr[data-id="{job_id}"] a').first.click()
        page.wait_for_url(proxy.url + f"ui/jobs/{job_id}")
        api = page.get_by_role("link", name="API", exact=True).evaluate("a => a.href")
        assert api == proxy.url + "openapi.json"
        assert page.request.get(api).json()["openapi"].startswith("3.")
        page.goto("about:blank")
    finally:
        proxy.stop()


HIDE = """hidden => {
    Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_a_hidden_tab_gives_its_stream_back_and_catches_up_when_shown(
    page: Any, daemon: DaemonProcess
) -> None:
    page.goto(ui(daemon, "jobs"))
    page.wait_for_function("document.getElementById('live').textContent == 'live'")
    page.evaluate(HIDE, True)
    assert page.locator("#live").inner_text() == "paused"
    job_id = daemon.schedule("items")
    daemon.wait_status(job_id, ("SUCCESSFUL",))
    assert row(page, job_id).count() == 0  # nothing came while hidden
    page.evaluate(HIDE, False)
    page.wait_for_selector(f'tr[data-id="{job_id}"][data-status="SUCCESSFUL"]')
    page.wait_for_function("document.getElementById('live').textContent == 'live'")


# -- schedules, re-run, bulk cancel -------------------------------------------------------


@pytest.fixture
def tokyo_page(browser: Any, console: ConsoleWatch) -> Iterator[Any]:
    """A browser in another zone than the daemon's (UTC)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Tokyo")
    tab = console.watch(context.new_page())
    tab.set_default_timeout(WAIT)
    yield tab
    context.close()


def test_a_when_spec_is_checked_as_you_type_then_the_schedule_saved(
    tokyo_page: Any, daemon: DaemonProcess
) -> None:
    page = tokyo_page
    daemon.get("/list-spiders.json", params={"project": "toy"})  # lists the local project
    page.goto(ui(daemon, "projects"))
    page.get_by_role("link", name="Schedule toy/items").click()
    page.get_by_role("heading", name="New schedule").wait_for()
    form = page.get_by_role("form", name="New schedule")
    assert form.get_by_label("Spider").input_value() == "items"
    preview = page.get_by_role("status", name="When preview")
    form.get_by_label("When", exact=True).fill("every blue moon")
    expected = daemon.get("/preview-when.json", params={"when": "every blue moon"}).json()["msg"]
    assert preview.get_by_role("alert").inner_text() == expected  # the server's own words
    form.get_by_label("When", exact=True).fill("every day at 03:00")
    times = preview.get_by_role("list", name="Next fire times").get_by_role("listitem")
    times.nth(4).wait_for()
    assert times.count() == 5
    runs = daemon.get("/preview-when.json", params={"when": "every day at 03:00"}).json()
    shown = [t.get_attribute("datetime") for t in times.locator("time").all()]
    assert shown == [run["utc"] for run in runs["next_runs"]]
    assert "12:00:00 Asia/Tokyo" in times.first.inner_text()
    form.get_by_label("Argument name").first.fill("coins")
    form.get_by_label("Argument value").first.fill("BTC")
    form.get_by_role("button", name="Add a setting").click()
    assert form.get_by_label("Setting name").count() == 3
    form.get_by_label("Setting name").first.fill("DOWNLOAD_DELAY")
    form.get_by_label("Setting value").first.fill("0.5")
    form.get_by_role("button", name="Save schedule").click()
    page.locator("#flash").get_by_text("Scheduled toy/items: every day at 03:00").wait_for()
    job_id = page.locator("#flash a").get_attribute("href").split("/")[-1]
    try:
        job = daemon.job(job_id)
        assert job["payload"] == '{"coins": "BTC"}' and job["settings"] == ["DOWNLOAD_DELAY"]
        entry = row(page, job_id)
        entry.wait_for()  # the list updated live
        assert "every day at 03:00" in entry.inner_text()
        # Next run in the daemon's zone and in the browser's.
        assert "03:00:00 UTC" in entry.inner_text() and "12:00:00 JST" in entry.inner_text()
        shoot(page, "schedules")
    finally:
        daemon.post("/cancel-job.json", data={"id": job_id})


def _last_run(page: Any, job_id: str) -> str | None:
    link = row(page, job_id).get_by_test_id("last-run").locator("a")
    return link.get_attribute("href") if link.count() else None


def test_pause_and_resume_a_schedule_and_it_does_not_fire_while_paused(
    page: Any, daemon: DaemonProcess
) -> None:
    job_id = daemon.schedule("items", when="every 2 seconds")
    try:
        page.goto(ui(daemon, "schedules"))
        first = wait_until(lambda: _last_run(page, job_id), 60, "the schedule to fire")
        page.get_by_role("button", name=f"Pause {job_id}").click()
        page.locator("#flash").get_by_text("Paused toy/items").wait_for()
        page.wait_for_selector(f'tr[data-id="{job_id}"][data-paused="yes"]')
        assert daemon.job(job_id)["paused"] is True
        fired = _last_run(page, job_id)
        time.sleep(6)  # three fire times pass while paused
        page.reload()
        assert _last_run(page, job_id) == fired, "it fired while paused"
        assert row(page, job_id).get_by_text("paused", exact=True).count() == 1
        shoot(page, "schedules-paused")
        page.get_by_role("button", name=f"Resume {job_id}").click()
        page.wait_for_selector(f'tr[data-id="{job_id}"][data-paused="no"]')
        wait_until(
            lambda: _last_run(page, job_id),
            60,
            "the resumed schedule to fire again",
            until=lambda last: last not in (fired, first),
        )
    finally:
        daemon.post("/cancel-job.json", data={"id": job_id})


def test_rerun_a_finished_job_from_its_row(page: Any, daemon: DaemonProcess) -> None:
    old = daemon.schedule("items")
    daemon.wait_status(old, ("SUCCESSFUL",))
    page.goto(ui(daemon, f"jobs?id={old}"))
    page.get_by_role("button", name=f"Re-run job {old}").click()
    page.locator("#flash").get_by_text(f"Re-ran job {old[:8]}").wait_for()
    new = page.locator("#flash a").get_attribute("href").split("/")[-1]
    assert new != old
    done = daemon.wait_status(new, ("SUCCESSFUL",))
    assert (done["project"], done["spider"], done["payload"]) == ("toy", "items", "{}")


def test_bulk_cancel_of_the_selected_jobs(page: Any, daemon: DaemonProcess, tmp_path: Path) -> None:
    running = talk(daemon, tmp_path / "never")
    timed = daemon.schedule("items", when="every day at 03:00")
    spared = talk(daemon, tmp_path / "never2")
    other = None
    try:
        page.goto(ui(daemon, "jobs?status=active"))
        page.wait_for_selector(f'tr[data-id="{running}"][data-status="RUNNING"]')
        page.get_by_label(f"Select job {running}").check()
        page.get_by_label(f"Select job {timed}").check()
        page.evaluate("window.__loaded_once = true")
        # A live refresh of the rows meanwhile; a schedule stays active, so its row stays
        # on this page (a run of `items` may end before the refresh shows it).
        other = daemon.schedule("items", when="every day at 04:00")
        page.wait_for_selector(f'tr[data-id="{other}"]')
        assert page.get_by_label(f"Select job {running}").is_checked()  # kept
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Cancel selected").click()
        page.locator("#flash").get_by_text("Canceled 2 of 2 selected jobs").wait_for()
        for job_id in (running, timed):
            assert daemon.job(job_id)["status"] == "CANCELED"
        # Only active jobs are listed: the canceled rows leave the page, live.
        page.wait_for_selector(f'tr[data-id="{running}"]', state="detached")
        assert row(page, spared).count() == 1
        assert daemon.job(spared)["status"] == "RUNNING"
        assert page.evaluate("window.__loaded_once") is True
    finally:
        for job_id in (running, timed, spared, other):
            if job_id is not None:
                daemon.post("/cancel-job.json", data={"id": job_id})
