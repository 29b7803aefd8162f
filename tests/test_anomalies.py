"""daemon.anomalies: a run's figures against the median of its history (pure)."""

from __future__ import annotations

import json

from daemon.anomalies import RunFigures, compare, figures
from daemon.config import AnomalyConfig

LIMITS = AnomalyConfig()


def run(items: int = 100, coverage: dict[str, float] | None = None, **kw: object) -> RunFigures:
    return RunFigures(
        items=items,
        requests=kw.pop("requests", 100),  # type: ignore[arg-type]
        coverage=coverage if coverage is not None else {"name": 1.0, "market_cap": 1.0},
        **kw,  # type: ignore[arg-type]
    )


def whats(report: dict) -> list[tuple[str, str | None]]:
    return [(f["what"], f.get("field")) for f in report["findings"]]


def test_no_history_says_so() -> None:
    report = compare(run(), [], LIMITS)
    assert report["findings"] == [] and report["compared_with"] == 0
    assert report["note"].startswith("no history yet")


def test_a_run_like_its_history_has_no_findings() -> None:
    history = [run(items=98), run(items=100), run(items=103)]
    report = compare(run(items=97), history, LIMITS)
    assert report == {"compared_with": 3, "findings": []}


def test_a_field_whose_coverage_fell_is_named_with_its_shares() -> None:
    history = [run(coverage={"name": 1.0, "market_cap": 0.95}) for _ in range(3)]
    now = run(coverage={"name": 1.0, "market_cap": 0.1})
    (finding,) = compare(now, history, LIMITS)["findings"]
    assert finding == {
        "what": "field_coverage",
        "field": "market_cap",
        "expected": 0.95,
        "seen": 0.1,
    }
    # A field missing from the run's items altogether counts as empty in all of them.
    assert whats(compare(run(coverage={"name": 1.0}), history, LIMITS)) == [
        ("field_coverage", "market_cap")
    ]
    # A field that was often empty before is not a silent breakage when empty now.
    spotty = [run(coverage={"name": 1.0, "market_cap": 0.5}) for _ in range(3)]
    assert compare(now, spotty, LIMITS)["findings"] == []


def test_items_errors_retries_and_duration() -> None:
    history = [run(items=100, duration=100.0) for _ in range(3)]
    assert whats(compare(run(items=40, duration=100.0), history, LIMITS)) == [("items", None)]
    assert compare(run(items=60, duration=100.0), history, LIMITS)["findings"] == []
    errors = compare(run(errors=30, retries=40, duration=100.0), history, LIMITS)
    assert whats(errors) == [("error_rate", None), ("retry_rate", None)]
    assert errors["findings"][0]["expected"] == 0 and errors["findings"][0]["seen"] == 0.3
    assert whats(compare(run(duration=400.0), history, LIMITS)) == [("duration", None)]
    # Three times as long but only seconds longer: noise, not a finding.
    short = [run(duration=2.0) for _ in range(3)]
    assert compare(run(duration=9.0), short, LIMITS)["findings"] == []


def test_the_median_ignores_one_odd_run() -> None:
    history = [run(items=100), run(items=100), run(items=0, coverage={})]
    assert compare(run(items=95), history, LIMITS)["findings"] == []


def test_figures_read_scrapys_stats_and_survive_junk() -> None:
    stats = {
        "item_scraped_count": 5,
        "downloader/request_count": 10,
        "log_count/ERROR": 2,
        "retry/count": 1,
        "field_coverage": {"a": 1.0, "b": "x"},
    }
    got = figures(json.dumps(stats), 3.0)
    assert (got.items, got.requests, got.errors, got.retries, got.duration) == (5, 10, 2, 1, 3.0)
    assert got.coverage == {"a": 1.0} and got.error_rate == 0.2
    assert figures("not json", None) == RunFigures()
    assert figures(None, 1.0).items == 0
