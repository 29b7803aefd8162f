"""Running crawls on many machines: the Redis lease protocol (leases), the daemon's
HTTP side for workers, the worker command and the Celery executor."""
