"""The viewer's canned queries (metadata.yml) and SQL functions (collector/datasette_plugin.py).

A database is built from schema.sql with hand-made rows, served by Datasette itself, and every
canned query is compared row for row with figures worked out by hand (in the comments next to
the data). "Today" is 2026-11-26 in Moscow unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from datasette.app import Datasette
from freezegun import freeze_time

from collector import datasette_plugin

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

SALES = [  # account, kind, sale_id, sku, day, quantity, return_type
    ("wb-1", "sale", "S1", 1001, T, 1, None),
    ("wb-1", "sale", "S2", 1001, T, 1, None),
    ("wb-1", "return", "R1", 1001, T, 1, None),
    ("wb-1", "sale", "S3", 1003, Y, 1, None),
    ("wb-1", "sale", "S4", 1006, T, 1, None),
    ("wb-1", "sale", "S5", 1001, O, 1, None),
    ("ozon-1", "sale", "0007-1", 2001, T, 2, None),
    ("ozon-1", "sale", "0008-1", 2002, None, 1, None),         # delivered at first sight: no day
    ("ozon-1", "return", "ret-1", 2001, T, 1, "ClientReturn"),
    ("ozon-1", "return", "ret-2", 2001, T, 1, "FullReturn"),  # refused at handover: never bought
    ("ozon-1", "sale", "0005-1", 2003, Y, 2, None),
    ("ozon-2", "sale", "1004-1", 3001, T, 1, None),
    ("ozon-2", "return", "ret-9", 3002, Y, 1, None),          # unknown type counts
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
            """INSERT INTO sales (account, kind, sale_id, sku, sold_at, day, quantity, return_type)
               VALUES (?, ?, ?, ?, ? || 'T12:00:00+03:00', ?, ?, ?)""",
            [(a, k, i, s, d, d, q, r) for a, k, i, s, d, q, r in SALES],
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
    conn.close()


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
def machine_in_utc(monkeypatch):
    """The machine's clock is UTC and TIMEZONE is not set: the default zone must apply."""
    monkeypatch.delenv("TIMEZONE", raising=False)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def get(ds: Datasette, path: str):
    response = asyncio.run(ds.client.get(path))
    assert response.status_code == 200, response.text
    return response.json()


def query(ds: Datasette, name: str, at: str = NOON, **params) -> list[tuple]:
    """Run canned query `name` at the instant `at` (UTC); rows as tuples in column order."""
    qs = urlencode({"_shape": "objects", **params})
    with freeze_time(at):
        data = get(ds, f"/mp/{name}.json?{qs}")
    assert data.get("ok", True), data
    return [tuple(row.values()) for row in data["rows"]]


# --------------------------------------------------------------------------------------------
# today

TODAY_COLUMNS = ("alias", "wb_stock", "wb_ordered", "wb_bought", "wb_returned",
                 "ozon_stock", "ozon_ordered", "ozon_bought", "ozon_returned")

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
    assert tuple(data["columns"]) == TODAY_COLUMNS


def test_today(ds):
    assert query(ds, "today") == TODAY_ROWS
    assert query(ds, "today", date=T) == TODAY_ROWS


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
    """Rows in the query's order (day, then group order) for [(alias, marketplace, runs, flows)]."""
    per_group = [
        [(day, alias, mp, o, b, r, s) for day, o, b, r, s in expand(first_day, days, runs, flows)]
        for alias, mp, runs, flows in groups
    ]
    return [row for day_rows in zip(*per_group) for row in day_rows]


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
            assert not re.search(r"\b(insert|update|delete|replace|create|drop|alter|attach|pragma)\b",
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
    queries = load_metadata()["databases"]["mp"]["queries"]
    params = {"date": "", "alias": "", "marketplace": "", "warehouse": "", "days": ""}
    with freeze_time(NOON):
        for name in QUERY_COLUMNS:
            for extra in ({}, {"date": Y}, {"days": "90"}):
                sql, run_params = queries[name]["sql"], {**params, **extra}
                before, rows_before = count_steps(Path(ds.databases["mp"].path), sql, run_params)
                after, rows_after = count_steps(padded, sql, run_params)
                assert rows_after == rows_before, (name, extra)
                assert after <= before * 1.05 + 10, (name, extra, before, after)


def test_plugin_functions(monkeypatch):
    with freeze_time("2026-11-26T14:00:01Z"):
        assert datasette_plugin.mp_today() == T
        monkeypatch.setenv("TIMEZONE", "Asia/Vladivostok")  # UTC+10: already the 27th
        assert datasette_plugin.mp_today() == "2026-11-27"
        assert datasette_plugin.mp_now() == "2026-11-27T00:00:01+10:00"
        assert datasette_plugin.mp_day("") == "2026-11-27"
        monkeypatch.setenv("TIMEZONE", "")  # empty counts as not set
        assert datasette_plugin.mp_now() == "2026-11-26T17:00:01+03:00"
    assert datasette_plugin.mp_day("2026-03-01") == "2026-03-01"
    assert datasette_plugin.mp_day("2026-3-1") is None
    assert datasette_plugin.mp_day("20260301") is None
    assert datasette_plugin.mp_date_add("2026-03-01", -1) == "2026-02-28"
    assert datasette_plugin.mp_date_add("2026-12-31", "1") == "2027-01-01"
    assert datasette_plugin.mp_date_add("nonsense", 1) is None
