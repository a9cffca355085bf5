"""Alerts that come to the seller: low stock, a failing or silent source and its recovery, the
daily digest, delivered through Apprise to every ALERT_URLS entry (Telegram, e-mail, webhook).

How an event travels (DESIGN.md, data flow):
1. after a pass's writes, `queue_events` compares what is true now with `alert_state` and writes
   the state change and the events it implies into `alert_outbox` in ONE transaction, so an event
   exists exactly when its state change does; its UNIQUE key keeps a retried pass from queuing it
   again (the digest's key is its day);
2. after that commit, `deliver` sends what is pending, per channel, and marks each delivery in
   `alert_deliveries`. A crash between the commit and the send leaves the event pending: the next
   pass sends it. A failing channel rests with backoff and gets its events later; the channels
   that took them never get them again.

The figures are the seller's own: the canned queries of metadata.yml (`restock`, `summary`,
`today`) run as they are, on the collector's connection with the viewer's SQL functions, so a
message never disagrees with the page it links to.

No ALERT_URLS: nothing here runs. Sending never fails or stalls a pass: every error is logged
and the run's exit code is the collection's alone; each message has a timeout and a pass's
deliveries a time budget. URLs hold bot tokens and passwords, so only a channel's label (scheme
and masked host) is ever printed or stored, and Apprise's own log lines are scrubbed.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

from collector import logs
from collector.config import Secret, Settings
from collector.storage import Storage
from collector.timeutil import iso

METADATA_PATH = Path(__file__).resolve().parent.parent / "metadata.yml"
# The datasets a pass must bring; the optional ones (balance, catalog) rest on their own and
# never make a source "failing".
REQUIRED_DATASETS = ("stocks", "orders", "sales")
DATASET_NAMES = {"stocks": "остатки", "orders": "заказы", "sales": "продажи"}
MARKETPLACE_NAMES = {"wb": "WB", "ozon": "Ozon"}
WEEKDAYS = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")

SEND_TIMEOUT = 20.0          # seconds for one message to one channel (Apprise stops it there)
SEND_BUDGET = 45.0           # seconds for all deliveries of a pass; the rest wait for the next one
BATCH = 50                   # events one channel is offered per pass, oldest first
MAX_BACKOFF_MINUTES = 60     # a failing channel is tried again after 1, 2, 4, ... 60 minutes
MAX_AGE = timedelta(days=2)  # an alert about the day before yesterday misleads more than it helps
LISTED = 15                  # lines of items in one message; the rest are counted

LINKS = {"low_stock": "/mp/restock", "sources_down": "/mp/freshness", "sources_up": "/mp/freshness",
         "digest": "/-/dashboards/today", "disk_low": "/mp/freshness", "disk_ok": "/mp/freshness"}
MEGABYTE = 1024 * 1024


@dataclass(frozen=True)
class Event:
    key: str
    kind: str
    title: str
    body: str


# -- the pass's entry point ------------------------------------------------------------------

def after_pass(settings: Settings, storage: Storage, run_id: int, clock: Callable[[], datetime]) -> None:
    """Queue what the pass revealed, then deliver what is pending. Never raises."""
    if not settings.alert_urls:
        return
    guard(settings, "queue", lambda: queue(settings, storage, run_id, clock()))
    guard(settings, "delivery", lambda: deliver(settings, storage, clock))


def guard(settings: Settings, what: str, action: Callable[[], object]) -> None:
    # An alert is worth less than the data: whatever goes wrong here is logged and the pass,
    # already saved, keeps its exit code.
    try:
        action()
    except Exception as exc:  # noqa: BLE001
        text = scrub(f"alerts: {what} failed: {type(exc).__name__}: {exc}", settings)
        logs.event(logging.ERROR, text, event="alerts", status="failed")
        logs.get_logger().debug(scrub(traceback.format_exc(), settings))


def queue(settings: Settings, storage: Storage, run_id: int, now: datetime) -> list[Event]:
    """Detect and queue, in one transaction: the state changes and their events commit together."""
    with storage.transaction():
        conn = storage.db.conn
        queries = CannedQueries(conn, settings, now)
        events = [*detect(settings, conn, "low stock", lambda: low_stock_events(settings, queries, run_id, now)),
                  *detect(settings, conn, "sources", lambda: source_events(settings, conn, run_id, now)),
                  *detect(settings, conn, "disk", lambda: disk_events(settings, conn, run_id, now)),
                  *detect(settings, conn, "digest", lambda: digest_events(settings, queries, now))]
        for event in events:
            insert_event(conn, settings, event, now)
    for event in events:
        logs.event(logging.INFO, f"alert queued: {event.title}", event="alert_queued", key=event.key)
    return events


def detect(settings: Settings, conn, what: str, detector: Callable[[], list[Event]]) -> list[Event]:
    """One detector's events, its state changes undone if it fails (a savepoint), so a broken
    query (say, a canned query being rewritten) never keeps the others' alerts from the seller."""
    conn.execute("SAVEPOINT alert_detector")
    try:
        events = detector()
    except Exception as exc:  # noqa: BLE001
        conn.execute("ROLLBACK TO alert_detector")
        events = []
        logs.event(logging.ERROR, scrub(f"alerts: {what} not checked: {type(exc).__name__}: {exc}", settings),
                   event="alerts", status="failed")
    conn.execute("RELEASE alert_detector")
    return events


def insert_event(conn, settings: Settings, event: Event, now: datetime) -> None:
    link = f"\n\nПодробнее: {settings.dashboard_url}{LINKS[event.kind]}" if settings.dashboard_url else ""
    conn.execute("INSERT OR IGNORE INTO alert_outbox (key, kind, title, body, created_at, day) "
                 "VALUES (?, ?, ?, ?, ?, ?)",
                 [event.key, event.kind, event.title, event.body + link, iso(now, settings.timezone),
                  local_date(now, settings).isoformat()])


# -- the seller's canned queries ---------------------------------------------------------------

class CannedQueries:
    """metadata.yml's canned queries, run on a collector connection at the pass's time."""

    def __init__(self, conn, settings: Settings, now: datetime):
        from collector.sqlfunctions import prepare_collector_connection

        prepare_collector_connection(conn, settings.timezone, lambda: now,
                                     settings.target_cover_days, settings.low_stock_days)
        self.conn = conn
        self.sql = canned_sql()

    def rows(self, name: str, **params: str) -> list[dict] | None:
        """The query's rows as dicts; None when metadata.yml has no such query (yet). Every
        parameter not given is empty, as Datasette passes a parameter left blank."""
        sql = self.sql.get(name)
        if sql is None:
            return None
        cursor = self.conn.execute(sql, {n: str(params.get(n, "")) for n in re.findall(r":(\w+)", sql)})
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor]


def canned_sql() -> dict[str, str]:
    """metadata.yml's canned queries' SQL by name, read once per version of the file: a pass
    asks for it five times (the alerts and each page kept ready), ~18 ms of YAML each."""
    stat = METADATA_PATH.stat()
    return dict(_canned_sql(stat.st_mtime_ns, stat.st_size))


@cache
def _canned_sql(mtime_ns: int, size: int) -> dict[str, str]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    metadata = yaml.load(METADATA_PATH.read_text(encoding="utf-8"), Loader=loader) or {}
    queries = metadata.get("databases", {}).get("mp", {}).get("queries", {}) or {}
    return {name: q if isinstance(q, str) else q.get("sql") for name, q in queries.items()
            if isinstance(q, str) or (isinstance(q, dict) and q.get("sql"))}


# -- low stock ---------------------------------------------------------------------------------

def low_stock_events(settings: Settings, queries: CannedQueries, run_id: int, now: datetime) -> list[Event]:
    """One message per pass for the items that crossed below LOW_STOCK_DAYS of cover (or to
    zero) since the last pass. An item is alerted again only after it was seen recovered.

    Low is what the restock page shows with soon=1: stock 0, or days of cover below
    LOW_STOCK_DAYS, compared exactly (not after rounding), so the message and the page agree."""
    rows = queries.rows("restock", days="", soon="1")
    if rows is None:
        logs.get_logger().debug("alerts: metadata.yml has no `restock` query; low stock not checked")
        return []
    if ":soon" not in queries.sql["restock"]:  # a restock query without the filter: the same rule here
        rows = [row for row in rows if (row.get("stock") or 0) <= 0
                or (row.get("days_of_cover") is not None and row["days_of_cover"] < settings.low_stock_days)]
    alerted = state_keys(queries.conn, "low:")
    low = {"low:{}:{}:{}".format(row["marketplace"], row.get("warehouse") or "", row["alias"]): row for row in rows}
    for key in alerted - low.keys():
        clear_state(queries.conn, key)  # recovered: the next fall is a new crossing
    crossed = [row for key, row in low.items() if key not in alerted]
    for key in low.keys() - alerted:
        set_state(queries.conn, key, now, settings, stock_line(low[key]))
    if not crossed:
        return []
    lines = listed([stock_line(row) for row in crossed])
    intro = f"Запаса меньше чем на {number(settings.low_stock_days)} дн. или не осталось:"
    return [Event(f"low_stock:run:{run_id}", "low_stock", "Заканчивается товар", "\n".join([intro, *lines]))]


def stock_line(row: dict) -> str:
    where = ", ".join(filter(None, [MARKETPLACE_NAMES.get(row["marketplace"], row["marketplace"]),
                                    row.get("warehouse")]))
    if (row.get("stock") or 0) <= 0:
        text = f"• {row['alias']} ({where}): нет в наличии"
    else:
        until = f" (до {short_date(row['runs_out_on'])})" if row.get("runs_out_on") else ""
        text = (f"• {row['alias']} ({where}): {number(row['stock'])} шт., "
                f"хватит на {number(row['days_of_cover'])} дн.{until}")
    to_ship = row.get("to_ship")
    text += f", отгрузить {number(to_ship)} шт." if to_ship else ""
    lost, lost_rub = row.get("lost_units"), row.get("lost_rub")
    if lost:  # days out of stock in the window, with orders on the days in stock to price them
        text += f"; упущено {number(lost)} шт." + (f" на {rub(round(lost_rub * 100))}" if lost_rub else "")
    return text


# -- failing and silent sources ----------------------------------------------------------------

def source_events(settings: Settings, conn, run_id: int, now: datetime) -> list[Event]:
    """A source (account x dataset) that failed ALERT_AFTER_FAILURES passes in a row or had no
    success for STALE_MINUTES: one message when it turns so, one when it loads again."""
    alerted = state_keys(conn, "source:")
    down, up = [], []
    for account in settings.accounts:
        for dataset in REQUIRED_DATASETS:
            key = f"source:{account.account}:{dataset}"
            name = f"{account.label} ({account.account}), {DATASET_NAMES[dataset]}"
            problem = source_problem(conn, settings, account.account, dataset, now)
            if problem and key not in alerted:
                down.append(f"• {name}: {problem}")
                set_state(conn, key, now, settings, problem)
            elif problem is None and key in alerted and latest_status(conn, account.account, dataset) == "ok":
                up.append(f"• {name}: снова загружается")
                clear_state(conn, key)
    events = []
    if down:
        events.append(Event(f"sources_down:run:{run_id}", "sources_down", "Данные не загружаются",
                            "\n".join(listed(down))))
    if up:
        events.append(Event(f"sources_up:run:{run_id}", "sources_up", "Загрузка данных восстановлена",
                            "\n".join(listed(up))))
    return events


def source_problem(conn, settings: Settings, account: str, dataset: str, now: datetime) -> str | None:
    """What is wrong with a source, in the seller's words; None when nothing is (or it was
    never tried: a dataset a person leaves out with --dataset is not a silent source)."""
    recent = conn.execute("SELECT status, error, started_at FROM fetch_log WHERE account = ? AND dataset = ? "
                          "ORDER BY id DESC LIMIT ?", [account, dataset, settings.alert_after_failures]).fetchall()
    if not recent:
        return None
    error = next((e for _, e, _ in recent if e), None)
    detail = f". Последняя ошибка: {clip(scrub(error, settings))}" if error else ""
    if len(recent) == settings.alert_after_failures and all(status == "failed" for status, _, _ in recent):
        n = settings.alert_after_failures
        return f"ошибка {n} {plural(n, 'раз', 'раза', 'раз')} подряд" + detail
    # When the data was fetched (started_at, on the pass's clock), not when the row was written.
    last_ok = conn.execute("SELECT started_at FROM fetch_log WHERE account = ? AND dataset = ? AND status = 'ok' "
                           "ORDER BY id DESC LIMIT 1", [account, dataset]).fetchone()
    since = last_ok[0] if last_ok else conn.execute(
        "SELECT started_at FROM fetch_log WHERE account = ? AND dataset = ? ORDER BY id LIMIT 1",
        [account, dataset]).fetchone()[0]
    minutes = (now - datetime.fromisoformat(since)).total_seconds() / 60
    if minutes <= settings.stale_minutes:
        return None
    when = datetime.fromisoformat(since).astimezone(settings.timezone)
    if last_ok:
        return f"нет свежих данных {int(minutes)} мин (последние — на {when:%H:%M} {when:%d.%m})" + detail
    return f"ни одной удачной загрузки за {int(minutes)} мин" + detail


def latest_status(conn, account: str, dataset: str) -> str | None:
    row = conn.execute("SELECT status FROM fetch_log WHERE account = ? AND dataset = ? ORDER BY id DESC LIMIT 1",
                       [account, dataset]).fetchone()
    return row[0] if row else None


# -- the disk ----------------------------------------------------------------------------------

def disk_events(settings: Settings, conn, run_id: int, now: datetime) -> list[Event]:
    """The disk holding the database below LOW_DISK_MB free, once per crossing, and its recovery
    once. Sent while there is still room to queue it: on a full disk nothing can be written,
    this message included, and every pass fails to save (the database grows every day)."""
    usage, low = disk_space(settings)
    alerted = "disk:low" in state_keys(conn, "disk:")
    if low == alerted:
        return []
    if not low:
        clear_state(conn, "disk:low")
        return [Event(f"disk_ok:run:{run_id}", "disk_ok", "Место на диске снова есть",
                      f"На диске с базой свободно {size(usage.free)}: сборщик сохраняет данные.")]
    database = sum(path.stat().st_size for path in settings.database_path.parent.glob(
        settings.database_path.name + "*") if path.is_file())
    set_state(conn, "disk:low", now, settings, f"{usage.free} bytes free")
    return [Event(f"disk_low:run:{run_id}", "disk_low", "Мало места на диске",
                  f"На диске с базой ({settings.database_path.parent}) свободно {size(usage.free)} из "
                  f"{size(usage.total)}, база занимает {size(database)}. Когда место кончится, сборщик "
                  f"перестанет сохранять заказы, продажи и остатки. Освободите место или увеличьте диск "
                  f"(порог — LOW_DISK_MB, {number(settings.low_disk_mb)} МБ).")]


def disk_space(settings: Settings):
    """The disk holding the database, as the system reports it, and whether it is below
    LOW_DISK_MB free (0: never)."""
    usage = shutil.disk_usage(settings.database_path.parent)
    return usage, settings.low_disk_mb > 0 and usage.free < settings.low_disk_mb * MEGABYTE


def size(count: int) -> str:
    """Bytes the Russian way: «812 МБ», «19,6 ГБ»."""
    if count < 1024 * MEGABYTE:
        return f"{number(count // MEGABYTE)} МБ"
    return f"{count / (1024 * MEGABYTE):.1f} ГБ".replace(".", ",")


# -- the daily digest --------------------------------------------------------------------------

def digest_events(settings: Settings, queries: CannedQueries, now: datetime) -> list[Event]:
    """The day's digest, once, at the first pass at or after DIGEST_TIME (local). A day whose
    digest time passed unseen (the collector was down) gets none the next day: its figures
    would read as today's."""
    local = now.astimezone(settings.timezone)
    day = local.date()
    key = f"digest:{day.isoformat()}"
    if local.strftime("%H:%M") < settings.digest_time or queries.conn.execute(
            "SELECT 1 FROM alert_outbox WHERE key = ?", [key]).fetchone():
        return []
    body = "\n\n".join(filter(None, [totals_section(queries, day, local), top_section(queries, day),
                                     runs_out_section(queries, day)]))
    return [Event(key, "digest", f"Итоги дня, {WEEKDAYS[day.weekday()]} {day:%d.%m.%Y}",
                  body or "Данных за сегодня нет.")]


def totals_section(queries: CannedQueries, day: date, local: datetime) -> str:
    week_ago = day - timedelta(days=7)
    now_figures, then_figures = day_totals(queries, day), day_totals(queries, week_ago)
    lines = [f"Сегодня до {local:%H:%M} против {WEEKDAYS[week_ago.weekday()]} {week_ago:%d.%m} (весь день):"]
    for marketplace in ("wb", "ozon"):
        for measure, verb in (("ordered", "заказано"), ("bought", "выкуплено")):
            units = now_figures.get(f"{marketplace}_{measure}")
            if units is None:
                continue
            rub = now_figures.get(f"{marketplace}_{measure}_rub")
            before = then_figures.get(f"{marketplace}_{measure}")
            lines.append(f"{MARKETPLACE_NAMES[marketplace]}: {verb} {units_and_money(units, rub)}"
                         f"{change(units, before, then_figures.get(f'{marketplace}_{measure}_rub'))}")
    return "\n".join(lines) if len(lines) > 1 else ""


def day_totals(queries: CannedQueries, day: date) -> dict:
    """{wb_ordered: units, wb_ordered_rub: kopecks, ...} of a day: units from `summary` (else the
    `today` rows added up), money from `summary` or `today` where they have it."""
    summary = queries.rows("summary", date=day.isoformat(), period="day") or [{}]
    today = queries.rows("today", date=day.isoformat(), period="day") or []
    totals = {}
    for marketplace in ("wb", "ozon"):
        for measure in ("ordered", "bought"):
            for column in (f"{marketplace}_{measure}", f"{marketplace}_{measure}_rub"):
                value = summary[0].get(column)
                if value is None and today and column in today[0]:
                    value = sum(row[column] or 0 for row in today)
                if value is not None:
                    totals[column] = kopecks(value) if column.endswith("_rub") else int(value)
    return totals


def top_section(queries: CannedQueries, day: date, top: int = 5) -> str:
    rows = queries.rows("today", date=day.isoformat(), period="day") or []
    ordered = [(row, (row.get("wb_ordered") or 0) + (row.get("ozon_ordered") or 0)) for row in rows]
    leaders = sorted((item for item in ordered if item[1] > 0), key=lambda item: -item[1])[:top]
    if not leaders:
        return ""
    lines = ["Больше всего заказов:"]
    for place, (row, units) in enumerate(leaders, start=1):
        money = [row.get(c) for c in ("wb_ordered_rub", "ozon_ordered_rub") if c in row]
        rub = kopecks(sum(m or 0 for m in money)) if money else None
        lines.append(f"{place}. {row['alias']} — {units_and_money(units, rub)}")
    return "\n".join(lines)


def runs_out_section(queries: CannedQueries, day: date) -> str:
    rows = queries.rows("restock", days="") or []
    week_end = (day + timedelta(days=7)).isoformat()
    soon = [row for row in rows if (row.get("stock") or 0) > 0 and row.get("runs_out_on")
            and row["runs_out_on"] <= week_end]
    gone = [row for row in rows if (row.get("stock") or 0) <= 0 and (row.get("avg_daily_ordered") or 0) > 0]
    if not soon and not gone:
        return ""
    soon.sort(key=lambda row: row["runs_out_on"])
    return "\n".join(["Закончится на этой неделе:", *listed([stock_line(row) for row in gone + soon], 10)])


# -- delivery ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Channel:
    """One ALERT_URLS entry. `label` is what may be shown and stored: scheme and host, with the
    parts Apprise masks masked (a Telegram URL's host is the bot token)."""
    label: str
    url: Secret


def channels(settings: Settings) -> list[Channel]:
    found, seen = [], {}
    for url in settings.alert_urls:
        label = channel_label(url.reveal())
        seen[label] = seen.get(label, 0) + 1
        # Two URLs to one host (two chats of one bot) keep their own delivery state.
        found.append(Channel(label if seen[label] == 1 else f"{label}#{seen[label]}", url))
    return found


def channel_label(url: str) -> str:
    plugin = instantiate(url)
    scheme = url.split("://", 1)[0] if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://.*", url, re.S) else "?"
    if plugin is None:
        return f"{scheme.lower()}://?"
    private = urlsplit(plugin.url(privacy=True))
    return f"{private.scheme}://{private.netloc.rpartition('@')[2]}"


def deliver(settings: Settings, storage: Storage, clock: Callable[[], datetime],
            budget: float = SEND_BUDGET) -> None:
    """Send every pending event to every channel that has not had it; one failure rests the
    channel until its backoff ends, the others carry on."""
    started = time.monotonic()
    targets = channels(settings)
    expire_old(settings, storage, targets, clock())
    try:
        for channel in targets:
            if not resting(storage, channel, clock()):
                deliver_to(settings, storage, channel, clock, lambda: time.monotonic() - started > budget)
    finally:
        close_events(settings, storage, targets, clock())


def deliver_to(settings: Settings, storage: Storage, channel: Channel, clock: Callable[[], datetime],
               out_of_time: Callable[[], bool]) -> None:
    for event_id, title, body in due_events(storage, channel):
        if out_of_time():
            logs.event(logging.WARNING, "alerts: delivery time is up for this pass; the rest is sent by the "
                       "next one", event="alerts", status="deferred")
            return
        ok, error = send(channel, title, body, settings)
        record(settings, storage, event_id, channel, ok, error, clock())
        if not ok:
            return  # the channel rests; its other events wait with it, in order


def resting(storage: Storage, channel: Channel, now: datetime) -> bool:
    row = storage.db.execute(
        "SELECT max(d.next_try_at) FROM alert_deliveries d JOIN alert_outbox e ON e.id = d.event_id "
        "WHERE d.channel = ? AND d.status = 'failed' AND e.status = 'pending'", [channel.label]).fetchone()
    return bool(row[0]) and datetime.fromisoformat(row[0]) > now


def due_events(storage: Storage, channel: Channel) -> list[tuple[int, str, str]]:
    return storage.db.execute(
        "SELECT e.id, e.title, e.body FROM alert_outbox e "
        "LEFT JOIN alert_deliveries d ON d.event_id = e.id AND d.channel = ? "
        "WHERE e.status = 'pending' AND (d.status IS NULL OR d.status = 'failed') "
        "ORDER BY e.id LIMIT ?", [channel.label, BATCH]).fetchall()


def record(settings: Settings, storage: Storage, event_id: int, channel: Channel, ok: bool,
           error: str | None, now: datetime) -> None:
    with storage.transaction():
        row = storage.db.execute("SELECT attempts FROM alert_deliveries WHERE event_id = ? AND channel = ?",
                                 [event_id, channel.label]).fetchone()
        attempts = (row[0] if row else 0) + 1
        wait = timedelta(minutes=min(2 ** (attempts - 1), MAX_BACKOFF_MINUTES))
        at = iso(now, settings.timezone)
        storage.db.execute(
            "INSERT INTO alert_deliveries (event_id, channel, status, attempts, last_try_at, next_try_at, "
            "last_error, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id, channel) DO UPDATE SET "
            "status = excluded.status, attempts = excluded.attempts, last_try_at = excluded.last_try_at, "
            "next_try_at = excluded.next_try_at, last_error = excluded.last_error, sent_at = excluded.sent_at",
            [event_id, channel.label, "sent" if ok else "failed", attempts, at,
             None if ok else iso(now + wait, settings.timezone), error, at if ok else None])
    if ok:
        logs.event(logging.INFO, f"alert {event_id} sent to {channel.label}", event="alert_sent",
                   channel=channel.label, event_id=event_id)
    else:
        logs.event(logging.WARNING, f"alert {event_id} not delivered to {channel.label} (attempt {attempts}, "
                   f"next in {int(wait.total_seconds() // 60)} min): {error}", event="alert_failed",
                   channel=channel.label, event_id=event_id, attempts=attempts)


def close_events(settings: Settings, storage: Storage, targets: list[Channel], now: datetime) -> None:
    """An event every current channel has is sent; one a channel gave up on is expired."""
    labels = [channel.label for channel in targets]
    marks = ", ".join("?" * len(labels))
    with storage.transaction():
        for status, wanted in (("sent", "('sent')"), ("expired", "('sent', 'expired')")):
            storage.db.execute(
                f"UPDATE alert_outbox SET status = ?, done_at = ? WHERE status = 'pending' AND "
                f"(SELECT count(*) FROM alert_deliveries d WHERE d.event_id = alert_outbox.id "
                f"AND d.channel IN ({marks}) AND d.status IN {wanted}) = ?",
                [status, iso(now, settings.timezone), *labels, len(labels)])


def expire_old(settings: Settings, storage: Storage, targets: list[Channel], now: datetime) -> None:
    pending = storage.db.execute("SELECT id, created_at FROM alert_outbox WHERE status = 'pending'").fetchall()
    old = [event_id for event_id, created in pending if now - datetime.fromisoformat(created) > MAX_AGE]
    if not old:
        return
    with storage.transaction():
        for event_id in old:
            for channel in targets:
                storage.db.execute(
                    "INSERT INTO alert_deliveries (event_id, channel, status, last_error) "
                    "VALUES (?, ?, 'expired', 'не доставлено за двое суток') "
                    "ON CONFLICT (event_id, channel) DO UPDATE SET status = 'expired' "
                    "WHERE alert_deliveries.status <> 'sent'", [event_id, channel.label])
    logs.event(logging.WARNING, f"alerts: {len(old)} events older than {MAX_AGE.days} days were not delivered "
               "everywhere and are given up", event="alerts", status="expired")


# -- Apprise ---------------------------------------------------------------------------------------

def send(channel: Channel, title: str, body: str, settings: Settings | None = None) -> tuple[bool, str | None]:
    """Deliver one message to one channel. Returns (ok, error text with secrets masked)."""
    import apprise

    remember_secrets(channel.url.reveal())
    sender = apprise.Apprise(asset=asset())
    if not sender.add(channel.url.reveal()):
        return False, "Apprise не понимает этот адрес (проверьте ALERT_URLS)"
    try:
        result = sender.notify(body=body, title=title, timeout=SEND_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - a plugin's bug is this channel's failure, not the pass's
        return False, clip(scrub(f"{type(exc).__name__}: {exc}", settings))
    if result:
        return True, None
    said = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
    return False, clip(scrub(said[-1] if said else "не доставлено", settings))


_asset = None


def asset():
    """One AppriseAsset: our name, and no persistent storage (it would write under $HOME, which
    the systemd unit may not allow, and nothing here needs it)."""
    global _asset
    if _asset is None:
        import apprise

        _asset = apprise.AppriseAsset(app_id="MP Dashboard", app_desc="MP Dashboard", storage_mode="memory")
    return _asset


def instantiate(url: str):
    import apprise

    remember_secrets(url)
    try:
        return apprise.Apprise.instantiate(url, asset=asset())
    except Exception:  # noqa: BLE001 - an unreadable URL is a channel that cannot work
        return None


# -- secrets ---------------------------------------------------------------------------------------

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def secret_parts(url: str, privacy_url: str) -> set[str]:
    """The pieces of a URL that Apprise's privacy form hides (bot tokens, passwords, webhook
    keys), plain and URL-decoded, plus the URL itself: what must never be printed. A piece
    shown in the privacy form (host, chat id, path) is kept, so masking does not blank a
    message's every mention of the mail server."""
    scheme = url.split("://", 1)[0]
    pieces = {piece for chunk in (url, unquote(url)) for piece in re.split(r"[/:@?&=,#;\s]+", chunk)}
    hidden = {piece for piece in pieces if len(piece) >= 3 and piece != scheme
              and piece not in privacy_url and piece not in unquote(privacy_url)}
    try:
        password = urlsplit(url).password  # whole, however short, and with its @ or : decoded
    except ValueError:
        password = None
    return hidden | {url} | ({password, unquote(password)} if password else set())


def remember_secrets(url: str) -> None:
    if url in _secrets:
        return
    with _secrets_lock:
        _secrets.add(url)  # first, so the Apprise log lines of instantiate below are masked too
    install_log_bridge()
    import apprise

    try:
        plugin = apprise.Apprise.instantiate(url, asset=asset())
        privacy = plugin.url(privacy=True) if plugin is not None else ""
    except Exception:  # noqa: BLE001
        privacy = ""
    with _secrets_lock:
        _secrets.update(secret_parts(url, privacy))


def scrub(text: str | None, settings: Settings | None = None) -> str:
    """Text with every secret masked: the alert URLs' secret parts (longest first, so a token is
    masked whole before a piece of it) and the settings' tokens and keys."""
    if text is None:
        return ""
    with _secrets_lock:
        secrets = set(_secrets)
    secrets.update(settings.secrets if settings else ())
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class _AppriseLogBridge(logging.Handler):
    """Apprise logs on its own logger (and, with no handler, Python would print its warnings to
    stderr as they are). Its lines come here instead: masked, then to the project's logger at
    DEBUG. Our own log lines say what failed, from the masked result."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logs.get_logger().debug("apprise: " + scrub(record.getMessage()))
        except Exception:  # noqa: BLE001 - logging must never break a send
            pass


_bridge_installed = False


def install_log_bridge() -> None:
    global _bridge_installed
    if _bridge_installed:
        return
    logger = logging.getLogger("apprise")
    logger.handlers[:] = [_AppriseLogBridge()]
    logger.propagate = False
    _bridge_installed = True


# -- `mp-collector alerts` ---------------------------------------------------------------------

TEST_TITLE = "MP Dashboard: проверка уведомлений"
TEST_BODY = "Это тестовое сообщение MP Dashboard. Если вы его видите, уведомления сюда доходят."


def test_channels(settings: Settings) -> list[tuple[str, bool, str | None]]:
    """(label, ok, error) per ALERT_URLS entry, after one test message to each."""
    return [(channel.label, *send(channel, TEST_TITLE, TEST_BODY, settings)) for channel in channels(settings)]


def recent_events(storage: Storage, limit: int = 20) -> list[dict]:
    """The latest events with their delivery per channel, newest first."""
    events = storage.db.execute(
        "SELECT id, created_at, kind, title, status FROM alert_outbox ORDER BY id DESC LIMIT ?", [limit]).fetchall()
    found = []
    for event_id, created_at, kind, title, status in events:
        deliveries = storage.db.execute(
            "SELECT channel, status, attempts, next_try_at, last_error FROM alert_deliveries "
            "WHERE event_id = ? ORDER BY channel", [event_id]).fetchall()
        found.append({"id": event_id, "created_at": created_at, "kind": kind, "title": title, "status": status,
                      "deliveries": [dict(zip(("channel", "status", "attempts", "next_try_at", "error"), d))
                                     for d in deliveries]})
    return found


# -- small helpers ---------------------------------------------------------------------------------

def state_keys(conn, prefix: str) -> set[str]:
    return {key for (key,) in conn.execute("SELECT key FROM alert_state WHERE substr(key, 1, ?) = ?",
                                           [len(prefix), prefix])}


def set_state(conn, key: str, now: datetime, settings: Settings, detail: str | None) -> None:
    conn.execute("INSERT INTO alert_state (key, since, detail) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
                 [key, iso(now, settings.timezone), detail])


def clear_state(conn, key: str) -> None:
    conn.execute("DELETE FROM alert_state WHERE key = ?", [key])


def local_date(now: datetime, settings: Settings) -> date:
    return now.astimezone(settings.timezone).date()


def listed(lines: list[str], limit: int = LISTED) -> list[str]:
    return lines if len(lines) <= limit else lines[:limit] + [f"…и ещё {len(lines) - limit}"]


def clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def plural(n: int, one: str, few: str, many: str) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return one
    return few if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14 else many


def number(value) -> str:
    """3 -> "3", 3.25 -> "3,3", 1234 -> "1 234": as a Russian reader writes figures."""
    rounded = round(float(value), 1)
    whole = rounded == int(rounded)
    text = f"{int(rounded):,}" if whole else f"{rounded:,.1f}"
    return text.replace(",", " ").replace(".", ",")


def short_date(day: str) -> str:
    return date.fromisoformat(day).strftime("%d.%m")


def kopecks(roubles) -> int:
    """Roubles as the queries give them (a number with kopecks) to exact integer kopecks:
    through the number's shortest decimal text, so 1234.56 is 123456, never 123455."""
    return int((Decimal(str(roubles)) * 100).to_integral_value(rounding=ROUND_HALF_UP))


def rub(kopecks_value: int) -> str:
    """1 234 567,89 ₽"""
    sign = "−" if kopecks_value < 0 else ""
    whole, part = divmod(abs(kopecks_value), 100)
    return f"{sign}{whole:,}".replace(",", " ") + f",{part:02d} ₽"


def units_and_money(units: int, kopecks_value: int | None) -> str:
    return f"{number(units)} шт." + (f" на {rub(kopecks_value)}" if kopecks_value is not None else "")


def change(units: int, before: int | None, before_kopecks: int | None) -> str:
    if before is None:
        return ""
    then = units_and_money(before, before_kopecks)
    if before == 0:
        return f" (неделю назад {then})"
    pct = round(100 * (units - before) / before)
    return f" (неделю назад {then}, {'+' if pct > 0 else '−' if pct < 0 else ''}{abs(pct)} %)"
