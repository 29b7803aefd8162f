"""One in-process event bus: services announce what changed, others listen.

The jobs service announces job state changes and schedules it adds or removes; the
scheduler and the coin service listen. Publishers do not know their listeners, which
is what lets the jobs service and the scheduler be built without a cycle (the scheduler
calls the jobs service; the jobs service only publishes). Delivery is synchronous, on
the reactor thread, in subscription order; a listener that raises is logged and the
others still hear the event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from twisted.logger import Logger

log = Logger()

P = TypeVar("P")


@dataclass(frozen=True)
class Topic(Generic[P]):
    """A named kind of event whose payload has type P (checked by the type checker)."""

    name: str


class EventBus:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Callable[[Any], object]]] = {}

    def subscribe(self, topic: Topic[P], listener: Callable[[P], object]) -> Callable[[], None]:
        """Call `listener(payload)` on every event of `topic` (what it returns is ignored);
        returns the unsubscriber."""
        listeners = self._listeners.setdefault(topic.name, [])
        listeners.append(listener)

        def unsubscribe() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return unsubscribe

    def publish(self, topic: Topic[P], payload: P) -> None:
        for listener in list(self._listeners.get(topic.name, ())):
            try:
                listener(payload)
            except Exception:
                log.failure("a listener of {topic} failed", topic=topic.name)


# -- the daemon's topics ------------------------------------------------------------------
# Payloads are typed loosely here (Any) to keep this module free of imports from the
# services that publish them; each topic's comment names its payload. A crawl's own
# events (crawl.started, crawl.stats, crawl.ended) are typed in daemon.executor.

#: A job's state changed (a run started or ended; a schedule was paused, resumed or
#: edited): payload daemon.job_store.Job.
JOB_CHANGED: Topic[Any] = Topic("job.changed")
#: A run was recorded PENDING (submitted for now, or fired by a schedule): payload its
#: job id. The dashboard lists it before it starts.
JOB_ADDED: Topic[str] = Topic("job.added")
#: A recurring or timed job was recorded: payload (job id, daemon.triggers.When).
SCHEDULE_ADDED: Topic[tuple[str, Any]] = Topic("schedule.added")
#: A scheduled job is armed again from a given fire time (resumed, or its `when`
#: edited): payload (job id, daemon.triggers.When, the next fire time as a datetime).
SCHEDULE_ARMED: Topic[tuple[str, Any, Any]] = Topic("schedule.armed")
#: A scheduled job stops firing (canceled or paused): payload its job id.
SCHEDULE_REMOVED: Topic[str] = Topic("schedule.removed")
#: A run's end was recorded and the run compared with its history (daemon.anomaly_watch):
#: payload the daemon.job_store.Job as stored then, `anomalies` set (None when it was not
#: compared: canceled, or never started). Published right after JOB_CHANGED's final one.
JOB_ENDED: Topic[Any] = Topic("job.ended")
#: One attempt to deliver a webhook: payload (the webhook's number in the config,
#: "delivered", "failed" or "given_up").
WEBHOOK_ATTEMPTED: Topic[tuple[int, str]] = Topic("webhook.attempted")
#: A scheduled job's firing was skipped, missed beyond `misfire_grace`: payload (its job
#: id, the text recorded in its history).
SCHEDULE_MISFIRED: Topic[tuple[str, str]] = Topic("schedule.misfired")
