"""Datasette plugin: the viewer's SQL functions, privacy, pages and exports.

Every connection gets the SQL functions of collector/sqlfunctions.py (``mp_today()`` and its
kin), so that every query agrees with the collector on "today".

The plugin also makes the viewer private when a password is configured (see ``password_required``),
shows a list query's HTML page a page of rows at a time (see ``page_of``), sends ``/`` to the
dashboard, and serves the help page ``/-/help``, the health check
``/-/health.json`` and the full exports ``/-/export/daily.csv`` and ``/-/export/stock.csv``
(collector/export.py), which also answer the streamed CSV of the views ``export_daily`` and
``export_stock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import os
import re
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode
from zoneinfo import ZoneInfoNotFoundError

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.filters import FilterArguments, Filters
from datasette.utils import compound_keys_after_sql, escape_sqlite, tilde_encode, urlsafe_components
from datasette.utils.asgi import Response
from markupsafe import Markup, escape

from collector import viewer
from collector.answer_cache import FileVersions
from collector.sqlfunctions import (mp_date_add, mp_low_stock_days, mp_now, mp_target_cover_days, mp_today,
                                     register_functions, zone)


@hookimpl
def prepare_connection(conn):
    register_functions(conn)


# --------------------------------------------------------------------------------------------
# Privacy: with a password configured, nobody anonymous sees anything.

DATABASE = "mp"          # DESIGN.md: the database is always served as `mp`
DASHBOARD = "/-/dashboards/today"
AUTH_PLUGIN = "datasette-auth-passwords"


def password_required(datasette) -> bool:
    """Whether sign-in is required: datasette-auth-passwords has a non-empty `*_password_hash`.

    metadata.yml gives it `$env: DATASETTE_PASSWORD_HASH`, so the variable decides. Reading the
    resolved plugin config rather than the variable itself keeps one source of truth: whatever
    account the login form would accept is exactly what turns the gate on. Without one the
    viewer stays open, which is safe only because it listens on 127.0.0.1.

    Kept on the instance: the configuration does not change while it runs, and plugin_config()
    copies the whole metadata, asked ~400 times for one database page (~14 ms of it).
    """
    if not hasattr(datasette, "_mp_password_required"):
        config = datasette.plugin_config(AUTH_PLUGIN) or {}
        datasette._mp_password_required = any(value for key, value in config.items() if key.endswith("_password_hash"))
    return datasette._mp_password_required


@hookimpl
def permission_allowed(datasette, actor, action, resource):
    # Deny every action (view-instance, view-table, execute-sql, ...) to an anonymous actor when
    # a password is set. Datasette checks view-instance on every page, JSON and CSV URL, the
    # database download and /-/ introspection pages, and datasette-dashboards checks it too, so
    # this one rule covers them all; a signed-in actor falls through to Datasette's defaults
    # (everything readable, ad-hoc SQL allowed). Static files and /-/login stay reachable.
    if actor is None and password_required(datasette):
        return False
    # The *_recomputed views say what each summary must hold, for `mp-collector rebuild --check`:
    # each recomputes a summary from the whole history (minutes at a year), so none has a page
    # (it would only ever end at the time limit). Ad-hoc SQL still reads them.
    if action == "view-table" and isinstance(resource, (tuple, list)) and str(resource[1]).endswith("_recomputed"):
        return False
    return None


@hookimpl
def forbidden(datasette, request):
    """A person opening a page unsigned gets the login form, not a bare 403. Data URLs keep
    the 403 (a script or a spreadsheet should fail loudly, not parse a login page)."""
    if request.actor is None and password_required(datasette) and request.method == "GET" \
            and not request.path.endswith((".json", ".csv")) and "_format" not in request.args:
        return Response.redirect(datasette.urls.path("/-/login"))
    return None


PROJECT_DIR = Path(__file__).resolve().parent.parent
PERMISSION_TTL_SECONDS = 60.0


def remembered_answers(permission_allowed):
    """Datasette's permission_allowed() with each answer kept for a minute. The database page
    asks ~540 times (each table and view, for the actor and again for anyone, each view-table
    check a query of sqlite_master on the database's thread): ~40 ms of its ~110 ms. Every
    answer here follows from the configuration, the plugins and the schema, none of which a
    request changes; the key is the whole actor, so one person's answer is never another's,
    and a schema upgraded while the viewer runs is seen within the minute."""
    answers: dict[str, tuple[float, bool]] = {}

    async def remembered(actor, action, resource=None, default=False):
        key = json.dumps([actor, action, resource, default], sort_keys=True, default=str)
        now = time.monotonic()
        kept = answers.get(key)
        if kept is None or now - kept[0] > PERMISSION_TTL_SECONDS:
            if len(answers) > 10_000:
                answers.clear()
            kept = answers[key] = (now, await permission_allowed(actor, action, resource=resource, default=default))
        return kept[1]
    return remembered


@hookimpl
def startup(datasette):
    served_as_mp(datasette)
    # The database page counts every table (see big_names), and asks each table's shape.
    if DATABASE in datasette.databases:
        database = datasette.get_database(DATABASE)
        if database.path:  # (always, served: a file)
            database.table_counts = functools.partial(counts_of_small_tables, database)
            remember_table_shapes(database)
            refresh_schemas_when_changed(datasette, database)
    # Datasette 0.65 copies the whole metadata (the dashboards' configuration is most of it) to
    # answer whether a table may be viewed, ~0.5 ms, and the database page asks it for each of its
    # ~75 tables and views: most of the page's time. The metadata does not change while it runs
    # (this project never serves it with --reload), so each table's answer is kept.
    if hasattr(datasette, "_table_permission_allows"):
        datasette._table_permission_allows = functools.lru_cache(maxsize=1024)(datasette._table_permission_allows)
    datasette.permission_allowed = remembered_answers(datasette.permission_allowed)
    # The same copy answers plugin_config(), and datasette-render-markdown (which
    # datasette-dashboards brings for its Markdown) asks it for every text cell of every page, only
    # to learn that no column here is Markdown: ~30 us a cell, 6-8 ms of a table page of 100 rows.
    datasette.plugin_config = functools.lru_cache(maxsize=256)(datasette.plugin_config)
    try:  # (`mp-collector serve` refuses to start so; Datasette started by hand is told)
        zone()
    except (ZoneInfoNotFoundError, ValueError):
        print(f"mp_dashboard: TIMEZONE={os.environ.get('TIMEZONE')!r} is not a known time zone (e.g. "
              "Europe/Moscow): every page will fail until it is set right", file=sys.stderr)
    # The dashboard's pages and scripts are templates/ and static/, which Datasette only gets
    # through its command line. Served without them, the dashboard shows empty cards: say so
    # once at start rather than leave someone puzzling over a blank page.
    templates = PROJECT_DIR / "templates"
    given = Path(datasette.template_dir).resolve() if datasette.template_dir else None
    if given != templates or "assets" not in dict(datasette.static_mounts):
        print(f"mp_dashboard: serve with --template-dir {templates} --static assets:{PROJECT_DIR / 'static'} "
              "(`mp-collector serve`, collector/viewer.py), or the dashboard cannot draw", file=sys.stderr)

    async def find_big_tables_now():
        # Before the first request, which would otherwise wait for it.
        if DATABASE in datasette.databases:
            await find_big_names(datasette.get_database(DATABASE))
        if viewer.serving:
            viewer.freeze_what_start_up_loaded()

    return find_big_tables_now


# What Datasette asks of the schema alone (Database's methods), on every page.
SHAPE_QUESTIONS = ("table_names", "view_names", "table_exists", "hidden_table_names", "table_columns",
                   "table_column_details", "primary_keys", "fts_table", "foreign_keys_for_table",
                   "get_all_foreign_keys", "get_table_definition", "get_view_definition")


def remember_table_shapes(database) -> None:
    """Keep Datasette's answers about the schema (the tables and views, each table's columns, key,
    foreign keys and full-text table, their SQL) while it is the same. Each is a trip to one of
    Datasette's SQL threads and back, ~0.3 ms, and the database page asked three of each of its
    ~70 tables: ~200 trips, most of the page's time; a table's page asked ten (docs/performance-log.md,
    the thirty-sixth step)."""
    answers: dict[tuple, tuple[int, object]] = {}

    def remembered(question: str, ask):
        async def answer(*args, **kwargs):
            version = file_versions(database).schema()  # (before asking: a change after it is seen next time)
            key = (question, args, tuple(sorted(kwargs.items())))
            kept = answers.get(key)
            if kept is None or kept[0] != version:
                kept = answers[key] = (version, await ask(*args, **kwargs))
            return copy.deepcopy(kept[1])  # (the caller's own lists and dicts)

        return answer

    for question in SHAPE_QUESTIONS:
        setattr(database, question, remembered(question, getattr(database, question)))


def refresh_schemas_when_changed(datasette, database) -> None:
    """Datasette refreshes its catalog of the schemas before every request: three trips to SQL
    threads (PRAGMA schema_version of each database, and its catalog's own versions), ~1 ms of a
    request that is often 5-15 ms. Let it refresh when the served file's schema has changed."""
    refresh = datasette.refresh_schemas
    refreshed_at: list[int] = []

    async def refresh_when_changed():
        version = file_versions(database).schema()
        if refreshed_at != [version]:
            await refresh()
            refreshed_at[:] = [version]

    datasette.refresh_schemas = refresh_when_changed


def file_versions(database) -> FileVersions:
    if not hasattr(database, "_mp_versions"):
        database._mp_versions = FileVersions(database.path)
    return database._mp_versions


def served_as_mp(datasette) -> None:
    """The file as `mp`, whatever DATABASE_PATH names it. Datasette names a database after its
    file, and metadata.yml, the dashboard and every link say `mp`: served from seller.db, every
    page failed."""
    files = [db for db in datasette.databases.values() if db.path]
    if DATABASE not in datasette.databases and len(files) == 1:
        datasette.remove_database(files[0].name)
        datasette.add_database(files[0], name=DATABASE)


@hookimpl
def extra_template_vars(datasette, request, view_name, database, table):
    # templates/base.html offers "Войти" only when signing in means something; query-mp.html
    # draws the links between a canned query's pages.
    # (mp_schema_note: called by the page only when its SQL failed)
    values = {"mp_password_required": password_required(datasette), "mp_datalist_options": datalist_options,
              "mp_page": page_links(datasette, request), "mp_schema_note": lambda: schema_note(datasette)}
    if view_name != "table" or database != DATABASE or request is None or not request.args.get("_next"):
        return values

    async def with_the_sql_a_seller_would_write():
        query = await first_page_query(datasette, table, request)
        return {**values, **({"query": query} if query else {})}

    return with_the_sql_a_seller_would_write


# --------------------------------------------------------------------------------------------
# A canned query's page shows its rows a page at a time.
#
# Datasette 0.65 shows a canned query's whole result (up to max_returned_rows, 5,000) on its
# HTML page, and writing 5,000 rows through its templates and render_cell hooks takes ~0.5 s,
# whatever the SQL costs. The list queries end with
#     LIMIT ifnull(nullif(:_page_rows, ''), -1) OFFSET ifnull(nullif(:_page_offset, ''), 0)
# and these magic parameters make that page `_page` (the first when none) of `default_page_size`
# rows (100, as Datasette's table pages) on the HTML page, with links to the pages around it
# (templates/query-mp.html), and every row for JSON and CSV (their links on a page of rows keep
# its `_page`, and still mean the whole result), which the dashboard, exports and scripts read.
# Run anywhere else (the alerts, a test, the seller's own sqlite3) the parameters are blank:
# every row.

LAST_PAGE = 10 ** 9
EVERY_ROW = {"_page_rows": -1, "_page_offset": 0}  # the magic parameters of JSON, CSV: no page


def page_of(datasette, request) -> dict | None:
    """The page of rows the HTML page shows: {"number", "rows", "offset"}; None for JSON, CSV
    and any other format, which get every row."""
    if request is None or request.url_vars.get("format") is not None:
        return None
    try:  # (a page past any list's end is empty; past SQLite's integers it would be an error)
        number = min(max(1, int(request.args.get("_page") or 1)), LAST_PAGE)
    except ValueError:
        number = 1
    rows = datasette.setting("default_page_size")
    return {"number": number, "rows": rows, "offset": (number - 1) * rows}


@hookimpl
def register_magic_parameters(datasette):
    def page(key, request):
        asked = page_of(datasette, request)
        if key not in ("rows", "offset"):
            raise KeyError(key)
        return EVERY_ROW[f"_page_{key}"] if asked is None else asked[key]

    return [("page", page)]


def page_links(datasette, request) -> dict | None:
    """The page asked for with the addresses of the one before and after it (relative: the same
    path, whatever prefix a proxy serves it under)."""
    asked = page_of(datasette, request)
    if asked is None:
        return None
    args = [(key, value) for key in request.args if key != "_page" for value in request.args.getlist(key)]

    def url(number: int) -> str:
        return "?" + urlencode(args + ([("_page", str(number))] if number > 1 else []))

    return {**asked, "previous_url": url(asked["number"] - 1) if asked["number"] > 1 else None,
            "next_url": url(asked["number"] + 1)}


def datalist_options(options, labels) -> Markup:
    """A filter's suggestions as <option> elements, built here rather than by a template loop:
    the group filter offers every article (~5,000 at a big seller), which Jinja's async
    rendering took ~150 ms to write out on every view of the dashboard."""
    labels = labels or {}
    return Markup("".join(f'<option value="{escape(str(option))}">{escape(labels.get(str(option), ""))}</option>'
                          for option in options or []))


# --------------------------------------------------------------------------------------------
# Pages

async def home(datasette, request):
    # The seller's home is the dashboard; Datasette's own index lists one database, which the
    # navigation links to anyway. datasette-auth-passwords also lands here after sign-in. An
    # anonymous visitor of a private viewer goes straight to the login form (forbidden above).
    await datasette.ensure_permissions(request.actor, ["view-instance"])
    return Response.redirect(datasette.urls.path(DASHBOARD))


async def help_page(datasette, request):
    """/-/help: what every figure means, where it comes from, and how fresh it is now."""
    await datasette.ensure_permissions(request.actor, ["view-instance"])
    freshness, queries = [], {}
    if DATABASE in datasette.databases:
        queries = await datasette.get_canned_queries(DATABASE, request.actor)
        if "freshness" in queries:
            result = await datasette.get_database(DATABASE).execute(queries["freshness"]["sql"])
            freshness = [dict(row) for row in result.rows]
    return Response.html(await datasette.render_template(
        "mp_help.html",
        {"timezone": zone().key, "now": mp_now(), "freshness": freshness, "queries": queries,
         "database": DATABASE, "password_required": password_required(datasette),
         "target_cover_days": mp_target_cover_days(), "low_stock_days": mp_low_stock_days()},
        request=request,
    ))


DEFAULT_STALE_MINUTES = 30  # three missed passes of the 10-minute timer


async def health(datasette, request):
    """/-/health.json for a monitor: 200 when every account x dataset saved data within the
    threshold (`?stale_minutes=`, else STALE_AFTER_MINUTES, else 30), 503 naming the ones that
    did not. Behind sign-in like every page: a monitor uses HTTP Basic when a password is set."""
    await datasette.ensure_permissions(request.actor, ["view-instance"])
    try:
        threshold = int(request.args.get("stale_minutes") or os.environ.get("STALE_AFTER_MINUTES")
                        or DEFAULT_STALE_MINUTES)
    except ValueError:
        return Response.json({"ok": False, "error": "stale_minutes must be a whole number"}, status=400)
    now = datetime.now(timezone.utc)
    sources = []
    if DATABASE in datasette.databases:
        try:
            result = await datasette.get_database(DATABASE).execute(
                "SELECT account, dataset, status, last_success_at, last_error FROM source_freshness "
                "WHERE required ORDER BY account, dataset")  # optional datasets never make the viewer unhealthy
        except sqlite3.OperationalError as error:
            if not (str(error).startswith(NOT_IN_THE_SCHEMA) and (lag := await schema_lag(datasette))):
                raise
            said = ("the collector has not created the database yet (no pass so far)" if lag[0] == 0 else
                    f"the database is at schema version {lag[0]}, the viewer needs {lag[1]}: "
                    f"the collector upgrades it at its next pass")
            return Response.json({"ok": False, "checked_at": mp_now(), "error": said}, status=503)
        for account, dataset, status, last_success_at, last_error in result.rows:
            age = (now - datetime.fromisoformat(last_success_at)).total_seconds() / 60 if last_success_at else None
            sources.append({"account": account, "dataset": dataset, "status": status,
                            "last_success_at": last_success_at,
                            "minutes_since_success": None if age is None else int(age),
                            "stale": age is None or age > threshold, "last_error": last_error})
    stale = [f"{s['account']} {s['dataset']}" for s in sources if s["stale"]]
    healthy = bool(sources) and not stale
    return Response.json({"ok": healthy, "checked_at": mp_now(), "stale_minutes": threshold,
                          "stale": stale, "sources": sources}, status=200 if healthy else 503)


# --------------------------------------------------------------------------------------------
# Tables as big as the history
#
# Datasette counts a table's rows on its page and every table's on the database page with
# `count(*)`, which reads an index whole (and SQLite's count ignores the progress handler that
# enforces the time limit): at a year about a second a table warm, many cold. It counts a view
# by running it whole. So a page of a table with BIG_ROWS rows or more, or of a view, comes
# without the count (`_nocount=1`, as Datasette's own option: the rows and the next page are
# there), and the database page says "Many rows" for such a table. Which tables are big is
# found by counting at most BIG_ROWS rows of each (a few ms a table), again after BIG_TTL.

BIG_ROWS = 100_000
BIG_TTL_SECONDS = 600.0
_big_names: dict[str, tuple[float, frozenset[str]]] = {}  # database path -> (when found, names)
_refreshing: set[str] = set()


async def find_big_names(db) -> frozenset[str]:
    """The views of `db` and its tables of BIG_ROWS rows or more, counted now."""
    names = set(await db.view_names())
    for table in await db.table_names():
        rows = await db.execute(f"SELECT count(*) FROM (SELECT 1 FROM [{table}] LIMIT {BIG_ROWS})")
        if rows.first()[0] >= BIG_ROWS:
            names.add(table)
    _big_names[db.path] = (time.monotonic(), frozenset(names))
    return _big_names[db.path][1]


async def big_names(db) -> frozenset[str]:
    """find_big_names(), found once and then again in the background every BIG_TTL_SECONDS, so
    that a request waits for it at most once."""
    found = _big_names.get(db.path)
    if found is None:
        return await find_big_names(db)
    if time.monotonic() - found[0] > BIG_TTL_SECONDS and db.path not in _refreshing:
        _refreshing.add(db.path)
        asyncio.get_running_loop().create_task(find_big_names(db)).add_done_callback(
            lambda _: _refreshing.discard(db.path))
    return found[1]


async def counts_of_small_tables(db, limit: int = 10) -> dict[str, int | None]:
    """Database.table_counts() for the database page: a big table's count is None ("Many rows").
    Counted again only after the collector has written (each count is a trip to an SQL thread:
    ~50 of them)."""
    version = file_versions(db).data()  # (before counting: a write after it is seen next time)
    kept = getattr(db, "_mp_counts", None)
    if kept is not None and kept[0] == version:
        return dict(kept[1])
    big = await big_names(db)
    counts = {}
    for table in await db.table_names():
        counts[table] = None
        if table not in big:
            with contextlib.suppress(QueryInterrupted, sqlite3.DatabaseError):
                counts[table] = (await db.execute(f"SELECT count(*) FROM [{table}]", custom_time_limit=limit)).first()[0]
    db._mp_counts = (version, counts)
    return dict(counts)


def page_of_table(path: str) -> str | None:
    """The table or view whose page (HTML, JSON or CSV) `path` is, or None."""
    parts = path.split("/")
    if len(parts) != 3 or parts[1] != DATABASE or not parts[2] or parts[2].startswith("-"):
        return None
    return unquote(parts[2].rsplit(".", 1)[0] if parts[2].endswith((".json", ".csv")) else parts[2])


def last_week_link(request, table: str | None) -> str:
    """For a page of orders or sales stopped at the time limit, with no day filter: a link to the
    same page for the last 7 days, which SQLite reads by the day index (0.2-0.3 s at a year
    whatever the other filters); else ''."""
    if table not in ("orders", "sales") or any(name == "day" or name.startswith("day__") for name in request.args):
        return ""
    since = mp_date_add(mp_today(), -6)
    args = [(name, value) for name, value in parse_qsl(request.query_string, keep_blank_values=True)
            if name != "_next"]
    href = f"{request.path}?{urlencode([*args, ('day__gte', since)])}"
    return f' <a href="{escape(href)}">Те же строки за последние 7 дней, с {since}</a>.'


UNSORTABLE = "Cannot sort table by "  # the start of Datasette's error for a sort it does not offer


@hookimpl
def handle_exception(datasette, request, exception):
    """Three of Datasette's errors said to a seller, in Russian, with what to do; others as
    Datasette answers them."""
    from datasette.handle_exception import handle_exception as error_page

    said = said_to_a_seller(datasette, request, exception)
    if said is not None:
        return error_page(datasette, request, said)
    if not str(exception).startswith(NOT_IN_THE_SCHEMA):
        return None

    async def before_the_schema():
        said = await schema_not_ready(datasette)
        return None if said is None else await error_page(datasette, request, said)()

    return before_the_schema()


NOT_IN_THE_SCHEMA = ("no such table", "no such column")  # SQLite's words for what a schema lacks


async def schema_lag(datasette) -> tuple[int, int] | None:
    """(the database's schema version, this project's) while the collector has not created the
    database (0: a new server before its first pass, when the viewer starts on an empty file) or
    not yet upgraded it (it does at its next pass); None once it has."""
    from collector.storage import SCHEMA_VERSION

    if getattr(datasette, "_mp_schema_current", False):
        return None  # (once current, it stays so: the collector only upgrades)
    version, tables = (await datasette.get_database(DATABASE).execute(
        "SELECT user_version, (SELECT count(*) FROM sqlite_master WHERE type = 'table') "
        "FROM pragma_user_version")).first()
    # (version 0 with tables: made from schema.sql by hand, not by the collector; nothing to wait for)
    datasette._mp_schema_current = version >= SCHEMA_VERSION or (version == 0 and tables > 0)
    return None if datasette._mp_schema_current else (version, SCHEMA_VERSION)


def schema_lag_said(lag: tuple[int, int]) -> str:
    version, needed = lag
    if version == 0:
        return ("Данных ещё нет: сборщик создаст базу при первом проходе (mp-collector run или таймер "
                "mp-collector.timer, раз в 10 минут). Обновите страницу после него.")
    return (f"База данных версии {version}, а витрине нужна {needed}: сборщик обновит её при следующем "
            f"проходе (на годе истории — несколько минут). Обновите страницу после него.")


async def schema_not_ready(datasette) -> Exception | None:
    """The error page (503) of a page that cannot be drawn before the schema is there, or None."""
    from datasette.views.base import DatasetteError

    lag = await schema_lag(datasette)
    if lag is None:
        return None
    return DatasetteError(schema_lag_said(lag), title="Данных пока нет" if lag[0] == 0 else "База обновляется",
                          status=503)


async def schema_note(datasette) -> str:
    """For a canned query's page whose SQL failed: why, when it is the schema's lag; else ''."""
    lag = await schema_lag(datasette)
    return "" if lag is None else schema_lag_said(lag)


def said_to_a_seller(datasette, request, exception) -> Exception | None:
    """A query stopped at the time limit (a filter on a column no index keeps reads a big table
    whole); a sort a big table does not offer (metadata.yml names what it sorts by: by another
    column a page would read the whole table, past the time limit at a year), asked by an old
    link: a 400 that says which, not Datasette's 500."""
    from datasette.utils.asgi import BadRequest
    from datasette.views.base import DatasetteError

    seconds = f"{datasette.setting('sql_time_limit_ms') / 1000:g}"
    table = page_of_table(request.path[len(datasette.setting("base_url").rstrip("/")):])
    if isinstance(exception, DatasetteError) and exception.title == "SQL Interrupted":
        return DatasetteError(
            f"<p>Запрос шёл дольше {seconds} с, и витрина его остановила. На большой истории так бывает с "
            f"фильтром по колонке без индекса: он читает таблицу целиком. Добавьте фильтр по дню (day), "
            f"SKU (sku), артикулу (article) или штрихкоду (barcode) — их таблица находит сразу — или "
            f"откройте готовый запрос.{last_week_link(request, table)}</p>" + exception.message,
            title="Запрос остановлен", status=400, message_is_html=True)
    message = str(exception)
    if not (message.startswith(UNSORTABLE) and table):
        return None
    sortable = datasette.table_metadata(DATABASE, table).get("sortable_columns", [])
    by = f"только по {', '.join(sortable)}" if sortable else "только в своём порядке"
    return BadRequest(
        f"Таблицу {table} можно сортировать {by}: по {message[len(UNSORTABLE):]} запрос читал бы её "
        f"целиком, а на большой истории это дольше лимита в {seconds} с. Отфильтруйте строки (например, "
        f"по day) или отсортируйте своим SQL-запросом.")


# Table pages sorted by a column whose values repeat (`day`)
#
# Datasette 0.65 orders the first page of such a sort by the column alone and every page after it
# by the column and then the primary key, starting after the last row shown. So the first page's
# rows of its last day came in an index's order, and the second page skipped or repeated rows of
# that day: of 21 orders newest first, 10 were shown, 2 of them twice. The first page is therefore
# asked for as a next page too, with a `_next` before every row (`first_page_in_key_order`), and
# comes in the same order as the pages after it. "Before every row" is `$null` going up
# (Datasette's token for "after the NULLs", which sort first; so only for a column that holds no
# NULL) and a text past every value going down.
#
# Datasette asks for the page after a value v, newest first, as `col < v OR col IS NULL OR
# (col = v AND <after the key>)`. The IS NULL is there for NULLs, which sort last; with it SQLite
# cannot start at v: it read every newer row first (at a year, a page of `orders` six months back
# 1.5 s), or for `sales` gathered every older row into one sort (a second page at 90 days past the
# time limit). The plugin bounds the page where that leaves the same rows on it (`TablePage.bound`):
# to `col = v` when no filter is set and more rows than the page takes are left of day v after the
# key: SQLite then sorts the day's rows one account at a time (the index holds the account after
# the day; with a range of days it sorted the whole day, 39,000 lines of `orders`: 110-220 ms).
# Else to `col <= v`, and SQLite starts at v: when the column holds no NULL, or when more rows than
# the page takes, of those the filters leave, are older than v, so that no NULL, which would come
# after them, is on it (`sales.day` is NULL for a sale on no day). Where neither is known, the first
# page is Datasette's own: with "before every row" and no bound, SQLite chose to sort every row the
# filter leaves (`sales` of one account at a year, 6.8 s; Datasette's own first page 0.6 ms).

PAST_EVERY_TEXT = "\U0010ffff"  # sorts after any text that does not start with it, and after any number
LOOK_MS = 20  # how long a look at the rows for a bound may take (past it: no bound)


def streamed_from_the_first_row(path: str, query: str) -> str:
    """`query` of a table page without its `_next` when it asks for the streamed CSV («stream
    all rows»): the export form of a page carries the page's `_next` (a later page's, or the
    plugin's "before every row" on a first page), and Datasette refuses every stream with one
    ("_next not allowed for CSV streaming"), though the box says all rows."""
    args = parse_qsl(query, keep_blank_values=True)
    if not path.endswith(".csv") or not any(name == "_stream" and value for name, value in args):
        return query
    return urlencode([(name, value) for name, value in args if name != "_next"])


async def first_page_in_key_order(datasette, table: str, query: str) -> str:
    """`query` of a page of `table`, with a `_next` before every row when it asks for the first
    page of a sort by a column whose values repeat."""
    args = parse_qs(query, keep_blank_values=True)
    if "_next" in args or "_stream" in args:
        return query  # (a stream sorted by day: collector/export.py, stream_in_key_order)
    token = await before_every_row(datasette, table, args)
    return query if token is None else (query + "&" if query else "") + urlencode({"_next": token})


async def before_every_row(datasette, table: str, args: dict[str, list[str]]) -> str | None:
    """The `_next` "before every row" of `table` sorted as `args` (parse_qs) ask: a first page
    asked for with it comes in the order of the pages after it. None where Datasette's own first
    page is in that order, or the sort is not one this applies to."""
    page = TablePage(datasette, table, [(name, value) for name, values in args.items() for value in values])
    if page.sorted_by is None:
        return None
    column, descending = page.sorted_by
    if column not in page.metadata.get("sortable_columns", [column]) or not await page.columns():
        return None  # (Datasette answers: a sort not offered, a view, no such table)
    pks = await page.keys()
    if pks == [column] or await page.is_rowid(column):
        return None  # (no two rows share a value)
    # A NULL among the rows (last going down, first going up): from before every row, a page of
    # a table small enough to show its count (under BIG_ROWS) has every row sorted at once; a big
    # one's is bounded where it starts, or is the page as Datasette makes it. Going up, the page
    # starts from "$null" and a blank key, which comes before every row's only where the key's
    # first column is text.
    if not await page.holds_no_null():
        small = table not in await big_names(page.db)
        if descending and not (small or await page.starts_at_its_value(PAST_EVERY_TEXT)):
            return None
        if not descending and not (await page.blank_key_comes_first()
                                   and (small or await page.undated_bound(["" for _ in pks]) is not None)):
            return None
    return before_every_row_token(descending, pks)


def before_every_row_token(descending: bool, pks: list[str]) -> str:
    return ",".join([tilde_encode(PAST_EVERY_TEXT) if descending else "$null"] + [""] * len(pks))


async def first_page_query(datasette, table: str, request) -> dict | None:
    """For «View and edit SQL» of a first page asked for from before every row: its SQL as a
    seller would write it (its filters, its sort and the key), with none of the plugin's cursor
    (`p1`.. blank, U+10FFFF) and bound; the same rows. None for any other page."""
    page = TablePage.of_request(datasette, table, request)
    if page.sorted_by is None or (filters := await page.filters_sql()) is None:
        return None
    (column, descending), (where, params), pks = page.sorted_by, filters, await page.keys()
    if request.args.get("_next") != before_every_row_token(descending, pks):
        return None
    order = ", ".join([escape_sqlite(column) + (" desc" if descending else ""), *map(escape_sqlite, pks)])
    where = f" where {where.removeprefix(' AND ')}" if where else ""
    return {"sql": f"select * from {escape_sqlite(table)}{where} order by {order} limit {page.rows()}", "params": params}


@hookimpl
def filters_from_request(request, database, table, datasette):
    async def bound():
        token = request.args.get("_next") or ""
        if database != DATABASE or "," not in token:
            return None
        page = TablePage.of_request(datasette, table, request)
        if page.sorted_by is None:
            return None
        column, descending = page.sorted_by
        faceted = any(name.startswith("_facet") for name in page.names)
        if token.startswith("$null,"):
            if await page.holds_no_null():  # (the page after the NULLs going up: every row)
                return None if descending else FilterArguments([f"{escape_sqlite(column)} IS NOT NULL"])
            if faceted or not page.arg("_nocount"):
                return None  # (a facet or the count would be of the rows after the bound)
            return await page.undated_bound(urlsafe_components(token)[1:])
        if not descending or faceted:
            return None  # (Datasette counts a facet over the rows its filters leave, a bound among them)
        after, *key = urlsafe_components(token)
        return await page.bound(after, key)

    return bound


def arg_pairs(request) -> list[tuple[str, str]]:
    """Every name and value of a request's query string, in order, as Datasette reads them."""
    return [(name, value) for name in request.args for value in request.args.getlist(name)]


@hookimpl(specname="filters_from_request")
def found_by_an_index(request, database, table, datasette):
    async def by_index():
        if database != DATABASE:
            return None
        clauses, params = await index_sql(datasette, table, arg_pairs(request))
        return FilterArguments(clauses, params) if clauses else None

    return by_index


async def index_sql(datasette, table: str, pairs: list[tuple[str, str]]) -> tuple[list[str], dict]:
    """Clauses that leave a page's rows as its filters (`pairs`) leave them, and let SQLite find
    them by an index instead of reading every line (a value of a few lines, or of none, took
    longer than the time limit at a year): for each article or barcode asked of `orders` or
    `sales`, the SKUs it was written on (named_skus), which orders_day and sales_day seek day by
    day; for each warehouse asked of `orders`, no day after the last that an order named it
    (order_warehouses): none for a warehouse no order names; for each account or warehouse asked
    of `stock`, none when no key of stock_current has it. Nothing before the collector has made
    named_skus (schema 33)."""
    asked = [(name.split("__")[0], value) for name, value in pairs
             if table in ("orders", "sales") and name in ("article", "article__exact", "barcode", "barcode__exact")
             or table in ("orders", "stock") and name in ("warehouse", "warehouse__exact")
             or table == "stock" and name in ("account", "account__exact")]
    if not asked or await schema_lag(datasette):
        return [], {}
    names = [f"mp_index_{i}" for i in range(len(asked))]
    clauses = [index_clause(table, column, name) for name, (column, _) in zip(names, asked)]
    return clauses, dict(zip(names, (value for _, value in asked)))


EVERY_ID = 2 ** 63 - 1  # the largest rowid: `id <=` it leaves every row


def index_clause(table: str, column: str, name: str) -> str:
    """The clause index_sql gives a page for a filter on `column` by the value `:name`."""
    if table == "stock":
        # Every row of stock is a change of a key of stock_current, written with it: an account
        # or warehouse no key has has no row, and the bound on the rowid, worked out once, ends
        # the page before it reads any (a value no row has read the table whole: 1.2-2.5 s at a
        # year). A value some key has leaves the page as it was.
        return (f"id <= (SELECT CASE WHEN EXISTS (SELECT 1 FROM stock_current WHERE {column} = :{name}) "
                f"THEN {EVERY_ID} ELSE 0 END)")
    if column == "warehouse":
        return f"day <= (SELECT last_day FROM order_warehouses WHERE warehouse = :{name})"
    return f"sku IN (SELECT sku FROM named_skus WHERE name = :{name} AND lines > 0)"


class TablePage:
    """A page of a table as Datasette reads its arguments (`pairs`: every name and value, in
    order), and what the plugin looks up about the table for it, once."""

    def __init__(self, datasette, table: str, pairs: list[tuple[str, str]]):
        self.datasette, self.table, self.pairs = datasette, table, pairs
        self._first = {}
        for name, value in pairs:
            self._first.setdefault(name, value)
        self.names = list(self._first)
        self.db = datasette.get_database(DATABASE)
        self.metadata = datasette.table_metadata(DATABASE, table)
        self._columns = None

    @classmethod
    def of_request(cls, datasette, table: str, request) -> "TablePage":
        return cls(datasette, table, arg_pairs(request))

    def arg(self, name: str) -> str | None:
        """The first value of an argument, as Datasette reads one."""
        return self._first.get(name)

    @property
    def sorted_by(self) -> tuple[str, bool] | None:
        """(column, newest first), or None."""
        sort, sort_desc = self.arg("_sort"), self.arg("_sort_desc")
        if not sort and not sort_desc:
            sort, sort_desc = self.metadata.get("sort"), self.metadata.get("sort_desc")
        if sort and sort_desc:
            return None
        return (sort, False) if sort else (sort_desc, True) if sort_desc else None

    async def columns(self) -> dict:
        """The table's columns by name; empty for a view or no such table."""
        if self._columns is None:
            is_table = self.table in await self.db.table_names()
            self._columns = {c.name: c for c in await self.db.table_column_details(self.table)} if is_table else {}
        return self._columns

    async def keys(self) -> list[str]:
        return [c.name for c in sorted((await self.columns()).values(), key=lambda c: c.is_pk) if c.is_pk] or ["rowid"]

    async def is_rowid(self, column: str) -> bool:
        keys = [c for c in (await self.columns()).values() if c.is_pk]
        return len(keys) == 1 and keys[0].name == column and keys[0].type.upper() == "INTEGER"

    def filtered(self) -> bool:
        return any(not name.startswith("_") or "__" in name or name in ("_where", "_through")
                   or name.startswith("_search") for name in self.names)

    async def filters_sql(self) -> tuple[str, dict] | None:
        """The page's filters as Datasette and this plugin make them (`" AND ..."` and their
        parameters), or None where it has others (`_where`, a search, `_through`)."""
        if any(name in ("_where", "_through") or name.startswith("_search") for name in self.names):
            return None
        pairs = [(name, value) for name, value in self.pairs if not (name.startswith("_") and "__" not in name)]
        clauses, params = Filters(sorted(pairs), self.metadata.get("units", {})).build_where_clauses(self.table)
        by_index, index_params = await index_sql(self.datasette, self.table, self.pairs)
        return "".join(f" AND {clause}" for clause in clauses + by_index), {**params, **index_params}

    def rows(self) -> int:
        """The rows Datasette reads for the page: the page's size and one more, to know of a next page."""
        size = self.arg("_size") or self.metadata.get("size") or self.datasette.setting("default_page_size")
        return (self.datasette.setting("max_returned_rows") if size == "max" else int(size)) + 1

    async def holds_no_null(self) -> bool:
        """Whether the sorted column has no NULL: declared NOT NULL, the rowid, or found so now
        (an index on it answers at once; a look past LOOK_MS counts as a NULL)."""
        column = self.sorted_by[0]
        details = (await self.columns()).get(column)
        if details is None:
            return False
        if details.notnull or await self.is_rowid(column):
            return True
        return await self.at_least(1, f"{escape_sqlite(column)} IS NULL") is False

    async def blank_key_comes_first(self) -> bool:
        """Whether a blank key comes before every row's key (as Datasette compares keys): its first
        column is text that is never NULL (a number comes before any text)."""
        first = (await self.columns()).get((await self.keys())[0])
        return first is not None and first.notnull and "TEXT" in first.type.upper()

    async def at_least(self, rows: int, where: str, params: dict | None = None) -> bool | None:
        """Whether `rows` rows of the table meet `where`; None when the look took too long."""
        sql = f"SELECT count(*) FROM (SELECT 1 FROM {escape_sqlite(self.table)} WHERE {where} LIMIT {int(rows)})"
        found = await self.look(sql, params)
        return None if found is None else found[0][0] == rows

    async def look(self, sql: str, params: dict | None = None) -> list | None:
        """The rows of a look at the table for a bound; None when it took longer than LOOK_MS."""
        with contextlib.suppress(QueryInterrupted):
            return (await self.db.execute(sql, params or {}, custom_time_limit=LOOK_MS)).rows
        return None

    async def undated_bound(self, key: list[str]):
        """The bound that lets SQLite start a page from a NULL of the sorted column (`_next` "$null"
        and the `key` of the row before it; blank on a first page going up) where its rows are,
        or None: the keys of the next NULLs the page takes, read in the key's order (the partial
        index sales_undated holds the sales with no day so; `+col` keeps SQLite off sales_day,
        which holds them by SKU and would have them all sorted); going up, when fewer of them
        are left than the page takes, with the rows from the least value to the page's last."""
        pks, filters = await self.keys(), await self.filters_sql()
        if len(key) != len(pks) or filters is None:
            return None
        # (the filters again in the bound's own query, under names of its own)
        where, params = re.sub(r":p(\d+)\b", r":mp_filter_\1", filters[0]), \
            {re.sub(r"^p(\d+)$", r"mp_filter_\1", name): value for name, value in filters[1].items()}
        table = escape_sqlite(self.table)
        column, keys = escape_sqlite(self.sorted_by[0]), ", ".join(map(escape_sqlite, pks))
        after, after_params = self.keys_after(pks, key)
        nulls = f"+{column} IS NULL{after}{where}"
        bound = FilterArguments([f"({keys}) IN (SELECT {keys} FROM {table} WHERE {nulls} ORDER BY {keys} LIMIT {self.rows()})"],
                                {**params, **after_params})
        if self.sorted_by[1]:
            return bound
        enough = await self.at_least(self.rows(), nulls, {**params, **after_params})
        if enough is None:
            return None
        # (from the least value, which SQLite finds at once: by `IS NOT NULL` it read every NULL first)
        values = [] if enough else await self.look(
            f"SELECT {column} FROM {table} WHERE {column} >= (SELECT min({column}) FROM {table}){where}"
            f" ORDER BY {column} LIMIT {self.rows()}", params)
        if values is None:
            return None
        if not values:
            return bound
        # (a range closed at both ends: SQLite takes it for the few rows it is, not a quarter of the table)
        return FilterArguments([f"({bound.where_clauses[0]} OR {column} BETWEEN :mp_next_from AND :mp_next_to)"],
                               {**bound.params, "mp_next_from": values[0][0], "mp_next_to": values[-1][0]})

    def keys_after(self, pks: list[str], key: list[str]) -> tuple[str, dict]:
        """`" AND (k, ...) > (:mp_key_0, ...)"`, the keys after `key` as one range SQLite reads an
        index by; the leading ones left out where an exact filter asks for the value the key has
        there (else SQLite reads that range and sorts what it finds). Nothing after a blank key,
        which comes before every row's (blank_key_comes_first)."""
        if not any(key):
            return "", {}
        pinned = {name.removesuffix("__exact"): value for name, value in self.pairs
                  if name.removesuffix("__exact") in pks and (name in pks or name.endswith("__exact"))}
        start = 0
        while start < len(pks) - 1 and pinned.get(pks[start]) == key[start]:
            start += 1
        names = [f"mp_key_{i}" for i in range(start, len(pks))]
        return (f" AND ({', '.join(map(escape_sqlite, pks[start:]))}) > ({', '.join(':' + name for name in names)})",
                dict(zip(names, key[start:])))

    async def bound(self, value: str, key: list[str]):
        """The bound that lets SQLite start the page after (`value`, `key`), newest first, where
        its rows are, or None: `col = value` when no filter is set and more rows than the page
        takes are of that day, after the key (SQLite then sorts that day's rows of one account at
        a time: the index holds the account after the day); else `col <= value` where that leaves
        the page as it is."""
        column = escape_sqlite(self.sorted_by[0])
        if self.arg("_nocount") and not self.filtered():
            day = value
            if value == PAST_EVERY_TEXT:  # (the first page: the newest day's rows, all of them)
                with contextlib.suppress(QueryInterrupted):
                    newest = f"SELECT max({column}) FROM {escape_sqlite(self.table)}"
                    day, key = (await self.db.execute(newest, custom_time_limit=LOOK_MS)).first()[0], []
            pks = await self.keys()
            after_key = f" AND {compound_keys_after_sql(pks)}" if key and len(key) == len(pks) else ""
            params = {"day": day, **{f"p{i}": part for i, part in enumerate(key)}}
            if day not in (None, PAST_EVERY_TEXT) and await self.at_least(self.rows(), f"{column} = :day{after_key}", params):
                return FilterArguments([f"{column} = :mp_next_day"], {"mp_next_day": day})
        if await self.starts_at_its_value(value):
            return FilterArguments([f"{column} <= :mp_next_from"], {"mp_next_from": value})
        return None

    async def starts_at_its_value(self, value: str) -> bool:
        """Whether `column <= value` leaves this page, newest first from `value`, as it is: the
        column holds no NULL, or more rows than the page takes, of those its filters leave, are
        older than `value` (a NULL comes after them). Not where a count is shown (a big table's
        page shows none), as the count would be of the rows from `value` on; but from past every
        value, of a column with no NULL, that is every row."""
        if value != PAST_EVERY_TEXT and not self.arg("_nocount"):
            return False
        if await self.holds_no_null():
            return True
        filters = await self.filters_sql() if self.filtered() else ("", {})
        if filters is None or not self.arg("_nocount"):
            return False
        where, params = filters
        return bool(await self.at_least(self.rows(), f"{escape_sqlite(self.sorted_by[0])} < :value{where}",
                                        {**params, "value": value}))


@hookimpl
def asgi_wrapper(datasette):
    # Four requests are changed on their way in; every other passes as it came. Datasette's
    # streamed CSV of the export views is served by the export that streams them
    # (collector/export.py: instead_of_view), and a canned query's CSV and JSON list by one that
    # sends every row (instead_of_query_answer). A page of a big table or of a view comes without
    # its count, and a first page sorted by a column whose values repeat is asked for in the
    # order of the pages after it (both above); the streamed CSV of such a sort is sent from those
    # pages (collector/export.py: stream_in_key_order). A canned query's JSON skips Datasette's look for infinite
    # numbers in every cell (_json_infinity=1: ~6 us a row, 30 ms of a 5,000-row answer), which
    # finds none: the canned queries divide only through nullif() and add up whole numbers, and
    # SQLite gives NULL, not infinity, for a division by zero. It is answered from memory while
    # nothing was written since (collector/answer_cache.py).
    from collector.export import instead_of_query_answer, instead_of_view, stream_in_key_order

    def wrap(app):
        async def adjusted(scope, receive, send):
            base = datasette.setting("base_url").rstrip("/")
            path = scope.get("path", "") if scope.get("type") == "http" else ""
            if path.startswith(base + "/"):
                query = scope.get("query_string", b"").decode("utf-8", "replace")
                table = page_of_table(path[len(base):])
                queries = datasette.metadata("queries", database=DATABASE) or {}
                export = instead_of_view(path[len(base):], query) or instead_of_query_answer(path[len(base):], query, queries)
                if export:
                    path, query = export
                    scope = dict(scope, path=base + path, raw_path=(base + path).encode(), query_string=query.encode())
                elif table and DATABASE in datasette.databases and table not in queries:
                    if "_nocount" not in parse_qs(query, keep_blank_values=True) \
                            and table in await big_names(datasette.get_database(DATABASE)):
                        query = (query + "&" if query else "") + "_nocount=1"
                    query = streamed_from_the_first_row(path, query)
                    if streamed := await stream_in_key_order(datasette, scope, table, query):
                        return await streamed.asgi_send(send)
                    query = await first_page_in_key_order(datasette, table, query)
                    scope = dict(scope, query_string=query.encode())
                else:
                    if table and path.endswith(".json") and "_json_infinity" not in parse_qs(query, keep_blank_values=True) \
                            and table in queries:
                        scope = dict(scope, query_string=(query + "&" if query else "").encode() + b"_json_infinity=1")
                    if scope.get("method") == "GET" and (cache := answer_cache(datasette)) and cache.query_name(path):
                        context = (mp_today(), mp_target_cover_days(), mp_low_stock_days())
                        return await cache.serve(scope, receive, send, app, context)
            await app(scope, receive, send)

        return adjusted

    return wrap


ANSWER_CACHE_MB = 64  # default of the ANSWER_CACHE_MB variable; 0 turns the cache off


def answer_cache(datasette):
    """The instance's AnswerCache, made at its first request; None when turned off or without
    the database."""
    if not hasattr(datasette, "_mp_answer_cache"):
        from collector.answer_cache import AnswerCache, cacheable_queries

        try:
            megabytes = float(os.environ.get("ANSWER_CACHE_MB") or ANSWER_CACHE_MB)
        except ValueError:
            megabytes = ANSWER_CACHE_MB
        database = datasette.databases.get(DATABASE)
        cache = None
        if megabytes > 0 and database is not None and database.path:
            prefix = datasette.setting("base_url").rstrip("/") + f"/{DATABASE}/"
            cache = AnswerCache(file_versions(database), cacheable_queries(datasette.metadata("queries", database=DATABASE)),
                                prefix, max_bytes=int(megabytes * 1024 * 1024))
        datasette._mp_answer_cache = cache
    return datasette._mp_answer_cache


@hookimpl
def register_routes():
    # Imported here: collector/export.py builds on this module (DATABASE, mp_today).
    from collector.export import export_csv, query_answer, sql_answer

    return [
        (r"^/$", home),
        (r"^/-/help$", help_page),
        (r"^/-/health(\.json)?$", health),
        (r"^/-/export/(?P<name>daily|stock|stock_days)\.csv$", export_csv),
        (r"^/-/query/(?P<name>[^/]+)\.(?P<format>csv|json)$", query_answer),
        (r"^/-/sql\.(?P<format>csv|json)$", sql_answer),
    ]
