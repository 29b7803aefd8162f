"""Run-to-run anomalies: a run's final stats against the median of the same spider's
recent successful runs with the same arguments.

A crawl that "succeeds" while the site has changed under it is a scraper's worst
failure: nothing fails, a field is simply empty in every item. Its own history is the
only yardstick that needs no rules per spider. Pure: the caller reads the history and
stores the report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from daemon.config import AnomalyConfig


@dataclass(frozen=True)
class RunFigures:
    """What a run is compared on, read from its final stats (Scrapy's names)."""

    items: int = 0
    requests: int = 0
    errors: int = 0
    retries: int = 0
    duration: float | None = None
    coverage: Mapping[str, float] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def retry_rate(self) -> float:
        return self.retries / self.requests if self.requests else 0.0


def _count(stats: Mapping[str, Any], key: str) -> int:
    value = stats.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def figures(stats: Mapping[str, Any] | str | None, duration: float | None) -> RunFigures:
    """A run's figures from its stats (a mapping or the stored JSON text); a run whose
    stats are missing or unreadable counts as one that did nothing."""
    if isinstance(stats, str):
        try:
            stats = json.loads(stats)
        except ValueError:
            stats = None
    if not isinstance(stats, Mapping):
        return RunFigures(duration=duration)
    raw = stats.get("field_coverage")
    coverage = {
        str(name): float(share)
        for name, share in (raw.items() if isinstance(raw, Mapping) else ())
        if isinstance(share, int | float) and not isinstance(share, bool)
    }
    return RunFigures(
        items=_count(stats, "item_scraped_count"),
        requests=_count(stats, "downloader/request_count"),
        errors=_count(stats, "log_count/ERROR"),
        retries=_count(stats, "retry/count"),
        duration=duration,
        coverage=coverage,
    )


def _finding(what: str, expected: float, seen: float, **extra: Any) -> dict[str, Any]:
    return {"what": what, "expected": round(expected, 4), "seen": round(seen, 4), **extra}


def compare(
    run: RunFigures, history: Sequence[RunFigures], limits: AnomalyConfig
) -> dict[str, Any]:
    """The report stored on the job: `compared_with` (how many earlier runs), `findings`
    (each {what, expected, seen}, `field` for a coverage finding) and, when the
    history is too short to compare with, a `note` saying so."""
    report: dict[str, Any] = {"compared_with": len(history), "findings": []}
    if len(history) < limits.min_history:
        report["note"] = (
            f"no history yet: {len(history)} earlier successful run(s) of this spider with "
            f"these arguments, {limits.min_history} needed"
        )
        return report
    findings: list[dict[str, Any]] = report["findings"]
    items = median(h.items for h in history)
    if items > 0 and run.items < items * (1 - limits.items_drop):
        findings.append(_finding("items", items, run.items))
    for what, rate in (("error_rate", "error_rate"), ("retry_rate", "retry_rate")):
        usual = median(getattr(h, rate) for h in history)
        seen = getattr(run, rate)
        if seen > usual + limits.error_rate_rise:
            findings.append(_finding(what, usual, seen))
    durations = [h.duration for h in history if h.duration is not None]
    if run.duration is not None and durations:
        usual = median(durations)
        if (
            usual > 0
            and run.duration > usual * limits.duration_factor
            and run.duration - usual >= limits.duration_min_seconds
        ):
            findings.append(_finding("duration", usual, run.duration))
    findings.extend(_coverage_findings(run, history, limits))
    return report


def _coverage_findings(
    run: RunFigures, history: Sequence[RunFigures], limits: AnomalyConfig
) -> list[dict[str, Any]]:
    """Fields nearly always filled before and far less now. A run without items says
    nothing about its fields (the items finding covers it), nor do such earlier runs."""
    if run.items == 0:
        return []
    with_items = [h for h in history if h.items > 0]
    if not with_items:
        return []
    names = sorted({name for h in with_items for name in h.coverage})
    out = []
    for name in names:
        usual = median(h.coverage.get(name, 0.0) for h in with_items)
        seen = run.coverage.get(name, 0.0)
        if usual >= limits.coverage_before and seen < usual - limits.coverage_drop:
            out.append(_finding("field_coverage", usual, seen, field=name))
    return out


def findings_of(report: str | None) -> list[dict[str, Any]]:
    """The findings of a job's `anomalies` report (JSON text), [] when there are none."""
    if not report:
        return []
    try:
        found = json.loads(report).get("findings")
    except (ValueError, AttributeError):
        return []
    return [f for f in found if isinstance(f, dict)] if isinstance(found, list) else []
