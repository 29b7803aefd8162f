"""The coin index on real job folders in a tmp dir: ingest by offset, torn lines, rebuild,
filters, paging, history, and the pure helpers behind it."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from daemon.coin_index import INDEX_FILE, CoinFilter, CoinIndex
from daemon.coin_records import (
    NOT_COMPLETED,
    RequestError,
    coin_output,
    complete_lines,
    is_job_id,
    parse_coins,
    parse_task_ids,
    parse_time,
    record_row,
    task_id,
    task_outputs,
)


def coin(
    coin_id: int,
    symbol: str,
    *,
    rank: int | None,
    price: float = 1.0,
    at: str = "2026-01-01T00:00:00.000Z",
    source: str = "page",
    platforms: tuple[str, ...] = (),
    query: str | None = None,
    logo: bool = True,
) -> dict[str, Any]:
    return {
        "id": coin_id,
        "name": symbol.title(),
        "symbol": symbol,
        "slug": symbol.lower() + "-coin",
        "price": price,
        "market_cap": price * 1000,
        "market_cap_rank": rank,
        "volume": price * 10,
        "contracts": [{"name": p, "address": f"0x{coin_id:040x}"} for p in platforms],
        "logo_path": f"Images/{coin_id}.png" if logo else None,
        "scraped_at": at,
        "source": source,
        "query": query if query is not None else symbol,
    }


def write_lines(data_dir: Path, job_id: str, records: list[Any], tail: bytes = b"") -> Path:
    folder = data_dir / job_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "items.jl"
    with path.open("ab") as fh:
        for record in records:
            raw = record if isinstance(record, bytes) else json.dumps(record).encode()
            fh.write(raw + b"\n")
        fh.write(tail)
    return path


@pytest.fixture
def index(tmp_path: Path) -> CoinIndex:
    idx = CoinIndex(tmp_path)
    idx.open()
    yield idx
    idx.close()


JOB_A = "11111111-1111-4111-8111-111111111111"
JOB_B = "22222222-2222-4222-8222-222222222222"


def stats(index: CoinIndex) -> dict[str, int]:
    """What the index holds, read through the calls the coin API makes."""
    jobs = [job for job in (JOB_A, JOB_B) if index.job_known(job)]
    return {
        "records": sum(len(index.job_records(job)) for job in jobs),
        "coins": len(index.coins(CoinFilter(), 1000, 0)),
        "jobs": len(jobs),
    }


# -- pure helpers ----------------------------------------------------------------


def test_complete_lines_keeps_torn_tail_for_later() -> None:
    lines, nxt = complete_lines(b'{"a":1}\n\n{"b":2}\n{"c":', 100)
    assert [(line.pos, line.data) for line in lines] == [(100, b'{"a":1}'), (109, b'{"b":2}')]
    assert nxt == 100 + len(b'{"a":1}\n\n{"b":2}\n')
    assert complete_lines(b'{"c":', 7) == ([], 7)


def test_parse_time_normalises_to_sortable_utc() -> None:
    assert parse_time("2026-01-02") == "2026-01-02T00:00:00.000Z"
    assert parse_time("2026-01-02T03:04:05.6789+02:00") == "2026-01-02T01:04:05.678Z"
    assert parse_time("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05.000Z"
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_record_row_reads_identity_platforms_and_time() -> None:
    row = record_row(coin(5, "duko", rank=7, platforms=("Solana", "solana ")), "x")
    assert row is not None
    assert (row.coin_id, row.symbol, row.slug, row.rank_key) == (5, "DUKO", "duko-coin", 7)
    assert row.platforms == ("solana",)
    assert row.ts == "2026-01-01T00:00:00.000Z"
    assert record_row({"name": "no id"}, "x") is None
    assert record_row(["not", "a", "dict"], "x") is None
    err = record_row({"query": "NOPE", "error": "not found"}, "2026-05-05T00:00:00.000Z")
    assert err is not None and err.error and err.coin_id is None and err.query == "NOPE"
    # An unranked coin sorts after every ranked one; a bad time falls back.
    late = record_row({"id": 9, "market_cap_rank": None, "scraped_at": "??"}, "fallback")
    assert late is not None and late.rank_key > 10**12 and late.ts == "fallback"


def test_parse_coins_dedupes_case_insensitively_and_rejects_bad_shapes() -> None:
    assert parse_coins(["DUKO", "duko", " NOT ", "GORILLA,Bitcoin"]) == [
        "DUKO",
        "NOT",
        "GORILLA",
        "Bitcoin",
    ]
    for empty in (None, [], "", [" ", ","]):
        with pytest.raises(RequestError, match="No coins provided"):
            parse_coins(empty)
    for wrong in ("BTC", {"a": 1}, [1, 2], ["BTC", None]):
        with pytest.raises(RequestError, match="list of strings"):
            parse_coins(wrong)
    with pytest.raises(RequestError, match="longer"):
        parse_coins(["x" * 101])
    with pytest.raises(RequestError, match="control"):
        parse_coins(["BT\nC"])


def test_task_ids_are_stable_and_parsed_in_order() -> None:
    job = str(uuid.uuid4())
    assert task_id(job, "DUKO") == task_id(job, "duko")
    assert task_id(job, "DUKO") != task_id(job, "NOT")
    assert task_id(job, "DUKO") != task_id(str(uuid.uuid4()), "DUKO")
    assert uuid.UUID(task_id("not-a-uuid", "BTC")).version == 5
    raw = json.dumps({"NOT": "t1", "DUKO": "t2"})
    assert parse_task_ids(raw) == ["NOT", "DUKO"]
    assert parse_task_ids('["A", "B"]') == ["A", "B"]
    for missing in (None, "", "  ", "{}"):
        with pytest.raises(RequestError, match="No task_ids provided"):
            parse_task_ids(missing)
    for bad in ("{not json", '"DUKO"', "[1]", '{"A": 1}', "3"):
        with pytest.raises(RequestError, match="Invalid task_ids format"):
            parse_task_ids(bad)


def test_coin_output_shows_figures_or_the_error() -> None:
    rec = coin(1, "BTC", rank=1)
    out = coin_output(rec)
    assert out["price"] == 1.0 and "query" not in out and "error" not in out
    assert coin_output({"query": "X", "error": "not found", "candidates": None}) == {
        "error": "not found"
    }
    assert NOT_COMPLETED == "Task not completed yet"


def test_job_ids_are_canonical_uuids_only() -> None:
    job = str(uuid.uuid4())
    assert is_job_id(job)
    for bad in ("logs", "projects", "job-1", job.upper(), job.replace("-", ""), f"{{{job}}}", ""):
        assert not is_job_id(bad), bad


def test_task_outputs_trust_only_an_end_seen_before_the_read() -> None:
    found = {"BTC": coin(1, "BTC", rank=1)}
    # Still running when items.jl was read: a missing coin may yet come.
    running = task_outputs(["BTC", "ETH"], found, None)
    assert [t["coin"] for t in running] == ["BTC", "ETH"]
    assert running[0]["output"]["id"] == 1 and running[1]["output"] == NOT_COMPLETED
    # Ended before the read: every line was there, so a missing coin is missing for good,
    # and a collected one is shown whatever the job's status.
    ended = task_outputs(["BTC", "ETH"], found, ("FAILED", "exit code 1"))
    assert ended[0]["output"]["id"] == 1
    assert ended[1]["output"] == {"error": "Not collected, the job ended FAILED: exit code 1"}
    done = task_outputs(["ETH"], {}, ("SUCCESSFUL", None))
    assert done == [{"coin": "ETH", "output": {"error": "Not collected, the job ended SUCCESSFUL"}}]


# -- ingest ----------------------------------------------------------------------


def test_ingest_reads_only_new_complete_lines(tmp_path: Path, index: CoinIndex) -> None:
    path = write_lines(tmp_path, JOB_A, [coin(1, "BTC", rank=1)], tail=b'{"id": 2, "sym')
    first = index.ingest_job(JOB_A)
    assert first.records == 1
    assert first.offset == path.read_bytes().index(b"\n") + 1
    # Nothing new: nothing read again.
    assert index.ingest_job(JOB_A).records == 0
    # The torn line is completed by the writer: read once, in full.
    with path.open("ab") as fh:
        fh.write(b'bol": "ETH", "market_cap_rank": 2, "query": "ETH"}\n')
    second = index.ingest_job(JOB_A)
    assert second.records == 1 and second.offset == path.stat().st_size
    assert [c["symbol"] for c in index.coins(CoinFilter(), 10, 0)] == ["BTC", "ETH"]
    assert stats(index) == {"records": 2, "coins": 2, "jobs": 1}


def test_corrupt_complete_line_is_skipped_not_fatal(tmp_path: Path, index: CoinIndex) -> None:
    write_lines(tmp_path, JOB_A, [b"{broken", coin(1, "BTC", rank=1), b"[1,2]"])
    assert index.ingest_job(JOB_A).records == 1
    assert index.coin("1")["symbol"] == "BTC"


def test_missing_items_file_and_bad_job_id(tmp_path: Path, index: CoinIndex) -> None:
    assert index.ingest_job(JOB_A).records == 0
    assert not index.job_known(JOB_A)
    with pytest.raises(ValueError):
        index.ingest_job("../etc")


def test_replaced_shorter_file_is_read_again(tmp_path: Path, index: CoinIndex) -> None:
    path = write_lines(tmp_path, JOB_A, [coin(1, "BTC", rank=1), coin(2, "ETH", rank=2)])
    assert index.ingest_job(JOB_A).records == 2
    path.write_bytes(json.dumps(coin(3, "SOL", rank=5)).encode() + b"\n")
    assert index.ingest_job(JOB_A).records == 1
    assert [c["symbol"] for c in index.coins(CoinFilter(), 10, 0)] == ["SOL"]
    assert index.coin("1") is None


def test_rebuild_from_folders_when_index_file_is_missing(tmp_path: Path) -> None:
    write_lines(tmp_path, JOB_A, [coin(1, "BTC", rank=1, at="2026-01-01T00:00:00Z")])
    write_lines(tmp_path, JOB_B, [coin(1, "BTC", rank=1, price=2.0, at="2026-01-02T00:00:00Z")])
    (tmp_path / "logs").mkdir()
    (tmp_path / "not a job").mkdir()
    idx = CoinIndex(tmp_path)
    assert idx.open() is True  # a new file must be rebuilt
    assert idx.rebuild() == 2
    assert idx.coin("1")["price"] == 2.0
    idx.close()
    # Opened again: nothing to rebuild, and nothing read twice.
    idx = CoinIndex(tmp_path)
    assert idx.open() is False
    assert idx.catch_up() == 0
    assert stats(idx)["records"] == 2
    idx.close()
    (tmp_path / INDEX_FILE).unlink()
    for extra in ("-wal", "-shm"):
        (tmp_path / (INDEX_FILE + extra)).unlink(missing_ok=True)
    idx = CoinIndex(tmp_path)
    assert idx.open() is True
    assert idx.rebuild() == 2
    assert [h["price"] for h in idx.history("1", None, None, 10, 0)] == [1.0, 2.0]
    idx.close()


def test_catch_up_reads_lines_written_while_closed(tmp_path: Path) -> None:
    idx = CoinIndex(tmp_path)
    assert idx.open() is True
    assert idx.rebuild() == 0
    write_lines(tmp_path, JOB_A, [coin(1, "BTC", rank=1)])
    idx.ingest_job(JOB_A)
    idx.close()
    write_lines(tmp_path, JOB_A, [coin(2, "ETH", rank=2)])
    write_lines(tmp_path, JOB_B, [coin(3, "SOL", rank=3)])
    idx = CoinIndex(tmp_path)
    assert idx.open() is False
    assert idx.catch_up() == 2
    assert stats(idx) == {"records": 3, "coins": 3, "jobs": 2}
    idx.close()
    # A job folder removed while the daemon was down takes its records with it.
    shutil.rmtree(tmp_path / JOB_A)
    idx = CoinIndex(tmp_path)
    assert idx.open() is False
    assert idx.catch_up() == 0
    assert stats(idx) == {"records": 1, "coins": 1, "jobs": 1}
    assert idx.coin("1") is None and idx.coin("3")["symbol"] == "SOL"
    idx.close()


# -- queries ---------------------------------------------------------------------


@pytest.fixture
def filled(tmp_path: Path, index: CoinIndex) -> CoinIndex:
    write_lines(
        tmp_path,
        JOB_A,
        [
            coin(1, "BTC", rank=1, price=100, at="2026-01-01T00:00:00Z"),
            coin(1027, "ETH", rank=2, price=10, at="2026-01-01T00:00:00Z"),
            coin(5, "DUKO", rank=740, platforms=("Solana",), at="2026-01-01T00:00:00Z"),
            coin(6, "HOT", rank=None, platforms=("Ethereum",), at="2026-01-01T00:00:00Z"),
            coin(7, "HOT", rank=60, platforms=("Ethereum", "BNB Smart Chain (BEP20)")),
            {"query": "NOPE", "error": "Coin NOPE not found"},
        ],
    )
    write_lines(
        tmp_path,
        JOB_B,
        [
            coin(1, "BTC", rank=1, price=120, at="2026-01-02T00:00:00Z", source="api"),
            coin(5, "DUKO", rank=700, price=3, platforms=("Solana",), at="2026-01-02T00:00:00Z"),
        ],
    )
    index.ingest_job(JOB_A)
    index.ingest_job(JOB_B)
    return index


def symbols(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(r["symbol"], r["id"]) for r in rows]


def test_list_is_latest_record_per_coin_by_rank(filled: CoinIndex) -> None:
    rows = filled.coins(CoinFilter(), 100, 0)
    assert symbols(rows) == [("BTC", 1), ("ETH", 1027), ("HOT", 7), ("DUKO", 5), ("HOT", 6)]
    btc = rows[0]
    assert btc["price"] == 120 and btc["job_id"] == JOB_B and btc["source"] == "api"
    assert "query" not in btc and "error" not in btc
    assert rows[3]["market_cap_rank"] == 700


def test_list_filters(filled: CoinIndex) -> None:
    assert symbols(filled.coins(CoinFilter(symbol="hot"), 100, 0)) == [("HOT", 7), ("HOT", 6)]
    assert symbols(filled.coins(CoinFilter(slug="DUKO-coin"), 100, 0)) == [("DUKO", 5)]
    assert symbols(filled.coins(CoinFilter(platform="ethereum"), 100, 0)) == [
        ("HOT", 7),
        ("HOT", 6),
    ]
    assert symbols(filled.coins(CoinFilter(platform="solana", symbol="DUKO"), 10, 0)) == [
        ("DUKO", 5)
    ]
    assert filled.coins(CoinFilter(platform="tron"), 100, 0) == []
    # source: the latest record of each coin from that source.
    page = filled.coins(CoinFilter(source="page"), 100, 0)
    assert ("BTC", 1) in symbols(page) and page[0]["price"] == 100
    assert symbols(filled.coins(CoinFilter(source="api"), 100, 0)) == [("BTC", 1)]
    # job: that job's records.
    job_a = filled.coins(CoinFilter(job=JOB_A), 100, 0)
    assert len(job_a) == 5 and all(r["job_id"] == JOB_A for r in job_a)
    assert symbols(filled.coins(CoinFilter(job=JOB_B, source="page"), 10, 0)) == [("DUKO", 5)]
    assert filled.coins(CoinFilter(job=str(uuid.uuid4())), 100, 0) == []


def test_list_paging(filled: CoinIndex) -> None:
    everything = symbols(filled.coins(CoinFilter(), 100, 0))
    pages = [symbols(filled.coins(CoinFilter(), 2, off)) for off in (0, 2, 4, 6)]
    assert pages[0] + pages[1] + pages[2] == everything
    assert [len(p) for p in pages] == [2, 2, 1, 0]


def test_detail_by_id_or_slug_and_history(filled: CoinIndex) -> None:
    assert filled.coin("5")["market_cap_rank"] == 700
    assert filled.coin("DUKO-COIN")["id"] == 5
    assert filled.coin("999") is None and filled.coin("nope") is None
    hist = filled.history("duko-coin", None, None, 100, 0)
    assert [(h["time"], h["price"], h["job_id"]) for h in hist] == [
        ("2026-01-01T00:00:00.000Z", 1.0, JOB_A),
        ("2026-01-02T00:00:00.000Z", 3, JOB_B),
    ]
    assert hist[0]["market_cap"] == 1000.0 and hist[1]["market_cap_rank"] == 700
    since = filled.history("5", parse_time("2026-01-01T12:00:00Z"), None, 100, 0)
    assert [h["job_id"] for h in since] == [JOB_B]
    until = filled.history("5", None, parse_time("2026-01-01"), 100, 0)
    assert [h["job_id"] for h in until] == [JOB_A]
    assert filled.history("nope", None, None, 10, 0) is None


def test_logo_task_records_and_job_records(filled: CoinIndex) -> None:
    assert filled.latest_logo("1") == (JOB_B, "Images/1.png")
    found = filled.task_records(JOB_A, ["btc", "NOPE", "ZZZ"])
    assert found["btc"]["id"] == 1
    assert found["NOPE"]["error"] == "Coin NOPE not found"
    assert "ZZZ" not in found
    assert [r.get("symbol") for r in filled.job_records(JOB_B)] == ["BTC", "DUKO"]
    assert filled.job_known(JOB_A) and not filled.job_known(str(uuid.uuid4()))


def test_older_record_read_later_does_not_replace_latest(tmp_path: Path, index: CoinIndex) -> None:
    write_lines(tmp_path, JOB_B, [coin(1, "BTC", rank=1, price=2, at="2026-02-01T00:00:00Z")])
    index.ingest_job(JOB_B)
    write_lines(tmp_path, JOB_A, [coin(1, "BTC", rank=1, price=1, at="2026-01-01T00:00:00Z")])
    index.ingest_job(JOB_A)
    assert index.coin("1")["price"] == 2
    index.forget_job(JOB_B)
    assert index.coin("1")["price"] == 1
    assert [h["price"] for h in index.history("1", None, None, 10, 0)] == [1]


def test_index_of_another_schema_version_is_dropped_and_rebuilt(tmp_path: Path) -> None:
    write_lines(tmp_path, JOB_A, [coin(1, "BTC", rank=1, price=5)])
    idx = CoinIndex(tmp_path)
    idx.open()
    idx.rebuild()
    conn = idx._conn()
    with conn:
        conn.execute("UPDATE meta SET value = 'old' WHERE key = 'schema'")
        conn.execute("DROP TABLE latest")
        conn.execute("CREATE TABLE latest (whatever TEXT)")
    idx.close()
    idx = CoinIndex(tmp_path)
    assert idx.open() is True
    assert idx.rebuild() == 1
    assert idx.coin("bitcoin") is None and idx.coin("btc-coin")["price"] == 5
    # Integral figures stay integers (NUMERIC columns), as the spider wrote them.
    assert idx.history("1", None, None, 10, 0)[0]["market_cap"] == 5000
    assert isinstance(idx.history("1", None, None, 10, 0)[0]["price"], int)
    idx.close()


def test_bulk_rebuild_answers_as_incremental_ingest_did(filled: CoinIndex) -> None:
    filters = [
        CoinFilter(),
        CoinFilter(source="page"),
        CoinFilter(source="api"),
        CoinFilter(symbol="HOT"),
        CoinFilter(platform="solana"),
        CoinFilter(job=JOB_A),
    ]
    before = [filled.coins(f, 100, 0) for f in filters]
    history = filled.history("1", None, None, 100, 0)
    assert filled.rebuild() == 8
    assert [filled.coins(f, 100, 0) for f in filters] == before
    assert filled.history("1", None, None, 100, 0) == history
    # Offsets are kept by the rebuild: nothing is read twice afterwards.
    assert filled.catch_up() == 0


def test_unreadable_index_file_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    write_lines(tmp_path, JOB_A, [coin(1, "BTC", rank=1)])
    (tmp_path / INDEX_FILE).write_bytes(b"this is not a database" * 100)
    idx = CoinIndex(tmp_path)
    assert idx.open() is True
    assert idx.rebuild() == 1
    assert idx.coin("1")["symbol"] == "BTC"
    assert (tmp_path / (INDEX_FILE + ".broken")).read_bytes().startswith(b"this is not")
    idx.close()
