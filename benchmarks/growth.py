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

# What each table does over time, for the year's estimate. Bookkeeping is pruned after keep_days;
# the steady tables hold the current state, the catalog, the pages kept ready and what vouches
# for them, or the last three days' minutes, whatever the history. Every other table grows with
# each day kept, with its indexes: a table added later is counted as growing, never left out.
BOOKKEEPING = {"runs", "fetch_log", "alert_outbox", "alert_deliveries"}
DAYS_A_MONTH = 365 / 12
MONTHLY = {"alias_months", "alias_warehouse_months"}  # a row per month, rewritten through it
STEADY = {"accounts", "products", "sizes", "sku_aliases", "sku_names", "sku_stock", "stock_current", "alias_stock",
          "alias_warehouse_stock", "alias_warehouse_first_days", "marketplace_alias_warehouses", "order_warehouses",
          "watermarks", "collector_state", "source_notes", "alert_state", "recent_minutes", "recent_minutes_floor",
          "restock_now", "restock_now_basis", "restock_days_now", "today_now", "buyout_now", "warehouse_month_now",
          "warehouse_month_basis", "stock_days_basis", "sqlite_schema", "sqlite_sequence", "sqlite_stat1"}


@dataclass
class GrowthResult:
    days: int
    passes: int
    file_bytes: int
    tables: dict[str, int]  # bytes per table, its indexes included
    stock_rows: int
    stock_keys: int  # of those rows, each key's first observation
    full_snapshot_rows: int
    full_row_bytes: float  # what one stock row costs when whole reports are appended
    checked_passes: int
    keep_days: int

    @property
    def stock_bytes(self) -> int:
        return self.tables.get("stock", 0)

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

    def table_kind(self, table: str) -> str:
        """How `table` grows, as the estimate takes it: steady, pruned, monthly, stock or daily."""
        if table in STEADY:
            return "steady"
        if table in BOOKKEEPING:
            return "pruned"
        if table in MONTHLY:
            return "monthly"
        return "stock" if table == "stock" else "daily"

    def table_estimate(self, table: str, days: int = 365) -> float:
        """A table with its indexes after `days`: as it is when steady, capped at what the daily
        pruning keeps for bookkeeping, else in proportion to the months or days kept (stock: each
        key's first observation is there whatever the days)."""
        size, kind = self.tables[table], self.table_kind(table)
        if kind == "steady":
            return size
        if kind == "pruned":
            return size / min(self.days, self.keep_days) * min(days, self.keep_days)
        if kind == "monthly":
            return size / max(1.0, self.days / DAYS_A_MONTH) * max(1.0, days / DAYS_A_MONTH)
        first = size * self.stock_keys / max(1, self.stock_rows) if kind == "stock" else 0
        return first + (size - first) / self.days * days

    def year_estimate(self, days: int = 365) -> float:
        """Every table's estimate, and the file's free pages as they are."""
        free = self.file_bytes - sum(self.tables.values())
        return free + sum(self.table_estimate(table, days) for table in self.tables)


def table_sizes(path: Path) -> tuple[int, dict[str, int]]:
    """The file's size and the bytes of each table with its indexes (dbstat)."""
    conn = sqlite3.connect(path)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        tables = dict(conn.execute(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
            "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"))
        return page_size * pages, tables
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
    size, tables = table_sizes(path)
    conn = sqlite3.connect(path)
    stock_rows = conn.execute("SELECT count(*) FROM stock").fetchone()[0]
    stock_keys = conn.execute("SELECT count(*) FROM (SELECT DISTINCT account, sku, size, warehouse FROM stock)").fetchone()[0]
    conn.close()
    return GrowthResult(days, made.passes, size, tables, stock_rows, stock_keys, made.full_snapshot_rows,
                        full_row_bytes(path, out / "full-snapshots.db"), made.checked_passes,
                        history.maintenance.DEFAULT_KEEP_DAYS)
