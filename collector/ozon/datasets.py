"""Ozon datasets: stocks (analytics stocks for the listed SKUs), orders (FBO postings: today's and
the still-open ones) with the buyouts they reveal, returns, and the optional balance and product
catalogue. Each collector fetches (collector/ozon/client.py) and normalises
(collector/ozon/normalize.py), and returns what to write.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from collector import optional, rejects
from collector.config import OzonAccount
from collector.dataset import WATERMARK_OVERLAP, Collected, Context
from collector.ozon import client as ozon_api
from collector.ozon import normalize as ozon_norm
from collector.records import OrderLine, gc_paused
from collector.storage import Storage
from collector.timeutil import local_day, local_midnight

OPEN_POSTINGS_WINDOW = timedelta(days=30)

def ozon_stocks(ctx: Context) -> Collected:
    """Stock of the configured SKUs, else of those the daily catalogue listed (listed now when
    it never ran, unless the key was refused it: then the SKUs of recent orders), plus SKUs with
    recent stock or orders."""
    account: OzonAccount = ctx.account
    catalog = None
    # (the catalogue of this very pass, written only at its end, else the one a pass before left)
    listed = ctx.memo.get(LISTED) or ctx.storage.state(listed_key(account.account))
    if (not account.skus and listed is None
            and not ctx.memo.get(optional.refused_key("catalog"))
            and not optional.resting_until(ctx.storage, account.account, "catalog", ctx.now)):
        catalog = ozon_catalog_records(ctx)
    listed_skus = catalog[1] if catalog else json.loads(listed or "[]")
    recent = ctx.storage.known_skus(account.account, local_day(ctx.now - OPEN_POSTINGS_WINDOW, ctx.zone))
    skus = list(dict.fromkeys([*account.skus, *([] if account.skus else listed_skus), *recent]))
    items = ozon_api.fetch_stock_items(ctx.api, ctx.settings, skus)
    levels = ozon_norm.stock_levels(items, account.account)
    products = ozon_norm.stock_products(items, account.account)

    def write(storage: Storage) -> None:
        if catalog:
            write_ozon_catalog(ctx, storage, catalog[0], catalog[1])
        storage.write_products(products, ctx.now_iso)
        storage.write_stock(account.account, levels, ctx.now_iso, ctx.today, ctx.run_id)

    # Products the list gave unreadably (a stock row is never set aside: rejects.py).
    return Collected(len(items), write, catalog[2] if catalog else [])


def ozon_orders(ctx: Context) -> Collected:
    """Today's postings, plus what became of the older ones still open, so deliveries are seen.

    Three requests kinds, each only as many pages as it needs:
    - every posting created since midnight (`ordered` today);
    - the postings stored as open from the last 30 days, by number, whatever their status now;
    - postings created before midnight since the last pass (a first run, downtime, or the last
      minutes of yesterday): none most of the time, 30 days on a first run.
    """
    midnight = local_midnight(ctx.now, ctx.zone)
    window_start = ctx.now - OPEN_POSTINGS_WINDOW
    account = ctx.account.account
    fetch = lambda **kw: ozon_api.fetch_postings(ctx.api, ctx.settings, **kw)  # noqa: E731
    postings = fetch(since=midnight, to=ctx.now)
    stored = ctx.storage.watermark(account, "orders")
    gap_start = max(window_start, datetime.fromisoformat(stored) - WATERMARK_OVERLAP) if stored else window_start
    if gap_start < midnight:
        postings += fetch(since=gap_start, to=midnight)
    listed = {p.get("posting_number") for p in postings}
    still_open = [number for number in ctx.storage.open_postings(
        account, local_day(window_start, ctx.zone), local_day(midnight, ctx.zone)) if number not in listed]
    if still_open:
        postings += fetch(since=window_start, to=ctx.now, posting_numbers=still_open)
    lines, products, rejected = read_postings(postings, account, ctx.zone, ctx.now_iso)

    def write(storage: Storage) -> None:
        write_postings(storage, lines, products, ctx.now_iso, ctx.today)
        storage.set_watermark(account, "orders", ctx.now_iso, ctx.now_iso)

    return Collected(len(postings), write, rejected)


def read_postings(postings: list[dict], account: str, zone, seen_at: str):
    """(order lines, products, postings set aside): an unreadable posting costs only itself."""
    with gc_paused():
        read = rejects.read_rows(postings, lambda p: (ozon_norm.posting_lines(p, account, zone, seen_at),
                                                      ozon_norm.posting_products(p, account)), "postings")
    lines = [line for posting_lines, _ in read.records for line in posting_lines]
    products = [product for _, posting_products in read.records for product in posting_products]
    return lines, products, read.rejected


def write_postings(storage: Storage, lines: list[OrderLine], products: list, seen_at: str, day: str) -> None:
    """Postings and the buyouts they reveal, judged against the statuses stored before."""
    buyouts = storage.ozon_buyouts(lines, seen_at, day)
    storage.write_products(products, seen_at)
    storage.write_orders(lines)
    storage.insert_new_sales(buyouts)


def ozon_returns(ctx: Context) -> Collected:
    """Ozon buyouts are written with the postings that reveal them (`ozon_orders`), in the same
    transaction as the status change; this dataset brings the FBO returns."""
    stored = ctx.storage.watermark(ctx.account.account, "sales")
    since = datetime.fromisoformat(stored) - WATERMARK_OVERLAP if stored else local_midnight(ctx.now, ctx.zone)
    items = ozon_api.fetch_returns(ctx.api, ctx.settings, since, ctx.now)
    events, rejected = read_returns(items, ctx.account.account, ctx.zone)

    def write(storage: Storage) -> None:
        storage.write_sales(events)
        storage.set_watermark(ctx.account.account, "sales", ctx.now_iso, ctx.now_iso)

    return Collected(len(items), write, rejected)


def read_returns(items: list[dict], account: str, zone):
    """(return events, items set aside): an unreadable return costs only itself."""
    read = rejects.read_rows(items, lambda item: ozon_norm.return_event(item, account, zone), "returns")
    return [event for event in read.records if event], read.rejected


# -- optional: balance and product catalogue (collector/optional.py) ---------------------------

def ozon_balance(ctx: Context) -> Collected:
    answer = ozon_api.fetch_balance(ctx.api, ctx.settings, ctx.today)
    balance = ozon_norm.balance(answer, ctx.account.account, ctx.today)
    return Collected(1, lambda storage: storage.write_balance(balance, ctx.now_iso))


LISTED = "catalog_skus"  # in Context.memo: the SKUs the catalogue listed in this pass


def listed_key(account: str) -> str:
    return f"catalog_skus:{account}"


def ozon_catalog_records(ctx: Context):
    """(products with names, their FBO SKUs, rows set aside) from the product list and info."""
    items = ozon_api.fetch_catalog(ctx.api, ctx.settings)
    read = rejects.read_rows(items, lambda item: ozon_norm.catalog_product(item, ctx.account.account), "products")
    return read.records, [product.sku for product in read.records], read.rejected


def write_ozon_catalog(ctx: Context, storage: Storage, products: list, skus: list) -> None:
    storage.write_products(products, ctx.now_iso)
    storage.set_state(listed_key(ctx.account.account), json.dumps(skus), ctx.now_iso)


def ozon_catalog(ctx: Context) -> Collected:
    products, skus, rejected = ozon_catalog_records(ctx)
    ctx.memo[LISTED] = json.dumps(skus)
    return Collected(len(products) + len(rejected),
                     lambda storage: write_ozon_catalog(ctx, storage, products, skus), rejected)


COLLECTORS = {
    "stocks": ozon_stocks,
    "orders": ozon_orders,
    "sales": ozon_returns,
    "balance": ozon_balance,
    "catalog": ozon_catalog,
}
