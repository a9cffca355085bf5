"""Ingest: one full WB page and 10,000 Ozon postings, normalised and written by the collector,
next to plain sqlite3 executemany of the same rows into the same tables.

Both sides start from a fresh database with the project's schema, in the same run, alternately;
the best of `repeats` tries counts (the least disturbed by anything else on the machine). The
collector's side is exactly what a pass does after the HTTP answer is parsed: `WbBatch.of` and
`WbBatch.write` for WB, `read_postings` and `write_postings` for Ozon, each in one transaction.
The plain side writes the very rows the collector wrote (orders, and the products and buyouts
that come with them) with one executemany per table and one commit, on a connection with the
collector's own durability setting (WAL, synchronous=NORMAL).

Both sides write into the schema as it is, triggers included (they keep daily_figures and
order_warehouses, and fire for plain executemany just the same); the pair is measured again
without the triggers, to show what they cost and that the target does not rest on them, and,
when asked, with the triggers of another revision's schema.sql instead of today's (on today's
tables): what a change to the triggers costs, measured in the same run.
"""

from __future__ import annotations

import gc
import json
import re
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from collector.ozon.datasets import read_postings, write_postings
from collector.wb.datasets import WbBatch
from collector.records import OrderLine, Product, SaleEvent, columns
from collector.sandbox.clock import DAY, to_us
from collector.sandbox.ozon_shapes import posting_json
from collector.sandbox.seller import Seller
from collector.sandbox.wb_shapes import order_json
from collector.storage import Storage
from collector.timeutil import MOSCOW, iso, local_day

WB_PAGE_ROWS = 80_000
OZON_POSTINGS = 10_000


@dataclass
class IngestResult:
    name: str
    page_rows: int  # rows of the page (orders rows, posting lines)
    rows_written: int  # every row either side writes (orders, products, sales)
    collector_seconds: float
    normalise_seconds: float  # of which normalising
    plain_seconds: float
    # the same without the schema's triggers (daily_figures, order_warehouses) on either side
    bare_collector_seconds: float = float("nan")
    bare_plain_seconds: float = float("nan")
    # the same with another revision's triggers (baseline_triggers), when asked
    baseline_collector_seconds: float = float("nan")
    baseline_plain_seconds: float = float("nan")

    @property
    def bare_ratio(self) -> float:
        return self.bare_plain_seconds / self.bare_collector_seconds

    @property
    def baseline_ratio(self) -> float:
        return self.baseline_plain_seconds / self.baseline_collector_seconds

    @property
    def collector_rate(self) -> float:
        return self.page_rows / self.collector_seconds

    @property
    def plain_rate(self) -> float:
        return self.page_rows / self.plain_seconds

    @property
    def ratio(self) -> float:
        return self.collector_rate / self.plain_rate

    @property
    def write_ratio(self) -> float:
        """Storage code alone (no normalising) against plain executemany."""
        return self.plain_seconds / (self.collector_seconds - self.normalise_seconds)


def make_pages(config, at: datetime, wb_rows: int = WB_PAGE_ROWS, postings: int = OZON_POSTINGS) -> tuple[bytes, bytes]:
    """A WB orders page of `wb_rows` rows (flag=0 from far enough back) and `postings` Ozon
    postings with analytics_data, as JSON bytes: what the APIs send."""
    seller = Seller(config, at)
    now = to_us(at)
    cabinet = seller.wb(seller.wb_accounts[0])
    rows = cabinet.rows_changed_since("orders", seller.history_start, now, wb_rows)
    wb = json.dumps([order_json(row) for row in rows], ensure_ascii=False).encode()
    store = seller.ozon(seller.ozon_accounts[0])
    found, since = [], now
    while len(found) < postings and since > seller.history_start:
        since -= DAY
        found = list(store.iter_postings(since, now))
    picked = found[-postings:]
    ozon = json.dumps([posting_json(p, now, analytics=True, financial=True) for p in picked],
                      ensure_ascii=False).encode()
    return wb, ozon


def triggers_at(rev: str) -> str:
    """The CREATE TRIGGER statements of schema.sql as `rev` had it (git show changes nothing)."""
    schema = subprocess.run(["git", "show", f"{rev}:schema.sql"], cwd=Path(__file__).resolve().parent.parent,
                            check=True, capture_output=True, text=True).stdout
    return "\n".join(re.findall(r"^CREATE TRIGGER .*?^END;", schema, re.S | re.M))


def _fresh(path: Path, triggers: str | None = None) -> None:
    """A new database with the project's schema; `triggers` None keeps its triggers, otherwise
    they are dropped and these statements ("" for none) created instead."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    storage = Storage(path)
    storage.migrate()
    if triggers is not None:
        with storage.transaction() as db:
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                db.execute(f'DROP TRIGGER "{name}"')
        storage.db.conn.executescript(triggers)
    storage.close()


def _plain(path: Path, tables: list[tuple[str, tuple[str, ...], list[tuple]]], triggers: str | None = None) -> float:
    """executemany of prepared tuples into each table, one commit; the seconds it took."""
    _fresh(path, triggers)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=NORMAL")  # the collector's durability setting (storage.py)
    try:
        began = time.perf_counter()
        for table, names, rows in tables:
            conn.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                             rows)
        conn.commit()
        return time.perf_counter() - began
    finally:
        conn.close()


def _written(path: Path) -> list[tuple[str, tuple[str, ...], list[tuple]]]:
    """The rows the collector left, table by table, to replay with plain executemany."""
    conn = sqlite3.connect(path)
    try:
        tables = []
        for table, record in (("orders", OrderLine), ("products", Product), ("sales", SaleEvent)):
            names = columns(record) + (("updated_at",) if table == "products" else ())
            rows = conn.execute(f"SELECT {', '.join(names)} FROM {table} ORDER BY rowid").fetchall()
            if rows:
                tables.append((table, names, rows))
        return tables
    finally:
        conn.close()


def _wb_collector(path: Path, page: list[dict], now_iso: str, triggers: str | None = None) -> tuple[float, float]:
    _fresh(path, triggers)
    storage = Storage(path)
    try:
        began = time.perf_counter()
        batch = WbBatch.of("orders", page, "wb-1", MOSCOW)
        normalised = time.perf_counter()
        with storage.transaction():
            batch.write(storage, now_iso)
        return time.perf_counter() - began, normalised - began
    finally:
        storage.close()


def _ozon_collector(path: Path, page: list[dict], now_iso: str, today: str,
                    triggers: str | None = None) -> tuple[float, float]:
    _fresh(path, triggers)
    storage = Storage(path)
    try:
        began = time.perf_counter()
        lines, products, _ = read_postings(page, "ozon-1", MOSCOW, now_iso)
        normalised = time.perf_counter()
        with storage.transaction():
            write_postings(storage, lines, products, now_iso, today)
        return time.perf_counter() - began, normalised - began
    finally:
        storage.close()


def measure(config, at: datetime, out: Path, repeats: int = 5, wb_rows: int = WB_PAGE_ROWS,
            postings: int = OZON_POSTINGS, baseline_triggers: str | None = None) -> list[IngestResult]:
    """Both sides with the schema's triggers, without any, and with `baseline_triggers` (the
    CREATE TRIGGER statements of another schema, see triggers_at) when given."""
    out.mkdir(parents=True, exist_ok=True)
    wb_json, ozon_json = make_pages(config, at, wb_rows, postings)
    gc.collect()  # the generator's objects are gone: the heap holds what a pass would hold
    now_iso, today = iso(at, MOSCOW), local_day(at, MOSCOW)
    modes = {"schema": None, "bare": "", **({"baseline": baseline_triggers} if baseline_triggers is not None else {})}
    results = []
    for name, raw, collect in (
            (f"WB orders page ({{rows:,}} rows)", wb_json,
             lambda p, page, t: _wb_collector(p, page, now_iso, t)),
            (f"Ozon postings ({{postings:,}} postings, {{rows:,}} lines)", ozon_json,
             lambda p, page, t: _ozon_collector(p, page, now_iso, today, t))):
        page = json.loads(raw)
        best: dict[str, list[float]] = {}
        tables = None
        for mode, triggers in modes.items():
            best_collector = best_normalise = best_plain = float("inf")
            for _ in range(repeats):
                seconds, normalise = collect(out / "collector.db", page, triggers)
                if seconds < best_collector:
                    best_collector, best_normalise = seconds, normalise
                if tables is None:
                    tables = _written(out / "collector.db")
                best_plain = min(best_plain, _plain(out / "plain.db", tables, triggers))
            best[mode] = [best_collector, best_normalise, best_plain]
        order_rows = next(len(rows) for table, _, rows in tables if table == "orders")
        baseline = best.get("baseline", [float("nan")] * 3)
        results.append(IngestResult(
            name.format(rows=order_rows, postings=len(page)), order_rows,
            sum(len(rows) for _, _, rows in tables), *best["schema"],
            bare_collector_seconds=best["bare"][0], bare_plain_seconds=best["bare"][2],
            baseline_collector_seconds=baseline[0], baseline_plain_seconds=baseline[2]))
        del page, tables
        gc.collect()
    return results
