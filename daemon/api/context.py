"""What every API app is handed: the daemon's services, built once in daemon/app.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported for the annotations only: the services import nothing of api/
    from daemon.cluster.gate import WorkerGate
    from daemon.coin_service import CoinService
    from daemon.config import Config
    from daemon.events import EventBus
    from daemon.job_store import JobReads
    from daemon.jobs import JobsService
    from daemon.metrics import Metrics
    from daemon.projects import ProjectStore
    from daemon.scheduler import Scheduler
    from daemon.stall import StallMonitor
    from daemon.stats_series import StatsSeries
    from daemon.webhooks import WebhookService
    from daemon.zygotes import ZygotePool


@dataclass(frozen=True)
class ApiContext:
    """The services routes may call; routes never touch SQL or processes themselves."""

    config: Config
    jobs: JobsService  # every change of a job
    job_reads: JobReads  # every read of one
    projects: ProjectStore
    scheduler: Scheduler
    coins: CoinService
    stall: StallMonitor
    started: float  # the daemon's start (time.time()), for uptime
    metrics: Metrics  # /metrics
    webhooks: WebhookService  # /webhooks/
    series: StatsSeries  # each running crawl's counters over its life (job page chart)
    bus: EventBus | None = None  # what changed, for the dashboard's live updates
    cluster: WorkerGate | None = None  # what workers call (executor: celery), else None
    zygotes: ZygotePool | None = None  # warm starts, for status.json
