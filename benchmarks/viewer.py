"""The viewer's speed: each canned query, and the dashboard page, through Datasette itself.

Datasette runs in this process with the options `collector.demo.datasette_command()` serves it
with (metadata.yml, the plugin, templates, settings), and is asked through its own ASGI client:
the figures include Datasette's routing, parameter handling and JSON rendering, not just SQLite.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from unittest.mock import patch
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from datasette.app import Datasette
from datasette.utils import parse_metadata

import collector.viewer
from collector.demo import datasette_command

DATABASE = "mp"
DASHBOARD = "today"
DASHBOARDS = (DASHBOARD, "warehouses")  # «Сегодня» and «По складам», the navigation's two pages
# «Сегодня» with a filter set, as a seller narrows it down: the busiest warehouse, the first group
FILTERED_DASHBOARDS = ((DASHBOARD, {"warehouse": "{warehouse}"}), (DASHBOARD, {"alias": "{alias}"}))
# Besides each canned query with its defaults (what the dashboard and a bare link ask), the
# variants that read the most: the longest history the page offers, a month's period, a past day
# (stock at the end of that day comes from the stock history; half a year back, the most of it),
# the dashboard's "runs out soon" card.
# `buyout` with days=30, the dashboard's table, is its default; `history` by=marketplace is what
# the dashboard's charts ask (with in=rub the same query: the page's `in` switches what the chart
# draws, not the SQL).
VARIANTS = {
    # ({warehouse}: the busiest, as a seller's filter on «История» asks)
    "history": [{"days": "90"}, {"by": "marketplace"}, {"by": "marketplace", "days": "90"},
                {"warehouse": "{warehouse}", "days": "90"}],
    # (period=day: today computed when asked, as right after a pass wrote and before it kept the rows)
    "today": [{"period": "day"}, {"period": "month"}, {"date": "{yesterday}"}, {"date": "{half_a_year_ago}"},
              {"date": "{half_a_year_ago}", "alias": "{alias}"}],
    # (at a warehouse: the dashboard's warehouse filter, its first card)
    "summary": [{"date": "{half_a_year_ago}"}, {"warehouse": "{warehouse}"},
                {"warehouse": "{warehouse}", "date": "{half_a_year_ago}"}],
    # (a group asked for, as on the pages' filters, over a month: read per SKU, by key)
    "orders_by_warehouse": [{"period": "month"}, {"period": "month", "alias": "{alias}"}],
    "restock": [{"soon": "1"}, {"soon": "1", "top": "31"}],
    # (7, 14 and 30 days read what the collector kept, as restock does; another window, up to the
    # longest, and a group asked for by name, from each place's 60 days kept)
    "restock_window": [{"days": "30"}, {"days": "21"}, {"days": "60"}, {"days": "21", "alias": "{alias}"}],
    # a group's warehouses, as ▸ on «Сегодня» opens them ({alias}: the seller's first group)
    "alias_warehouses": [{"alias": "{alias}"}],
    # a row per warehouse, as «По складам» asks, for a day and for 30 days; and a group per
    # warehouse for 7 and 30 days, as its own page and ▸ ask
    "by_warehouse": [{"marketplace": "ozon", "by": "warehouse"}, {"marketplace": "ozon", "by": "warehouse", "period": "month"},
                     {"period": "week"}, {"period": "month"}, {"date": "{yesterday}"}, {"date": "{half_a_year_ago}"},
                     {"period": "month", "alias": "{alias}"}],
    # the dashboard's warehouse filter on the page of its own
    "days_of_cover": [{"warehouse": "{warehouse}"}],
}
# How the dashboard asks for a canned query's rows (static/mp-dashboard.js, ROWS): Datasette's
# default shape, without its pass over every value for infinities.
ROWS = {"_json_infinity": "1"}

# Canned queries whose own HTML page a seller opens from the dashboard's links (the JSON above
# is what the dashboard reads): the page of the most rows, and that of the dashboard's table.
# Each shows a page of 100 rows (collector/datasette_plugin.py: page_of); a page far down the
# list (history's rows 3,901-4,000) costs what the first does.
HTML_PAGES = ("today", "history", "restock", "restock soon=1", "history _page=40")
# Datasette's own pages a seller reaches from the navigation («Запросы и выгрузки» is the
# database page): the list of tables, the biggest table and the views a seller browses.
# A big table sorted as its column header sorts it (metadata.yml: only by what an index keeps in
# order), and the stock history as it opens, on its newest rows.
DATASETTE_PAGES = {"database page (HTML)": "", "table orders (HTML)": "/orders",
                   # (a seller's filter: the busiest warehouse's newest order lines)
                   "table orders warehouse={warehouse} (HTML)": "/orders?warehouse={warehouse}",
                   # (a warehouse no order names: an empty page, at once)
                   "table orders warehouse=(none such) (HTML)": "/orders?warehouse=%D0%9D%D0%B5%D1%82",
                   "table orders _sort=day (HTML)": "/orders?_sort=day",
                   # (a seller's filter on one SKU or one article: that of the fewest order lines,
                   # a seek per day)
                   "table orders sku={rare_sku} (HTML)": "/orders?sku={rare_sku}",
                   "table orders article={rare_article} (HTML)": "/orders?article={rare_article}",
                   "table sales (HTML)": "/sales", "table sales _sort=day (HTML)": "/sales?_sort=day",
                   "table sales sku={rare_sku} (HTML)": "/sales?sku={rare_sku}",
                   "table stock (HTML)": "/stock",
                   # (the page that starts at yesterday and the one half a year back, newest first:
                   # a next page reads the rows of its day, to sort them by the key, and no newer)
                   "table orders _sort_desc=day from {yesterday} (HTML)": "/orders?_sort_desc=day&_next={yesterday},,,",
                   "table orders _sort_desc=day from {half_a_year_ago} (HTML)":
                       "/orders?_sort_desc=day&_next={half_a_year_ago},,,",
                   "table sales _sort_desc=day from {yesterday} (HTML)": "/sales?_sort_desc=day&_next={yesterday},,,,",
                   "table sales _sort_desc=day from {half_a_year_ago} (HTML)":
                       "/sales?_sort_desc=day&_next={half_a_year_ago},,,,",
                   "table stock from id 7,000,000 (HTML)": "/stock?_next=7000000,7000000",
                   "table daily_figures _sort_desc=day (HTML)": "/daily_figures?_sort_desc=day",
                   "view export_daily (HTML)": "/export_daily", "view sku_catalog (HTML)": "/sku_catalog",
                   # (the stock at each day's end, which «Справка» names: a day's rows, as a seller filters it)
                   "table marketplace_alias_warehouse_stock_days (HTML)": "/marketplace_alias_warehouse_stock_days",
                   "table marketplace_alias_warehouse_stock_days day={half_a_year_ago} (HTML)":
                       "/marketplace_alias_warehouse_stock_days?day={half_a_year_ago}"}


@dataclass
class Timing:
    label: str
    path: str
    seconds: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)  # each with the database evicted from the page cache
    rows: int | None = None
    error: str | None = None
    cold_error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def cold_median(self) -> float:
        return statistics.median(self.cold) if self.cold else float("nan")

    @property
    def p95(self) -> float:
        """Nearest-rank 95th percentile."""
        if not self.seconds:
            return float("nan")
        ordered = sorted(self.seconds)
        return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def serve_options(database: Path) -> dict:
    """Datasette's constructor arguments, read off the command the project serves it with."""
    command = datasette_command(database, 0)
    args = command[command.index("serve") + 2:]
    options: dict = {"settings": {}, "static_mounts": []}
    i = 0
    while i < len(args):
        name = args[i]
        if name == "--setting":
            value = args[i + 2]
            options["settings"][args[i + 1]] = (int(value) if value.isdigit() else
                                                {"on": True, "off": False}.get(value, value))
            i += 3
            continue
        value = args[i + 1]
        if name == "--metadata":
            options["metadata"] = parse_metadata(Path(value).read_text(encoding="utf-8"))
        elif name == "--template-dir":
            options["template_dir"] = value
        elif name == "--static":
            mount, _, directory = value.partition(":")
            options["static_mounts"].append((mount, directory))
        i += 2
    return options


@contextmanager
def as_served():
    """The viewer's process as `mp-collector serve` runs it, after a pass has written: start-up's
    objects frozen out of garbage collection (collector/viewer.py), and every request
    computed, as the first one after a write is (answers kept in memory between two writes,
    collector/answer_cache.py, would time the memory, not the page)."""
    with patch.object(collector.viewer, "serving", True), patch.dict(os.environ, {"ANSWER_CACHE_MB": "0"}):
        try:
            yield
        finally:
            gc.unfreeze()  # (this process goes on to other work)


def make_datasette(database: Path, **setting_overrides) -> Datasette:
    options = serve_options(database)
    options["settings"].update(setting_overrides)
    return Datasette([str(database)], **options)


def canned_queries(metadata: dict) -> list[str]:
    return list(metadata["databases"][DATABASE].get("queries", {}))


def first_alias(database: Path) -> str:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT alias FROM sku_aliases ORDER BY position LIMIT 1").fetchone()
    finally:
        conn.close()
    return row[0] if row else ""


def busiest_warehouse(database: Path) -> str:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        # (the most order lines on the last day)
        row = conn.execute("SELECT warehouse FROM alias_warehouse_days "
                           "WHERE day = (SELECT max(day) FROM alias_warehouse_days) "
                           "GROUP BY warehouse ORDER BY sum(ordered_lines) DESC, warehouse LIMIT 1").fetchone()
    finally:
        conn.close()
    return row[0] if row else ""


def rare_values(database: Path) -> dict[str, str]:
    """The SKU and the article of the fewest order lines that have any ({rare_sku},
    {rare_article}): a filter on one finds its lines only by looking at every day."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        sku = conn.execute("SELECT sku FROM sku_days GROUP BY sku HAVING sum(ordered_lines) > 0 "
                           "ORDER BY sum(ordered_lines), sku LIMIT 1").fetchone()
        # (of the names of named_skus, the articles: those the catalog knows)
        article = conn.execute("SELECT name FROM named_skus n WHERE EXISTS (SELECT 1 FROM sku_names WHERE article = n.name) "
                               "GROUP BY name HAVING sum(lines) > 0 ORDER BY sum(lines), name LIMIT 1").fetchone()
    finally:
        conn.close()
    return {"rare_sku": str(sku[0]) if sku else "", "rare_article": quote(article[0]) if article else ""}


def query_cases(metadata: dict, yesterday: str, alias: str = "", warehouse: str = "",
                rare: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(label, path) of every canned query with its defaults, then the heavier variants."""
    # (the middle of a year of history: a past day's stock from the changes after it, or up to
    # it, reads the most there)
    half_a_year_ago = (date.fromisoformat(yesterday) - timedelta(days=181)).isoformat()
    cases = []
    for name in canned_queries(metadata):
        cases.append((name, f"/{DATABASE}/{name}.json?{urlencode(ROWS)}"))
        for params in VARIANTS.get(name, []):
            filled = {k: v.format(yesterday=yesterday, alias=alias, half_a_year_ago=half_a_year_ago, warehouse=warehouse)
                      for k, v in params.items()}
            label = f"{name} " + " ".join(f"{k}={v}" for k, v in params.items())
            cases.append((label, f"/{DATABASE}/{name}.json?{urlencode({**filled, **ROWS})}"))
    for page in HTML_PAGES:
        name, *params = page.split()
        if name in canned_queries(metadata):
            query = "?" + "&".join(params) if params else ""
            cases.append((f"{page} (HTML page)", f"/{DATABASE}/{name}{query}"))
    filled = {"half_a_year_ago": half_a_year_ago, "yesterday": yesterday, "warehouse": quote(warehouse),
              "rare_sku": "", "rare_article": "", **(rare or {})}
    cases += [(label, f"/{DATABASE}{path.format(**filled)}") for label, path in DATASETTE_PAGES.items()]
    return cases


def dashboard_requests(metadata: dict, page_query: str = "", dashboard: str = DASHBOARD) -> list[str]:
    """What the dashboard page's script fetches once the page is there: every chart's canned
    query with the page's filters and the chart's fixed params, and the freshness line
    (static/mp-dashboard.js does the same)."""
    board = metadata["plugins"]["datasette-dashboards"][dashboard]
    paths = []
    for chart in board["charts"].values():
        if chart.get("canned"):
            params = {**dict(parse_qsl(page_query)), **{k: str(v) for k, v in (chart.get("params") or {}).items()},
                      **ROWS}
            if (chart.get("display") or {}).get("limit"):  # a table of the first rows only
                params["top"] = str(chart["display"]["limit"] + 1)
            paths.append(f"/{chart.get('db', DATABASE)}/{chart['canned']}.json?{urlencode(params)}")
    paths.append(f"/{DATABASE}/freshness.json?{urlencode(ROWS)}")
    return list(dict.fromkeys(paths))  # charts asking the very same URL share one request


def evict(database: Path) -> None:
    """Drop the database's pages from the OS page cache (no root needed): the next request reads
    from disk what it needs, as on a small server whose memory holds little of a 10 GB file."""
    for path in (database, database.with_name(database.name + "-wal")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


async def _get(ds: Datasette, path: str, parsed: bool = False):
    """A page, its whole answer received; with `parsed`, a JSON answer read. A timed request
    leaves reading it to the browser or script that asked: for an answer of 5,000 rows that
    took this benchmark ~20 ms, its own work, not the viewer's (timed until the twenty-fifth
    step). An error answer (Datasette's `"ok": false`, the time limit among them) is an error
    either way."""
    response = await ds.client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {response.status_code}: {response.text[:200]}")
    if response.content.startswith(b'{"ok": false'):
        raise RuntimeError(f"{path}: {response.json().get('error')}")
    return response.json() if parsed and path.split("?")[0].endswith(".json") else None


async def _time_case(ds: Datasette, label: str, path: str, repeats: int, budget: float) -> Timing:
    timing = Timing(label, path)
    try:
        body = await _get(ds, path, parsed=True)  # warm-up: plans, page cache
        timing.rows = len(body["rows"]) if body else None
        began = time.perf_counter()
        while len(timing.seconds) < repeats and (time.perf_counter() - began < budget or len(timing.seconds) < 5):
            t = time.perf_counter()
            await _get(ds, path)
            timing.seconds.append(time.perf_counter() - t)
    except RuntimeError as error:
        timing.error = str(error)
    return timing


async def _time_cold(ds: Datasette, timing: Timing, database: Path, repeats: int, requests=None) -> None:
    """`repeats` requests, each after the database file left the page cache. `requests` sends
    what one measurement is (the page and its charts); by default the timing's own path."""
    send = requests or (lambda: _get(ds, timing.path))
    try:
        for _ in range(repeats):
            evict(database)
            t = time.perf_counter()
            await send()
            timing.cold.append(time.perf_counter() - t)
    except RuntimeError as error:
        timing.cold_error = str(error)


async def _time_dashboard(ds: Datasette, metadata: dict, repeats: int, budget: float,
                          dashboard: str = DASHBOARD, filters: dict | None = None) -> tuple[Timing, Timing]:
    """The page itself, and the page plus every request its script makes (concurrently, as a
    browser does) until the last chart has its rows. `filters`: (label, value) per filter the
    seller sets on the page."""
    first = await ds.client.get(f"/-/dashboards/{dashboard}")  # the plugin adds the filters' defaults
    path = first.headers["location"] if first.status_code in (301, 302) else f"/-/dashboards/{dashboard}"
    if filters:
        query = {**dict(parse_qsl(urlsplit(path).query, keep_blank_values=True)),
                 **{name: value for name, (_, value) in filters.items()}}
        path = f"{urlsplit(path).path}?{urlencode(query)}"
    charts = dashboard_requests(metadata, urlsplit(path).query, dashboard)
    name = "dashboard page" if dashboard == DASHBOARD else f"dashboard {dashboard}"
    name += "".join(f" {filter_name}={label}" for filter_name, (label, _) in (filters or {}).items())
    page = Timing(f"{name} (HTML)", path)
    full = Timing(f"{name} + all its charts", f"{path} + {len(charts)} requests")
    try:
        await _get(ds, page.path)
        await asyncio.gather(*(_get(ds, p) for p in charts))
        began = time.perf_counter()
        while len(page.seconds) < repeats and (time.perf_counter() - began < budget or len(page.seconds) < 5):
            t = time.perf_counter()
            await _get(ds, page.path)
            page.seconds.append(time.perf_counter() - t)
            await asyncio.gather(*(_get(ds, p) for p in charts))
            full.seconds.append(time.perf_counter() - t)
    except RuntimeError as error:
        page.error = full.error = str(error)
    return page, full


def time_viewer(database: Path, yesterday: str, repeats: int = 30, budget: float = 20.0,
                cold_repeats: int = 0) -> list[Timing]:
    """Median and p95 of every canned query (and its heavier variants) and of the dashboard;
    with `cold_repeats`, also that many requests of each with the file evicted before each."""
    ds = make_datasette(database)
    metadata = serve_options(database)["metadata"]
    warehouse, alias, rare = busiest_warehouse(database), first_alias(database), rare_values(database)

    async def run() -> list[Timing]:
        await ds.invoke_startup()
        timings = [await _time_case(ds, label, path, repeats, budget)
                   for label, path in query_cases(metadata, yesterday, alias, warehouse, rare)]
        boards = []  # (dashboard, the page, the page and its charts)
        for dashboard, filters in tuple((name, {}) for name in DASHBOARDS) + FILTERED_DASHBOARDS:
            filled = {name: (label, label.format(warehouse=warehouse, alias=alias)) for name, label in filters.items()}
            page, full = await _time_dashboard(ds, metadata, max(5, repeats // 3), budget, dashboard, filled)
            boards.append((dashboard, page, full))
            timings += [page, full]
        if cold_repeats:
            wholes = {full.label for *_, full in boards}
            for timing in timings:
                if timing.label not in wholes:
                    await _time_cold(ds, timing, database, cold_repeats)
            for dashboard, page, full in boards:
                charts = dashboard_requests(metadata, urlsplit(page.path).query, dashboard)

                async def whole_page(page=page, charts=charts):
                    await _get(ds, page.path)
                    await asyncio.gather(*(_get(ds, p) for p in charts))
                await _time_cold(ds, full, database, cold_repeats, whole_page)
        return timings

    with as_served():
        return asyncio.run(run())
