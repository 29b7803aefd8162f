"""Crawls on worker hosts (executor: celery): a real daemon, a real redis-server and
real worker processes, all on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from tests.cluster_support import celery_config
from tests.daemon_support import DaemonFactory
from tests.cluster_support import WorkerFactory
from tests.redis_support import RedisServer


def test_a_job_runs_on_a_worker_and_its_folder_comes_back(
    start_daemon: DaemonFactory, start_worker: WorkerFactory, redis_server: RedisServer
) -> None:
    daemon = start_daemon(**celery_config(redis_server))
    start_worker(daemon, redis_server, "w1")
    job_id = daemon.schedule("items")
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), timeout=60)
    assert job["status"] == "SUCCESSFUL", (job, daemon.log())
    assert job["node"] == "w1"
