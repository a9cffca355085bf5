"""Growth: the database after 30 simulated days of passes every 10 minutes, next to what full
stock snapshots at every pass would take, and an estimate for a year.

The month is written by history.py: orders, sales and returns through the collector's
normalisers and storage, stock change-only at every 10-minute pass (through write_stock itself
for the first day, each pass checked; then write_stock's own statements, and a final write_stock
that must find nothing left to write).

"Full snapshots" is the other design: every pass appends the complete stock report (118,500 rows
for the reference seller). Its size is not extrapolated from the change rows: three complete
reports are written into a scratch copy of the same table and indexes, and what one row costs
there is multiplied by the rows every pass would have appended.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from collector.storage import Storage

from benchmarks import history

GROUPS = {  # dbstat object -> what it belongs to
    "orders": "orders", "sqlite_autoindex_orders_1": "orders", "orders_day": "orders", "orders_open": "orders",
    "sales": "sales", "sqlite_autoindex_sales_1": "sales", "sales_day": "sales",
    "stock": "stock", "stock_key_day": "stock", "stock_day": "stock",
    "stock_current": "stock_current", "sqlite_autoindex_stock_current_1": "stock_current",
    "runs": "runs + fetch_log", "fetch_log": "runs + fetch_log", "fetch_log_account_dataset": "runs + fetch_log",
    "products": "products", "sqlite_autoindex_products_1": "products",
}
PER_DAY = ("orders", "sales", "stock", "daily_figures")  # grow with every day kept
BOOKKEEPING = "runs + fetch_log"  # pruned after keep_days


@dataclass
class GrowthResult:
    days: int
    passes: int
    file_bytes: int
    groups: dict[str, int]  # bytes per group of tables and their indexes
    stock_rows: int
    full_snapshot_rows: int
    full_row_bytes: float  # what one stock row costs when whole reports are appended
    checked_passes: int
    keep_days: int

    @property
    def stock_bytes(self) -> int:
        return self.groups.get("stock", 0)

    @property
    def full_stock_bytes(self) -> float:
        return self.full_snapshot_rows * self.full_row_bytes

    @property
    def full_file_bytes(self) -> float:
        return self.file_bytes - self.stock_bytes + self.full_stock_bytes

    @property
    def ratio(self) -> float:
        """How many times smaller the database is than with full snapshots."""
        return self.full_file_bytes / self.file_bytes

    @property
    def stock_ratio(self) -> float:
        return self.full_stock_bytes / max(1, self.stock_bytes)

    def year_estimate(self, days: int = 365) -> float:
        """Tables that grow with every day, scaled to `days`; bookkeeping capped at what the
        daily pruning keeps; the rest (stock_current, products, aliases) as it is."""
        per_day = sum(self.groups.get(g, 0) for g in PER_DAY) / self.days
        bookkeeping = self.groups.get(BOOKKEEPING, 0) / min(self.days, self.keep_days) * min(days, self.keep_days)
        constant = self.file_bytes - sum(self.groups.get(g, 0) for g in (*PER_DAY, BOOKKEEPING))
        return constant + per_day * days + bookkeeping


def table_sizes(path: Path) -> tuple[int, dict[str, int]]:
    """The file's size and the bytes of each group of tables (dbstat)."""
    conn = sqlite3.connect(path)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        groups: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            group = GROUPS.get(name, "daily_figures" if name.startswith("daily_figures") else "other")
            groups[group] = groups.get(group, 0) + size
        return page_size * pages, groups
    finally:
        conn.close()


def full_row_bytes(source: Path, scratch: Path, reports: int = 3) -> float:
    """Bytes per row of `stock` (table and indexes) when complete reports are appended."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(scratch) + suffix).unlink(missing_ok=True)
    storage = Storage(scratch)
    storage.migrate()
    storage.close()
    conn = sqlite3.connect(scratch)
    try:
        conn.execute("ATTACH DATABASE ? AS source", [str(source)])
        before = _stock_pages(conn)
        for n in range(reports):
            conn.execute(
                "INSERT INTO main.stock (account, sku, size, warehouse, quantity, observed_at, day, run_id) "
                "SELECT account, sku, size, warehouse, quantity, seen_at, substr(seen_at, 1, 10), ? "
                "FROM source.stock_current ORDER BY account, sku, size, warehouse", [n + 1])
        conn.commit()
        rows = conn.execute("SELECT count(*) FROM main.stock").fetchone()[0]
        return (_stock_pages(conn) - before) / max(1, rows)
    finally:
        conn.close()


def _stock_pages(conn) -> int:
    return conn.execute("SELECT coalesce(sum(pgsize), 0) FROM dbstat('main') "
                        "WHERE name IN ('stock', 'stock_key_day', 'stock_day')").fetchone()[0]


def measure(config, out: Path, end: datetime, days: int = 30, write_stock_days: float = 1) -> GrowthResult:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "growth.db"
    made = history.generate(path, config, end - timedelta(days=days), end, write_stock_days=write_stock_days)
    size, groups = table_sizes(path)
    conn = sqlite3.connect(path)
    stock_rows = conn.execute("SELECT count(*) FROM stock").fetchone()[0]
    conn.close()
    return GrowthResult(days, made.passes, size, groups, stock_rows, made.full_snapshot_rows,
                        full_row_bytes(path, out / "full-snapshots.db"), made.checked_passes,
                        history.maintenance.DEFAULT_KEEP_DAYS)
