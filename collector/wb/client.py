"""Fetching from the Wildberries seller API: statistics (orders, sales) and analytics (stock).

Only requests live here; turning rows into records is `collector.wb.normalize`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterator

from collector.config import Settings, WbAccount
from collector.http import ApiClient, ApiError, TokenBucket
from collector.timeutil import MOSCOW, format_wb_time, parse_wb_time

ORDERS = "/api/v1/supplier/orders"
SALES = "/api/v1/supplier/sales"
STOCKS = "/api/analytics/v1/stocks-report/wb-warehouses"
ORDER_FEED = "/api/analytics/v1/order-feed"
PING = "/ping"
STATISTICS_KEYS = {"orders": "srid", "sales": "saleID"}
STOCK_PAGE_LIMIT = 250_000
FEED_PAGE_LIMIT = 10_000


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
            "order-feed": TokenBucket(60 * factor, burst=1),
            "ping": TokenBucket(10 * factor, burst=3),
            "balance": TokenBucket(60 * factor, burst=1),
            "content": TokenBucket(0.6 * factor, burst=5),
        },
        default_retry_after={"orders": 60, "sales": 60, "stocks": 20, "ping": 10, "order-feed": 20,
                             "balance": 60, "content": 1},
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


def fetch_order_feed(api: ApiClient, settings: Settings, start: datetime) -> list[dict]:
    """Every order whose current status was reached since `start` (the feed matches its period
    on updatedAt); the latest copy of a srid wins.

    Page 1 omits snapshotTime; later pages repeat the first answer's, so offsets walk one frozen
    list. A page shorter than the limit is the last. WB_PAGE_ROWS lowers the page size below the
    documented 10,000 (tests use it to exercise paging).
    """
    limit = min(FEED_PAGE_LIMIT, settings.wb_page_rows)
    rows: dict[str, dict] = {}
    snapshot, offset = None, 0
    while True:
        pagination = {"offset": offset, "limit": limit} | ({"snapshotTime": snapshot} if snapshot else {})
        body = api.call("POST", settings.wb_analytics_url + ORDER_FEED, limit="order-feed",
                        endpoint=f"POST {ORDER_FEED}",
                        body={"selectedPeriod": {"start": format_feed_time(start)}, "pagination": pagination})
        data = body.get("data") if isinstance(body, dict) else None
        page = data.get("orders") if isinstance(data, dict) else None
        if not isinstance(page, list) or not all(isinstance(row, dict) for row in page):
            raise_shape(ORDER_FEED, '{"data": {"orders": [{...}, ...]}}')
        snapshot = snapshot or data.get("snapshotTime")
        rows.update((row.get("srid"), row) for row in page)
        if len(page) < limit:
            return list(rows.values())
        offset += limit


def format_feed_time(moment: datetime) -> str:
    """The feed takes times with an offset; Moscow's, to the second (cut down, never later)."""
    return moment.astimezone(MOSCOW).isoformat(timespec="seconds")


def ping(api: ApiClient, base_url: str) -> dict:
    return api.call("GET", base_url + PING, limit="ping", endpoint=f"GET {base_url}{PING}") or {}


def raise_shape(path: str, expected: str):
    raise ApiError(path, 200, f"unexpected answer shape: expected {expected}", "OK")


# -- optional datasets: balance (finance host) and product cards (content host) ----------------

BALANCE = "/api/v1/account/balance"
CARDS = "/content/v2/get/cards/list"
CARDS_PAGE = 100


def fetch_balance(api: ApiClient, settings: Settings) -> dict:
    """{currency, current, for_withdraw}; token category Finance."""
    answer = api.call("GET", settings.wb_finance_url + BALANCE, limit="balance", endpoint=f"GET {BALANCE}")
    if not isinstance(answer, dict):
        raise_shape(BALANCE, "a JSON object")
    return answer


def fetch_cards(api: ApiClient, settings: Settings) -> list[dict]:
    """Every product card (not in the trash), 100 a page; token category Content.

    The next page's cursor is the answer's `updatedAt` and `nmID`; a page whose `cursor.total`
    is below the limit is the last. A cursor that does not move ends the loop.
    """
    cards: list[dict] = []
    cursor: dict = {"limit": CARDS_PAGE}
    seen = set()
    while True:
        answer = api.call("POST", settings.wb_content_url + CARDS, limit="content", endpoint=f"POST {CARDS}",
                          body={"settings": {"sort": {"ascending": True}, "cursor": cursor,
                                             "filter": {"withPhoto": -1}}})
        if not isinstance(answer, dict) or not isinstance(answer.get("cards"), list):
            raise_shape(CARDS, '{"cards": [...], "cursor": {...}}')
        cards.extend(answer["cards"])
        got = answer.get("cursor") or {}
        position = (got.get("updatedAt"), got.get("nmID"))
        if (got.get("total") or 0) < CARDS_PAGE or position in seen or None in position:
            return cards
        seen.add(position)
        cursor = {"limit": CARDS_PAGE, "updatedAt": position[0], "nmID": position[1]}
