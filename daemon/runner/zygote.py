"""A zygote: one project version's code imported once, forked for each of its crawls.

Started by the daemon (daemon.zygotes) in the project's folder, with the crawls'
environment and a SOCK_SEQPACKET socket as fd 3: one JSON message per packet each way.

    daemon -> zygote   {"op": "start", "job": id, "args": [...], "env": {...}}
                       with the crawl's stdin, stdout, stderr attached (SCM_RIGHTS)
                       {"op": "retire"}: start nothing more, exit once no crawl runs
    zygote -> daemon   {"event": "ready", "pid": ...} | {"event": "failed", "error": ...}
                       {"event": "started", "job": id, "pid": ..., "start": ...}
                       {"event": "ended", "job": id, "pid": ..., "exit_code": ...,
                        "signal": ..., "cpu": user + system seconds of the crawl}

It imports Scrapy, Twisted, the project's settings and spiders and every class the
settings name, and nothing more happens: no reactor, no thread, no socket, so a fork
is a clean copy. The forked child leaves the zygote's loop by returning from `serve`,
runs the crawl, and ends as a `scrapy` process ends (see end_like_python: the same
exit status and tracebacks, threads and atexit handlers finished, output flushed).

The zygote exits when the daemon's end of the socket closes (the daemon died): its
crawls carry on, followed by the next daemon like every orphan.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import json
import os
import re
import selectors
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from daemon.runner.boot import add_live_stats, run_scrapy
from daemon.runner.title import set_title

CONTROL_FD = 3
#: The job tag's value in the zygote's own environment: as long as a job id, so a
#: forked crawl can write its id over it (see _tag_environ).
TAG_ENV = "COINSPIDERS_JOB_ID"
TAG_PLACEHOLDER = "0" * 36
_MAX_PACKET = 1 << 20
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


@dataclass
class Job:
    """What the forked child runs once it has left the zygote's loop."""

    job_id: str
    args: list[str]
    env: dict[str, str]


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the daemon is gone: nobody to tell
        sock.send(json.dumps(message).encode())


def _named_objects(settings: Any) -> Iterator[str]:
    """Every dotted path a setting names: class settings, and the keys and values of
    component dicts (middlewares, extensions, pipelines, handlers, exporters...)."""
    for attribute in settings.attributes.values():  # .get() would warn of old names
        value = attribute.value
        if isinstance(value, str):
            candidates = [value]
        elif hasattr(value, "items"):
            candidates = [x for pair in value.items() for x in pair]
        else:
            continue
        for item in candidates:
            if isinstance(item, str) and _DOTTED.match(item):
                yield item


def preload() -> str:
    """Import what a crawl of this project will import; returns the settings module's
    name. Raises when the project's settings or spiders fail to import."""
    from scrapy import cmdline, crawler  # noqa: F401
    from scrapy.utils.misc import load_object
    from scrapy.utils.project import get_project_settings

    add_live_stats()
    settings = get_project_settings()
    loader_class = load_object(settings["SPIDER_LOADER_CLASS"])
    spiders = loader_class.from_settings(settings.frozencopy())  # imports every spider module
    cmdline._get_commands_dict(settings, True)
    for path in set(_named_objects(settings)):
        try:
            load_object(path)
        except BaseException:
            continue
    for module in (
        "scrapy.commands.crawl",
        "scrapy.core.engine",
        "scrapy.core.scraper",
        "scrapy.utils.reactor",
        "scrapy.utils.log",
        "twisted.internet.asyncioreactor",
        "twisted.internet.epollreactor",
        "twisted.internet.ssl",
    ):
        try:
            __import__(module)
        except BaseException:
            continue
    _rehearse(spiders)
    if "twisted.internet.reactor" in sys.modules:
        raise RuntimeError("importing the project installed a Twisted reactor")
    return str(os.environ.get("SCRAPY_SETTINGS_MODULE", ""))


def _rehearse(spiders: Any) -> None:
    """Fill the caches every crawl fills the same way at its start, so each fork finds
    them full: platform.platform() (Scrapy logs it), the source lines of the spider
    modules and tokenize's patterns (Scrapy reads each callback's source to warn of a
    generator returning a value). Best effort: a failure here costs time, not a crawl."""
    import inspect
    import platform

    with contextlib.suppress(Exception):
        platform.platform()
    with contextlib.suppress(Exception):
        for name in spiders.list():
            with contextlib.suppress(Exception):
                inspect.getsource(spiders.load(name))


def _tag_address() -> int | None:
    """Where the job tag's value lies in the environment block the kernel shows as
    /proc/<pid>/environ (getenv's pointer, before Python changes the variable)."""
    try:
        libc = ctypes.CDLL(None)
        libc.getenv.restype = ctypes.c_void_p
        address = libc.getenv(TAG_ENV.encode())
    except (OSError, AttributeError):
        return None
    if not address or ctypes.string_at(address) != TAG_PLACEHOLDER.encode():
        return None
    return int(address)


def _tag_environ(address: int | None, job_id: str) -> None:
    """Write the job's id over the placeholder: /proc/<pid>/environ of the crawl then
    carries COINSPIDERS_JOB_ID=<id> as a cold crawl's does (daemon.leftovers)."""
    raw = job_id.encode()
    if address is not None and len(raw) == len(TAG_PLACEHOLDER):
        ctypes.memmove(address, raw, len(raw))


def _start_time(pid: int) -> float | None:
    """The process's start time as psutil computes it (boot time + start ticks)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        ticks = int(data[data.rfind(b")") + 2 :].split()[19])
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime"):
                    return int(line.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reap(sock: socket.socket, jobs: dict[int, str]) -> None:
    while jobs:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        job = jobs.pop(pid, None)
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        cpu = round(usage.ru_utime + usage.ru_stime, 3)
        _send(
            sock,
            {
                "event": "ended",
                "job": job,
                "pid": pid,
                "exit_code": code,
                "signal": sig,
                "cpu": cpu,
            },
        )


def serve(sock: socket.socket) -> Job | None:
    """The zygote's loop. Returns in a forked child (the job it must run), or None in
    the zygote when it is done."""
    tag = _tag_address()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    jobs: dict[int, str] = {}
    retired = False
    while not (retired and not jobs):
        for key, _ in selector.select():
            if key.fileobj == wake_r:
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
                _reap(sock, jobs)
                continue
            try:
                data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_PACKET, 3)
            except InterruptedError:
                continue
            except OSError:
                data, fds = b"", []
            if not data:
                return None  # the daemon is gone; the crawls live on without us
            message = json.loads(data)
            if message.get("op") == "retire":
                retired = True
                continue
            if message.get("op") != "start" or len(fds) != 3 or retired:
                for fd in fds:
                    os.close(fd)
                continue
            pid = os.fork()
            if pid == 0:
                selector.close()
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(wake_r)
                os.close(wake_w)
                sock.close()
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                    os.close(fd)
                _tag_environ(tag, str(message["job"]))
                return Job(str(message["job"]), list(message["args"]), dict(message["env"]))
            for fd in fds:
                os.close(fd)
            jobs[pid] = str(message["job"])
            _send(
                sock,
                {"event": "started", "job": message["job"], "pid": pid, "start": _start_time(pid)},
            )
        _reap(sock, jobs)
    return None


def run_job(job: Job, settings_module: str) -> None:
    """In the forked child: become the crawl. Leaves by sys.exit, as `scrapy` does."""
    os.setsid()
    os.environ.clear()
    os.environ.update(job.env)
    # The project's settings module reads the environment when imported: import it
    # again in the job's environment, as a cold `scrapy crawl` would.
    if settings_module:
        sys.modules.pop(settings_module, None)
    run_scrapy(job.args)


def _exit_status(exc: SystemExit) -> int:
    """The exit status the interpreter gives `raise SystemExit(code)`."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def end_like_python(body: Callable[[], None]) -> NoReturn:
    """Run `body` and end the process as the interpreter would (same exit status,
    traceback, non-daemon threads waited for, atexit handlers, flushed output), but
    without tearing down the heap the child shares with its zygote: freeing every
    inherited object would write to (and so copy) each of its pages, costing a warm
    crawl more CPU at its end than it saved at its start."""
    status = 0
    interrupted = False
    try:
        body()
    except SystemExit as exc:
        status = _exit_status(exc)
    except KeyboardInterrupt:
        traceback.print_exc()
        interrupted = True
    except BaseException:
        sys.excepthook(*sys.exc_info())
        status = 1
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    if interrupted:  # as Python 3.8+ does: die of the SIGINT, for the parent to see
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(status)


def main() -> None:
    os.setsid()  # no signal to the daemon's terminal or group reaches the zygote
    project = sys.argv[1] if len(sys.argv) > 1 else ""
    set_title(f"coinspiders zygote {project}")
    sock = socket.socket(fileno=CONTROL_FD)
    try:
        settings_module = preload()
    except BaseException:
        _send(sock, {"event": "failed", "error": traceback.format_exc()[-4000:]})
        sys.exit(1)
    # Objects made so far are never freed while the zygote lives: keep the collector
    # away from them, so forks share their pages instead of copying them on write.
    gc.collect()
    gc.freeze()
    _send(sock, {"event": "ready", "pid": os.getpid()})
    job = serve(sock)
    if job is not None:
        end_like_python(lambda: run_job(job, settings_module))


if __name__ == "__main__":
    main()
