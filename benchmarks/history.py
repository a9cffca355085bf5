"""A seller's history straight into a database: no HTTP, but the collector's own code.

The sandbox seller's rows, shaped as its APIs would send them, go through the collector's
normalisers (`WbBatch.of`, `ozon.normalize`) and storage methods (`write_products`,
`write_orders`, `write_sales`, `insert_new_sales`, `write_stock`), so the tables have exactly the
rows and the shape a collector running all along would have left:

* orders, sales and returns: each row as it stands at the end of the history, day by day;
* Ozon buyouts: dated by the first 10-minute pass after the delivery, as `Storage.ozon_buyouts`
  dates them (`buyout_events` builds the same records; the smoke test checks they agree);
* stock: the seller's stock at every 10-minute pass, change-only. For the first
  `write_stock_days` days the complete report goes through `Storage.write_stock` at every pass,
  and the number of rows it writes is checked against the changes this module computes; after
  that the same change rows are inserted with write_stock's own statements, which is 40 times
  faster (write_stock compares the whole report with stock_current at every pass: 37,500 keys
  per Ozon store). A final `write_stock` with the complete report must then find nothing to
  write, which checks the whole run;
* runs and fetch_log: one pass every 10 minutes, kept for the last `keep_days` days as the
  daily maintenance does;
* the summaries the schema's triggers keep (daily_figures, orders.outcome, order_warehouses):
  by the triggers, row by row, or with `bulk` by `Storage.rebuild_summaries()` once the rest is
  written.

The accounts are split between two processes writing to the same file, as the collector's
threads do.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from contextlib import nullcontext
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from collector import maintenance
from collector.config import load_settings
from collector.ozon import normalize as ozon_norm
from collector.pipeline import refresh_kept
from collector.records import OrderLine, SaleEvent, gc_paused
from collector.sandbox.clock import DAY, MINUTE, msk_day, msk_day_start, to_us
from collector.sandbox.ozon_shapes import posting_json, return_json
from collector.sandbox.seller import Seller
from collector.sandbox.wb_shapes import order_json, sale_json
from collector.storage import Storage
from collector.timeutil import MOSCOW, iso, local_day
from collector.wb.datasets import WbBatch

from benchmarks.reference import reference_aliases
from benchmarks.stocktrack import tracker_for

STEP = timedelta(minutes=10)
GENERATOR_CACHE_KIB = 512 * 1024
CHECKPOINT_DAYS = 7
STEP_US = 10 * MINUTE
# write_stock's own statements, for the change rows of the fast path (collector/storage.py).
INSERT_STOCK = ("INSERT INTO stock (account, sku, size, warehouse, quantity, observed_at, day, run_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
UPSERT_CURRENT = ("INSERT INTO stock_current (account, sku, size, warehouse, quantity, changed_at, seen_at, first_day) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, sku, size, warehouse) DO UPDATE SET "
                  "quantity = excluded.quantity, changed_at = excluded.changed_at, seen_at = excluded.seen_at, "
                  "first_day = coalesce(stock_current.first_day, excluded.first_day)")
# Requests a steady pass of the reference seller makes per dataset (see the `pass` benchmark);
# they only fill fetch_log, whose size depends little on them.
TYPICAL_REQUESTS = {("wb", "stocks"): 1, ("wb", "orders"): 1, ("wb", "sales"): 1,
                    ("ozon", "stocks"): 17, ("ozon", "orders"): 80, ("ozon", "sales"): 1}


@dataclass
class HistoryResult:
    path: Path
    start: datetime
    end: datetime
    passes: int
    rows: Counter = field(default_factory=Counter)  # rows written per table
    stock_changes: int = 0  # rows in `stock`
    full_snapshot_rows: int = 0  # rows full stock snapshots at every pass would have written
    checked_passes: int = 0  # passes whose stock went through write_stock
    seconds: float = 0.0
    worker_seconds: dict = field(default_factory=dict)  # per group of accounts written together


def pass_times(start: datetime, end: datetime) -> list[datetime]:
    """The 10-minute passes from start to end (start aligned down to the grid)."""
    first = to_us(start) - to_us(start) % STEP_US
    return [datetime.fromtimestamp(us / 1e6, timezone.utc) for us in range(first, to_us(end) + 1, STEP_US)]


def pass_after(us: int, first_pass_us: int) -> int:
    """The first pass at or after `us`."""
    return first_pass_us + -(-(us - first_pass_us) // STEP_US) * STEP_US


def buyout_events(lines: list[OrderLine], seen_at: str, day: str) -> list[SaleEvent]:
    """The buyouts `Storage.ozon_buyouts` makes of postings a pass sees turn delivered after
    having seen them open."""
    return [SaleEvent(
        account=line.account, kind="sale", sale_id=line.order_id, sku=line.sku, order_id=line.order_id,
        article=line.article, size=line.size, barcode=None, warehouse=line.warehouse, sold_at=seen_at,
        day=day, quantity=line.quantity,
        amount_kopecks=line.price_kopecks * line.quantity if line.price_kopecks is not None else None,
        return_type=None, changed_at=seen_at) for line in lines if line.status == "delivered"]


def generate(path: Path, config, start: datetime, end: datetime, *, write_stock_days: float = 0,
             keep_days: int = maintenance.DEFAULT_KEEP_DAYS, processes: int = 2, zone=MOSCOW,
             bulk: bool = False) -> HistoryResult:
    """Write the history of `config`'s seller from `start` to `end` into a new database at `path`.

    `bulk`: load without the schema's triggers, then let `Storage.rebuild_summaries()` count once
    what they would have counted row by row (daily_figures, orders.outcome, stock_current.first_day,
    order_warehouses, from the raw rows) and put them back: the same tables, several minutes sooner
    for a year of history.
    """
    began = time.perf_counter()
    path = Path(path)
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    seller = Seller(config, end)
    passes = pass_times(start, end)
    storage = Storage(path)
    storage.migrate()
    storage.save_accounts((name, a.marketplace, name) for name, a in seller.accounts.items())
    storage.replace_aliases(reference_aliases(seller), now=iso(end, zone))
    storage.keep_recent_minutes(end, zone)  # as the last pass would
    if bulk:
        with storage.transaction() as db:
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                db.execute(f'DROP TRIGGER "{name}"')
    storage.close()

    groups = _split(list(seller.accounts))
    checked_until = to_us(start) + int(write_stock_days * DAY)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_worker, name=f"history-{n}",
                               args=(path, config, start, end, accounts, checked_until, zone, results))
               for n, accounts in enumerate(groups)] if processes > 1 else []
    for worker in workers:
        worker.start()
    outcomes = [] if workers else [_write_accounts(path, config, start, end, list(seller.accounts), checked_until, zone)]
    for _ in workers:
        outcome = results.get()
        if isinstance(outcome, str):
            for worker in workers:
                worker.kill()
            raise RuntimeError(f"history generation failed:\n{outcome}")
        outcomes.append(outcome)
    for worker in workers:
        worker.join()

    result = HistoryResult(path, start, end, len(passes))
    for outcome in outcomes:
        result.rows.update(outcome["rows"])
        result.stock_changes += outcome["stock_changes"]
        result.full_snapshot_rows += outcome["full_snapshot_rows"]
        result.checked_passes = max(result.checked_passes, outcome["checked_passes"])
        result.worker_seconds.update(outcome["seconds"])

    storage = Storage(path)
    if bulk:
        storage.db.execute(f"PRAGMA cache_size = -{GENERATOR_CACHE_KIB}")
        storage.rebuild_summaries()
    _bookkeeping(storage, seller, passes, keep_days, zone, result)
    # What every pass does after its writes: the pages kept ready for the viewer.
    refresh_kept(load_settings(None, {"DATABASE_PATH": str(path), "TIMEZONE": str(zone)}), storage, end)
    # What the collector's daily maintenance does after a pass: prune the run logs, refresh the
    # planner's statistics, fold the WAL back into the file.
    maintenance.daily(storage, end.astimezone(zone), keep_days)
    storage.close()
    result.seconds = time.perf_counter() - began
    return result


def _split(accounts: list[str]) -> list[list[str]]:
    """Two groups of about equal work: a WB cabinet weighs about as much as three Ozon stores."""
    weight = {name: 3 if name.startswith("wb-") else 1 for name in accounts}
    groups: list[list[str]] = [[], []]
    for name in sorted(accounts, key=lambda n: -weight[n]):
        min(groups, key=lambda g: sum(weight[n] for n in g)).append(name)
    return [g for g in groups if g]


def _worker(path, config, start, end, accounts, checked_until, zone, results) -> None:
    try:
        results.put(_write_accounts(path, config, start, end, accounts, checked_until, zone))
    except BaseException:  # noqa: BLE001 - reported to the parent, which stops the others
        results.put(traceback.format_exc())


def _write_accounts(path, config, start, end, accounts, checked_until, zone) -> dict:
    began = time.perf_counter()
    storage = Storage(path)
    # A bigger page cache for the generator's own connection: a year of rows is gigabytes, and
    # inserts into indexes far bigger than SQLite's default 2 MB cache slow down as they grow.
    storage.db.execute(f"PRAGMA cache_size = -{GENERATOR_CACHE_KIB}")
    storage.db.execute("PRAGMA busy_timeout = 600000")  # the other process may hold a long day
    seller = Seller(config, end)
    histories = [AccountHistory(storage, seller, account, start, end, checked_until, zone) for account in accounts]
    # A day of every account is prepared (generated, normalised, its stock changes worked out)
    # without the write lock, then written in one short transaction: the two processes take
    # turns at the lock and each works while the other writes. Days whose stock goes through
    # write_stock pass by pass (slow: the whole report every time) commit pass by pass, as the
    # collector does, so that the other process is not kept waiting for minutes.
    for day in range(msk_day(to_us(start)), msk_day(to_us(end)) + 1):
        if msk_day_start(day) < checked_until:
            for history in histories:
                history.write_day(day)
            continue
        prepared = [history.prepare_day(day) for history in histories]
        with storage.transaction():
            for history, records in zip(histories, prepared):
                history.write_prepared(records)
        if day % CHECKPOINT_DAYS == 0:
            # Two processes taking turns keep a snapshot open at every moment, so SQLite's own
            # checkpoints never get to restart the WAL, which then grows by the gigabyte.
            storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with storage.transaction():
        for history in histories:
            history.finish()
    storage.close()
    rows: Counter = Counter()
    for history in histories:
        rows.update(history.rows)
    return {"rows": rows, "stock_changes": sum(h.stock_changes for h in histories),
            "full_snapshot_rows": sum(h.full_snapshot_rows for h in histories),
            "checked_passes": max((h.checked_passes for h in histories), default=0),
            "seconds": {", ".join(accounts): time.perf_counter() - began}}


class AccountHistory:
    """One account's history, written a Moscow day at a time."""

    def __init__(self, storage: Storage, seller: Seller, account: str, start: datetime, end: datetime,
                 checked_until: int, zone):
        self.storage, self.seller, self.account, self.zone = storage, seller, account, zone
        self.marketplace = seller.accounts[account].marketplace
        self.start_us, self.end_us = to_us(start), to_us(end)
        self.end_iso = iso(end, zone)
        self.passes = [to_us(t) for t in pass_times(start, end)]
        self.first_pass = self.passes[0]
        self.checked_until = checked_until
        self.tracker = tracker_for(seller, account, start)
        # (sku, size, warehouse) of each tracked key, as StockLevel and stock_current have it
        self.key_of = {key: (lvl.sku, lvl.size, lvl.warehouse)
                       for key in self.tracker.level for lvl in [self.tracker.level_of(key, 0)]}
        self.reported: set = set()  # tracker keys the stock report holds now
        self.stored: dict[tuple, int] = {}  # what stock_current holds for this account
        self.pending: list[tuple] = []  # change rows not written yet (fast path)
        self.rows: Counter = Counter()
        self.stock_changes = self.full_snapshot_rows = self.checked_passes = 0
        self._next_pass = 0
        self._own = False  # whether this object opens its own transactions

    # --- orders, sales, returns -------------------------------------------------------------

    def prepare_day(self, day: int) -> list:
        """The day's records, normalised, and the fast-path stock rows of its passes: the work
        that needs no write lock, so that the other process can write meanwhile. Passes that go
        through write_stock are not prepared here (see write_day)."""
        records = self._wb_day(day) if self.marketplace == "wb" else self._ozon_day(day)
        self._stock_until(msk_day_start(day + 1), prepare_only=True)
        return records

    def write_prepared(self, records: list) -> None:
        """What prepare_day made, in the caller's transaction."""
        for write in records:
            write()
        self._flush()

    def write_day(self, day: int) -> None:
        """The day with each write in a transaction of its own, its stock pass by pass through
        write_stock where that is asked for, as the collector commits a pass."""
        self._own = True
        records = self._wb_day(day) if self.marketplace == "wb" else self._ozon_day(day)
        with self._transaction():
            for write in records:
                write()
        self._stock_until(msk_day_start(day + 1))
        self._own = False

    def _transaction(self):
        return self.storage.transaction() if self._own else nullcontext()

    def _wb_day(self, day: int) -> list:
        """The orders created on `day`: their orders row and sales rows as they stand at the end."""
        cabinet, end = self.seller.wb(self.account), self.end_us
        orders = [o for o in cabinet.day_orders(day) if self.start_us <= o.created <= end]
        order_rows = [order_json(row) for order in orders for row in cabinet._order_rows(order, end)]
        sale_rows = [sale_json(row) for order in orders for row in cabinet._sale_rows(order, end)]
        writes = []
        for dataset, rows in (("orders", order_rows), ("sales", sale_rows)):
            if not rows:
                continue
            batch = WbBatch.of(dataset, rows, self.account, self.zone)
            writes.append(lambda batch=batch: batch.write(self.storage, self.end_iso))
            self.rows[dataset] += len(batch.records)
            self.rows["products"] += len(batch.products)
        return writes

    def _ozon_day(self, day: int) -> list:
        store = self.seller.ozon(self.account)
        lines, products, sales = [], [], []
        with gc_paused():
            for posting in store.day_postings(day):
                if not self.start_us <= posting.created <= self.end_us:
                    continue
                shown = posting_json(posting, self.end_us, analytics=True, financial=True)
                changed = max(t for t in (posting.created, posting.packaged_at, posting.shipped_at,
                                          posting.delivered_at, posting.cancel_at)
                              if t is not None and t <= self.end_us)
                posting_lines = ozon_norm.posting_lines(shown, self.account, self.zone,
                                                        self._iso(pass_after(changed, self.first_pass)))
                lines += posting_lines
                products += ozon_norm.posting_products(shown, self.account)
                if posting.delivered_at is not None and posting.delivered_at <= self.end_us:
                    seen = pass_after(posting.delivered_at, self.first_pass)
                    sales += buyout_events(posting_lines, self._iso(seen), self._day(seen))
                for ret in posting.returns:
                    if ret.started <= self.end_us:
                        event = ozon_norm.return_event(
                            return_json(store, posting, ret, self.end_us, self.seller.config.ozon_int64_as_strings),
                            self.account, self.zone)
                        if event:
                            sales.append(event)
        if not lines:
            return []
        self.rows["orders"] += len(lines)
        self.rows["sales"] += len(sales)
        self.rows["products"] += len(products)

        def write() -> None:
            self.storage.write_products(products, self.end_iso)
            self.storage.write_orders(lines)
            self.storage.insert_new_sales([s for s in sales if s.kind == "sale"])
            self.storage.write_sales([s for s in sales if s.kind == "return"])
        return [write]

    # --- stock ------------------------------------------------------------------------------

    def _stock_until(self, until_us: int, prepare_only: bool = False) -> None:
        """Every pass before `until_us` not done yet; their fast-path rows are written now, or
        with `prepare_only` kept for write_prepared."""
        passes = self.passes
        while self._next_pass < len(passes) and passes[self._next_pass] < until_us:
            self._stock_pass(passes[self._next_pass], self._next_pass + 1)
            self._next_pass += 1
        if not prepare_only:
            self._flush()

    def _stock_pass(self, at_us: int, run_id: int) -> None:
        at = datetime.fromtimestamp(at_us / 1e6, timezone.utc)
        self.tracker.advance(at)
        changes = self._changes(self.tracker.changed())
        self.full_snapshot_rows += len(self.reported)
        observed, day = self._iso(at_us), self._day(at_us)
        if at_us < self.checked_until:
            with self._transaction():
                written = self.storage.write_stock(self.account, self._levels(), observed, day, run_id)
            if written != len(changes):
                raise AssertionError(f"{self.account} {at.isoformat()}: write_stock wrote {written} rows, "
                                     f"the tracker expected {len(changes)}")
            self.checked_passes += 1
        else:
            self.pending += [(self.account, *key, q, observed, day, run_id) for key, q in changes]
        self.stock_changes += len(changes)

    def _flush(self) -> None:
        """The fast path: write_stock's own statements for the change rows it would have written."""
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        conn = self.storage.db.conn
        with self._transaction():
            conn.executemany(INSERT_STOCK, rows)
            conn.executemany(UPSERT_CURRENT, [(a, sku, size, wh, q, seen, seen, day)
                                              for a, sku, size, wh, q, seen, day, _ in rows])

    def _changes(self, touched: dict) -> list[tuple[tuple, int]]:
        """write_stock's rule on the keys that may have changed: a row where the reported
        quantity differs from the stored one, 0 for a stored key no longer reported."""
        tracker, stored, reported, changes = self.tracker, self.stored, self.reported, []
        for tracker_key, quantity in touched.items():
            key = self.key_of[tracker_key]
            if tracker.reported(tracker_key, quantity):
                reported.add(tracker_key)
            else:
                reported.discard(tracker_key)
                if key not in stored:
                    continue
                quantity = 0
            if stored.get(key) != quantity:
                stored[key] = quantity
                changes.append((key, quantity))
        return changes

    def _levels(self) -> list:
        """The complete stock report, as the collector's normaliser hands it to write_stock."""
        tracker = self.tracker
        return [tracker.level_of(key, tracker.quantity(key)) for key in self.reported]

    def finish(self) -> None:
        """The last passes, then one real write_stock with the complete report: after the fast
        path it must find nothing to write."""
        self._stock_until(self.end_us + 1)
        written = self.storage.write_stock(self.account, self._levels(), self.end_iso,
                                           self._day(self.end_us), len(self.passes))
        if written:
            raise AssertionError(f"{self.account}: stock_current drifted from the seller's stock "
                                 f"({written} keys differ at the end of the history)")
        self.rows["stock"] += self.stock_changes

    def _iso(self, us: int) -> str:
        return iso(datetime.fromtimestamp(us / 1e6, timezone.utc), self.zone)

    def _day(self, us: int) -> str:
        return local_day(datetime.fromtimestamp(us / 1e6, timezone.utc), self.zone)


def _bookkeeping(storage: Storage, seller: Seller, passes: list[datetime], keep_days: int, zone,
                 result: HistoryResult) -> None:
    """runs and fetch_log: a pass every 10 minutes, the last `keep_days` days of them."""
    keep_from = passes[-1] - timedelta(days=keep_days)
    accounts = list(seller.accounts.items())
    runs, logs = [], []
    for run_id, at in enumerate(passes, start=1):
        if at < keep_from:
            continue
        began, ended = iso(at, zone), iso(at + timedelta(seconds=40), zone)
        runs.append((run_id, began, ended, "ok", "timer"))
        for name, account in accounts:
            for dataset in ("stocks", "orders", "sales"):
                requests = TYPICAL_REQUESTS[account.marketplace, dataset]
                logs.append((run_id, name, dataset, "ok", began, ended, 100, requests, 0, 1000 * requests, None))
    with storage.transaction() as db:
        db.conn.executemany("INSERT INTO runs (id, started_at, finished_at, status, trigger) VALUES (?, ?, ?, ?, ?)",
                            runs)
        db.conn.executemany(
            "INSERT INTO fetch_log (run_id, account, dataset, status, started_at, finished_at, rows, requests, "
            "retries, duration_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", logs)
        for name, account in accounts:
            for dataset in ("orders", "sales"):
                storage.set_watermark(name, dataset, iso(passes[-1], zone), iso(passes[-1], zone))
    result.rows["runs"] += len(runs)
    result.rows["fetch_log"] += len(logs)
