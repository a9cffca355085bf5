"""The database: schema and migrations, and every write the collector makes.

A collector pass lands in one transaction (`Storage.one_transaction`), each account x dataset
inside it in a savepoint of its own: a failing dataset leaves none of its rows, and a reader sees
the previous pass whole until the pass, its summaries and its kept pages are all there. Writers
in one process share a lock (SQLite has one writer at a time anyway); readers such as Datasette
never wait thanks to WAL.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cache
from operator import attrgetter
from pathlib import Path
from typing import Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

import sqlite_utils

from collector import logs
from collector.records import OrderLine, Product, SaleEvent, StockLevel, columns
from collector.timeutil import local_day, parse_day

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema.sql"
SCHEMA_VERSION = 34
# Versions after which the summaries (daily_figures, orders.outcome, ...) are recomputed from
# the raw rows, because what they hold changed.
REBUILD_AFTER = {2}


def schema_sql() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")


def refill_sql(*summaries: str) -> str:
    """Statements that fill summaries created by schema.sql (so their columns are in the order of
    their *_recomputed views) afresh from those views, in the order given."""
    return "".join(f"DELETE FROM {table};\nINSERT INTO {table} SELECT * FROM {table}_recomputed;\n"
                   for table in summaries)


# version -> SQL run after schema.sql on an upgrade that needs no rebuild: a new summary filled
# from the summaries already kept (a rebuild fills it with the rest).
FILLS: dict[int, str] = {
    3: """
    INSERT INTO sku_days SELECT * FROM sku_days_recomputed;
    INSERT INTO sku_stock SELECT * FROM sku_stock_recomputed;
    """,
    # (the inserts above already named most SKUs through sku_names' triggers)
    4: """
    INSERT OR REPLACE INTO sku_names SELECT * FROM sku_names_recomputed;
    """,
    # (the triggers counted the rows the fills above inserted; counted again here, whole)
    5: refill_sql("summary_days", "alias_days", "alias_stock"),
    6: refill_sql("minute_totals", "alias_warehouse_stock", "account_days"),
    7: refill_sql("alias_warehouse_days", "alias_warehouse_stock"),
    8: refill_sql("marketplace_alias_days"),
    9: refill_sql("account_warehouse_days"),
    10: refill_sql("alias_warehouse_stock", "alias_warehouse_first_days"),
    11: refill_sql("alias_warehouse_months"),
    12: refill_sql("alias_months"),
    # (only the rows with money returned or paid out: ~1 in 3)
    13: """
    UPDATE alias_warehouse_days SET returned_kopecks = v.returned_kopecks, payout_kopecks = v.payout_kopecks
    FROM alias_warehouse_days_recomputed v
    WHERE v.day = alias_warehouse_days.day AND v.account = alias_warehouse_days.account
      AND v.alias = alias_warehouse_days.alias AND v.warehouse = alias_warehouse_days.warehouse
      AND (v.returned_kopecks <> 0 OR v.payout_kopecks <> 0);
    """,
    # (the cohort: only the rows with orders; then the warehouses' totals afresh, as they gain
    # the money returned and paid out too)
    18: """
    UPDATE alias_warehouse_days SET cohort_units = v.cohort_units, cohort_bought = v.cohort_bought,
                                    cohort_not_bought = v.cohort_not_bought
    FROM alias_warehouse_days_recomputed v
    WHERE v.day = alias_warehouse_days.day AND v.account = alias_warehouse_days.account
      AND v.alias = alias_warehouse_days.alias AND v.warehouse = alias_warehouse_days.warehouse
      AND v.cohort_units <> 0;
    """ + refill_sql("account_warehouse_days"),
    20: refill_sql("marketplace_alias_warehouse_days"),
    # (kept from the day before the last day with orders or buyouts; the next pass moves it on)
    21: """
    INSERT OR IGNORE INTO recent_minutes_floor (id, day)
    SELECT 1, date(max(day), '-2 days') FROM minute_totals HAVING max(day) IS NOT NULL;
    """ + refill_sql("recent_minutes"),
    22: refill_sql("marketplace_alias_warehouses"),
    # warehouse_month_now keeps «По складам» for the last 7 days too: what was kept is not vouched
    # for until the upgrade keeps the new page (pipeline.upgrade, at once)
    25: "UPDATE warehouse_month_basis SET in_step = 0;\n",
    # every alert back, its id kept, and the sequence as it was (an id is never given twice)
    30: """
    INSERT INTO alert_outbox (id, key, kind, title, body, created_at, day, status, done_at)
    SELECT id, key, kind, title, body, created_at, day, status, done_at FROM alert_outbox_v29;
    DELETE FROM sqlite_sequence WHERE name = 'alert_outbox';
    INSERT INTO sqlite_sequence (name, seq) SELECT 'alert_outbox', seq FROM sqlite_sequence
    WHERE name = 'alert_outbox_v29';
    DROP TABLE alert_outbox_v29;
    """,
    # The planner's statistics of the two new indexes: without them it cannot see that a day holds
    # thousands of lines, and seeks a SKU by reading every line (~3 s a table at a year)
    31: """
    ANALYZE orders;
    ANALYZE sales;
    """,
    # (32: article_skus, counted by refill; schema 33 made it named_skus)
    # named_skus (created by schema.sql): every order line and sale counted under its article and
    # its barcode
    33: refill_sql("named_skus"),
    # sales_undated (created by schema.sql): the planner's statistics, with which it reads a page
    # of the undated sales from the key it starts after instead of from the first
    34: """
    ANALYZE sales_undated;
    """,
    # (26: restock_days_now, created by schema.sql and kept by the upgrade at once)
    # (27: marketplace_alias_warehouse_stock_days, likewise)
    # An order line is judged by units: a line partly returned is bought but for the units
    # returned. Only lines with a return can change; the triggers carry each change through
    # daily_figures to every summary, as a pass's writes would.
    15: """
    UPDATE orders SET outcome = v.outcome, returned_units = v.returned_units
    FROM order_outcomes v
    WHERE (orders.account, orders.order_id, orders.sku) IN (
            SELECT account, order_id, sku FROM sales WHERE kind = 'return' AND order_id IS NOT NULL)
      AND v.account = orders.account AND v.order_id = orders.order_id AND v.sku = orders.sku
      AND (orders.outcome IS NOT v.outcome OR orders.returned_units IS NOT v.returned_units);
    """,
}
# What a new order line's outcome is on its own, without sales (order_outcomes: delivered is
# bought, cancelled is not): given on insert, so that a line first seen delivered or cancelled
# (a backfill, the first pass's 30 days of Ozon postings) is not written again by its trigger at
# once, and every summary with it (3-4x the cost of the insert). The trigger still judges the line
# with its sales, and corrects this whenever they say otherwise.
OUTCOME_ON_ITS_OWN = "CASE WHEN {status} = 'delivered' THEN 'bought' WHEN {is_cancelled} THEN 'not_bought' ELSE 'open' END"

# Each summary kept by triggers, the view in schema.sql that says what it must hold, and how many
# key columns it has. `Storage.summary_drift()` compares the two; `mp-collector rebuild` makes
# them equal.
SUMMARIES = (("daily_figures", "daily_figures_recomputed", 4), ("sku_days", "sku_days_recomputed", 3),
             ("sku_stock", "sku_stock_recomputed", 2), ("sku_names", "sku_names_recomputed", 2),
             ("alias_days", "alias_days_recomputed", 3), ("alias_stock", "alias_stock_recomputed", 2),
             ("summary_days", "summary_days_recomputed", 1), ("minute_totals", "minute_totals_recomputed", 3),
             ("alias_warehouse_stock", "alias_warehouse_stock_recomputed", 3),
             ("alias_warehouse_first_days", "alias_warehouse_first_days_recomputed", 4),
             ("account_days", "account_days_recomputed", 2),
             ("alias_warehouse_days", "alias_warehouse_days_recomputed", 4),
             ("marketplace_alias_days", "marketplace_alias_days_recomputed", 3),
             ("account_warehouse_days", "account_warehouse_days_recomputed", 3),
             ("alias_warehouse_months", "alias_warehouse_months_recomputed", 4),
             ("alias_months", "alias_months_recomputed", 3),
             ("marketplace_alias_warehouse_days", "marketplace_alias_warehouse_days_recomputed", 4),
             ("recent_minutes", "recent_minutes_recomputed", 5),
             ("marketplace_alias_warehouses", "marketplace_alias_warehouses_recomputed", 3),
             ("named_skus", "named_skus_recomputed", 3))


def create_statement(table: str) -> str:
    """schema.sql's own CREATE TABLE statement of a table."""
    return re.search(rf"^CREATE TABLE IF NOT EXISTS {table} \(.*?^\)[^;]*;", schema_sql(), re.S | re.M).group(0)


def rekeyed(table: str) -> str:
    """SQL that gives a table the key schema.sql gives it now (SQLite cannot change a key in
    place): its rows set aside, the table made anew by schema.sql's own statement, the rows put
    back, column by column as that statement names them. A database older than the table gets it
    here, empty (later fills fill it)."""
    create = create_statement(table)
    columns = ", ".join(re.findall(r"^\s+(\w+)\s+(?:TEXT|INTEGER|REAL)\b", create, re.M))
    return (f"{create}\nCREATE TEMP TABLE rekeyed_rows AS SELECT {columns} FROM {table};\nDROP TABLE {table};\n"
            f"{create}\nINSERT INTO {table} ({columns}) SELECT {columns} FROM rekeyed_rows;\nDROP TABLE rekeyed_rows;\n")


# version -> SQL that brings a database of version-1 up to it, run before schema.sql (which then
# creates what is new and recreates every view). Tables are extended (ALTER TABLE ... ADD COLUMN,
# new tables); a table is rebuilt only where SQLite cannot change a constraint in place.
MIGRATIONS: dict[int, str] = {
    2: """
    -- fetch_log learns the optional datasets (balance, catalog) and the status 'skipped'.
    DROP VIEW IF EXISTS source_freshness;
    CREATE TABLE fetch_log_v2 (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id      INTEGER NOT NULL REFERENCES runs(id),
        account     TEXT NOT NULL,
        dataset     TEXT NOT NULL CHECK (dataset IN ('stocks', 'orders', 'sales', 'balance', 'catalog')),
        status      TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'skipped')),
        started_at  TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        rows        INTEGER NOT NULL DEFAULT 0,
        requests    INTEGER NOT NULL DEFAULT 0,
        retries     INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER NOT NULL DEFAULT 0,
        error       TEXT
    );
    INSERT INTO fetch_log_v2 SELECT id, run_id, account, dataset, status, started_at, finished_at, rows,
                                    requests, retries, duration_ms, error FROM fetch_log;
    DROP TABLE fetch_log;
    ALTER TABLE fetch_log_v2 RENAME TO fetch_log;
    -- what the seller receives («к перечислению»)
    ALTER TABLE orders ADD COLUMN payout_kopecks INTEGER;
    ALTER TABLE sales ADD COLUMN payout_kopecks INTEGER;
    -- money and the order cohort in the rollup (filled by rebuild_summaries after schema.sql)
    ALTER TABLE orders ADD COLUMN outcome TEXT NOT NULL DEFAULT 'open'
        CHECK (outcome IN ('open', 'bought', 'not_bought'));
    ALTER TABLE stock_current ADD COLUMN first_day TEXT;
    ALTER TABLE daily_figures ADD COLUMN ordered_kopecks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE daily_figures ADD COLUMN bought_kopecks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE daily_figures ADD COLUMN returned_kopecks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE daily_figures ADD COLUMN payout_kopecks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE daily_figures ADD COLUMN cohort_units INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE daily_figures ADD COLUMN cohort_bought INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE daily_figures ADD COLUMN cohort_not_bought INTEGER NOT NULL DEFAULT 0;
    -- rows set aside as unreadable (rejected_rows)
    ALTER TABLE fetch_log ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0;
    """,
    # alias_warehouse_stock gains how many of its keys have a first day: created anew by schema.sql
    # and filled by FILLS[7] (a table of ~16,000 rows; absent before version 6)
    7: "DROP TABLE IF EXISTS alias_warehouse_stock;",
    # alias_warehouse_stock's known keys and the index of first days give way to
    # alias_warehouse_first_days: created anew by schema.sql and filled by FILLS[10]
    10: "DROP TABLE IF EXISTS alias_warehouse_stock;\nDROP INDEX IF EXISTS stock_current_first_day;",
    # alias_warehouse_days gains the money returned and paid out (history at a warehouse reads it
    # rather than daily_figures), filled by FILLS[13]
    13: """
    ALTER TABLE alias_warehouse_days ADD COLUMN returned_kopecks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alias_warehouse_days ADD COLUMN payout_kopecks INTEGER NOT NULL DEFAULT 0;
    """,
    # restock_now keeps several windows (the rows kept so far are the 14 days'), each with a row
    # of its own in restock_now_basis, created anew by schema.sql: until the next pass sets it,
    # restock_window computes what it is asked
    14: """
    ALTER TABLE restock_now ADD COLUMN days INTEGER NOT NULL DEFAULT 14;
    DROP TABLE IF EXISTS restock_now_basis;
    """,
    # orders.returned_units: the units of a bought line that came back (filled by FILLS[15])
    15: "ALTER TABLE orders ADD COLUMN returned_units INTEGER NOT NULL DEFAULT 0;",
    # restock_now_basis's triggers become kept_basis_* (schema.sql), which clear
    # warehouse_month_basis too: the old ones go
    16: """
    DROP TRIGGER IF EXISTS restock_now_basis_alias_warehouse_days_added;
    DROP TRIGGER IF EXISTS restock_now_basis_alias_warehouse_days_changed;
    DROP TRIGGER IF EXISTS restock_now_basis_alias_warehouse_days_removed;
    DROP TRIGGER IF EXISTS restock_now_basis_alias_warehouse_stock_added;
    DROP TRIGGER IF EXISTS restock_now_basis_alias_warehouse_stock_changed;
    DROP TRIGGER IF EXISTS restock_now_basis_alias_warehouse_stock_removed;
    DROP TRIGGER IF EXISTS restock_now_basis_alias_warehouse_first_days_added;
    DROP TRIGGER IF EXISTS restock_now_basis_alias_warehouse_first_days_changed;
    DROP TRIGGER IF EXISTS restock_now_basis_alias_warehouse_first_days_removed;
    DROP TRIGGER IF EXISTS restock_now_basis_sku_names_added;
    DROP TRIGGER IF EXISTS restock_now_basis_sku_names_changed;
    DROP TRIGGER IF EXISTS restock_now_basis_sku_names_removed;
    DROP TRIGGER IF EXISTS restock_now_basis_accounts_added;
    DROP TRIGGER IF EXISTS restock_now_basis_accounts_changed;
    DROP TRIGGER IF EXISTS restock_now_basis_accounts_removed;
    """,
    # restock_now keyed per window (days, position) and its time in restock_now_basis, both
    # created anew by schema.sql; the collector keeps them again right after the upgrade
    # (pipeline.upgrade), and until then restock_window computes what it is asked
    17: """
    DROP TABLE IF EXISTS restock_now;
    DROP TABLE IF EXISTS restock_now_basis;
    """,
    # the order cohort per warehouse (summary at one warehouse reads it there rather than from
    # daily_figures), and the money returned and paid out per warehouse: filled by FILLS[18]
    18: """
    ALTER TABLE alias_warehouse_days ADD COLUMN cohort_units INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alias_warehouse_days ADD COLUMN cohort_bought INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alias_warehouse_days ADD COLUMN cohort_not_bought INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE account_warehouse_days ADD COLUMN returned_kopecks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE account_warehouse_days ADD COLUMN payout_kopecks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE account_warehouse_days ADD COLUMN cohort_units INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE account_warehouse_days ADD COLUMN cohort_bought INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE account_warehouse_days ADD COLUMN cohort_not_bought INTEGER NOT NULL DEFAULT 0;
    """,
    # alias_warehouse_days keyed (day, warehouse, account, alias): one warehouse's days are key ranges
    19: rekeyed("alias_warehouse_days"),
    # today_now keeps the week and the month too, keyed by its period: made anew (the pages kept
    # ready are computed again right after an upgrade)
    23: "DROP TABLE IF EXISTS today_now;",
    # what to ship learns the roubles lost (restock_now.lost_rub, and each place's kopecks
    # ordered, restock_days_now.ordered_kopecks_days), «По складам» the roubles returned
    # (warehouse_month_now.returned_rub): made anew, their bases with them, and kept again right
    # after the upgrade (pipeline.upgrade)
    28: """
    DROP TABLE IF EXISTS restock_now;
    DROP TABLE IF EXISTS restock_days_now;
    DROP TABLE IF EXISTS restock_now_basis;
    DROP TABLE IF EXISTS warehouse_month_now;
    DROP TABLE IF EXISTS warehouse_month_basis;
    """,
    # each place's units and kopecks ordered kept as ASCII digits in BLOBs (restock_days_now):
    # made anew, with the basis that vouches for it, and kept again right after the upgrade
    # (pipeline.upgrade)
    29: """
    DROP TABLE IF EXISTS restock_days_now;
    DROP TABLE IF EXISTS restock_now_basis;
    """,
    # an alert learns the disk running out of room and its recovery (alert_outbox.kind's CHECK):
    # the table moves aside (its index with it, dropped), schema.sql makes it anew as it says, and
    # FILLS[30] brings its rows back (a database older than the alerts has none to move)
    30: """
    CREATE TABLE IF NOT EXISTS alert_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, kind TEXT,
        title TEXT, body TEXT, created_at TEXT, day TEXT, status TEXT, done_at TEXT);
    DROP INDEX IF EXISTS alert_outbox_pending;
    -- (legacy: the rename alone, the deliveries still naming alert_outbox, and no check of every
    -- view, some of which name tables an old database gets only from schema.sql after this)
    PRAGMA legacy_alter_table = ON;
    ALTER TABLE alert_outbox RENAME TO alert_outbox_v29;
    PRAGMA legacy_alter_table = OFF;
    """,
    # orders_day and sales_day learn the SKU (a filter on one SKU seeks it day by day): made anew
    # by schema.sql, and the planner told of them by FILLS[31]
    31: """
    DROP INDEX IF EXISTS orders_day;
    DROP INDEX IF EXISTS sales_day;
    """,
    # article_skus (schema 32) becomes named_skus, which counts the barcodes too: the table and its
    # triggers go, schema.sql makes named_skus and FILLS[33] counts it
    33: """
    DROP TRIGGER IF EXISTS article_skus_order_added;
    DROP TRIGGER IF EXISTS article_skus_order_changed;
    DROP TRIGGER IF EXISTS article_skus_order_removed;
    DROP TRIGGER IF EXISTS article_skus_sale_added;
    DROP TRIGGER IF EXISTS article_skus_sale_changed;
    DROP TRIGGER IF EXISTS article_skus_sale_removed;
    DROP VIEW IF EXISTS article_skus_recomputed;
    DROP TABLE IF EXISTS article_skus;
    """,
}
IN_BATCH = 500  # bound for "IN (?, ?, ...)" lists
PROGRESS_EVERY = 15  # seconds between "still upgrading" lines in the log
PROGRESS_CHECK = 100_000  # SQLite instructions between two looks at the clock


CACHE_KIB = 64 * 1024  # each connection's page cache


class StorageError(Exception):
    """The database cannot be opened or written, worded for the person running the collector."""


def make_database_folder(path: Path) -> None:
    """The database's folder, made where missing; where it cannot be (below a regular file, in a
    read-only place), a message rather than a traceback."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot open the database {path}: its folder {path.parent} "
                           f"cannot be created ({exc.strerror or exc})") from None


class Storage:
    """The collector's view of the database: one SQLite connection per thread (a connection
    shared between threads would let one thread read inside another's transaction), and one
    write lock per process."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite_utils.Database] = []
        self._lock = threading.RLock()
        self._writer: int | None = None  # the thread whose `one_transaction` is open
        self._undone: BaseException | None = None  # what made SQLite undo that transaction
        self._savepoints = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db.enable_wal()
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the database {self.path}: {exc}") from None

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            db = sqlite_utils.Database(conn)
            # NORMAL is durable across a crash of the process in WAL mode; only a power cut
            # can lose the last commit, and the next pass fetches it again.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            # A pass's transactions change thousands of pages: in SQLite's default cache of 2 MB
            # they were written to the WAL before each commit and again at it (the WAL's frame
            # rewritten in place), a fifth of what a pass writes (benchmarks/passwrites.py).
            # Pages are cached as they are read, up to this.
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    # -- schema ------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> int:
        """Create or upgrade the database to SCHEMA_VERSION; returns the version found."""
        found = self.schema_version
        if found > SCHEMA_VERSION:
            raise StorageError(f"{self.path} has schema version {found}, newer than this collector "
                               f"({SCHEMA_VERSION}): update MP Dashboard")
        if found == SCHEMA_VERSION:
            # Recreate views and triggers as this file defines them (cheap; tables stay).
            self._apply_script(schema_sql())
            return found
        if not found:
            self._apply_script(schema_sql() + f"PRAGMA user_version = {SCHEMA_VERSION};")
            return found
        newer = range(found + 1, SCHEMA_VERSION + 1)
        rebuild = any(v in REBUILD_AFTER for v in newer)
        parts = [(f"schema {v}: changing tables", script) for v in newer if v in MIGRATIONS
                 if (script := self._applicable(MIGRATIONS[v])).strip()]
        parts.append(("creating tables, views and triggers", schema_sql()))
        if rebuild:
            parts.append(("recomputing every summary from the raw rows", rebuild_sql()))
        else:
            parts += [(f"schema {v}: filling {filled_tables(FILLS[v])}", FILLS[v]) for v in newer if v in FILLS]
        parts.append(("recording the new version", f"PRAGMA user_version = {SCHEMA_VERSION};"))
        started = time.monotonic()
        self._apply_in_steps(parts, f"upgrading the database from schema {found} to {SCHEMA_VERSION}")
        logs.event(logging.INFO, f"database upgraded from schema {found} to {SCHEMA_VERSION} in "
                   f"{time.monotonic() - started:.1f} s", event="migrate", found=found, version=SCHEMA_VERSION)
        return found

    def rebuild_summaries(self) -> dict[str, int]:
        """Recompute every summary the triggers keep (daily_figures, orders.outcome, first stock
        days, order warehouses) from the raw rows, in one transaction; returns row counts."""
        self._apply_script(rebuild_sql())
        return {table: self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("orders", "sales", "stock", "daily_figures", "sku_days", "alias_days")}

    def _applicable(self, migration: str) -> str:
        """A migration's statements but those adding a column to a table this database does not
        have yet (older than the table: schema.sql creates it whole) or that has it already."""
        def needless(statement: str) -> bool:
            added = re.search(r"^\s*ALTER TABLE (\w+) ADD COLUMN (\w+)", statement, re.M)
            return bool(added) and not self.db.execute(
                "SELECT 1 FROM sqlite_master m WHERE m.type = 'table' AND m.name = ?"
                " AND NOT EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE name = ?)", added.groups()).fetchone()
        return "".join(statement for statement in sql_statements(migration) if not needless(statement))

    def summary_drift(self) -> dict[str, int]:
        return summary_drift(self.db)

    def keep_recent_minutes(self, now: datetime, zone: ZoneInfo) -> None:
        """Keep recent_minutes from the day before yesterday (local) on: a viewer whose clock is
        still on the evening before the writer's midnight finds its yesterday kept too. Before a
        pass or a backfill writes, so that its lines' minutes are kept as they arrive."""
        self.keep_minutes_from(minutes_kept_from(now, zone))

    def keep_minutes_from(self, day: str) -> None:
        """Move recent_minutes' floor to `day`: the days before it dropped, the days from it on
        that it did not keep yet added from the raw lines, in one transaction."""
        with self.transaction():
            floor = self.db.execute("SELECT day FROM recent_minutes_floor").fetchone()
            if floor and floor[0] == day:
                return
            self.db.execute("INSERT OR REPLACE INTO recent_minutes_floor (id, day) VALUES (1, ?)", [day])
            self.db.execute("DELETE FROM recent_minutes WHERE day < ?", [day])
            self.db.execute("INSERT INTO recent_minutes SELECT * FROM recent_minutes_recomputed WHERE day < ?",
                            [floor[0] if floor else "9999-12-31"])

    def _apply_script(self, script: str) -> None:
        """One script in one transaction: sqlite3's executescript() commits whatever is open
        first and then runs statement by statement, so the script brings its own BEGIN/COMMIT."""
        with self._lock, self._undone_on_error():
            self.db.conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nCOMMIT;")

    def _apply_in_steps(self, parts: list[tuple[str, str]], work: str) -> None:
        """Scripts run statement by statement in one transaction, each announced in the log, and
        the time so far logged every PROGRESS_EVERY seconds while one statement runs (filling a
        summary of a year of history takes minutes)."""
        conn = self.db.conn
        started = last_said = time.monotonic()

        def still_working() -> int:
            nonlocal last_said
            if time.monotonic() - last_said >= PROGRESS_EVERY:
                last_said = time.monotonic()
                logs.event(logging.INFO, f"{work}: {step}, {last_said - started:.0f} s so far", event="migrate_progress")
            return 0

        with self._lock:
            conn.set_progress_handler(still_working, PROGRESS_CHECK)
            try:
                with self._undone_on_error():
                    conn.execute("BEGIN IMMEDIATE")
                    for number, (step, script) in enumerate(parts, start=1):
                        logs.event(logging.INFO, f"{work}: {step} ({number} of {len(parts)})", event="migrate_progress")
                        for statement in sql_statements(script):
                            conn.execute(statement)
                    conn.execute("COMMIT")
            finally:
                conn.set_progress_handler(None, 0)

    @contextmanager
    def _undone_on_error(self):
        """A script that fails leaves nothing behind and says so in the operator's words."""
        try:
            yield
        except sqlite3.Error as exc:
            if self.db.conn.in_transaction:
                self.db.conn.rollback()
            raise StorageError(f"cannot write the database {self.path}: {exc}") from None

    @contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE takes the write lock up front, so two writers never deadlock. Inside
        `one_transaction`, a savepoint of it instead: what fails inside is undone, and the rest
        of the outer transaction goes on.

        SQLite's temporary files are kept in memory inside. An upsert fires triggers into a dozen
        summaries and journals, for its own rollback, the pages it changes that the transaction
        had changed already; past 64 KiB SQLite spilled that journal to a temporary file, half of
        what a pass wrote at the reference seller, all of it thrown away. A statement's journal is
        a few hundred KiB; the sorts of the pages kept ready hold ~175 MB for seconds (in files
        they wrote ~400 MB a pass). A rebuild, an upgrade and the drift check, which sort millions
        of rows, run outside it and keep theirs on disk."""
        with self._lock:
            if self._writer is not None:
                if self._writer != threading.get_ident():
                    raise StorageError("a write from another thread while a pass's transaction is open: "
                                       "a pass writes from its own thread only (collector/pipeline.py)")
                if self._undone is not None:  # (a write after SQLite undid the pass: fails as that one did)
                    raise type(self._undone)(str(self._undone))
                with self._savepoint():
                    yield self.db
                return
            self.db.execute("PRAGMA temp_store = MEMORY")
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.rollback()
                raise
            else:
                self.db.execute("COMMIT")
            finally:
                self.db.execute("PRAGMA temp_store = DEFAULT")

    @contextmanager
    def _savepoint(self):
        self._savepoints += 1
        name = f"part_{self._savepoints}"
        self.db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException as exc:
            if not self.db.conn.in_transaction:
                # SQLite undid the whole transaction itself (a full disk while it spilled pages)
                self._undone = exc
                raise
            self.db.execute(f"ROLLBACK TO {name}")
            self.db.execute(f"RELEASE {name}")
            raise
        else:
            self.db.execute(f"RELEASE {name}")

    @contextmanager
    def one_transaction(self, commit_on: tuple[type[BaseException], ...] = ()):
        """Every write of this thread, until the block ends, in one transaction committed at the
        end: a reader sees all of it or none. `transaction()` inside it is a savepoint. An
        exception undoes the whole, but one of `commit_on`, which commits what was written
        before it went on. When SQLite undoes the whole itself (a full disk), or the commit
        fails, StorageError says that nothing of it was saved."""
        with self._lock:
            self.db.execute("PRAGMA temp_store = MEMORY")
            self.db.execute("BEGIN IMMEDIATE")
            self._writer, self._undone = threading.get_ident(), None
        try:
            yield self.db
        except commit_on:
            self._end_one("COMMIT")
            raise
        except BaseException:
            self._end_one("ROLLBACK")
            raise
        else:
            self._end_one("COMMIT")

    def _end_one(self, how: str) -> None:
        with self._lock:
            db, undone = self.db, self._undone
            self._writer = self._undone = None
            cause = undone
            if cause is None:
                try:
                    db.execute(how)
                except sqlite3.Error as exc:  # a COMMIT that failed (a full disk): nothing of it stays
                    cause = exc
            if cause is not None and db.conn.in_transaction:
                db.conn.rollback()
            db.execute("PRAGMA temp_store = DEFAULT")
            if cause is not None:
                raise self._nothing_saved(cause) from None

    def _nothing_saved(self, exc: BaseException) -> StorageError:
        if "disk is full" in str(exc):
            return StorageError(f"the disk holding the database is full ({self.path.parent}): nothing of this pass "
                                f"was saved, and the next pass fetches it again once there is space")
        return StorageError(f"cannot write the database {self.path}: {exc}: nothing of this pass was saved")

    # -- bookkeeping -------------------------------------------------------------------------

    def save_accounts(self, accounts: Iterable[tuple[str, str, str]]) -> None:
        """Every pass: an account unchanged is not written, for its triggers would set aside every
        page kept ready (a marketplace moved changes them all)."""
        with self.transaction():
            self._executemany(
                "INSERT INTO accounts (account, marketplace, label) VALUES (?, ?, ?) "
                "ON CONFLICT (account) DO UPDATE SET marketplace = excluded.marketplace, label = excluded.label "
                "WHERE marketplace IS NOT excluded.marketplace OR label IS NOT excluded.label",
                accounts)

    def start_run(self, started_at: str, trigger: str) -> int:
        """A new `runs` row. Callers hold the run lock, so a run still marked running was cut
        short (killed, or the machine stopped): it is closed as failed first."""
        with self.transaction():
            self.db.execute("UPDATE runs SET status = 'failed', finished_at = ? WHERE status = 'running'", [started_at])
            return self.db.execute("INSERT INTO runs (started_at, status, trigger) VALUES (?, 'running', ?)",
                                   [started_at, trigger]).lastrowid

    def finish_run(self, run_id: int, finished_at: str, status: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE runs SET finished_at = ?, status = ? WHERE id = ?",
                            [finished_at, status, run_id])

    def log_fetch(self, entry: dict) -> None:
        """One fetch_log row; in a pass, in the savepoint of the dataset it logs."""
        with self.transaction():
            self.db["fetch_log"].insert(entry)

    def watermark(self, account: str, dataset: str) -> str | None:
        row = self.db.execute("SELECT value FROM watermarks WHERE account = ? AND dataset = ?",
                              [account, dataset]).fetchone()
        return row[0] if row else None

    def set_watermark(self, account: str, dataset: str, value: str, now: str) -> None:
        self.db.execute(
            "INSERT INTO watermarks (account, dataset, value, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (account, dataset) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [account, dataset, value, now])

    def set_source_note(self, account: str, dataset: str, note: str | None, now: str) -> None:
        """The freshness page's note for a source (None clears it). Call inside a transaction."""
        if note is None:
            self.db.execute("DELETE FROM source_notes WHERE account = ? AND dataset = ?", [account, dataset])
        else:
            self.db.execute(
                "INSERT INTO source_notes (account, dataset, note, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (account, dataset) DO UPDATE SET note = excluded.note, updated_at = excluded.updated_at",
                [account, dataset, note, now])

    # -- data (call inside `transaction()`) --------------------------------------------------

    def write_products(self, products: Sequence[Product], now: str, names_fill_only: bool = False) -> None:
        """Fill in what is known; a missing article or name never erases a known one. With
        `names_fill_only` a name only fills an empty one: WB statistics rows name a product by
        its subject (a category), which must not overwrite the title from its card.

        A row is written only when what it knows changes (updated_at: when it last did). Every
        pass sees the products of the day's orders again; rewriting each of them cost ~2 MB of
        WAL a pass at the reference seller and ran sku_names' triggers for every one."""
        name = "coalesce(name, excluded.name)" if names_fill_only else "coalesce(excluded.name, name)"
        article, barcode = "coalesce(excluded.article, article)", "coalesce(excluded.barcode, barcode)"
        self._executemany(
            "INSERT INTO products (account, sku, size, article, name, barcode, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, sku, size) DO UPDATE SET "
            f"article = {article}, name = {name}, barcode = {barcode}, updated_at = excluded.updated_at "
            f"WHERE article IS NOT {article} OR name IS NOT {name} OR barcode IS NOT {barcode}",
            (row + (now,) for row in map(record_values(Product), _unique(products, PRODUCT_KEY))))

    def write_orders(self, lines: Sequence[OrderLine]) -> None:
        self._executemany(upsert_sql(
            "orders", OrderLine, key=("account", "order_id", "sku"), kept=("changed_at",),
            # When the status last changed: kept while the status stays the same.
            also="changed_at = CASE WHEN orders.status IS excluded.status AND orders.quantity = excluded.quantity "
                 "THEN coalesce(orders.changed_at, excluded.changed_at) ELSE excluded.changed_at END",
            also_when="orders.changed_at IS NULL AND excluded.changed_at IS NOT NULL",
            on_insert={"outcome": OUTCOME_ON_ITS_OWN}),
            map(record_values(OrderLine), lines))

    def write_sales(self, events: Sequence[SaleEvent]) -> None:
        self._executemany(upsert_sql("sales", SaleEvent, key=("account", "kind", "sale_id", "sku")),
                          map(record_values(SaleEvent), events))

    def ozon_buyouts(self, lines: Sequence[OrderLine], seen_at: str, day: str) -> list[SaleEvent]:
        """Sales implied by postings now `delivered`, judged against what was stored before.

        Ozon gives no delivery time, so a posting counts as bought on the day a pass first sees
        it delivered after having seen it open. Delivered at first sight: a sale with no day.
        """
        delivered = [line for line in lines if line.status == "delivered"]
        before = self._stored_statuses(delivered)
        events = []
        for line in delivered:
            previous = before.get((line.order_id, line.sku))
            if previous == "delivered":
                continue
            dated = previous is not None
            events.append(SaleEvent(
                account=line.account, kind="sale", sale_id=line.order_id, sku=line.sku,
                order_id=line.order_id, article=line.article, size=line.size, barcode=None,
                warehouse=line.warehouse, sold_at=seen_at if dated else None, day=day if dated else None,
                quantity=line.quantity,
                amount_kopecks=line.price_kopecks * line.quantity if line.price_kopecks is not None else None,
                return_type=None, changed_at=seen_at, payout_kopecks=line.payout_kopecks))
        return events

    def insert_new_sales(self, events: Sequence[SaleEvent]) -> None:
        """Sales that must never be re-dated once stored (Ozon buyouts)."""
        names = columns(SaleEvent)
        self._executemany(f"INSERT OR IGNORE INTO sales ({', '.join(names)}) "
                          f"VALUES ({', '.join('?' * len(names))})", map(record_values(SaleEvent), events))

    def _stored_statuses(self, lines: Sequence[OrderLine]) -> dict[tuple[str, int], str]:
        found: dict[tuple[str, int], str] = {}
        if not lines:
            return found
        account = lines[0].account
        numbers = sorted({line.order_id for line in lines})
        for start in range(0, len(numbers), IN_BATCH):
            batch = numbers[start:start + IN_BATCH]
            rows = self.db.execute(
                f"SELECT order_id, sku, status FROM orders WHERE account = ? "
                f"AND order_id IN ({', '.join('?' * len(batch))})", [account, *batch])
            found.update({(order_id, sku): status for order_id, sku, status in rows})
        return found

    def open_postings(self, account: str, since_day: str, before_day: str) -> list[str]:
        """Ozon postings stored as still open, created in [since_day, before_day)."""
        rows = self.db.execute(
            "SELECT DISTINCT order_id FROM orders WHERE account = ? AND day >= ? AND day < ? "
            "AND status NOT IN ('delivered', 'cancelled') ORDER BY order_id",
            [account, since_day, before_day])
        return [row[0] for row in rows]

    def wb_order_details(self, account: str, order_ids: Iterable[str]) -> dict[str, tuple]:
        """{srid: (article, size, barcode)} of stored order lines: the order feed names none of
        them, so a line statistics wrote keeps its own when the feed rewrites it."""
        return {row[0]: tuple(row[1:]) for row in self._by_order_ids(
            "SELECT order_id, article, size, barcode FROM orders WHERE account = ? AND order_id IN ({})",
            account, order_ids)}

    def sale_kinds(self, account: str, order_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(order_id, kind) of the stored sales rows of these orders, whoever wrote them."""
        return {tuple(row) for row in self._by_order_ids(
            "SELECT DISTINCT order_id, kind FROM sales WHERE account = ? AND order_id IN ({})",
            account, order_ids)}

    def drop_feed_sales(self, account: str, events: Sequence[SaleEvent]) -> None:
        """Delete the order feed's sales and returns (sale_id = the srid) of the orders and kinds
        that statistics rows now give, so one unit is never counted by both sources."""
        self._executemany(
            "DELETE FROM sales WHERE account = ? AND order_id = ? AND kind = ? AND sale_id = order_id",
            {(account, event.order_id, event.kind) for event in events if event.order_id})

    def _by_order_ids(self, sql: str, account: str, order_ids: Iterable[str]) -> list[tuple]:
        """Rows of `sql` (an IN list left as {}) for every order id, IN_BATCH ids a query."""
        ids, rows = sorted(set(order_ids)), []
        for start in range(0, len(ids), IN_BATCH):
            batch = ids[start:start + IN_BATCH]
            rows += self.db.execute(sql.format(", ".join("?" * len(batch))), [account, *batch]).fetchall()
        return rows

    def write_stock(self, account: str, levels: Sequence[StockLevel], observed_at: str, day: str,
                    run_id: int | None) -> int:
        """Record the account's complete current stock; returns the number of change rows.

        A row goes into `stock` only where the quantity differs from the last stored one, and a
        key that is no longer reported drops to 0.
        """
        current = {(sku, size, warehouse): qty for sku, size, warehouse, qty in self.db.execute(
            "SELECT sku, size, warehouse, quantity FROM stock_current WHERE account = ?", [account])}
        reported = {(lvl.sku, lvl.size, lvl.warehouse): lvl.quantity for lvl in levels}
        for key, qty in current.items():
            if key not in reported and qty != 0:
                reported[key] = 0
        changes = [(key, qty) for key, qty in reported.items() if current.get(key) != qty]
        self._executemany(
            "INSERT INTO stock (account, sku, size, warehouse, quantity, observed_at, day, run_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((account, *key, qty, observed_at, day, run_id) for key, qty in changes))
        self._executemany(
            "INSERT INTO stock_current (account, sku, size, warehouse, quantity, changed_at, seen_at, first_day) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, sku, size, warehouse) DO UPDATE SET "
            "quantity = excluded.quantity, changed_at = excluded.changed_at, seen_at = excluded.seen_at, "
            "first_day = min(coalesce(stock_current.first_day, excluded.first_day), excluded.first_day)",
            ((account, *key, qty, observed_at, observed_at, day) for key, qty in changes))
        # (first_day is the earliest day a change was stored, as a rebuild recomputes it, even
        # when a day's stock arrives after a later one's)
        # Unchanged keys are not touched: rewriting every key's row each pass cost the reference
        # seller ~1.7 GB of WAL a day. When the account's stock was last read is in fetch_log.
        return len(changes)

    def known_skus(self, account: str, since_day: str) -> list[int]:
        """SKUs seen in stock or in orders since `since_day`: a product that just sold out
        reads as having no FBO stock in the product list, but its stock still matters."""
        rows = self.db.execute(
            "SELECT sku FROM stock_current WHERE account = ? AND quantity > 0 "
            "UNION SELECT sku FROM orders WHERE account = ? AND day >= ?", [account, account, since_day])
        return [row[0] for row in rows]

    def replace_aliases(self, rows: Sequence[tuple[str, str, str, int]], state: dict[str, str] | None = None,
                        now: str = "") -> None:
        with self.transaction():
            self.db.execute("DELETE FROM sku_aliases")
            self._executemany("INSERT INTO sku_aliases (marketplace, key, alias, position) VALUES (?, ?, ?, ?)",
                              rows)
            for key, value in (state or {}).items():
                self.set_state(key, value, now)

    def state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM collector_state WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str, now: str) -> None:
        self.db.execute(
            "INSERT INTO collector_state (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [key, value, now])

    # -- optional datasets and rows set aside (call inside `transaction()`) -------------------

    def write_rejected(self, account: str, dataset: str, rejected: Sequence, now: str) -> None:
        """Rows a normaliser set aside (collector.rejects.Rejected); one row per distinct raw row."""
        self._executemany(
            "INSERT INTO rejected_rows (account, dataset, row_key, raw, reason, first_seen, seen_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, dataset, row_key) DO UPDATE SET "
            "reason = excluded.reason, seen_at = excluded.seen_at",
            ((account, dataset, r.key, r.raw, r.reason, now, now) for r in rejected))

    def replace_note(self, account: str, dataset: str, note: str | None, now: str, owned_mark: str) -> None:
        """Set a note, or clear it only when it is the caller's own (it contains `owned_mark`):
        another part of the collector may have something to say about the same source."""
        if note is not None:
            self.set_source_note(account, dataset, note, now)
        else:
            self.db.execute("DELETE FROM source_notes WHERE account = ? AND dataset = ? AND instr(note, ?) > 0",
                            [account, dataset, owned_mark])

    def write_balance(self, balance, fetched_at: str) -> bool:
        """A `balances` row when any figure differs from the account's latest; True if written."""
        names = ("currency", "current_kopecks", "for_withdraw_kopecks", "opening_kopecks", "accrued_kopecks",
                 "paid_kopecks", "closing_kopecks")
        figures = tuple(getattr(balance, name) for name in names)
        latest = self.db.execute(f"SELECT {', '.join(names)} FROM balances WHERE account = ? "
                                 "ORDER BY id DESC LIMIT 1", [balance.account]).fetchone()
        if latest is not None and tuple(latest) == figures:
            return False
        self.db.execute(f"INSERT INTO balances (account, fetched_at, day, {', '.join(names)}) "
                        f"VALUES (?, ?, ?, {', '.join('?' * len(names))})",
                        [balance.account, fetched_at, balance.day, *figures])
        return True

    def write_sizes(self, account: str, sizes: Sequence[tuple[int, str, str, str | None]], now: str) -> None:
        """WB (sku, chrtId, techSize, barcode) from the cards; stock stored under a chrtId moves
        to its techSize, so a key changes its name instead of dropping to 0 (schema.sql, sizes)."""
        self._executemany(
            "INSERT INTO sizes (account, sku, chrt_id, tech_size, barcode, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (account, sku, chrt_id) DO UPDATE SET tech_size = excluded.tech_size, "
            "barcode = coalesce(excluded.barcode, barcode), updated_at = excluded.updated_at",
            ((account, sku, chrt, tech, barcode, now) for sku, chrt, tech, barcode in sizes))
        relabel = [(tech, account, sku, chrt) for sku, chrt, tech, _ in sizes if tech != chrt]
        # OR IGNORE: should two chrtIds of one card share a techSize, the second keeps its chrtId.
        self._executemany("UPDATE OR IGNORE stock_current SET size = ? WHERE account = ? AND sku = ? AND size = ?",
                          relabel)
        self._executemany("UPDATE stock SET size = ? WHERE account = ? AND sku = ? AND size = ?", relabel)

    def size_names(self, account: str) -> dict[tuple[int, str], str]:
        """{(nmId, chrtId): techSize} of the WB sizes the cards mapped."""
        return {(sku, chrt): tech for sku, chrt, tech in self.db.execute(
            "SELECT sku, chrt_id, tech_size FROM sizes WHERE account = ?", [account])}

    def _executemany(self, sql: str, rows: Iterable[tuple]) -> None:
        self.db.conn.executemany(sql, rows)


def minutes_kept_from(now: datetime, zone: ZoneInfo) -> str:
    """The first day recent_minutes keeps at `now`: the day before yesterday in `zone`."""
    return (parse_day(local_day(now, zone)) - timedelta(days=2)).isoformat()


def filled_tables(script: str) -> str:
    """The tables a fill writes, for the log (not SQLite's own: the sequence set after a copy)."""
    names = re.findall(r"(?:INSERT (?:OR REPLACE )?INTO|UPDATE) (\w+)", script)
    analyzed = re.findall(r"ANALYZE (\w+)", script)
    return ", ".join([*dict.fromkeys(name for name in names if not name.startswith("sqlite_")),
                      *(f"the statistics of {name}" for name in analyzed)])


def sql_statements(script: str) -> Iterator[str]:
    """A script's statements one by one (a trigger's body, semicolons and all, is one)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if statement.strip():  # what follows the last statement: comments, or a statement cut short (an error)
        yield statement


# Summaries recomputed from the raw rows. Triggers are dropped first, so the bulk statements do
# not fire them row by row; schema.sql, applied last, creates them again.
def rebuild_sql() -> str:
    schema = schema_sql()
    drops = "".join(f"DROP TRIGGER IF EXISTS {name};\n" for name in re.findall(r"CREATE TRIGGER (\w+)", schema))
    return drops + REBUILD_STATEMENTS + schema


def summary_rows(db) -> tuple[set, set]:
    """Every kept summary's rows that count (not all zero), as kept and as recomputed from
    the raw rows, each row led by its table's name. A row of zeros counts as no row: a
    trigger may leave one behind where the changes cancelled out (NULL counts as zero)."""
    kept, recomputed = set(), set()
    for table, view, keys in SUMMARIES:
        kept_sql, recomputed_sql = counted_rows_sql(db, table, view, keys)
        kept |= {(table, *row) for row in db.execute(kept_sql)}
        recomputed |= {(table, *row) for row in db.execute(recomputed_sql)}
    return kept, recomputed


def counted_rows_sql(db, table: str, view: str, keys: int) -> tuple[str, str]:
    """The rows of a summary that count, and of its recomputation (`view`): key columns first
    and in key order, as the summary's primary key has them."""
    columns = db.execute(f"PRAGMA table_info({table})").fetchall()
    key = [name for _, name in sorted((pk, name) for _, name, _, _, _, pk in columns if pk)]
    values = [name for _, name, _, _, _, pk in columns if not pk]
    assert len(key) == keys, table
    # (a name is never 0; a table of keys alone counts every row)
    nonzero = " OR ".join([f"coalesce({c}, 0) IS NOT 0" for c in values] or ["1"])
    select = f"SELECT {', '.join(key + values)} FROM {{}} WHERE {nonzero} ORDER BY {', '.join(key)}"
    return select.format(table), select.format(view)


def summary_drift(db) -> dict[str, int]:
    """Per kept summary (and orders.outcome), how many rows differ from a recomputation from
    the raw rows: all zero when the triggers kept them in step."""
    return dict(summary_drifts(db))


def summary_drifts(db) -> Iterator[tuple[str, int]]:
    """summary_drift()'s figures one at a time, as each is worked out (minutes for
    daily_figures at a year). Each summary and its recomputation are read in key order side by
    side, so that memory stays flat whatever the history (as sets, 7.3 GB at 90 days of the
    reference seller)."""
    for table, view, keys in SUMMARIES:
        kept_sql, recomputed_sql = counted_rows_sql(db, table, view, keys)
        yield table, rows_differing(db.execute(kept_sql), db.execute(recomputed_sql), keys)
    yield "orders.outcome", db.execute(
        "SELECT count(*) FROM orders o JOIN order_outcomes v USING (account, order_id, sku) "
        "WHERE o.outcome IS NOT v.outcome OR o.returned_units IS NOT v.returned_units").fetchone()[0]


def rows_differing(left: Iterator[tuple], right: Iterator[tuple], keys: int) -> int:
    """How many keys (the first `keys` columns) of two streams of rows, each in SQLite's key
    order, are in one only or carry other values."""
    def keyed(rows):  # (SQLite's order: NULL, numbers, text, blobs)
        for row in rows:
            yield tuple((0, 0) if v is None else (1, v) if isinstance(v, (int, float)) else
                        (2, v) if isinstance(v, str) else (3, v) for v in row[:keys]), row

    left, right = keyed(left), keyed(right)
    a, b = next(left, None), next(right, None)
    differing = 0
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            differing, a = differing + 1, next(left, None)
        elif a is None or b[0] < a[0]:
            differing, b = differing + 1, next(right, None)
        else:
            differing, a, b = differing + (a[1] != b[1]), next(left, None), next(right, None)
    return differing


REBUILD_STATEMENTS = """
UPDATE orders SET outcome = v.outcome, returned_units = v.returned_units FROM order_outcomes v
WHERE orders.account = v.account AND orders.order_id = v.order_id AND orders.sku = v.sku
  AND (orders.outcome IS NOT v.outcome OR orders.returned_units IS NOT v.returned_units);
DELETE FROM daily_figures;
INSERT INTO daily_figures (day, account, sku, warehouse, ordered_lines, ordered, sales_lines, bought, returned,
                           stock_delta, ordered_kopecks, bought_kopecks, returned_kopecks, payout_kopecks,
                           cohort_units, cohort_bought, cohort_not_bought)
SELECT day, account, sku, warehouse, ordered_lines, ordered, sales_lines, bought, returned,
       stock_delta, ordered_kopecks, bought_kopecks, returned_kopecks, payout_kopecks,
       cohort_units, cohort_bought, cohort_not_bought
FROM daily_figures_recomputed;
UPDATE stock_current SET first_day = (
    SELECT min(s.day) FROM stock s
    WHERE s.account = stock_current.account AND s.sku = stock_current.sku AND s.size = stock_current.size
      AND s.warehouse = stock_current.warehouse);
""" + refill_sql("sku_days", "sku_stock", "sku_names", "summary_days", "alias_days", "alias_stock",
                 "minute_totals", "alias_warehouse_stock", "alias_warehouse_first_days", "account_days", "alias_warehouse_days",
                 "marketplace_alias_days", "account_warehouse_days", "alias_warehouse_months", "alias_months",
                 "marketplace_alias_warehouse_days", "recent_minutes", "marketplace_alias_warehouses",
                 "named_skus") + """
DELETE FROM today_now;
DELETE FROM buyout_now;
UPDATE restock_now_basis SET in_step = 0;
UPDATE warehouse_month_basis SET in_step = 0;
UPDATE stock_days_basis SET in_step = 0;
DELETE FROM order_warehouses;
INSERT INTO order_warehouses (warehouse, last_day)
SELECT warehouse, max(day) FROM orders WHERE warehouse IS NOT NULL GROUP BY warehouse;
"""


@cache
def record_values(record_type):
    """A function from a record to its column values, in table order. attrgetter builds the
    tuple in C; dataclasses.astuple deep-copies every field and took most of a write's time
    (0.75 s of 1.1 s for one 80,000-row WB page)."""
    return attrgetter(*columns(record_type))


PRODUCT_KEY = attrgetter("account", "sku", "size")


def upsert_sql(table: str, record_type, key: tuple[str, ...], kept: tuple[str, ...] = (), also: str = "",
               also_when: str = "", on_insert: dict[str, str] | None = None) -> str:
    """INSERT of a record type's columns that updates every non-key column in place on conflict,
    except `kept` ones, plus any `also` assignment (which `also_when` says would change the row
    on its own). A row that would stay as it is is not
    written at all: a pass re-reads the day's orders every time, and rewriting each unchanged
    row cost a page in the WAL (and again in the checkpoint) for nothing. `on_insert`: more
    columns, given only to a new row, each an SQL expression of the record's columns ({name})."""
    names = columns(record_type)
    compared = [c for c in names if c not in key + kept]
    updates = [f"{c} = excluded.{c}" for c in compared] + ([also] if also else [])
    changed = " OR ".join([f"{table}.{c} IS NOT excluded.{c}" for c in compared] + ([also_when] if also_when else []))
    parameter = {name: f"?{n}" for n, name in enumerate(names, 1)}
    extra = on_insert or {}
    values = ["?"] * len(names) + [expression.format(**parameter) for expression in extra.values()]
    return (f"INSERT INTO {table} ({', '.join([*names, *extra])}) VALUES ({', '.join(values)}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(updates)} WHERE {changed}")


def _unique(items, key):
    """The last item per key, so one executemany never updates a row twice needlessly."""
    return list({key(item): item for item in items}.values())
