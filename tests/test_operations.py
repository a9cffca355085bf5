"""Running it for real: backfill, the scheduler, logs, metrics, backup and maintenance."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from freezegun import freeze_time

from collector.backfill import backfill
from collector.config import load_settings
from collector.maintenance import backup, daily, prune
from collector.metrics import render
from collector.pipeline import run_pass
from collector.sandbox import Fault, Sandbox, SandboxConfig
from collector.scheduler import add_pass_job
from tests.conftest import SMALL_SELLER, collector_environ, table

PAST_DAYS = [date(2026, 11, 26) - timedelta(days=n) for n in range(1, 10)]


def ordered_by_day(storage, account):
    rows = table(storage, "SELECT day, sku, sum(quantity) FROM orders WHERE account = ? AND is_cancelled = 0 "
                          "GROUP BY day, sku", [account])
    result = {}
    for day, sku, units in rows:
        result.setdefault(day, {})[sku] = units
    return result


def truth_by_day(sandbox, account, now):
    return {d.isoformat(): {k: v for k, v in sandbox.seller.ordered_units(account, d, now).items() if v}
            for d in PAST_DAYS}


def test_backfill_loads_history_and_a_rerun_adds_nothing(sandbox, settings, storage, clock):
    outcome = backfill(settings, storage, 10, lambda *_: None, clock=clock.now)
    assert all(isinstance(rows, int) and rows > 0 for rows in outcome.values()), outcome
    for account in ("wb-1", "ozon-1", "ozon-2"):
        stored = ordered_by_day(storage, account)
        assert {d: stored.get(d, {}) for d in truth_by_day(sandbox, account, clock.now())} == truth_by_day(
            sandbox, account, clock.now()), account
    counts = table(storage, "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM sales)")
    backfill(settings, storage, 10, lambda *_: None, clock=clock.now)
    assert table(storage, "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM sales)") == counts


def test_backfill_sets_unreadable_rows_aside_and_loads_the_rest(sandbox, settings, storage, clock):
    """As a pass does: one unreadable row of the history costs only itself, and is kept with
    its reason in rejected_rows, noted on the freshness page."""
    sandbox.faults.add(Fault("wrong_type", endpoint="/api/v1/supplier/orders", account="wb-1", field="nmId", rows=1))
    sandbox.faults.add(Fault("missing_field", endpoint="/v3/posting/fbo/list", account="ozon-1",
                             field="products.sku", rows=1))
    outcome = backfill(settings, storage, 10, lambda *_: None, clock=clock.now)
    assert all(isinstance(rows, int) and rows > 0 for rows in outcome.values()), outcome
    (wb_raw, wb_reason), (ozon_raw, ozon_reason) = table(
        storage, "SELECT raw, reason FROM rejected_rows WHERE dataset = 'orders' ORDER BY account DESC")
    assert table(storage, "SELECT account, dataset FROM rejected_rows ORDER BY account") == [
        ("ozon-1", "orders"), ("wb-1", "orders")]
    bad_row, bad_posting = json.loads(wb_raw), json.loads(ozon_raw)
    assert (bad_row["nmId"], wb_reason) == ("abc", "nmId: 'abc' is not a whole number")
    assert ozon_reason == f"posting {bad_posting['posting_number']}: the field 'sku' is missing"
    saved = {(account, order_id) for account, order_id in table(storage, "SELECT account, order_id FROM orders")}
    assert ("wb-1", bad_row["srid"]) not in saved and ("ozon-1", bad_posting["posting_number"]) not in saved
    assert sum(1 for account, _ in saved if account == "wb-1") > 100
    assert [note.split(":")[0] for (note,) in table(storage, "SELECT note FROM source_notes ORDER BY account")] == [
        "1 строка отложена", "1 строка отложена"]


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(seed=1, rate_limit_factor=0.001, wb_page_rows=300, **SMALL_SELLER)])
def test_an_interrupted_backfill_resumes_where_it_stopped(sandbox, tmp_path, storage, clock):
    settings = load_settings(None, collector_environ(sandbox, tmp_path, WB_PAGE_ROWS="300", MAX_RETRY_WAIT="3"))
    steps = []

    def break_after_three_pages(account, dataset, fraction):
        steps.append((account, dataset, fraction))
        if len(steps) == 4:
            sandbox.faults.add(Fault("500", endpoint="/api/v1/supplier/orders", times=None))

    outcome = backfill(settings, storage, 10, break_after_three_pages, clock=clock.now)
    assert outcome["wb-1", "orders"].startswith("wb-1 (Песочница WB 1) orders: GET /api/v1/supplier/orders: "
                                                "HTTP 500 Internal Server Error")
    assert isinstance(outcome["ozon-1", "orders"], int)
    reached = [f for a, d, f in steps if (a, d) == ("wb-1", "orders")][-1]
    assert 0 < reached < 1
    sandbox.faults.clear()
    sandbox.clear_request_log()
    resumed = []
    outcome = backfill(settings, storage, 10, lambda *step: resumed.append(step), clock=clock.now)
    assert [f for a, d, f in resumed if (a, d) == ("wb-1", "orders")][0] == reached
    wb_requests = sum(1 for r in sandbox.request_log if r.path == "/api/v1/supplier/orders")
    pages = sum(1 for r in resumed if r[:2] == ("wb-1", "orders")) - 2  # less the first and the "done" call
    assert wb_requests == pages
    assert {d: ordered_by_day(storage, "wb-1").get(d, {}) for d in truth_by_day(sandbox, "wb-1", clock.now())} == \
        truth_by_day(sandbox, "wb-1", clock.now())


def test_a_backfill_on_a_new_database_keeps_the_last_days_minutes_as_a_pass_would(sandbox, tmp_path, storage, clock):
    """Before any pass, a backfill keeps recent_minutes from the day before yesterday on, so the
    dashboard filtered by a group or a warehouse reads them rather than the raw lines."""
    settings = load_settings(None, collector_environ(sandbox, tmp_path))
    assert table(storage, "SELECT day FROM recent_minutes_floor") == []
    backfill(settings, storage, 5, lambda *step: None, clock=clock.now)
    assert table(storage, "SELECT day FROM recent_minutes_floor") == [("2026-11-24",)]  # NOON_MSK is the 26th
    kept = table(storage, "SELECT * FROM recent_minutes ORDER BY 1, 2, 3, 4, 5")
    assert kept and kept == table(storage, "SELECT * FROM recent_minutes_recomputed ORDER BY 1, 2, 3, 4, 5")
    assert {row[0] for row in kept} == {"2026-11-24", "2026-11-25", "2026-11-26"}


def mp(*args, env, cwd, **kwargs):
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("WB_", "OZON_")) and k not in ("INVOCATION_ID", "JOURNAL_STREAM")}
    return subprocess.Popen([sys.executable, "-m", "collector", *args], env={**clean, **env}, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture
def live_sandbox():
    sb = Sandbox(SandboxConfig(seed=4, rate_limit_factor=0.001, **SMALL_SELLER)).start()
    yield sb
    sb.stop()


def test_backfill_shows_progress(live_sandbox, tmp_path):
    process = mp("backfill", "--days", "3", env=collector_environ(live_sandbox, tmp_path), cwd=tmp_path)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "wb-1 orders: backfill 0%" in err and "wb-1 orders: backfill 100%" in err
    assert "ozon-2 sales: backfill 100%" in err
    assert re.search(r"^wb-1 orders: \d+ rows read$", out, re.M)


def test_schedule_runs_passes_one_at_a_time_and_stops_cleanly_on_sigterm(live_sandbox, tmp_path):
    env = collector_environ(live_sandbox, tmp_path)
    process = mp("--log-format", "json", "schedule", "--every", "0.02", env=env, cwd=tmp_path)
    database = tmp_path / "mp.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if database.exists() and _finished_runs(database) >= 3:
            break
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    with sqlite3.connect(database) as db:
        runs = db.execute("SELECT started_at, finished_at, status, trigger FROM runs ORDER BY id").fetchall()
    assert len(runs) >= 3 and {r[3] for r in runs} == {"schedule"} and {r[2] for r in runs} == {"ok"}
    for (_, finished, *_), (started, *_rest) in zip(runs, runs[1:]):
        assert datetime.fromisoformat(started) >= datetime.fromisoformat(finished)
    assert "SIGTERM: stopping" in err


def _finished_runs(database) -> int:
    try:
        with sqlite3.connect(database) as db:
            return db.execute("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_the_scheduler_never_overlaps_passes_and_coalesces_missed_ones(settings):
    spans, lock = [], threading.Lock()

    def slow_pass(_settings, _trigger):
        start = time.monotonic()
        time.sleep(0.5)
        with lock:
            spans.append((start, time.monotonic()))

    scheduler = BackgroundScheduler(timezone=settings.timezone)
    add_pass_job(scheduler, settings, minutes=0.002, trigger="schedule", job=slow_pass)  # every 0.12 s
    scheduler.start()
    time.sleep(2.2)
    scheduler.shutdown(wait=True)
    assert 2 <= len(spans) <= 5  # 18 ticks fell due; only non-overlapping passes ran
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end


@pytest.mark.parametrize("minutes", [10, 8])
def test_scheduled_passes_count_from_midnight_in_timezone_so_one_keeps_the_new_days_pages(settings, minutes):
    # (8 minutes do not divide the 3 hours between Moscow and UTC: ticks counted from UTC's
    # midnight, as from the scheduler's start, would miss Moscow's)
    moscow = settings.timezone
    with freeze_time("2026-12-07 20:55:01"):  # 23:55:01 in Moscow, the machine's clock in UTC
        scheduler = BackgroundScheduler(timezone=moscow)
        add_pass_job(scheduler, settings, minutes=minutes, trigger="schedule", run_now=False)
    trigger = scheduler.get_job("collector-pass").trigger
    for now in (datetime(2026, 12, 7, 23, 55, 1, tzinfo=moscow), datetime(2026, 12, 7, 23, 59, 59, tzinfo=moscow)):
        assert trigger.get_next_fire_time(None, now) == datetime(2026, 12, 8, tzinfo=moscow)
    after_midnight = datetime(2026, 12, 8, 0, 0, 1, tzinfo=moscow)
    assert trigger.get_next_fire_time(None, after_midnight) == datetime(2026, 12, 8, 0, minutes, tzinfo=moscow)


def test_logs_are_one_json_line_per_dataset_and_one_per_pass_under_systemd(live_sandbox, tmp_path):
    env = {**collector_environ(live_sandbox, tmp_path), "INVOCATION_ID": "0123456789abcdef"}
    process = mp("run", "--trigger", "timer", env=env, cwd=tmp_path)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    events = [json.loads(line) for line in err.splitlines()]
    datasets = [e for e in events if e.get("event") == "dataset"]
    passes = [e for e in events if e.get("event") == "pass"]
    # 3 accounts x (catalog, stocks, orders, sales, balance)
    assert len(datasets) == 15 and len(passes) == 1
    assert set(datasets[0]) >= {"time", "level", "message", "run_id", "account", "dataset", "status", "rows",
                                "requests", "retries", "duration_ms"}
    assert passes[0]["status"] == "ok" and passes[0]["trigger"] == "timer" and passes[0]["level"] == "info"


def test_metrics_textfile_after_a_pass(live_sandbox, tmp_path):
    metrics = tmp_path / "textfile" / "mp_dashboard.prom"
    live_sandbox.faults.add(Fault("503", endpoint="/v1/returns/list", account="ozon-2", times=None))
    env = {**collector_environ(live_sandbox, tmp_path, MAX_RETRY_WAIT="0.5"), "METRICS_FILE": str(metrics)}
    process = mp("run", env=env, cwd=tmp_path)
    process.communicate(timeout=120)
    assert process.returncode == 2
    text = metrics.read_text()
    samples = dict(re.findall(r"^(mp_\w+\{[^}]*\}|mp_\w+) (\S+)$", text, re.M))
    assert samples['mp_collector_last_status_ok{account="wb-1",dataset="orders"}'] == "1"
    assert samples['mp_collector_last_status_ok{account="ozon-2",dataset="sales"}'] == "0"
    assert 'mp_collector_last_success_timestamp_seconds{account="ozon-2",dataset="sales"}' not in samples
    assert abs(int(samples['mp_collector_last_success_timestamp_seconds{account="wb-1",dataset="orders"}'])
               - time.time()) < 120
    assert int(samples['mp_collector_requests{account="ozon-2",dataset="sales"}']) > 1
    assert "# TYPE mp_collector_rows gauge" in text
    assert not list(metrics.parent.glob(".*"))  # no temporary file left behind


def test_backup_while_the_collector_writes(sandbox, settings, storage, clock, tmp_path):
    run_pass(settings, storage, clock=clock.now)
    stop = threading.Event()

    def keep_writing():
        while not stop.is_set():
            clock.advance(minutes=10)
            run_pass(settings, storage, clock=clock.now)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        copies = [backup(storage, tmp_path / f"backup-{n}.db") for n in range(3)]
    finally:
        stop.set()
        writer.join()
    assert all(size > 0 for size in copies)
    with sqlite3.connect(tmp_path / "backup-2.db") as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT count(*) FROM orders").fetchone()[0] > 0


NEW = "2026-11-25T21:00:00+03:00"


def test_old_run_logs_and_sent_alerts_are_pruned_once_a_day(storage, collect, clock):
    collect()
    old = "2026-06-01T10:00:00+03:00"
    storage.db.execute("INSERT INTO runs (started_at, finished_at, status, trigger) VALUES (?, ?, 'ok', 'timer')",
                       [old, old])
    run_id = table(storage, "SELECT max(id) FROM runs")[0][0]
    storage.db["fetch_log"].insert({"run_id": run_id, "account": "wb-1", "dataset": "orders", "status": "ok",
                                    "started_at": old, "finished_at": old})
    # three old alerts (sent, expired, still pending) and a recent one, each with a delivery
    for key, created_at, status in (("digest:2026-06-01", old, "sent"), ("low_stock:run:1", old, "expired"),
                                    ("sources_down:run:1", old, "pending"), ("digest:2026-11-25", NEW, "sent")):
        storage.db.execute("INSERT INTO alert_outbox (key, kind, title, body, created_at, day, status) "
                           "VALUES (?, ?, 't', 'b', ?, substr(?, 1, 10), ?)", [key, key.split(":")[0], created_at,
                                                                              created_at, status])
        storage.db.execute("INSERT INTO alert_deliveries (event_id, channel, status) "
                           "VALUES (last_insert_rowid(), 'json://localhost', 'sent')")
    now = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
    assert prune(storage, now, keep_days=90) == {"fetch_log": 1, "runs": 1, "alert_deliveries": 2, "alert_outbox": 2}
    assert table(storage, "SELECT count(*) FROM fetch_log") == [(15,)]  # 3 accounts x 5 datasets
    assert table(storage, "SELECT o.key, count(d.event_id) FROM alert_outbox o LEFT JOIN alert_deliveries d "
                          "ON d.event_id = o.id GROUP BY o.key ORDER BY o.key") == [
        ("digest:2026-11-25", 1), ("sources_down:run:1", 1)]
    assert daily(storage, now) is True and daily(storage, now + timedelta(hours=5)) is False
    assert daily(storage, now + timedelta(days=1, minutes=1)) is True


def test_metrics_render_is_empty_before_any_pass(storage):
    assert render(storage) == "\n"
