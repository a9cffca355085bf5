"""Streaming a year's export: rows a second and the server's memory while `/-/export/daily.csv`
(collector/export.py) sends the whole history, against Datasette's own `?_stream=on` over the
views `export_daily` and `export_stock`, which run the whole view again for every page of 100
rows (OFFSET paging). The views' `?_stream=on` as their pages ask for it («stream all rows») is
answered by the export (collector/export.py: instead_of_view), so Datasette alone is asked with
a sort the export does not give (`_sort=day`, `_sort=account`: the views' own order is by them
already), and the view's own link is streamed too.

The server is the real thing, `datasette serve` as the project starts it (benchmarks/load.py's
`Server`), read over loopback by a client that counts rows and throws them away. Its memory is
the process's own: VmRSS before the export and sampled every 0.1 s during it, and VmHWM (the
peak since it started) after. Client and server share the machine's cores, so the rates are a
floor for the server alone.
"""

from __future__ import annotations

import csv
import http.client
import io
import sqlite3
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

from benchmarks.load import HOST, Server
from collector.datasette_plugin import EVERY_ROW
from collector.export import PAGE_ROWS

VIEW_PAGE_ROWS = 100  # Datasette's default_page_size: what one query of a streamed view sends


@dataclass
class Stream:
    """One streamed download, as the client saw it and as the server's memory went."""
    label: str
    path: str
    status: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    complete: bool = False  # the response ended by itself (not cut by the budget or an error)
    error: str = ""
    tail: bytes = b""  # the last bytes received
    first_row_seconds: float = float("nan")
    page_seconds: list[float] = field(default_factory=list)  # between every page_rows rows
    rss_before: int = 0
    rss_peak: int = 0
    hwm_after: int = 0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def pages(self, first: bool) -> float:
        """The median time of the first ten pages, or of the last ten."""
        chosen = self.page_seconds[:10] if first else self.page_seconds[-10:]
        return statistics.median(chosen) if chosen else float("nan")


def memory(pid: int, field_name: str) -> int:
    """VmRSS or VmHWM of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    return 0


class Sampler(threading.Thread):
    """The highest VmRSS of a process while it runs."""

    def __init__(self, pid: int, every: float = 0.1):
        super().__init__(daemon=True, name="rss-sampler")
        self.pid, self.every, self.peak = pid, every, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, memory(self.pid, "VmRSS"))
            self.stopped.wait(self.every)

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return max(self.peak, memory(self.pid, "VmRSS"))


def stream(server: Server, label: str, path: str, page_rows: int, max_seconds: float | None = None,
           max_rows: int | None = None) -> Stream:
    """GET `path` and count its rows until it ends, `max_seconds` pass or `max_rows` arrive."""
    result = Stream(label, path)
    pid = server.process.pid
    result.rss_before = memory(pid, "VmRSS")
    sampler = Sampler(pid)
    sampler.start()
    conn = http.client.HTTPConnection(HOST, server.port, timeout=600)
    began = last_page = time.perf_counter()
    lines = 0
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        result.status = response.status
        if response.status != 200:  # the page itself is in the server's log
            result.error = f"HTTP {response.status}"
        else:
            while True:
                chunk = response.read1(1 << 20)
                now = time.perf_counter()
                if not chunk:
                    result.complete = True
                    break
                result.bytes += len(chunk)
                result.tail = (result.tail + chunk)[-1000:]
                lines += chunk.count(b"\n")
                if lines > 1 and result.first_row_seconds != result.first_row_seconds:  # still NaN
                    result.first_row_seconds = now - began
                # the header is line 1; page n ends at line 1 + n * page_rows
                while (len(result.page_seconds) + 1) * page_rows + 1 <= lines:
                    result.page_seconds.append(now - last_page)
                    last_page = now
                if (max_seconds and now - began >= max_seconds) or (max_rows and lines - 1 >= max_rows):
                    break
    except (OSError, http.client.HTTPException) as error:  # the server broke the response off
        result.error = f"{type(error).__name__}: {error}"
    finally:
        result.seconds = time.perf_counter() - began
        conn.close()
        result.rss_peak = sampler.stop()
        result.hwm_after = memory(pid, "VmHWM")
    result.rows = max(lines - 1, 0)
    if result.complete and datasette_error(result.tail):
        result.error = f"the CSV ends with Datasette's error {datasette_error(result.tail)[:60]}..."
    return result


def datasette_error(tail: bytes) -> str:
    """The error Datasette's streamed CSV ends with when a page fails (its time limit): it writes
    the exception after the last row, without a newline, and ends the response as if whole."""
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
    return last if "Error(" in last else ""


def view_page_seconds(database: Path, budget: float) -> float | None:
    """One page of the view `export_daily` as Datasette asks for it, in SQLite alone without
    Datasette's time limit; None when it takes longer than `budget` seconds (stopped there)."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    deadline = time.perf_counter() + budget
    conn.set_progress_handler(lambda: time.perf_counter() > deadline, 10_000)
    began = time.perf_counter()
    try:
        conn.execute(f"SELECT * FROM export_daily LIMIT {VIEW_PAGE_ROWS + 1}").fetchall()
        return time.perf_counter() - began
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


def _comparable(day, marketplace, account, alias, article, sku, warehouse, *figures) -> tuple:
    """A row of either side as text, money as a number: the view's 2550.0 is the export's 2550.00."""
    units, money = figures[:3], figures[3:]
    return (day, marketplace, account, alias, article or "", str(sku), warehouse or "",
            *(str(n) for n in units), *(Decimal(str(m)) for m in money))


def same_rows_as_view(server: Server, database: Path, day: str) -> tuple[bool, int]:
    """Whether the export of `day` has exactly the view's rows (the view read by SQLite alone:
    through Datasette it stops at the time limit). Returns (equal, rows)."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=600)
    conn.request("GET", f"/-/export/daily.csv?day={day}")
    text = conn.getresponse().read().decode("utf-8")
    conn.close()
    exported = sorted(_comparable(*row) for row in list(csv.reader(io.StringIO(text)))[1:])
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        view = sorted(_comparable(*row) for row in db.execute("SELECT * FROM export_daily WHERE day = ?", (day,)))
    finally:
        db.close()
    return exported == view, len(view)


@dataclass
class Result:
    daily: Stream
    stock: Stream
    view: Stream
    view_stock: Stream
    answered: Stream  # /mp/export_daily.csv?_stream=on as the view's page asks: the export answers
    expected_rows: int | None  # the rows the view counts, for a whole export (None when capped)
    view_page: float | None  # seconds for one page of the view in SQLite; None: over the budget
    view_page_budget: float
    checked_days: dict[str, tuple[bool, int]]
    small_view: Stream | None = None  # the view where its pages fit the time limit (a day's history)
    stock_days: Stream | None = None  # the stock at each past day's end, every day kept
    queries: list[tuple[Stream, int]] = field(default_factory=list)  # a canned query's CSV, the rows it has


# The longest answers of the canned queries, whose CSV Datasette cut at max_returned_rows: a
# year of history per group (a row per day x group x marketplace) and what to ship over a window
# the pass does not keep (a row per place).
LONG_QUERIES = (("history", {"days": "366"}), ("restock_window", {"days": "60"}))


def canned_rows(database: Path, name: str, params: dict) -> int:
    """How many rows a canned query has, run whole in SQLite with no time limit."""
    from benchmarks.sqlprofile import canned_sql, connect

    sql, names = canned_sql(name)
    conn = connect(database)
    try:
        return sum(1 for _ in conn.execute(sql, {**{key: "" for key in names}, **EVERY_ROW, **params}))
    finally:
        conn.close()


def _check_days(database: Path, count: int) -> list[str]:
    """The last day of the history and the one half way through it (at most `count`)."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        first, last = (conn.execute(f"SELECT day FROM daily_figures ORDER BY day {order} LIMIT 1").fetchone()[0]
                       for order in ("", "DESC"))
        halfway = date.fromordinal((date.fromisoformat(first).toordinal() + date.fromisoformat(last).toordinal()) // 2)
        middle = conn.execute("SELECT day FROM daily_figures WHERE day >= ? ORDER BY day LIMIT 1",
                              (halfway.isoformat(),)).fetchone()[0]
    finally:
        conn.close()
    return list(dict.fromkeys([middle, last]))[-count:]


def exported_rows(database: Path) -> int:
    """What a whole export_daily holds: the rows with an order line or a sales row."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM daily_figures WHERE ordered_lines > 0 OR sales_lines > 0").fetchone()[0]
    finally:
        conn.close()


def measure(database: Path, out: Path, small_database: Path | None = None, max_rows: int | None = None,
            view_seconds: float = 30.0, check_days: int = 2) -> Result:
    """The export of `database` whole (or its first `max_rows` rows), the stock export, the
    views over `view_seconds` each, one page of the view in SQLite, and the rows of
    `check_days` days against the view's; the view also on `small_database`, where it runs."""
    out.mkdir(parents=True, exist_ok=True)
    with Server(database, out / "datasette.log") as server:
        days = _check_days(database, check_days) if check_days else []
        for path in (f"/-/export/daily.csv?day={days[-1]}" if days else "/-/export/daily.csv?day=2000-01-01",
                     "/-/export/stock.csv?account=none"):  # warm up: imports, plans, first pages
            stream(server, "warm-up", path, PAGE_ROWS)
        daily = stream(server, "/-/export/daily.csv", "/-/export/daily.csv", PAGE_ROWS, max_rows=max_rows)
        stock = stream(server, "/-/export/stock.csv", "/-/export/stock.csv", PAGE_ROWS)
        stock_days = stream(server, "/-/export/stock_days.csv", "/-/export/stock_days.csv", PAGE_ROWS)
        # (before the views' streams, which the client stops at view_seconds while the server
        # goes on with the page it is on)
        paths = {f"/mp/{name}.csv?{urlencode(params)}": (name, params) for name, params in LONG_QUERIES}
        queries = [(stream(server, path, path, PAGE_ROWS), canned_rows(database, *asked)) for path, asked in paths.items()]
        view = stream(server, "export_daily ?_stream=on&_sort=day", "/mp/export_daily.csv?_stream=on&_sort=day",
                      VIEW_PAGE_ROWS, max_seconds=view_seconds)
        view_stock = stream(server, "export_stock ?_stream=on&_sort=account",
                            "/mp/export_stock.csv?_stream=on&_sort=account", VIEW_PAGE_ROWS, max_seconds=view_seconds)
        answered = stream(server, "/mp/export_daily.csv?_stream=on", "/mp/export_daily.csv?_stream=on", PAGE_ROWS,
                          max_seconds=view_seconds)
        checked = {day: same_rows_as_view(server, database, day) for day in days}
    small_view = None
    if small_database is not None:
        with Server(small_database, out / "datasette-small.log") as server:
            stream(server, "warm-up", "/mp/export_daily.csv?_stream=on&_sort=day&_size=1", VIEW_PAGE_ROWS, max_rows=1)
            small_view = stream(server, "export_daily ?_stream=on&_sort=day", "/mp/export_daily.csv?_stream=on&_sort=day",
                                VIEW_PAGE_ROWS, max_seconds=view_seconds)
    expected = exported_rows(database) if max_rows is None else None
    return Result(daily, stock, view, view_stock, answered, expected, view_page_seconds(database, view_seconds),
                  view_seconds, checked, small_view, stock_days, queries)
