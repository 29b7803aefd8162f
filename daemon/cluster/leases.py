"""Who may run an attempt of a job, kept in Redis: offers, claims, leases, cancel flags
and node heartbeats.

The daemon's ledger says which attempt of a job is current; Redis holds the short-lived
facts workers race on. Every change that must not interleave is one Lua script (Redis
runs a script alone), so two deliveries of one Celery task, or a worker that wakes up
after its lease ran out, cannot both win:

- `offer(job, n)`: the daemon made attempt n current and queued it (n never goes back);
- `claim(job, n, worker)`: succeeds once, only for the current attempt, still queued,
  with no live lease; a late or duplicate delivery gets the reason it lost;
- `renew` / `release`: only by the lease's holder; a renew that finds another attempt
  current (the reaper moved on) fails, and the worker stops its crawl;
- `current(job, n, worker)`: the fence for writes: n is current and its lease is held;
- `retire(job, n)`: the job ended; its key stays (a day) so a stale holder cannot
  re-create a lease by renewing.

Redis may lose everything (restarted without persistence). A renew then finds no
attempt and no lease and takes the lease again for its attempt: the daemon re-offers
its current attempts after such a loss (`reoffer`), so the worker that really runs the
current attempt keeps it and a stale one is refused once the offer is back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

#: How long a retired job's attempt key stays: longer than any stale worker sleeps.
RETIRED_TTL_MS = 24 * 3600 * 1000
DONE = "done"

# KEYS: attempt, queued, lease. ARGV: attempt, holder ("n|worker"), ttl ms.
_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then
  if cur == false then return 'unknown' end
  return 'stale'
end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'not-queued' end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'leased' end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return 'ok'
"""

# KEYS: attempt, lease. ARGV: attempt, holder, ttl ms.
_RENEW = """
local cur = redis.call('GET', KEYS[1])
if cur ~= false and cur ~= ARGV[1] then return 'stale' end
local holder = redis.call('GET', KEYS[2])
if holder ~= false and holder ~= ARGV[2] then return 'taken' end
if cur == false then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 'ok'
"""

# KEYS: lease. ARGV: holder.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS: attempt, queued, lease, cancel. ARGV: attempt.
_OFFER = """
local cur = redis.call('GET', KEYS[1])
if cur ~= false and cur ~= 'done' and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
if cur ~= ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
"""

# KEYS: attempt, lease. ARGV: attempt, holder.
_CURRENT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
return 1
"""

# KEYS: attempt, queued, lease, cancel. ARGV: attempt, ttl ms.
_RETIRE = """
local cur = redis.call('GET', KEYS[1])
if cur ~= false and cur ~= 'done' and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], 'done', 'PX', ARGV[2])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return 1
"""

# KEYS: queued, lease, cancel. ARGV: ttl ms, signal.
_CANCEL = """
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[1])
if redis.call('DEL', KEYS[1]) == 1 then return 'queued' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'running' end
return 'none'
"""


def holder(attempt: int, worker: str) -> str:
    return f"{attempt}|{worker}"


@dataclass(frozen=True)
class Lease:
    """A live lease: who holds which attempt, and for how much longer (ms)."""

    attempt: int
    worker: str
    ttl_ms: int


@dataclass(frozen=True)
class Node:
    """A worker's last heartbeat."""

    name: str
    slots: int
    running: list[str]
    seen: float  # the worker's time.time() at its last beat
    alive: bool  # its heartbeat key has not expired


class Leases:
    """The protocol over one Redis connection pool; `prefix` keeps several daemons (or
    tests) apart on one Redis. Every method is blocking: the daemon calls them from a
    thread, a worker from its own threads."""

    def __init__(
        self, client: redis.Redis, prefix: str = "coinspiders", lease_ms: int = 10_000
    ) -> None:
        self.r = client
        self.prefix = prefix
        self.lease_ms = lease_ms
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._offer = client.register_script(_OFFER)
        self._current = client.register_script(_CURRENT)
        self._retire = client.register_script(_RETIRE)
        self._cancel = client.register_script(_CANCEL)

    @classmethod
    def from_url(cls, url: str, prefix: str = "coinspiders", lease_ms: int = 10_000) -> Leases:
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=5.0
        )
        return cls(client, prefix, lease_ms)

    def _k(self, job_id: str, what: str) -> str:
        return f"{self.prefix}:job:{{{job_id}}}:{what}"

    # -- the daemon's side ----------------------------------------------------

    def offer(self, job_id: str, attempt: int) -> bool:
        """Make `attempt` current and queued; False when a later attempt is current."""
        keys = [self._k(job_id, k) for k in ("attempt", "queued", "lease", "cancel")]
        return bool(self._offer(keys=keys, args=[attempt]))

    def retire(self, job_id: str, attempt: int) -> bool:
        """The job ended at `attempt`: no lease, claim or renew succeeds for it again."""
        keys = [self._k(job_id, k) for k in ("attempt", "queued", "lease", "cancel")]
        return bool(self._retire(keys=keys, args=[attempt, RETIRED_TTL_MS]))

    def cancel(self, job_id: str, sig: int = 15) -> str:
        """Raise the cancel flag, naming the signal the crawl gets first. 'queued': the
        attempt was not claimed yet and now cannot be; 'running': a worker holds it and
        will stop it; 'none': neither."""
        keys = [self._k(job_id, k) for k in ("queued", "lease", "cancel")]
        return str(self._cancel(keys=keys, args=[RETIRED_TTL_MS, int(sig)]))

    def lease(self, job_id: str) -> Lease | None:
        key = self._k(job_id, "lease")
        pipe = self.r.pipeline(transaction=True)
        pipe.get(key)
        pipe.pttl(key)
        value, ttl = pipe.execute()
        if not value:
            return None
        attempt, _, worker = str(value).partition("|")
        return Lease(int(attempt), worker, int(ttl))

    def current_attempt(self, job_id: str) -> int | None:
        value = self.r.get(self._k(job_id, "attempt"))
        if value is None or value == DONE:
            return None
        return int(value)

    def run_id(self) -> str:
        """The Redis server's run id: it changes when Redis restarts (and forgets)."""
        info: dict[str, Any] = self.r.info("server")
        return str(info["run_id"])

    # -- the worker's side ----------------------------------------------------

    def claim(self, job_id: str, attempt: int, worker: str) -> str:
        """'ok' when this worker now holds `attempt`; otherwise why not: 'stale' (another
        attempt is current), 'unknown' (never offered, or Redis lost it), 'not-queued'
        (claimed already, or canceled), 'leased' (someone holds a lease)."""
        keys = [self._k(job_id, k) for k in ("attempt", "queued", "lease")]
        return str(self._claim(keys=keys, args=[attempt, holder(attempt, worker), self.lease_ms]))

    def renew(self, job_id: str, attempt: int, worker: str) -> bool:
        keys = [self._k(job_id, k) for k in ("attempt", "lease")]
        result = self._renew(keys=keys, args=[attempt, holder(attempt, worker), self.lease_ms])
        return result == "ok"

    def release(self, job_id: str, attempt: int, worker: str) -> bool:
        return bool(self._release(keys=[self._k(job_id, "lease")], args=[holder(attempt, worker)]))

    def current(self, job_id: str, attempt: int, worker: str) -> bool:
        """The write fence: `attempt` is the current one and `worker` holds its lease."""
        keys = [self._k(job_id, k) for k in ("attempt", "lease")]
        return bool(self._current(keys=keys, args=[attempt, holder(attempt, worker)]))

    def canceled(self, job_id: str) -> int | None:
        """The signal a cancel asked for (None: no cancel)."""
        value = self.r.get(self._k(job_id, "cancel"))
        if not value:
            return None
        try:
            return int(value)
        except ValueError:
            return 15  # a flag from another version: SIGTERM

    def reoffer(self, job_id: str, attempt: int) -> None:
        """After Redis lost its memory: `attempt` is current again (running, not
        queued), unless a later one is."""
        key = self._k(job_id, "attempt")
        cur = self.r.get(key)
        if cur is None:
            self.r.set(key, attempt, nx=True)

    # -- nodes ----------------------------------------------------------------

    def heartbeat(self, name: str, slots: int, running: list[str], ttl_ms: int) -> None:
        """A worker says it is alive; its key expires `ttl_ms` after the last beat, the
        set of names stays, so a node that stopped beating is listed as lost."""
        beat = json.dumps({"slots": slots, "running": running, "seen": time.time()})
        pipe = self.r.pipeline(transaction=True)
        pipe.set(f"{self.prefix}:node:{name}", beat, px=ttl_ms)
        pipe.hset(f"{self.prefix}:nodes", name, beat)
        pipe.execute()

    def nodes(self) -> list[Node]:
        known: dict[str, str] = self.r.hgetall(f"{self.prefix}:nodes")  # type: ignore[assignment]
        names = sorted(known)
        if not names:
            return []
        alive = self.r.mget([f"{self.prefix}:node:{n}" for n in names])
        out = []
        for name, live in zip(names, alive, strict=True):
            beat = json.loads(live or known[name])
            out.append(
                Node(
                    name=name,
                    slots=int(beat.get("slots", 0)),
                    running=list(beat.get("running", [])),
                    seen=float(beat.get("seen", 0.0)),
                    alive=live is not None,
                )
            )
        return out

    def forget_node(self, name: str) -> None:
        self.r.hdel(f"{self.prefix}:nodes", name)
