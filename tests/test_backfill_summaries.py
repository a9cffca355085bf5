"""Backfills keep the summaries in step with the raw rows.

A small seller is collected by three passes over three days; then `mp-collector backfill --days 8`
loads its whole order and sales history (the sandbox's starts fewer than 8 days back), re-reading
and upserting the days the passes already hold. The collector runs as a real process over HTTP
against the sandbox, whose clock then stands still at the wall clock's now, so every backfill
from the same start reads the same data. `summary_drift()` compares every summary the viewer
reads (daily_figures, sku_days, ... and orders.outcome) with a recomputation from the raw rows.
Proven:

* after the backfill every summary is in step, and sku_days holds the days before the first
  pass: per account and SKU, the units ordered over the whole history are the sandbox's own;
* a backfill killed with SIGKILL, inside one of its write transactions (at a statement drawn
  from a fixed seed) or at a random moment, leaves every summary in step; resumed, it ends with
  exactly the summaries (whole tables) and raw rows of a backfill never interrupted;
* a second backfill over the same days, resumed or from scratch, changes nothing.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collector.config import load_settings
from collector.pipeline import run_pass
from collector.sandbox import Sandbox, SandboxClock, SandboxConfig
from collector.storage import Storage, summary_drift
from tests.conftest import collector_environ
from tests.reliability.helpers import (clean_environ, copy_database, drifted, integrity, mp, snapshot,
                                       wall_clock_zone)

SEED = 20261204
HISTORY_DAYS = 4  # the sandbox's orders start this many days before the first pass's day
DAYS = 8  # backfilled: more than the whole history, so the backfill reads all of it
SELLER = SandboxConfig(seed=5, rate_limit_factor=0, history_days=HISTORY_DAYS, wb_products=8, wb_orders_per_day=100,
                       wb_page_rows=100, ozon_products=6, ozon_postings_per_day=40)
PASSES = (timedelta(hours=50), timedelta(hours=26), timedelta(hours=2))  # before now
WRITE_KILLS, TIMED_KILLS = 3, 1
KILL = -signal.SIGKILL
MOSCOW = ZoneInfo("Europe/Moscow")


@dataclass
class History:
    sandbox: Sandbox
    environ: dict[str, str]
    now: datetime  # the sandbox's clock during every backfill
    base: Path  # after the passes
    reference: Path  # the base and a backfill never interrupted
    transactions: list  # per write transaction of such a backfill: [statements, tables written]
    duration: float  # seconds the reference's `python -m collector backfill` took
    first_day: str  # the first pass's local day


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> History:
    work = tmp_path_factory.mktemp("backfill")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    clock = SandboxClock(now - PASSES[0])
    sandbox = Sandbox(SELLER, clock=clock).start()
    # The collector process runs on the wall clock; a zone whose midnight is hours away keeps
    # its "today" the same as the sandbox's for the whole module.
    zone = wall_clock_zone(now)
    environ = collector_environ(sandbox, work, TIMEZONE=zone, WB_PAGE_ROWS="100", RATE_LIMIT_FACTOR="0.0001",
                                HTTP_TIMEOUT="30", MAX_RETRY_WAIT="5")
    base = work / "base.db"
    storage = Storage(base)
    storage.migrate()
    settings = load_settings(None, {**environ, "DATABASE_PATH": str(base)})
    for before in PASSES:
        clock.set(now - before)
        assert run_pass(settings, storage, clock=clock.now).status == "ok"
    storage.close()
    clock.set(now)

    reference = copy_database(base, work / "reference.db")
    started = time.monotonic()
    done = mp("backfill", "--days", str(DAYS), env={**environ, "DATABASE_PATH": str(reference)}, cwd=work)
    duration = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    counted, report = copy_database(base, work / "counted.db"), work / "transactions.json"
    done = mp("count", "backfill", "--days", str(DAYS), cwd=work, module="tests.reliability.crashpoint",
              env={**environ, "DATABASE_PATH": str(counted), "MP_CRASH_REPORT": str(report)})
    assert done.returncode == 0, done.stderr[-2000:]
    first_day = (now - PASSES[0]).astimezone(ZoneInfo(zone)).date().isoformat()
    yield History(sandbox, environ, now, base, reference, json.loads(report.read_text()), duration, first_day)
    sandbox.stop()


def summaries(path: Path) -> dict[str, list]:
    """Every summary `summary_drift()` names, as a whole table, and every order line's outcome."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        minutes = ("minute_totals", "recent_minutes")
        tables = [name for name in summary_drift(conn) if name not in ("orders.outcome", *minutes)]
        whole = {table: sorted(conn.execute(f"SELECT * FROM {table}"), key=repr) for table in tables}
        # An Ozon buyout is timed by the wall clock of the run that sees it delivered (sold_at, which
        # snapshot() leaves out too), so its minute differs between two backfills; its day does not.
        for table, keys in zip(minutes, ("day, account", "day, account, sku, warehouse")):
            whole[f"{table} (ordered)"] = sorted(conn.execute(
                f"SELECT {keys}, minute, ordered, ordered_kopecks FROM {table} "
                "WHERE ordered <> 0 OR ordered_kopecks <> 0"), key=repr)
            whole[f"{table} (bought, per day)"] = sorted(conn.execute(
                f"SELECT {keys}, sum(bought), sum(bought_kopecks) FROM {table} GROUP BY {keys} "
                "HAVING sum(bought) <> 0 OR sum(bought_kopecks) <> 0"), key=repr)
        whole["orders.outcome"] = sorted(conn.execute("SELECT account, order_id, sku, outcome FROM orders"), key=repr)
        return whole
    finally:
        conn.close()


def ordered_units(path: Path, where: str = "1") -> dict[tuple[str, int], int]:
    """{(account, SKU): units ordered} over the days sku_days holds (those matching `where`)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {(account, sku): units for account, sku, units in conn.execute(
            f"SELECT account, sku, sum(ordered) FROM sku_days WHERE {where} GROUP BY account, sku") if units}
    finally:
        conn.close()


def days_with_orders(path: Path, account: str, before: str) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT day, sum(ordered) FROM sku_days WHERE account = ? AND day < ? "
                                 "GROUP BY day HAVING sum(ordered) > 0", [account, before]))
    finally:
        conn.close()


def sandbox_ordered_units(history: History) -> dict[tuple[str, int], int]:
    """{(account, SKU): units ordered and not cancelled} over the sandbox's whole history, as it
    stands now (summed over Moscow days, so it does not depend on the collector's TIMEZONE)."""
    seller = history.sandbox.seller
    today = history.now.astimezone(MOSCOW).date()
    total: Counter = Counter()
    for account in seller.accounts:
        for back in range(DAYS + 3):
            for sku, units in seller.ordered_units(account, today - timedelta(days=back), history.now).items():
                total[account, sku] += units
    return {key: units for key, units in total.items() if units}


def test_a_backfill_over_the_days_the_passes_hold_keeps_the_summaries_in_step_and_adds_the_older_days(
        history: History, tmp_path):
    assert drifted(history.base) == {}
    assert drifted(history.reference) == {}
    # The days before the first pass: WB's were missing (a first pass reads WB from midnight),
    # and are all there now, each with its orders.
    before, after = (days_with_orders(path, "wb-1", history.first_day) for path in (history.base, history.reference))
    assert len(after) >= HISTORY_DAYS and sum(after.values()) > sum(before.values())
    assert min(after) < min(before, default=history.first_day)
    # What sku_days holds over the whole history is the marketplace's own count, every SKU of
    # every account (Ozon's 30 days of a first pass were all re-read and upserted).
    truth = sandbox_ordered_units(history)
    assert ordered_units(history.reference) == truth
    assert ordered_units(history.base) != truth
    # And the passes go on from there in step.
    database = copy_database(history.reference, tmp_path / "mp.db")
    storage = Storage(database)
    storage.migrate()
    settings = load_settings(None, {**history.environ, "DATABASE_PATH": str(database)})
    assert run_pass(settings, storage, clock=lambda: history.now).status == "ok"
    storage.close()
    assert drifted(database) == {}


KILLS = [("write", n) for n in range(WRITE_KILLS)] + [("timed", n) for n in range(TIMED_KILLS)]


@pytest.mark.parametrize("mode, n", KILLS, ids=[f"{mode}-{n}" for mode, n in KILLS])
def test_a_killed_backfill_leaves_the_summaries_in_step_and_resumed_ends_as_one_never_interrupted(
        history: History, mode, n, tmp_path):
    rng = random.Random(f"{SEED}-{mode}-{n}")
    database = copy_database(history.base, tmp_path / "mp.db")
    env = {**history.environ, "DATABASE_PATH": str(database)}
    if mode == "write":
        # A statement drawn uniformly from those of the steps (each step writes its rows and the
        # position reached, in collector_state, in one transaction): mostly inside the big pages.
        points = [(number, position) for number, (size, tables) in enumerate(history.transactions, start=1)
                  if "collector_state" in tables for position in range(1, size + 1)]
        number, position = rng.choice(points)
        done = mp(f"{number}:{position}", "backfill", "--days", str(DAYS), cwd=tmp_path,
                  env={**env, "MP_CRASH_REPORT": str(tmp_path / "kill.txt")}, module="tests.reliability.crashpoint")
        assert done.returncode == KILL, (number, position, done.stderr[-2000:])
    else:
        process = subprocess.Popen([sys.executable, "-m", "collector", "backfill", "--days", str(DAYS)],
                                   env=clean_environ(**env), cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, history.duration))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)

    assert integrity(database) == "ok"
    assert drifted(database) == {}

    done = mp("backfill", "--days", str(DAYS), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert drifted(database) == {}
    assert summaries(database) == summaries(history.reference)
    assert snapshot(database, with_times=False) == snapshot(history.reference, with_times=False)


def test_a_second_backfill_over_the_same_days_changes_nothing(history: History, tmp_path):
    database = copy_database(history.reference, tmp_path / "mp.db")
    env = {**history.environ, "DATABASE_PATH": str(database)}
    kept = summaries(history.reference)
    rows = snapshot(history.reference, with_times=False)
    # Resumed where the first one ended; then from scratch (a longer period), every row read again.
    for days in (DAYS, DAYS + 1):
        done = mp("backfill", "--days", str(days), env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert summaries(database) == kept
        assert snapshot(database, with_times=False) == rows
    read = {name: int(n) for name, n in re.findall(r"^(\S+ \w+): (\d+) rows read$", done.stdout, re.M)}
    assert read["wb-1 orders"] >= sum(units for (account, _), units in ordered_units(database).items()
                                      if account == "wb-1")
