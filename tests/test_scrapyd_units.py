"""The scrapyd API's pure parts: replies (checked against scrapyd 1.6.0's captured
bytes), parameters, version names and order, eggs, spider arguments, listjobs shapes."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from daemon.api.scrapyd import eggs, params, replies, shape, versions
from daemon.archive import ArchiveLimits, read_archive
from daemon.launcher import crawl_args
from daemon.spider_args import crawl_arguments, read_scrapyd_payload, scrapyd_payload
from tests.scrapyd_support import make_egg, write_egg_project

FIXTURE = Path(__file__).parent / "fixtures" / "scrapyd-1.6.0-replies.json"
CAPTURED = json.loads(FIXTURE.read_text())


def _captured(method: str, path: str, data: dict[str, str]) -> str:
    for row in CAPTURED:
        if (row["method"], row["path"], row["data"]) == (method, path, data):
            return row["body"]
    raise KeyError((method, path, data))


def _message_of(exc: replies.ScrapydError) -> str:
    return replies.error_body(exc.message, "NODE").decode()


@pytest.mark.parametrize(
    ("request_", "made"),
    [
        (("POST", "/schedule.json", {}), lambda: replies.required("project")),
        (("POST", "/cancel.json", {"project": "toy"}), lambda: replies.required("job")),
        (("POST", "/schedule.json", {"project": "nope", "spider": "echo"}),
         lambda: replies.project_not_found("nope")),
        (("POST", "/schedule.json", {"project": "toy", "spider": "nope"}),
         lambda: replies.spider_not_found("nope")),
        (("POST", "/schedule.json", {"project": "toy", "spider": "echo", "_version": "9.9"}),
         lambda: replies.version_not_found("9.9")),
        (("GET", "/listversions.json", {"project": "../p"}), lambda: replies.traversal("../p")),
        (("GET", "/schedule.json", {}), lambda: replies.unsupported_method(["POST"])),
        (("POST", "/addversion.json", {"project": "toy", "version": "2", "egg": "not a zip"}),
         lambda: replies.ScrapydError(replies.EGG_NOT_ZIP)),
    ],
)  # fmt: skip
def test_error_bodies_are_scrapyds_bytes(request_, made):
    assert _message_of(made()) == _captured(*request_)


def test_ok_body_puts_status_and_node_name_after_the_data():
    body = replies.ok_body({"prevstate": None}, "NODE").decode()
    assert body == _captured("POST", "/cancel.json", {"project": "toy", "job": "abc"})
    listjobs = replies.ok_body({"pending": [], "running": [], "finished": []}, "NODE")
    assert listjobs.decode() == _captured("GET", "/listjobs.json", {})
    # scrapyd's encoder escapes non-ASCII text.
    assert (
        replies.ok_body({"x": "é"}, "n") == b'{"x": "\\u00e9", "status": "ok", "node_name": "n"}\n'
    )


def test_allowed_methods_match_scrapyds_allow_headers():
    assert replies.allowed_methods(["POST"]) == "OPTIONS, HEAD, POST"
    assert replies.allowed_methods(["GET"]) == "OPTIONS, HEAD, GET"
    options = [r for r in CAPTURED if r["method"] == "OPTIONS"]
    assert {r["headers"]["Allow"] for r in options} == {"OPTIONS, HEAD, POST", "OPTIONS, HEAD, GET"}


def test_traversal_names_are_the_ones_scrapyd_refuses():
    assert replies.is_traversal("../p") and replies.is_traversal("..")
    assert replies.is_traversal("a/b") and replies.is_traversal("a\\b")
    assert not replies.is_traversal("toy") and not replies.is_traversal("..a")


def test_params_in_order_popped_and_converted_like_scrapyd():
    args = {b"project": [b"toy"], b"priority": [b"high"], b"word": [b"x", b"y"]}
    assert params.take(args, "project") == "toy"
    with pytest.raises(replies.ScrapydError) as info:
        params.take(args, "priority", optional=True, convert=float)
    assert _message_of(info.value) == _captured(
        "POST", "/schedule.json", {"project": "toy", "spider": "echo", "priority": "high"}
    )
    assert params.rest(args) == {"word": "x"}  # first value of what is left
    with pytest.raises(replies.ScrapydError, match="'spider' parameter is required"):
        params.take(args, "spider")
    with pytest.raises(replies.ScrapydError, match="project is invalid: 'utf-8' codec"):
        params.take({b"project": [b"\xff"]}, "project")
    assert params.take_all({b"setting": [b"A=1", b"B=2"]}, "setting") == ["A=1", "B=2"]


def test_version_names_and_order():
    assert versions.listed_name("1.0") == "1_0"
    assert versions.listed_name("r23-a.b/c") == "r23-a_b_c"
    assert versions.same_version("1.0", "1_0") and versions.same_version("1.0", "1.0")
    assert not versions.same_version("1.0", "1.00")
    assert versions.sort_versions(["1_10", "1_9", "1_0", "2"]) == ["1_0", "1_9", "1_10", "2"]
    assert versions.sort_versions(["1733217000", "999"]) == ["999", "1733217000"]
    # Not all versions (git hashes): digits still compare as numbers.
    assert versions.sort_versions(["r10", "r9", "abc"]) == ["abc", "r9", "r10"]


def test_settings_module_from_the_scrapy_entry_point():
    assert eggs.settings_module("[scrapy]\nsettings = toy.settings\n") == "toy.settings"
    with pytest.raises(eggs.EggError, match="no 'scrapy' entry point"):
        eggs.settings_module("[console_scripts]\nx = y:z\n")
    with pytest.raises(eggs.EggError, match="not a module name"):
        eggs.settings_module("[scrapy]\nsettings = ../evil\n")


def test_an_egg_becomes_a_project_archive_the_store_accepts(tmp_path):
    egg = make_egg(write_egg_project(tmp_path / "src", "eggy"), "eggy")
    archive = eggs.egg_to_project(egg, "eggy", "1.0", ArchiveLimits())
    checked = read_archive(archive, ArchiveLimits())
    assert checked.name == "eggy"
    names = {str(m.path) for m in checked.members}
    assert "eggy/spiders/echo.py" in names
    assert not any(n.startswith("EGG-INFO") for n in names)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        cfg = zf.read("scrapy.cfg").decode()
    assert "default = eggy.settings" in cfg
    assert eggs.version_of(cfg) == "1.0"
    assert eggs.version_of("[settings]\ndefault = x.settings\n") is None


def test_an_egg_without_entry_point_or_with_a_link_is_refused(tmp_path):
    project = write_egg_project(tmp_path / "src", "eggy")
    with pytest.raises(eggs.EggError, match="no EGG-INFO"):
        eggs.egg_to_project(
            make_egg(project, "eggy", entry_point=False), "eggy", "1", ArchiveLimits()
        )
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(make_egg(project, "eggy"))) as src,
        zipfile.ZipFile(buf, "w") as zf,
    ):
        for info in src.infolist():
            zf.writestr(info, src.read(info))
        link = zipfile.ZipInfo("eggy/link")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    archive = eggs.egg_to_project(buf.getvalue(), "eggy", "1", ArchiveLimits())
    from daemon.archive import ArchiveError

    with pytest.raises(ArchiveError, match="symbolic link"):
        read_archive(archive, ArchiveLimits())


def test_an_egg_expanding_past_the_cap_stops_at_the_cap(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("EGG-INFO/entry_points.txt", "[scrapy]\nsettings = b.settings\n")
        zf.writestr("b/big.py", b"#" * (2 * 1024 * 1024))
    limits = ArchiveLimits(max_unpacked_bytes=1024 * 1024, max_file_bytes=10 * 1024 * 1024)
    from daemon.archive import ArchiveError

    with pytest.raises(ArchiveError, match="expands beyond"):
        eggs.egg_to_project(buf.getvalue(), "b", "1", limits)


def test_scrapyd_arguments_run_as_separate_spider_arguments():
    payload = scrapyd_payload({"word": "hi there", "n": "2"}, "1.0")
    assert read_scrapyd_payload(payload) == ({"word": "hi there", "n": "2"}, "1.0")
    assert crawl_arguments(payload) == ["-a", "word=hi there", "-a", "n=2"]
    args = crawl_args("echo", "id", Path("/tmp"), {}, payload)
    assert args[-4:] == ["-a", "word=hi there", "-a", "n=2"]
    # scrapy-do's payload still goes as one argument.
    assert crawl_arguments('{"a": 1}') == ["-a", 'payload={"a": 1}']
    assert crawl_arguments("{}") == []
    assert read_scrapyd_payload('{"_scrapyd": {"args": {"a": 1}}}') is None


def test_listjobs_entries_carry_scrapyds_keys_then_args_and_settings():
    tz = ZoneInfo("UTC")
    job = SimpleNamespace(
        id="j1", project="p", spider="s", payload=scrapyd_payload({"a": "1"}, None),
        settings={"K": "V"}, pid=42, started=0.5, finished=61.25,
    )  # fmt: skip
    pending = shape.job_entry(job, "pending", tz, "")
    assert list(pending) == ["id", "project", "spider", "version", "settings", "args"]
    running = shape.job_entry(job, "running", tz, "/scrapyd")
    assert running["pid"] == 42 and running["start_time"] == "1970-01-01 00:00:00.500000"
    assert running["log_url"] == "/scrapyd/logs/p/s/j1.log"
    finished = shape.job_entry(job, "finished", tz, "")
    assert finished["end_time"] == "1970-01-01 00:01:01.250000"
    assert finished["args"] == {"a": "1"} and finished["settings"] == {"K": "V"}
    scrapydo = SimpleNamespace(**{**vars(job), "payload": '{"x": 1}', "started": None})
    assert shape.job_entry(scrapydo, "running", tz, "")["args"] == {"payload": '{"x": 1}'}
    assert shape.job_entry(scrapydo, "running", tz, "")["log_url"] is None


def test_page_helpers_escape_and_format():
    from daemon.api.scrapyd import html

    tz = ZoneInfo("UTC")
    assert shape.seconds_time(3661.9, tz) == "1970-01-01 01:01:01"
    assert shape.runtime(10.0, 3671.5) == "1:01:01" and shape.runtime(None, 1.0) is None
    row = html.job_row(
        "/p", {"project": "<x>", "spider": "s", "id": "j", "log_url": "/l"}, "pending"
    )
    assert "<td>&lt;x&gt;</td>" in row and 'href="/p/l"' in row and 'action="/p/cancel.json"' in row
    assert 'href="a%20b/"' in html.listing("t", [("a b", True)]).decode()
