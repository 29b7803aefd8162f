"""The scrapy-do API refuses what it would otherwise silently drop or guess: unknown
parameters and projects, a `coin` schedule without coins, a push whose guessed name would
replace another project; and list-jobs pages say how many jobs there are in all.

A real daemon on a random port with the toy project and the repo's own coinspiders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon.api.http import ApiError, check_params
from daemon.api.scrapydo import page_tail
from daemon.archive import ArchiveLimits, read_archive
from tests.daemon_support import (
    ROOT,
    DaemonFactory,
    DaemonProcess,
    toy_projects,
    write_scrapy_project,
    zip_project,
)

SPIDER = """
import scrapy


class {cls}(scrapy.Spider):
    name = "{name}"
"""
# Never fires during a test: a schedule is created, nothing is crawled.
LATER = "every day"


def toy_and_coinspiders(work: Path) -> dict[str, dict[str, Any]]:
    return {**toy_projects(work), "coinspiders": {"path": str(ROOT)}}


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory) -> DaemonProcess:
    return start_module_daemon(toy_and_coinspiders)


def refused(rsp, code: int = 400) -> str:
    assert rsp.status_code == code, rsp.text
    body = rsp.json()
    assert body["status"] == "error"
    return body["msg"]


def project_zip(folder: Path, name: str, spider: str, deploy: bool) -> bytes:
    """A project `name` with one spider; its scrapy.cfg names it in [deploy] or not."""
    write_scrapy_project(folder, name, {"one.py": SPIDER.format(cls="One", name=spider)})
    cfg = f"[settings]\ndefault = {name}.settings\n"
    if deploy:
        cfg += f"\n[deploy]\nproject = {name}\n"
    (folder / "scrapy.cfg").write_text(cfg)
    return zip_project(folder)


def active_ids(daemon: DaemonProcess) -> set[str]:
    page = daemon.get("/list-jobs.json", params={"status": "ACTIVE", "limit": 10000}).json()
    return {j["identifier"] for j in page["jobs"]}


# -- item 7: unknown parameters ---------------------------------------------------------


def test_check_params_names_the_unknown_and_the_accepted() -> None:
    class Request:
        args = {b"coins": [b"BTC"], b"project": [b"toy"], b"priority": [b"5"]}

    with pytest.raises(ApiError) as caught:
        check_params(Request(), ("project", "spider", "payload"), hint="use payload")
    assert caught.value.message == (
        "Unknown parameter(s): coins, priority; accepted: project, spider, payload (use payload)"
    )
    Request.args = {b"project": [b"toy"]}
    check_params(Request(), ("project", "spider"))  # nothing to refuse


def test_schedule_job_refuses_fields_meant_for_the_payload(daemon: DaemonProcess) -> None:
    before = active_ids(daemon)
    fields = {"project": "toy", "spider": "items", "when": LATER}
    msg = refused(daemon.post("/schedule-job.json", data={**fields, "coins": "BTC"}))
    assert msg.startswith("Unknown parameter(s): coins; accepted: project, spider, when")
    assert "payload" in msg and "setting" in msg
    msg = refused(daemon.post("/schedule-job.json", files={**fields, "priority": "5"}))
    assert "Unknown parameter(s): priority" in msg
    assert active_ids(daemon) == before  # nothing was scheduled
    # What real clients send still works: repeated settings, scrapy-do-cl's fields.
    rsp = daemon.post(
        "/schedule-job.json",
        data={**fields, "description": "", "payload": "{}", "setting": ["A=1", "B=2"]},
    )
    assert rsp.status_code == 200, rsp.text
    daemon.post("/cancel-job.json", data={"id": rsp.json()["identifier"]})


@pytest.mark.parametrize(
    ("method", "path", "fields", "unknown"),
    [
        ("GET", "/status.json", {"verbose": "1"}, "verbose"),
        ("GET", "/list-projects.json", {"project": "toy"}, "project"),
        ("GET", "/list-spiders.json", {"project": "toy", "name": "toy"}, "name"),
        ("GET", "/list-jobs.json", {"status": "ACTIVE", "page": "2"}, "page"),
        ("GET", "/list-jobs.json", {"status": "ACTIVE", "projects": "toy"}, "projects"),
        ("POST", "/cancel-job.json", {"id": "0" * 32, "force": "1"}, "force"),
        ("POST", "/remove-project.json", {"name": "toy", "project": "toy"}, "project"),
        ("POST", "/push-project.json", {"archive": "x", "project": "toy"}, "project"),
        ("GET", "/get-log/data/00000000-0000-4000-8000-000000000000.out", {"tail": "1"}, "tail"),
    ],
)
def test_every_endpoint_refuses_unknown_parameters(
    daemon: DaemonProcess, method: str, path: str, fields: dict[str, str], unknown: str
) -> None:
    rsp = daemon.get(path, params=fields) if method == "GET" else daemon.post(path, data=fields)
    msg = refused(rsp)
    assert msg.startswith(f"Unknown parameter(s): {unknown}; accepted: "), msg


# -- item 7: unknown projects -----------------------------------------------------------


def test_unknown_project_is_404_everywhere(daemon: DaemonProcess, tmp_path: Path) -> None:
    msg = refused(
        daemon.get("/list-jobs.json", params={"status": "ACTIVE", "project": "nosuch"}), 404
    )
    assert msg == "Unknown project: nosuch"
    assert "nosuch" in refused(daemon.get("/list-spiders.json?project=nosuch"), 404)
    rsp = daemon.post(
        "/schedule-job.json", data={"project": "nosuch", "spider": "items", "when": "now"}
    )
    assert "nosuch" in refused(rsp, 404)
    assert "nosuch" in refused(daemon.post("/remove-project.json", data={"name": "nosuch"}), 404)
    # A known project with no such jobs is an empty page, not an error.
    rsp = daemon.get("/list-jobs.json", params={"status": "CANCELED", "project": "coinspiders"})
    assert rsp.status_code == 200 and rsp.json()["jobs"] == []
    # A removed project whose jobs the store remembers still lists them.
    archive = project_zip(tmp_path / "gone", "gone", "once", deploy=True)
    assert daemon.post("/push-project.json", files={"archive": archive}).status_code == 200
    job_id = daemon.schedule("once", project="gone")
    daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"))
    assert daemon.post("/remove-project.json", data={"name": "gone"}).status_code == 200
    page = daemon.get("/list-jobs.json", params={"status": "COMPLETED", "project": "gone"})
    assert page.status_code == 200, page.text
    assert [j["identifier"] for j in page.json()["jobs"]] == [job_id]
    # No job of that status left: still the project's (empty) history, not a 404.
    page = daemon.get("/list-jobs.json", params={"status": "RUNNING", "project": "gone"})
    assert page.status_code == 200 and page.json()["jobs"] == []


# -- item 7: JSON bodies ----------------------------------------------------------------


def test_schedule_job_takes_a_json_body(daemon: DaemonProcess) -> None:
    body = {
        "project": "toy",
        "spider": "items",
        "when": LATER,
        "description": "from JSON",
        "payload": {"coins": ["BTC", "ETH"]},
        "setting": {"TOY_A": "1", "TOY_B": 2},
        "max_runtime": 30,
    }
    rsp = daemon.post("/schedule-job.json", json=body)
    assert rsp.status_code == 200, rsp.text
    job = daemon.job(rsp.json()["identifier"])
    assert json.loads(job["payload"]) == {"coins": ["BTC", "ETH"]}
    assert (job["description"], job["settings"], job["max_runtime"]) == (
        "from JSON",
        ["TOY_A", "TOY_B"],
        30.0,
    )
    assert daemon.post("/cancel-job.json", json={"id": job["identifier"]}).status_code == 200
    # JSON sent with curl -d (labelled as a form) is read as JSON too.
    rsp = daemon.post(
        "/schedule-job.json",
        data=json.dumps({**body, "payload": '{"coins": "BTC"}', "setting": ["TOY_A=1"]}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert rsp.status_code == 200, rsp.text
    job = daemon.job(rsp.json()["identifier"])
    assert (job["payload"], job["settings"]) == ('{"coins": "BTC"}', ["TOY_A"])
    daemon.post("/cancel-job.json", data={"id": job["identifier"]})


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"coins": "BTC"}, "Unknown parameter(s): coins"),
        ({"description": 5}, "description must be a string"),
        ({"payload": ["BTC"]}, "payload must be a JSON object"),
        ({"setting": [1]}, "setting must be a list of KEY=VALUE strings or an object"),
        ({"max_runtime": True}, "max_runtime must be a number"),
    ],
)
def test_a_bad_json_body_is_refused_by_field(
    daemon: DaemonProcess, body: dict, needle: str
) -> None:
    fields = {"project": "toy", "spider": "items", "when": LATER, **body}
    assert needle in refused(daemon.post("/schedule-job.json", json=fields))


def test_json_bodies_that_cannot_be_read(daemon: DaemonProcess) -> None:
    post = daemon.post
    headers = {"Content-Type": "application/json"}
    assert "not valid JSON" in refused(post("/schedule-job.json", data="{", headers=headers))
    msg = refused(post("/schedule-job.json", data='["toy"]', headers=headers))
    assert "must be an object" in msg
    msg = refused(post("/push-project.json", json={"archive": "x"}))
    assert "-F archive=@" in msg


# -- item 7: a coin schedule without coins ----------------------------------------------


def test_coin_schedule_without_coins_is_refused_when_scheduled(daemon: DaemonProcess) -> None:
    before = active_ids(daemon)
    for payload in ("{}", '{"coins": ""}', '{"coins": []}', '{"coin": "BTC"}'):
        rsp = daemon.post(
            "/schedule-job.json",
            data={"project": "coinspiders", "spider": "coin", "when": LATER, "payload": payload},
        )
        msg = refused(rsp)
        assert msg.startswith("coinspiders/coin cannot run with this payload: no coins given")
    assert active_ids(daemon) == before
    ok = daemon.post(
        "/schedule-job.json",
        json={"project": "coinspiders", "spider": "coin", "when": LATER, "payload": {"coins": [1]}},
    )
    assert ok.status_code == 200, ok.text
    daemon.post("/cancel-job.json", data={"id": ok.json()["identifier"]})


# -- item 8: a guessed project name -----------------------------------------------------


def test_archive_says_where_the_name_came_from(tmp_path: Path) -> None:
    guessed = read_archive(project_zip(tmp_path / "a", "alpha", "one", False), ArchiveLimits())
    named = read_archive(project_zip(tmp_path / "b", "beta", "one", True), ArchiveLimits())
    assert (guessed.name, guessed.name_guessed, guessed.settings_module) == (
        "alpha",
        True,
        "alpha.settings",
    )
    assert (named.name, named.name_guessed) == ("beta", False)


def test_push_with_a_guessed_name_does_not_replace_a_project(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    first = project_zip(tmp_path / "v1", "guessy", "first", deploy=True)
    rsp = daemon.post("/push-project.json", files={"archive": first})
    assert rsp.status_code == 200, rsp.text
    assert (rsp.json()["name_from"], rsp.json()["replaced"]) == ("deploy", False)

    other = project_zip(tmp_path / "v2", "guessy", "second", deploy=False)
    msg = refused(daemon.post("/push-project.json", files={"archive": other}), 409)
    assert "no [deploy] project in scrapy.cfg" in msg
    assert "'guessy' was guessed from the settings module guessy.settings" in msg
    assert "replace=true" in msg
    spiders = daemon.get("/list-spiders.json?project=guessy").json()["spiders"]
    assert spiders == ["first"]  # untouched

    assert "replace" in refused(
        daemon.post("/push-project.json", files={"archive": other}, data={"replace": "maybe"})
    )
    rsp = daemon.post("/push-project.json", files={"archive": other}, data={"replace": "true"})
    assert rsp.status_code == 200, rsp.text
    assert rsp.json() == {
        "status": "ok",
        "name": "guessy",
        "spiders": ["second"],
        "name_from": "settings",
        "replaced": True,
    }
    # A [deploy] project replaces as before; a new project may have a guessed name.
    assert daemon.post("/push-project.json", files={"archive": first}).json()["replaced"]
    fresh = project_zip(tmp_path / "v3", "freshguess", "new", deploy=False)
    rsp = daemon.post("/push-project.json", files={"archive": fresh})
    assert rsp.status_code == 200, rsp.text
    assert (rsp.json()["name_from"], rsp.json()["replaced"]) == ("settings", False)
    for name in ("guessy", "freshguess"):
        daemon.post("/remove-project.json", data={"name": name})


# -- item 12: list-jobs totals ----------------------------------------------------------


def test_page_tail() -> None:
    assert page_tail(5, 0, 2) == ', "total": 5, "next_offset": 2'
    assert page_tail(5, 4, 1) == ', "total": 5, "next_offset": null'
    assert page_tail(5, 9, 0) == ', "total": 5, "next_offset": null'
    assert page_tail(0, 0, 0) == ', "total": 0, "next_offset": null'


def test_list_jobs_pages_carry_the_total_and_the_next_offset(daemon: DaemonProcess) -> None:
    project = "toy"
    ids = [
        daemon.post(
            "/schedule-job.json",
            data={"project": project, "spider": "sleepy", "when": LATER, "description": "pg"},
        ).json()["identifier"]
        for _ in range(5)
    ]
    params = {"status": "SCHEDULED", "project": project, "spider": "sleepy"}
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = daemon.get("/list-jobs.json", params={**params, "limit": 2, "offset": offset})
        body = page.json()
        assert body["total"] == 5, body
        seen += [j["identifier"] for j in body["jobs"]]
        offset = body["next_offset"]
    assert seen == ids[::-1]
    # The key order is scrapy-do's, the new keys after "jobs".
    text = daemon.get("/list-jobs.json", params={**params, "limit": 5}).text
    assert text.startswith('{"status": "ok", "jobs": [')
    assert text.endswith('], "total": 5, "next_offset": null}\n')
    empty = daemon.get("/list-jobs.json", params={**params, "limit": 0}).json()
    assert (empty["jobs"], empty["total"], empty["next_offset"]) == ([], 5, None)
    for job_id in ids:
        daemon.post("/cancel-job.json", data={"id": job_id})
