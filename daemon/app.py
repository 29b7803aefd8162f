"""Builds the daemon, the one place where services are made and wired: store, projects,
executor (and its launcher), jobs, scheduler, coin service and the web listener, one
Twisted service per concern, started and stopped in order by one MultiService, and
handed to the API apps in a typed ApiContext.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.logger import Logger

from daemon.anomaly_watch import AnomalyWatch
from daemon.api import ApiContext, make_apps
from daemon.api.http import GuardedSite
from daemon.api.job_json import JobJson, job_row
from daemon.api.scrapyd import listener as scrapyd_listener
from daemon.coin_service import CoinService
from daemon.config import Config
from daemon.events import EventBus
from daemon.executor import IExecutor
from daemon.isolation import secure_data_dir, trust_warnings
from daemon.job_store import Store, StoreError
from daemon.jobs import JobsService
from daemon.launcher import Launcher, crawl_env
from daemon.leftovers import become_subreaper, reap_orphans
from daemon.listen import ListenService
from daemon.local_executor import LocalExecutor
from daemon.metrics import Metrics
from daemon.scheduler import Scheduler
from daemon.stall import StallMonitor
from daemon.stats_series import StatsSeries
from daemon.webhook_store import WebhookQueue
from daemon.webhooks import WebhookService
from daemon.zygotes import ZygotePool

log = Logger()


class WebService(ListenService):
    """The main listener: host:port of the config (TLS when configured)."""

    name = "web"

    def __init__(
        self, reactor: Any, config: Config, site: GuardedSite | None, port_file: Path | None
    ) -> None:
        super().__init__(reactor, config, config.port, site, port_file=port_file)


class ReaperService(Service):
    """Reaps the daemon's children that Twisted did not spawn: with the daemon a child
    subreaper, those are orphaned descendants of crawls (see daemon.leftovers), and
    nobody else collects their exit status. Checked every `interval` seconds (a
    waitid() call that finds nothing costs about a microsecond)."""

    name = "reaper"

    def __init__(self, reactor: Any, interval: float = 1.0) -> None:
        self.reactor = reactor
        self.interval = interval
        self.reaped = 0
        self._loop: Any = None

    def startService(self) -> None:
        super().startService()
        from twisted.internet.task import LoopingCall

        self._loop = LoopingCall(self.reap)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)

    def reap(self) -> None:
        from twisted.internet.process import reapProcessHandlers

        self.reaped += len(reap_orphans(reapProcessHandlers))

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()


class SchedulerService(Service):
    """Runs the scheduler (daemon.scheduler) once the jobs service has settled the store."""

    name = "scheduler"

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def startService(self) -> None:
        super().startService()
        self.scheduler.start()

    def stopService(self) -> None:
        super().stopService()
        self.scheduler.stop()


def _make_projects(reactor: Any, config: Config) -> Any:
    from daemon.archive import ArchiveLimits
    from daemon.projects import ProjectStore

    limits = ArchiveLimits(
        max_archive_bytes=config.upload_max_bytes,
        max_unpacked_bytes=config.unpacked_max_bytes,
        max_files=config.unpacked_max_files,
    )
    return ProjectStore(
        config.projects_dir,
        config.projects,
        limits=limits,
        list_timeout=config.list_spiders_timeout,
        reactor=reactor,
        hidden_env=config.hidden_env,
        crawl_user=config.crawl_user,
    )


def _make_executor(config: Config, launcher: Launcher, bus: EventBus) -> IExecutor:
    """The executor `executor:` names (daemon.config refuses any other name)."""
    if config.executor == "local":
        return LocalExecutor(launcher, bus)
    if config.executor == "celery":  # crawls on worker hosts (daemon/cluster)
        from daemon.cluster.executor import CeleryExecutor

        return CeleryExecutor(launcher.reactor, bus, config)
    raise ValueError(f"unknown executor {config.executor!r}")


def _lock_data_dir(data_dir: Path) -> Any:
    """One daemon per data folder: two would start the same pending job twice. The
    kernel drops the lock when the process dies, even by kill -9."""
    handle = (data_dir / "daemon.lock").open("a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise StoreError(f"another daemon is using the data folder {data_dir}") from None
    return handle


class Daemon:
    """The assembled daemon; `services` is started/stopped by the caller (or `run`)."""

    def __init__(
        self,
        config: Config,
        reactor: Any,
        port_file: Path | None = None,
        reap_orphans: bool = False,
    ) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        config.logs_dir.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_data_dir(config.data_dir)
        self.store = Store(config.db_path)
        self.bus = EventBus()
        self.projects = _make_projects(reactor, config)
        if config.crawl_user is not None:
            secure_data_dir(config.data_dir, config.logs_dir, config.projects_dir)
        # Warm starts: one zygote per project version in use (daemon.zygotes).
        self.zygotes = ZygotePool(
            reactor,
            config.logs_dir,
            crawl_env(config.data_dir, hidden=config.hidden_env),
            crawl_user=config.crawl_user,
            idle=config.zygote_idle,
            immutable_root=config.projects_dir.resolve(),
        )
        self.launcher = Launcher(
            reactor,
            config.data_dir,
            config.logs_dir,
            config.cancel_grace,
            hidden_env=config.hidden_env,
            crawl_user=config.crawl_user,
            console_projects=config.crawl_consoles,
            zygotes=self.zygotes,
            warm=config.warm_for,
        )
        self.executor = _make_executor(config, self.launcher, self.bus)
        self.jobs = JobsService(
            self.store,
            self.executor,
            self.projects,
            self.bus,
            reactor=reactor,
            slots=config.slots,
            data_dir=config.data_dir,
            timezone=config.timezone,
            max_runtime=config.max_runtime,
            completed_cap=config.completed_cap,
            min_free_bytes=config.min_free_bytes,
        )
        # The scheduler calls the jobs service (its host: fire a run, record an event);
        # the jobs service never calls the scheduler, it announces the schedules it
        # records and cancels on the bus. So both are built complete, with no cycle.
        scheduler = Scheduler(reactor, self.jobs, misfire_grace=config.misfire_grace)
        scheduler.listen(self.bus)
        self.coins = CoinService(
            config.data_dir, self.jobs, self.bus, reactor, reads=self.store, projects=self.projects
        )
        self.stall = StallMonitor(reactor)
        # Before the listeners of JOB_ENDED (metrics, webhooks): it publishes that event.
        self.anomalies = AnomalyWatch(self.store, self.bus, config.anomalies)
        self.metrics = Metrics(self.store, self.jobs, self.bus, self.stall)
        self.series = StatsSeries(reactor, self.bus)
        shaper = JobJson(config.tz)
        self.webhooks = WebhookService(
            reactor,
            WebhookQueue(self.store),
            config.webhooks,
            self.bus,
            job_text=lambda job: shaper.job(job_row(job)),
            iso=shaper.iso,
        )
        # Listen first (a busy port stops the start before any crawl is touched); then
        # settle and dispatch jobs, arm the schedules, then the coin service.
        # Stopping runs in reverse order.
        self.services = MultiService()
        self.web = WebService(reactor, config, None, port_file)
        services: list[Service] = [self.web, self.stall]
        if reap_orphans:
            self.launcher.subreaper = True
            services.append(ReaperService(reactor))
        # Webhooks before jobs: the events of the jobs settled at start are sent too.
        services += [self.webhooks, self.jobs, SchedulerService(scheduler), self.coins]
        for service in services:
            service.setServiceParent(self.services)
        self.context = ApiContext(
            config=config,
            jobs=self.jobs,
            job_reads=self.store,
            projects=self.projects,
            scheduler=scheduler,
            coins=self.coins,
            stall=self.stall,
            started=time.time(),
            metrics=self.metrics,
            webhooks=self.webhooks,
            series=self.series,
            bus=self.bus,
            cluster=getattr(self.executor, "gate", None),
            zygotes=self.zygotes,
        )
        self.apps = make_apps(self.context)
        self.site = scrapyd_listener.main_site(self.apps.resource(), config)
        self.web.site = self.site
        if config.scrapyd.port is not None:
            # scrapyd's API alone at the root of a second listener, for tools that take
            # only host:port (scrapyd's /status.json is not scrapy-do's).
            second = scrapyd_listener.second_site(self.context)
            scrapyd_listener.ScrapydWebService(reactor, config, second).setServiceParent(
                self.services
            )

    def warm_up(self) -> None:
        """List the local projects' spiders in the background now, so the first
        schedule-job does not wait for `scrapy list`."""
        for name in self.config.projects:
            d = self.projects.get_spiders(name)
            d.addErrback(
                lambda f, name=name: log.warn(
                    "cannot list the spiders of {name}: {why}",
                    name=name,
                    why=f.getErrorMessage(),
                )
            )


def setup_logging() -> None:
    from twisted.logger import globalLogBeginner, textFileLogObserver

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s [%(name)s] %(levelname)s: %(message)s",
    )
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)


def run(config: Config, port_file: Path | None = None) -> int:
    """Start everything and run the reactor until SIGTERM/SIGINT; returns the exit code."""
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    setup_logging()
    for warning in trust_warnings(config, os.geteuid()):
        log.warn("{warning}", warning=warning)
    # Orphaned descendants of crawls come back to the daemon, to be killed and reaped.
    subreaper = become_subreaper()
    if not subreaper:
        log.warn("cannot become a child subreaper: orphans of crawls go to init")
    daemon = Daemon(config, reactor, port_file, reap_orphans=subreaper)
    failed: list[str] = []

    def start() -> None:
        try:
            daemon.services.startService()
            daemon.warm_up()
        except CannotListenError as exc:
            failed.append(f"cannot listen on {config.host}:{config.port}: {exc.socketError}")
            reactor.stop()
        except Exception as exc:
            failed.append(f"cannot start: {exc}")
            reactor.stop()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger(
        "before",
        "shutdown",
        lambda: daemon.services.stopService() if daemon.services.running else None,
    )
    reactor.run()
    daemon.store.close()
    if failed:
        print(f"error: {failed[0]}", file=sys.stderr)
        return 2
    return 0
