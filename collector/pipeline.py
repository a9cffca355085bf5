"""One collector pass: every account x dataset, fetched in parallel across accounts, each
written in its own transaction, each logged in `fetch_log`.

A failing account or dataset never stops the others and never leaves half of its rows.
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from collector import alerts, aliases, logs, optional, rejects
from collector.config import Account, OzonAccount, Settings
from collector.http import DEPRECATED, ApiClient, ApiError, RequestStats
from collector.ozon import client as ozon_api
from collector.ozon import normalize as ozon_norm
from collector.records import BadRecord, OrderLine, gc_paused
from collector.storage import Storage, StorageError
from collector.timeutil import MOSCOW, iso, local_day, local_midnight, parse_wb_time, utc_now
from collector.wb import client as wb_api
from collector.wb import normalize as wb_norm

REQUIRED = ("stocks", "orders", "sales")
# The catalogue first: Ozon stock asks for the SKUs it lists, and WB stock names sizes by its cards.
# Optional datasets never change the exit code (collector/optional.py).
DATASETS = ("catalog", *REQUIRED, "balance")
# Re-read this much before the stored watermark: WB publishes changes in 30-minute batches and
# a row may show up with a lastChangeDate older than rows already seen.
WATERMARK_OVERLAP = timedelta(hours=1)
OPEN_POSTINGS_WINDOW = timedelta(days=30)


class AlreadyRunning(Exception):
    pass


@dataclass
class DatasetResult:
    account: str
    dataset: str
    status: str
    rows: int = 0
    requests: int = 0
    retries: int = 0
    duration_ms: int = 0
    error: str | None = None
    rejected: int = 0


@dataclass
class PassResult:
    run_id: int
    status: str
    datasets: list[DatasetResult]

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "ok" else 2


@dataclass
class Collected:
    """What a dataset fetched: how many records, how to write them in one transaction, and the
    rows set aside as unreadable (collector/rejects.py)."""
    rows: int
    write: Callable[[Storage], None]
    rejected: list = field(default_factory=list)


@dataclass
class Context:
    settings: Settings
    storage: Storage
    account: Account
    api: ApiClient
    run_id: int
    now: datetime
    # What the datasets of one account in one pass share: the order feed answers orders and
    # sales at once, and its 1-a-minute limit allows one fetch per pass.
    memo: dict = field(default_factory=dict)

    @property
    def zone(self):
        return self.settings.timezone

    @property
    def now_iso(self) -> str:
        return iso(self.now, self.zone)

    @property
    def today(self) -> str:
        return local_day(self.now, self.zone)


@contextmanager
def run_lock(database_path: Path):
    """One pass at a time per database, whoever starts it (timer, scheduler or a person)."""
    lock_path = Path(str(database_path) + ".lock")
    # A path that cannot work (below a regular file, in a read-only place) gets a message, not a traceback.
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot open the database {database_path}: its folder {lock_path.parent} "
                           f"cannot be created ({exc.strerror or exc})") from None
    try:
        handle = open(lock_path, "w")
    except OSError as exc:
        raise StorageError(f"cannot open the database {database_path}: cannot create {lock_path} "
                           f"({exc.strerror or exc})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(f"another collector pass is running on {database_path}; "
                                 f"this one exits without doing anything") from None
        yield


def run_pass(settings: Settings, storage: Storage, trigger: str = "manual",
             datasets: tuple[str, ...] = DATASETS, clock: Callable[[], datetime] = utc_now) -> PassResult:
    started = clock()
    storage.save_accounts((a.account, a.marketplace, a.label) for a in settings.accounts)
    sync_aliases(settings, storage, started)
    run_id = storage.start_run(iso(started, settings.timezone), trigger)
    with ThreadPoolExecutor(max_workers=max(1, len(settings.accounts)), thread_name_prefix="account") as pool:
        per_account = pool.map(lambda account: collect_account(settings, storage, account, run_id, datasets, clock),
                               settings.accounts)
        results = [result for batch in per_account for result in batch]
    status = pass_status(results)
    failed = sum(result.status == "failed" for result in results)
    required = [result for result in results if result.dataset not in optional.OPTIONAL]
    saved = sum(result.status == "ok" for result in required)
    storage.finish_run(run_id, iso(clock(), settings.timezone), status)
    logs.event(logging.INFO if status == "ok" else logging.WARNING,
               f"pass {run_id} {status}: {saved} of {len(required)} datasets saved"
               f"{optional_summary(results)}",
               event="pass", run_id=run_id, status=status, trigger=trigger,
               datasets=len(results), failed=failed,
               rows=sum(r.rows for r in results), requests=sum(r.requests for r in results),
               retries=sum(r.retries for r in results),
               duration_ms=int((clock() - started).total_seconds() * 1000))
    # After the writes: events into the outbox in one commit with the state that detected them,
    # then delivery. Never raises, and never changes the pass's status or exit code.
    alerts.after_pass(settings, storage, run_id, clock)
    return PassResult(run_id, status, results)


def optional_summary(results: list[DatasetResult]) -> str:
    """"; optional: 5 ok, 1 skipped" for the pass's log line (they never change its status)."""
    counts: dict[str, int] = {}
    for result in results:
        if result.dataset in optional.OPTIONAL:
            counts[result.status] = counts.get(result.status, 0) + 1
    return "; optional: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) if counts else ""


def pass_status(results: list[DatasetResult]) -> str:
    """ok, partial or failed, judged by the required datasets only."""
    required = [result for result in results if result.dataset not in optional.OPTIONAL]
    failed = sum(result.status == "failed" for result in required)
    return "ok" if not failed else ("failed" if failed == len(required) else "partial")


def collect_account(settings: Settings, storage: Storage, account: Account, run_id: int,
                    datasets: tuple[str, ...], clock: Callable[[], datetime]) -> list[DatasetResult]:
    make = wb_api.make_client if account.marketplace == "wb" else ozon_api.make_client
    api = make(account, settings)
    memo: dict = {}
    try:
        # Datasets named by hand (`run --dataset balance`) run now, due or resting.
        by_hand = tuple(datasets) != DATASETS
        results = (collect_dataset(Context(settings, storage, account, api, run_id, clock(), memo), dataset,
                                   by_hand) for dataset in datasets)
        return [result for result in results if result is not None]
    finally:
        api.close()


def collect_dataset(ctx: Context, dataset: str, by_hand: bool = False) -> DatasetResult | None:
    """Fetch, normalise and write one dataset; None when an optional one is not due this pass."""
    ctx.api.stats = RequestStats()
    started, started_at = time.monotonic(), ctx.now_iso
    result = DatasetResult(ctx.account.account, dataset, "ok")
    is_optional = dataset in optional.OPTIONAL
    if is_optional and not by_hand and optional.resting_until(ctx.storage, ctx.account.account, dataset, ctx.now):
        result.status = "skipped"  # refused its category lately: the note on the freshness page says so
        _finish(ctx, result, started, started_at, separate_transaction=True)
        return result
    if is_optional and not by_hand and not optional.due(ctx.storage, ctx.account.account, dataset, ctx.now):
        return None
    try:
        collected = COLLECTORS[ctx.account.marketplace, dataset](ctx)
        result.rows, result.rejected = collected.rows, len(collected.rejected)
        with ctx.storage.transaction():
            collected.write(ctx.storage)
            keep_rejected(ctx, dataset, collected.rejected)
            ctx.storage.replace_note(ctx.account.account, dataset, None, ctx.now_iso, REFUSAL_MARK)
            if is_optional:
                optional.end_rest(ctx.storage, ctx.account.account, dataset, ctx.now_iso)
            _finish(ctx, result, started, started_at)
    except Exception as exc:  # noqa: BLE001 - one dataset's failure must not stop the others
        result.status, result.error = "failed", ctx.api.redact(describe_failure(ctx, dataset, exc))
        if not isinstance(exc, (ApiError, BadRecord)):
            logs.get_logger().debug(ctx.api.redact(traceback.format_exc()))
        if is_optional and optional.refused(exc):
            with ctx.storage.transaction():
                optional.start_rest(ctx.storage, ctx.account.account, ctx.account.marketplace, dataset,
                                    exc.status, ctx.now, ctx.now_iso, ctx.zone)
        elif optional.refused(exc) and (note := refusal_note(ctx.account.marketplace, exc)):
            with ctx.storage.transaction():
                ctx.storage.replace_note(ctx.account.account, dataset, note, ctx.now_iso, REFUSAL_MARK)
        _finish(ctx, result, started, started_at, separate_transaction=True)
    logs.event(logging.INFO if result.status == "ok" else logging.ERROR,
               f"{result.account} {dataset}: ok, {result.rows} rows" if result.status == "ok" else result.error,
               event="dataset", run_id=ctx.run_id, account=result.account, dataset=dataset,
               status=result.status, rows=result.rows, requests=result.requests,
               retries=result.retries, duration_ms=result.duration_ms)
    return result


def keep_rejected(ctx: Context, dataset: str, rejected: list) -> None:
    """Rows set aside go to rejected_rows and the freshness note; none clears that note."""
    ctx.storage.write_rejected(ctx.account.account, dataset, rejected, ctx.now_iso)
    ctx.storage.replace_note(ctx.account.account, dataset, rejects.note(rejected), ctx.now_iso, rejects.NOTE_MARK)


def describe_failure(ctx: Context, dataset: str, exc: Exception) -> str:
    if isinstance(exc, ApiError):
        what = str(exc)
    elif isinstance(exc, BadRecord):
        # Records are read right after their answer arrives, so the latest endpoint sent them.
        what = (f"unreadable data from the marketplace: {exc} "
                f"({ctx.api.last_endpoint}: HTTP 200 OK, but the data is unreadable)")
    else:
        what = f"internal error: {type(exc).__name__}: {exc}"
    return f"{ctx.account.account} ({ctx.account.label}) {dataset}: {what}"


REFUSAL_MARK = "что сделать:"  # in every refusal note, and only there


def refusal_note(marketplace: str, exc: ApiError) -> str | None:
    """What a refusal of a required dataset means for the seller, in plain Russian, for the
    freshness page (cleared by the dataset's next success); None when the error says it all."""
    if exc.status == 404 and DEPRECATED.search(exc.detail):
        return (f"маркетплейс отключил метод {exc.endpoint}; прежние данные сохранены, "
                f"{REFUSAL_MARK} обновите MP Dashboard")
    if marketplace == "wb" and "base token" in exc.detail.lower():
        return f"токен типа Base сюда не пускают; {REFUSAL_MARK} выпустите персональный или сервисный токен"
    if marketplace == "wb" and exc.status in (401, 403):
        category = "Аналитика" if "/analytics/" in exc.endpoint else "Статистика"
        return (f"WB не принял токен: у него нет категории «{category}», или он отозван или истёк; "
                f"{REFUSAL_MARK} выпустите токен с категориями «Статистика» и «Аналитика» (WB_API_TOKEN)")
    if marketplace == "ozon" and exc.status == 403:
        return f"у API-ключа Ozon нет доступа к этому методу; {REFUSAL_MARK} выдайте ключу роль с доступом к FBO"
    return None


def _finish(ctx: Context, result: DatasetResult, started: float, started_at: str,
            separate_transaction: bool = False) -> None:
    stats = ctx.api.stats
    result.requests, result.retries = stats.requests, stats.retries
    result.duration_ms = int((time.monotonic() - started) * 1000)
    entry = dict(run_id=ctx.run_id, account=result.account, dataset=result.dataset, status=result.status,
                 started_at=started_at, finished_at=iso(utc_now(), ctx.zone), rows=result.rows,
                 requests=result.requests, retries=result.retries, duration_ms=result.duration_ms,
                 error=result.error, rejected=result.rejected)
    if separate_transaction:
        ctx.storage.log_fetch(entry)
    else:
        ctx.storage.db["fetch_log"].insert(entry)


# -- Wildberries ---------------------------------------------------------------------------

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
    levels = wb_norm.named_sizes(wb_norm.stock_levels(items, ctx.account.account),
                                 ctx.storage.size_names(ctx.account.account))
    return Collected(len(items), lambda storage: storage.write_stock(
        ctx.account.account, levels, ctx.now_iso, ctx.today, ctx.run_id))



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


def feed_state_key(account: str) -> str:
    return f"wb_orders_source:{account}"


def feed_sales_key(account: str) -> str:
    """Set once the feed has written sales: statistics then checks for them (wb_statistics)."""
    return f"wb_feed_sales:{account}"


def wb_orders_source(ctx: Context, dataset: str) -> Collected:
    source = ctx.settings.wb_orders_source
    if source == FEED or (source == "auto" and ctx.storage.state(feed_state_key(ctx.account.account))):
        return wb_feed(ctx, dataset)
    try:
        return wb_statistics(ctx, dataset)
    except ApiError as gone:
        if source != "auto" or gone.status not in METHOD_GONE:
            raise
        return wb_switch_to_feed(ctx, dataset, gone)


def wb_switch_to_feed(ctx: Context, dataset: str, gone: ApiError) -> Collected:
    """Statistics says its method is gone: this dataset comes from the feed from now on. The
    switch is saved in the dataset's own transaction, so a failed write leaves it untried."""
    try:
        collected = wb_feed(ctx, dataset)
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


# -- Ozon ----------------------------------------------------------------------------------

def ozon_stocks(ctx: Context) -> Collected:
    """Stock of the configured SKUs, else of those the daily catalogue listed (listed now when
    it never ran, unless the key was refused it: then the SKUs of recent orders), plus SKUs with
    recent stock or orders."""
    account: OzonAccount = ctx.account
    catalog = None
    listed = ctx.storage.state(listed_key(account.account))
    if (not account.skus and listed is None
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


def postings_records(postings: list[dict], account: str, zone, seen_at: str):
    lines, products, _ = read_postings(postings, account, zone, seen_at)
    return lines, products


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
    read = rejects.read_rows(items, lambda item: ozon_norm.return_event(item, ctx.account.account, ctx.zone),
                             "returns")
    events = [event for event in read.records if event]

    def write(storage: Storage) -> None:
        storage.write_sales(events)
        storage.set_watermark(ctx.account.account, "sales", ctx.now_iso, ctx.now_iso)

    return Collected(len(items), write, read.rejected)


# -- optional datasets: balance and product catalogue (collector/optional.py) --------------------

def wb_balance(ctx: Context) -> Collected:
    balance = wb_norm.balance(wb_api.fetch_balance(ctx.api, ctx.settings), ctx.account.account, ctx.today)
    return Collected(1, lambda storage: storage.write_balance(balance, ctx.now_iso))


def ozon_balance(ctx: Context) -> Collected:
    answer = ozon_api.fetch_balance(ctx.api, ctx.settings, ctx.today)
    balance = ozon_norm.balance(answer, ctx.account.account, ctx.today)
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
    return Collected(len(products) + len(rejected),
                     lambda storage: write_ozon_catalog(ctx, storage, products, skus), rejected)


COLLECTORS: dict[tuple[str, str], Callable[[Context], Collected]] = {
    ("wb", "stocks"): wb_stocks,
    ("wb", "orders"): lambda ctx: wb_orders_source(ctx, "orders"),
    ("wb", "sales"): lambda ctx: wb_orders_source(ctx, "sales"),
    ("ozon", "stocks"): ozon_stocks,
    ("ozon", "orders"): ozon_orders,
    ("ozon", "sales"): ozon_returns,
    ("wb", "balance"): wb_balance,
    ("ozon", "balance"): ozon_balance,
    ("wb", "catalog"): wb_catalog,
    ("ozon", "catalog"): ozon_catalog,
}


# -- aliases -------------------------------------------------------------------------------

def sync_aliases(settings: Settings, storage: Storage, now: datetime) -> None:
    """Reload the alias table when the CSV changed. A broken CSV keeps the previous aliases:
    the figures still get collected, and the error is logged for the person to fix."""
    path = settings.aliases_file
    if not path.exists():
        return
    try:
        fingerprint = aliases.fingerprint(path)
        if storage.state("aliases_fingerprint") == fingerprint:
            return
        rows = aliases.read_aliases(path)
    except (aliases.AliasFileError, OSError) as exc:
        logs.event(logging.ERROR, f"aliases not reloaded: {exc}", event="aliases", status="failed")
        return
    storage.replace_aliases(rows, state={"aliases_fingerprint": fingerprint}, now=iso(now, settings.timezone))
    logs.event(logging.INFO, f"aliases loaded from {path}: {len(rows)} keys, "
               f"{len({r[2] for r in rows})} aliases", event="aliases", status="ok")
