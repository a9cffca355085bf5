"""One collector pass: every account x dataset, fetched in parallel across accounts, each
written in its own transaction, each logged in `fetch_log`.

A failing account or dataset never stops the others and never leaves half of its rows.
"""

from __future__ import annotations

import fcntl
import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from collector import aliases, logs
from collector.config import Account, OzonAccount, Settings
from collector.http import ApiClient, ApiError, RequestStats
from collector.ozon import client as ozon_api
from collector.ozon import normalize as ozon_norm
from collector.records import BadRecord, OrderLine, gc_paused
from collector.storage import Storage, StorageError
from collector.timeutil import MOSCOW, iso, local_day, local_midnight, parse_wb_time, utc_now
from collector.wb import client as wb_api
from collector.wb import normalize as wb_norm

DATASETS = ("stocks", "orders", "sales")
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
    """What a dataset fetched: how many records, and how to write them in one transaction."""
    rows: int
    write: Callable[[Storage], None]


@dataclass
class Context:
    settings: Settings
    storage: Storage
    account: Account
    api: ApiClient
    run_id: int
    now: datetime

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
    failed = sum(result.status == "failed" for result in results)
    status = "ok" if not failed else ("failed" if failed == len(results) else "partial")
    storage.finish_run(run_id, iso(clock(), settings.timezone), status)
    logs.event(logging.INFO if status == "ok" else logging.WARNING,
               f"pass {run_id} {status}: {len(results) - failed} of {len(results)} datasets saved",
               event="pass", run_id=run_id, status=status, trigger=trigger,
               datasets=len(results), failed=failed,
               rows=sum(r.rows for r in results), requests=sum(r.requests for r in results),
               retries=sum(r.retries for r in results),
               duration_ms=int((clock() - started).total_seconds() * 1000))
    return PassResult(run_id, status, results)


def collect_account(settings: Settings, storage: Storage, account: Account, run_id: int,
                    datasets: tuple[str, ...], clock: Callable[[], datetime]) -> list[DatasetResult]:
    make = wb_api.make_client if account.marketplace == "wb" else ozon_api.make_client
    api = make(account, settings)
    try:
        return [collect_dataset(Context(settings, storage, account, api, run_id, clock()), dataset)
                for dataset in datasets]
    finally:
        api.close()


def collect_dataset(ctx: Context, dataset: str) -> DatasetResult:
    ctx.api.stats = RequestStats()
    started, started_at = time.monotonic(), ctx.now_iso
    result = DatasetResult(ctx.account.account, dataset, "ok")
    try:
        collected = COLLECTORS[ctx.account.marketplace, dataset](ctx)
        result.rows = collected.rows
        with ctx.storage.transaction():
            collected.write(ctx.storage)
            _finish(ctx, result, started, started_at)
    except Exception as exc:  # noqa: BLE001 - one dataset's failure must not stop the others
        result.status, result.error = "failed", ctx.api.redact(describe_failure(ctx, dataset, exc))
        if not isinstance(exc, (ApiError, BadRecord)):
            logs.get_logger().debug(ctx.api.redact(traceback.format_exc()))
        _finish(ctx, result, started, started_at, separate_transaction=True)
    logs.event(logging.INFO if result.status == "ok" else logging.ERROR,
               f"{result.account} {dataset}: ok, {result.rows} rows" if result.status == "ok" else result.error,
               event="dataset", run_id=ctx.run_id, account=result.account, dataset=dataset,
               status=result.status, rows=result.rows, requests=result.requests,
               retries=result.retries, duration_ms=result.duration_ms)
    return result


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


def _finish(ctx: Context, result: DatasetResult, started: float, started_at: str,
            separate_transaction: bool = False) -> None:
    stats = ctx.api.stats
    result.requests, result.retries = stats.requests, stats.retries
    result.duration_ms = int((time.monotonic() - started) * 1000)
    entry = dict(run_id=ctx.run_id, account=result.account, dataset=result.dataset, status=result.status,
                 started_at=started_at, finished_at=iso(utc_now(), ctx.zone), rows=result.rows,
                 requests=result.requests, retries=result.retries, duration_ms=result.duration_ms,
                 error=result.error)
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
        batch.write(storage, ctx.now_iso)
        if watermark:
            storage.set_watermark(ctx.account.account, dataset, watermark.astimezone(MOSCOW).isoformat(),
                                  ctx.now_iso)

    return Collected(len(rows), write)


@dataclass
class WbBatch:
    """WB statistics rows normalised: orders or sales, and the products they describe."""
    dataset: str
    records: list
    products: list

    @classmethod
    def of(cls, dataset: str, rows: list[dict], account: str, zone) -> "WbBatch":
        with gc_paused():
            return cls._of(dataset, rows, account, zone)

    @classmethod
    def _of(cls, dataset: str, rows: list[dict], account: str, zone) -> "WbBatch":
        if dataset == "orders":
            records = [wb_norm.order_line(row, account, zone) for row in rows]
        else:
            records = [event for event in (wb_norm.sale_event(row, account, zone) for row in rows) if event]
            if len(records) < len(rows):
                logs.event(logging.INFO, f"{account} sales: {len(rows) - len(records)} rows of other kinds "
                           "than S (sale) and R (return) not counted", event="skipped_rows", account=account)
        return cls(dataset, records, wb_norm.products(rows, account))

    def write(self, storage: Storage, now_iso: str) -> None:
        storage.write_products(self.products, now_iso)
        (storage.write_orders if self.dataset == "orders" else storage.write_sales)(self.records)


def wb_stocks(ctx: Context) -> Collected:
    items = wb_api.fetch_stock_items(ctx.api, ctx.settings)
    levels = wb_norm.stock_levels(items, ctx.account.account)
    return Collected(len(items), lambda storage: storage.write_stock(
        ctx.account.account, levels, ctx.now_iso, ctx.today, ctx.run_id))


# -- Ozon ----------------------------------------------------------------------------------

def ozon_stocks(ctx: Context) -> Collected:
    account: OzonAccount = ctx.account
    listed = [] if account.skus else ozon_api.fetch_products(ctx.api, ctx.settings)
    listed_products = ozon_norm.listed_products(listed, account.account)  # refuses an unreadable SKU
    recent = ctx.storage.known_skus(account.account, local_day(ctx.now - OPEN_POSTINGS_WINDOW, ctx.zone))
    skus = list(dict.fromkeys([*account.skus, *(p.sku for p in listed_products), *recent]))
    items = ozon_api.fetch_stock_items(ctx.api, ctx.settings, skus)
    levels = ozon_norm.stock_levels(items, account.account)
    products = listed_products + ozon_norm.stock_products(items, account.account)

    def write(storage: Storage) -> None:
        storage.write_products(products, ctx.now_iso)
        storage.write_stock(account.account, levels, ctx.now_iso, ctx.today, ctx.run_id)

    return Collected(len(items), write)


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
    lines, products = postings_records(postings, account, ctx.zone, ctx.now_iso)

    def write(storage: Storage) -> None:
        write_postings(storage, lines, products, ctx.now_iso, ctx.today)
        storage.set_watermark(account, "orders", ctx.now_iso, ctx.now_iso)

    return Collected(len(postings), write)


def postings_records(postings: list[dict], account: str, zone, seen_at: str):
    with gc_paused():
        lines = [line for p in postings for line in ozon_norm.posting_lines(p, account, zone, seen_at)]
        products = [product for p in postings for product in ozon_norm.posting_products(p, account)]
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
    events = [e for e in (ozon_norm.return_event(item, ctx.account.account, ctx.zone) for item in items) if e]

    def write(storage: Storage) -> None:
        storage.write_sales(events)
        storage.set_watermark(ctx.account.account, "sales", ctx.now_iso, ctx.now_iso)

    return Collected(len(items), write)


COLLECTORS: dict[tuple[str, str], Callable[[Context], Collected]] = {
    ("wb", "stocks"): wb_stocks,
    ("wb", "orders"): lambda ctx: wb_statistics(ctx, "orders"),
    ("wb", "sales"): lambda ctx: wb_statistics(ctx, "sales"),
    ("ozon", "stocks"): ozon_stocks,
    ("ozon", "orders"): ozon_orders,
    ("ozon", "sales"): ozon_returns,
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
