"""Fetching from the Ozon Seller API (FBO): product catalogue, stock, postings, returns, balance.

Only requests live here; turning answers into records is `collector.ozon.normalize`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from collector.config import OzonAccount, Settings
from collector.http import ApiClient, ApiError, TokenBucket
from collector.timeutil import format_ozon_time

PRODUCT_LIST = "/v3/product/list"
PRODUCT_INFO = "/v3/product/info/list"
STOCKS = "/v1/analytics/stocks"
POSTINGS = "/v3/posting/fbo/list"
RETURNS = "/v1/returns/list"
ROLES = "/v1/roles"
BALANCE = "/v1/finance/balance"

PRODUCT_PAGE = 1000
STOCK_BATCH = 100
POSTING_PAGE = 100
POSTING_NUMBERS_PER_REQUEST = 1000
RETURN_PAGE = 500
OPEN_STATUSES = ("awaiting_packaging", "awaiting_deliver", "delivering")


def make_client(account: OzonAccount, settings: Settings) -> ApiClient:
    factor = settings.rate_limit_factor
    return ApiClient(
        account=account.account,
        headers={"Client-Id": account.client_id, "Api-Key": account.api_key.reveal()},
        secrets=account.secrets,
        # Ozon allows 50 requests/s per Client-Id across methods; 20/s leaves room for the
        # seller's other tools on the same key.
        limits={"api": TokenBucket(0.05 * factor, burst=20)},
        default_retry_after={"api": 1},
        timeout=settings.http_timeout,
        max_retry_wait=settings.max_retry_wait,
        backoff_factor=factor,
    )


def _post(api: ApiClient, settings: Settings, path: str, body: dict) -> dict:
    answer = api.call("POST", settings.ozon_api_url + path, limit="api", endpoint=f"POST {path}", body=body)
    if not isinstance(answer, dict):  # Ozon documents no empty answer, so the call never gives None
        raise ApiError(f"POST {path}", 200, "unexpected answer shape: expected a JSON object", "OK")
    return answer


def fetch_catalog(api: ApiClient, settings: Settings) -> list[dict]:
    """Every product not archived: its /v3/product/list row with the /v3/product/info/list item
    (name, barcodes, sources) merged in under "info". The info is asked for every product, not
    only those the list gives no `sku`: a product's FBO SKU may differ from the list's one
    (sources), and the names come from there."""
    items = _product_list(api, settings)
    info = _product_info(api, settings, [str(item["product_id"]) for item in items
                                         if item.get("product_id") not in (None, "")])
    return [{**item, "info": info.get(str(item.get("product_id"))) or {}} for item in items]


def _product_list(api: ApiClient, settings: Settings) -> list[dict]:
    items: list[dict] = []
    last_id = ""
    while True:
        result = _post(api, settings, PRODUCT_LIST,
                       {"filter": {"visibility": "ALL"}, "last_id": last_id, "limit": PRODUCT_PAGE}).get("result") or {}
        page = result.get("items") or []
        items.extend(page)
        last_id = result.get("last_id") or ""
        if len(page) < PRODUCT_PAGE or not last_id:
            return items


def _product_info(api: ApiClient, settings: Settings, product_ids: list[str]) -> dict[str, dict]:
    """{product_id: info item}; ids go as strings, as the reference asks, 1000 a request."""
    found = {}
    for batch in chunks(product_ids, 1000):
        for item in _post(api, settings, PRODUCT_INFO, {"product_id": batch}).get("items") or []:
            found[str(item.get("id"))] = item
    return found


def fetch_stock_items(api: ApiClient, settings: Settings, skus: Iterable[int]) -> list[dict]:
    items: list[dict] = []
    for batch in chunks([str(sku) for sku in skus], STOCK_BATCH):
        items.extend(_post(api, settings, STOCKS, {"skus": batch}).get("items") or [])
    return items


def fetch_postings(api: ApiClient, settings: Settings, since: datetime, to: datetime,
                   statuses: Iterable[str] = (), posting_numbers: Iterable[str] = ()) -> list[dict]:
    """FBO postings created in [since, to], cursor-paged, oldest first."""
    numbers = list(posting_numbers)
    if numbers:
        return [p for batch in chunks(numbers, POSTING_NUMBERS_PER_REQUEST)
                for p in _posting_pages(api, settings, since, to, statuses, batch)]
    return _posting_pages(api, settings, since, to, statuses, [])


def _posting_pages(api, settings, since, to, statuses, numbers) -> list[dict]:
    query_filter = {"since": format_ozon_time(since), "to": format_ozon_time(to)}
    if statuses:
        query_filter["statuses"] = list(statuses)
    if numbers:
        query_filter["posting_numbers"] = numbers
    postings: list[dict] = []
    cursor, seen_cursors = "", set()
    while True:
        answer = _post(api, settings, POSTINGS, {
            "cursor": cursor, "filter": query_filter, "limit": POSTING_PAGE, "sort_dir": "ASC",
            # financial_data: what the seller receives per product (payout, «к перечислению»)
            "with": {"analytics_data": True, "financial_data": True, "legal_info": False},
        })
        postings.extend(answer.get("postings") or [])
        cursor = answer.get("cursor") or ""
        if not answer.get("has_next") or not cursor:
            return postings
        if cursor in seen_cursors:  # a server that repeats itself must not loop us forever
            raise ApiError(f"POST {POSTINGS}", 200, "the cursor repeated itself; paging stopped")
        seen_cursors.add(cursor)


def fetch_returns(api: ApiClient, settings: Settings, since: datetime, to: datetime) -> list[dict]:
    """FBO returns whose status changed in [since, to], paged by `last_id`."""
    returns: list[dict] = []
    last_id = 0
    while True:
        answer = _post(api, settings, RETURNS, {
            "filter": {"visual_status_change_moment": {"time_from": format_ozon_time(since),
                                                       "time_to": format_ozon_time(to)},
                       "return_schema": "FBO"},
            "limit": RETURN_PAGE, "last_id": last_id,
        })
        page = answer.get("returns") or []
        returns.extend(page)
        if not answer.get("has_next") or not page:
            return returns
        next_id = int(page[-1].get("id") or 0)
        if next_id <= last_id:
            raise ApiError(f"POST {RETURNS}", 200, "last_id did not advance; paging stopped")
        last_id = next_id


def fetch_balance(api: ApiClient, settings: Settings, day: str) -> dict:
    """Финансы → Баланс for one local day (dates as YYYY-MM-DD, as the reference shows)."""
    return _post(api, settings, BALANCE, {"date_from": day, "date_to": day})


def roles(api: ApiClient, settings: Settings) -> dict:
    return _post(api, settings, ROLES, {})


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]
