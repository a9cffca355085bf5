"""The viewer's canned queries (metadata.yml) and SQL functions (collector/sqlfunctions.py).

A database is built from schema.sql with hand-made rows, served by Datasette itself, and every
canned query is compared row for row with figures worked out by hand (in the comments next to
the data). "Today" is 2026-11-26 in Moscow unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from contextlib import closing, contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from datasette.app import Datasette
from freezegun import freeze_time

from collector import datasette_plugin, kept, sqlfunctions
from collector.config import load_settings
from collector.pipeline import refresh_kept
from collector.storage import Storage

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schema.sql"
METADATA = ROOT / "metadata.yml"
# DESIGN.md lives beside the repository (or in docs/ once copied there).
DESIGN = next((p for p in (ROOT / "docs" / "DESIGN.md", ROOT.parent / "shared" / "DESIGN.md") if p.exists()),
              ROOT / "docs" / "DESIGN.md")

T = "2026-11-26"  # today
Y = "2026-11-25"  # yesterday
O = "2026-10-17"  # 40 days ago
NOON = "2026-11-26T09:00:00Z"  # 12:00 in Moscow

QUERY_COLUMNS = {  # DESIGN.md, "Viewer"
    "today": ["alias", "wb_stock", "wb_ordered", "wb_bought", "ozon_stock", "ozon_ordered", "ozon_bought"],
    "stock_by_warehouse": ["alias", "marketplace", "warehouse", "stock"],
    "orders_by_warehouse": ["alias", "marketplace", "warehouse", "ordered"],
    "history": ["day", "alias", "marketplace", "ordered", "bought", "returned", "stock"],
    "days_of_cover": ["alias", "marketplace", "stock", "avg_daily_ordered", "days_of_cover"],
    "freshness": ["account", "dataset", "status", "last_success_at", "minutes_since_success", "last_error"],
    "buyout": ["alias", "marketplace", "ordered", "bought", "not_bought", "in_transit", "buyout_pct"],
    "restock": ["alias", "marketplace", "warehouse", "stock", "avg_daily_ordered", "days_of_cover", "runs_out_on",
                "to_ship", "days_out_of_stock", "lost_units"],
}

# --------------------------------------------------------------------------------------------
# The data

ACCOUNTS = [("wb-1", "wb", "WB основной"), ("ozon-1", "ozon", "Ozon 1"), ("ozon-2", "ozon", "Ozon 2")]

# CSV order: Кронштейны 1, Карточки 2, Пакеты 8 3, Пакеты 5 4, Пакеты 2 5.
ALIASES = [
    ("wb", "KR-10", "Кронштейны", 1),     # by article
    ("wb", "1002", "Кронштейны", 1),      # by SKU (article KR-20 has no alias)
    ("ozon", "KR-10", "Кронштейны", 1),   # ozon-1 2001 and ozon-2 3001
    ("wb", "CARD-A", "Карточки", 2),
    ("wb", "CARD-B", "Карточки", 2),      # article of wb 1006, but its SKU key says Пакеты 2
    ("ozon", "2002", "Карточки", 2),      # by SKU
    ("wb", "PAK-8", "Пакеты 8", 3),
    ("wb", "1005", "Пакеты 5", 4),        # a SKU with no figures at all
    ("ozon", "PAK-5", "Пакеты 5", 4),
    ("wb", "1006", "Пакеты 2", 5),        # SKU wins over the article's alias (Карточки)
    ("ozon", "PAK-2", "Пакеты 2", 5),
]

PRODUCTS = [  # account, sku, article, name
    ("wb-1", 1001, "KR-10", "Кронштейн 10 см"),
    ("wb-1", 1002, "KR-20", "Кронштейн 20 см"),
    ("wb-1", 1003, "CARD-A", "Карточка А"),
    ("wb-1", 1004, "PAK-8", "Пакет 8"),
    ("wb-1", 1005, "PAK-5W", "Пакет 5"),
    ("wb-1", 1006, "CARD-B", "Пакет 2 (карточка Б)"),
    ("wb-1", 1009, "ZZ-NEW", "Новинка"),
    ("wb-1", 1010, "AA-OLD", "Снят с продажи"),
    ("ozon-1", 2001, "KR-10", "Кронштейн 10 см"),
    ("ozon-1", 2002, "CARD-A", "Карточка А"),
    ("ozon-1", 2003, "PAK-2", "Пакет 2"),
    ("ozon-1", 2009, "ZZ-NEW", "Новинка"),
    ("ozon-2", 3001, "KR-10", "Кронштейн 10 см"),
    ("ozon-2", 3002, "PAK-5", "Пакет 5"),
    # ozon-2 3009 has orders but no product row: it stands for itself as "3009".
]

ORDERS = [  # account, order_id, sku, article, warehouse, day, is_cancelled, quantity
    ("wb-1", "o1", 1001, "KR-10", "Коледино", T, 0, 1),
    ("wb-1", "o2", 1001, "KR-10", "Коледино", T, 0, 1),
    ("wb-1", "o3", 1001, "KR-10", "Электросталь", T, 0, 1),
    ("wb-1", "o4", 1001, "KR-10", "Коледино", T, 1, 1),        # cancelled
    ("wb-1", "o5", 1002, "KR-20", "Коледино", T, 0, 1),
    ("wb-1", "o6", 1003, "CARD-A", "Коледино", Y, 0, 1),
    ("wb-1", "o7", 1006, "CARD-B", "Коледино", T, 0, 1),
    ("wb-1", "o8", 1009, "ZZ-NEW", "Коледино", T, 0, 1),
    ("wb-1", "o9", 1001, "KR-10", "Коледино", O, 0, 1),
    ("wb-1", "o10", 1003, "CARD-A", "Коледино", Y, 1, 1),      # cancelled
    ("wb-1", "o11", 1001, "KR-10", "Коледино", Y, 0, 1),
    ("ozon-1", "0001-1", 2001, "KR-10", "Хоругвино", T, 0, 2),
    ("ozon-1", "0002-1", 2001, "KR-10", "Хоругвино", T, 1, 1),  # cancelled
    ("ozon-1", "0003-1", 2002, "CARD-A", "Тверь", T, 0, 3),
    ("ozon-1", "0003-1", 2003, "PAK-2", "Тверь", T, 0, 1),      # same posting, second product
    ("ozon-1", "0004-1", 2009, "ZZ-NEW", "Хоругвино", T, 0, 1),
    ("ozon-1", "0005-1", 2003, "PAK-2", "Тверь", Y, 0, 2),
    ("ozon-1", "0006-1", 2001, "KR-10", "Хоругвино", O, 0, 5),
    ("ozon-2", "1001-1", 3001, "KR-10", "Хоругвино", T, 0, 1),
    ("ozon-2", "1002-1", 3009, "BB-X", "Хоругвино", T, 0, 4),
    ("ozon-2", "1003-1", 3002, "PAK-5", "Хоругвино", Y, 0, 1),
]

SALES = [  # account, kind, sale_id, sku, day, quantity, return_type, warehouse
    ("wb-1", "sale", "S1", 1001, T, 1, None, "Коледино"),
    ("wb-1", "sale", "S2", 1001, T, 1, None, "Коледино"),
    ("wb-1", "return", "R1", 1001, T, 1, None, "Коледино"),
    ("wb-1", "sale", "S3", 1003, Y, 1, None, "Коледино"),
    ("wb-1", "sale", "S4", 1006, T, 1, None, "Казань"),
    ("wb-1", "sale", "S5", 1001, O, 1, None, "Коледино"),
    ("ozon-1", "sale", "0007-1", 2001, T, 2, None, "Хоругвино"),
    ("ozon-1", "sale", "0008-1", 2002, None, 1, None, "Тверь"),   # delivered at first sight: no day
    ("ozon-1", "return", "ret-1", 2001, T, 1, "ClientReturn", "Хоругвино"),
    ("ozon-1", "return", "ret-2", 2001, T, 1, "FullReturn", "Хоругвино"),  # refused at handover: never bought
    ("ozon-1", "sale", "0005-1", 2003, Y, 2, None, "Тверь"),
    ("ozon-2", "sale", "1004-1", 3001, T, 1, None, "Хоругвино"),
    ("ozon-2", "return", "ret-9", 3002, Y, 1, None, "Хоругвино"),  # unknown type counts
]

# Stock changes per key (account, sku, size, warehouse): [(day, quantity), ...] in write order.
STOCK = {
    ("wb-1", 1001, "5001", "Коледино"): [("2026-11-01", 30), ("2026-11-20", 25), (Y, 22), (Y, 20), (T, 18)],
    ("wb-1", 1001, "5001", "Электросталь"): [("2026-11-15", 7), ("2026-11-24", 0)],
    ("wb-1", 1002, "5002", "Коледино"): [("2026-10-01", 4)],
    ("wb-1", 1003, "5003", "Коледино"): [("2026-11-10", 10), (Y, 9)],
    ("wb-1", 1004, "5004", "Коледино"): [("2026-11-10", 6)],
    ("wb-1", 1006, "5006", "Казань"): [(T, 3)],
    ("wb-1", 1009, "5009", "Коледино"): [(T, 5)],
    ("wb-1", 1010, "5010", "Коледино"): [("2026-09-01", 2), ("2026-09-10", 0)],
    ("ozon-1", 2001, "", "Хоругвино"): [("2026-11-01", 40), (T, 37)],
    ("ozon-1", 2001, "", "Тверь"): [("2026-11-20", 5)],
    ("ozon-1", 2002, "", "Тверь"): [("2026-11-12", 12)],
    ("ozon-1", 2003, "", "Тверь"): [("2026-11-13", 8), (Y, 6)],
    ("ozon-2", 3001, "", "Хоругвино"): [(T, 9)],
    ("ozon-2", 3002, "", "Хоругвино"): [("2026-11-05", 1), (Y, 0)],
}

RUNS = [(1, "2026-11-26T10:00:00+03:00", "partial"), (2, "2026-11-26T11:00:00+03:00", "partial")]

FETCH_LOG = [  # id, run_id, account, dataset, status, finished_at, error
    (1, 1, "wb-1", "stocks", "ok", "2026-11-26T10:00:30+03:00", None),
    (2, 1, "wb-1", "orders", "ok", "2026-11-26T10:00:40+03:00", None),
    (3, 1, "wb-1", "sales", "failed", "2026-11-26T10:00:50+03:00",
     "wb-1 sales /api/v1/supplier/sales: HTTP 429 Too Many Requests"),
    (4, 1, "ozon-1", "stocks", "ok", "2026-11-26T10:01:00+03:00", None),
    (5, 2, "wb-1", "stocks", "failed", "2026-11-26T11:00:10+03:00",
     "wb-1 stocks /api/analytics/v1/stocks-report/wb-warehouses: HTTP 500"),
    (6, 2, "wb-1", "orders", "ok", "2026-11-26T11:00:20+03:00", None),
    (7, 2, "wb-1", "sales", "ok", "2026-11-26T11:00:30+03:00", None),
    (8, 2, "ozon-1", "stocks", "ok", "2026-11-26T08:30:00+00:00", None),  # another offset: 11:30 MSK
    (9, 2, "ozon-1", "orders", "failed", "2026-11-26T11:01:00+03:00",
     "ozon-1 orders /v3/posting/fbo/list: HTTP 403"),
]


# Which order line a sale or return belongs to (WB srid, Ozon posting): the buyout rate.
SALE_ORDERS = {"S1": "o1", "S2": "o2", "R1": "o2", "S3": "o6", "S4": "o7", "0005-1": "0005-1", "ret-1": "0001-1"}


def build_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.read_text(encoding="utf-8"))
    with conn:
        conn.executemany("INSERT INTO accounts VALUES (?, ?, ?)", ACCOUNTS)
        conn.executemany("INSERT INTO sku_aliases (marketplace, key, alias, position) VALUES (?, ?, ?, ?)", ALIASES)
        conn.executemany(
            "INSERT INTO products (account, sku, size, article, name, updated_at) VALUES (?, ?, '', ?, ?, ?)",
            [(*p, "2026-11-01T00:00:00+03:00") for p in PRODUCTS],
        )
        conn.executemany(
            """INSERT INTO orders (account, order_id, sku, article, warehouse, ordered_at, day, status,
                                   is_cancelled, quantity)
               VALUES (?, ?, ?, ?, ?, ? || 'T10:00:00+03:00', ?, ?, ?, ?)""",
            [(a, o, s, art, w, d, d, "cancelled" if c else "ordered", c, q)
             for a, o, s, art, w, d, c, q in ORDERS],
        )
        conn.executemany(
            """INSERT INTO sales (account, kind, sale_id, sku, sold_at, day, quantity, return_type, warehouse,
                                  order_id)
               VALUES (?, ?, ?, ?, ? || 'T12:00:00+03:00', ?, ?, ?, ?, ?)""",
            [(a, k, i, s, d, d, q, r, w, SALE_ORDERS.get(i)) for a, k, i, s, d, q, r, w in SALES],
        )
        for (account, sku, size, warehouse), changes in STOCK.items():
            for day, quantity in changes:
                conn.execute(
                    """INSERT INTO stock (account, sku, size, warehouse, quantity, observed_at, day)
                       VALUES (?, ?, ?, ?, ?, ? || 'T09:00:00+03:00', ?)""",
                    (account, sku, size, warehouse, quantity, day, day),
                )
            day, quantity = changes[-1]
            conn.execute(
                """INSERT INTO stock_current (account, sku, size, warehouse, quantity, changed_at, seen_at)
                   VALUES (?, ?, ?, ?, ?, ? || 'T09:00:00+03:00', '2026-11-26T11:00:00+03:00')""",
                (account, sku, size, warehouse, quantity, day),
            )
        conn.executemany(
            "INSERT INTO runs (id, started_at, finished_at, status, trigger) VALUES (?, ?, ?, ?, 'timer')",
            [(i, s, s, st) for i, s, st in RUNS],
        )
        conn.executemany(
            """INSERT INTO fetch_log (id, run_id, account, dataset, status, started_at, finished_at, error)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [(i, r, a, d, st, f, f, e) for i, r, a, d, st, f, e in FETCH_LOG],
        )
        # balances (the `balances` query): wb-1 changed once, ozon-1 has one row
        conn.executemany(
            """INSERT INTO balances (account, fetched_at, day, currency, current_kopecks, for_withdraw_kopecks,
                                     opening_kopecks, accrued_kopecks, paid_kopecks, closing_kopecks)
               VALUES (?, ?, ?, 'RUB', ?, ?, ?, ?, ?, ?)""",
            [("wb-1", "2026-11-25T10:00:00+03:00", "2026-11-25", 1000000, 800000, None, None, None, None),
             ("wb-1", "2026-11-26T10:00:00+03:00", "2026-11-26", 1234501, 987601, None, None, None, None),
             ("ozon-1", "2026-11-26T10:00:00+03:00", "2026-11-26", None, None, 500000, 12345, 100000, 412345)])
        # one alert (collector/alerts.py), sent to one channel and still failing on another
        conn.execute("INSERT INTO alert_outbox (id, key, kind, title, body, created_at, day) VALUES "
                     "(1, 'digest:2026-11-25', 'digest', 'Итоги дня, ср 25.11.2026', 'WB: заказано 3 шт.', "
                     "'2026-11-25T21:00:00+03:00', '2026-11-25')")
        conn.execute("INSERT INTO alert_deliveries (event_id, channel, status, attempts, last_try_at, next_try_at, "
                     "last_error, sent_at) VALUES (1, 'tgram://1...g', 'sent', 1, '2026-11-25T21:00:00+03:00', NULL, "
                     "NULL, '2026-11-25T21:00:00+03:00'), (1, 'mailtos://smtp.example.ru', 'failed', 2, "
                     "'2026-11-25T21:10:00+03:00', '2026-11-25T21:12:00+03:00', 'Connection refused', NULL)")
    conn.close()
    # What a pass does after its writes: the pages kept ready (restock_now, today_now,
    # warehouse_month_now), as of noon.
    store = Storage(path)
    refresh_kept(load_settings(None, {"DATABASE_PATH": str(path)}), store,
                 datetime.fromisoformat(NOON.replace("Z", "+00:00")))
    store.close()


def load_metadata() -> dict:
    return yaml.safe_load(METADATA.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    path = tmp_path_factory.mktemp("queries") / "mp.db"  # served as "mp"
    build_database(path)
    datasette = Datasette([str(path)], metadata=load_metadata())
    asyncio.run(datasette.invoke_startup())
    return datasette


@pytest.fixture(autouse=True)
def utc_machine(machine_in_utc):
    """The machine's clock is UTC and TIMEZONE is not set: the default zone must apply."""


def get(ds: Datasette, path: str):
    response = asyncio.run(ds.client.get(path))
    assert response.status_code == 200, response.text
    return response.json()


def query(ds: Datasette, name: str, at: str = NOON, **params) -> list[tuple]:
    """Run canned query `name` at the instant `at` (UTC); rows as tuples in column order, of the
    unit columns where the query also has money (this data has no prices: tests/test_seller_figures.py
    checks the money on data that does)."""
    qs = urlencode({"_shape": "objects", **params})
    with freeze_time(at):
        data = get(ds, f"/mp/{name}.json?{qs}")
    assert data.get("ok", True), data
    columns = UNIT_COLUMNS.get(name)
    return [tuple(row[c] for c in columns) if columns else tuple(row.values()) for row in data["rows"]]


def assert_each_group_asked_for_says_the_same(ds, name: str, at: str = NOON, **params) -> None:
    """Every group's rows of `name` with nothing asked for come per group (the per-group
    summaries); a group asked for by name comes per SKU (its SKUs' rows, looked up by key). The
    two must agree: the rows asked for are the group's rows of the whole answer."""
    rows = query(ds, name, at=at, **params)
    assert rows, (name, at, params)
    for alias in {row[0] for row in rows}:
        assert query(ds, name, at=at, alias=alias, **params) == [row for row in rows if row[0] == alias], (
            name, at, params, alias)


# --------------------------------------------------------------------------------------------
# today

TODAY_COLUMNS = ("alias", "wb_stock", "wb_ordered", "wb_bought", "wb_returned",
                 "ozon_stock", "ozon_ordered", "ozon_bought", "ozon_returned")
TODAY_MONEY = ("wb_ordered_rub", "wb_bought_rub", "wb_returned_rub", "wb_payout_rub",
               "ozon_ordered_rub", "ozon_bought_rub", "ozon_returned_rub", "ozon_payout_rub")

# Stock: wb Кронштейны = 1001 Коледино 18 + Электросталь 0 + 1002 4; ozon = 2001 37 + 5 + 3001 9.
# Ordered: wb o1 o2 o3 o5 (o4 cancelled); ozon 2 (0001-1) + 1 (1001-1), 0002-1 cancelled.
# Bought: wb S1 S2; ozon 0007-1 (2) + 1004-1 (1). Returned: wb R1; ozon ret-1 (ret-2 is FullReturn).
# Карточки ozon: 0008-1 was delivered at first sight (no day), so 0 bought.
# Пакеты 2 wb is 1006 (its SKU key beats its article CARD-B's alias Карточки).
# Unaliased after the aliases, by label: "3009" (no product row) then ZZ-NEW (wb 1009 + ozon
# 2009); AA-OLD (stock 0, nothing else) is left out.
TODAY_ROWS = [
    ("Кронштейны", 22, 4, 2, 1, 51, 3, 3, 1),
    ("Карточки", 9, 0, 0, 0, 12, 3, 0, 0),
    ("Пакеты 8", 6, 0, 0, 0, 0, 0, 0, 0),
    ("Пакеты 5", 0, 0, 0, 0, 0, 0, 0, 0),
    ("Пакеты 2", 3, 1, 1, 0, 6, 1, 0, 0),
    ("3009", 0, 0, 0, 0, 0, 4, 0, 0),
    ("ZZ-NEW", 5, 1, 0, 0, 0, 1, 0, 0),
]

# 27 November: nothing ordered yet, stock as now; "3009" has nothing and drops out.
NEXT_DAY_ROWS = [
    ("Кронштейны", 22, 0, 0, 0, 51, 0, 0, 0),
    ("Карточки", 9, 0, 0, 0, 12, 0, 0, 0),
    ("Пакеты 8", 6, 0, 0, 0, 0, 0, 0, 0),
    ("Пакеты 5", 0, 0, 0, 0, 0, 0, 0, 0),
    ("Пакеты 2", 3, 0, 0, 0, 6, 0, 0, 0),
    ("ZZ-NEW", 5, 0, 0, 0, 0, 0, 0, 0),
]


def test_today_columns(ds):
    with freeze_time(NOON):
        data = get(ds, "/mp/today.json?_shape=objects")
    assert tuple(data["columns"]) == TODAY_COLUMNS + TODAY_MONEY


def test_today(ds):
    assert query(ds, "today") == TODAY_ROWS  # as the pass kept it
    assert query(ds, "today", date=T) == TODAY_ROWS  # computed when asked
    assert query(ds, "today", period="day") == TODAY_ROWS


def test_today_reads_the_rows_kept_after_the_pass_only_while_nothing_was_written_since(tmp_path):
    path = tmp_path / "mp.db"
    build_database(path)
    ds = Datasette([str(path)], metadata=load_metadata())
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*), min(day), max(day) FROM today_now WHERE days = 1").fetchone() == (
        len(TODAY_ROWS), T, T)
    # The kept rows of each period are the rows computed for it.
    pages = {period: query(ds, "today", period=period) for period in ("", "week", "month")}
    with conn:
        conn.execute("DELETE FROM today_now")
    assert {period: query(ds, "today", period=period) for period in pages} == pages
    refresh_kept(load_settings(None, {"DATABASE_PATH": str(path)}), Storage(path),
                 datetime.fromisoformat(NOON.replace("Z", "+00:00")))
    # A kept figure made visible: read as kept without a filter, for its own period only;
    # computed with a filter.
    with conn:
        conn.execute("UPDATE today_now SET wb_ordered = 99 WHERE alias = 'Кронштейны' AND days = 1")
        conn.execute("UPDATE today_now SET wb_ordered = 77 WHERE alias = 'Кронштейны' AND days = 30")
    assert query(ds, "today")[0] == ("Кронштейны", 22, 99, 2, 1, 51, 3, 3, 1)
    assert query(ds, "today", period="day")[0] == ("Кронштейны", 22, 99, 2, 1, 51, 3, 3, 1)
    assert query(ds, "today", period="month")[0][:3] == ("Кронштейны", 22, 77)
    assert query(ds, "today", period="week") == pages["week"]
    assert query(ds, "today", marketplace="wb")[0][:3] == ("Кронштейны", 22, 4)
    # The next day, before a pass: computed, with nothing ordered yet.
    assert query(ds, "today", at="2026-11-26T21:00:01Z") == NEXT_DAY_ROWS
    # Any write to what today is made of empties it: o1 cancelled, one unit less.
    with conn:
        conn.execute("UPDATE orders SET is_cancelled = 1 WHERE order_id = 'o1'")
    assert conn.execute("SELECT count(*) FROM today_now").fetchone()[0] == 0
    assert query(ds, "today")[0] == ("Кронштейны", 22, 3, 2, 1, 51, 3, 3, 1)
    conn.close()
    # And a rebuild, which runs without the triggers.
    store = Storage(path)
    kept.refresh_today(load_settings(None, {"DATABASE_PATH": str(path)}), store,
                       datetime.fromisoformat(NOON.replace("Z", "+00:00")))
    assert store.db.execute("SELECT count(*) FROM today_now WHERE days = 1").fetchone()[0] == len(TODAY_ROWS)
    store.rebuild_summaries()
    assert store.db.execute("SELECT count(*) FROM today_now").fetchone()[0] == 0
    store.close()


def test_today_past_date_uses_stock_at_end_of_that_day(ds):
    # Stock at the end of 25 Nov: wb 1001 Коледино 20 (the later of two changes that day) +
    # Электросталь 0 (since 24 Nov) + 1002 4 = 24; ozon 2001 40 + 5, 3001 not there yet = 45.
    # Ordered: wb o11 (Кронштейны), o6 (Карточки; o10 cancelled); ozon 0005-1 2 (Пакеты 2),
    # 1003-1 1 (Пакеты 5). Bought: S3, 0005-1. Returned: ret-9 (type unknown counts).
    # ZZ-NEW and 3009 had nothing yet.
    assert query(ds, "today", date=Y) == [
        ("Кронштейны", 24, 1, 0, 0, 45, 0, 0, 0),
        ("Карточки", 9, 1, 1, 0, 12, 0, 0, 0),
        ("Пакеты 8", 6, 0, 0, 0, 0, 0, 0, 0),
        ("Пакеты 5", 0, 0, 0, 0, 0, 1, 0, 1),
        ("Пакеты 2", 0, 0, 0, 0, 6, 2, 2, 0),
    ]


def test_today_filter_by_alias_article_or_sku(ds):
    # Article KR-10: wb 1001 and ozon 2001, 3001; not wb 1002 (KR-20, aliased by its SKU).
    assert query(ds, "today", alias="KR-10") == [("Кронштейны", 18, 3, 2, 1, 51, 3, 3, 1)]
    assert query(ds, "today", alias="1002") == [("Кронштейны", 4, 1, 0, 0, 0, 0, 0, 0)]
    assert query(ds, "today", alias="Кронштейны") == [TODAY_ROWS[0]]
    assert query(ds, "today", alias="Пакеты 5") == [TODAY_ROWS[3]]
    assert query(ds, "today", alias="3009") == [TODAY_ROWS[5]]


# The week 20..26 Nov adds yesterday's figures: wb o11 (Кронштейны), o6 and S3 (Карточки);
# ozon 1003-1 and ret-9 (Пакеты 5), 0005-1 ordered 2 and bought 2 (Пакеты 2). Stock is still now.
WEEK_ROWS = [
    ("Кронштейны", 22, 5, 2, 1, 51, 3, 3, 1),
    ("Карточки", 9, 1, 1, 0, 12, 3, 0, 0),
    ("Пакеты 8", 6, 0, 0, 0, 0, 0, 0, 0),
    ("Пакеты 5", 0, 0, 0, 0, 0, 1, 0, 1),
    ("Пакеты 2", 3, 1, 1, 0, 6, 3, 2, 0),
    ("3009", 0, 0, 0, 0, 0, 4, 0, 0),
    ("ZZ-NEW", 5, 1, 0, 0, 0, 1, 0, 0),
]


def test_today_period(ds):
    assert query(ds, "today", period="day") == TODAY_ROWS
    assert query(ds, "today", period="week") == WEEK_ROWS
    # 28 Oct .. 26 Nov: nothing happened between 40 days ago (17 Oct, outside) and the week.
    assert query(ds, "today", period="month") == WEEK_ROWS
    assert query(ds, "today", period="Week") == WEEK_ROWS
    assert query(ds, "today", period="fortnight") == []


def test_today_filter_by_warehouse_and_marketplace(ds):
    # Тверь is Ozon only: 2001 (5), 2002 (12, ordered 3), 2003 (6, ordered 1 in 0003-1). The
    # CSV's aliases keep their rows; unaliased SKUs with nothing there drop out.
    assert query(ds, "today", warehouse="Тверь") == [
        ("Кронштейны", 0, 0, 0, 0, 5, 0, 0, 0),
        ("Карточки", 0, 0, 0, 0, 12, 3, 0, 0),
        ("Пакеты 8", 0, 0, 0, 0, 0, 0, 0, 0),
        ("Пакеты 5", 0, 0, 0, 0, 0, 0, 0, 0),
        ("Пакеты 2", 0, 0, 0, 0, 6, 1, 0, 0),
    ]
    # WB only: the Ozon columns are 0 and Ozon-only "3009" has nothing left.
    assert query(ds, "today", marketplace="wb") == [
        (alias, *wb, 0, 0, 0, 0) for alias, *wb in (row[:5] for row in TODAY_ROWS) if alias != "3009"
    ]
    # Коледино, WB: 1001 18 + 1002 4; o1 o2 o5; S1 S2; R1 (o3 shipped from Электросталь).
    assert query(ds, "today", warehouse="Коледино", alias="Кронштейны") == [
        ("Кронштейны", 22, 3, 2, 1, 0, 0, 0, 0),
    ]


def test_today_bad_date_gives_no_rows(ds):
    assert query(ds, "today", date="2026-02-30") == []
    assert query(ds, "today", date="yesterday") == []
    assert query(ds, "orders_by_warehouse", date="2026-11-26T00:00") == []
    assert query(ds, "history", date="26.11.2026") == []


@pytest.mark.parametrize("machine_tz", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_today_switches_at_moscow_midnight(ds, monkeypatch, machine_tz):
    monkeypatch.setenv("TZ", machine_tz)
    time.tzset()
    assert query(ds, "today", at="2026-11-26T20:59:59Z") == TODAY_ROWS      # 23:59:59 MSK
    assert query(ds, "today", at="2026-11-26T21:00:01Z") == NEXT_DAY_ROWS   # 00:00:01 MSK


def test_today_at_one_in_the_morning_is_the_moscow_date(ds):
    # 01:00 in Moscow on 27 Nov is still 26 Nov in UTC (and for SQLite's date('now')).
    at = "2026-11-26T22:00:00Z"
    with freeze_time(at):
        rows = get(ds, "/mp.json?_shape=array&sql=select+mp_today()+as+d,+mp_now()+as+n")
    assert rows == [{"d": "2026-11-27", "n": "2026-11-27T01:00:00+03:00"}]
    assert query(ds, "today", at=at) == NEXT_DAY_ROWS
    assert query(ds, "orders_by_warehouse", at=at) == []


# --------------------------------------------------------------------------------------------
# stock_by_warehouse, orders_by_warehouse

def test_stock_by_warehouse(ds):
    # wb before ozon, biggest warehouse first; zero stock (1001 Электросталь, Пакеты 5, AA-OLD)
    # is left out. ozon Хоругвино Кронштейны = ozon-1 2001 37 + ozon-2 3001 9.
    assert query(ds, "stock_by_warehouse") == [
        ("Кронштейны", "wb", "Коледино", 22),
        ("Кронштейны", "ozon", "Хоругвино", 46),
        ("Кронштейны", "ozon", "Тверь", 5),
        ("Карточки", "wb", "Коледино", 9),
        ("Карточки", "ozon", "Тверь", 12),
        ("Пакеты 8", "wb", "Коледино", 6),
        ("Пакеты 2", "wb", "Казань", 3),
        ("Пакеты 2", "ozon", "Тверь", 6),
        ("ZZ-NEW", "wb", "Коледино", 5),
    ]


def test_stock_by_warehouse_filters(ds):
    assert query(ds, "stock_by_warehouse", marketplace="ozon", warehouse="Тверь") == [
        ("Кронштейны", "ozon", "Тверь", 5),
        ("Карточки", "ozon", "Тверь", 12),
        ("Пакеты 2", "ozon", "Тверь", 6),
    ]
    assert query(ds, "stock_by_warehouse", alias="KR-20") == [("Кронштейны", "wb", "Коледино", 4)]
    assert query(ds, "stock_by_warehouse", alias="2001") == [
        ("Кронштейны", "ozon", "Хоругвино", 37),
        ("Кронштейны", "ozon", "Тверь", 5),
    ]



def test_stock_by_warehouse_per_group_says_what_each_group_asked_for_says(ds):
    """Every group's rows come from the per-group summary (alias_warehouse_stock); a group asked
    for by name comes per SKU from stock_current, its SKUs' keys looked up: they agree."""
    for params in ({}, {"marketplace": "ozon"}, {"warehouse": "Тверь"}, {"warehouse": "Коледино"}):
        assert_each_group_asked_for_says_the_same(ds, "stock_by_warehouse", **params)

def test_orders_by_warehouse(ds):
    # wb Кронштейны Коледино: o1 o2 (1001) + o5 (1002); o4 cancelled. Электросталь: o3.
    # ozon Хоругвино: 0001-1 (2) + 1001-1 (1); 0002-1 cancelled.
    expected = [
        ("Кронштейны", "wb", "Коледино", 3),
        ("Кронштейны", "wb", "Электросталь", 1),
        ("Кронштейны", "ozon", "Хоругвино", 3),
        ("Карточки", "ozon", "Тверь", 3),
        ("Пакеты 2", "wb", "Коледино", 1),
        ("Пакеты 2", "ozon", "Тверь", 1),
        ("3009", "ozon", "Хоругвино", 4),
        ("ZZ-NEW", "wb", "Коледино", 1),
        ("ZZ-NEW", "ozon", "Хоругвино", 1),
    ]
    assert query(ds, "orders_by_warehouse") == expected
    assert query(ds, "orders_by_warehouse", date=T) == expected


def test_orders_by_warehouse_other_days_and_filters(ds):
    assert query(ds, "orders_by_warehouse", date=Y) == [
        ("Кронштейны", "wb", "Коледино", 1),
        ("Карточки", "wb", "Коледино", 1),
        ("Пакеты 5", "ozon", "Хоругвино", 1),
        ("Пакеты 2", "ozon", "Тверь", 2),
    ]
    assert query(ds, "orders_by_warehouse", date=O) == [
        ("Кронштейны", "wb", "Коледино", 1),
        ("Кронштейны", "ozon", "Хоругвино", 5),
    ]
    assert query(ds, "orders_by_warehouse", marketplace="wb", warehouse="Коледино", alias="Кронштейны") == [
        ("Кронштейны", "wb", "Коледино", 3),
    ]
    assert query(ds, "orders_by_warehouse", alias="CARD-A") == [("Карточки", "ozon", "Тверь", 3)]


def test_orders_by_warehouse_period(ds):
    # The week adds o11 (Y, Коледино); 40 days ago (O) is outside even a month.
    expected = [
        ("Кронштейны", "wb", "Коледино", 4),
        ("Кронштейны", "wb", "Электросталь", 1),
        ("Кронштейны", "ozon", "Хоругвино", 3),
    ]
    assert query(ds, "orders_by_warehouse", alias="Кронштейны", period="week") == expected
    assert query(ds, "orders_by_warehouse", alias="Кронштейны", period="month") == expected
    assert query(ds, "orders_by_warehouse", period="year") == []


def test_orders_by_warehouse_per_group_says_what_each_group_asked_for_says(ds):
    """Every group's rows come from the per-group summary (alias_warehouse_days); a group asked
    for by name is read per SKU (daily_figures): they agree, warehouse by warehouse."""
    for params in ({}, {"date": Y}, {"period": "week"}, {"period": "month", "marketplace": "ozon"},
                   {"period": "month", "warehouse": "Коледино"}):
        assert_each_group_asked_for_says_the_same(ds, "orders_by_warehouse", **params)


# --------------------------------------------------------------------------------------------
# summary, today_vs_yesterday, by_warehouse

SUMMARY_COLUMNS = ("day", "wb_ordered", "wb_bought", "wb_returned", "wb_stock", "wb_buyout_pct",
                   "ozon_ordered", "ozon_bought", "ozon_returned", "ozon_stock", "ozon_buyout_pct",
                   "stock", "buyout_pct")

# Today: wb ordered o1 o2 o3 o5 o7 o8, bought S1 S2 S4, returned R1, stock 22 + 9 + 6 + 3 + 5;
# ozon ordered 3 + 3 + 1 + 4 + 1, bought 2 + 1, returned ret-1, stock 51 + 12 + 6.
# Buyout of the orders of the 30 days 28 Oct .. 26 Nov (SALE_ORDERS links sales to orders):
# wb bought o1 o6 o7, not bought o2 (R1) o4 o10 (cancelled), 4 on their way: 3 / 6 = 50 %;
# ozon bought 0005-1 (2) and one unit of 0001-1, not bought the other (ret-1 sent one of its 2
# back) and 0002-1 (1, cancelled): 3 / 5 = 60 %; both 6 / 11 = 54.5 %.
SUMMARY_NOON = (T, 6, 3, 1, 45, 50.0, 12, 3, 1, 69, 60.0, 114, 54.5)


def test_summary(ds):
    with freeze_time(NOON):
        data = get(ds, "/mp/summary.json?_shape=objects")
    assert set(SUMMARY_COLUMNS) | {"wb_ordered_rub", "ozon_bought_rub", "wb_in_transit"} <= set(data["columns"])
    assert query(ds, "summary") == [SUMMARY_NOON]
    # It is the `today` table added up.
    totals = [sum(column) for column in zip(*(row[1:] for row in TODAY_ROWS))]
    wb_stock, wb_ordered, wb_bought, wb_returned, oz_stock, oz_ordered, oz_bought, oz_returned = totals
    assert SUMMARY_NOON[1:5] == (wb_ordered, wb_bought, wb_returned, wb_stock)
    assert SUMMARY_NOON[6:10] == (oz_ordered, oz_bought, oz_returned, oz_stock)


def test_summary_filters_and_period(ds):
    # Коледино is WB only: o1 o2 o5 o7 o8; S1 S2; R1; 1001 18 + 1002 4 + 1003 9 + 1004 6 +
    # 1009 5; the week before: S3 of o6 o11. Ozon has nothing there, so no rate either.
    assert query(ds, "summary", warehouse="Коледино") == [(T, 5, 2, 1, 42, 50.0, 0, 0, 0, 0, None, 42, 50.0)]
    # A week: the WEEK_ROWS added up; the rate is still over the orders of 30 days.
    week = [sum(column) for column in zip(*(row[1:] for row in WEEK_ROWS))]
    assert query(ds, "summary", period="week") == [
        (T, week[1], week[2], week[3], week[0], 50.0, week[5], week[6], week[7], week[4], 60.0, 114, 54.5)]
    # Nothing matches: zeros, and no rate (nothing ordered), but still one row.
    assert query(ds, "summary", alias="no such thing") == [(T, 0, 0, 0, 0, None, 0, 0, 0, 0, None, 0, None)]
    assert query(ds, "summary", date="2026-13-01") == []
    assert query(ds, "summary", period="quarter") == []


def test_summary_at_one_in_the_morning_and_at_23_59_moscow(ds):
    # 23:59 MSK on the 26th: still the 26th (UTC 20:59).
    assert query(ds, "summary", at="2026-11-26T20:59:00Z") == [SUMMARY_NOON]
    # 01:00 MSK on the 27th (UTC still the 26th): a new day with nothing yet; the rate's 30 days
    # are now 29 Oct .. 27 Nov, which hold the same orders.
    assert query(ds, "summary", at="2026-11-26T22:00:00Z") == [
        ("2026-11-27", 0, 0, 0, 45, 50.0, 0, 0, 0, 69, 60.0, 114, 54.5)]


VS_COLUMNS = ("marketplace", "up_to", "ordered_today", "ordered_yesterday", "ordered_diff",
              "bought_today", "bought_yesterday", "bought_diff")
UNIT_COLUMNS = {
    "today": TODAY_COLUMNS, "summary": SUMMARY_COLUMNS, "today_vs_yesterday": VS_COLUMNS,
    "history": ("day", "alias", "marketplace", "ordered", "bought", "returned", "stock"),
    "orders_by_warehouse": ("alias", "marketplace", "warehouse", "ordered"),
    "by_warehouse": ("alias", "marketplace", "warehouse", "stock", "ordered", "bought", "returned"),
    "freshness": ("account", "label", "marketplace", "dataset", "status", "last_success_at",
                  "minutes_since_success", "last_error"),
}


def test_today_vs_yesterday(ds):
    with freeze_time(NOON):
        data = get(ds, "/mp/today_vs_yesterday.json?_shape=objects")
    assert tuple(data["columns"]) == VS_COLUMNS + (
        "ordered_rub_today", "ordered_rub_yesterday", "ordered_rub_diff",
        "bought_rub_today", "bought_rub_yesterday", "bought_rub_diff")
    # Orders are placed at 10:00 and sales happen at 12:00 (local) in this data. At 12:00:
    # yesterday wb o6 o11 and S3, ozon 0005-1 (2) + 1003-1 (1) and 0005-1 (2) had happened.
    assert query(ds, "today_vs_yesterday") == [
        ("wb", "12:00", 6, 2, 4, 3, 1, 2),
        ("ozon", "12:00", 12, 3, 9, 3, 2, 1),
    ]
    # At 11:00 yesterday's sales (12:00) had not happened yet.
    assert query(ds, "today_vs_yesterday", at="2026-11-26T08:00:00Z") == [
        ("wb", "11:00", 6, 2, 4, 3, 0, 3),
        ("ozon", "11:00", 12, 3, 9, 3, 0, 3),
    ]


@contextmanager
def minutes_kept_from(ds: Datasette, day: str | None):
    """recent_minutes kept from `day` on (None: kept for no day, as before a database's first
    pass), then as the fixture built it (no pass ran: kept for no day)."""
    store = Storage(Path(ds.databases["mp"].path))
    try:
        if day:
            store.keep_minutes_from(day)
        yield
    finally:
        with store.transaction():
            store.db.execute("DELETE FROM recent_minutes_floor")
            store.db.execute("DELETE FROM recent_minutes")
        store.close()


# Yesterday and today as kept per minute (from the day before yesterday on, as a pass keeps
# them), today kept and yesterday from the raw lines (a viewer a day behind the collector), and
# neither (no pass yet).
@pytest.mark.parametrize("kept_from", ["2026-11-24", "2026-11-26", None])
def test_today_vs_yesterday_filters(ds, kept_from):
    with minutes_kept_from(ds, kept_from):
        assert query(ds, "today_vs_yesterday", warehouse="Коледино") == [
            ("wb", "12:00", 5, 2, 3, 2, 1, 1),
            ("ozon", "12:00", 0, 0, 0, 0, 0, 0),
        ]
        assert query(ds, "today_vs_yesterday", marketplace="ozon", alias="Пакеты 2") == [
            ("ozon", "12:00", 1, 2, -1, 0, 2, -2),
        ]
        # 23:59:59 MSK: all of the 26th and the 25th up to 23:59; 00:00:01 on the 27th: nothing
        # on the 27th yet, nor on the 26th up to 00:00 (its orders were at 10:00).
        assert query(ds, "today_vs_yesterday", at="2026-11-26T20:59:59Z", warehouse="Коледино") == [
            ("wb", "23:59", 5, 2, 3, 2, 1, 1),
            ("ozon", "23:59", 0, 0, 0, 0, 0, 0),
        ]
        assert query(ds, "today_vs_yesterday", at="2026-11-26T21:00:01Z", warehouse="Коледино") == [
            ("wb", "00:00", 0, 0, 0, 0, 0, 0),
            ("ozon", "00:00", 0, 0, 0, 0, 0, 0),
        ]
        # 10:30 on the 27th: the 26th's orders of 10:00, not yet its buyouts of 12:00.
        assert query(ds, "today_vs_yesterday", at="2026-11-27T07:30:00Z", warehouse="Коледино") == [
            ("wb", "10:30", 0, 5, -5, 0, 0, 0),
            ("ozon", "10:30", 0, 0, 0, 0, 0, 0),
        ]


# alias, marketplace, warehouse, stock, ordered, bought, returned (today). Stock as in
# stock_by_warehouse, orders as in orders_by_warehouse; S1 S2 R1 at Коледино, S4 at Казань,
# 0007-1 and 1004-1 and ret-1 at Хоругвино. All-zero rows (Пакеты 5, AA-OLD) are left out.
BY_WAREHOUSE = [
    ("Кронштейны", "wb", "Коледино", 22, 3, 2, 1),
    ("Кронштейны", "wb", "Электросталь", 0, 1, 0, 0),
    ("Кронштейны", "ozon", "Хоругвино", 46, 3, 3, 1),
    ("Кронштейны", "ozon", "Тверь", 5, 0, 0, 0),
    ("Карточки", "wb", "Коледино", 9, 0, 0, 0),
    ("Карточки", "ozon", "Тверь", 12, 3, 0, 0),
    ("Пакеты 8", "wb", "Коледино", 6, 0, 0, 0),
    ("Пакеты 2", "wb", "Казань", 3, 0, 1, 0),
    ("Пакеты 2", "wb", "Коледино", 0, 1, 0, 0),
    ("Пакеты 2", "ozon", "Тверь", 6, 1, 0, 0),
    ("3009", "ozon", "Хоругвино", 0, 4, 0, 0),
    ("ZZ-NEW", "wb", "Коледино", 5, 1, 0, 0),
    ("ZZ-NEW", "ozon", "Хоругвино", 0, 1, 0, 0),
]


def test_by_warehouse(ds):
    assert query(ds, "by_warehouse") == BY_WAREHOUSE
    # The same figures as the `today` table, warehouse by warehouse.
    for alias, *figures in TODAY_ROWS:
        rows = [row for row in BY_WAREHOUSE if row[0] == alias]
        per_mp = {mp: [sum(r[i] for r in rows if r[1] == mp) for i in (3, 4, 5, 6)] for mp in ("wb", "ozon")}
        assert [*per_mp["wb"], *per_mp["ozon"]] == figures, alias


def test_by_warehouse_per_warehouse_adds_the_groups_up(ds):
    """by=warehouse: a row per marketplace and warehouse, the rows of the groups asked for added
    up (the dashboard «По складам»: a few dozen rows whatever the number of groups); with no group
    asked for, read from the per-warehouse summaries, which must say the same."""
    for params in ({}, {"marketplace": "ozon"}, {"alias": "Кронштейны"}, {"period": "week", "marketplace": "wb"},
                   {"date": Y}, {"date": Y, "period": "month"}, {"warehouse": "Тверь"}):
        per_group = query(ds, "by_warehouse", **params)
        per_warehouse = query(ds, "by_warehouse", by="warehouse", **params)
        expected = {}
        for alias, mp, warehouse, *figures in per_group:
            expected[mp, warehouse] = [a + b for a, b in zip(expected.get((mp, warehouse), [0, 0, 0, 0]), figures)]
        assert {(mp, w): list(f) for _, mp, w, *f in per_warehouse} == expected, params
        assert len(per_warehouse) == len(expected) < len(per_group) or params.get("alias"), params
        assert {row[0] for row in per_warehouse} == {params.get("alias") or "Итого"}, params
        # wb first, then each marketplace's biggest stock first
        assert per_warehouse == sorted(per_warehouse, key=lambda r: (r[1] != "wb", -r[3], -r[4], r[2] or "")), params


def test_by_warehouse_per_group_reads_what_each_group_asked_for_alone_says(ds):
    """With no group asked for, the rows per group come from the per-group summaries (the stock
    now less the changes since a past day, the period's units); asked for by name, a group's rows
    come per SKU from daily_figures and each key's stock history. The two must agree, today, on
    past days and over periods."""
    for params in ({}, {"date": Y}, {"date": O}, {"date": Y, "period": "week"}, {"period": "month"},
                   {"marketplace": "ozon", "date": Y}, {"warehouse": "Коледино", "date": Y}):
        if params.get("date") == O and not query(ds, "by_warehouse", **params):
            continue  # (nothing on that day)
        assert_each_group_asked_for_says_the_same(ds, "by_warehouse", **params)


LATER = "2027-03-26T09:00:00Z"  # 120 days after NOON: Y and O more than 90 days back


def test_today_at_a_warehouse_per_group_says_what_each_group_asked_for_says(ds):
    """At a warehouse with nothing else asked for, every group's row comes per group
    (alias_warehouse_days, alias_warehouse_stock and, for a past day, alias_warehouse_months); a
    group asked for by name there comes per SKU and key (daily_figures, each key's last change on
    or before the day). They must agree, on any day and period."""
    for warehouse in ("Коледино", "Тверь", "Хоругвино"):
        for at, params in ((NOON, {}), (NOON, {"date": Y}), (NOON, {"period": "month"}), (LATER, {"date": Y}),
                           (LATER, {"date": O, "period": "week"}), *((LATER, edge) for edge in MONTH_EDGES)):
            assert_each_group_asked_for_says_the_same(ds, "today", at=at, warehouse=warehouse, **params)


def test_summary_at_a_warehouse_is_its_skus_added_up(ds):
    """At a warehouse with nothing else asked for (the dashboard's warehouse filter) the row
    comes per account (account_warehouse_days, alias_warehouse_stock); each of the warehouse's
    SKUs asked for alone comes per SKU and key (daily_figures, each key's last change on or
    before the day). Every figure that adds up must: units, money, stock, orders on their way."""
    with sqlite3.connect(ds.databases["mp"].path) as conn:
        skus = [str(sku) for (sku,) in conn.execute(
            "SELECT sku FROM stock_current UNION SELECT sku FROM daily_figures ORDER BY 1")]
    additive = [name for name in SUMMARY_COLUMNS + ("wb_ordered_rub", "wb_bought_rub", "wb_payout_rub",
                                                    "ozon_ordered_rub", "ozon_returned_rub", "wb_in_transit",
                                                    "ozon_in_transit")
                if not name.endswith("_pct") and name != "day"]

    def figures(at, **params):
        qs = urlencode({"_shape": "objects", **params})
        with freeze_time(at):
            rows = get(ds, f"/mp/summary.json?{qs}")["rows"]
        assert len(rows) == 1, params
        return [rows[0][name] for name in additive]

    for warehouse in ("Коледино", "Тверь", "Хоругвино"):
        assert any(figures(NOON, warehouse=warehouse)), warehouse
        for at, params in ((NOON, {}), (NOON, {"date": Y}), (NOON, {"period": "week"}),
                           (NOON, {"period": "month", "date": Y}), (NOON, {"date": "2026-09-30"}),  # (before it all)
                           (LATER, {"date": Y}), (LATER, {"date": O, "marketplace": "ozon"})):
            whole = figures(at, warehouse=warehouse, **params)
            per_sku = [figures(at, warehouse=warehouse, alias=sku, **params) for sku in skus]
            assert whole == [round(sum(column), 2) for column in zip(*per_sku)], (warehouse, at, params)


# Days either side of a month's turn and early in one: by_warehouse adds the months before up
# (alias_warehouse_months) or takes the later ones off the stock now, and the month's days.
MONTH_EDGES = ({"date": "2026-10-01"}, {"date": "2026-10-31"}, {"date": "2026-11-01"}, {"date": "2026-11-05"})


def test_a_day_months_back_is_read_from_the_per_group_summaries_and_says_the_same(ds):
    """However far back a day is, the rows per group come from the per-group summaries (the
    stock now less the changes since, or, nearer the first day, the changes up to it added up);
    they must say what the same day said while recent, and what each group asked for by name
    says (per SKU and key: each key's last change on or before the day)."""
    for name in ("today", "summary", "by_warehouse"):
        for params in ({"date": Y}, {"date": O}, {"date": Y, "period": "week"}, {"marketplace": "ozon", "date": Y},
                       {"date": "2026-11-20"}, {"date": "2026-09-30"}, *MONTH_EDGES):
            assert query(ds, name, at=LATER, **params) == query(ds, name, **params), (name, params)
    for name in ("today", "by_warehouse"):
        for params in ({"date": Y}, {"date": Y, "period": "week"}, *MONTH_EDGES):
            assert_each_group_asked_for_says_the_same(ds, name, at=LATER, **params)


def test_history_at_a_warehouse_ending_on_a_past_day_says_what_the_longer_window_to_today_says(ds):
    """At a warehouse the stock comes as it was at the end of `date` (each key's last change on
    or before it) and the window's moves alone are read; ending today, as the stock now less the
    changes since. The days they share must agree; the window is at most 90 days."""
    for warehouse in ("Коледино", "Тверь", "Хоругвино"):
        to_today = query(ds, "history", warehouse=warehouse, days="10")
        assert any(row[4] for row in to_today), warehouse  # some stock in the window
        to_yesterday = query(ds, "history", warehouse=warehouse, days="9", date=Y)
        shown = {(row[1], row[2]) for row in to_yesterday}
        assert to_yesterday == [row for row in to_today if row[0] <= Y and (row[1], row[2]) in shown], warehouse
        # a group shown only for the longer window has nothing before today
        assert not any(any(row[3:]) for row in to_today if row[0] <= Y and (row[1], row[2]) not in shown), warehouse
        assert query(ds, "history", warehouse=warehouse, days="366") == query(ds, "history", warehouse=warehouse,
                                                                                days="90")


def test_history_at_a_warehouse_per_group_says_what_each_group_asked_for_says(ds):
    """At a warehouse, every group's days come from the per-group summary (alias_warehouse_days);
    a group asked for by name is read per SKU (daily_figures): money included, they agree."""
    for warehouse in ("Коледино", "Тверь", "Хоругвино"):
        for params in ({"days": "30"}, {"days": "14", "date": Y}, {"days": "30", "period": "week"}):
            rows = query(ds, "history", warehouse=warehouse, **params)
            assert rows, (warehouse, params)
            for alias in {row[1] for row in rows}:
                assert query(ds, "history", warehouse=warehouse, alias=alias, **params) == [
                    row for row in rows if row[1] == alias], (warehouse, params, alias)


def test_by_warehouse_filters_and_period(ds):
    assert query(ds, "by_warehouse", marketplace="wb", alias="Кронштейны") == BY_WAREHOUSE[:2]
    assert query(ds, "by_warehouse", warehouse="Тверь", marketplace="ozon") == [
        row for row in BY_WAREHOUSE if row[2] == "Тверь"]
    # A week at Тверь adds 0005-1 (ordered 2, bought 2) to Пакеты 2.
    assert query(ds, "by_warehouse", warehouse="Тверь", period="week", alias="PAK-2") == [
        ("Пакеты 2", "ozon", "Тверь", 6, 3, 2, 0)]
    # Yesterday: stock at the end of the 25th (wb 1001 Коледино 20 + 1002 4).
    assert query(ds, "by_warehouse", date=Y, alias="Кронштейны", marketplace="wb") == [
        ("Кронштейны", "wb", "Коледино", 24, 1, 0, 0)]


# --------------------------------------------------------------------------------------------
# history


def expand(first_day: str, days: int, stock_runs: list[tuple[str, int]], flows: dict[str, tuple]):
    """Day-by-day (day, ordered, bought, returned, stock) from hand-written figures.

    stock_runs: [(from_day, stock), ...] ascending: the stock from that day on (0 before the
    first); flows: {day: (ordered, bought, returned)}, other days 0.
    """
    rows, start = [], date.fromisoformat(first_day)
    for i in range(days):
        day = (start + timedelta(days=i)).isoformat()
        stock = 0
        for from_day, value in stock_runs:
            if from_day <= day:
                stock = value
        rows.append((day, *flows.get(day, (0, 0, 0)), stock))
    return rows


def history_rows(first_day: str, days: int, groups: list[tuple]) -> list[tuple]:
    """Rows in the query's order (the newest day first, then group order) for [(alias, marketplace,
    runs, flows)]."""
    per_group = [
        [(day, alias, mp, o, b, r, s) for day, o, b, r, s in expand(first_day, days, runs, flows)]
        for alias, mp, runs, flows in groups
    ]
    return [row for day_rows in reversed(list(zip(*per_group))) for row in day_rows]


# Last 14 days to 26 Nov: 13..26 Nov. Every group with anything in the window, in alias order,
# wb before ozon; AA-OLD (stock 0 all along) is left out.
HISTORY_14 = [
    # wb 1001 Коледино 30 (1 Nov), 25 (20th), 20 (25th, the later change), 18 (26th);
    # 1001 Электросталь 7 (15th), 0 (24th); 1002 4 all along.
    ("Кронштейны", "wb",
     [("2026-11-13", 34), ("2026-11-15", 41), ("2026-11-20", 36), ("2026-11-24", 29), (Y, 24), (T, 22)],
     {Y: (1, 0, 0), T: (4, 2, 1)}),
    # ozon-1 2001 Хоругвино 40, 37 (26th); Тверь 5 (20th); ozon-2 3001 9 (26th).
    ("Кронштейны", "ozon", [("2026-11-13", 40), ("2026-11-20", 45), (T, 51)], {T: (3, 3, 1)}),
    ("Карточки", "wb", [("2026-11-13", 10), (Y, 9)], {Y: (1, 1, 0)}),
    ("Карточки", "ozon", [("2026-11-13", 12)], {T: (3, 0, 0)}),  # 12 since 12 Nov, the day before
    ("Пакеты 8", "wb", [("2026-11-13", 6)], {}),
    ("Пакеты 5", "ozon", [("2026-11-13", 1), (Y, 0)], {Y: (1, 0, 1)}),
    ("Пакеты 2", "wb", [(T, 3)], {T: (1, 1, 0)}),
    ("Пакеты 2", "ozon", [("2026-11-13", 8), (Y, 6)], {Y: (2, 2, 0), T: (1, 0, 0)}),
    ("3009", "ozon", [], {T: (4, 0, 0)}),
    ("ZZ-NEW", "wb", [(T, 5)], {T: (1, 0, 0)}),
    ("ZZ-NEW", "ozon", [], {T: (1, 0, 0)}),
]


def test_history_default_14_days(ds):
    expected = history_rows("2026-11-13", 14, HISTORY_14)
    assert len(expected) == 14 * 11
    assert query(ds, "history") == expected
    assert query(ds, "history", date=T, days=14) == expected
    assert query(ds, "history", days="") == expected


def test_history_ending_yesterday(ds):
    # 12..25 Nov. Пакеты 2 wb had nothing before the 26th, so only ozon: 2003 Тверь first seen
    # on the 13th (8), 6 on the 25th.
    assert query(ds, "history", date=Y, alias="Пакеты 2") == history_rows(
        "2026-11-12", 14, [("Пакеты 2", "ozon", [("2026-11-13", 8), (Y, 6)], {Y: (2, 2, 0)})]
    )


def test_history_90_days(ds):
    # 29 Aug .. 26 Nov. wb Кронштейны: 1002 4 from 1 Oct, 1001 Коледино 30 from 1 Nov, ...;
    # the orders and sale of 40 days ago (17 Oct) are in.
    rows = query(ds, "history", days=90, alias="Кронштейны", marketplace="wb")
    assert rows == history_rows("2026-08-29", 90, [(
        "Кронштейны", "wb",
        [("2026-10-01", 4), ("2026-11-01", 34), ("2026-11-15", 41), ("2026-11-20", 36),
         ("2026-11-24", 29), (Y, 24), (T, 22)],
        {O: (1, 1, 0), Y: (1, 0, 0), T: (4, 2, 1)},
    )])


def test_history_30_days(ds):
    # 28 Oct .. 26 Nov: 2001's order of 17 Oct (5) is outside; Хоругвино 40 from 1 Nov.
    rows = query(ds, "history", days=30, alias="KR-10", marketplace="ozon")
    assert rows == history_rows("2026-10-28", 30, [
        ("Кронштейны", "ozon", [("2026-11-01", 40), ("2026-11-20", 45), (T, 51)], {T: (3, 3, 1)}),
    ])


def regroup(rows: list[tuple], last_day: str, period_days: int, by_marketplace: bool) -> list[tuple]:
    """history rows per day -> per period (counted back from last_day) and/or per marketplace,
    worked out in Python from the per-day figures."""
    last = date.fromisoformat(last_day)
    groups: dict[tuple, list] = {}
    order: list[tuple] = []
    for day, alias, mp, ordered, bought, returned, stock in rows:
        period_no = (last - date.fromisoformat(day)).days // period_days
        key = (period_no, "Итого" if by_marketplace else alias, mp)
        if key not in groups:
            groups[key] = [day, key[1], mp, 0, 0, 0, {}]
            order.append(key)
        g = groups[key]
        g[0] = min(g[0], day)
        g[3] += ordered
        g[4] += bought
        g[5] += returned
        g[6][day] = g[6].get(day, 0) + stock
    result = [(*groups[k][:6], groups[k][6][max(groups[k][6])]) for k in order]
    if by_marketplace:  # the newest period first, then wb before ozon
        result.sort(key=lambda row: (date.fromisoformat(row[0]).toordinal() * -1, row[2] != "wb"))
    return result


def test_history_by_period(ds):
    daily = history_rows("2026-11-13", 14, HISTORY_14)
    week = query(ds, "history", period="week")
    assert week == regroup(daily, T, 7, False)
    assert len(week) == 2 * 11
    # 13..19 Nov for wb Кронштейны: stock at the end of the 19th is 41; 20..26: 22.
    assert [row for row in week if row[1:3] == ("Кронштейны", "wb")] == [
        ("2026-11-20", "Кронштейны", "wb", 5, 2, 1, 22),
        ("2026-11-13", "Кронштейны", "wb", 0, 0, 0, 41),
    ]
    # 30-day periods in a 14-day window: one period, its first day the window's.
    assert query(ds, "history", period="month") == regroup(daily, T, 30, False)
    assert query(ds, "history", period="never") == []


def test_history_by_marketplace(ds):
    daily = history_rows("2026-11-13", 14, HISTORY_14)
    totals = query(ds, "history", by="marketplace")
    assert totals == regroup(daily, T, 1, True)
    assert totals[:2] == [(T, "Итого", "wb", 6, 3, 1, 45), (T, "Итого", "ozon", 12, 3, 1, 69)]  # today first
    # 90 days per alias would pass Datasette's default 1000-row cap here: one marketplace at a time.
    for mp in ("wb", "ozon"):
        assert query(ds, "history", by="marketplace", period="week", days=90, marketplace=mp) == regroup(
            query(ds, "history", days=90, marketplace=mp), T, 7, True)
    assert query(ds, "history", by="sku") == []


def test_history_filter_by_warehouse(ds):
    # Тверь: ozon 2001 5 from the 20th; 2002 12 (ordered 3 today); 2003 8 from the 13th, 6
    # from the 25th, 0005-1 ordered 2 and bought 2 on the 25th, 0003-1 1 today.
    assert query(ds, "history", warehouse="Тверь") == history_rows("2026-11-13", 14, [
        ("Кронштейны", "ozon", [("2026-11-20", 5)], {}),
        ("Карточки", "ozon", [("2026-11-13", 12)], {T: (3, 0, 0)}),
        ("Пакеты 2", "ozon", [("2026-11-13", 8), (Y, 6)], {Y: (2, 2, 0), T: (1, 0, 0)}),
    ])


# --------------------------------------------------------------------------------------------
# days_of_cover


def test_days_of_cover(ds):
    # Ordered over the 14 complete days 12..25 Nov (today's orders are not in):
    # wb Кронштейны o11 = 1 -> 22 / (1/14) = 308; wb Карточки o6 = 1 -> 9 * 14 = 126;
    # ozon Пакеты 5 1 with stock 0 -> 0; ozon Пакеты 2 2 -> 6 * 14 / 2 = 42.
    # Nothing ordered: NULL. Neither stock nor orders (3009, ZZ-NEW ozon): no row.
    assert query(ds, "days_of_cover") == [
        ("Кронштейны", "wb", 22, 1, 0.07, 308.0),
        ("Кронштейны", "ozon", 51, 0, 0.0, None),
        ("Карточки", "wb", 9, 1, 0.07, 126.0),
        ("Карточки", "ozon", 12, 0, 0.0, None),
        ("Пакеты 8", "wb", 6, 0, 0.0, None),
        ("Пакеты 5", "ozon", 0, 1, 0.07, 0.0),
        ("Пакеты 2", "wb", 3, 0, 0.0, None),
        ("Пакеты 2", "ozon", 6, 2, 0.14, 42.0),
        ("ZZ-NEW", "wb", 5, 0, 0.0, None),
    ]


def test_days_of_cover_90_days(ds):
    # 28 Aug .. 25 Nov: wb o9 (17 Oct) + o11 = 2 -> 22 * 90 / 2 = 990; ozon 0006-1 (5) -> 51 * 90 / 5.
    assert query(ds, "days_of_cover", days=90, alias="Кронштейны") == [
        ("Кронштейны", "wb", 22, 2, 0.02, 990.0),
        ("Кронштейны", "ozon", 51, 5, 0.06, 918.0),
    ]


def test_days_of_cover_by_warehouse(ds):
    # Тверь: 2003's 0005-1 (2 on the 25th) against stock 6 -> 42 days; the rest has no orders.
    assert query(ds, "days_of_cover", warehouse="Тверь") == [
        ("Кронштейны", "ozon", 5, 0, 0.0, None),
        ("Карточки", "ozon", 12, 0, 0.0, None),
        ("Пакеты 2", "ozon", 6, 2, 0.14, 42.0),
    ]



def test_days_of_cover_per_group_says_what_each_group_asked_for_says(ds):
    """With no group asked for, a row per group comes from the per-group summaries (alias_days and
    alias_stock, at a warehouse alias_warehouse_days and alias_warehouse_stock); a group asked for
    by name comes per SKU (sku_days and sku_stock, at a warehouse daily_figures and stock_current):
    they agree, over any window and at any warehouse."""
    for params in ({}, {"days": 90}, {"marketplace": "ozon"}, {"warehouse": "Тверь"},
                   {"warehouse": "Коледино", "days": 90}, {"warehouse": "Казань", "days": 7}):
        assert_each_group_asked_for_says_the_same(ds, "days_of_cover", **params)


def test_alias_warehouses_on_a_past_day_reads_its_period_and_the_last_14_days(ds):
    """▸ on a past day: the period's orders per warehouse (as orders_by_warehouse says them) and
    the demand of the 14 complete days before today (as days_of_cover says it at each warehouse),
    not the days between."""
    seen = 0
    for alias in ("Кронштейны", "Карточки", "Пакеты 2"):
        for params in ({}, {"date": O}, {"date": O, "period": "month"}, {"date": Y, "period": "week"}):
            rows = query(ds, "alias_warehouses", alias=alias, **params)
            ordered = {(mp, w): n for _, mp, w, n in query(ds, "orders_by_warehouse", alias=alias, **params)}
            assert {(mp, w): n for mp, w, _, n, _, _ in rows if n} == ordered, (alias, params)
            for mp, w, _, _, avg, _ in rows:
                cover = [row for row in query(ds, "days_of_cover", alias=alias, warehouse=w or "") if row[1] == mp]
                assert avg == (cover[0][4] if cover else 0), (alias, params, w)
                seen += avg > 0
            seen += len(ordered)
    assert seen

# --------------------------------------------------------------------------------------------
# freshness


def test_freshness(ds):
    # At 12:00 MSK. wb-1 stocks: last run failed, last success 10:00:30 -> 119 whole minutes.
    # ozon-1 stocks finished 08:30 UTC = 11:30 MSK -> 30. wb-1 sales: ok again, so its earlier
    # error no longer shows. ozon-2: never fetched.
    assert query(ds, "freshness") == [
        ("wb-1", "WB основной", "wb", "stocks", "failed", "2026-11-26T10:00:30+03:00", 119,
         "wb-1 stocks /api/analytics/v1/stocks-report/wb-warehouses: HTTP 500"),
        ("wb-1", "WB основной", "wb", "orders", "ok", "2026-11-26T11:00:20+03:00", 59, None),
        ("wb-1", "WB основной", "wb", "sales", "ok", "2026-11-26T11:00:30+03:00", 59, None),
        ("ozon-1", "Ozon 1", "ozon", "stocks", "ok", "2026-11-26T08:30:00+00:00", 30, None),
        ("ozon-1", "Ozon 1", "ozon", "orders", "failed", None, None, "ozon-1 orders /v3/posting/fbo/list: HTTP 403"),
        ("ozon-1", "Ozon 1", "ozon", "sales", None, None, None, None),
        ("ozon-2", "Ozon 2", "ozon", "stocks", None, None, None, None),
        ("ozon-2", "Ozon 2", "ozon", "orders", None, None, None, None),
        ("ozon-2", "Ozon 2", "ozon", "sales", None, None, None, None),
    ]


# --------------------------------------------------------------------------------------------
# The metadata as a whole


def test_design_lists_the_same_queries():
    """QUERY_COLUMNS is the Viewer table of DESIGN.md (kept outside the repository)."""
    if not DESIGN.exists():
        pytest.skip("DESIGN.md not found")
    viewer = DESIGN.read_text(encoding="utf-8").split("### Viewer", 1)[1]
    listed = {
        name: re.findall(r"`(\w+)`", columns)
        for name, columns in re.findall(r"^\| `(\w+)` \|[^|]*\|([^|]*)\|$", viewer, re.M)
    }
    assert listed == QUERY_COLUMNS


def test_every_design_query_exists_with_its_columns(ds):
    queries = load_metadata()["databases"]["mp"]["queries"]
    assert set(QUERY_COLUMNS) <= set(queries)
    for name, required in QUERY_COLUMNS.items():
        assert queries[name].get("title") and queries[name].get("description"), name
        with freeze_time(NOON):
            data = get(ds, f"/mp/{name}.json?_shape=objects")
        assert set(required) <= set(data["columns"]), (name, data["columns"])


def test_no_writable_query():
    metadata = load_metadata()
    for database in metadata["databases"].values():
        for name, canned in database.get("queries", {}).items():
            assert isinstance(canned, dict), name
            assert not canned.get("write"), name
            # (replace(...), the string function, writes nothing; REPLACE INTO would)
            assert not re.search(r"\b(insert|update|delete|create|drop|alter|attach|pragma)\b|\breplace\b(?!\s*\()",
                                 re.sub(r"--[^\n]*", "", canned["sql"]), re.I), name


def test_tables_and_columns_are_described(ds):
    tables = load_metadata()["databases"]["mp"]["tables"]
    assert tables["watermarks"]["hidden"] is True
    conn = sqlite3.connect(ds.databases["mp"].path)
    for table in ["orders", "sales", "stock", "stock_current", "products", "accounts", "runs",
                  "fetch_log", "sku_aliases"]:
        meta = tables[table]
        assert meta.get("title") and meta.get("description"), table
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        assert set(columns) <= set(meta.get("columns", {})), (table, set(columns) - set(meta["columns"]))
    conn.close()


def count_steps(path: Path, sql: str, params: dict) -> tuple[int, list]:
    """(SQLite VM instructions in tens that running `sql` takes, its rows)."""
    conn = sqlite3.connect(path)
    datasette_plugin.prepare_connection(conn)
    steps = 0

    def tick():
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(tick, 10)
    rows = conn.execute(sql, params).fetchall()
    conn.close()
    return steps, rows


def test_queries_do_not_read_the_whole_history(ds, tmp_path):
    """Old history outside the asked window costs nothing: the `day` indexes and stock_current
    are used, not a pass over every order, sale or stock change ever stored."""
    padded = tmp_path / "mp.db"
    padded.write_bytes(Path(ds.databases["mp"].path).read_bytes())
    conn = sqlite3.connect(padded)
    with conn:  # a year before everything else: 3000 orders, 3000 sales, 3000 stock changes
        days = [(date(2025, 1, 1) + timedelta(days=i % 300)).isoformat() for i in range(3000)]
        conn.executemany(
            """INSERT INTO orders (account, order_id, sku, warehouse, ordered_at, day, status, quantity)
               VALUES ('wb-1', 'old' || ?, 1001, 'Коледино', ?, ?, 'ordered', 1)""",
            [(i, d, d) for i, d in enumerate(days)])
        conn.executemany(
            """INSERT INTO sales (account, kind, sale_id, sku, sold_at, day, quantity)
               VALUES ('ozon-1', 'sale', 'old' || ?, 2001, ?, ?, 1)""",
            [(i, d, d) for i, d in enumerate(days)])
        # Older than every stored change of the key and 0 (as before its first row), so no
        # figure moves.
        conn.executemany(
            """INSERT INTO stock (account, sku, size, warehouse, quantity, observed_at, day)
               VALUES ('wb-1', 1002, '5002', 'Коледино', 0, ?, ?)""",
            [(d, d) for d in days])
    conn.close()
    store = Storage(padded)  # and the pages kept again, as the pass that wrote them would
    refresh_kept(load_settings(None, {"DATABASE_PATH": str(padded)}), store,
                 datetime.fromisoformat(NOON.replace("Z", "+00:00")))
    store.close()
    queries = load_metadata()["databases"]["mp"]["queries"]
    params = {"date": "", "alias": "", "marketplace": "", "warehouse": "", "days": "", "period": "", "by": "",
              "soon": "", "top": "", "_page_rows": "", "_page_offset": ""}  # (the HTML page's: blank is all)
    with freeze_time(NOON):
        for name in queries:
            for extra in ({}, {"date": Y}, {"days": "90"}, {"period": "month"}, {"by": "marketplace"},
                          {"alias": "Кронштейны"}, {"alias": "KR-10", "period": "week"}):
                sql, run_params = queries[name]["sql"], {**params, **extra}
                before, rows_before = count_steps(Path(ds.databases["mp"].path), sql, run_params)
                after, rows_after = count_steps(padded, sql, run_params)
                assert rows_after == rows_before, (name, extra)
                assert after <= before * 1.05 + 10, (name, extra, before, after)


# The planner's statistics of the reference seller's year (`make bench`'s database after the
# collector's daily ANALYZE): with them, a small database is planned as the big one is.
YEAR_STATISTICS = [
    ("accounts", "sqlite_autoindex_accounts_1", "4 1"),
    ("alias_days", "alias_days", "352298 963 241 1"),
    ("alias_months", "alias_months", "12807 986 247 1"),
    ("alias_warehouse_days", "alias_warehouse_days", "3364599 9193 2299 10 1"),
    ("alias_warehouse_first_days", "alias_warehouse_first_days", "16100 2684 1789 16 1"),
    ("alias_warehouse_months", "alias_warehouse_months", "161423 12418 3105 13 1"),
    ("marketplace_alias_warehouse_days", "marketplace_alias_warehouse_days", "2340000 54419 54419 172 1"),
    ("daily_figures", "daily_figures", "15367544 41988 10497 6 1"),
    # (orders_day and sales_day as schema 31's ANALYZE finds them: a SKU a few lines of a day)
    ("orders", "orders_day", "13688138 37400 9350 6"),
    ("orders", "sqlite_autoindex_orders_1", "13688138 3422035 1 1"),
    ("sales", "sales_order", "11611348 2902837 2 1"),
    ("sales", "sales_day", "11611348 31812 7953 6"),
    ("sales", "sqlite_autoindex_sales_1", "11611348 2902837 1451419 1 1"),
    # (sales_undated as schema 34's ANALYZE found it with 445,349 undated sales: an Ozon backfill)
    ("sales", "sales_undated", "445349 148450 148450 2 1"),
    ("sku_days", "sku_days", "2663666 7278 1820 1"),
    ("stock", "stock_key_day", "14918950 3729738 1990 1421 126 3"),
    ("stock_current", "stock_current_warehouse", "118500 3823"),
    ("stock_current", "sqlite_autoindex_stock_current_1", "118500 29625 16 12 1"),
]
def plan_as_at_a_year(conn: sqlite3.Connection, tables: tuple[str, ...] | None = None) -> None:
    """Give the database the planner's statistics of the year (YEAR_STATISTICS), of `tables` or
    of all (then the other tables have none)."""
    conn.execute("ANALYZE")
    year = [row for row in YEAR_STATISTICS if tables is None or row[0] in tables]
    with conn:
        if tables is None:
            conn.execute("DELETE FROM sqlite_stat1")
        else:
            conn.execute(f"DELETE FROM sqlite_stat1 WHERE tbl IN ({', '.join('?' * len(tables))})", tables)
        conn.executemany("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", year)


HISTORY_TABLES = ("orders", "sales", "stock", "daily_figures", "sku_days", "alias_days", "alias_warehouse_days",
                  "marketplace_alias_days", "account_warehouse_days", "alias_warehouse_months",
                  "alias_months", "marketplace_alias_warehouse_days")


def test_planned_as_at_a_year_no_query_reads_a_history_table_whole(tmp_path):
    """No canned query scans a table that grows with the history, or builds a Bloom filter over
    one (SQLite reads the whole table to build it: a group's warehouses took 1.1 s at a year
    that way, its 43 rows need 7 ms). Only the accounts (a few rows) may be filtered so."""
    path = tmp_path / "mp.db"
    build_database(path)
    with closing(sqlite3.connect(path)) as conn:
        plan_as_at_a_year(conn)
    conn = sqlite3.connect(path)  # statistics are read when a connection opens
    datasette_plugin.prepare_connection(conn)
    whole = re.compile(rf"^SCAN ({'|'.join(HISTORY_TABLES)})\b")
    for name, canned in load_metadata()["databases"]["mp"]["queries"].items():
        for extra in ({}, {"alias": "Кронштейны"}, {"date": Y}, {"days": "90"}, {"period": "month"},
                      {"warehouse": "Коледино"}, {"by": "marketplace"}):
            params = {p: extra.get(p, "") for p in [*canned.get("params", []), "_page_rows", "_page_offset"]}
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {canned['sql']}", params)]
            assert not [step for step in plan if whole.match(step)
                        or ("BLOOM FILTER ON" in step and not step.endswith("(account=?)"))], (name, extra, plan)
    conn.close()


def test_plugin_functions(monkeypatch):
    with freeze_time("2026-11-26T14:00:01Z"):
        assert sqlfunctions.mp_today() == T
        monkeypatch.setenv("TIMEZONE", "Asia/Vladivostok")  # UTC+10: already the 27th
        assert sqlfunctions.mp_today() == "2026-11-27"
        assert sqlfunctions.mp_now() == "2026-11-27T00:00:01+10:00"
        assert sqlfunctions.mp_day("") == "2026-11-27"
        monkeypatch.setenv("TIMEZONE", "")  # empty counts as not set
        assert sqlfunctions.mp_now() == "2026-11-26T17:00:01+03:00"
    assert sqlfunctions.mp_day("2026-03-01") == "2026-03-01"
    assert sqlfunctions.mp_day("2026-3-1") is None
    assert sqlfunctions.mp_day("20260301") is None
    assert sqlfunctions.mp_date_add("2026-03-01", -1) == "2026-02-28"
    assert sqlfunctions.mp_date_add("2026-12-31", "1") == "2027-01-01"
    assert sqlfunctions.mp_date_add("nonsense", 1) is None
    assert [sqlfunctions.mp_period_days(v) for v in (None, "", "day", " WEEK ", "month", "7", "год")] == [
        1, 1, 1, 7, 30, None, None]


def test_balances_shows_each_accounts_latest_figures_in_roubles(ds):
    with freeze_time(NOON):
        rows = get(ds, "/mp/balances.json?_shape=objects")["rows"]
    shown = [(r["account"], r["current_rub"], r["for_withdraw_rub"], r["opening_rub"], r["accrued_rub"],
              r["paid_rub"], r["closing_rub"], r["changed_at"]) for r in rows]
    assert shown == [("wb-1", 12345.01, 9876.01, None, None, None, None, "2026-11-26T10:00:00+03:00"),
                     ("ozon-1", None, None, 5000.0, 123.45, 1000.0, 4123.45, "2026-11-26T10:00:00+03:00")]
