"""Wildberries datasets: stocks (wb-warehouses), orders and sales (statistics or the order feed,
WB_ORDERS_SOURCE), and the optional balance and product cards. Each collector fetches
(collector/wb/client.py) and normalises (collector/wb/normalize.py), and returns what to write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from collector import logs, rejects
from collector.dataset import WATERMARK_OVERLAP, Collected, Context
from collector.http import ApiError
from collector.records import OrderLine, gc_paused
from collector.storage import Storage
from collector.timeutil import MOSCOW, iso, local_midnight, parse_wb_time
from collector.wb import client as wb_api
from collector.wb import normalize as wb_norm

def wb_statistics(ctx: Context, dataset: str) -> Collected:
    stored = ctx.storage.watermark(ctx.account.account, dataset)
    date_from = (datetime.fromisoformat(stored) - WATERMARK_OVERLAP if stored
                 else local_midnight(ctx.now, ctx.zone))
    rows = wb_api.fetch_statistics(ctx.api, ctx.settings, dataset, date_from)
    batch = WbBatch.of(dataset, rows, ctx.account.account, ctx.zone)
    latest = max((parse_wb_time(row.get("lastChangeDate")) for row in rows), default=None)
    watermark = max(filter(None, [latest, datetime.fromisoformat(stored) if stored else None]), default=None)

    def write(storage: Storage) -> None:
        if dataset == "sales" and storage.state(feed_sales_key(ctx.account.account)):
            # Back on statistics after the feed: its own S/R rows replace the feed's for their orders.
            storage.drop_feed_sales(ctx.account.account, batch.records)
        storage.replace_note(ctx.account.account, dataset, None, ctx.now_iso, FEED)  # the feed's, if any
        batch.write(storage, ctx.now_iso)
        if watermark:
            storage.set_watermark(ctx.account.account, dataset, watermark.astimezone(MOSCOW).isoformat(),
                                  ctx.now_iso)

    return Collected(len(rows), write, batch.rejected)


@dataclass
class WbBatch:
    """WB statistics rows normalised: orders or sales, and the products they describe."""
    dataset: str
    records: list
    products: list
    rejected: list = field(default_factory=list)  # rows set aside (collector/rejects.py)

    @classmethod
    def of(cls, dataset: str, rows: list[dict], account: str, zone) -> "WbBatch":
        with gc_paused():
            return cls._of(dataset, rows, account, zone)

    @classmethod
    def _of(cls, dataset: str, rows: list[dict], account: str, zone) -> "WbBatch":
        if dataset == "orders":
            read = rejects.read_rows(rows, lambda row: wb_norm.order_line(row, account, zone), "orders rows")
            records = read.records
        else:
            read = rejects.read_rows(rows, lambda row: wb_norm.sale_event(row, account, zone), "sales rows")
            records = [event for event in read.records if event]
            if len(records) < len(read.records):
                logs.event(logging.INFO, f"{account} sales: {len(read.records) - len(records)} rows of other "
                           "kinds than S (sale) and R (return) not counted", event="skipped_rows", account=account)
        return cls(dataset, records, wb_norm.products(read.rows, account), read.rejected)

    def write(self, storage: Storage, now_iso: str) -> None:
        # Statistics rows name a product by its subject: it only fills a name no card gave.
        storage.write_products(self.products, now_iso, names_fill_only=True)
        (storage.write_orders if self.dataset == "orders" else storage.write_sales)(self.records)


def wb_stocks(ctx: Context) -> Collected:
    items = wb_api.fetch_stock_items(ctx.api, ctx.settings)
    levels = wb_norm.stock_levels(items, ctx.account.account)

    def write(storage: Storage) -> None:
        # (named by the cards as they are written: the catalogue of this very pass included)
        named = wb_norm.named_sizes(levels, storage.size_names(ctx.account.account))
        storage.write_stock(ctx.account.account, named, ctx.now_iso, ctx.today, ctx.run_id)
    return Collected(len(items), write)



# -- Wildberries: where orders and sales come from (WB_ORDERS_SOURCE) --------------------------
#
# statistics: supplier/orders and supplier/sales. order-feed: POST order-feed, fetched once a pass
# for both datasets (its limit is 1 a minute). auto: statistics until WB answers that a method is
# gone (404/410), then the feed for good: the switch is kept per cabinet in collector_state and
# shown on the freshness page. The feed starts from the statistics watermarks less the overlap,
# so nothing is skipped; orders land on the same srid keys, and a feed sale or return is left out
# when its order already has one of that kind, so nothing counts twice (wb_feed_sales).

FEED = "order-feed"
FEED_ROWS = "order-feed rows"
METHOD_GONE = (404, 410)
# The feed serves 31 days back at most; the margin keeps both sides' clocks out of the edge.
FEED_REACH = timedelta(days=31) - timedelta(minutes=10)


SWITCHED = "switched to the feed"  # in Context.memo: this pass switched the cabinet to the feed


def feed_state_key(account: str) -> str:
    return f"wb_orders_source:{account}"


def feed_sales_key(account: str) -> str:
    """Set once the feed has written sales: statistics then checks for them (wb_statistics)."""
    return f"wb_feed_sales:{account}"


def wb_orders_source(ctx: Context, dataset: str) -> Collected:
    source = ctx.settings.wb_orders_source
    if source == FEED or (source == "auto" and (ctx.memo.get(SWITCHED)
                                                or ctx.storage.state(feed_state_key(ctx.account.account)))):
        return wb_feed(ctx, dataset)
    try:
        return wb_statistics(ctx, dataset)
    except ApiError as gone:
        if source != "auto" or gone.status not in METHOD_GONE:
            raise
        return wb_switch_to_feed(ctx, dataset, gone)


def wb_switch_to_feed(ctx: Context, dataset: str, gone: ApiError) -> Collected:
    """Statistics says its method is gone: this dataset comes from the feed from now on. The
    switch is saved with the dataset's rows (its savepoint), so a failed write leaves it untried."""
    try:
        collected = wb_feed(ctx, dataset)
        ctx.memo[SWITCHED] = True  # (the switch is written at the pass's end: the next dataset knows now)
    except ApiError as exc:
        raise ApiError(exc.endpoint, exc.status, f"{exc.detail} (the order feed was tried because "
                       f"{gone.endpoint} answered HTTP {gone.status}: the method is gone)", exc.reason) from None

    def write(storage: Storage) -> None:
        record_feed_switch(ctx, storage, gone)
        collected.write(storage)

    return Collected(collected.rows, write, collected.rejected)


def record_feed_switch(ctx: Context, storage: Storage, gone: ApiError) -> None:
    account = ctx.account.account
    method = gone.endpoint.split()[-1].removeprefix("/api/v1/")
    note = f"заказы и продажи идут из order-feed: WB отключил {method} ({gone.status}) {ctx.today}"
    storage.set_state(feed_state_key(account), note, ctx.now_iso)
    for dataset in ("orders", "sales"):
        storage.replace_note(account, dataset, note, ctx.now_iso, FEED)
    logs.event(logging.WARNING, f"{account}: {gone.endpoint} answered HTTP {gone.status} (the method is gone): "
               "orders and sales come from the order feed from now on", event="source_switch",
               account=account, source=FEED)


def feed_note(ctx: Context, storage: Storage) -> str:
    return (storage.state(feed_state_key(ctx.account.account))
            or "заказы и продажи идут из order-feed: так задано в WB_ORDERS_SOURCE")


def wb_feed(ctx: Context, dataset: str) -> Collected:
    rows, start = feed_rows(ctx)
    account = ctx.account.account
    if dataset == "orders":
        read = rejects.read_rows(rows, lambda row: wb_norm.feed_order_line(row, account, ctx.zone), FEED_ROWS)
        records = read.records
        save = lambda storage: storage.write_orders(with_stored_details(storage, account, records))  # noqa: E731
    else:
        read = rejects.read_rows(rows, lambda row: wb_norm.feed_sale_events(row, account, ctx.zone), FEED_ROWS)
        records = [event for events in read.records for event in events]
        save = lambda storage: wb_feed_sales(storage, account, records, ctx.now_iso)  # noqa: E731
    stored = ctx.storage.watermark(account, dataset)
    watermark = max(filter(None, [start, *(datetime.fromisoformat(r.changed_at) for r in records),
                                  datetime.fromisoformat(stored) if stored else None]))

    def write(storage: Storage) -> None:
        save(storage)
        storage.set_watermark(account, dataset, watermark.astimezone(MOSCOW).isoformat(), ctx.now_iso)
        storage.replace_note(account, dataset, feed_note(ctx, storage), ctx.now_iso, FEED)

    return Collected(len(rows), write, read.rejected)


def feed_rows(ctx: Context) -> tuple[list[dict], datetime]:
    """The feed since the earlier watermark of orders and sales, fetched once per account and
    pass; a failure is kept too, so the second dataset does not spend the limit again."""
    if FEED not in ctx.memo:
        start = feed_start(ctx)
        try:
            ctx.memo[FEED] = (wb_api.fetch_order_feed(ctx.api, ctx.settings, start), start)
        except ApiError as exc:
            ctx.memo[FEED] = exc
    fetched = ctx.memo[FEED]
    if isinstance(fetched, ApiError):
        raise fetched
    return fetched


def feed_start(ctx: Context) -> datetime:
    """Where statistics (or the feed) stopped, less the overlap; today's midnight for a dataset
    never fetched; never further back than the feed reaches."""
    marks = [ctx.storage.watermark(ctx.account.account, dataset) for dataset in ("orders", "sales")]
    start = min(datetime.fromisoformat(mark) - WATERMARK_OVERLAP if mark else local_midnight(ctx.now, ctx.zone)
                for mark in marks)
    reach = ctx.now - FEED_REACH
    if start < reach:
        logs.event(logging.WARNING, f"{ctx.account.account}: the order feed reaches back only to "
                   f"{iso(reach, ctx.zone)}; changes since {iso(start, ctx.zone)} before that are not loaded",
                   event="feed_gap", account=ctx.account.account)
    return max(start, reach)


def with_stored_details(storage: Storage, account: str, lines: list[OrderLine]) -> list[OrderLine]:
    """The feed names no article, size or barcode: an order line keeps what statistics stored."""
    stored = storage.wb_order_details(account, (line.order_id for line in lines))
    return [replace(line, article=known[0], size=known[1], barcode=known[2])
            if (known := stored.get(line.order_id)) else line for line in lines]


def wb_feed_sales(storage: Storage, account: str, events: list, now: str) -> None:
    """A feed sale or return is written only when its order has no sales row of that kind yet,
    whoever wrote it: a buyout statistics already gave (saleID S…) is not added again as the
    feed's (sale_id = srid), and a feed row seen again is not re-dated."""
    known = storage.sale_kinds(account, (event.order_id for event in events))
    fresh = [event for event in events if (event.order_id, event.kind) not in known]
    storage.write_sales(fresh)
    if fresh and not storage.state(feed_sales_key(account)):
        storage.set_state(feed_sales_key(account), "1", now)



# -- optional: balance and product cards (collector/optional.py) -------------------------------

def wb_balance(ctx: Context) -> Collected:
    balance = wb_norm.balance(wb_api.fetch_balance(ctx.api, ctx.settings), ctx.account.account, ctx.today)
    return Collected(1, lambda storage: storage.write_balance(balance, ctx.now_iso))


def wb_catalog(ctx: Context) -> Collected:
    """Product cards: real titles, and the chrtId -> techSize map that WB stock sizes need."""
    account = ctx.account.account
    cards = wb_api.fetch_cards(ctx.api, ctx.settings)
    read = rejects.read_rows(cards, lambda card: wb_norm.card(card, account), "cards")
    products = [product for card_products, _ in read.records for product in card_products]
    sizes = [size for _, card_sizes in read.records for size in card_sizes]

    def write(storage: Storage) -> None:
        storage.write_products(products, ctx.now_iso)
        storage.write_sizes(account, sizes, ctx.now_iso)

    return Collected(len(cards), write, read.rejected)


COLLECTORS = {
    "stocks": wb_stocks,
    "orders": lambda ctx: wb_orders_source(ctx, "orders"),
    "sales": lambda ctx: wb_orders_source(ctx, "sales"),
    "balance": wb_balance,
    "catalog": wb_catalog,
}
