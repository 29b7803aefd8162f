"""Pure parts of the daemon (config, command lines, verdicts, request parsing) and the
SQLite store, tested directly without processes or HTTP."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from daemon.api.http import ApiError
from daemon.api.job_json import JobJson, job_row
from daemon.api.scrapydo import format_uptime
from daemon.config import ConfigError, load_config
from daemon.domain import (
    ACTIVE_STATUSES,
    CANCELED,
    COMPLETED_STATUSES,
    FAILED,
    PENDING,
    RUNNING,
    SCHEDULED,
    SUCCESSFUL,
    RequestError,
    parse_job_id,
    parse_payload,
    parse_settings,
    parse_status,
)
from daemon.job_store import Job, StateConflict, Store, StoreError
from daemon.launcher import Outcome, crawl_args, crawl_command, crawl_env
from daemon.local_handle import format_handle, parse_handle
from daemon.verdict import verdict

# -- config ---------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_config_defaults_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "scrapy.cfg").write_text("[settings]\ndefault = x.settings\n")
    cfg = load_config(
        write(tmp_path, "projects:\n  p:\n    path: proj\n    settings: {A: 1, B: true}\n"),
        environ={},
    )
    assert (cfg.host, cfg.port, cfg.slots, cfg.timezone) == ("127.0.0.1", 7654, 3, "UTC")
    assert cfg.data_dir == (tmp_path / "data").resolve()
    assert cfg.projects["p"].path == (tmp_path / "proj").resolve()
    assert cfg.projects["p"].settings == {"A": "1", "B": "true"}
    assert cfg.auth is None and cfg.tls is None
    cfg = load_config(write(tmp_path, "port: 1\n"), {"port": 0, "host": None}, environ={})
    assert cfg.port == 0 and cfg.host == "127.0.0.1"


def test_built_in_defaults_are_the_ones_config_yaml_documents() -> None:
    """config.yaml states every default; a key set there to another value would make the
    README table (which lists the built-in defaults) wrong for one of them."""
    import yaml

    from daemon.archive import ArchiveLimits
    from daemon.config import Config

    defaults = load_config(None, environ={})
    assert defaults.projects == {} and defaults.unpacked_max_files == 2000
    assert ArchiveLimits().max_files == defaults.unpacked_max_files
    repo = yaml.safe_load((Path(__file__).parent.parent / "config.yaml").read_text())
    for key, value in repo.items():
        if key not in ("data_dir", "auth", "tls", "projects"):
            assert getattr(Config(), key) == value, key


def test_the_repo_config_loads() -> None:
    cfg = load_config(Path(__file__).resolve().parent.parent / "config.yaml", environ={})
    assert cfg.port == 7654 and "coinspiders" in cfg.projects


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("prot: 1\n", "unknown config key 'prot'"),
        ("port: '80'\n", "'port'"),
        ("port: 70000\n", "'port'"),
        ("slots: 0\n", "'slots'"),
        ("slots: true\n", "'slots'"),
        ("timezone: Mars/Base\n", "'timezone'"),
        ("auth:\n  user: x\n", "'auth.user'"),
        ("auth:\n  username: x\n", "'auth.password'"),
        ("tls:\n  cert: nope.pem\n  key: nope.key\n", "'tls.cert'"),
        ("projects:\n  p:\n    path: nowhere\n", "'projects.p.path'"),
        ("projects:\n  ../x:\n    path: .\n", "'projects.../x'"),
        ("cancel_grace: -1\n", "'cancel_grace'"),
        ("- a list\n", "mapping"),
        ("port: [\n", "not valid YAML"),
        ("executor: remote\n", "'executor': unknown executor 'remote'; use one of local, celery"),
        ("executor: celery\n", "'celery.broker' is required with executor: celery"),
        ("celery: {broker: 'http://x'}\n", "'celery.broker': expected a redis:// URL"),
        ("celery: {lease: 0.1}\n", "'celery.lease': between 1 and 3600 seconds"),
        ("celery: {queue: 'a b'}\n", "'celery.queue'"),
        ("celery: {brokr: 'redis://x'}\n", "unknown config key 'celery.brokr'"),
        ("executor: 3\n", "'executor'"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    assert words in str(info.value)


def test_config_executor_is_local_by_default_and_when_named(tmp_path: Path) -> None:
    assert load_config(None, environ={}).executor == "local"
    assert load_config(write(tmp_path, "executor: local\n"), environ={}).executor == "local"


def test_config_password_from_environment_never_in_repr(tmp_path: Path) -> None:
    path = write(tmp_path, "auth:\n  username: admin\n  password: file-pw\n")
    cfg = load_config(path, environ={"COINSPIDERS_PASSWORD": "env-pw"})
    assert cfg.auth is not None and cfg.auth.password == "env-pw"
    assert "env-pw" not in repr(cfg)
    assert load_config(path, environ={}).auth.password == "file-pw"
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml", environ={})


# -- command line and verdicts ----------------------------------------------------------


def test_crawl_args_daemon_settings_last_and_payload_as_one_argument(tmp_path: Path) -> None:
    args = crawl_args("coin", "ID", tmp_path, {"A": "1", "JOB_ID": "evil"}, '{"x": 1}')
    assert args[:2] == ["crawl", "coin"]
    assert args[2:4] == ["-s", "A=1"]
    assert "JOB_ID=evil" not in args
    assert args[4:10] == [
        "-s",
        "JOB_ID=ID",
        "-s",
        f"DATA_DIR={tmp_path.resolve()}",
        "-s",
        "REMOTE_CONTROL_ENABLED=False",
    ]
    assert args[-2:] == ["-a", 'payload={"x": 1}']
    assert "-a" not in crawl_args("coin", "ID", tmp_path, None, "{}")
    argv = crawl_command(args, python="/py")
    assert argv[:3] == ["/py", "-m", "daemon.runner.boot"] and argv[3:] == args
    env = crawl_env(tmp_path, {"COINSPIDERS_PASSWORD": "x", "PATH": "/bin"})
    assert env["SPIDER_DATA_DIR"] == str(tmp_path.resolve())
    assert "COINSPIDERS_PASSWORD" not in env and env["PATH"] == "/bin"
    base = {"PW": "x", "SCRAPY_SETTINGS_MODULE": "a.b", "SCRAPY_PROJECT": "a", "CMC_API_KEY": "k"}
    env = crawl_env(tmp_path, base, hidden=("PW",))
    assert env["CMC_API_KEY"] == "k" and not {
        "PW",
        "SCRAPY_SETTINGS_MODULE",
        "SCRAPY_PROJECT",
    } & set(env)


@pytest.mark.parametrize(
    ("outcome", "manifest", "status", "words"),
    [
        (Outcome(0, None, None), None, SUCCESSFUL, "close reason not logged"),
        (Outcome(0, None, None), {"close_reason": "finished"}, SUCCESSFUL, None),
        (Outcome(0, None, None), {"close_reason": "shutdown"}, FAILED, "shutdown"),
        (Outcome(1, None, None), {"job_errors": [{"message": "no key"}]}, FAILED, "no key"),
        (Outcome(3, None, None), None, FAILED, "exit code 3"),
        (Outcome(None, 9, None), None, FAILED, "SIGKILL"),
        (Outcome(None, 15, "cancel"), None, CANCELED, "canceled"),
        (Outcome(None, 9, "cancel", killed=True), None, CANCELED, "grace"),
        (Outcome(0, None, "shutdown"), {"close_reason": "finished"}, FAILED, "daemon"),
        (Outcome(None, 15, "timeout"), None, FAILED, "max_runtime"),
        (Outcome(None, None, None, orphan=True), None, FAILED, "unknown"),
        (
            Outcome(None, None, None, orphan=True),
            {"close_reason": "finished", "succeeded": True},
            SUCCESSFUL,
            "restarted",
        ),
    ],
)
def test_verdict(outcome, manifest, status, words) -> None:
    got, reason = verdict(outcome, manifest)
    assert got == status
    if words:
        assert words in reason
    else:
        assert reason is None


# -- request parsing ------------------------------------------------------------------


def test_request_parsing() -> None:
    assert format_uptime(0) == "0s"
    assert format_uptime(86400 + 12 * 60 + 24) == "1d 12m 24s"
    assert format_uptime(3600) == "1h"
    assert parse_status("active") == ACTIVE_STATUSES
    assert parse_status("Completed") == COMPLETED_STATUSES
    assert parse_status("failed") == (FAILED,)
    with pytest.raises(RequestError, match="Unknown status"):
        parse_status("DONE")
    uid = "5B30C8A2-42E5-4AD5-B143-4CB0420955A5"
    assert parse_job_id(uid) == uid.lower()
    for bad in ("x", "../x", "5b30c8a2"):
        with pytest.raises(RequestError, match="not a UUID"):
            parse_job_id(bad)
    assert parse_payload(None) == "{}"
    assert parse_payload('{"a": "é"}') == '{"a": "é"}'
    for bad in ("[]", "1", "{", '"x"'):
        with pytest.raises(RequestError):
            parse_payload(bad)
    assert parse_settings(["A=1", "B_2=x=y"]) == {"A": "1", "B_2": "x=y"}
    for bad in (["A"], ["=1"], ["A B=1"], ["DATA_DIR=/"], ["REMOTE_CONTROL_ENABLED=True"]):
        with pytest.raises(RequestError):
            parse_settings(bad)


# -- store ----------------------------------------------------------------------------


def job(job_id: str, status: str = PENDING, **kw) -> Job:
    return Job(
        id=job_id, status=status, actor="USER", schedule="now", project="p", spider="s", **kw
    )


def _store_with_pid_columns(path: Path) -> None:
    """A job store as the daemon wrote it before the executor seam: bare `pid` and
    `proc_start` columns where `handle` and `node` are now."""
    import sqlite3

    from daemon.job_store import _SCHEMA, SCHEMA_VERSION

    old_schema = _SCHEMA.replace(
        "handle TEXT,\n    node TEXT,", "pid INTEGER,\n    proc_start REAL,"
    )
    assert old_schema != _SCHEMA
    old = sqlite3.connect(path)
    old.executescript(old_schema)
    old.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    rows = [
        ("ran", "RUNNING", 1, 1.0, 4242, 1700000000.5),
        ("nostart", "RUNNING", 1, 1.0, 4243, None),
        ("waits", "PENDING", 1, None, None, None),
    ]
    for job_id, status, active, started, pid, proc_start in rows:
        old.execute(
            "INSERT INTO jobs (id, status, active, actor, schedule, project, spider, created,"
            " updated, started, pid, proc_start)"
            " VALUES (?, ?, ?, 'USER', 'now', 'p', 's', 1, 1, ?, ?, ?)",
            (job_id, status, active, started, pid, proc_start),
        )
    old.commit()
    old.close()


def test_a_store_with_pid_columns_migrates_them_to_local_handles(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    _store_with_pid_columns(path)
    for _ in range(2):  # the second open finds nothing left to migrate
        store = Store(path)
        ran, nostart, waits = (store.get(i) for i in ("ran", "nostart", "waits"))
        assert (ran.handle, ran.node, ran.pid) == ("4242:1700000000.5", "local", 4242)
        assert parse_handle(ran.handle) == (4242, 1700000000.5)
        assert (nostart.handle, nostart.pid) == ("4243:", 4243)
        assert parse_handle(nostart.handle) == (4243, None)
        assert (waits.handle, waits.node, waits.pid) == (None, None, None)
        store.record_handle("ran", "9:1.5", "local")
        assert store.get("ran").pid == 9
        store.record_handle("ran", "4242:1700000000.5", "local")
        store.close()


def test_a_handle_of_another_node_has_no_pid() -> None:
    remote = job("r", RUNNING, handle="4242:1.0", node="worker-1")
    assert remote.pid is None
    assert job("l", RUNNING, handle="4242:1.0", node="local").pid == 4242
    for bad in ("", "x:1", "-1:2", "12:x", None):
        assert parse_handle(bad) is None
    assert format_handle(12, None) == "12:" and format_handle(12, 1.25) == "12:1.25"


def test_store_transitions_are_guarded(tmp_path: Path) -> None:
    store = Store(tmp_path / "d.sqlite")
    store.insert(job("a"))
    running = store.mark_running("a")
    assert running.status == RUNNING and running.started is not None
    with pytest.raises(StateConflict):
        store.mark_running("a")  # never started twice under one id
    store.record_handle("a", "123:1.5", "local")
    assert (store.get("a").handle, store.get("a").node, store.get("a").pid) == (
        "123:1.5",
        "local",
        123,
    )
    done = store.finish("a", SUCCESSFUL, None, 0)
    assert done.status == SUCCESSFUL and done.exit_code == 0 and not done.active
    assert store.finish("a", FAILED) is None  # already final
    assert store.figures()["jobs-run"] == 1 and store.figures()["jobs-successful"] == 1
    store.close()
    reopened = Store(tmp_path / "d.sqlite")
    assert reopened.get("a").status == SUCCESSFUL


def test_store_fire_skips_while_a_run_is_active(tmp_path: Path) -> None:
    store = Store(tmp_path / "d.sqlite")
    store.insert(job("sch", SCHEDULED, timezone="UTC"))
    run = store.fire("sch", 100.0, 200.0, job("r1", parent="sch"))
    assert run is not None and run.parent == "sch" and run.status == PENDING
    assert store.fire("sch", 200.0, 300.0, job("r2", parent="sch")) is None
    parent = store.get("sch")
    assert parent.skipped == 1 and parent.last_fire == 200.0 and parent.next_run == 300.0
    assert store.get("r2") is None
    store.finish("r1", SUCCESSFUL)
    assert store.fire("sch", 300.0, None, job("r3", parent="sch")) is not None
    store.finish("sch", CANCELED)
    assert store.fire("sch", 400.0, None, job("r4", parent="sch")) is None


def test_store_purge_keeps_active_jobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "d.sqlite")
    for i in range(6):
        store.insert(job(f"j{i}"))
    for i in range(5):
        store.finish(f"j{i}", SUCCESSFUL)
    removed = store.purge_completed(2)
    assert sorted(removed) == ["j0", "j1", "j2"]
    assert store.get("j5").status == PENDING
    assert [j.id for j in store.list_jobs(COMPLETED_STATUSES)] == ["j4", "j3"]


def test_store_pages_use_indexes_not_scans(tmp_path: Path) -> None:
    """Every list-jobs query shape reads an index range in seq order: no full scan and
    no sort of the matches, so a page costs the same with 100 or 100,000 jobs."""
    store = Store(tmp_path / "d.sqlite")
    conn = store._conn
    shapes = [
        "SELECT id FROM jobs WHERE active = 1 ORDER BY seq DESC LIMIT 10",
        "SELECT id FROM jobs WHERE active = 0 ORDER BY seq DESC LIMIT 10",
        "SELECT id FROM jobs WHERE status = 'FAILED' ORDER BY seq DESC LIMIT 10",
        "SELECT id FROM jobs WHERE status = 'PENDING' ORDER BY seq ASC LIMIT 1",
        "SELECT id FROM jobs WHERE project = 'p' AND spider = 's' ORDER BY seq DESC LIMIT 10",
        "SELECT id FROM jobs WHERE id = 'x'",
    ]
    for sql in shapes:
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "USING" in plan and "TEMP B-TREE" not in plan, (sql, plan)
    # list-jobs with project and/or spider filters: the index range covers every
    # equality of the query (status/active first), read in seq order.
    filtered = {
        "spider = 's'": "(spider=?)",
        "project = 'p'": "(project=?)",
        "status = 'FAILED' AND project = 'p'": "(status=? AND project=?)",
        "status = 'FAILED' AND spider = 's'": "(status=? AND spider=?)",
        "active = 1 AND project = 'p'": "(active=? AND project=?)",
        "active = 0 AND spider = 's'": "(active=? AND spider=?)",
        "status = 'RUNNING' AND project = 'p' AND spider = 's'": "(status=? AND spider=?)",
        "active = 1 AND project = 'p' AND spider = 's'": "(active=? AND spider=?)",
    }
    for where, covered in filtered.items():
        sql = f"SELECT id FROM jobs WHERE {where} ORDER BY seq DESC LIMIT 10"
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert covered in plan and "TEMP B-TREE" not in plan, (sql, plan)


def test_store_pages_newest_completed_first_and_oldest_pending_first(tmp_path: Path) -> None:
    """A completed page starts at the newest completed job, and the next job to run is
    the oldest pending one, among jobs of both kinds interleaved."""
    store = Store(tmp_path / "d.sqlite")
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO jobs (id, status, active, actor, schedule, project, spider, "
            "created, updated) VALUES (?, ?, ?, 'USER', 'now', 'p', 's', 0, 0)",
            [
                (f"id{i}", SUCCESSFUL if i % 10 else PENDING, 0 if i % 10 else 1)
                for i in range(1000)
            ],
        )
    page = store.list_jobs(COMPLETED_STATUSES, limit=100)
    assert [j.id for j in page[:3]] == ["id999", "id998", "id997"] and len(page) == 100
    assert all(j.status == SUCCESSFUL for j in page)
    assert store.oldest_pending().id == "id0"


def test_store_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    bad = tmp_path / "d.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=str(bad)):
        Store(bad)
    assert bad.read_bytes().startswith(b"this is not a database")  # nothing overwritten
    assert sqlite3.sqlite_version


def test_job_json_keys_as_scrapy_do() -> None:
    from zoneinfo import ZoneInfo

    row = job_row(job("a", SUCCESSFUL, created=1.0, updated=3.0, started=1.2, finished=3.0))
    data = json.loads(JobJson(ZoneInfo("UTC")).job(row))
    assert data["identifier"] == "a" and data["duration"] == 2
    assert data["timestamp"] == "1970-01-01 00:00:03"
    assert data["payload"] == "{}" and data["description"] == ""
    assert data["started"] == "1970-01-01T00:00:01.200000+00:00"


def test_store_events_and_scheduled_jobs_do_not_count_as_runs(tmp_path: Path) -> None:
    store = Store(tmp_path / "d.sqlite")
    store.insert(job("sch", SCHEDULED, timezone="UTC"))
    store.add_event("sch", "missed 3 firings while the daemon was down")
    store.add_event("sch", "second")
    assert [text for _, text in store.events("sch")] == [
        "missed 3 firings while the daemon was down",
        "second",
    ]
    store.finish("sch", CANCELED)
    assert store.figures()["jobs-canceled"] == 0


def test_urlencoded_parsing_matches_twisted_and_handles_slices() -> None:
    import os
    from urllib.parse import unquote_to_bytes, urlencode

    from twisted.web.http import parse_qs

    from daemon.api.http import _unquote_plus, parse_urlencoded

    for blob in (os.urandom(300_001), b"a+b%25c%" * 10, b"%" * 70_000):
        body = urlencode({"archive": blob, "x": "1 2&=", "e": ""}).encode() + b"&noeq"
        fields = parse_urlencoded(body)
        assert fields[b"archive"] == [blob]
        assert fields == parse_qs(body, 1)
    for raw in (b"%", b"%4", b"abc%zz", b"x" * 65534 + b"%41%42", b"x" * 65536 + b"%"):
        assert _unquote_plus(raw) == unquote_to_bytes(raw)
    with pytest.raises(ValueError, match="form fields"):
        parse_urlencoded(b"a=1&" * 1000)


def test_every_daemon_refusal_is_one_error_shape() -> None:
    from daemon.archive import ArchiveError
    from daemon.errors import DaemonError
    from daemon.jobs import JobError
    from daemon.projects import ProjectError

    for cls in (ApiError, JobError, ProjectError, ArchiveError):
        error = cls("refused", 409)
        assert isinstance(error, DaemonError) and (error.message, error.http_status) == (
            "refused",
            409,
        )
        assert cls("bad").http_status == 400 and str(error) == "refused"
