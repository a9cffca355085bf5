"""Full exports that stream: every day's figures (`/-/export/daily.csv`), the stock now
(`/-/export/stock.csv`) and the stock at the end of every past day per warehouse, marketplace and
group (`/-/export/stock_days.csv`) as CSV, a page of rows at a time, in memory that does not grow
with the export.

Why not the views `export_daily` and `export_stock` with Datasette's `?_stream=on`: Datasette
pages through a view with OFFSET, one query per page of `default_page_size` (100) rows, and each
query runs the whole view again (its GROUP BY over alias_figures, the sort) only to skip what the
pages before it sent. At a year of the reference seller one such query takes minutes (past the
3 s `sql_time_limit_ms`, so the very first page fails), and a year is 116,000 pages; Datasette
also stopped its streamed CSV at `max_csv_mb` (100 MB by default, a tenth of a year; served
with 0 since, collector/viewer.py). docs/performance-log.md,
"Streaming a year's export", has the figures. So the views' own streamed CSV («stream all rows»
on their pages, `/mp/export_daily.csv?_stream=on`) is answered here too (`instead_of_view`).

Here each page is one index range read of the table the view adds up: the rows after the last
one sent, in the table's primary key order (keyset paging), so a page costs the same at the
start and at the end of a year. `daily_figures` already holds one row per day x account x SKU x
warehouse, which is one row of `export_daily`; the export takes the rows the view counts (an
order line or a sales row that day) and names them as `alias_figures` does. Every page goes
through Datasette's read connection (`Database.execute_fn`) under its `sql_time_limit_ms`, so the
limit applies to each page, not to the whole export, and other requests are served between
pages. Each page reads the database as it is then: a row the collector writes during an export
is in it if its page has not been read yet.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import parse_qs, parse_qsl, quote, urlencode

from datasette.utils import LimitedWriter, sqlite_timelimit
from datasette.utils.asgi import AsgiStream, Response

from collector.datasette_plugin import DATABASE, EVERY_ROW, before_every_row, mp_today
from collector.sqlfunctions import register_functions

PAGE_ROWS = 5000  # rows a query; tests cross page boundaries with fewer
SEEING_THE_DATABASE = [("view-database", DATABASE), "view-instance"]  # what every page of it asks, after its own

# As alias_figures names a SKU: its group from sku_names, else the SKU itself.
ALIAS = "coalesce(nm.alias, CAST(f.sku AS TEXT))"
# CROSS JOIN keeps the exported table the outer loop, so that a page is read in its key's order
# from the key (SQLite never reorders a CROSS JOIN); accounts and sku_names are key lookups.
NAMED = """CROSS JOIN accounts a ON a.account = f.account
LEFT JOIN sku_names nm ON nm.account = f.account AND nm.sku = f.sku"""


def rubles(kopecks: str) -> str:
    """SQL: whole kopecks as an exact decimal, `1234.50`, `-0.05`, in integers only (never a
    float's 1234.4999...). `:point` is the decimal mark."""
    return (f"printf('%s%d%s%02d', iif({kopecks} < 0, '-', ''), abs({kopecks}) / 100, :point, "
            f"abs({kopecks}) % 100)")


# The filters, each a condition on a page's rows; `alias` is a group, an article or a SKU, as in
# the canned queries.
FILTERS = {
    "marketplace": "a.marketplace = :marketplace",
    "account": "f.account = :account",
    "alias": f":alias IN ({ALIAS}, nm.article, CAST(f.sku AS TEXT))",
    "warehouse": "f.warehouse = :warehouse",
}


@dataclass(frozen=True)
class Export:
    """One export: its columns, the query of a page (`{after}`: the rows after the previous
    page's last, `{where}`: the filters) and where the key is in a row."""
    name: str
    table: str
    columns: tuple[str, ...]
    sql: str
    after: str
    key: tuple[int, ...]  # positions of the table's primary key in a row, in the key's order
    by_day: bool = False  # a page at a time within each day (`:day`), from `day__gte` to `day__lte`
    filters: dict = field(default_factory=lambda: FILTERS)  # name -> condition on a page's rows

    def cursor(self, row) -> dict:
        # nullif() made an empty warehouse NULL in the row; the key holds ''.
        return {f"after{n}": "" if row[i] is None else row[i] for n, i in enumerate(self.key)}


# A row of export_daily per day x account x SKU x warehouse where an order line or a sales row
# was counted (the view's daily_ordered and daily_sales), with its figures as the view sums them.
# Paged within one day (`f.day = :day`), so that a page's scan stays inside a day even when the
# filters leave few rows.
DAILY = Export(
    name="daily", table="daily_figures",
    columns=("day", "marketplace", "account", "alias", "article", "sku", "warehouse", "ordered", "bought",
             "returned", "ordered_rub", "bought_rub", "returned_rub"),
    sql=f"""SELECT f.day, a.marketplace, f.account, {ALIAS} AS alias, nm.article, f.sku,
       nullif(f.warehouse, '') AS warehouse,
       iif(f.ordered_lines > 0, f.ordered, 0), iif(f.sales_lines > 0, f.bought, 0),
       iif(f.sales_lines > 0, f.returned, 0),
       {rubles("iif(f.ordered_lines > 0, f.ordered_kopecks, 0)")},
       {rubles("iif(f.sales_lines > 0, f.bought_kopecks, 0)")},
       {rubles("iif(f.sales_lines > 0, f.returned_kopecks, 0)")}
FROM daily_figures f
{NAMED}
WHERE f.day = :day {{after}} AND (f.ordered_lines > 0 OR f.sales_lines > 0) {{where}}
ORDER BY f.day, f.account, f.sku, f.warehouse
LIMIT :limit""",
    after="AND (f.account, f.sku, f.warehouse) > (:after0, :after1, :after2)",
    key=(2, 5, 6),
    by_day=True,
)

# export_stock: the stock now per account x SKU x size x warehouse.
STOCK = Export(
    name="stock", table="stock_current",
    columns=("marketplace", "account", "alias", "article", "sku", "size", "warehouse", "stock"),
    sql=f"""SELECT a.marketplace, f.account, {ALIAS} AS alias, nm.article, f.sku, f.size, f.warehouse,
       f.quantity
FROM stock_current f
{NAMED}
WHERE 1 {{after}} {{where}}
ORDER BY f.account, f.sku, f.size, f.warehouse
LIMIT :limit""",
    after="AND (f.account, f.sku, f.size, f.warehouse) > (:after0, :after1, :after2, :after3)",
    key=(1, 4, 5, 6),
)

# marketplace_alias_warehouse_stock_days: the stock at the end of each past day, as the collector
# keeps it (the days it vouches for; see schema.sql), a day at a time in its key's order.
STOCK_DAYS = Export(
    name="stock_days", table="marketplace_alias_warehouse_stock_days",
    columns=("day", "warehouse", "marketplace", "alias", "stock"),
    sql="""SELECT f.day, f.warehouse, f.marketplace, f.alias, f.stock
FROM marketplace_alias_warehouse_stock_days f
WHERE f.day = :day {after} {where}
ORDER BY f.day, f.warehouse, f.marketplace, f.alias
LIMIT :limit""",
    after="AND (f.warehouse, f.marketplace, f.alias) > (:after0, :after1, :after2)",
    key=(1, 2, 3),
    by_day=True,
    filters={"marketplace": "f.marketplace = :marketplace", "alias": "f.alias = :alias",
             "warehouse": "f.warehouse = :warehouse"},
)

EXPORTS = {export.name: export for export in (DAILY, STOCK, STOCK_DAYS)}
DAYS = ("day", "day__gte", "day__lte")  # exports by day only: one day, from, to (inclusive)
MARKETPLACES = ("wb", "ozon")


@dataclass(frozen=True)
class Request:
    """What an export was asked for: its filters, the days, and whether for Excel."""
    export: Export
    filters: dict
    day_from: str = ""
    day_to: str = ""
    excel: bool = False

    @classmethod
    def parse(cls, export: Export, args) -> "Request":
        """From the URL's arguments; ValueError names what is wrong. Unknown arguments are
        refused (a misspelt filter must not export everything); `_dl`, `_stream` and other
        arguments starting with `_` are Datasette's and are ignored."""
        known = {*export.filters, "excel", *(DAYS if export.by_day else ())}
        unknown = sorted(name for name in args.keys() if name not in known and not name.startswith("_"))
        if unknown:
            raise ValueError(f"unknown parameter {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        filters = {name: args.get(name) for name in export.filters if args.get(name)}
        if filters.get("marketplace", "wb") not in MARKETPLACES:
            raise ValueError("marketplace must be wb or ozon")
        days = {name: _day(name, args.get(name)) for name in DAYS if args.get(name)}
        day_from = max(days.get("day", ""), days.get("day__gte", ""))
        day_to = min((days[name] for name in ("day", "day__lte") if name in days), default="")
        return cls(export, filters, day_from, day_to, args.get("excel", "") not in ("", "0"))

    @property
    def where(self) -> str:
        return "".join(f" AND {self.export.filters[name]}" for name in self.filters)


def _day(name: str, value: str) -> str:
    try:
        if len(value) == 10:  # fromisoformat also takes 20261126; a day here is YYYY-MM-DD
            return date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    raise ValueError(f"{name} must be a day, YYYY-MM-DD")


async def _read(db, sql: str, params: dict) -> list:
    """One page through Datasette's read connection, under its time limit as Database.execute
    runs a query, but decoded by SQLite itself: Datasette's connection decodes every text value
    in a Python function (replacing bad UTF-8, which the collector never writes), a third of
    the time a page takes."""
    limit_ms = db.ds.setting("sql_time_limit_ms")

    def read(conn):
        with sqlite_timelimit(conn, limit_ms):
            factory, conn.text_factory = conn.text_factory, str
            try:
                return conn.execute(sql, params).fetchall()
            finally:
                conn.text_factory = factory

    return await db.execute_fn(read)


async def _keyset(db, export: Export, where: str, params: dict, page_rows: int):
    """The rows of one range of the key, a page (one query) at a time: each page starts after
    the last row of the page before it. The next page is asked for before this one is handed
    on, so that SQLite reads it (in Datasette's thread, without the GIL) while this one is
    written out: two pages in memory at the most."""

    def fetch(cursor: dict):
        sql = export.sql.format(after=export.after if cursor else "", where=where)
        return asyncio.ensure_future(_read(db, sql, {**params, **cursor, "limit": page_rows}))

    pending = fetch({})
    try:
        while pending is not None:
            rows = await pending
            pending = fetch(export.cursor(rows[-1])) if len(rows) == page_rows else None
            if rows:
                yield rows
    finally:
        if pending is not None:  # the client went away, or a page failed: nobody will read it
            pending.cancel()


async def _next_day(db, table: str, day: str, inclusive: bool = False) -> str | None:
    # The first key at or after the day: one index lookup, however long the history.
    sql = f"SELECT day FROM {table} WHERE day {'>=' if inclusive else '>'} :day ORDER BY day LIMIT 1"
    rows = (await db.execute(sql, {"day": day})).rows
    return rows[0][0] if rows else None


async def pages(db, asked: Request, page_rows: int | None = None):
    """Every row of the export, in the key's order (daily: day, account, SKU, warehouse; stock:
    account, SKU, size, warehouse), a page at a time."""
    page_rows = page_rows or PAGE_ROWS
    params = {**asked.filters, "point": "," if asked.excel else "."}
    if not asked.export.by_day:
        async for rows in _keyset(db, asked.export, asked.where, params, page_rows):
            yield rows
        return
    table = asked.export.table
    day = await _next_day(db, table, asked.day_from, inclusive=True)
    while day is not None and (not asked.day_to or day <= asked.day_to):
        async for rows in _keyset(db, asked.export, asked.where, {**params, "day": day}, page_rows):
            yield rows
        day = await _next_day(db, table, day)


def csv_text(rows, excel: bool) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";" if excel else ",").writerows(rows)
    return buffer.getvalue()


def stream(db, asked: Request) -> AsgiStream:
    """The CSV as a stream: the header, then one chunk a page. Excel (`excel=1`): the byte
    order mark that makes it read UTF-8 (Cyrillic groups and warehouses), `;` and a decimal
    comma, as a Russian Excel opens a file on a double click."""

    async def write(writer) -> None:
        await writer.write(("\ufeff" if asked.excel else "") + csv_text([asked.export.columns], asked.excel))
        try:
            async for rows in pages(db, asked):
                await writer.write(csv_text(rows, asked.excel))
        except Exception as error:
            # The 200 and the first pages are sent: all that is left is to break the response off,
            # so that the client sees a failed download, never a short file that looks whole.
            print(f"mp_dashboard: /-/export/{asked.export.name}.csv stopped: {error!r}", file=sys.stderr)
            raise

    filename = f"mp-{asked.export.name}-{mp_today()}.csv"
    return AsgiStream(write, headers={"content-disposition": f'attachment; filename="{filename}"'},
                      content_type="text/csv; charset=utf-8")


# The view each export stands for, and Datasette's own arguments that change nothing in what a
# streamed CSV of it holds (others, `_sort` or `_col` say, leave the request to Datasette).
VIEWS = {f"export_{name}": name for name in EXPORTS}
HARMLESS = {"_stream", "_dl", "_size", "_labels", "_nofacet", "_nocount", "_header"}
# Filters with the same meaning on the view and here (`alias` here is also an article or a SKU).
SAME_FILTERS = {"marketplace", "account", "warehouse", *DAYS}


def instead_of_view(path: str, query: str) -> tuple[str, str] | None:
    """(path, query string) of the export that serves Datasette's streamed CSV of `export_daily`
    or `export_stock` (`/mp/export_daily.csv?_stream=on`, «stream all rows» on the view's page);
    None for any other request. Datasette streams a view by OFFSET, which at a year fails on the
    first page; the export streams it by the key. Only for filters that mean the same on both:
    the rows are the view's (in the key's order, money as exact decimals)."""
    view = path.removeprefix(f"/{DATABASE}/").removesuffix(".csv")
    args = parse_qsl(query, keep_blank_values=True)
    if (not path.endswith(".csv") or view not in VIEWS or not path.startswith(f"/{DATABASE}/")
            or not any(name == "_stream" and value not in ("", "0", "off") for name, value in args)):
        return None
    if any(name not in HARMLESS and name not in SAME_FILTERS for name, _ in args):
        return None
    export = EXPORTS[VIEWS[view]]
    kept = [(name, value) for name, value in args if not name.startswith("_") and value != ""]
    if not export.by_day and any(name in DAYS for name, _ in kept):
        return None
    return f"/-/export/{export.name}.csv", urlencode(kept)


async def export_csv(datasette, request):
    """/-/export/daily.csv, stock.csv, stock_days.csv: readable to whoever may read the table it
    comes from (with a password, nobody anonymous: 403, as every CSV)."""
    export = EXPORTS[request.url_vars["name"]]
    await datasette.ensure_permissions(request.actor, [("view-table", (DATABASE, export.table)), *SEEING_THE_DATABASE])
    if request.method != "GET":  # only ever a read: say so rather than answer a POST with data
        return Response.text("GET only\n", status=405, headers={"Allow": "GET"})
    if DATABASE not in datasette.databases:
        return Response.text(f"no database {DATABASE}", status=404)
    try:
        asked = Request.parse(export, request.args)
    except ValueError as error:
        return Response.text(f"{error}\n", status=400)
    return stream(datasette.get_database(DATABASE), asked)


# --------------------------------------------------------------------------------------------
# Datasette's streamed CSV of a table sorted by a column whose values repeat

LEFT_TO_DATASETTE = {"_labels", "_trace"}  # a stream with these is Datasette's own
PAGE_ARGUMENTS = {"_stream", "_dl", "_header", "_shape", "_nocount", "_nofacet"}  # the stream's, not a page's
FORWARDED_HEADERS = {"cookie", "authorization"}  # who asks: a page refused to them is refused here


class PageRefused(Exception):
    """A page of a stream that Datasette did not answer with its rows (the HTTP status)."""


async def stream_in_key_order(datasette, scope, table: str, query: str) -> AsgiStream | None:
    """Datasette's streamed CSV of a table page («stream all rows», `?_stream=on`) sorted by a
    column whose values repeat (`day`), every row once; None for any other request.

    Datasette streams page by page and asks for its first page by the column alone, the pages
    after it by the column and the key, so rows of the first page's last day were skipped or sent
    twice (`orders` newest first, 3 rows a page: 12 of 21 order lines sent, 10 distinct). Here
    each page is Datasette's own JSON page of the same request (its filters, its columns), the
    first asked for from before every row as the table page asks for it (datasette_plugin.
    first_page_in_key_order), so every page after it is bounded where it starts too; the rows
    are written as Datasette writes its CSV, with its `max_csv_mb`, `_header=off` and `_dl`.
    (A page's `_next` is already gone: datasette_plugin.streamed_from_the_first_row.)"""
    args = parse_qs(query, keep_blank_values=True)
    if (scope.get("method") != "GET" or not scope["path"].endswith(".csv") or not args.get("_stream", [""])[0]
            or "_next" in args or LEFT_TO_DATASETTE & args.keys()):
        return None
    token = await before_every_row(datasette, table, args)
    if token is None or any(column.type.upper() == "BLOB"
                            for column in await datasette.get_database(DATABASE).table_column_details(table)):
        return None  # (Datasette writes a link to each BLOB, which a JSON page does not give)
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", [])
               if name.decode("latin-1").lower() in FORWARDED_HEADERS}
    asked = [(name, value) for name, values in args.items() if name not in PAGE_ARGUMENTS for value in values]
    if "_size" not in args:
        asked.append(("_size", "max"))
    url = f"/{DATABASE}/{quote(table)}.json?" + urlencode([*asked, ("_nocount", "1"), ("_nofacet", "1")])

    async def page(after: str) -> dict:
        answer = await datasette.client.get(f"{url}&{urlencode({'_next': after})}", headers=headers)
        if answer.status_code != 200:
            raise PageRefused(answer.status_code)
        return answer.json()

    try:
        first = await page(token)
    except PageRefused:
        return None  # (refused, a filter Datasette rejects: its own answer says why)

    async def write(response) -> None:
        writer, rows = LimitedWriter(response, datasette.setting("max_csv_mb")), first
        try:
            if args.get("_header", [""])[0] != "off":
                await writer.write(csv_text([rows["columns"]], excel=False))
            while True:
                await writer.write(csv_text(rows["rows"], excel=False))
                if not rows["next"]:
                    break
                rows = await page(rows["next"])
        except Exception as error:  # as Datasette's own stream: the error ends the text
            print(f"mp_dashboard: {scope['path']} stream stopped: {error!r}", file=sys.stderr)
            await response.write(str(error))

    download = bool(args.get("_dl", [""])[0])
    return AsgiStream(write, content_type=f"text/{'csv' if download else 'plain'}; charset=utf-8",
                      headers={"content-disposition": f'attachment; filename="{table}.csv"'} if download else {})


# --------------------------------------------------------------------------------------------
# A query's CSV and JSON list, every row: a canned query's and the seller's own SQL

QUERY_ANSWER_PATH = "/-/query/{name}.{format}"  # where instead_of_query_answer() sends /mp/<query>.csv
SQL_ANSWER_PATH = "/-/sql.{format}"  # and /mp.csv?sql=...
SPOOL_BYTES = 4 * 1024 * 1024  # an answer bigger than this waits on disk, not in memory
# The most an answer may take on that disk (a year of `history`, the longest canned answer at
# the reference seller, is 17 MB; `select * from orders` at a year would be ~3 GB, on the disk
# that holds the database): past it, the request is refused with where to get such an answer.
ANSWER_BYTES = 256 * 1024 * 1024
CHUNK_CHARACTERS = 64 * 1024  # a write of the response


def instead_of_query_answer(path: str, query: str, queries: dict) -> tuple[str, str] | None:
    """(path, query string) of `query_answer`, which answers the CSV of a canned query
    (`/mp/history.csv?days=90`, the CSV link of a query's page and of every dashboard card)
    and its JSON list (`.json?_shape=array`, the cards' JSON link; `&_nl=on`, a row a line);
    None for any other request.

    Datasette's answer to a query ends at `max_returned_rows` (5,000) and these two forms say
    nothing of it: at the reference seller `history` for 90 days (61,920 rows) came as its
    newest eight days, and `restock` as 5,000 of its 8,222 rows. Datasette's other JSON forms
    say `"truncated": true`, and are left to it, as is a debug page (`_trace`). The same for
    the seller's own SQL (`/mp.csv?sql=...`), but for one with Datasette's magic parameters
    (`:_now_epoch`...), which only Datasette knows."""
    args = parse_qs(query, keep_blank_values=True)
    name, _, format = path.rpartition(".")
    if not (format == "csv" or format == "json" and args.get("_shape") == ["array"] and "_json" not in args) \
            or "_trace" in args:
        return None
    if name == f"/{DATABASE}" and args.get("sql", [""])[0] and ":_" not in args["sql"][0]:
        return SQL_ANSWER_PATH.format(format=format), query
    name = name.removeprefix(f"/{DATABASE}/")
    if not path.startswith(f"/{DATABASE}/") or "/" in name or name not in queries or queries[name].get("write"):
        return None
    return QUERY_ANSWER_PATH.format(name=name, format=format), query  # (a query's name is a plain word)


async def query_answer(datasette, request):
    """/-/query/<name>.csv or .json: every row of a canned query, as Datasette writes its CSV
    (`_header=off`, `_dl=1` to download) or its JSON list (`_nl=on`: a row a line), to whoever
    may see the query's page.

    The query runs once, on a read-only connection of its own (not one of Datasette's three,
    which the pages need meanwhile), under `sql_time_limit_ms` for each PAGE_ROWS rows, as the
    exports' pages; the answer is written to a file that stays in memory up to SPOOL_BYTES, so
    the snapshot it reads is let go as soon as the rows are out, however slowly the client
    reads them. (Paging it with OFFSET would run it again for every page: `history` for a year
    is 251,808 rows, ~5 s once, and its last pages alone would pass the time limit.)"""
    name = request.url_vars["name"]
    canned = await datasette.get_canned_query(DATABASE, name, request.actor)
    if canned is None or canned.get("write"):
        await datasette.ensure_permissions(request.actor, SEEING_THE_DATABASE)
        return Response.text(f"no query {name}\n", status=404)
    await datasette.ensure_permissions(request.actor, [("view-query", (DATABASE, name)), *SEEING_THE_DATABASE])
    return await every_row(datasette, request, canned["sql"], canned.get("params"), name)


async def sql_answer(datasette, request):
    """/-/sql.csv or .json: every row of the seller's own SQL (`/mp.csv?sql=...`), as
    `query_answer` sends a canned query's, to whoever may run SQL; a statement Datasette would
    refuse is refused in its words."""
    from datasette.utils import InvalidSql, validate_sql_select
    from datasette.views.base import DatasetteError

    await datasette.ensure_permissions(request.actor, [("execute-sql", DATABASE), *SEEING_THE_DATABASE])
    sql = request.args.get("sql") or ""
    try:
        validate_sql_select(sql)
    except InvalidSql as error:
        raise DatasetteError(str(error), title="Invalid SQL", status=400)
    return await every_row(datasette, request, sql, None, DATABASE)


async def every_row(datasette, request, sql: str, names: list | None, filename: str):
    """The answer of `sql` with the request's parameters (`names`, else the ones it binds)."""
    from datasette.utils import derive_named_parameters
    from datasette.views.base import DatasetteError

    db = datasette.get_database(DATABASE)
    names = names or await derive_named_parameters(db, sql)
    params = {**EVERY_ROW, **{key: request.args.get(key) or "" for key in names if not key.startswith("_")}}
    form = answer_form(request.url_vars["format"], request.args)
    try:
        spool = await asyncio.to_thread(spool_answer, db.path, sql, params, form, datasette.setting("sql_time_limit_ms"))
    except QueryTooLong:
        raise DatasetteError("SQL query took too long. The time limit is controlled by the "
                             "sql_time_limit_ms configuration option.", title="SQL Interrupted", status=400)
    except AnswerTooBig:
        raise DatasetteError(TOO_BIG, title="Слишком большой ответ", status=400)
    except sqlite3.Error as error:
        raise DatasetteError(str(error), title="Invalid SQL", status=400)
    download = form.download and {"content-disposition": f'attachment; filename="{filename}.csv"'}
    return spooled_response(spool, form.content_type, download or {})


class QueryTooLong(Exception):
    """PAGE_ROWS rows of a query took longer than the time limit."""


class AnswerTooBig(Exception):
    """An answer past ANSWER_BYTES."""


TOO_BIG = (f"Ответ больше {ANSWER_BYTES // 2 ** 20} МБ: столько витрина в один файл не собирает. "
           "Таблицу целиком отдаёт «stream all rows» на её странице (CSV потоком), цифры по дням за всю "
           "историю — полные выгрузки /-/export/daily.csv и /-/export/stock_days.csv; или сузьте запрос, "
           "например фильтром по дню.")


@dataclass(frozen=True)
class AnswerForm:
    """How an answer is written, as Datasette writes it: its text before the rows (`head`
    given the columns), a page of rows (`rows`: the columns, the rows, whether the first page)
    and after them (`tail`)."""
    content_type: str
    head: Callable[[list], str]
    rows: Callable[[list, list, bool], str]
    tail: str = ""
    download: bool = False


def answer_form(format: str, args) -> AnswerForm:
    """CSV (`_dl`, `_header=off`), or the JSON list (`_shape=array`; `_nl`: a row a line)."""
    if format == "csv":
        download = bool(args.get("_dl"))
        header = args.get("_header") != "off"
        return AnswerForm(f"text/{'csv' if download else 'plain'}; charset=utf-8",
                          lambda columns: csv_text([columns], excel=False) if header else "",
                          lambda columns, rows, first: csv_text(rows, excel=False), download=download)

    def objects(columns, rows):  # (an infinity as Datasette writes one: null; the queries make none)
        return (json.dumps({c: None if isinstance(v, float) and math.isinf(v) else v for c, v in zip(columns, row)})
                for row in rows)

    if args.get("_nl"):
        return AnswerForm("text/plain", lambda columns: "",
                          lambda columns, rows, first: ("" if first else "\n") + "\n".join(objects(columns, rows)))
    return AnswerForm("application/json; charset=utf-8", lambda columns: "[",
                      lambda columns, rows, first: ("" if first else ", ") + ", ".join(objects(columns, rows)), "]")


def spool_answer(path: str, sql: str, params: dict, form: AnswerForm, limit_ms: int):
    """`sql`'s rows written as `form` says in a temporary file, at its start. The time limit is
    for each PAGE_ROWS rows: a long answer may take longer in all, but never stalls."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    deadline = time.perf_counter() + limit_ms / 1000
    conn.set_progress_handler(lambda: time.perf_counter() > deadline, 1000)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+", encoding="utf-8", newline="")
    try:
        register_functions(conn)
        cursor = conn.execute(sql, params)
        columns = [column[0] for column in cursor.description]
        spool.write(form.head(columns))
        first = True
        while rows := cursor.fetchmany(PAGE_ROWS):
            spool.write(form.rows(columns, rows, first))
            if spool.tell() > ANSWER_BYTES:
                raise AnswerTooBig()
            first, deadline = False, time.perf_counter() + limit_ms / 1000
        spool.write(form.tail)
    except BaseException as error:
        spool.close()
        if isinstance(error, sqlite3.OperationalError) and str(error) == "interrupted":
            raise QueryTooLong() from error
        raise
    finally:
        conn.close()
    spool.seek(0)
    return spool


def spooled_response(spool, content_type: str, headers: dict) -> AsgiStream:
    async def write(response) -> None:
        try:
            while chunk := await asyncio.to_thread(spool.read, CHUNK_CHARACTERS):
                await response.write(chunk)
        finally:
            spool.close()

    return AsgiStream(write, headers=headers, content_type=content_type)
