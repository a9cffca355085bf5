"""The viewer as a product, in-process (no browser): sign-in, the dashboards' configuration,
the help page, exports past max_returned_rows, and how Datasette is served.

The database is the hand-made one of tests/test_queries.py; Datasette gets the same templates,
static files and metadata as `datasette_command()` gives the real server.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import gc
import io
import re
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit

import pytest
import requests
from datasette.app import Datasette
from datasette_auth_passwords.utils import hash_password
from freezegun import freeze_time

from collector import sqlfunctions, viewer
from collector.cli import check_viewer_database
from collector.config import PASSWORD_HASH as PASSWORD_HASH_SHAPE
from collector.storage import SCHEMA_VERSION, Storage
from collector.viewer import SETTINGS, datasette_command
from test_queries import NOON, ORDERS, ROOT, build_database, load_metadata, plan_as_at_a_year

PASSWORD = "correct horse battery staple"
# Few iterations keep each check fast; the login reads the count from the hash itself.
PASSWORD_HASH = hash_password(PASSWORD, iterations=1000)
QUERIES = list(load_metadata()["databases"]["mp"]["queries"])


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("viewer") / "mp.db"
    build_database(path)
    return path


def make_datasette(path: Path, **settings) -> Datasette:
    """Datasette configured as datasette_command() serves it."""
    ds = Datasette([str(path)], metadata=load_metadata(), template_dir=str(ROOT / "templates"),
                   static_mounts=[("assets", str(ROOT / "static"))],
                   settings={"sql_time_limit_ms": 3000, **settings})
    asyncio.run(ds.invoke_startup())
    return ds


@pytest.fixture
def open_ds(db_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    return make_datasette(db_path)


@pytest.fixture
def private_ds(db_path, monkeypatch):
    monkeypatch.setenv("DATASETTE_PASSWORD_HASH", PASSWORD_HASH)
    return make_datasette(db_path)


def get(ds: Datasette, path: str, **kwargs):
    with freeze_time(NOON):
        return asyncio.run(ds.client.get(path, **kwargs))


def table_names(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                                            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    conn.close()
    return names


def data_urls(path: Path) -> list[str]:
    """Every URL that gives data away: each canned query, table and view as JSON and CSV,
    ad-hoc SQL, a streamed export, a row, and Datasette's own JSON."""
    urls = [f"/mp/{name}.{fmt}" for name in QUERIES for fmt in ("json", "csv")]
    urls += [f"/mp/{quote(name)}.{fmt}" for name in table_names(path) for fmt in ("json", "csv")
             if not name.endswith("_recomputed")]  # (no page: test_the_rebuild_check_views_have_no_page)
    urls += ["/mp.json?sql=select+1", "/mp.csv?sql=select+*+from+orders", "/mp/export_daily.csv?_stream=on",
             "/-/export/daily.csv", "/-/export/stock.csv", "/-/export/daily.csv?excel=1&marketplace=wb",
             "/-/export/stock_days.csv",
             "/mp/accounts/wb-1.json", "/.json", "/mp.json", "/-/metadata.json", "/-/databases.json",
             "/-/plugins.json", "/-/settings.json", "/-/versions.json", "/mp/today.json?_shape=array&alias=KR-10"]
    return urls


PAGES = ["/", "/mp", "/mp/today", "/mp/orders", "/mp/export_daily", "/mp/accounts/wb-1", "/-/help",
         "/-/dashboards", "/-/dashboards/today?days=14", "/-/dashboards/today/by-alias",
         "/-/dashboards/warehouses?period=day", "/mp?sql=select+1"]


# --------------------------------------------------------------------------------------------
# Sign-in


def test_with_a_password_every_data_url_refuses_an_anonymous_request(private_ds, db_path):
    for url in data_urls(db_path):
        response = get(private_ds, url)
        assert response.status_code == 403, url
        assert "Кронштейны" not in response.text and "wb-1" not in response.text, url


def test_with_a_password_every_page_sends_an_anonymous_person_to_the_login_form(private_ds):
    for url in PAGES:
        response = get(private_ds, url)
        assert response.status_code == 302, url
        assert urlsplit(response.headers["location"]).path == "/-/login", url


def test_the_login_form_robots_and_static_files_stay_reachable(private_ds):
    login = get(private_ds, "/-/login")
    assert login.status_code == 200 and "Пароль" in login.text and "Войти" in login.text
    assert get(private_ds, "/robots.txt").text.strip() == "User-agent: *\nDisallow: /"
    assert get(private_ds, "/assets/mp.css").status_code == 200
    assert get(private_ds, "/assets/mp-dashboard.js").status_code == 200


def test_signed_in_everything_is_readable_ad_hoc_sql_included(private_ds, db_path):
    cookies = {"ds_actor": private_ds.sign({"a": {"id": "seller"}}, "actor")}
    for url in data_urls(db_path) + PAGES[1:]:
        response = get(private_ds, url, cookies=cookies)
        assert response.status_code == 200, (url, response.status_code)
    rows = get(private_ds, "/mp.json?sql=select+count(*)+as+n+from+orders&_shape=array", cookies=cookies).json()
    assert rows == [{"n": 21}]


def test_the_permissions_kept_between_requests_are_each_actors_own(private_ds):
    """Answers to "may this actor see this?" are kept for a minute (the database page asks
    hundreds of them); asking as someone signed in, then anonymously, gives each their own."""
    cookies = {"ds_actor": private_ds.sign({"a": {"id": "seller"}}, "actor")}
    for url in ["/mp", "/mp/orders", "/mp/orders.json", "/mp/today.json", "/mp.json?sql=select+1", "/-/dashboards"]:
        for _ in range(2):
            assert get(private_ds, url, cookies=cookies).status_code == 200, url
            assert get(private_ds, url).status_code in (302, 403), url
    assert get(private_ds, "/mp/daily_figures_recomputed", cookies=cookies).status_code == 403


def test_login_with_the_form(private_ds):
    form = get(private_ds, "/-/login")
    token = re.search(r'name="csrftoken" value="([^"]+)"', form.text).group(1)
    cookies = {"ds_csrftoken": form.cookies["ds_csrftoken"]}

    def login(password):
        with freeze_time(NOON):
            return asyncio.run(private_ds.client.post(
                "/-/login", data={"username": "seller", "password": password, "csrftoken": token},
                cookies=cookies))

    wrong = login("wrong")
    assert wrong.status_code == 200 and "Неверное имя или пароль" in wrong.text
    right = login(PASSWORD)
    assert right.status_code == 302 and "ds_actor" in right.cookies
    # Back to "/", which is the dashboard.
    assert urlsplit(right.headers["location"]).path == "/"
    home = get(private_ds, "/", cookies={"ds_actor": right.cookies["ds_actor"]})
    assert urlsplit(home.headers["location"]).path == "/-/dashboards/today"
    data = get(private_ds, "/mp/today.json?_shape=array", cookies={"ds_actor": right.cookies["ds_actor"]})
    assert data.status_code == 200 and data.json()[0]["alias"] == "Кронштейны"


def test_a_script_signs_in_with_http_basic(private_ds):
    def with_auth(password):
        token = base64.b64encode(f"seller:{password}".encode()).decode()
        return get(private_ds, "/mp/today.csv", headers={"Authorization": f"Basic {token}"})

    assert with_auth("wrong").status_code == 403
    response = with_auth(PASSWORD)
    assert response.status_code == 200 and response.text.startswith("alias,wb_stock")


def test_an_empty_password_variable_counts_as_unset(db_path, monkeypatch):
    monkeypatch.setenv("DATASETTE_PASSWORD_HASH", "")
    ds = make_datasette(db_path)
    assert get(ds, "/mp/today.json").status_code == 200


def test_without_a_password_the_local_viewer_is_open(open_ds, db_path):
    for url in data_urls(db_path):
        assert get(open_ds, url).status_code == 200, url
    page = get(open_ds, "/-/dashboards/today?days=14")
    assert page.status_code == 200
    # Nothing to sign in to, so no "Войти" link; the help page says why.
    assert "/-/login" not in page.text
    assert "DATASETTE_PASSWORD_HASH" in get(open_ds, "/-/help").text
    assert get(open_ds, "/robots.txt").text.strip().endswith("Disallow: /")
    assert 'name="robots" content="noindex' in page.text


def test_no_query_writes_and_no_upload_plugin(open_ds):
    plugins = {p["name"] for p in get(open_ds, "/-/plugins.json").json()}
    assert not {name for name in plugins if re.search(r"upload|write|insert|edit|import", name)}
    # Ad-hoc SQL reads only (and Datasette opens the file with mode=ro besides).
    refused = get(open_ds, "/mp.json?sql=delete+from+orders")
    assert refused.status_code == 400 and get(open_ds, "/mp.json?sql=select+count(*)+from+orders&_shape=array").json()
    for name in QUERIES:
        assert not load_metadata()["databases"]["mp"]["queries"][name].get("write")


def test_the_rebuild_check_views_have_no_page_but_ad_hoc_sql_reads_them(open_ds, db_path):
    """Each *_recomputed view recomputes a summary from the whole history (minutes at a year):
    a page of one could only end at the time limit."""
    recomputed = [name for name in table_names(db_path) if name.endswith("_recomputed")]
    assert len(recomputed) > 10
    listed = get(open_ds, "/mp").text
    for name in recomputed:
        assert get(open_ds, f"/mp/{name}").status_code == 403 and get(open_ds, f"/mp/{name}.json").status_code == 403
        assert f'/mp/{name}"' not in listed, name
    assert get(open_ds, "/mp.json?sql=select+count(*)+from+daily_figures_recomputed&_shape=arrayfirst").json()[0] > 0


def test_big_tables_and_views_are_not_counted_on_their_pages(db_path, monkeypatch):
    """A table of BIG_ROWS rows or more, and every view, is shown without its count (Datasette's
    `count(*)` reads an index whole, seconds at a year); the database page says "Many rows"."""
    from collector import datasette_plugin

    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    monkeypatch.setattr(datasette_plugin, "BIG_ROWS", 10)
    datasette_plugin._big_names.clear()
    ds = make_datasette(db_path)
    conn = sqlite3.connect(db_path)
    orders, accounts = (conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in ("orders", "accounts"))
    conn.close()
    assert orders >= 10 > accounts
    assert get(ds, "/mp/orders.json").json()["filtered_table_rows_count"] is None
    assert get(ds, "/mp/orders.json?_nocount=").json()["filtered_table_rows_count"] == orders  # asked for
    assert get(ds, "/mp/accounts.json").json()["filtered_table_rows_count"] == accounts
    assert get(ds, "/mp/export_daily.json").json()["filtered_table_rows_count"] is None
    assert len(get(ds, "/mp/orders.json?_size=5").json()["rows"]) == 5  # the rows are all there
    database = get(ds, "/mp.json").json()
    counts = {table["name"]: table["count"] for table in database["tables"]}
    assert counts["orders"] is None and counts["accounts"] == accounts
    assert "Many rows" in get(ds, "/mp").text
    datasette_plugin._big_names.clear()


# The tables that grow with the history and hold 100,000 rows or more at the reference seller's
# year (`make bench`'s year database, datasette_plugin.find_big_names): by any column no index
# keeps in order, a page of one reads it whole, 1.3 to over 3 s at that year.
BIG_AT_A_YEAR = {"orders", "sales", "stock", "daily_figures", "sku_days", "alias_days", "alias_warehouse_days",
                 "alias_warehouse_months", "marketplace_alias_days", "marketplace_alias_warehouse_days",
                 "marketplace_alias_warehouse_stock_days", "minute_totals", "recent_minutes"}


def sorted_pages(metadata: dict) -> list[tuple[str, str]]:
    """Every sort a table page offers where metadata.yml names what it sorts by: (table, query)."""
    tables = metadata["databases"]["mp"]["tables"]
    pages = [(name, f"{way}={column}") for name, table in tables.items()
             for column in table.get("sortable_columns", []) for way in ("_sort", "_sort_desc")]
    return pages + [(name, "") for name, table in tables.items() if "sort_desc" in table or "sort" in table]


def test_a_big_table_sorts_only_by_what_an_index_keeps_in_order(open_ds, db_path):
    """Each sort a big table offers, its default among them, is read in an index's order: no
    sort of the whole table; at most each day's (or month's) rows sorted among themselves."""
    metadata = load_metadata()
    tables = metadata["databases"]["mp"]["tables"]
    assert BIG_AT_A_YEAR <= {name for name, table in tables.items() if "sortable_columns" in table}
    conn = sqlite3.connect(db_path)
    pages = sorted_pages(metadata)
    assert len(pages) > len(BIG_AT_A_YEAR)
    next_pages = 0
    for table, sort in pages:
        answer = get(open_ds, f"/mp/{table}.json?_size=2&_nocount=1&{sort}")  # (as at a year: no count)
        for page in (1, 2) if table not in NULL_DAYS else (1,):  # (a NULL in the column: see below)
            assert answer.status_code == 200, (table, sort, answer.text)
            sql, params = answer.json()["query"]["sql"], answer.json()["query"]["params"]
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            if "TEMP B-TREE FOR ORDER BY" in plan:  # (going up from the undated sales: those left and
                # the first days' rows, bounded by the day the page ends on, sorted together)
                assert table in NULL_DAYS and "+day IS NULL" in sql and "AND :mp_next_to" in sql, (table, sort, plan)
            if "TEMP B-TREE FOR RIGHT PART OF ORDER BY" in plan:
                assert sort.split("=")[-1] in ("day", "month") or tables[table].get("sort_desc") in ("day", "month"), plan
            if page == 2:  # starts where the first page ended: no rows read before it
                assert f"SCAN {table}" not in plan and "MULTI-INDEX OR" not in plan, (table, sort, plan)
                next_pages += 1
            if not answer.json()["next"]:
                break
            answer = get(open_ds, f"/mp/{table}.json?_size=2&_nocount=1&{sort}&_next={quote(answer.json()['next'])}")
    assert next_pages > len(BIG_AT_A_YEAR)
    conn.close()


NULL_DAYS = {"sales"}  # a sale counted as bought on no day (a return from WB's order feed) has no day


@pytest.mark.parametrize("table, sort, order, undated", [
    ("orders", "&_sort_desc=day", "day DESC, account, order_id, sku", False),
    ("orders", "", "day DESC, account, order_id, sku", False),  # (as it opens: the newest first)
    ("orders", "&_sort=day", "day, account, order_id, sku", False),
    ("marketplace_alias_warehouse_stock_days", "", "day DESC, warehouse, marketplace, alias", False),
    ("daily_figures", "&_sort_desc=day", "day DESC, account, sku, warehouse", False),
    ("stock", "", "id DESC", False),
    ("sales", "&_sort_desc=day", "day DESC, account, kind, sale_id, sku", True),
    ("sales", "&_sort_desc=day", "day DESC, account, kind, sale_id, sku", False),
    ("sales", "", "day DESC, account, kind, sale_id, sku", True)])  # (as it opens: the newest first)
def test_a_table_page_by_page_holds_every_row_once_in_order(db_path, tmp_path, monkeypatch, table, sort, order, undated):
    """Page after page of a table sorted by `day`, whose values repeat: every row once, in the
    order of the day and the key. Datasette orders the first page by the day alone and the pages
    after it by the day and the key; the plugin asks for the first page as a page after "before
    every row", and bounds each page so that SQLite starts where it starts (`day =` while more than
    a page of the day is left, else `day <=`), as long as that leaves the page as it is. A sale on
    no day (a return from WB's order feed, an Ozon posting delivered when first seen) has a NULL
    day, which comes after every other: bounded only while more rows than a page are older than
    where the page starts."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    built, copy = sqlite3.connect(db_path), sqlite3.connect(tmp_path / "mp.db")
    built.backup(copy)  # (a copy of the module's database, changed below)
    built.close(), copy.close()
    conn = sqlite3.connect(tmp_path / "mp.db")
    conn.row_factory = sqlite3.Row
    with conn:
        conn.execute("UPDATE sales SET day = NULL WHERE rowid = (SELECT min(rowid) FROM sales)" if undated
                     else "UPDATE sales SET day = coalesce(day, '2026-11-20')")
    sort += "&_nocount=1"  # (as every page of a table of 100,000 rows or more is asked for)
    ds, url, rows, starts = make_datasette(tmp_path / "mp.db"), f"/mp/{table}.json?_size=3&_shape=objects{sort}", [], []
    in_one_day = 0  # pages bounded to their day (`day =`), more than a page of it left
    while url:
        answer = get(ds, url).json()
        rows += answer["rows"]
        starts.append(any(word in answer["query"]["sql"] for word in ("<= :mp_next_from", "= :mp_next_day", "IS NOT NULL")))
        in_one_day += "= :mp_next_day" in answer["query"]["sql"]
        if starts[-1]:
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {answer['query']['sql']}", answer["query"]["params"]))
            assert "MULTI-INDEX OR" not in plan and "TEMP B-TREE FOR ORDER BY" not in plan, plan
            assert len(starts) == 1 or f"SCAN {table}" not in plan, plan  # (a next page starts where it starts)
        url = answer["next"] and f"/mp/{table}.json?_size=3&_shape=objects{sort}&_next={quote(answer['next'])}"
    expected = [dict(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}")]
    conn.close()
    assert len(rows) > 6 and rows == expected
    newest_first = "&_sort=" not in sort  # (going up, Datasette's own next pages start where they start)
    if undated:  # bounded while more rows than a page are older: the NULL comes after them
        assert starts[:2] == [True, True] and starts[-1] is False and starts == sorted(starts, reverse=True), starts
        # Filtered, bounded likewise while more rows than a page, of those the filter leaves, are
        # older (Datasette's own first page repeated a row of its last day on the next: 7 rows, 6
        # distinct); where fewer are, the pages are Datasette's own.
        filtered, bounded, url = [], [], f"/mp/{table}.json?_size=2&_shape=objects{sort}&account=wb-1"
        while url:
            answer = get(ds, url).json()
            bounded.append(":mp_next_from" in answer["query"]["sql"])
            filtered += answer["rows"]
            url = answer["next"] and f"/mp/{table}.json?_size=2&_shape=objects{sort}&account=wb-1&_next={quote(answer['next'])}"
        assert filtered == [row for row in expected if row["account"] == "wb-1"] and len(filtered) > 4
        assert bounded[0] and not bounded[-1] and bounded == sorted(bounded, reverse=True), bounded
    else:
        assert starts == [table != "stock"] + [newest_first] * (len(starts) - 1)
    assert (in_one_day > 0) == (newest_first and table != "stock"), in_one_day
    assert in_one_day < sum(starts)  # (and `day <=` at a day's end)


@pytest.mark.parametrize("sort, order", [("_sort=day", "day, account, kind, sale_id, sku"),
                                         ("_sort_desc=day", "day DESC, account, kind, sale_id, sku")])
@pytest.mark.parametrize("asked", ["", "&account=ozon-1", "&account__exact=ozon-1&kind=sale", "&sku=2001",
                                   "&warehouse__not=nowhere"])
def test_the_undated_sales_page_by_page_each_once_in_order(db_path, tmp_path, monkeypatch, sort, order, asked):
    """Sales on no day (every Ozon posting a backfill loads is delivered at first sight) come first
    going up by day and last going down. Datasette's own first page going up had them in the
    order of sales_day, not of the key its next page starts after: with 445,000 of them the next
    page skipped most and repeated some, and each page of them sorted them all (0.3 s). Now the
    first page starts from before every row too, and a page of them reads its rows in the key's
    order from sales_undated: every sale once, in order, and no page sorts more than it shows."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = planned_as_at_a_year(db_path, tmp_path / "mp.db")
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    with conn:  # (8 of the 13 sales undated: four pages of 2, then the dated ones)
        conn.execute("UPDATE sales SET day = NULL, sold_at = NULL WHERE account LIKE 'ozon-%' OR sale_id = 'S4'")
    where = " AND ".join(f"{name.split('__')[0]} {'<>' if '__not' in name else '='} '{value}'"
                         for name, value in parse_qsl(asked)) or "1"
    expected = [dict(row) for row in conn.execute(f"SELECT * FROM sales WHERE {where} ORDER BY {order}")]
    base = f"/mp/sales.json?{sort}{asked}&_size=2&_nocount=1&_shape=objects"
    ds, url, rows, undated_pages = make_datasette(path), base, [], 0
    while url:
        answer = get(ds, url).json()
        rows += answer["rows"]
        if "+day IS NULL" in (sql := answer["query"]["sql"]):
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", answer["query"]["params"]))
            assert "USING INDEX sales_undated" in plan or "sku=?" in plan, plan
            assert "USING INDEX sales_day (day=?)" not in plan, plan  # (every undated sale, sorted)
            # from the first row of sales_undated on a first page, else from the page's key
            assert not re.search(r"SCAN sales(?! USING INDEX sales_undated)", plan), plan
            assert url == base or "SCAN" not in plan, plan
            undated_pages += 1
        url = answer["next"] and f"{base}&_next={quote(answer['next'])}"
    conn.close()
    assert rows == expected and sum(row["day"] is None for row in rows) >= 2
    assert undated_pages >= 1


@pytest.mark.parametrize("table, sort, order", [
    ("orders", "_sort_desc=day", "day DESC, account, order_id, sku"),
    ("orders", "_sort=day&account=wb-1", "day, account, order_id, sku"),
    ("orders", "account=wb-1", "day DESC, account, order_id, sku"),  # (as it opens, filtered)
    ("sales", "_sort_desc=day&account__not=nobody", "day DESC, account, kind, sale_id, sku"),  # (filtered, an undated sale among them)
    ("sales", "_sort=day", "day, account, kind, sale_id, sku"),  # (going up: the undated sale first)
    ("daily_figures", "_sort_desc=day", "day DESC, account, sku, warehouse")])
def test_a_table_streamed_as_csv_holds_every_row_once_in_order(db_path, monkeypatch, table, sort, order):
    """«Stream all rows» of a table sorted by `day`: Datasette streams it page by page, its first
    page by the day alone (12 of 21 order lines sent newest first, 3 a page, 10 distinct); the
    plugin sends it from Datasette's own JSON pages, the first from before every row, as
    Datasette writes a CSV."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    ds, conn = make_datasette(db_path), sqlite3.connect(db_path)
    cursor = conn.execute(f"SELECT * FROM {table} WHERE account = 'wb-1' OR :all ORDER BY {order}",
                          {"all": "account=" not in sort})
    header, rows = [d[0] for d in cursor.description], [["" if v is None else str(v) for v in row] for row in cursor]
    conn.close()
    streamed = get(ds, f"/mp/{table}.csv?_stream=on&_size=3&{sort}")
    assert streamed.status_code == 200 and streamed.headers["content-type"] == "text/plain; charset=utf-8"
    assert len(rows) > 6 and list(csv.reader(io.StringIO(streamed.text))) == [header, *rows]
    whole = get(ds, f"/mp/{table}.csv?_stream=on&{sort}&_header=off&_dl=1")  # (5,000 rows a page)
    assert list(csv.reader(io.StringIO(whole.text))) == rows
    assert whole.headers["content-disposition"] == f'attachment; filename="{table}.csv"'


@pytest.mark.parametrize("page", ["/mp/orders", "/mp/orders?warehouse=Коледино&_size=3", "/mp/orders?_sort=day",
                                  "/mp/sales", "/mp/sales?account=wb-1&_size=2", "/mp/sales?_sort=day&_size=2"])
def test_view_and_edit_sql_of_a_first_page_is_the_sql_a_seller_would_write(open_ds, page):
    """The first page of a table sorted by day is asked for from before every row; «View and edit
    SQL» showed that cursor (p1.. blank, U+10FFFF) and the plugin's bound. It shows the page's
    filters, sort and key, and gives the page's rows."""
    html = get(open_ds, page).text
    link = unescape(re.search(r'href="(/mp\?sql=[^"]+)"', html).group(1))
    sql = parse_qs(urlsplit(link).query)["sql"][0]
    assert "mp_next" not in link and "\U0010ffff" not in unquote(link) and ":p4" not in sql, link
    assert sql.startswith("select * from ") and " order by day" in sql, sql
    path, _, query = page.partition("?")
    shown = get(open_ds, f"{path}.json?{query}&_shape=arrays").json()["rows"]
    edited = get(open_ds, link.replace("/mp?", "/mp.json?") + "&_shape=arrays").json()["rows"]
    assert shown and edited[:len(shown)] == shown and len(edited) <= len(shown) + 1  # (as Datasette's: one more row)


def planned_as_at_a_year(db_path: Path, copy: Path) -> Path:
    """A copy of the module's database whose planner sees the year's numbers of lines."""
    built, copied = sqlite3.connect(db_path), sqlite3.connect(copy)
    built.backup(copied)
    built.close()
    plan_as_at_a_year(copied, ("orders", "sales"))
    copied.close()
    return copy


@pytest.mark.parametrize("table, sort, order", [
    ("orders", "", "day DESC, account, order_id, sku"), ("orders", "&_sort=day", "day, account, order_id, sku"),
    ("sales", "", "day DESC, account, kind, sale_id, sku"), ("sales", "&_sort_desc=day", "day DESC, account, kind, sale_id, sku"),
    ("sales", "&_sort=day", "day, account, kind, sale_id, sku")])  # (going up, an undated sale first)
def test_a_filter_on_one_sku_seeks_it_day_by_day(db_path, tmp_path, monkeypatch, table, sort, order):
    """A seller's usual filter on the raw lines, one SKU: each page seeks the SKU day by day and
    account by account (orders_day and sales_day hold it since schema 31), with no read of every
    line (a SKU of a few lines took 16 s at a year, past the time limit); its rows all there, in
    order, page after page."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = planned_as_at_a_year(db_path, tmp_path / "mp.db")
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    sku = conn.execute(f"SELECT sku FROM {table} GROUP BY sku ORDER BY count(*) DESC, sku LIMIT 1").fetchone()[0]
    expected = [dict(row) for row in conn.execute(f"SELECT * FROM {table} WHERE sku = ? ORDER BY {order}", [sku])]
    rows, pages = pages_seeking_skus(make_datasette(path), conn, table, f"sku={sku}{sort}")
    conn.close()
    assert rows == expected and pages > 1


def pages_seeking_skus(ds: Datasette, conn: sqlite3.Connection, table: str, query: str) -> tuple[list[dict], int]:
    """Every row of a table's pages of 2 as `query` asks, page after page, and how many pages;
    each page planned as a seek of SKUs day by day and account by account, no read of the table."""
    base = f"/mp/{table}.json?{query}&_size=2&_nocount=1&_shape=objects"
    url, rows, pages = base, [], 0
    while url:
        answer = get(ds, url).json()
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {answer['query']['sql']}",
                                                         answer["query"]["params"]))
        assert f"SEARCH {table} USING INDEX {table}_day (ANY(day) AND ANY(account) AND sku=?)" in plan, plan
        assert f"SCAN {table}" not in plan, plan
        rows, pages = rows + answer["rows"], pages + 1
        url = answer["next"] and f"{base}&_next={quote(answer['next'])}"
    return rows, pages


@pytest.mark.parametrize("column", ["article", "barcode"])
@pytest.mark.parametrize("table, sort, order", [
    ("orders", "", "day DESC, account, order_id, sku"), ("orders", "&_sort=day", "day, account, order_id, sku"),
    ("sales", "", "day DESC, account, kind, sale_id, sku")])
def test_a_filter_on_one_article_or_barcode_seeks_its_skus_day_by_day(db_path, tmp_path, monkeypatch, table, sort,
                                                                       order, column):
    """An article, the seller's own name of an item, or a barcode, on the raw lines: the page is
    also given the SKUs the name was written on (named_skus, kept by triggers), which the day
    index seeks; by the name alone SQLite read every line. The rows are the name's, all of them,
    page after page, whatever SKUs carry it (one name on three SKUs of three accounts, and a line
    whose name was changed since)."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = planned_as_at_a_year(db_path, tmp_path / "mp.db")
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    value = "KR-10" if column == "article" else "4601"
    with conn:  # (the hand-made database's sales name no article and no line a barcode; the triggers count them now)
        conn.execute("UPDATE sales SET article = (SELECT min(o.article) FROM orders o "
                     "WHERE o.account = sales.account AND o.sku = sales.sku)")
        for named in ("orders", "sales"):  # (a barcode per item, the same on each account's SKU of it: 1001, 2001, 3001)
            conn.execute(f"UPDATE {named} SET barcode = '460' || (sku % 1000)")
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = (SELECT max(rowid) FROM {table} "
                     f"WHERE {column} IS NOT ?)", [value, value])
    ds = make_datasette(path)
    for asked in (value, "no such name"):
        expected = [dict(row) for row in conn.execute(f"SELECT * FROM {table} WHERE {column} = ? ORDER BY {order}",
                                                      [asked])]
        rows, _ = pages_seeking_skus(ds, conn, table, f"{column}={quote(asked)}{sort}")
        assert rows == expected and (len({row["sku"] for row in rows}) >= 3 or asked != value)
    conn.close()


@pytest.mark.parametrize("sort", ["", "&_sort=day"])
def test_a_warehouse_filter_of_orders_reads_no_day_after_the_last_order_there(db_path, tmp_path, monkeypatch, sort):
    """`orders?warehouse=`: a warehouse no order names has no rows at once (it read every line,
    past the time limit at a year), and one whose orders stopped is read from its last day
    (order_warehouses, kept by triggers); the rows are the filter's, all of them."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = planned_as_at_a_year(db_path, tmp_path / "mp.db")
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    with conn:  # (a warehouse whose last orders were three weeks ago; one of them moves a day on)
        conn.execute("UPDATE orders SET warehouse = 'Старый склад' WHERE order_id IN ('o9', '0006-1')")
        conn.execute("UPDATE orders SET day = date(day, '+1 day') WHERE order_id = 'o9'")
    ds = make_datasette(path)
    for warehouse in ("Старый склад", "Нет такого склада"):
        base = f"/mp/orders.json?warehouse={quote(warehouse)}&_size=1&_nocount=1&_shape=objects{sort}"
        url, rows = base, []
        while url:
            answer = get(ds, url).json()
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {answer['query']['sql']}",
                                                             answer["query"]["params"]))
            assert re.search(r"SEARCH orders USING INDEX orders_day \((day>\? AND )?day<\?\)", plan), plan
            assert "SCAN orders" not in plan and "SEARCH order_warehouses" in plan, plan
            rows += answer["rows"]
            url = answer["next"] and f"{base}&_next={quote(answer['next'])}"
        order = "day DESC" if not sort else "day"
        assert rows == [dict(row) for row in conn.execute(
            f"SELECT * FROM orders WHERE warehouse = ? ORDER BY {order}, account, order_id, sku", [warehouse])]
        assert len(rows) == (2 if warehouse == "Старый склад" else 0)
    conn.close()


@pytest.mark.parametrize("column", ["account", "warehouse"])
def test_stock_by_an_account_or_warehouse_no_key_has_reads_none_of_its_rows(db_path, tmp_path, monkeypatch, column):
    """`stock?warehouse=` or `?account=` by a value no key of stock_current has: an empty page
    that reads no row of stock (it read the table whole, 1.2-2.5 s at a year); by a value a key
    has, the page as Datasette gives it, newest first, page after page."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = planned_as_at_a_year(db_path, tmp_path / "mp.db")
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    with conn:  # (100,000 old changes of a key stock_current has, no triggers: quick to write)
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("""INSERT INTO stock (account, sku, size, warehouse, quantity, observed_at, day)
                        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
                        SELECT k.account, k.sku, k.size, k.warehouse, i % 7, '2026-01-01T12:00:00+03:00', '2026-01-01'
                        FROM n, (SELECT * FROM stock_current ORDER BY account, sku LIMIT 1) AS k""")
    ds = make_datasette(path)
    present = conn.execute(f"SELECT {column} FROM stock_current ORDER BY account, sku LIMIT 1").fetchone()[0]
    for value in (present, "Нет такого"):
        base = f"/mp/stock.json?{column}={quote(value)}&_size=3&_nocount=1&_shape=objects"
        first = get(ds, base).json()
        second = get(ds, f"{base}&_next={quote(first['next'])}").json() if first["next"] else {"rows": []}
        assert first["rows"] + second["rows"] == [dict(row) for row in conn.execute(
            f"SELECT * FROM stock WHERE {column} = ? ORDER BY id DESC LIMIT 6", [value])]
    steps = []  # (the page of the absent value, run again: every 1,000 steps of SQLite's machine)
    conn.set_progress_handler(lambda: steps.append(1), 1000)
    conn.execute(first["query"]["sql"], first["query"]["params"]).fetchall()
    conn.set_progress_handler(None, 1000)
    assert len(steps) < 5, len(steps)  # (reading the 100,000 rows: ~300)
    conn.close()


def test_a_page_of_orders_stopped_at_the_time_limit_links_to_its_last_week(db_path, tmp_path, monkeypatch):
    """A filter on a column no index keeps, by a value no line has, reads every line: at the
    time limit the Russian 400 links to the same page for the last 7 days, which the day index
    reads (0.2-0.3 s at a year); a page with a day filter already, or of another table, gets no
    such link."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = planned_as_at_a_year(db_path, tmp_path / "mp.db")
    with closing(sqlite3.connect(path)) as conn, conn:  # (half a million old lines, no triggers: quick to write)
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("""INSERT INTO orders (account, order_id, sku, ordered_at, day, status, quantity)
                        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500000)
                        SELECT 'wb-1', 'old-' || i, 1001, '2026-01-01T12:00:00+03:00', '2026-01-01', 'ordered', 1
                        FROM n""")
    ds = make_datasette(path)
    # (after its start, which counts the big tables' first rows)
    ds.sql_time_limit_ms = ds._settings["sql_time_limit_ms"] = 25
    since = sqlfunctions.mp_date_add(sqlfunctions.mp_today(), -6)
    # (on the real clock: Datasette's time limit reads time.perf_counter, which freezegun stops)
    stopped = asyncio.run(ds.client.get("/mp/orders?status=none&_sort=day"))
    assert stopped.status_code == 400 and "Запрос остановлен" in stopped.text
    link = re.search(rf'<a href="([^"]+)">Те же строки за последние 7 дней, с {since}</a>', stopped.text)
    assert link, stopped.text
    url = unescape(link.group(1))
    asked = parse_qs(urlsplit(url).query)
    asked.pop("_nocount", None)  # (as the plugin asks for every page of a big table)
    assert asked == {"status": ["none"], "_sort": ["day"], "day__gte": [since]}  # (no `_next` of the page stopped)
    assert asyncio.run(ds.client.get(url)).status_code == 200
    for other in ("/mp/orders?status=none&day__lte=2026-01-02", "/mp/stock?size=none"):
        answer = asyncio.run(ds.client.get(other))
        assert answer.status_code in (200, 400) and "последние 7 дней" not in answer.text, other


def test_an_article_filter_before_the_collector_made_named_skus_is_the_filter_alone(db_path, tmp_path, monkeypatch):
    """A viewer upgraded before its collector (schema 32: no named_skus yet): the filter on
    the article alone, as before, not a page that fails."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = planned_as_at_a_year(db_path, tmp_path / "mp.db")
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DROP TABLE named_skus")
        conn.execute("PRAGMA user_version = 32")
    answer = get(make_datasette(path), "/mp/orders.json?article=KR-10&_shape=objects&_size=max")
    assert answer.status_code == 200 and "named_skus" not in answer.json()["query"]["sql"]
    assert sorted(row["order_id"] for row in answer.json()["rows"]) == sorted(
        order_id for _, order_id, _, article, *_ in ORDERS if article == "KR-10")


@pytest.mark.parametrize("page, later", [("/mp/orders?_sort_desc=day&_size=3", False),
                                         ("/mp/marketplace_alias_warehouse_stock_days?_size=3", False),
                                         ("/mp/orders?_size=3", True), ("/mp/orders?_sort_desc=day&_size=3", True)])
def test_stream_all_rows_on_a_table_page_sends_every_row(open_ds, db_path, page, later):
    """The export form of a table page, «stream all rows» ticked: the form carries the page's
    `_next` (a later page's, or on a first page sorted by day the plugin's, before every row),
    which Datasette refused for every stream (400). Now the whole table comes, from its first row."""
    html = get(open_ds, page).text
    if later:  # (the second page, as its "Next page" link opens it)
        link = urlsplit(unescape(re.search(r'<a href="([^"]+)">Next page</a>', html).group(1)))
        html = get(open_ds, f"{link.path}?{link.query}").text
    form = html[re.search(r'action="/mp/[^"]+\.csv"', html).start():]
    form = form[:form.index("</form>")]
    assert 'name="_stream"' in form and 'name="_next"' in form
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
    action = re.search(r'action="([^"]+)"', form).group(1)
    streamed = get(open_ds, f"{action}?{urlencode([*fields, ('_stream', 'on')])}")
    table = action.split("/")[-1].removesuffix(".csv")
    conn = sqlite3.connect(db_path)
    whole = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    conn.close()
    lines = streamed.text.splitlines()
    assert streamed.status_code == 200 and len(lines) == whole + 1 == len(set(lines)), streamed.text[:300]
    if later:  # (a JSON page has no stream: its `_next` stays, whatever else the address says)
        json_page = f"/mp/{table}.json?{urlencode([*fields, ('_shape', 'objects')])}"
        assert get(open_ds, json_page + "&_stream=on").json()["rows"] == get(open_ds, json_page).json()["rows"]


def test_a_table_over_a_megabyte_streams_whole_as_served(db_path, tmp_path, monkeypatch):
    """Datasette stops a streamed CSV at max_csv_mb (by default 100 MB: two weeks of a big
    seller's orders) and ends the file with its error as a last line. Served with max_csv_mb 0,
    «stream all rows» sends every row, whichever way the table is sorted."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = tmp_path / "mp.db"
    shutil.copy(db_path, path)
    conn = sqlite3.connect(path)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(orders)")]
    copied = ", ".join("order_id || '~' || n" if name == "order_id" else name for name in columns)
    with conn:  # (each order line 600 times over, under other order numbers)
        conn.execute(f"INSERT INTO orders ({', '.join(columns)}) "
                     f"WITH RECURSIVE copy(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM copy WHERE n < 600) "
                     f"SELECT {copied} FROM orders, copy")
    lines = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    conn.close()
    served = make_datasette(path, max_csv_mb=SETTINGS["max_csv_mb"], max_returned_rows=SETTINGS["max_returned_rows"])
    capped = make_datasette(path, max_csv_mb=1)
    # (the limit as Datasette keeps it, on its own stream; the plugin's keeps the same setting)
    assert SETTINGS["max_csv_mb"] == 0  # (no limit)
    for sort in ("&_size=max", "&_sort_desc=day"):  # (Datasette's own stream; the plugin's, in key order)
        whole = get(served, f"/mp/orders.csv?_stream=on{sort}").text
        assert len(whole.encode()) > 1024 * 1024
        rows = list(csv.reader(io.StringIO(whole)))
        assert len(rows) == lines + 1 == len({tuple(row) for row in rows}), sort
    cut = get(capped, "/mp/orders.csv?_stream=on&_size=max").text
    assert len(cut.splitlines()) < lines and cut.endswith(f"CSV contains more than {1024 * 1024} bytes")


def test_a_streamed_csv_is_refused_as_its_pages_are(private_ds):
    refused = get(private_ds, "/mp/orders.csv?_stream=on&_sort_desc=day")
    assert refused.status_code == 403 and "wb-1" not in refused.text
    cookies = {"ds_actor": private_ds.sign({"a": {"id": "seller"}}, "actor")}
    signed_in = get(private_ds, "/mp/orders.csv?_stream=on&_sort_desc=day&_size=3", cookies=cookies)
    assert signed_in.status_code == 200 and signed_in.text.count("\r\n") > 7
    both = get(private_ds, "/mp/orders.csv?_stream=on&_sort_desc=day&_sort=day", cookies=cookies)
    # A page Datasette does not answer with rows: its own answer to the stream, as before.
    assert both.status_code == get(private_ds, "/mp/orders.json?_sort_desc=day&_sort=day", cookies=cookies).status_code
    assert "Cannot use _sort and _sort_desc" in both.text


def test_a_facet_counts_every_row_the_filters_leave(open_ds, db_path):
    """A first page newest first comes as a page after "before every row"; where no count is
    shown (a big table's page) the plugin bounds it to the newest day. Datasette counts a facet
    over the rows the filters leave, so with a facet asked for there is no bound: its counts are
    the table's, not the newest day's."""
    page = get(open_ds, "/mp/orders.json?_sort_desc=day&_size=3&_nocount=1&_facet=warehouse&_facet=day").json()
    facets = {name: {row["value"]: row["count"] for row in facet["results"]} for name, facet in page["facet_results"].items()}
    conn = sqlite3.connect(db_path)
    expected = {column: dict(conn.execute(f"SELECT {column}, count(*) FROM orders GROUP BY 1"))
                for column in ("warehouse", "day")}
    conn.close()
    assert len(expected["day"]) > 1 and facets == expected
    assert [row["day"] for row in get(open_ds, "/mp/orders.json?_sort_desc=day&_size=3&_shape=objects").json()["rows"]] \
        == [row[8] for row in page["rows"]]  # (the same page)


def test_a_next_page_with_its_count_counts_every_row_as_the_first(open_ds):
    """The bound of a next page newest first goes only where the page shows no count (a big
    table's page): Datasette counts the rows its filters leave, the bound among them."""
    first = get(open_ds, "/mp/orders.json?_size=3&_sort_desc=day").json()
    after = get(open_ds, f"/mp/orders.json?_size=3&_sort_desc=day&_next={quote(first['next'])}").json()
    assert first["filtered_table_rows_count"] == after["filtered_table_rows_count"] > 6
    assert "mp_next_from" not in after["query"]["params"]


def test_a_sort_a_big_table_does_not_offer_is_refused_with_the_reason(open_ds):
    """An old link that sorts `orders` by another column: a 400 naming what it sorts by, in
    Russian, at once (Datasette's own answer is a 500); the page offers no such sort."""
    page = get(open_ds, "/mp/orders?_sort_desc=ordered_at")
    assert page.status_code == 400 and "Таблицу orders можно сортировать только по day" in page.text
    answer = get(open_ds, "/mp/orders.json?_sort_desc=ordered_at")
    assert answer.status_code == 400 and "по ordered_at запрос читал бы её целиком" in answer.json()["error"]
    assert "только в своём порядке" in get(open_ds, "/mp/marketplace_alias_days?_sort=day").text
    hostile = get(open_ds, "/mp/orders?_sort=%3Cscript%3Ealert(1)%3C/script%3E")
    assert hostile.status_code == 400 and "<script>alert(1)" not in hostile.text
    orders = get(open_ds, "/mp/orders").text
    assert "_sort_desc=ordered_at" not in orders and "_sort=ordered_at" not in orders and "_sort=day" in orders
    assert get(open_ds, "/mp/nothing?_sort=day").status_code == 404  # (other errors as Datasette answers them)


def test_a_query_stopped_at_the_time_limit_says_so_in_russian(db_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    ds = make_datasette(db_path, sql_time_limit_ms=250)
    endless = "/mp?sql=" + quote("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n")
    page = asyncio.run(ds.client.get(endless))  # (not under freeze_time: the limit needs a clock that moves)
    assert page.status_code == 400
    assert "Запрос шёл дольше 0.25 с, и витрина его остановила" in page.text and "WITH RECURSIVE" in page.text
    assert "остановила" in asyncio.run(ds.client.get(endless.replace("/mp?", "/mp.json?"))).json()["error"]


def test_the_logs_and_the_stock_history_open_on_their_newest_rows(open_ds):
    for table, key in (("stock", "id"), ("runs", "id"), ("fetch_log", "id"),
                       ("marketplace_alias_warehouse_stock_days", "day")):
        rows = get(open_ds, f"/mp/{table}.json?_shape=objects").json()["rows"]
        assert len({row[key] for row in rows}) > 1, table
        assert [row[key] for row in rows] == sorted((row[key] for row in rows), reverse=True), table


# --------------------------------------------------------------------------------------------
# Answers kept between two writes (collector/answer_cache.py)

def test_a_canned_querys_json_is_sent_again_until_the_database_or_the_day_changes(tmp_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = tmp_path / "mp.db"
    build_database(path)
    ds = make_datasette(path)
    first = get(ds, "/mp/today.json?_shape=objects")
    cache = ds._mp_answer_cache
    assert (cache.hits, cache.misses) == (0, 1)
    assert get(ds, "/mp/today.json?_shape=objects").content == first.content
    assert (cache.hits, cache.misses) == (1, 1)
    # another question, the same question asked by someone else: computed
    get(ds, "/mp/today.json?_shape=objects&marketplace=wb")
    get(ds, "/mp/today.json?_shape=objects", cookies={"ds_actor": ds.sign({"a": {"id": "seller"}}, "actor")})
    assert (cache.hits, cache.misses) == (1, 3)
    # A write by another connection (the collector's): computed again, and it shows.
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE today_now SET wb_ordered = 99 WHERE alias = 'Кронштейны'")
    conn.close()
    rows = get(ds, "/mp/today.json?_shape=objects").json()["rows"]
    assert rows[0]["alias"] == "Кронштейны" and rows[0]["wb_ordered"] == 99
    assert (cache.hits, cache.misses) == (1, 4)
    assert get(ds, "/mp/today.json?_shape=objects").json()["rows"] == rows
    assert (cache.hits, cache.misses) == (2, 4)
    # The next day, or other settings: computed.
    with freeze_time("2026-11-26T21:00:01Z"):
        next_day = asyncio.run(ds.client.get("/mp/today.json?_shape=objects")).json()["rows"]
    assert next_day != rows and (cache.hits, cache.misses) == (2, 5)
    monkeypatch.setenv("LOW_STOCK_DAYS", "15")
    get(ds, "/mp/today.json?_shape=objects")
    assert (cache.hits, cache.misses) == (2, 6)


def test_queries_that_read_the_clock_and_everything_but_canned_json_are_never_kept(open_ds):
    from collector.answer_cache import cacheable_queries

    kept = cacheable_queries(load_metadata()["databases"]["mp"]["queries"])
    assert {"today", "history", "restock", "by_warehouse"} <= kept
    assert not {"today_vs_yesterday", "freshness", "balances"} & kept
    assert cacheable_queries({"utc": {"sql": "select date('now')"}, "stamp": {"sql": "select CURRENT_TIMESTAMP"},
                              "data": {"sql": "select 1"}}) == {"data"}
    for url in ("/mp/today_vs_yesterday.json", "/mp/freshness.json", "/mp/today", "/mp/today.csv",
                "/mp/orders.json", "/mp.json?sql=select+1"):
        for _ in range(2):
            assert get(open_ds, url).status_code == 200, url
    assert open_ds._mp_answer_cache.hits == open_ds._mp_answer_cache.misses == 0


def test_a_refused_answer_is_not_kept_and_a_signed_in_one_goes_to_nobody_else(private_ds):
    cookies = {"ds_actor": private_ds.sign({"a": {"id": "seller"}}, "actor")}
    assert get(private_ds, "/mp/today.json").status_code == 403
    assert get(private_ds, "/mp/today.json", cookies=cookies).status_code == 200
    assert get(private_ds, "/mp/today.json", cookies=cookies).status_code == 200
    assert get(private_ds, "/mp/today.json").status_code == 403
    assert (private_ds._mp_answer_cache.hits, private_ds._mp_answer_cache.misses) == (1, 3)


def test_the_answer_cache_can_be_turned_off(db_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    monkeypatch.setenv("ANSWER_CACHE_MB", "0")
    ds = make_datasette(db_path)
    assert get(ds, "/mp/today.json").content == get(ds, "/mp/today.json").content
    assert ds._mp_answer_cache is None


def test_a_canned_querys_json_skips_the_look_for_infinite_numbers_which_finds_none(db_path, monkeypatch):
    """Datasette replaces infinite numbers by null in every cell of a JSON answer unless asked
    not to; the canned queries never yield one, so their JSON is sent without that look: a query
    that did would show it, ad-hoc SQL and an answer that asks for the look keep it."""
    import json

    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    metadata = load_metadata()
    metadata["databases"]["mp"]["queries"]["infinite"] = {"sql": "SELECT 1e999 AS x, 1 AS y"}
    ds = Datasette([str(db_path)], metadata=metadata, settings={"sql_time_limit_ms": 3000})
    asyncio.run(ds.invoke_startup())
    assert get(ds, "/mp/infinite.json").json()["rows"] == [[float("inf"), 1]]
    assert get(ds, "/mp/infinite.json?_json_infinity=0").json()["rows"] == [[None, 1]]
    assert get(ds, "/mp.json?sql=select+1e999").json()["rows"] == [[None]]

    def no_constant(name):
        raise AssertionError(f"{name} in a canned query's JSON")

    for name in QUERIES:
        assert json.loads(get(ds, f"/mp/{name}.json").content, parse_constant=no_constant)["ok"], name


# --------------------------------------------------------------------------------------------
# How Datasette is served


def test_datasette_command(tmp_path):
    command = datasette_command(tmp_path / "mp.db", 8123)
    joined = " ".join(command)
    assert "--host 127.0.0.1 --port 8123" in joined
    assert f"--metadata {ROOT / 'metadata.yml'}" in joined
    assert f"--template-dir {ROOT / 'templates'}" in joined
    assert f"--static assets:{ROOT / 'static'}" in joined
    assert "--setting sql_time_limit_ms 3000" in joined
    assert "--setting max_csv_mb 0" in joined  # (a table's stream whole: no limit)
    assert "--immutable" not in command and "-i" not in command  # the collector writes the file
    for name in ("base.html", "dashboard_view.html", "mp_help.html", "password_login.html"):
        assert (ROOT / "templates" / name).is_file()


def test_each_connection_of_the_served_viewer_keeps_8_mb_of_pages(db_path):
    """Datasette as its command line serves it (benchmarks/viewer.py reads the options off
    datasette_command()) gives each connection the page cache of `cache_size_kb`, not SQLite's
    2 MB: a page of thousands of rows reads the same summary pages again and again."""
    from benchmarks.viewer import make_datasette as served

    ds = served(db_path)
    size = asyncio.run(ds.get_database("mp").execute_fn(lambda conn: conn.execute("PRAGMA cache_size").fetchone()[0]))
    assert size == -SETTINGS["cache_size_kb"] == -8192  # (KiB; SQLite's own is -2000)
    assert "--setting cache_size_kb 8192" in " ".join(datasette_command(db_path, 8123))


def test_the_served_viewer_leaves_what_start_up_loaded_out_of_garbage_collection(db_path, monkeypatch):
    """As served (`python -m collector.viewer serve`, which sets viewer.serving), start-up ends by
    freezing every object alive (gc.freeze): Python's full garbage collections then walk only what
    came after, not the ~68,000 objects of start-up (a pause of up to 66 ms in a request). A
    Datasette made in another process, such as these tests', leaves garbage collection as it is."""
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(viewer, "serving", False)
    make_datasette(db_path)
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(viewer, "serving", True)
    try:
        make_datasette(db_path)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


def test_mp_collector_serve_is_what_systemd_runs(tmp_path):
    """`mp-collector serve` (the unit's ExecStart) starts Datasette from the env file: the
    database from DATABASE_PATH, sign-in from DATASETTE_PASSWORD_HASH, no marketplace token."""
    unit = (ROOT / "systemd" / "mp-datasette.service.in").read_text(encoding="utf-8")
    assert "ExecStart=@APP_DIR@/.venv/bin/mp-collector serve " in unit
    # (any file name: Datasette would name the database after it, and metadata.yml says `mp`)
    (tmp_path / "seller").mkdir()
    build_database(tmp_path / "seller" / "shop.db")
    (tmp_path / ".env").write_text(f"DATABASE_PATH={tmp_path / 'seller' / 'shop.db'}\nDATASETTE_PASSWORD_HASH={PASSWORD_HASH}\n"
                                   "WB_API_TOKEN=wb-token-must-not-reach-datasette\n", encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WB_", "OZON_", "DATASETTE_"))}
    server = subprocess.Popen([sys.executable, "-m", "collector", "--env-file", str(tmp_path / ".env"), "serve",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base + "/robots.txt")
        assert requests.get(base + "/mp/today.json", timeout=5).status_code == 403
        signed_in = requests.get(base + "/mp/today.json?_shape=array", auth=("seller", PASSWORD), timeout=5)
        assert signed_in.status_code == 200 and signed_in.json()
        dashboard = requests.get(base + "/", auth=("seller", PASSWORD), timeout=5)
        assert dashboard.status_code == 200 and "/mp/" in dashboard.text and "Error" not in dashboard.text
        environ = Path(f"/proc/{server.pid}/environ").read_bytes()
        assert b"DATASETTE_PASSWORD_HASH=" in environ and b"wb-token-must-not-reach-datasette" not in environ
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("line, said", [
    ("TIMEZONE=Moscow", "TIMEZONE='Moscow' is not a known time zone (e.g. Europe/Moscow)"),
    ("DATASETTE_PASSWORD_HASH=hunter2-secret", "DATASETTE_PASSWORD_HASH is not a password hash: set it to the "
     "line `.venv/bin/datasette hash-password` prints (pbkdf2_sha256$...), not to the password"),
])
def test_mp_collector_serve_refuses_what_would_break_every_page(tmp_path, line, said):
    """The viewer started with TIMEZONE=Moscow (which the collector refuses) and failed every page
    with «user-defined function raised exception»; with the password where its hash belongs,
    nobody could sign in, and nothing said why. Now it does not start, and says so (never the value)."""
    (tmp_path / ".env").write_text(f"DATABASE_PATH={tmp_path / 'mp.db'}\n{line}\n", encoding="utf-8")
    refused = serve_refused(tmp_path / ".env")
    assert (refused.returncode, refused.stderr.strip()) == (1, f"Error: configuration: {said}")
    assert not (tmp_path / "mp.db").exists()


@pytest.mark.parametrize("place, said", [
    ("a folder", "{path}: it is a folder"),
    ("a text file", "{path}: file is not a database"),
    ("below a file", "{path}: its folder {path.parent} cannot be created (File exists)"),
])
def test_mp_collector_serve_refuses_a_database_path_datasette_would_fail_on(tmp_path, place, said):
    """Datasette stopped on these with a traceback (`sqlite3.OperationalError: unable to open
    database file`); now `serve` says what the collector says of the same path."""
    path = tmp_path / ("file" if place == "below a file" else "") / "mp.db"
    if place == "a folder":
        path.mkdir()
    else:
        (tmp_path / "file" if place == "below a file" else path).write_text("not a database", encoding="utf-8")
    (tmp_path / ".env").write_text(f"DATABASE_PATH={path}\n", encoding="utf-8")
    refused = serve_refused(tmp_path / ".env")
    assert (refused.returncode, refused.stderr.strip()) == (1, "Error: cannot open the database " + said.format(path=path))


def test_the_viewer_makes_its_database_s_folder_as_the_collector_does(tmp_path):
    """(the viewer may start before the collector's first pass; Datasette then creates the file)"""
    check_viewer_database(tmp_path / "state" / "mp-dashboard" / "mp.db")
    assert (tmp_path / "state" / "mp-dashboard").is_dir()


def serve_refused(env_file: Path) -> subprocess.CompletedProcess:
    """`mp-collector serve` on `env_file` alone (none of this machine's settings), expected to stop
    before Datasette starts; a minute at most if it does not."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WB_", "OZON_", "DATASETTE_", "TIMEZONE"))}
    return subprocess.run([sys.executable, "-m", "collector", "--env-file", str(env_file), "serve",
                           "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60)


def test_a_password_hash_is_what_hash_password_prints():
    assert PASSWORD_HASH_SHAPE.fullmatch(PASSWORD_HASH) and PASSWORD_HASH_SHAPE.fullmatch(hash_password("x"))


@pytest.mark.parametrize("version", ["none", "older", "current"])
def test_before_the_collector_made_the_schema_the_pages_say_so(tmp_path, monkeypatch, version):
    """The viewer starts on an empty file on a new server (before the collector's first pass), and
    may start on a database the collector has not yet upgraded: the pages said «Error 500 no such
    table: ...». A table missing from a current schema is a fault, Datasette's 500."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = tmp_path / "mp.db"
    if version == "none":
        sqlite3.connect(path).close()
    else:
        build_database(path)
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE today_now")  # (read by `today`, and by the dashboard through it)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - (version == 'older')}")
    ds = make_datasette(path)
    said = {"none": "сборщик создаст базу при первом проходе",
            "older": f"База данных версии {SCHEMA_VERSION - 1}, а витрине нужна {SCHEMA_VERSION}"}.get(version)
    query = get(ds, "/mp/today")  # (a canned query's page shows its error, and why)
    assert query.status_code == 400 and (said in query.text if said else "message-info" not in query.text)
    as_csv = get(ds, "/mp/today.csv")  # (its CSV: the 503 that says why, or the fault's 400)
    assert as_csv.status_code == 503 and said in as_csv.text if said else as_csv.status_code == 400
    dashboard = get(ds, "/-/dashboards/today?days=14&in=units")
    if version == "none":  # (its filters read a table: the page cannot be drawn)
        for answer in (dashboard, get(ds, "/-/help")):
            assert answer.status_code == 503 and said in answer.text
        health = get(ds, "/-/health.json")
        assert health.status_code == 503
        assert health.json()["error"] == "the collector has not created the database yet (no pass so far)"
        store = Storage(path)  # (the collector's first pass, while the viewer runs)
        store.migrate()
        store.close()
        after = get(ds, "/-/dashboards/today?days=14&in=units")
        assert after.status_code == 200 and "message-info" not in after.text
    else:  # (its cards read canned queries)
        assert dashboard.status_code == 200 and (said in dashboard.text if said else "message-info" not in dashboard.text)


def test_a_database_made_from_schema_sql_by_hand_is_not_waited_for(open_ds, db_path):
    """(user_version 0, as schema.sql alone leaves it, but with its tables: no collector to wait for)"""
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (0,)
    dashboard = get(open_ds, "/-/dashboards/today?days=14&in=units")
    assert dashboard.status_code == 200 and "message-info" not in dashboard.text


def test_a_table_page_reads_the_plugins_configuration_once_not_a_cell_at_a_time(db_path, monkeypatch):
    """datasette-render-markdown asks Datasette for its configuration for every text cell, and
    Datasette copies the whole metadata to answer (6-8 ms of a page of 100 order lines at a year);
    the metadata does not change while the viewer runs, so each answer is kept."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    asked = []
    plugin_config = Datasette.plugin_config
    monkeypatch.setattr(Datasette, "plugin_config", lambda self, *args, **kwargs:
                        asked.append(args) or plugin_config(self, *args, **kwargs))
    ds = make_datasette(db_path)
    for _ in range(2):
        page = get(ds, "/mp/orders?_size=50")
        assert page.status_code == 200 and page.text.count("<tr") > 10
    assert 0 < len(asked) < 20, len(asked)  # (a few hundred without the answers kept)


def test_a_canned_query_s_tab_says_its_title(open_ds):
    """Datasette titles a canned query's page with its SQL: the tab read «mp: -- One row per alias»."""
    for name, query in load_metadata()["databases"]["mp"]["queries"].items():
        html = get(open_ds, f"/mp/{name}").text
        assert unescape(re.search(r"<title>(.*?)</title>", html, re.S).group(1)) == f"{query['title']} — MP Dashboard"
    assert "<title>mp: select 1</title>" in get(open_ds, "/mp?sql=select+1").text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds} s")


# --------------------------------------------------------------------------------------------
# The dashboards' configuration against the queries


def dashboards() -> dict:
    return load_metadata()["plugins"]["datasette-dashboards"]


def test_dashboard_charts_read_existing_queries_with_existing_columns(open_ds):
    metadata = load_metadata()["databases"]["mp"]["queries"]
    for slug, dashboard in dashboards().items():
        for chart_slug, chart in dashboard["charts"].items():
            where = f"{slug}/{chart_slug}"
            assert chart["db"] == "mp" and chart["canned"] in metadata, where
            params = set(metadata[chart["canned"]].get("params", []))
            assert set(chart.get("params", {})) <= params, where
            fixed = "&".join(f"{k}={v}" for k, v in chart.get("params", {}).items())
            data = get(open_ds, f"/mp/{chart['canned']}.json?_shape=objects&{fixed}").json()
            assert data.get("ok", True), (where, data)
            columns = set(data["columns"])
            display = chart["display"]
            if chart["library"] == "mp-metric":
                shown = {display["field"], display.get("money"), (display.get("note") or {}).get("field")}
                assert shown - {None} <= columns, where
            elif chart["library"] == "mp-table":
                assert {c["field"] for c in display["columns"]} <= columns, where
            else:
                fields = {e["field"] for e in display["encoding"].values() if isinstance(e, dict)}
                fields |= {t["field"] for t in display["encoding"].get("tooltip", [])}
                assert fields <= columns, where
            for swapped in (chart.get("switch") or {}).get("fields", {}).values():
                assert set(swapped) | set(swapped.values()) <= columns, where
        # Every filter is a parameter of one of the dashboard's queries, or switches what a chart
        # draws, so it does something.
        used = set().union(*(metadata[c["canned"]].get("params", []) for c in dashboard["charts"].values()))
        used |= {c["switch"]["param"] for c in dashboard["charts"].values() if c.get("switch")}
        assert set(dashboard["filters"]) <= used, slug


def test_dashboard_pages_render_in_russian(open_ds):
    first = get(open_ds, "/-/dashboards/today")
    assert first.status_code == 302 and first.headers["location"].endswith("/-/dashboards/today?days=14&in=units")
    page = get(open_ds, "/-/dashboards/today?days=14").text
    for text in ("<h1>Сегодня</h1>", "Маркетплейс", "Группа, артикул или SKU", "Склад", "Графики за",
                 "Показать", "Wildberries — заказано сегодня", "Ozon — выкуплено сегодня", "/assets/mp-dashboard.js",
                 '"/mp/summary"', '"/mp/history"', "/assets/mp.css",
                 "autorefreshMinutes: 5"):  # it reloads itself while open
        assert text in page, text
    # Dynamic options: warehouses of stock and orders in the page; aliases in CSV order, then
    # articles, fetched by the page's script when the field is first used, not written into it.
    assert 'value="Хоругвино"' in page and 'value="Электросталь"' in page
    assert 'data-options-url="/mp/filter_groups.json?_shape=arrayfirst"' in page and 'value="AA-OLD"' not in page
    groups = get(open_ds, "/mp/filter_groups.json?_shape=arrayfirst").json()
    assert groups.index("Кронштейны") < groups.index("Пакеты 2") < groups.index("AA-OLD")
    warehouses = get(open_ds, "/-/dashboards/warehouses?alias=%D0%9A%D1%80%D0%BE%D0%BD%D1%88%D1%82%D0%B5%D0%B9%D0%BD%D1%8B").text
    assert "<h1>По складам</h1>" in warehouses and 'value="Кронштейны"' in warehouses
    assert get(open_ds, "/-/dashboards").text.count("/-/dashboards/") >= 2
    chart = get(open_ds, "/-/dashboards/today/ordered-chart?days=30")
    assert chart.status_code == 200 and '"days=30"' in chart.text
    for page in (chart.text, get(open_ds, "/-/dashboards/today?days=14&in=units").text):  # (templates/_dashboard_scripts.html)
        assert "vega-embed.min.js" in page and "/assets/mp-dashboard.js" in page


# --------------------------------------------------------------------------------------------
# Help, titles


def test_help_page_explains_every_figure_and_shows_freshness(open_ds):
    page = get(open_ds, "/-/help").text
    for text in ("<h1>Справка</h1>", "Заказано", "Выкуплено", "Возвраты", "Остаток", "Выкуп заказов",
                 "в пути", "К перечислению", "priceWithDisc", "Заканчивается", "Спрос в день", "TARGET_COVER_DAYS",
                 "Сегодня против вчера", "На сколько дней хватит", "Europe/Moscow", "Откуда данные",
                 "Насколько свежие данные", "saleID на S", "доставлено",
                 "available_stock_count", "Склад WB"):
        assert text in page, text
    # Live freshness: the hand-made fetch_log's failures and labels.
    assert "WB основной (wb-1)" in page and "HTTP 500" in page and "ещё не загружался" in page
    for name in QUERIES:
        assert f'href="/mp/{name}.csv?_dl=1"' in page, name
    assert 'href="/-/export/daily.csv"' in page and 'href="/-/export/stock.csv?excel=1"' in page
    assert 'href="/mp/marketplace_alias_warehouse_stock_days"' in page and 'href="/-/export/stock_days.csv"' in page
    # The raw lines, and the filters that find them at once at any history.
    assert 'href="/mp/orders"' in page and 'href="/mp/sales"' in page and "Выкупы без дня" in page
    assert all(f"<code>{name}</code>" in page for name in ("sku", "article", "barcode", "warehouse", "day__gte"))
    a_day = "/mp/marketplace_alias_warehouse_stock_days.csv?day=2026-11-25&_stream=on&_dl=1"
    assert get(open_ds, a_day).text.splitlines()[0] == "day,warehouse,marketplace,alias,stock"
    # The footer's "about" link leads here from every page.
    assert 'href="/-/help"' in get(open_ds, "/mp").text


def test_everything_is_titled_and_described_in_russian():
    metadata = load_metadata()
    cyrillic = re.compile("[а-яА-Я]")
    database = metadata["databases"]["mp"]
    assert cyrillic.search(database["title"]) and cyrillic.search(database["description"])
    for kind in ("tables", "queries"):
        for name, item in database[kind].items():
            assert cyrillic.search(item.get("title", "")), name
            assert cyrillic.search(item.get("description", "")), name
    for name in ("export_daily", "export_stock"):
        assert database["tables"][name]["columns"], name
    for dashboard in dashboards().values():
        assert cyrillic.search(dashboard["title"])
        for chart in dashboard["charts"].values():
            assert cyrillic.search(chart["title"]) or chart["title"] in ("Wildberries", "Ozon")


# --------------------------------------------------------------------------------------------
# Exports


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_full_exports_stream_past_max_returned_rows(db_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    # As served, the page (default_page_size 100) is smaller than max_returned_rows (5000);
    # streaming fetches page after page.
    ds = make_datasette(db_path, max_returned_rows=5, default_page_size=2)
    conn = sqlite3.connect(db_path)
    for name in ("export_daily", "export_stock", "orders", "stock"):
        expected = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        assert expected > 5, name
        capped = csv_rows(get(ds, f"/mp/{name}.csv?_size=max").text)
        streamed = csv_rows(get(ds, f"/mp/{name}.csv?_stream=on").text)
        assert len(capped) == 5 and len(streamed) == expected, name
    conn.close()
    # A canned query's CSV and JSON list are every row too (tests/test_export.py); its other JSON
    # shapes stop at max_returned_rows, and say so.
    assert len(csv_rows(get(ds, "/mp/history.csv?days=90").text)) > 5
    assert len(get(ds, "/mp/history.json?days=90&_shape=array").json()) > 5
    capped = get(ds, "/mp/history.json?days=90&_shape=objects").json()
    assert len(capped["rows"]) == 5 and capped["truncated"]


def test_export_daily_adds_up_to_the_queries(open_ds):
    rows = csv_rows(get(open_ds, "/mp/export_daily.csv?_stream=on&day=2026-11-26").text)
    assert list(rows[0]) == ["day", "marketplace", "account", "alias", "article", "sku", "warehouse",
                             "ordered", "bought", "returned", "ordered_rub", "bought_rub", "returned_rub"]
    summary = get(open_ds, "/mp/summary.json?_shape=array").json()[0]
    for mp in ("wb", "ozon"):
        for figure in ("ordered", "bought", "returned"):
            total = sum(int(r[figure]) for r in rows if r["marketplace"] == mp)
            assert total == summary[f"{mp}_{figure}"], (mp, figure)
    stock = csv_rows(get(open_ds, "/mp/export_stock.csv?_stream=on").text)
    assert sum(int(r["stock"]) for r in stock) == summary["stock"]


def test_every_canned_query_exports_csv_and_json(open_ds):
    for name in QUERIES:
        as_json = get(open_ds, f"/mp/{name}.json?_shape=array").json()
        as_csv = csv_rows(get(open_ds, f"/mp/{name}.csv?_dl=1").text)
        assert len(as_json) == len(as_csv), name
        assert as_json and list(as_json[0]) == list(as_csv[0]), name


PAGED = ("today", "by_warehouse", "stock_by_warehouse", "orders_by_warehouse", "history", "days_of_cover",
         "restock", "restock_window", "buyout")


def html_cells(html: str) -> list[list[str]]:
    """The HTML table's rows, each as its cells' text."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return [[re.sub(r"<[^>]+>", "", cell).strip().replace("&nbsp;", "")
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_a_long_list_comes_a_page_at_a_time_in_html_and_whole_as_json_and_csv(db_path, monkeypatch):
    """The HTML page of a list query shows `default_page_size` rows (100 as served; 2 here) with
    links to the pages around it; JSON and CSV, whatever page they are linked from, every row."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    ds = make_datasette(db_path, default_page_size=2)
    for name in PAGED:
        result = get(ds, f"/mp/{name}.json?_shape=objects&days=30").json()
        whole = result["rows"]
        assert len(whole) > 2 and not result["truncated"], name  # more than one page, all of them
        as_text = [[("" if value is None else str(value)) for value in row.values()] for row in whole]
        pages = -(-len(whole) // 2)
        for number in sorted({1, 2, 3, pages - 1, pages, pages + 1} - {0}):
            html = get(ds, f"/mp/{name}?days=30" + (f"&_page={number}" if number > 1 else "")).text
            assert html_cells(html) == as_text[(number - 1) * 2:number * 2], (name, number)
            assert ('rel="prev"' in html) == (number > 1), (name, number)
            assert ('rel="next"' in html) == (number < pages or (number == pages and len(whole) % 2 == 0)), (name, number)
            if number < pages:
                assert f'href="?days=30&amp;_page={number + 1}"' in html, (name, number)
                assert f"Строки {2 * number - 1}–{2 * number}" in html, (name, number)
        assert get(ds, f"/mp/{name}.json?_shape=array&days=30&_page=2").json() == whole, name
        assert len(csv_rows(get(ds, f"/mp/{name}.csv?days=30&_page=2").text)) == len(whole), name
    # A page number that is not one is the first page; `top` is one page of its own size.
    assert html_cells(get(ds, "/mp/today?_page=x").text) == html_cells(get(ds, "/mp/today").text)
    restock = get(ds, "/mp/restock.json?_shape=array").json()
    top = html_cells(get(ds, "/mp/restock?top=3").text)
    assert len(top) == 3 and [row[0] for row in top] == [row["alias"] for row in restock[:3]]
    # A query that is not a list has no pages.
    assert 'class="mp-pages"' not in get(ds, "/mp/summary").text


def test_a_page_of_a_list_goes_past_max_returned_rows(db_path, monkeypatch):
    """JSON stops at max_returned_rows (Datasette's cap); the HTML pages go on to the last row."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    ds = make_datasette(db_path, default_page_size=2, max_returned_rows=3)
    capped = get(ds, "/mp/history.json?_shape=objects&days=90").json()
    assert capped["truncated"] and len(capped["rows"]) == 3
    whole = get(make_datasette(db_path), "/mp/history.json?_shape=array&days=90").json()
    assert len(whole) > 4
    last = -(-len(whole) // 2)
    assert html_cells(get(ds, f"/mp/history?days=90&_page={last}").text)[-1][1] == whole[-1]["alias"]


def readme_viewer_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("<!-- viewer:start -->", 1)[1].split("<!-- viewer:end -->", 1)[0]


def test_readme_export_urls_work(open_ds):
    urls = re.findall(r"http://127\.0\.0\.1:8001(/[^\s`)<>]*)", readme_viewer_section())
    assert len(urls) >= 10
    for url in urls:
        response = get(open_ds, url.replace("&amp;", "&"))
        assert response.status_code in (200, 302), (url, response.status_code)
        if ".csv" in url:
            assert csv_rows(response.text), url
        elif ".json" in url:
            assert response.json(), url


def test_readme_shows_the_screenshots():
    section = readme_viewer_section()
    pictures = re.findall(r"!\[[^\]]*\]\((docs/img/[^)]+)\)", section)
    assert {"docs/img/dashboard.png", "docs/img/warehouses.png"} <= set(pictures)
    for picture in pictures:
        assert (ROOT / picture).is_file(), picture


# --------------------------------------------------------------------------------------------
# Health for monitors


def test_health_is_503_naming_stale_sources_and_200_when_all_are_fresh(tmp_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = tmp_path / "mp.db"
    build_database(path)
    ds = Datasette([str(path)], metadata=load_metadata())
    with freeze_time(NOON):
        assert asyncio.run(ds.client.get("/-/health.json")).json()["stale_minutes"] == 30
        response = asyncio.run(ds.client.get("/-/health.json?stale_minutes=60"))
        assert response.status_code == 503
        body = response.json()
        assert body["ok"] is False
        # wb-1 stocks: last success 119 minutes ago; ozon-2: never fetched; wb-1 orders: 59 minutes
        assert "wb-1 stocks" in body["stale"] and "ozon-2 orders" in body["stale"]
        assert "wb-1 orders" not in body["stale"]
        lenient = asyncio.run(ds.client.get("/-/health.json?stale_minutes=abc"))
        assert lenient.status_code == 400
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM accounts WHERE account != 'wb-1'")
        db.execute("INSERT INTO fetch_log (run_id, account, dataset, status, started_at, finished_at) "
                   "SELECT 9, 'wb-1', d, 'ok', ?, ? FROM (SELECT 'stocks' d UNION SELECT 'orders' UNION SELECT 'sales')",
                   ["2026-11-26T11:55:00+03:00", "2026-11-26T11:55:00+03:00"])
    with freeze_time(NOON):
        fresh = asyncio.run(Datasette([str(path)], metadata=load_metadata()).client.get("/-/health.json"))
    assert fresh.status_code == 200 and fresh.json()["ok"] is True and fresh.json()["stale"] == []


def test_health_needs_sign_in_when_a_password_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("DATASETTE_PASSWORD_HASH", PASSWORD_HASH)
    build_database(tmp_path / "mp.db")
    ds = Datasette([str(tmp_path / "mp.db")], metadata=load_metadata())
    assert asyncio.run(ds.client.get("/-/health.json")).status_code == 403


def test_a_filters_suggestions_are_escaped_options():
    from collector.datasette_plugin import datalist_options

    html = str(datalist_options(["Кружки 01", 'Чехлы "Люкс" & <Co>', 42], {"42": "SKU"}))
    assert html == ('<option value="Кружки 01"></option>'
                    '<option value="Чехлы &#34;Люкс&#34; &amp; &lt;Co&gt;"></option>'
                    '<option value="42">SKU</option>')
    assert str(datalist_options(None, None)) == ""
