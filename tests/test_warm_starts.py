"""Warm starts (issue 14): crawls forked from a zygote behave as cold `scrapy crawl`s.

Each behaviour is checked for warm and for cold daemons (`warm: true` / `warm: false`),
with real daemons, real zygotes and real Scrapy crawls. A warm test first proves its
crawl was forked from the zygote (its parent is the zygote status.json names), so a
silent fallback to cold starts cannot pass for a warm start.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from daemon.launcher import find_crawl_process
from tests.cmc_server import CMCServer
from tests.daemon_support import (
    ROOT,
    DaemonFactory,
    DaemonProcess,
    pid_alive,
    write_scrapy_project,
    zip_project,
)
from tests.waiting import wait_until

WARM_SPIDERS = """
import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import scrapy

from {name}.version import VERSION

#: Module state a crawl changes; a later crawl of the same zygote must not see it.
SEEN = []

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"


def _manifest(spider, reason):
    folder = Path(spider.settings.get("DATA_DIR")) / spider.settings.get("JOB_ID")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.json").write_text(json.dumps({{"close_reason": reason, "succeeded": True}}))


class Probe(scrapy.Spider):
    '''Says what it sees (its parent, reactor, code version, state a crawl before may
    have left), leaves state behind, and ends when its until_file appears.'''

    name = "probe"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if json.loads(getattr(self, "payload", "{{}}")).get("fail_init"):
            raise ValueError("told to fail in __init__")

    async def start(self):
        from twisted.internet import reactor

        args = json.loads(getattr(self, "payload", "{{}}"))
        seen = {{
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "reactor": type(reactor).__name__,
            "version": VERSION,
            "env": os.environ.get("WARM_LEAK"),
            "module": list(SEEN),
            "job": os.environ.get("COINSPIDERS_JOB_ID"),
        }}
        print("PROBE", json.dumps(seen), flush=True)
        os.environ["WARM_LEAK"] = "left by a crawl"
        SEEN.append("left by a crawl")
        n = 0
        if args.get("until_file"):
            while not Path(args["until_file"]).exists():
                if args.get("stream"):
                    yield {{"n": n, "name": "" if n % 2 else "coin"}}
                    n += 1
                await asyncio.sleep(0.05)
        if args.get("exit"):
            os._exit(int(args["exit"]))
        yield {{"version": VERSION}}

    def closed(self, reason):
        _manifest(self, reason)


class Tree(scrapy.Spider):
    '''Ignores SIGTERM, with a child in its group and a grandchild in a session of its
    own that both ignore it too.'''

    name = "tree"

    async def start(self):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        inside = subprocess.Popen([sys.executable, "-c", STUBBORN])
        outside = subprocess.Popen([sys.executable, "-c", STUBBORN], start_new_session=True)
        print("TREE", os.getpid(), inside.pid, outside.pid, flush=True)
        await asyncio.sleep(300)
        yield {{}}
"""

# Imports in `scrapy list` (no job tag in its environment), fails in crawls and zygotes.
FRAGILE_SPIDER = """
import os

import scrapy

if os.environ.get("COINSPIDERS_JOB_ID"):
    import module_that_is_not_there_at_all  # noqa: F401


class Fragile(scrapy.Spider):
    name = "fragile"

    async def start(self):
        yield {"ok": 1}
"""

FRAGILE = {"fragile.py": FRAGILE_SPIDER}
EPOLL = 'TWISTED_REACTOR = "twisted.internet.epollreactor.EPollReactor"\n'


def write_warm_project(folder: Path, name: str = "warmy", version: str = "1", extra: str = ""):
    write_scrapy_project(
        folder,
        name,
        {"probe.py": WARM_SPIDERS.format(name=name)},
    )
    (folder / name / "version.py").write_text(f"VERSION = {version!r}\n")
    if extra:
        with (folder / name / "settings.py").open("a") as fh:
            fh.write(extra)
    return folder


def warm_projects(work: Path) -> dict[str, dict[str, Any]]:
    return {
        "warmy": {"path": str(write_warm_project(work / "warmy"))},
        "epolly": {"path": str(write_warm_project(work / "epolly", "epolly", extra=EPOLL))},
        "fragile": {
            "path": str(write_scrapy_project(work / "fragile", "fragile", {"f.py": FRAGILE_SPIDER}))
        },
    }


MODES = {"warm": True, "cold": False}


def start_warm_daemon(
    start: DaemonFactory, mode: str, projects: Any = warm_projects, **config: Any
) -> DaemonProcess:
    settings = {"slots": 3, "cancel_grace": 1, "warm": MODES[mode], **config}
    return start(projects, **settings)


def status(daemon: DaemonProcess) -> dict[str, Any]:
    rsp = daemon.get("/status.json")
    assert rsp.status_code == 200, rsp.text
    return rsp.json()


def probe(daemon: DaemonProcess, job_id: str) -> dict[str, Any]:
    text = daemon.wait_log(job_id, "PROBE", timeout=60)
    return json.loads(text.split("PROBE", 1)[1].splitlines()[0])


def zygote_of(daemon: DaemonProcess, project: str) -> dict[str, Any]:
    return wait_until(
        lambda: [z for z in status(daemon)["zygotes"] if z["project"] == project and z["ready"]],
        60,
        f"a ready zygote of {project}",
    )[0]


def ready(daemon: DaemonProcess, mode: str, project: str = "warmy") -> int | None:
    """Warm: run one crawl so the project's zygote boots, and return its pid once it is
    ready. Cold: None (and no zygote ever appears)."""
    job = daemon.schedule("probe", project=project)
    assert daemon.wait_status(job, ("SUCCESSFUL", "FAILED"), 60)["status"] == "SUCCESSFUL"
    if mode == "cold":
        assert status(daemon)["zygotes"] == []
        return None
    return int(zygote_of(daemon, project)["pid"])


def assert_started_as(daemon: DaemonProcess, mode: str, seen: dict[str, Any], zygote: int | None):
    """The crawl's parent: the zygote when warm, the daemon itself when cold."""
    assert daemon.proc is not None
    assert seen["ppid"] == (zygote if mode == "warm" else daemon.proc.pid), seen


def until_file(tmp_path: Path, name: str = "go") -> tuple[Path, str]:
    path = tmp_path / name
    return path, json.dumps({"until_file": str(path)})


@pytest.fixture(scope="module", params=list(MODES))
def mode_daemon(request: Any, start_module_daemon: DaemonFactory) -> Iterator[Any]:
    """One daemon per mode for the tests that do not kill it: (mode, daemon, zygote)."""
    daemon = start_warm_daemon(start_module_daemon, request.param, max_runtime=0)
    yield request.param, daemon, ready(daemon, request.param)


# -- exit codes, signals, process titles ------------------------------------------------------


def test_exit_codes_and_signals_are_the_crawls_own(mode_daemon: Any, tmp_path: Path) -> None:
    mode, daemon, zygote = mode_daemon
    exits = daemon.schedule("probe", project="warmy", payload=json.dumps({"exit": 7}))
    assert_started_as(daemon, mode, probe(daemon, exits), zygote)
    job = daemon.wait_status(exits, ("SUCCESSFUL", "FAILED"), 60)
    assert (job["status"], job["exit_code"]) == ("FAILED", 7), job

    # An exception in the spider's __init__: `scrapy crawl` exits with status 1.
    broken = daemon.schedule("probe", project="warmy", payload=json.dumps({"fail_init": 1}))
    job = daemon.wait_status(broken, ("SUCCESSFUL", "FAILED"), 60)
    assert (job["status"], job["exit_code"]) == ("FAILED", 1), job
    err = daemon.get(f"/get-log/data/{broken}.err").text
    assert "ValueError: told to fail in __init__" in err

    _go, payload = until_file(tmp_path)
    killed = daemon.schedule("probe", project="warmy", payload=payload)
    seen = probe(daemon, killed)
    assert_started_as(daemon, mode, seen, zygote)
    os.kill(seen["pid"], signal.SIGKILL)
    job = daemon.wait_status(killed, ("SUCCESSFUL", "FAILED"), 60)
    assert (job["status"], job["exit_code"]) == ("FAILED", -signal.SIGKILL), job


def test_ps_shows_the_job_id_and_the_job_tag_is_in_the_environment(
    mode_daemon: Any, tmp_path: Path
) -> None:
    mode, daemon, zygote = mode_daemon
    go, payload = until_file(tmp_path)
    job_id = daemon.schedule("probe", project="warmy", payload=payload)
    seen = probe(daemon, job_id)
    assert_started_as(daemon, mode, seen, zygote)
    try:
        cmdline = psutil.Process(seen["pid"]).cmdline()
        assert f"JOB_ID={job_id}" in cmdline, cmdline
        ps = subprocess.run(
            ["ps", "-o", "args=", "-p", str(seen["pid"])], capture_output=True, text=True
        ).stdout
        assert f"JOB_ID={job_id}" in ps, ps
        assert find_crawl_process(job_id) is not None
        assert find_crawl_process(job_id)[0] == seen["pid"]  # type: ignore[index]
        # The tag daemon.leftovers finds a crawl's processes by, in /proc/<pid>/environ.
        environ = Path(f"/proc/{seen['pid']}/environ").read_bytes().split(b"\0")
        assert f"COINSPIDERS_JOB_ID={job_id}".encode() in environ
        assert seen["job"] == job_id
    finally:
        go.touch()
    assert daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), 60)["status"] == "SUCCESSFUL"


def test_live_stats_rise_while_a_crawl_runs_and_stay_after_it(
    mode_daemon: Any, tmp_path: Path
) -> None:
    mode, daemon, zygote = mode_daemon
    go, _ = until_file(tmp_path)
    payload = json.dumps({"until_file": str(go), "stream": True})
    job_id = daemon.schedule("probe", project="warmy", payload=payload)
    assert_started_as(daemon, mode, probe(daemon, job_id), zygote)

    def items(job: dict[str, Any]) -> int:
        return int((job.get("stats") or {}).get("item_scraped_count", 0))

    first = wait_until(lambda: daemon.job(job_id), 60, "live stats", until=lambda j: items(j) >= 2)
    wait_until(
        lambda: daemon.job(job_id),
        60,
        "item_scraped_count to rise",
        until=lambda j: j["status"] == "RUNNING" and items(j) > items(first),
    )
    go.touch()
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), 60)
    assert job["status"] == "SUCCESSFUL", job
    assert job["stats"]["finish_reason"] == "finished"
    coverage = job["stats"]["field_coverage"]
    assert set(coverage) == {"n", "name", "version"} and 0 < coverage["name"] < 1, coverage


def test_a_zygote_has_no_thread_and_no_network_socket(mode_daemon: Any) -> None:
    """Forks of a process with threads or open connections would inherit their state."""
    mode, daemon, zygote = mode_daemon
    if mode == "cold":
        assert status(daemon)["zygotes"] == []
        return
    proc = psutil.Process(zygote)
    assert proc.num_threads() == 1
    assert proc.net_connections(kind="inet") == []
    assert "coinspiders zygote warmy" in " ".join(proc.cmdline())


# -- nothing leaks from one crawl to the next -------------------------------------------------


def test_environment_and_module_state_do_not_leak_between_crawls(mode_daemon: Any) -> None:
    mode, daemon, zygote = mode_daemon
    for _ in range(2):  # each crawl sets both; neither sees the other's
        job_id = daemon.schedule("probe", project="warmy")
        seen = probe(daemon, job_id)
        assert_started_as(daemon, mode, seen, zygote)
        assert (seen["env"], seen["module"]) == (None, []), seen
        assert daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), 60)["status"] == "SUCCESSFUL"


def test_each_project_gets_the_reactor_its_settings_name(mode_daemon: Any) -> None:
    mode, daemon, zygote = mode_daemon
    other = ready(daemon, mode, "epolly")
    seen = probe(daemon, daemon.schedule("probe", project="epolly"))
    assert_started_as(daemon, mode, seen, other)
    assert seen["reactor"] == "EPollReactor", seen
    seen = probe(daemon, daemon.schedule("probe", project="warmy"))
    assert_started_as(daemon, mode, seen, zygote)
    assert seen["reactor"] == "AsyncioSelectorReactor", seen
    if mode == "warm":
        assert other != zygote


# -- stopping: cancel of a process tree, max_runtime ------------------------------------------


def test_cancel_kills_the_whole_tree_even_a_sigterm_ignoring_setsid_grandchild(
    mode_daemon: Any,
) -> None:
    mode, daemon, zygote = mode_daemon
    job_id = daemon.schedule("tree", project="warmy")
    text = daemon.wait_log(job_id, "TREE", timeout=60)
    crawl, inside, outside = (int(x) for x in text.split("TREE", 1)[1].split()[:3])
    if mode == "warm":
        assert psutil.Process(crawl).ppid() == zygote
    assert daemon.post("/cancel-job.json", data={"id": job_id}).status_code == 200
    job = daemon.wait_status(job_id, ("CANCELED", "FAILED", "SUCCESSFUL"), 60)
    assert job["status"] == "CANCELED", job
    for pid in (crawl, inside, outside):
        wait_until(lambda pid=pid: not pid_alive(pid), 30, f"process {pid} of the tree to end")


def test_max_runtime_stops_a_crawl(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    for mode in MODES:
        daemon = start_warm_daemon(start_daemon, mode)
        zygote = ready(daemon, mode)
        _go, payload = until_file(tmp_path, mode)
        job_id = daemon.schedule("probe", project="warmy", payload=payload, max_runtime="15")
        seen = probe(daemon, job_id)
        assert_started_as(daemon, mode, seen, zygote)
        job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED", "CANCELED"), 60)
        assert job["status"] == "FAILED" and "max_runtime" in (job["reason"] or ""), job
        wait_until(lambda s=seen: not pid_alive(s["pid"]), 30, "the timed-out crawl to end")
        daemon.stop()


# -- kill -9 of the daemon, kill -9 of a zygote -----------------------------------------------


def _tree_gone(pids: list[int]) -> None:
    for pid in pids:
        wait_until(lambda pid=pid: not pid_alive(pid), 30, f"process {pid} to be gone")


@pytest.mark.parametrize("mode", list(MODES))
def test_kill_9_of_the_daemon_loses_no_warm_crawl(
    mode: str, start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_warm_daemon(start_daemon, mode)
    zygote = ready(daemon, mode)
    go, payload = until_file(tmp_path)
    job_id = daemon.schedule("probe", project="warmy", payload=payload)
    seen = probe(daemon, job_id)
    assert_started_as(daemon, mode, seen, zygote)
    daemon.stop(signal.SIGKILL)
    if zygote is not None:  # the zygote goes with its daemon; its crawl lives on
        wait_until(lambda: not pid_alive(zygote), 30, "the zygote to exit")
    assert pid_alive(seen["pid"])
    again = start_daemon.restart(daemon)
    assert again.job(job_id)["status"] == "RUNNING"
    go.touch()
    job = again.wait_status(job_id, ("SUCCESSFUL", "FAILED"), 60)
    assert job["status"] == "SUCCESSFUL", job
    _tree_gone([seen["pid"]])


def test_kill_9_of_a_zygote_loses_no_crawl_and_leaves_no_process(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_warm_daemon(start_daemon, "warm")
    zygote = ready(daemon, "warm")
    assert zygote is not None
    go, payload = until_file(tmp_path)
    job_id = daemon.schedule("probe", project="warmy", payload=payload)
    seen = probe(daemon, job_id)
    assert_started_as(daemon, "warm", seen, zygote)
    os.kill(zygote, signal.SIGKILL)
    wait_until(lambda: not pid_alive(zygote), 30, "the zygote to be gone")
    # The crawl was re-parented to the daemon (a child subreaper) and runs on.
    assert daemon.proc is not None
    wait_until(lambda: psutil.Process(seen["pid"]).ppid() == daemon.proc.pid, 30, "re-parenting")
    assert daemon.job(job_id)["status"] == "RUNNING"
    go.touch()
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), 60)
    assert job["status"] == "SUCCESSFUL", job  # judged by its job.json
    _tree_gone([seen["pid"]])
    # The next crawls get a new zygote.
    fresh = ready(daemon, "warm")
    assert fresh is not None and fresh != zygote


# -- a new version while a crawl runs -----------------------------------------------------------


def test_a_pushed_version_retires_the_zygote_running_crawls_keep_their_code(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = start_warm_daemon(start_daemon, "warm")
    source = write_warm_project(tmp_path / "v1", "pushy", "1")
    rsp = daemon.post("/push-project.json", files={"archive": zip_project(source, "pushy")})
    assert rsp.status_code == 200, rsp.text
    old = ready(daemon, "warm", "pushy")
    go, payload = until_file(tmp_path)
    running = daemon.schedule("probe", project="pushy", payload=payload)
    seen = probe(daemon, running)
    assert_started_as(daemon, "warm", seen, old)
    assert seen["version"] == "1"

    source = write_warm_project(tmp_path / "v2", "pushy", "2")
    rsp = daemon.post("/push-project.json", files={"archive": zip_project(source, "pushy")})
    assert rsp.status_code == 200, rsp.text
    new = daemon.schedule("probe", project="pushy")
    assert probe(daemon, new)["version"] == "2"
    fresh = zygote_of_other(daemon, "pushy", old)
    later = daemon.schedule("probe", project="pushy")
    seen_later = probe(daemon, later)
    assert (seen_later["version"], seen_later["ppid"]) == ("2", fresh)
    # The old zygote starts nothing more but waits for its crawl, which ends on v1.
    assert pid_alive(old)
    go.touch()
    job = daemon.wait_status(running, ("SUCCESSFUL", "FAILED"), 60)
    assert job["status"] == "SUCCESSFUL", job
    wait_until(lambda: not pid_alive(old), 30, "the retired zygote to exit")


def test_a_local_project_edited_in_place_gets_a_new_zygote(start_daemon: DaemonFactory) -> None:
    daemon = start_warm_daemon(start_daemon, "warm")
    old = ready(daemon, "warm")
    assert probe(daemon, daemon.schedule("probe", project="warmy"))["version"] == "1"
    (daemon.workdir / "warmy" / "warmy" / "version.py").write_text("VERSION = '2'\n")
    assert probe(daemon, daemon.schedule("probe", project="warmy"))["version"] == "2"
    fresh = zygote_of_other(daemon, "warmy", old)
    seen = probe(daemon, daemon.schedule("probe", project="warmy"))
    assert (seen["version"], seen["ppid"]) == ("2", fresh)
    wait_until(lambda: not pid_alive(old), 30, "the zygote of the old code to exit")


def zygote_of_other(daemon: DaemonProcess, project: str, old: int | None) -> int:
    return int(
        wait_until(
            lambda: [
                z
                for z in status(daemon)["zygotes"]
                if z["project"] == project and z["ready"] and z["pid"] != old
            ],
            60,
            f"a new ready zygote of {project}",
        )[0]["pid"]
    )


# -- a spider module that fails to import -------------------------------------------------------


def test_a_spider_that_fails_to_import_shows_the_cold_error(start_daemon: DaemonFactory) -> None:
    errors = {}
    for mode in MODES:
        daemon = start_warm_daemon(start_daemon, mode)
        outcomes = []
        for _ in range(2):  # the second after the zygote (warm) failed to boot
            job_id = daemon.schedule("fragile", project="fragile")
            job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), 60)
            err = daemon.get(f"/get-log/data/{job_id}.err").text
            outcomes.append((job["status"], job["exit_code"], err.strip().splitlines()[-1]))
            if mode == "warm":
                failed = wait_until(
                    lambda d=daemon: [z for z in status(d)["zygotes"] if z.get("failed")],
                    60,
                    "the zygote of fragile to fail",
                )
                assert failed[0]["project"] == "fragile"
                assert "module_that_is_not_there_at_all" in failed[0]["error"]
        assert outcomes[0] == outcomes[1]
        errors[mode] = outcomes[0]
        daemon.stop()
    assert errors["warm"] == errors["cold"], errors
    assert errors["cold"][0] == "FAILED", errors
    assert "module_that_is_not_there_at_all" in errors["cold"][2], errors


# -- the real spiders: the same data warm and cold ----------------------------------------------

_TIME = re.compile(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?")


def test_coin_and_cmc_api_write_the_same_data_warm_and_cold(
    cmc: CMCServer, start_daemon: DaemonFactory
) -> None:
    """data.json of both real spiders, byte for byte, but for the times of the crawl."""
    settings = {**cmc.settings(), "AUTOTHROTTLE_ENABLED": "False", "RETRY_BACKOFF_BASE": "0.05"}

    def projects(work: Path) -> dict[str, Any]:
        return {"coinspiders": {"path": str(ROOT), "settings": settings}}

    runs = {
        "coin": json.dumps({"coins": "duko,bitcoin"}),
        "cmc_api": json.dumps({"limit": "50"}),
    }
    data: dict[str, dict[str, bytes]] = {}
    for mode in MODES:
        daemon = start_daemon(projects, warm=MODES[mode])
        first = daemon.schedule("coin", project="coinspiders", payload=runs["coin"])
        assert daemon.wait_status(first, ("SUCCESSFUL", "FAILED"), 90)["status"] == "SUCCESSFUL"
        if mode == "warm":
            zygote_of(daemon, "coinspiders")
        for spider, payload in runs.items():
            job_id = daemon.schedule(spider, project="coinspiders", payload=payload)
            job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), 90)
            assert job["status"] == "SUCCESSFUL", job
            warm = f"job {job_id}: started warm" in daemon.log_path.read_text()
            assert warm == (mode == "warm"), mode
            raw = (daemon.workdir / "data" / job_id / "data.json").read_bytes()
            data.setdefault(spider, {})[mode] = _TIME.sub(
                b"<time>", raw.replace(job_id.encode(), b"<job>")
            )
        daemon.stop()
    for spider in runs:
        assert len(data[spider]["cold"]) > 100, data[spider]["cold"][:200]
        assert data[spider]["warm"] == data[spider]["cold"], spider


# -- configuration and idle zygotes -------------------------------------------------------------


def test_config_turns_warm_starts_off_globally_or_per_project(tmp_path: Path) -> None:
    from daemon.config import ConfigError, load_config

    (tmp_path / "scrapy.cfg").write_text("[settings]\ndefault = x.settings\n")

    def config(text: str) -> Any:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return load_config(path, euid=0)

    default = config("")
    assert default.warm_for("any") and default.zygote_idle == 300
    assert not config("warm: false\n").warm_for("any")
    some = config("cold_projects: [old]\nprojects:\n  loc:\n    path: .\n    warm: false\n")
    assert (some.warm_for("old"), some.warm_for("loc"), some.warm_for("new")) == (
        False,
        False,
        True,
    )
    for bad, key in (
        ("warm: 'no'\n", "'warm'"),
        ("zygote_idle: -1\n", "'zygote_idle'"),
        ("cold_projects: old\n", "'cold_projects'"),
        ("projects:\n  loc:\n    path: .\n    warm: 1\n", "'projects.loc.warm'"),
    ):
        with pytest.raises(ConfigError, match=key):
            config(bad)


def test_an_idle_zygote_is_stopped_and_its_memory_shown_meanwhile(
    start_daemon: DaemonFactory,
) -> None:
    daemon = start_warm_daemon(start_daemon, "warm", zygote_idle=10)
    zygote = ready(daemon, "warm")
    assert zygote is not None
    shown = wait_until(
        lambda: [z for z in status(daemon)["zygotes"] if z.get("pid") == zygote],
        30,
        "the zygote's memory",
        until=lambda found: found and "pss" in found[0],
    )[0]
    assert shown["pss"] > 0 and shown["rss"] >= shown["pss"] and shown["jobs"] == 0
    wait_until(lambda: not pid_alive(zygote), 60, "the idle zygote to stop")
    assert all(z["project"] != "warmy" for z in status(daemon)["zygotes"])
    # The next crawl boots a new one.
    assert ready(daemon, "warm") != zygote


# -- crawl_user: the zygote and its crawls run as the crawl user --------------------------------


@pytest.fixture
def shared_base() -> Iterator[Path]:
    """A folder the crawl user can enter (pytest's tmp_path is root's, 0700)."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="coinspiders-warm-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_warm_crawls_run_as_the_crawl_user(shared_base: Path, start_daemon: DaemonFactory) -> None:
    import pwd
    import stat

    from tests.test_trust_isolation import _crawl_user, _interpreter_for_crawls

    entry = pwd.getpwnam(_crawl_user())
    python, python_env = _interpreter_for_crawls()
    data = shared_base / "data"
    daemon = start_warm_daemon(
        start_daemon,
        "warm",
        projects=lambda work: warm_projects(shared_base),
        data_dir=data,
        python=python,
        env=python_env,
        crawl_user=entry.pw_name,
    )
    zygote = ready(daemon, "warm")
    assert zygote is not None
    assert psutil.Process(zygote).uids().real == entry.pw_uid  # pushed code never runs as root
    go = shared_base / "go"
    job_id = daemon.schedule("probe", project="warmy", payload=json.dumps({"until_file": str(go)}))
    seen = probe(daemon, job_id)
    assert_started_as(daemon, "warm", seen, zygote)
    crawl = psutil.Process(seen["pid"])
    assert (crawl.uids().real, crawl.gids().real) == (entry.pw_uid, entry.pw_gid)
    assert stat.S_IMODE((data / "logs").stat().st_mode) == 0o700  # logs reached through fds
    go.touch()
    assert daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), 60)["status"] == "SUCCESSFUL"
    assert (data / job_id).stat().st_uid == 0  # the job folder went back to root
