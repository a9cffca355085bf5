"""The viewer in a real browser: headless Chromium (Debian's chromium + chromium-driver, installed
by scripts/install-test-deps.sh) against a real `datasette` process serving a database that the
real collector filled from the sandbox.

The figures the page shows are compared with figures worked out here straight from the raw
tables (orders, sales, stock_current, sku_aliases), by the definitions in DESIGN.md, not through
the views or canned queries behind the page: a wrong view, query, renderer or template fails.

Screenshots go to $SCREENSHOTS_DIR (`make screenshots` sets docs/img, the README's pictures),
else to tests/artifacts/screenshots.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip("chromium and chromedriver are not installed: run scripts/install-test-deps.sh "
                "(make test does)", allow_module_level=True)

from selenium import webdriver  # noqa: E402  (only once we know there is a browser)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from collector.alerts import canned_sql  # noqa: E402
from collector.backfill import backfill  # noqa: E402
from collector.config import load_settings  # noqa: E402
from collector.viewer import datasette_command  # noqa: E402
from collector.pipeline import run_pass  # noqa: E402
from collector.sandbox import Sandbox, SandboxClock, SandboxConfig  # noqa: E402
from collector.storage import Storage  # noqa: E402
from tests.conftest import SMALL_SELLER  # noqa: E402

MSK = ZoneInfo("Europe/Moscow")
HISTORY_DAYS = 14          # days of collector passes before now: stock history, Ozon buyouts
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "tests" / "artifacts" / "screenshots")
if not SCREENSHOTS.is_absolute():
    SCREENSHOTS = ROOT / SCREENSHOTS
# The seller's groups (DESIGN.md) and the sandbox's article codes that belong to them.
GROUPS = [("Кронштейны", "KR"), ("Карточки", "KART"), ("Пакеты 8", "PAK8"), ("Пакеты 5", "PAK5"),
          ("Пакеты 2", "PAK2")]


# --------------------------------------------------------------------------------------------
# The database: the collector, run against the sandbox


def write_aliases(db: Path, path: Path) -> None:
    """An alias CSV in the seller's group order, from the articles the collector has seen."""
    conn = sqlite3.connect(db)
    keys = conn.execute("SELECT DISTINCT a.marketplace, p.article FROM products p JOIN accounts a USING (account) "
                        "WHERE p.article IS NOT NULL ORDER BY p.article, a.marketplace DESC").fetchall()
    conn.close()
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["marketplace", "key", "alias"])
        for alias, code in GROUPS:
            writer.writerows([mp, article, alias] for mp, article in keys if code in article.split("-"))


def build_database(db: Path, aliases: Path) -> None:
    """30 days of backfilled history, then one collector pass a day for HISTORY_DAYS days (so
    there is stock history and Ozon buyouts seen on each day), the last one now, or at noon
    when it is earlier than that in Moscow: just after midnight today has no orders yet, and a
    dashboard that shows zeros everywhere would agree with the database without proving much.
    The viewer's "today" is the real one, and noon is still on it."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    noon = datetime.now(MSK).replace(hour=12, minute=0, second=0, microsecond=0)
    now = max(now, noon.astimezone(timezone.utc))
    clock = SandboxClock(now - timedelta(days=HISTORY_DAYS))
    with Sandbox(SandboxConfig(seed=1, rate_limit_factor=0.001, **SMALL_SELLER), clock=clock) as sandbox:
        settings = load_settings(env_file=None, environ={
            **sandbox.env(), "DATABASE_PATH": str(db), "ALIASES_FILE": str(aliases),
            "RATE_LIMIT_FACTOR": "0.001", "TIMEZONE": "Europe/Moscow"})
        storage = Storage(db)
        storage.migrate()
        backfill(settings, storage, 30, lambda *_: None, clock=clock.now)
        for day in range(HISTORY_DAYS):
            assert run_pass(settings, storage, "test", clock=clock.now).status == "ok"
            if day == 0:
                write_aliases(db, aliases)  # the next pass loads it
            clock.advance(days=1)
        clock.set(now)
        assert run_pass(settings, storage, "test", clock=clock.now).status == "ok"
        storage.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_datasette(db: Path, **environ: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "TIMEZONE": "Europe/Moscow", **environ}
    if "DATASETTE_PASSWORD_HASH" not in environ:
        env.pop("DATASETTE_PASSWORD_HASH", None)
    process = subprocess.Popen(datasette_command(db, port), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/robots.txt", timeout=1).read()
            return process, url
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"datasette exited: {process.stderr.read()}")
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("datasette did not start")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    # Figures are "today in Moscow": do not straddle midnight between building and checking.
    moscow = datetime.now(MSK)
    midnight = (moscow + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    if midnight - moscow < timedelta(minutes=3):
        time.sleep((midnight - moscow).total_seconds())
    folder = tmp_path_factory.mktemp("browser")
    build_database(folder / "mp.db", folder / "aliases.csv")
    return folder / "mp.db"


@pytest.fixture(scope="module")
def site(db):
    process, url = start_datasette(db)
    yield url
    stop(process)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # No network on CI machines: without these Chromium stalls on its own background connections.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", "--lang=ru-RU",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False,
                                              "intl.accept_languages": "ru-RU,ru"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()


@pytest.fixture
def light(browser):
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
    return browser


# --------------------------------------------------------------------------------------------
# Figures straight from the raw tables (DESIGN.md, "Datasets and their meaning")


UNITS = ("stock", "ordered", "bought", "returned")
# «Сегодня по группам» per marketplace, and «По складам»: each figure, and the roubles written
# under three of them
TODAY_CELLS = ("stock", "ordered", "ordered_kop", "bought", "bought_kop", "returned", "returned_kop")


def as_shown(figures: dict, kopecks: bool = True) -> tuple:
    """A row's TODAY_CELLS as the page shows them: kopecks in roubles (already roubles when not
    `kopecks`), none under a figure of 0."""
    def shown(k: str):
        if not k.endswith("_kop"):
            return figures[k]
        if not figures[k.removesuffix("_kop")]:
            return None
        return figures[k] / 100 if kopecks else figures[k]
    return tuple(shown(k) for k in TODAY_CELLS)


def shown_totals(rows: list[tuple]) -> list:
    """The footer under rows of a first column and then blocks of TODAY_CELLS, as shown."""
    totals = []
    for start in range(1, len(rows[0]), len(TODAY_CELLS)):
        block = {k: round(sum(row[start + i] or 0 for row in rows), 2) for i, k in enumerate(TODAY_CELLS)}
        totals += as_shown(block, kopecks=False)
    return totals


def units_of(row: tuple) -> list:
    """A row of the `today` table without its money: wb stock..returned, ozon stock..returned."""
    return [row[1 + m * len(TODAY_CELLS) + TODAY_CELLS.index(k)] for m in range(2) for k in UNITS]


class Truth:
    """The figures by the definitions, from orders, sales, stock_current and sku_aliases."""

    def __init__(self, db: Path):
        self.conn = sqlite3.connect(db)
        self.today = datetime.now(MSK).date()
        self.marketplace = dict(self.conn.execute("SELECT account, marketplace FROM accounts"))
        aliases = {(mp, key): (alias, pos) for mp, key, alias, pos in
                   self.conn.execute("SELECT marketplace, key, alias, position FROM sku_aliases")}
        articles = {}
        for account, sku, article in self.conn.execute(
                "SELECT account, sku, article FROM products WHERE article IS NOT NULL ORDER BY updated_at"):
            articles[account, sku] = article  # the latest wins
        self.alias_of, self.position = {}, {}
        for account, sku in self.conn.execute("SELECT account, sku FROM products UNION SELECT account, sku FROM "
                                              "stock_current UNION SELECT account, sku FROM orders UNION "
                                              "SELECT account, sku FROM sales"):
            mp, article = self.marketplace[account], articles.get((account, sku))
            alias, pos = aliases.get((mp, str(sku))) or aliases.get((mp, article)) or (article or str(sku), 10**9)
            self.alias_of[account, sku] = alias
            self.position[alias] = min(pos, self.position.get(alias, pos))

    def rows(self, sql: str, *params):
        return self.conn.execute(sql, params).fetchall()

    def figures(self, day: date, alias: str = "", warehouse: str = "") -> dict:
        """{(alias, marketplace): {"ordered", "bought", "returned", "stock"}} on `day`."""
        out = defaultdict(lambda: defaultdict(int))

        def keep(account, sku, wh):
            return (not alias or self.alias_of[account, sku] == alias) and (not warehouse or wh == warehouse)

        for account, sku, wh, qty, price in self.rows(
                "SELECT account, sku, warehouse, quantity, price_kopecks FROM orders WHERE day = ? AND is_cancelled = 0",
                day.isoformat()):
            if keep(account, sku, wh):
                key = self.alias_of[account, sku], self.marketplace[account]
                out[key]["ordered"] += qty
                out[key]["ordered_kop"] += (price or 0) * qty
        for account, sku, wh, kind, rtype, qty, amount, payout in self.rows(
                "SELECT account, sku, warehouse, kind, return_type, quantity, amount_kopecks, payout_kopecks "
                "FROM sales WHERE day = ?", day.isoformat()):
            if not keep(account, sku, wh):
                continue
            key = self.alias_of[account, sku], self.marketplace[account]
            if kind == "sale":
                out[key]["bought"] += qty
                out[key]["bought_kop"] += amount or 0
                out[key]["payout_kop"] += payout or 0
            else:
                out[key]["payout_kop"] -= abs(payout or 0)
                if (rtype or "ClientReturn") in ("ClientReturn", "Unknown"):
                    out[key]["returned"] += qty
                    out[key]["returned_kop"] += abs(amount or 0)
        for account, sku, wh, qty in self.rows("SELECT account, sku, warehouse, quantity FROM stock_current"):
            if keep(account, sku, wh):
                out[self.alias_of[account, sku], self.marketplace[account]]["stock"] += qty
        return out

    def total(self, figures: dict, marketplace: str, figure: str) -> int:
        return sum(v[figure] for (_, mp), v in figures.items() if mp == marketplace)

    def cohort(self, marketplace: str, days: int = 30) -> dict:
        """What became of the units ordered in the last `days` days (DESIGN.md, "buyout rate"):
        the units returned for the order line: not bought, the rest bought; else a sale or a
        delivered posting: bought; else cancelled: not bought; else on its way."""
        sales, returned = defaultdict(set), defaultdict(int)
        for account, order_id, sku, kind, qty in self.rows("SELECT account, order_id, sku, kind, quantity FROM sales"):
            sales[account, order_id, sku].add(kind)
            returned[account, order_id, sku] += qty if kind == "return" else 0
        out = defaultdict(int)
        since = (self.today - timedelta(days=days - 1)).isoformat()
        for account, order_id, sku, status, cancelled, qty in self.rows(
                "SELECT account, order_id, sku, status, is_cancelled, quantity FROM orders WHERE day >= ?", since):
            if self.marketplace[account] != marketplace:
                continue
            kinds = sales[account, order_id, sku]
            if "return" in kinds:
                back = min(qty, returned[account, order_id, sku]) if returned[account, order_id, sku] > 0 else qty
                out["not_bought"] += back
                out["bought"] += qty - back
                continue
            outcome = ("bought" if "sale" in kinds or status == "delivered"
                       else "not_bought" if cancelled else "in_transit")
            out[outcome] += qty
        return out

    def buyout_pct(self, marketplace: str) -> float | None:
        cohort = self.cohort(marketplace)
        settled = cohort["bought"] + cohort["not_bought"]
        return round(100 * cohort["bought"] / settled, 1) if settled else None

    def table(self, alias: str = "", warehouse: str = "") -> list[tuple]:
        """The `today` table: aliases of the CSV (all of them) in their order, then the rest by name
        when they have anything."""
        f = self.figures(self.today, alias, warehouse)
        declared = {a for (a,) in self.rows("SELECT DISTINCT alias FROM sku_aliases")}
        names = {a for a, _ in f} | ({a for a in declared if not alias or a == alias})
        rows = []
        for name in sorted(names, key=lambda a: (self.position.get(a, 10**9), a)):
            figures = [value for mp in ("wb", "ozon") for value in as_shown(f[name, mp])]
            if name in declared or any(figures):
                rows.append((name, *figures))
        return rows

    def until(self, day: date, up_to: str, table: str, where: str, column: str) -> dict:
        result = defaultdict(int)
        for account, qty in self.rows(f"SELECT account, quantity FROM {table} WHERE day = ? AND {where} "
                                      f"AND substr({column}, 12, 5) <= ?", day.isoformat(), up_to):
            result[self.marketplace[account]] += qty
        return result

    def per_day(self, days: int, figure: str) -> dict:
        """{(day, marketplace): units, or roubles for a *_kop figure} for the last `days` days."""
        out = {}
        for n in range(days):
            day = self.today - timedelta(days=n)
            f = self.figures(day)
            for mp in ("wb", "ozon"):
                total = self.total(f, mp, figure)
                out[day.isoformat(), mp] = total / 100 if figure.endswith("_kop") else total
        return out


@pytest.fixture(scope="module")
def truth(db) -> Truth:
    return Truth(db)


# --------------------------------------------------------------------------------------------
# Reading the page


def number(text: str):
    """'1 977 шт.' -> 1977, '98,8 %' -> 98.8, '1 234,50 ₽' -> 1234.5, '+12' -> 12, '—' -> None."""
    text = re.sub(r"[\s\u00a0\u202f]|шт\.|%|₽", "", text).replace(",", ".")
    if text in ("", "—"):
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def open_page(driver, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.body.dataset.mpReady === '1'"))
    errors = driver.execute_script("return [...document.querySelectorAll('[data-error]')].map(e => e.id + ': ' + e.dataset.error)")
    assert not errors, errors


def metric(driver, field: str):
    return number(driver.find_element(By.CSS_SELECTOR, f".mp-metric-value[data-field='{field}']").text)


def money(driver, field: str):
    """'27 781,46 ₽' (on a card, or «к перечислению 50 775,81 ₽» under it) -> 27781.46."""
    element = driver.find_element(By.CSS_SELECTOR, f"[data-field='{field}']")
    text = element.text.replace("к перечислению", "")
    assert text.strip().endswith("₽"), text
    return number(text.replace("₽", ""))


def note(driver, field: str):
    """«в пути 847 шт.» -> 847."""
    return number(driver.find_element(By.CSS_SELECTOR, f".mp-metric-note[data-field='{field}']").text
                  .replace("в пути", ""))


def cell(text: str):
    try:
        return number(text)
    except ValueError:
        return text


# Each cell of a row as shown: its figure, and the roubles written under it (a column's `below`),
# if it has that line, as a value of its own after it ("" when the figure has none to show: 0)
CELLS_SCRIPT = """
return arguments[0].map(tr => [...tr.cells].flatMap(td => {
  const below = td.querySelector('.mp-below')
  const text = td.innerText.trim()
  return below ? [text.slice(0, text.length - below.innerText.trim().length).trim(), below.innerText.trim()] : [text]
}))"""


def cells_of(driver, rows: list) -> list[tuple]:
    """Rows of a table as shown: numbers as numbers, the rest as text, the roubles under a figure
    as a value after it (None when there are none: the figure is 0)."""
    return [tuple(cell(text) if text else None for text in row) for row in driver.execute_script(CELLS_SCRIPT, rows)]


def cells(tr) -> tuple:
    """One table row (cells_of)."""
    return cells_of(tr.parent, [tr])[0]


def table_rows(driver, card: str) -> list[tuple]:
    """A card's table body, row by row (cells_of)."""
    return cells_of(driver, driver.find_elements(By.CSS_SELECTOR, f"#card-{card} table.mp-table tbody tr"))


def overflow(driver, card: str) -> int:
    """How many pixels a card's table is wider than the card (0 or less: every column in view at
    the browser's 1400 px, nothing to scroll sideways)."""
    return driver.execute_script(f"const w = document.querySelector('#card-{card} .mp-table-wrapper');"
                                 "return w.scrollWidth - w.clientWidth")


def drawn(driver, chart: str) -> tuple[list, list]:
    """A line chart as Vega drew it: each line's dash pattern (None: solid), and each point's day
    and whether it is hollow."""
    lines = driver.execute_script(
        f"return [...document.querySelectorAll('#chart-{chart} svg g.mark-line.role-mark > path')]"
        ".map(p => p.getAttribute('stroke-dasharray'))")
    points = driver.execute_script(
        f"return [...document.querySelectorAll('#chart-{chart} svg g.mark-symbol.role-mark > path')]"
        ".map(p => [new Date(p.__data__.datum.day).toISOString().slice(0, 10), p.getAttribute('fill') === 'transparent'])")
    return lines, [tuple(point) for point in points]


def screenshot(driver, name: str) -> Path:
    """The whole page, not just the window (Chromium's DevTools capture beyond the viewport)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


# --------------------------------------------------------------------------------------------
# The dashboard


def test_dashboard_figures_are_the_databases(site, light, truth):
    driver = light
    open_page(driver, f"{site}/")  # "/" is the dashboard
    assert urlsplit(driver.current_url).path == "/-/dashboards/today"
    assert driver.find_element(By.TAG_NAME, "h1").text == "Сегодня"

    today = truth.figures(truth.today)
    for mp in ("wb", "ozon"):
        for figure in ("ordered", "bought", "stock"):
            assert metric(driver, f"{mp}_{figure}") == truth.total(today, mp, figure), (mp, figure)
        # Roubles beside units, to the kopeck, and what the seller receives.
        for figure in ("ordered", "bought", "payout"):
            assert money(driver, f"{mp}_{figure}_rub") == truth.total(today, mp, f"{figure}_kop") / 100, (mp, figure)
        # SQLite rounds halves away from zero, Python to even: allow the last digit.
        assert metric(driver, f"{mp}_buyout_pct") == pytest.approx(truth.buyout_pct(mp), abs=0.11), mp
        assert note(driver, f"{mp}_in_transit") == truth.cohort(mp)["in_transit"], mp
        assert truth.buyout_pct(mp) <= 100
    assert truth.total(today, "wb", "ordered") > 0 and truth.total(today, "ozon", "bought") > 0
    assert truth.total(today, "wb", "bought_kop") > 0 and truth.total(today, "ozon", "payout_kop") > 0

    # WB and Ozon side by side, per alias, in the CSV's order, and the footer adds up.
    rows = table_rows(driver, "by-alias")
    assert rows == truth.table()
    assert [r[0] for r in rows[:5]] == [alias for alias, _ in GROUPS]
    headers = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#card-by-alias thead tr:first-child th")]
    assert headers == ["Группа", "Wildberries", "Ozon"]
    footer = list(cells(driver.find_element(By.CSS_SELECTOR, "#card-by-alias tfoot tr"))[1:])
    assert footer == shown_totals(rows)
    # units and their roubles in one column: the whole table in view at 1400 px
    assert overflow(driver, "by-alias") <= 0

    # Today against yesterday up to the same minute (the minute the page shows).
    vs = {row[0]: row for row in table_rows(driver, "vs-yesterday")}
    # the full-width tables of a few columns each fit (headers over two lines: «Дней без остатка»)
    assert overflow(driver, "vs-yesterday") <= 0 and overflow(driver, "runs-out") <= 0
    up_to = driver.find_element(By.CSS_SELECTOR, "#card-vs-yesterday td[data-column='up_to']").text
    yesterday = truth.today - timedelta(days=1)
    ordered_then = truth.until(yesterday, up_to, "orders", "is_cancelled = 0", "ordered_at")
    bought_then = truth.until(yesterday, up_to, "sales", "kind = 'sale'", "sold_at")
    for mp, name in (("wb", "Wildberries"), ("ozon", "Ozon")):
        _, _, ordered, ordered_y, ordered_diff, bought, bought_y, bought_diff = vs[name][:8]
        assert (ordered, bought) == (truth.total(today, mp, "ordered"), truth.total(today, mp, "bought"))
        assert (ordered_y, bought_y) == (ordered_then[mp], bought_then[mp]), mp
        assert (ordered_diff, bought_diff) == (ordered - ordered_y, bought - bought_y)


def test_the_dashboard_asks_what_make_bench_times(site, light):
    """The requests the page's script sends for its charts are the ones benchmarks/viewer.py
    times as «dashboard page + all its charts», and `today` is asked for as the load benchmark
    asks for it: a change to either shows here."""
    from urllib.parse import parse_qsl

    from benchmarks.viewer import ROWS, dashboard_requests, parse_metadata

    def request(url: str) -> tuple:  # (parameters in any order: the server's work is the same)
        return urlsplit(url).path, tuple(sorted(parse_qsl(urlsplit(url).query)))

    driver = light
    open_page(driver, f"{site}/-/dashboards/today")
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('.json'))")
    asked = sorted({request(url) for url in fetched if not urlsplit(url).path.endswith("filter_groups.json")})
    metadata = parse_metadata((ROOT / "metadata.yml").read_text(encoding="utf-8"))
    # (the page's own query: the filters' defaults, which the dashboards plugin adds by a redirect)
    assert asked == sorted(request(path) for path in dashboard_requests(metadata, urlsplit(driver.current_url).query))
    today = [dict(query) for path, query in asked if path == "/mp/today.json"]
    assert len(today) == 1 and ROWS.items() <= today[0].items()


def test_dashboard_charts_are_the_databases(site, light, truth):
    driver = light
    open_page(driver, f"{site}/-/dashboards/today?days=14")
    for chart, figure in (("ordered-chart", "ordered"), ("bought-chart", "bought")):
        data = driver.execute_script(f"return mpDashboard.data['{chart}']")
        assert {(r["day"], r["marketplace"]): r[figure] for r in data} == truth.per_day(14, figure), chart
    # Stock at the end of today is the stock now.
    stock = driver.execute_script("return mpDashboard.data['stock-chart']")
    today = truth.figures(truth.today)
    assert {r["marketplace"]: r["stock"] for r in stock if r["day"] == truth.today.isoformat()} == {
        mp: truth.total(today, mp, "stock") for mp in ("wb", "ozon")}
    # Drawn: a line per marketplace with a point per day; today, not over yet, dashed from
    # yesterday on with hollow points, so that a morning's few orders do not read as a fall.
    days = {(truth.today - timedelta(days=n)).isoformat() for n in range(14)}
    recent = {truth.today.isoformat(), (truth.today - timedelta(days=1)).isoformat()}
    for chart in ("ordered-chart", "bought-chart", "stock-chart"):
        lines, points = drawn(driver, chart)
        assert sorted(lines, key=str) == ["4,4", "4,4", None, None], chart
        assert len(points) == 30 and {day for day, hollow in points} == days, chart
        assert {day for day, hollow in points if hollow} == recent, chart
        assert sorted(day for day, hollow in points if not hollow) == sorted([*days - {truth.today.isoformat()}] * 2), chart

    # The period filter: 30 days.
    Select(driver.find_element(By.ID, "filter-days")).select_by_visible_text("30 дней")
    driver.find_element(By.CSS_SELECTOR, ".mp-filters input[type=submit]").click()
    WebDriverWait(driver, 20).until(lambda d: "days=30" in d.current_url)
    open_page(driver, driver.current_url)
    data = driver.execute_script("return mpDashboard.data['ordered-chart']")
    assert {(r["day"], r["marketplace"]): r["ordered"] for r in data} == truth.per_day(30, "ordered")


def test_charts_switch_to_roubles(site, light, truth):
    driver = light
    open_page(driver, f"{site}/-/dashboards/today?days=14&in=rub")
    assert driver.find_element(By.CSS_SELECTOR, "#card-ordered-chart .mp-card-title").text == "Заказано по дням, ₽"
    for chart, figure, money_figure in (("ordered-chart", "ordered", "ordered_kop"), ("bought-chart", "bought", "bought_kop")):
        data = driver.execute_script(f"return mpDashboard.data['{chart}']")
        assert {(r["day"], r["marketplace"]): r[figure] for r in data} == truth.per_day(14, money_figure), chart
    assert Select(driver.find_element(By.ID, "filter-in")).first_selected_option.text == "рублях"


def test_runs_out_and_buyout_tables(site, light, truth):
    """«Заканчивается» is the restock query's soon rows, soonest first; the buyout table is the
    30-day cohort of the raw rows, never above 100 %."""
    driver = light
    open_page(driver, f"{site}/-/dashboards/today?days=14")
    with urllib.request.urlopen(f"{site}/mp/restock.json?_shape=objects&soon=1&days=14") as response:
        expected = json.load(response)["rows"]
    rows = table_rows(driver, "runs-out")
    shown = expected[:30]  # the card's `limit`: the most urgent, the rest behind a link
    assert expected and len(rows) == len(shown)
    assert bool(driver.find_elements(By.CSS_SELECTOR, "#card-runs-out .mp-more")) == (len(expected) > 30)
    names = {"wb": "Wildberries", "ozon": "Ozon"}
    for row, want in zip(rows, shown):
        assert row[:4] == (want["alias"], names[want["marketplace"]], want["warehouse"] or None, want["stock"])  # "—"
        assert row[6] == ".".join(reversed(want["runs_out_on"].split("-")))  # 18.12.2026
        # below LOW_STOCK_DAYS (7) exactly; shown to a tenth of a day, so 6.96 days read 7.0
        assert want["runs_out_soon"] and (want["stock"] <= 0 or want["days_of_cover"] <= 7)
    covers = [w["days_of_cover"] for w in expected]
    assert covers == sorted(covers)
    for row in table_rows(driver, "buyout-table"):
        alias, name, pct, ordered, bought, not_bought, in_transit = row
        assert ordered == bought + not_bought + in_transit
        assert pct is None or 0 <= pct <= 100
    totals = {mp: truth.cohort(mp) for mp in ("wb", "ozon")}
    for mp, name in {"wb": "WB", "ozon": "Ozon"}.items():  # (short: the card is half the page)
        mine = [r for r in table_rows(driver, "buyout-table") if r[1] == name]
        assert sum(r[4] for r in mine) == totals[mp]["bought"], mp
        assert sum(r[5] for r in mine) == totals[mp]["not_bought"], mp
        assert sum(r[6] for r in mine) == totals[mp]["in_transit"], mp
    # every column in view without scrolling the half-width card (the browser is 1400 px wide)
    assert overflow(driver, "buyout-table") <= 0


def test_balances_of_every_account(site, light, truth):
    driver = light
    open_page(driver, f"{site}/-/dashboards/today?days=14")
    shown = {row[0]: row for row in table_rows(driver, "balances")}
    accounts = truth.rows("SELECT a.label, a.marketplace, b.current_kopecks, b.for_withdraw_kopecks, "
                          "b.opening_kopecks, b.accrued_kopecks, b.paid_kopecks, b.closing_kopecks "
                          "FROM accounts a JOIN balances b ON b.id = (SELECT max(id) FROM balances "
                          "WHERE account = a.account)")
    assert accounts and set(shown) == {label for label, *_ in accounts}
    for label, marketplace, *kopecks in accounts:
        expected = tuple(None if k is None else k / 100 for k in kopecks)
        assert shown[label][1] == {"wb": "Wildberries", "ozon": "Ozon"}[marketplace]
        assert shown[label][2:8] == expected, label
    assert any(v for row in shown.values() for v in row[2:8])


def test_filters_alias_and_warehouse(site, light, truth):
    driver = light
    open_page(driver, f"{site}/-/dashboards/today?days=14")
    # An Ozon warehouse with stock of Кронштейны, picked from the data.
    warehouse = next(w for (w,) in truth.rows("SELECT DISTINCT s.warehouse FROM stock_current s "
                                              "JOIN accounts a USING (account) WHERE a.marketplace = 'ozon' "
                                              "ORDER BY s.warehouse")
                     if truth.figures(truth.today, "Кронштейны", w)["Кронштейны", "ozon"]["stock"] > 0)
    # The group field's suggestions arrive when it is first used: the groups in the CSV's order,
    # then the articles, as the database has them.
    assert not driver.find_elements(By.CSS_SELECTOR, "#filter-alias-list option")
    driver.find_element(By.ID, "filter-alias").send_keys("Кронштейны")
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "filter-alias-list").get_attribute("data-loaded"))
    suggested = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#filter-alias-list option")]
    assert suggested == [alias for (alias,) in truth.rows(canned_sql()["filter_groups"])]
    assert suggested[0] == "Кронштейны" and len(suggested) > 10
    driver.find_element(By.ID, "filter-warehouse").send_keys(warehouse)
    driver.find_element(By.CSS_SELECTOR, ".mp-filters input[type=submit]").click()
    WebDriverWait(driver, 20).until(lambda d: "warehouse=" in d.current_url)
    open_page(driver, driver.current_url)
    assert driver.find_element(By.ID, "filter-alias").get_attribute("value") == "Кронштейны"

    figures = truth.figures(truth.today, alias="Кронштейны", warehouse=warehouse)
    for mp in ("wb", "ozon"):
        for figure in ("ordered", "bought", "stock"):
            assert metric(driver, f"{mp}_{figure}") == truth.total(figures, mp, figure), (mp, figure)
    assert metric(driver, "wb_stock") == 0 and metric(driver, "ozon_stock") > 0
    assert table_rows(driver, "by-alias") == truth.table(alias="Кронштейны", warehouse=warehouse)


def test_alias_leads_to_its_warehouses(site, light, truth):
    driver = light
    open_page(driver, f"{site}/-/dashboards/today?days=14")
    driver.find_element(By.CSS_SELECTOR, "#card-by-alias tbody a").click()  # the first group
    WebDriverWait(driver, 20).until(lambda d: "/-/dashboards/warehouses" in d.current_url)
    open_page(driver, driver.current_url)
    assert unquote(urlsplit(driver.current_url).query) == "alias=Кронштейны"
    assert driver.find_element(By.TAG_NAME, "h1").text == "По складам"

    per_warehouse = {}
    for mp in ("wb", "ozon"):
        expected = {}
        for warehouse in {w for (w,) in truth.rows("SELECT DISTINCT warehouse FROM stock_current UNION "
                                                   "SELECT DISTINCT warehouse FROM orders UNION "
                                                   "SELECT DISTINCT warehouse FROM sales")}:
            f = truth.figures(truth.today, alias="Кронштейны", warehouse=warehouse)[("Кронштейны", mp)]
            if any(f[k] for k in UNITS):
                expected[warehouse] = as_shown(f)
        rows = table_rows(driver, f"{mp}-warehouses")
        # The alias column is left out once the page is filtered by it.
        assert {r[0]: r[1:] for r in rows} == expected, mp
        assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)  # biggest stock first
        per_warehouse[mp] = [sum(c) for c, k in zip(zip(*expected.values()), TODAY_CELLS) if k in UNITS]
    # The same figures as the group's row on the dashboard.
    row = next(r for r in truth.table() if r[0] == "Кронштейны")
    assert per_warehouse["wb"] + per_warehouse["ozon"] == units_of(row)


def test_warehouses_a_row_each_adding_up_and_opening_their_groups(site, light, truth):
    """«По складам» with no filter: a row per warehouse (every group added up, as the raw rows
    say), the total the marketplace's; ▸ on the busiest Ozon warehouse opens its groups, which add
    up to its row."""
    driver = light
    open_page(driver, f"{site}/-/dashboards/warehouses?period=day")
    warehouses = {w for (w,) in truth.rows("SELECT DISTINCT warehouse FROM stock_current UNION "
                                          "SELECT DISTINCT warehouse FROM orders UNION SELECT DISTINCT warehouse FROM sales")
                  if w}
    for mp in ("wb", "ozon"):
        expected = {}
        for warehouse in warehouses:
            f = truth.figures(truth.today, warehouse=warehouse)
            totals = {k: truth.total(f, mp, k) for k in TODAY_CELLS}
            if any(totals[k] for k in UNITS):
                expected[warehouse] = as_shown(totals)
        rows = table_rows(driver, f"{mp}-warehouses")
        assert {r[0]: r[1:] for r in rows if r[0] not in ("—", None)} == expected, mp
        footer = cells(driver.find_element(By.CSS_SELECTOR, f"#card-{mp}-warehouses tfoot tr"))
        assert list(footer[1:]) == shown_totals(rows), mp
        # a long warehouse name wraps, it does not push «Возвраты» out of the card
        assert overflow(driver, f"{mp}-warehouses") <= 0, mp
    busiest = max((r for r in table_rows(driver, "ozon-warehouses")), key=lambda r: r[1])
    row = next(tr for tr in driver.find_elements(By.CSS_SELECTOR, "#card-ozon-warehouses tbody tr")
               if tr.get_attribute("data-key") == busiest[0])
    row.find_element(By.CSS_SELECTOR, "button.mp-expand").click()
    detail = WebDriverWait(driver, 10).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#card-ozon-warehouses tr.mp-detail[data-ready='1']"))
    groups = [cells(tr) for tr in detail.find_elements(By.CSS_SELECTOR, "table.mp-table > tbody > tr")]
    f = truth.figures(truth.today, warehouse=busiest[0])
    assert {g[0]: g[1:] for g in groups} == {
        alias: as_shown(v) for (alias, mp), v in f.items()
        if mp == "ozon" and any(v[k] for k in UNITS)}
    assert shown_totals(groups) == list(busiest[1:]) and len(groups) > 1


def test_csv_link_downloads_the_table(site, light, downloads, truth):
    driver = light
    open_page(driver, f"{site}/-/dashboards/today?days=14")
    link = driver.find_element(By.CSS_SELECTOR, "#card-by-alias a.mp-export")
    assert link.text == "CSV" and "/mp/today.csv?" in link.get_attribute("href")
    for old in downloads.glob("*"):
        old.unlink()
    link.click()
    WebDriverWait(driver, 20).until(lambda _: [p for p in downloads.glob("*.csv")])
    path = next(downloads.glob("*.csv"))
    assert path.name == "today.csv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    def as_page(row: dict) -> tuple:  # the CSV's plain numbers, as the page shows them
        return (row["alias"], *(value for mp in ("wb", "ozon") for value in as_shown(
            {k: cell(row[f"{mp}_{k.replace('_kop', '_rub')}"]) for k in TODAY_CELLS}, kopecks=False)))
    assert list(rows[0])[:9] == ["alias", "wb_stock", "wb_ordered", "wb_bought", "wb_returned",
                                 "ozon_stock", "ozon_ordered", "ozon_bought", "ozon_returned"]
    assert {"wb_ordered_rub", "ozon_bought_rub", "wb_payout_rub"} <= set(rows[0])
    # plain numbers in the export: roubles with a dot and kopecks
    assert [as_page(r) for r in rows] == table_rows(driver, "by-alias")
    assert table_rows(driver, "by-alias") == truth.table()


def test_help_page_follows_dark_mode(site, browser):
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        browser.get(f"{site}/-/help")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Справка"
        background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"
        assert browser.find_elements(By.CSS_SELECTOR, "#mp-freshness-table tbody tr")
        screenshot(browser, "help-dark")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_sign_in_is_required_when_a_password_is_set(db, browser):
    from datasette_auth_passwords.utils import hash_password

    process, url = start_datasette(db, DATASETTE_PASSWORD_HASH=hash_password("пароль продавца", iterations=1000),
                                   DATASETTE_SECRET="test-secret")
    try:
        for path in ("/mp/today.csv", "/mp/summary.json", "/mp.json?sql=select+1"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url + path, timeout=5)
            assert refused.value.code == 403, path
        browser.delete_all_cookies()
        browser.get(f"{url}/")
        assert urlsplit(browser.current_url).path == "/-/login"
        browser.find_element(By.ID, "id_password").send_keys("пароль продавца")
        browser.find_element(By.CSS_SELECTOR, "form.mp-login input[type=submit]").click()
        WebDriverWait(browser, 20).until(lambda d: "/-/dashboards/today" in d.current_url)
        open_page(browser, browser.current_url)
        assert metric(browser, "wb_stock") > 0
        assert "Выйти" in browser.find_element(By.CSS_SELECTOR, "header .mp-account").text
    finally:
        browser.delete_all_cookies()
        stop(process)


# --------------------------------------------------------------------------------------------
# The README's pictures (`make screenshots` runs these with SCREENSHOTS_DIR=docs/img)


def test_screenshot_dashboard(site, light):
    # 14 days: the span the test's collector ran over, so the stock line has a history.
    open_page(light, f"{site}/-/dashboards/today?days=14")
    assert screenshot(light, "dashboard").stat().st_size > 50_000


def test_screenshot_warehouses(site, light):
    open_page(light, f"{site}/-/dashboards/warehouses?alias={quote('Кронштейны')}&period=day")
    assert screenshot(light, "warehouses").stat().st_size > 20_000


def test_screenshot_dashboard_dark(site, browser):
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        open_page(browser, f"{site}/-/dashboards/today?days=14")
        assert screenshot(browser, "dashboard-dark").stat().st_size > 50_000
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_on_a_phone_the_figures_sit_two_abreast_and_nothing_scrolls_sideways(site, light, truth):
    """At 390 px (a phone) the dashboard is one card a row: eight figure cards before the first
    table. Two abreast, each figure whole inside its card; tables and charts the whole width. No
    page is wider than the phone (the help page was 616 px, so the browser zoomed it out)."""
    driver = light
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    try:
        open_page(driver, f"{site}/-/dashboards/today?days=14")
        cards = driver.execute_script(
            "return [...document.querySelectorAll('.dashboard-card')].map(c => { const r = c.getBoundingClientRect();"
            " const v = c.querySelector('.mp-metric-value'); const w = v && v.getBoundingClientRect();"
            " return [c.classList.contains('mp-mp-metric'), Math.round(r.top), r.left, r.right,"
            " w ? w.right <= r.right : true, w ? v.textContent : null] })")
        figures = [card for card in cards if card[0]]
        assert len(figures) == 8 and len({top for _, top, *_ in figures}) == 4  # (four rows of two)
        assert all(inside for *_, inside, _ in cards), cards
        assert metric(driver, "wb_ordered") == truth.total(truth.figures(truth.today), "wb", "ordered")
        assert all(right - left > 330 for figure, _, left, right, *_ in cards if not figure)
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
        screenshot(driver, "dashboard-phone")
        for page in ("/-/dashboards/warehouses", "/-/help"):  # (a page wider than the phone is zoomed out whole)
            driver.get(site + page)
            WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")
            assert driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]") \
                == [390, 390], page
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_a_group_opens_its_warehouses_inline(site, light, truth):
    """▸ on a row of «Сегодня по группам» opens the group's warehouses under it: stock now and
    units ordered today per marketplace x warehouse, as the raw rows say, adding up to the row."""
    driver = light
    open_page(driver, f"{site}/-/dashboards/today?days=14")
    names = {"wb": "Wildberries", "ozon": "Ozon"}
    group = driver.find_element(By.CSS_SELECTOR, "#card-by-alias tbody tr")
    alias = group.get_attribute("data-key")
    row = cells(group)
    assert row[0] == alias  # the button adds no text to the group's name
    group.find_element(By.CSS_SELECTOR, "button.mp-expand").click()
    detail = WebDriverWait(driver, 10).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#card-by-alias tr.mp-detail[data-ready='1']"))
    assert detail.get_attribute("data-detail-of") == alias
    shown = {}
    for tr in detail.find_elements(By.CSS_SELECTOR, "table.mp-table > tbody > tr"):
        marketplace, warehouse, stock, ordered, per_day, cover = (cell(td.text) for td in tr.find_elements(By.TAG_NAME, "td"))
        shown[marketplace, warehouse] = (stock, ordered)
    expected = defaultdict(lambda: [0, 0])
    for account, sku, warehouse, quantity in truth.rows("SELECT account, sku, warehouse, quantity FROM stock_current"):
        if truth.alias_of[account, sku] == alias:
            expected[names[truth.marketplace[account]], warehouse or None][0] += quantity
    for account, sku, warehouse, quantity in truth.rows(
            "SELECT account, sku, warehouse, quantity FROM orders WHERE day = ? AND is_cancelled = 0",
            truth.today.isoformat()):
        if truth.alias_of[account, sku] == alias:
            expected[names[truth.marketplace[account]], warehouse or None][1] += quantity
    expected = {key: tuple(value) for key, value in expected.items() if value != [0, 0]}
    # (a warehouse with neither stock nor an order today is shown for its orders of the last 14 days)
    assert {key: value for key, value in shown.items() if value != (0, 0)} == expected and len(expected) > 1
    # the warehouses add up to the group's row: stock and ordered, per marketplace
    units = units_of(row)  # wb stock, ordered, bought, returned, then ozon's
    for name, stock_at, ordered_at in (("Wildberries", 0, 1), ("Ozon", 4, 5)):
        assert sum(s for (mp, _), (s, _) in shown.items() if mp == name) == units[stock_at]
        assert sum(o for (mp, _), (_, o) in shown.items() if mp == name) == units[ordered_at]
    group.find_element(By.CSS_SELECTOR, "button.mp-expand").click()  # and closes again
    assert not driver.find_elements(By.CSS_SELECTOR, "#card-by-alias tr.mp-detail")
