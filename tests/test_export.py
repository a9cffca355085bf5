"""The streamed exports `/-/export/daily.csv` and `/-/export/stock.csv` (collector/export.py).

The database is the hand-made one of tests/test_queries.py with a few rows of money added; the
exports are compared with the views they replace (`export_daily`, `export_stock`) as Datasette
serves them: the same rows, in the documented order, across pages as small as one row.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from urllib.parse import quote

import pytest
from datasette.database import QueryInterrupted

import collector.export as export
from collector.sqlfunctions import register_functions
from test_queries import T, Y, build_database, load_metadata
from test_viewer import PASSWORD_HASH, get, make_datasette

MONEY = ("ordered_rub", "bought_rub", "returned_rub")
# Orders and sales with prices, on top of test_queries' rows (which have none): a unit of
# 1234.50, three of 0.05 at no warehouse, a sale of 1999.99, a return of 100.01.
PRICED_ORDERS = [("wb-1", "m1", 1004, "PAK-8", "Коледино", T, 1, 123450),
                 ("wb-1", "m2", 1004, "PAK-8", None, T, 3, 5),
                 ("ozon-1", "m3", 2003, "PAK-2", "Тверь", Y, 2, 99)]
PRICED_SALES = [("wb-1", "sale", "S9", 1004, T, 1, 199999, "Коледино"),
                ("wb-1", "return", "R9", 1004, T, 1, -10001, "Коледино")]


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("export") / "mp.db"
    build_database(path)
    with sqlite3.connect(path) as conn:
        conn.executemany("""INSERT INTO orders (account, order_id, sku, article, warehouse, ordered_at, day, status,
                                                quantity, price_kopecks)
                            VALUES (?, ?, ?, ?, ?, ? || 'T10:00:00+03:00', ?, 'ordered', ?, ?)""",
                         [(a, o, s, art, w, d, d, q, p) for a, o, s, art, w, d, q, p in PRICED_ORDERS])
        conn.executemany("""INSERT INTO sales (account, kind, sale_id, sku, sold_at, day, quantity, amount_kopecks,
                                               warehouse)
                            VALUES (?, ?, ?, ?, ? || 'T12:00:00+03:00', ?, ?, ?, ?)""",
                         [(a, k, i, s, d, d, q, m, w) for a, k, i, s, d, q, m, w in PRICED_SALES])
        # A SKU nobody has named yet stands for itself: alias = the SKU, no article.
        conn.execute("DELETE FROM sku_names WHERE account = 'ozon-2' AND sku = 3009")
    keep_stock_days(path)
    return path


def keep_stock_days(path: Path) -> None:
    """The stock at each past day's end, as the pass on the day after T keeps it."""
    from datetime import datetime, timedelta, timezone

    from collector import kept
    from collector.config import load_settings
    from collector.storage import Storage

    storage = Storage(path)
    try:
        next_day = datetime.fromisoformat(T) + timedelta(days=1, hours=9)
        kept.refresh_stock_days(load_settings(None, {"DATABASE_PATH": str(path)}), storage,
                                next_day.replace(tzinfo=timezone.utc))
    finally:
        storage.close()


@pytest.fixture
def ds(db_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    return make_datasette(db_path)


def csv_rows(text: str, delimiter: str = ",") -> list[dict]:
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def comparable(rows: list[dict]) -> list[tuple]:
    """Rows as tuples, money as a number: the view's 2550.0 is the export's 2550.00."""
    return [tuple(Decimal(v) if k in MONEY else v for k, v in row.items()) for row in rows]


def view(ds, name: str, query: str = "") -> list[dict]:
    """The view's rows as Datasette itself writes them: its CSV of one page of up to 1,000 rows,
    which this database never reaches (streamed, `?_stream=on`, the export would answer)."""
    rows = csv_rows(get(ds, f"/mp/{name}.csv?_size=max{query}").text)
    assert len(rows) < 1000
    return rows


def exported(ds, name: str, query: str = "") -> list[dict]:
    response = get(ds, f"/-/export/{name}.csv{query}")
    assert response.status_code == 200, response.text
    return csv_rows(response.text)


DAILY_KEY = ("day", "account", "sku", "warehouse")  # the documented order: daily_figures' key
STOCK_KEY = ("account", "sku", "size", "warehouse")


def key_order(rows: list[dict], key: tuple[str, ...]) -> list[dict]:
    return sorted(rows, key=lambda row: tuple(int(row[k]) if k == "sku" else row[k] for k in key))


# --------------------------------------------------------------------------------------------
# The rows: the views', in the key's order


def test_the_daily_export_has_the_view_s_rows_in_the_key_s_order(ds):
    rows = exported(ds, "daily")
    assert list(rows[0]) == list(export.DAILY.columns)
    assert sorted(comparable(rows)) == sorted(comparable(view(ds, "export_daily")))
    assert rows == key_order(rows, DAILY_KEY)
    assert len(rows) == 20  # test_queries' 18, and two keys of the priced rows (the others add to keys)


def test_the_stock_export_has_the_view_s_rows_in_the_key_s_order(ds):
    rows = exported(ds, "stock")
    assert list(rows[0]) == list(export.STOCK.columns)
    assert sorted(comparable(rows)) == sorted(comparable(view(ds, "export_stock")))
    assert rows == key_order(rows, STOCK_KEY) and len(rows) == 14


def test_money_is_exact_kopecks(ds):
    rows = {(r["day"], r["sku"], r["warehouse"]): r for r in exported(ds, "daily")}
    assert [rows[(T, "1004", "Коледино")][m] for m in MONEY] == ["1234.50", "1999.99", "100.01"]
    assert [rows[(T, "1004", "")][m] for m in MONEY] == ["0.15", "0.00", "0.00"]  # no warehouse: empty
    assert rows[(Y, "2003", "Тверь")]["ordered_rub"] == "1.98"


def test_rubles_are_worked_out_in_whole_numbers():
    """Past 2**53 kopecks a float is off by a kopeck; the export's SQL never goes through one."""
    conn = sqlite3.connect(":memory:")
    for kopecks in (0, 5, 99, 100, 123450, -5, -105, -100, 2**53 + 1, -(2**53 + 1), 10**17 + 7):
        text = conn.execute(f"SELECT {export.rubles(':k')}", {"k": kopecks, "point": "."}).fetchone()[0]
        assert text == f"{Decimal(kopecks) / 100:.2f}", kopecks
    assert conn.execute(f"SELECT {export.rubles(':k')}", {"k": -123450, "point": ","}).fetchone()[0] == "-1234,50"


def test_a_sku_with_no_name_stands_for_itself(ds):
    row = next(r for r in exported(ds, "daily") if r["sku"] == "3009")
    assert (row["alias"], row["article"]) == ("3009", "")


# --------------------------------------------------------------------------------------------
# Pages


def boundaries_inside_a_sku(rows: list[dict], page: int) -> int:
    """How many page boundaries fall between two rows of one day, account and SKU (they differ
    only by warehouse): where a cursor that stopped short of the whole key would lose rows."""
    return sum(1 for i in range(page, len(rows), page)
               if all(rows[i - 1][k] == rows[i][k] for k in ("day", "account", "sku")))


@pytest.mark.parametrize("page", [1, 2, 3, 5, 1000])
def test_pages_of_any_size_give_the_same_rows(ds, monkeypatch, page):
    whole = exported(ds, "daily")
    stock = exported(ds, "stock")
    monkeypatch.setattr(export, "PAGE_ROWS", page)
    assert exported(ds, "daily") == whole
    assert exported(ds, "stock") == stock
    assert exported(ds, "daily", "?day=2026-11-26&marketplace=wb") == \
        [r for r in whole if r["day"] == T and r["marketplace"] == "wb"]


def test_a_page_boundary_inside_a_sku_is_crossed(ds, monkeypatch):
    rows = exported(ds, "daily")
    day = [r for r in rows if r["day"] == T]
    assert boundaries_inside_a_sku(day, 2) >= 1  # the hand-made day has such a boundary at 2 rows a page
    monkeypatch.setattr(export, "PAGE_ROWS", 2)
    assert exported(ds, "daily", f"?day={T}") == day


def test_a_cursor_short_of_the_key_loses_rows(ds, monkeypatch):
    """The test above can fail: a cursor on day, account and SKU alone skips the warehouses of
    a SKU that follow a page boundary."""
    whole = exported(ds, "daily")
    monkeypatch.setattr(export, "PAGE_ROWS", 2)
    short = replace(export.DAILY, after="AND (f.account, f.sku) > (:after0, :after1)", key=(2, 5))
    monkeypatch.setitem(export.EXPORTS, "daily", short)
    assert len(exported(ds, "daily")) < len(whole)


def chunks(ds, path: str) -> list[dict]:
    """The ASGI messages of a response, sent by Datasette as to a server: a second start (what
    Datasette sends when a view fails after it began to answer) is refused as uvicorn does."""
    messages: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start" and messages:
            raise RuntimeError("response already started")
        messages.append(message)

    target, _, query = path.partition("?")
    scope = {"type": "http", "http_version": "1.1", "method": "GET", "scheme": "http", "path": target,
             "raw_path": target.encode(), "query_string": query.encode(), "headers": [], "root_path": ""}
    try:
        asyncio.run(ds.app()(scope, receive, send))
    except RuntimeError:
        pass
    return messages


def test_the_export_streams_a_chunk_a_page(ds, monkeypatch):
    monkeypatch.setattr(export, "PAGE_ROWS", 3)
    messages = chunks(ds, "/-/export/daily.csv")
    start, *body = messages
    assert start["status"] == 200
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert headers["content-disposition"].startswith('attachment; filename="mp-daily-')
    parts = [m["body"].decode() for m in body if m["body"]]
    assert parts[0].startswith("day,marketplace") and len(parts) >= 1 + 20 // 3
    assert all(part.count("\n") <= 3 for part in parts[1:])  # a page is at most PAGE_ROWS rows
    assert body[-1] == {"type": "http.response.body", "body": b""}  # and the response ends


def test_a_page_that_fails_breaks_the_download_off(ds, monkeypatch):
    """A page past the time limit: the client must see a failed download, not a short CSV."""
    monkeypatch.setattr(export, "PAGE_ROWS", 2)
    read = export._read

    async def failing(db, sql, params):
        if params.get("day") == Y:  # the second day's pages
            raise QueryInterrupted(None, sql, params)
        return await read(db, sql, params)

    monkeypatch.setattr(export, "_read", failing)
    messages = chunks(ds, "/-/export/daily.csv")
    assert messages[0]["status"] == 200 and b"2026-10-17" in messages[2]["body"]  # pages were sent
    assert all(m.get("more_body") for m in messages[1:])  # never the end of the body


def test_each_page_runs_under_datasette_s_time_limit(db_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    ds = make_datasette(db_path, sql_time_limit_ms=50)
    assert not chunks(ds, "/-/export/daily.csv")[-1].get("more_body")  # a quick export ends
    slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) SELECT count(*) FROM n"
    monkeypatch.setitem(export.EXPORTS, "daily", replace(export.DAILY, sql=slow + " WHERE :day = :day {after} {where}"))
    messages = chunks(ds, "/-/export/daily.csv")
    assert messages[0]["status"] == 200 and all(m.get("more_body") for m in messages[1:])


# --------------------------------------------------------------------------------------------
# Filters


@pytest.mark.parametrize("query, keep", [
    ("?marketplace=ozon", lambda r: r["marketplace"] == "ozon"),
    ("?account=ozon-1", lambda r: r["account"] == "ozon-1"),
    ("?alias=Кронштейны", lambda r: r["alias"] == "Кронштейны"),
    ("?alias=CARD-B", lambda r: r["article"] == "CARD-B"),  # an article
    ("?alias=3009", lambda r: r["sku"] == "3009"),  # a SKU
    ("?warehouse=Тверь", lambda r: r["warehouse"] == "Тверь"),
    ("?day=2026-11-25", lambda r: r["day"] == Y),
    ("?day__gte=2026-11-25", lambda r: r["day"] >= Y),
    ("?day__lte=2026-11-25", lambda r: r["day"] <= Y),
    ("?day__gte=2026-10-18&day__lte=2026-11-25&marketplace=wb", lambda r: r["day"] == Y and r["marketplace"] == "wb"),
    ("?day__gte=2026-11-27", lambda r: False),
    ("?_stream=on&_dl=1", lambda r: True),  # Datasette's own arguments are ignored
])
def test_filters(ds, monkeypatch, query, keep):
    whole = exported(ds, "daily")
    monkeypatch.setattr(export, "PAGE_ROWS", 2)
    assert exported(ds, "daily", query) == [r for r in whole if keep(r)]


def test_filters_of_the_views_give_the_view_s_rows(ds):
    for query in ("&marketplace=wb&day__gte=2026-11-25", "&alias=Кронштейны", "&account=ozon-2"):
        assert sorted(comparable(exported(ds, "daily", "?" + query[1:]))) == \
            sorted(comparable(view(ds, "export_daily", query))), query
    assert sorted(comparable(exported(ds, "stock", "?marketplace=ozon&warehouse=Тверь"))) == \
        sorted(comparable(view(ds, "export_stock", "&marketplace=ozon&warehouse=Тверь")))


@pytest.mark.parametrize("query", ["?marketplace=yandex", "?day=26.11.2026", "?day__gte=20261126",
                                   "?date=2026-11-26", "?alias=X&limit=5"])
def test_a_misspelt_filter_is_refused_not_ignored(ds, query):
    response = get(ds, f"/-/export/daily.csv{query}")
    assert response.status_code == 400 and "day,marketplace" not in response.text


def test_the_stock_days_export_has_the_table_s_rows_in_its_key_s_order_page_by_page(ds, db_path, monkeypatch):
    with sqlite3.connect(db_path) as conn:
        table = [tuple(map(str, row)) for row in conn.execute(
            "SELECT day, warehouse, marketplace, alias, stock FROM marketplace_alias_warehouse_stock_days"
            " ORDER BY day, warehouse, marketplace, alias")]
    assert len(table) > 3 and {row[0] for row in table} >= {Y, T}
    for page in (1, 2, 1000):
        monkeypatch.setattr(export, "PAGE_ROWS", page)
        assert [tuple(row.values()) for row in exported(ds, "stock_days")] == table, page
    monkeypatch.setattr(export, "PAGE_ROWS", 2)
    for query, keep in (("?marketplace=ozon", lambda row: row[2] == "ozon"), ("?warehouse=Тверь", lambda row: row[1] == "Тверь"),
                        ("?alias=Кронштейны", lambda row: row[3] == "Кронштейны"), (f"?day={Y}", lambda row: row[0] == Y),
                        (f"?day__gte={T}&marketplace=wb", lambda row: row[0] >= T and row[2] == "wb")):
        assert [tuple(row.values()) for row in exported(ds, "stock_days", query)] == [row for row in table if keep(row)], query
    assert get(ds, "/-/export/stock_days.csv?account=wb-1").status_code == 400  # (kept per marketplace)


def test_the_stock_export_has_no_days(ds):
    assert get(ds, "/-/export/stock.csv?day=2026-11-26").status_code == 400


def test_for_excel_utf8_with_a_bom_semicolons_and_decimal_commas(ds):
    response = get(ds, "/-/export/daily.csv?excel=1")
    assert response.content.startswith("\ufeffday;marketplace".encode("utf-8"))
    rows = {(r["day"], r["sku"], r["warehouse"]): r for r in csv_rows(response.text.lstrip("\ufeff"), ";")}
    assert rows[(T, "1004", "Коледино")]["ordered_rub"] == "1234,50"
    plain = get(ds, "/-/export/daily.csv").content
    assert plain.startswith(b"day,marketplace")  # no BOM by default: scripts and IMPORTDATA read it as is


# --------------------------------------------------------------------------------------------
# Access


@pytest.fixture
def private_ds(db_path, monkeypatch):
    monkeypatch.setenv("DATASETTE_PASSWORD_HASH", PASSWORD_HASH)
    return make_datasette(db_path)


@pytest.mark.parametrize("path", ["/-/export/daily.csv", "/-/export/stock.csv", "/-/export/stock_days.csv",
                                  "/-/export/daily.csv?excel=1",
                                  "/-/export/daily.csv?bad=1"])
def test_with_a_password_an_anonymous_request_is_refused(private_ds, path):
    response = get(private_ds, path)
    assert response.status_code == 403
    assert "Кронштейны" not in response.text and "wb-1" not in response.text


def test_the_exports_only_read(ds):
    assert asyncio.run(ds.client.post("/-/export/daily.csv", data={"sql": "delete from orders"})).status_code == 405
    assert get(ds, "/mp/orders.json?_shape=array&_size=max").json()  # and every order is still there


def test_signed_in_the_exports_open(private_ds):
    cookies = {"ds_actor": private_ds.sign({"a": {"id": "seller"}}, "actor")}
    for name in ("daily", "stock"):
        response = get(private_ds, f"/-/export/{name}.csv", cookies=cookies)
        assert response.status_code == 200 and "Кронштейны" in response.text


# --------------------------------------------------------------------------------------------
# «Stream all rows» of the views: the export answers it


@pytest.mark.parametrize("name, query", [
    ("daily", ""), ("daily", "&marketplace=wb&day__gte=2026-11-25"), ("daily", "&day=2026-11-26&_dl=1"),
    ("daily", "&warehouse=Коледино&_size=max&_labels=on"), ("stock", "&marketplace=ozon&account=ozon-2"),
])
def test_the_views_streamed_csv_is_the_export(ds, name, query):
    """Datasette's own `?_stream=on` of export_daily and export_stock pages by OFFSET, which at
    a year fails on its first page; the export answers it, with the view's rows."""
    streamed = get(ds, f"/mp/export_{name}.csv?_stream=on{query}")
    filters = "&".join(part for part in query.split("&") if part and not part.startswith("_"))
    assert streamed.status_code == 200
    assert streamed.text == get(ds, f"/-/export/{name}.csv?{filters}").text
    assert streamed.headers["content-disposition"].startswith(f'attachment; filename="mp-{name}-')
    assert sorted(comparable(csv_rows(streamed.text))) == sorted(comparable(view(ds, f"export_{name}", "&" + filters)))


@pytest.mark.parametrize("path", [
    "/mp/export_daily.csv?_size=max",                    # not streamed: Datasette's page, as asked
    "/mp/export_daily.csv?_stream=off",
    "/mp/export_daily.csv?_stream=on&_sort=sku",         # an order the export does not give
    "/mp/export_daily.csv?_stream=on&alias=KR-10",       # alias is only a group on the view
    "/mp/export_daily.csv?_stream=on&sku=1001",          # a filter the export does not have
    "/mp/export_stock.csv?_stream=on&day=2026-11-26",    # (a column the stock view has not)
    "/mp/orders.csv?_stream=on",
])
def test_anything_else_is_left_to_datasette(ds, path):
    assert "content-disposition" not in get(ds, path).headers
    query = path.partition("?")[2]
    assert export.instead_of_view(path.partition("?")[0], query) is None


def test_the_views_streamed_csv_is_the_export_under_a_base_url(db_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    ds = make_datasette(db_path, base_url="/dashboard/")
    streamed = get(ds, "/mp/export_daily.csv?_stream=on&marketplace=ozon")  # (the client adds the base)
    assert streamed.status_code == 200 and streamed.headers["content-disposition"].startswith("attachment")
    assert streamed.text == get(ds, "/-/export/daily.csv?marketplace=ozon").text
    canned = get(ds, "/mp/history.csv?days=30&_dl=1")  # (a canned query's CSV too)
    assert canned.status_code == 200 and canned.headers["content-disposition"] == 'attachment; filename="history.csv"'


# What the views held when they added up alias_figures (before they read daily_figures and
# stock_current in their keys' order): the oracle of the rows, whatever their order.
DAILY_AS_ADDED_UP = """
SELECT day, marketplace, account, alias, article, sku, warehouse,
       sum(CASE measure WHEN 'ordered' THEN units ELSE 0 END), sum(CASE measure WHEN 'bought' THEN units ELSE 0 END),
       sum(CASE measure WHEN 'returned' THEN units ELSE 0 END),
       sum(CASE measure WHEN 'ordered' THEN kopecks ELSE 0 END) / 100.0,
       sum(CASE measure WHEN 'bought' THEN kopecks ELSE 0 END) / 100.0,
       sum(CASE measure WHEN 'returned' THEN kopecks ELSE 0 END) / 100.0
FROM alias_figures WHERE measure IN ('ordered', 'bought', 'returned')
GROUP BY day, marketplace, account, alias, article, sku, warehouse"""
STOCK_AS_ADDED_UP = """
SELECT marketplace, account, alias, article, sku, size, warehouse, units FROM alias_figures WHERE measure = 'stock_now'"""


def test_the_views_hold_what_the_figures_add_up_to_in_their_keys_order(db_path):
    with sqlite3.connect(db_path) as conn:
        for view, oracle, key in (("export_daily", DAILY_AS_ADDED_UP, (0, 2, 5, 6)),
                                  ("export_stock", STOCK_AS_ADDED_UP, (1, 4, 5, 6))):
            rows = conn.execute(f"SELECT * FROM {view}").fetchall()
            assert sorted(rows, key=repr) == sorted(conn.execute(oracle).fetchall(), key=repr), view
            assert rows == sorted(rows, key=lambda row: tuple("" if row[i] is None else row[i] for i in key)), view
            assert len(rows) > 10, view



# --------------------------------------------------------------------------------------------
# A canned query's CSV and JSON list: every row (export.query_answer)

CANNED = list(load_metadata()["databases"]["mp"]["queries"])
# Each canned query with its defaults, and the longer answers of the list queries.
ASKED = [(name, "") for name in CANNED] + [
    ("history", "days=90"), ("history", "days=30&period=week&by=marketplace"), ("history", "days=30&warehouse=Коледино"),
    ("restock_window", "days=21"), ("restock", "soon=1"), ("by_warehouse", "period=month"),
    ("orders_by_warehouse", f"date={Y}"), ("today", f"date={Y}&alias=Кронштейны")]


def as_datasette_writes_it(columns: list, rows: list) -> str:
    """Datasette's CSV of a query's rows (its csv.writer: CRLF, None as empty, floats as Python
    writes them)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows([columns, *[["" if value is None else value for value in row] for row in rows]])
    return buffer.getvalue()


def test_a_canned_query_s_csv_and_json_list_are_every_row_of_it(db_path, monkeypatch):
    """Datasette's CSV and JSON list (`_shape=array`) of a canned query stopped at
    max_returned_rows (5,000 as served; 3 here) without a word: `history` for 90 days at a big
    seller was its newest eight days. They are now every row, byte for byte as Datasette writes
    the rows it gives with no cap."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    capped, roomy = make_datasette(db_path, max_returned_rows=3), make_datasette(db_path, max_returned_rows=100_000)
    longer = 0
    for name, query in ASKED:
        answer = get(roomy, f"/mp/{name}.json?_shape=arrays&{query}").json()
        assert answer["ok"] and not answer["truncated"], (name, query)
        text = get(capped, f"/mp/{name}.csv?{query}").text
        assert text == as_datasette_writes_it(answer["columns"], answer["rows"]), (name, query)
        for shape in ("_shape=array", "_shape=array&_nl=on"):
            listed = get(capped, f"/mp/{name}.json?{shape}&{query}")
            assert listed.text == get(roomy, f"/mp/{name}.json?{shape}&{query}").text, (name, query, shape)
            assert listed.headers["content-type"] == get(roomy, f"/mp/{name}.json?{shape}&{query}").headers["content-type"]
        longer += len(answer["rows"]) > 3
    assert longer >= 15  # (the cap was in the way of most of them)
    assert get(capped, "/mp/history.json?days=90").json()["truncated"]  # (the other shapes say where they stop)


def test_a_canned_query_s_csv_as_a_download_and_without_its_header(ds):
    download = get(ds, "/mp/history.csv?days=14&_dl=1")
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"] == 'attachment; filename="history.csv"'
    shown = get(ds, "/mp/history.csv?days=14&_header=off")
    assert shown.headers["content-type"] == "text/plain; charset=utf-8" and "content-disposition" not in shown.headers
    assert download.text.split("\r\n", 1)[0].startswith("day,alias,marketplace,")
    assert shown.text == download.text.split("\r\n", 1)[1]


def test_a_canned_query_s_csv_is_only_for_whoever_may_see_the_query(private_ds):
    for path in ("/mp/history.csv?days=90", "/-/query/history.csv", "/-/query/no_such_query.csv",
                 "/mp/history.json?_shape=array", "/-/query/history.json"):
        refused = get(private_ds, path)
        assert refused.status_code == 403 and "Кронштейны" not in refused.text, path
    cookies = {"ds_actor": private_ds.sign({"a": {"id": "seller"}}, "actor")}
    assert "Кронштейны" in get(private_ds, "/mp/history.csv?days=90", cookies=cookies).text
    assert get(private_ds, "/-/query/no_such_query.csv", cookies=cookies).status_code == 404


def test_a_debug_page_and_the_other_json_shapes_are_left_to_datasette(ds):
    assert get(ds, "/mp/history.csv?_trace=1").headers["content-type"].startswith("text/html")
    assert get(ds, "/mp/history.json").json()["query_name"] == "history"
    assert get(ds, "/mp/history.json?_shape=objects").json()["query_name"] == "history"
    assert get(ds, "/mp/history.json?_shape=arrayfirst").json()


def test_the_seller_s_own_sql_gives_every_row_as_csv_and_json_list(db_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    capped, roomy = make_datasette(db_path, max_returned_rows=3), make_datasette(db_path, max_returned_rows=100_000)
    sql = "select * from orders where day >= :since order by day desc, order_id"
    for query in (f"sql={quote(sql)}&since=2026-11-01", f"sql={quote(sql)}&since=2026-11-01&_dl=1&_header=off"):
        answer = get(roomy, f"/mp.json?{query}").json()
        assert len(answer["rows"]) > 3 and not answer["truncated"]
        as_csv = get(capped, f"/mp.csv?{query}")
        expected = as_datasette_writes_it(answer["columns"], answer["rows"])
        assert as_csv.text == (expected.split("\r\n", 1)[1] if "_header=off" in query else expected)
        listed = get(capped, f"/mp.json?{query}&_shape=array")
        assert listed.text == get(roomy, f"/mp.json?{query}&_shape=array").text
    download = get(capped, f"/mp.csv?sql={quote(sql)}&since=2026-11-01&_dl=1")
    assert download.headers["content-disposition"] == 'attachment; filename="mp.csv"'
    refused = get(capped, f"/mp.csv?sql={quote('delete from orders')}")
    assert refused.status_code == 400 and "Statement must be a SELECT" in refused.text
    # SQL with Datasette's magic parameters (`:_now_epoch`...) is Datasette's to answer
    assert export.instead_of_query_answer("/mp.csv", f"sql={quote('select :_now_epoch')}", {}) is None
    assert export.instead_of_query_answer("/mp.csv", f"sql={quote('select :now')}", {}) == ("/-/sql.csv", f"sql={quote('select :now')}")


def test_an_answer_past_its_size_is_refused_with_where_to_get_it(ds, monkeypatch):
    """(`select * from orders` at a year would be ~3 GB on the disk that holds the database)"""
    monkeypatch.setattr(export, "PAGE_ROWS", 2)
    monkeypatch.setattr(export, "ANSWER_BYTES", 300)
    refused = get(ds, f"/mp.csv?sql={quote('select * from orders')}")
    assert refused.status_code == 400 and "Ответ больше" in refused.text and "stream all rows" in refused.text
    assert get(ds, "/mp.csv?sql=select+1+as+one").text == "one\r\n1\r\n"  # (a short answer is let through)


def test_the_seller_s_own_sql_is_only_for_whoever_may_run_sql(private_ds):
    path = f"/mp.csv?sql={quote('select * from orders')}"
    for url in (path, "/-/sql.csv?sql=select+1"):
        refused = get(private_ds, url)
        assert refused.status_code == 403 and "wb-1" not in refused.text, url
    cookies = {"ds_actor": private_ds.sign({"a": {"id": "seller"}}, "actor")}
    assert "wb-1" in get(private_ds, path, cookies=cookies).text


FOREVER = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n WHERE i < 0"


def test_a_query_that_would_never_end_is_stopped_with_the_viewer_s_words(db_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    metadata = load_metadata()
    metadata["databases"]["mp"]["queries"]["forever"] = {"sql": FOREVER}
    ds = make_datasette(db_path, sql_time_limit_ms=200)
    ds._metadata_local = metadata
    answer = get(ds, "/mp/forever.csv")
    assert answer.status_code == 400 and "Запрос остановлен" in answer.text
    listed = get(ds, "/mp/forever.json?_shape=array")
    assert listed.status_code == 400 and "Запрос шёл дольше" in listed.json()["error"]


def test_the_time_limit_is_for_each_page_of_rows(db_path, monkeypatch):
    """A long answer may take longer than the limit in all; no PAGE_ROWS rows of it may."""
    def with_a_slow_function(conn):
        register_functions(conn)
        conn.create_function("slow", 1, lambda value: time.sleep(0.01) or value)

    monkeypatch.setattr(export, "register_functions", with_a_slow_function)
    monkeypatch.setattr(export, "PAGE_ROWS", 2)
    # (each row also runs enough of SQLite's steps for the limit to be looked at)
    sql = """WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30)
             SELECT slow(i) AS i, (WITH RECURSIVE m(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM m WHERE j < 3000)
                              SELECT count(*) FROM m) AS steps FROM n"""
    form = export.answer_form("csv", {})
    spool = export.spool_answer(str(db_path), sql, {}, form, limit_ms=200)  # (30 rows, 0.3 s in all)
    assert len(spool.read().splitlines()) == 31
    spool.close()
    with pytest.raises(export.QueryTooLong):
        export.spool_answer(str(db_path), sql, {}, form, limit_ms=5)  # (each page 20 ms)
    with pytest.raises(export.QueryTooLong):
        export.spool_answer(str(db_path), FOREVER, {}, form, limit_ms=50)
