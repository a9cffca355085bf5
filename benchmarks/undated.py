"""The undated sales of an Ozon backfill, page by page (`python -m benchmarks --only undated`).

A posting already delivered when the collector first sees it is kept as a sale with no day
(DESIGN.md): every one a backfill loads. The reference seller's generated history has none, so
this benchmark makes them: a copy of the 90-day database whose Ozon sales of its first 30 days
lost their day, as a 30-day backfill would leave them (445,000 at the reference seller). It times
the pages of `sales` sorted by day that show them (the first going up, one in the middle of them,
the one where they end; going down, one among them at the end; the same for one account), each
against a page of dated sales of the same copy in the same run: a page of undated sales should
cost what a page of dated ones does.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from datasette.utils import tilde_encode

from benchmarks import viewer
from collector.storage import Storage

BACKFILLED_DAYS = 30  # the first days of the copy whose Ozon sales a backfill left undated
KEY = ("account", "kind", "sale_id", "sku")


@dataclass
class UndatedResult:
    undated: int  # sales with no day in the copy
    index_bytes: int  # sales_undated's pages
    seconds_to_make: float
    timings: list[tuple[viewer.Timing, viewer.Timing]]  # (a page of undated sales, a page of dated ones)


def make_copy(window: Path, work: Path) -> tuple[Path, int, int]:
    """The copy with its first BACKFILLED_DAYS days of Ozon sales undated, the planner told."""
    work.mkdir(parents=True, exist_ok=True)
    copy = work / "mp.db"
    for leftover in (copy, copy.with_name("mp.db-wal"), copy.with_name("mp.db-shm")):
        leftover.unlink(missing_ok=True)
    with sqlite3.connect(window) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    storage = Storage(copy)
    try:
        storage.migrate()  # (the schema of this code: sales_undated among it)
    finally:
        storage.close()
    with sqlite3.connect(copy) as conn:
        first = conn.execute("SELECT min(day) FROM sales").fetchone()[0]
        conn.execute("UPDATE sales SET day = NULL, sold_at = NULL WHERE kind = 'sale' AND day < date(?, ?) "
                     "AND account IN (SELECT account FROM accounts WHERE marketplace = 'ozon')",
                     [first, f"+{BACKFILLED_DAYS} days"])
        conn.execute("ANALYZE sales_undated")  # (as the collector's daily PRAGMA optimize would)
        undated = conn.execute("SELECT count(*) FROM sales WHERE day IS NULL").fetchone()[0]
        size = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = 'sales_undated'").fetchone()[0]
    return copy, undated, size


def keys_at(conn: sqlite3.Connection, where: str, order: str, offset: int) -> str:
    """The `_next` of a page that starts after the `offset`-th row `where` leaves in `order`."""
    row = conn.execute(f"SELECT day, {', '.join(KEY)} FROM sales WHERE {where} ORDER BY {order} "
                       f"LIMIT 1 OFFSET ?", [offset]).fetchone()
    token = ",".join(["$null" if row[0] is None else tilde_encode(row[0]), *(tilde_encode(str(part)) for part in row[1:])])
    return quote(token, safe="")


def cases(copy: Path) -> list[tuple[str, str, str, str]]:
    """(label, a page of undated sales, its dated page, that page's label)."""
    with sqlite3.connect(copy) as conn:
        undated = conn.execute("SELECT count(*) FROM sales WHERE day IS NULL").fetchone()[0]
        account = conn.execute("SELECT account FROM sales WHERE day IS NULL ORDER BY account LIMIT 1").fetchone()[0]
        of_account = conn.execute("SELECT count(*) FROM sales WHERE day IS NULL AND account = ?", [account]).fetchone()[0]
        dated = conn.execute("SELECT count(*) FROM sales WHERE day IS NOT NULL").fetchone()[0]
        key = ", ".join(KEY)
        middle = keys_at(conn, "day IS NULL", key, undated // 2)
        at_the_end = keys_at(conn, "day IS NULL", key, undated - 40)  # (40 left: the page ends on dated ones)
        of_account_middle = keys_at(conn, f"day IS NULL AND account = '{account}'", key, of_account // 2)
        dated_up = keys_at(conn, "day IS NOT NULL", f"day, {key}", dated // 2)
        dated_down = keys_at(conn, "day IS NOT NULL", f"day DESC, {key}", dated // 2)
        its_dated = conn.execute("SELECT count(*) FROM sales WHERE day IS NOT NULL AND account = ?", [account]).fetchone()[0]
        dated_of_account = keys_at(conn, f"day IS NOT NULL AND account = '{account}'", f"day, {key}", its_dated // 2)
    up, down = "/mp/sales.json?_sort=day", "/mp/sales.json?_sort_desc=day"
    mine = f"&account={quote(account)}"
    dated_page = (f"{up}&_next={dated_up}", "a page of dated sales going up, half-way")
    return [
        ("the first page going up: undated sales", up, *dated_page),
        ("going up, half-way through the undated sales", f"{up}&_next={middle}", *dated_page),
        ("going up, the page where the undated sales end", f"{up}&_next={at_the_end}", *dated_page),
        ("going down, half-way through the undated sales (the last pages)", f"{down}&_next={middle}",
         f"{down}&_next={dated_down}", "a page of dated sales going down, half-way"),
        (f"one account ({account}), the first page going up", f"{up}{mine}",
         f"{up}{mine}&_next={dated_of_account}", "a page of its dated sales going up"),
        (f"one account ({account}), half-way through its undated sales", f"{up}{mine}&_next={of_account_middle}",
         f"{up}{mine}&_next={dated_of_account}", "a page of its dated sales going up"),
        ("the HTML page going up (as a seller opens it)", "/mp/sales?_sort=day",
         f"/mp/sales?_sort=day&_next={dated_up}", "its page of dated sales"),
    ]


def measure(window: Path, work: Path, repeats: int = 30, budget: float = 10.0) -> UndatedResult:
    began = time.perf_counter()
    copy, undated, size = make_copy(window, work)
    made = time.perf_counter() - began
    ds = viewer.make_datasette(copy)

    async def run() -> list[tuple[viewer.Timing, viewer.Timing]]:
        await ds.invoke_startup()
        return [(await viewer._time_case(ds, label, path, repeats, budget),
                 await viewer._time_case(ds, dated_label, dated_path, repeats, budget))
                for label, path, dated_path, dated_label in cases(copy)]

    with viewer.as_served():
        timings = asyncio.run(run())
    shutil.rmtree(work, ignore_errors=True)  # (a 3 GB copy: made again by the next run)
    return UndatedResult(undated, size, made, timings)
