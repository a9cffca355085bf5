"""Fetching from the Wildberries seller API: statistics (orders, sales) and analytics (stock).

Only requests live here; turning rows into records is `collector.wb.normalize`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterator

from collector.config import Settings, WbAccount
from collector.http import ApiClient, ApiError, TokenBucket
from collector.timeutil import format_wb_time, parse_wb_time

ORDERS = "/api/v1/supplier/orders"
SALES = "/api/v1/supplier/sales"
STOCKS = "/api/analytics/v1/stocks-report/wb-warehouses"
PING = "/ping"
STATISTICS_KEYS = {"orders": "srid", "sales": "saleID"}
STOCK_PAGE_LIMIT = 250_000


def make_client(account: WbAccount, settings: Settings) -> ApiClient:
    factor = settings.rate_limit_factor
    scheme = f"{settings.wb_auth_scheme} " if settings.wb_auth_scheme else ""
    return ApiClient(
        account=account.account,
        headers={"Authorization": scheme + account.token.reveal()},
        secrets=account.secrets,
        # The documented per-seller limits for Personal tokens.
        limits={
            "orders": TokenBucket(60 * factor, burst=10),
            "sales": TokenBucket(60 * factor, burst=1),
            "stocks": TokenBucket(20 * factor, burst=1),
            "ping": TokenBucket(10 * factor, burst=3),
        },
        default_retry_after={"orders": 60, "sales": 60, "stocks": 20, "ping": 10},
        timeout=settings.http_timeout,
        max_retry_wait=settings.max_retry_wait,
        backoff_factor=factor,
    )


def statistics_pages(api: ApiClient, settings: Settings, dataset: str,
                     date_from: datetime) -> Iterator[tuple[list[dict], datetime]]:
    """Pages of `orders` or `sales` rows changed since `date_from`, each with the cursor reached.

    flag=0 returns rows with lastChangeDate >= dateFrom, so the next page starts at the last
    row's lastChangeDate and its boundary rows come back again (callers dedupe by key).
    WB caps an answer at about 80 000 rows (`settings.wb_page_rows`); a shorter page is taken
    as the last one. Stopping there is safe: the next pass restarts from the stored watermark.
    """
    page_rows = settings.wb_page_rows
    path, key = (ORDERS if dataset == "orders" else SALES), STATISTICS_KEYS[dataset]
    cursor, seen = date_from, set()
    while True:
        page = api.call("GET", settings.wb_statistics_url + path, limit=dataset, endpoint=f"GET {path}",
                        params={"dateFrom": format_wb_time(cursor), "flag": 0}) or []
        if not isinstance(page, list):
            raise_shape(path, "a JSON array")
        fresh = sum(row.get(key) not in seen for row in page)
        seen.update(row.get(key) for row in page)
        last = parse_wb_time(page[-1].get("lastChangeDate")) if page else None
        yield page, max(filter(None, [last, cursor]))
        # A page that brings nothing new, or cannot move the cursor forward, ends the loop
        # instead of asking for the same rows again.
        if len(page) < page_rows or not fresh or last is None or last <= cursor:
            return
        cursor = last


def fetch_statistics(api: ApiClient, settings: Settings, dataset: str, date_from: datetime) -> list[dict]:
    """Every row changed since `date_from`; the latest copy of a key wins."""
    key = STATISTICS_KEYS[dataset]
    rows: dict[str, dict] = {}
    for page, _ in statistics_pages(api, settings, dataset, date_from):
        rows.update((row.get(key), row) for row in page)
    return list(rows.values())


def fetch_stock_items(api: ApiClient, settings: Settings) -> list[dict]:
    """All sizes on all warehouses; offset paging, one page in practice."""
    items: list[dict] = []
    offset = 0
    while True:
        # 204 is documented as "no data": no stock at all.
        body = api.call("POST", settings.wb_analytics_url + STOCKS, limit="stocks",
                        endpoint=f"POST {STOCKS}", empty_ok=True,
                        body={"nmIds": [], "limit": STOCK_PAGE_LIMIT, "offset": offset})
        page = ((body or {}).get("data") or {}).get("items") if body is not None else []
        if page is None or not isinstance(page, list):
            raise_shape(STOCKS, '{"data": {"items": [...]}}')
        items.extend(page)
        if len(page) < STOCK_PAGE_LIMIT:
            return items
        offset += STOCK_PAGE_LIMIT


def ping(api: ApiClient, base_url: str) -> dict:
    return api.call("GET", base_url + PING, limit="ping", endpoint=f"GET {base_url}{PING}") or {}


def raise_shape(path: str, expected: str):
    raise ApiError(path, 200, f"unexpected answer shape: expected {expected}", "OK")
