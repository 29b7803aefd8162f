"""Pure helpers of the coin API: items.jl lines to index rows, and request values checked.

Kept apart from the SQLite index and the HTTP routes so that every rule (what counts as a
complete line, which record is a coin, how a coin list or a time is read) is one function
that tests call directly.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from coinspiders.jobfolder import MAX_COINS, coin_output, coin_task, format_utc

# The length of one coin name in a start request.
MAX_COIN_LEN = 100
# Sorts coins without a market cap rank after every ranked one.
UNRANKED = 1 << 62

NOT_COMPLETED = "Task not completed yet"

# The currency of a record that does not name one: coin pages show US dollars, and
# `cmc_api` converts to USD unless told otherwise.
DEFAULT_CURRENCY = "USD"
# A currency code as the Pro API's `convert` takes it (USD, EUR, BTC, ...).
_CURRENCY_RE = re.compile(r"^[A-Za-z0-9]{1,10}$")


class RequestError(ValueError):
    """A request value we refuse; the message is shown to the client as is."""


@dataclass(frozen=True)
class Line:
    """One complete line of items.jl and the byte offset where it starts."""

    pos: int
    data: bytes


@dataclass(frozen=True)
class Row:
    """What the index keeps of one items.jl record."""

    coin_id: int | None
    symbol: str | None
    slug: str | None
    query: str | None
    source: str | None
    currency: str
    rank_key: int
    ts: str
    price: int | float | None
    market_cap: int | float | None
    volume: int | float | None
    logo_path: str | None
    error: bool
    platforms: tuple[str, ...]
    doc: str


def complete_lines(buf: bytes, base: int) -> tuple[list[Line], int]:
    """The complete lines of `buf` (read from byte `base` of a file) and the next offset.

    A last line without its newline is a line still being written (or torn by a killed
    crawl): it is left for the next read, so the offset stops before it.
    """
    end = buf.rfind(b"\n")
    if end < 0:
        return [], base
    lines: list[Line] = []
    start = 0
    while start <= end:
        nl = buf.index(b"\n", start)
        chunk = buf[start:nl]
        if chunk.strip():
            lines.append(Line(base + start, chunk))
        start = nl + 1
    return lines, base + end + 1


def parse_time(value: str) -> str:
    """An ISO 8601 date or time as the index's sortable UTC form, or ValueError.

    Naive times are taken as UTC; a bare date is its midnight.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty time")
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_utc(moment)


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def currency_code(value: Any) -> str | None:
    """A currency code in upper case (`eur` -> `EUR`), or None when `value` is not one."""
    if not isinstance(value, str) or not _CURRENCY_RE.match(value.strip()):
        return None
    return value.strip().upper()


def job_currency(manifest: Any) -> str | None:
    """The `convert` currency a job was started with, from its job.json; None if unsaid.

    Only a `cmc_api` job's records can be in another currency than USD, and records
    written before they carried `currency` only say so through the job's arguments.
    """
    if not isinstance(manifest, Mapping):
        return None
    arguments = manifest.get("arguments")
    if not isinstance(arguments, Mapping):
        return None
    return currency_code(arguments.get("convert"))


def record_currency(record: Mapping[str, Any], job_convert: Callable[[], str | None]) -> str:
    """The currency of a record's figures.

    A record names it since `currency` was added. Older ones: a coin page (source
    "page") is USD; an API record is in its job's `convert` (`job_convert` reads it from
    job.json, only when needed), and USD when the job does not say, which is `cmc_api`'s
    default but is an assumption for a job whose job.json is gone.
    """
    own = currency_code(record.get("currency"))
    if own is not None:
        return own
    if record.get("source") == "api":
        return job_convert() or DEFAULT_CURRENCY
    return DEFAULT_CURRENCY


def _no_job_currency() -> str | None:
    return None


def record_row(
    record: Any,
    fallback_ts: str,
    raw: bytes | None = None,
    job_convert: Callable[[], str | None] = _no_job_currency,
) -> Row | None:
    """The index row of one items.jl record, or None when it is neither a coin nor an error.

    `ts` (when the figures were true) is the record's `scraped_at`, else `last_updated`,
    else `fallback_ts` (when the line was read), so "latest" never depends on the order
    in which job folders happen to be read. `job_convert` gives the job's `convert`
    currency for API records older than the `currency` field (see record_currency).
    """
    if not isinstance(record, dict):
        return None
    error = bool(record.get("error"))
    coin_id = _int(record.get("id"))
    if coin_id is None and not error:
        return None
    ts = fallback_ts
    for key in ("scraped_at", "last_updated"):
        when = record.get(key)
        if isinstance(when, str):
            try:
                ts = parse_time(when)
                break
            except ValueError:
                continue
    rank = _int(record.get("market_cap_rank"))
    platforms: list[str] = []
    contracts = record.get("contracts")
    if isinstance(contracts, list) and not error:
        for contract in contracts:
            name = contract.get("name") if isinstance(contract, dict) else None
            if isinstance(name, str) and name.strip():
                platforms.append(name.strip().casefold())
    symbol = _text(record.get("symbol"))
    slug = _text(record.get("slug"))
    return Row(
        coin_id=coin_id,
        symbol=symbol.upper() if symbol else None,
        slug=slug.casefold() if slug else None,
        query=_text(record.get("query")),
        source=_text(record.get("source")),
        currency=record_currency(record, job_convert),
        rank_key=rank if rank is not None and rank > 0 else UNRANKED,
        ts=ts,
        price=_number(record.get("price")),
        market_cap=_number(record.get("market_cap")),
        volume=_number(record.get("volume")),
        logo_path=_text(record.get("logo_path")) if not error else None,
        error=error,
        platforms=tuple(dict.fromkeys(platforms)),
        doc=_doc(record, raw),
    )


def _doc(record: Any, raw: bytes | None) -> str:
    """The record as stored: the line as the spider wrote it when it is plain UTF-8."""
    if raw is not None:
        try:
            return raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            pass
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def rows_of(
    lines: Iterable[Line],
    fallback_ts: str,
    job_convert: Callable[[], str | None] = _no_job_currency,
) -> Iterator[tuple[int, Row]]:
    """(offset, row) for every line that is a JSON coin or error record; others are skipped."""
    for line in lines:
        try:
            record = json.loads(line.data)
        except ValueError:
            continue
        row = record_row(record, fallback_ts, line.data, job_convert)
        if row is not None:
            yield line.pos, row


def task_outputs(
    coins: Iterable[str],
    found: Mapping[str, Mapping[str, Any]],
    ended: tuple[str, str | None] | None,
) -> list[dict[str, Any]]:
    """The status endpoint's tasks: each coin's output, its error, or "not completed".

    `ended` is the job's final status and reason as it stood *before* items.jl was read
    (None while the job still ran then). Only a job that had already ended before that
    read can be missing a coin for good: a job that ends during or after the read may
    still have lines the read did not see, so its missing coins are "not completed yet".
    """
    tasks = []
    for coin in coins:
        record = found.get(coin)
        if record is not None:
            output: Any = coin_output(record)
        elif ended is not None:
            status, reason = ended
            why = f": {reason}" if reason else ""
            output = {"error": f"Not collected, the job ended {status}{why}"}
        else:
            output = NOT_COMPLETED
        tasks.append(coin_task(coin, output))
    return tasks


def parse_coins(value: Any) -> list[str]:
    """The coins of a start request, each asked once (case-insensitive, first spelling kept).

    Accepts a JSON list of strings, or (from a form) a list of strings that may hold
    comma-separated names. Raises RequestError with the message the client sees.
    """
    if value is None or value == [] or value == "":
        raise RequestError("No coins provided")
    if not isinstance(value, list):
        raise RequestError('"coins" must be a list of strings, e.g. ["BTC", "ETH"]')
    coins: dict[str, str] = {}
    for entry in value:
        if not isinstance(entry, str):
            raise RequestError('"coins" must be a list of strings, e.g. ["BTC", "ETH"]')
        for name in entry.split(","):
            coin = name.strip()
            if not coin:
                continue
            if len(coin) > MAX_COIN_LEN:
                raise RequestError(f"A coin name is longer than {MAX_COIN_LEN} characters")
            if any(ord(ch) < 32 or ord(ch) == 127 for ch in coin):
                raise RequestError(f"Coin {coin[:40]!r} holds a control character")
            coins.setdefault(coin.casefold(), coin)
    if not coins:
        raise RequestError("No coins provided")
    if len(coins) > MAX_COINS:
        raise RequestError(f"At most {MAX_COINS} coins per job ({len(coins)} given)")
    return list(coins.values())


def is_job_id(value: str) -> bool:
    """True for a job id as the daemon and the spiders make them: a UUID, canonical form.

    Other names in data/ (the daemon's `logs`, `projects`, a shell crawl's JOB_ID) are
    folders, not jobs the coin API answers for.
    """
    try:
        return str(uuid.UUID(value)) == value
    except (ValueError, TypeError, AttributeError):
        return False


def task_id(job_id: str, coin: str) -> str:
    """A stable id for one coin of one job: the same job and coin always give the same id."""
    try:
        namespace = uuid.UUID(job_id)
    except ValueError:
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"coinspiders:job:{job_id}")
    return str(uuid.uuid5(namespace, coin.casefold()))


def parse_task_ids(raw: str | None) -> list[str]:
    """The coins named by a status request's `task_ids`, in the order given.

    `task_ids` is the JSON string the start request answered (`{"coin": "<task id>"}`);
    a JSON list of coins is accepted too.
    """
    if raw is None or not raw.strip():
        raise RequestError("No task_ids provided")
    try:
        value = json.loads(raw)
    except ValueError:
        raise RequestError("Invalid task_ids format") from None
    if isinstance(value, dict):
        coins = list(value)
        if not all(isinstance(v, str) for v in value.values()):
            raise RequestError("Invalid task_ids format")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        coins = list(value)
    else:
        raise RequestError("Invalid task_ids format")
    if not coins:
        raise RequestError("No task_ids provided")
    if len(coins) > MAX_COINS:
        raise RequestError(f"At most {MAX_COINS} task_ids per request")
    return coins


def is_cmc_id(key: str) -> bool:
    """Whether a coin path names a CMC id: ASCII digits that fit SQLite's integer
    (`str.isdigit` also accepts `²`, which `int` refuses)."""
    return key.isascii() and key.isdigit() and len(key) <= 18


def unknown_coin_message(key: str, same_symbol: Iterable[tuple[str, int]] = ()) -> str:
    """Why a coin path found nothing, and how to find the coin that was meant.

    The path takes a CMC id or a slug; a symbol there (`btc`) finds nothing although the
    coin was collected, so the message says which coins have that symbol and where to
    look them up by symbol.
    """
    if is_cmc_id(key):
        return f"Coin {key!r} was never collected: no collected coin has the CMC id {key}"
    symbol = key.upper()
    message = (
        f"Coin {key!r} was never collected under that id or slug: this path takes a coin's "
        f"CMC id or slug (/api/coins/1/, /api/coins/bitcoin/), not its symbol; "
        f"find coins by symbol with /api/coins/?symbol={quote(symbol, safe='')}"
    )
    found = [f"{slug} (id {coin_id})" for slug, coin_id in same_symbol]
    if found:
        message += f". Collected coins with the symbol {symbol}: {', '.join(found)}"
    return message


def unknown_parameters(given: Iterable[str], accepted: Iterable[str], path: str) -> str | None:
    """The 400 message for parameters an endpoint does not take; None when all are known.

    A misspelt filter (`platfrom=solana`) must not answer the unfiltered list as if it
    had been applied.
    """
    known = tuple(accepted)
    unknown = sorted({name for name in given if name not in known})
    if not unknown:
        return None
    shown = ", ".join(repr(name[:40]) for name in unknown[:5])
    if len(unknown) > 5:
        shown += f" and {len(unknown) - 5} more"
    takes = ", ".join(known) if known else "no parameters"
    word = "parameter" if len(unknown) == 1 else "parameters"
    return f"Unknown {word} {shown}; {path} takes {takes}"
