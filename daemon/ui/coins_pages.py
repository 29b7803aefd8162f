"""The Coins page (latest record per coin, sparklines, search, sort, paging) and a
coin's page (history chart with range buttons, logo)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from klein import Klein
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred

from daemon.api.context import ApiContext
from daemon.api.http import arg
from daemon.coin_index import CoinFilter
from daemon.ui import fmt
from daemon.ui.kit import Kit, UiError, chart

COIN_PAGE = 50
RANGES = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "all": None}


def add_routes(app: Klein, ctx: ApiContext, kit: Kit) -> None:
    coins = ctx.coins
    tz = ctx.config.tz

    @app.route("/coins", methods=["GET"])
    def coins_page(request: Any) -> Deferred[bytes]:
        q = (arg(request, "q") or "").strip()
        currency = (arg(request, "currency") or "USD").strip().upper()[:10] or "USD"
        sort = arg(request, "sort") or "rank"
        page_raw = arg(request, "page") or "1"
        if not page_raw.isdigit() or int(page_raw) < 1:
            raise UiError("page must be a number from 1")
        page = int(page_raw)
        if sort not in ("rank", "price", "change", "cap"):
            raise UiError("sort is rank, price, change or cap")
        offset = (page - 1) * COIN_PAGE
        if q:
            by_symbol = coins.coins(
                CoinFilter(symbol=q, currency=currency), COIN_PAGE + 1, offset, sort
            )

            def or_slug(found: list[dict[str, Any]]) -> Any:
                if found:
                    return found
                return coins.coins(
                    CoinFilter(slug=q, currency=currency), COIN_PAGE + 1, offset, sort
                )

            d: Deferred[list[dict[str, Any]]] = by_symbol.addCallback(or_slug)
        else:
            d = coins.coins(CoinFilter(currency=currency), COIN_PAGE + 1, offset, sort)
        since = datetime.fromtimestamp(time.time() - 7 * 86400, tz).isoformat()

        def with_sparks(found: list[dict[str, Any]]) -> Deferred[bytes]:
            more = len(found) > COIN_PAGE
            found = found[:COIN_PAGE]
            keys = [str(c.get("id") or c.get("slug")) for c in found]
            ds = [coins.history(k, since, None, 2000, 0, currency) for k in keys]

            def done(results: list[tuple[bool, Any]]) -> bytes:
                rows = []
                for coin, (ok, history) in zip(found, results, strict=True):
                    prices = [h["price"] for h in history] if ok else []
                    rows.append({**coin, "spark": fmt.sparkline(_thin(prices, 100))})
                kept = {k: v for k, v in (("q", q), ("currency", currency), ("sort", sort)) if v}
                return kit.render(
                    request,
                    "coins.html",
                    0,
                    coins=rows,
                    q=q,
                    currency=currency,
                    sort=sort,
                    page=page,
                    kept=kept,
                    prev_link=coin_link(kept, page - 1) if page > 1 else None,
                    next_link=coin_link(kept, page + 1) if more else None,
                )

            return DeferredList(ds, consumeErrors=True).addCallback(done)

        return d.addCallback(with_sparks)

    @app.route("/coins/<string:key>", methods=["GET"])
    def coin_page(request: Any, key: str) -> Deferred[bytes]:
        currency = (arg(request, "currency") or "USD").strip().upper()[:10] or "USD"
        span = arg(request, "range") or "7d"
        if span not in RANGES:
            raise UiError("range is 24h, 7d, 30d or all")
        seconds = RANGES[span]
        since = (
            datetime.fromtimestamp(time.time() - seconds, tz).isoformat()
            if seconds is not None
            else None
        )
        d = maybeDeferred(coins.coin, key, currency)

        def with_history(coin: dict[str, Any]) -> Deferred[bytes]:
            def done(history: list[dict[str, Any]]) -> bytes:
                series = [
                    [_epoch(h["time"]) for h in history],
                    [h["price"] for h in history],
                ]
                drawn = chart([currency], series)
                return kit.render(
                    request,
                    "coin.html",
                    1,
                    coin=coin,
                    key=key,
                    currency=currency,
                    span=span,
                    ranges=list(RANGES),
                    points=len(history),
                    series=drawn,
                )

            return coins.history(key, since, None, 10000, 0, currency).addCallback(done)

        return d.addCallback(with_history)

    @app.route("/coins/<string:key>/logo.png", methods=["GET"])
    def coin_logo(request: Any, key: str) -> Deferred[bytes]:
        def send(data: bytes | None) -> bytes:
            if data is None:
                raise UiError("No logo", 404)
            request.setHeader(b"Content-Type", b"image/png")
            request.setHeader(b"Cache-Control", b"max-age=3600")
            return data

        return maybeDeferred(coins.logo, key).addCallback(send)


def coin_link(kept: dict[str, str], page: int) -> str:
    return "coins?" + urlencode({**kept, "page": str(page)})


def _epoch(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _thin(values: list[Any], most: int) -> list[Any]:
    """At most `most` values, evenly picked, the last one kept."""
    if len(values) <= most:
        return values
    step = len(values) / most
    picked = [values[int(i * step)] for i in range(most - 1)]
    return [*picked, values[-1]]
