"""Crash safety: the collector killed with SIGKILL in the middle of a pass, many times, at points
drawn at random from a fixed seed (so every run is reproducible).

Every run starts from the same database (one pass at T0) and runs `python -m collector run` at
T1 against an in-process sandbox whose clock stands still at T1, so an uninterrupted pass always
writes the same figures (the reference). Two ways to kill it:

* write: `python -m tests.reliability.crashpoint T:S run`, which is the same command killed by
  SIGKILL inside its T-th write transaction just before the S-th statement (an executemany row
  counts as one): every such kill lands inside a write, at the point the seed picks, from the
  first row to just before COMMIT, in every kind of transaction a pass makes;
* timed: the plain `python -m collector run`, killed with `kill -9` after a random delay within
  the length of an uninterrupted pass: kills anywhere, reads and HTTP included.

After each kill: `PRAGMA integrity_check` is `ok`; every account x dataset holds either all of
what the pass was writing or none of it (its T0 state), and `fetch_log` says "ok" for exactly the
ones that were written; the summaries the viewer reads (daily_figures, sku_days, ... and
orders.outcome: `summary_drift()`) equal a recomputation from the raw rows; then the next pass
exits 0, leaves exactly the reference figures and the summaries still in step.

The same kills inside the two commands that rewrite summaries in one transaction:
`mp-collector rebuild`, and the schema upgrade every command starts with (`Storage.migrate()`,
here from schema version 2, whose summaries after daily_figures are filled from what it kept):
the database is left wholly as it was, and the next command completes the work with the
summaries in step (`rebuild --check` exits 0).
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

import pytest

from collector.config import load_settings
from collector.pipeline import run_pass
from collector.sandbox import Sandbox, SandboxClock, SandboxConfig
from collector.storage import Storage, summary_drift, summary_rows
from tests.conftest import collector_environ
from tests.reliability.crashpoint import statement_label
from tests.reliability.helpers import (CELLS, clean_environ, copy_database, drifted, integrity, mp, pick,
                                       product_keys, row_counts, snapshot, wall_clock_zone)

SEED = 20261126
WRITE_KILLS, TIMED_KILLS = pick(quick=(5, 3), full=(60, 30))
# A seller big enough that a pass spends a good part of its time writing. T0 is the wall clock, so
# every cell must change within GAP at any hour. Ozon returns come days after their postings: with
# four days of history and the default 4 %, some six-hour windows held no return at all (a CI run
# failed so); ten days and 15 % give at least four in every window of a two-day probe.
SELLER = pick(
    quick=SandboxConfig(seed=7, rate_limit_factor=0, history_days=10, wb_products=40, wb_orders_per_day=800,
                        ozon_products=30, ozon_postings_per_day=200, ozon_warehouses=(4, 4), ozon_return_rate=0.15),
    full=SandboxConfig(seed=7, rate_limit_factor=0, history_days=10, wb_products=300, wb_orders_per_day=8000,
                       ozon_products=250, ozon_postings_per_day=2000, ozon_warehouses=(10, 10),
                       ozon_return_rate=0.15),
)
GAP = timedelta(hours=6)  # T1 - T0
KILL = -signal.SIGKILL  # a child's return code after SIGKILL


@dataclass
class Crashes:
    environ: dict[str, str]
    base: Path
    before: dict  # each cell's figures at T0
    after: dict  # each cell's figures after an uninterrupted pass at T1
    products_before: set
    products_after: set
    duration: float  # seconds an uninterrupted `python -m collector run` takes
    transactions: list  # per write transaction of an uninterrupted pass: [statements, tables written]


@pytest.fixture(scope="module")
def crashes(tmp_path_factory) -> Crashes:
    work = tmp_path_factory.mktemp("crash")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    clock = SandboxClock(now - GAP)
    sandbox = Sandbox(SELLER, clock=clock).start()
    # The collector process runs on the wall clock; a zone whose midnight is hours away keeps
    # its "today" the same as the sandbox's for the whole module.
    environ = collector_environ(sandbox, work, TIMEZONE=wall_clock_zone(now), RATE_LIMIT_FACTOR="0.0001",
                                HTTP_TIMEOUT="30", MAX_RETRY_WAIT="5")
    base = work / "base.db"
    storage = Storage(base)
    storage.migrate()
    assert run_pass(load_settings(None, {**environ, "DATABASE_PATH": str(base)}), storage,
                    clock=clock.now).status == "ok"
    storage.close()
    clock.set(now)

    reference = copy_database(base, work / "reference.db")
    started = time.monotonic()
    done = mp("run", env={**environ, "DATABASE_PATH": str(reference)}, cwd=work)
    duration = time.monotonic() - started
    assert done.returncode == 0, done.stderr

    counted = copy_database(base, work / "counted.db")
    report = work / "transactions.json"
    done = mp("count", "run", env={**environ, "DATABASE_PATH": str(counted), "MP_CRASH_REPORT": str(report)},
              cwd=work, module="tests.reliability.crashpoint")
    assert done.returncode == 0, done.stderr
    transactions = json.loads(report.read_text())

    before, after = snapshot(base, with_times=False), snapshot(reference, with_times=False)
    assert snapshot(counted, with_times=False) == after  # counting statements changes nothing
    assert [cell for cell in CELLS if before[cell] == after[cell]] == []
    yield Crashes(environ, base, before, after, product_keys(base), product_keys(reference), duration,
                  transactions)
    sandbox.stop()


KILLS = [("write", n) for n in range(WRITE_KILLS)] + [("timed", n) for n in range(TIMED_KILLS)]


@pytest.mark.parametrize("mode, n", KILLS, ids=[f"{mode}-{n}" for mode, n in KILLS])
def test_a_killed_pass_leaves_whole_datasets_and_the_next_pass_completes_them(crashes: Crashes, mode, n,
                                                                               tmp_path, figures):
    rng = random.Random(f"{SEED}-{mode}-{n}")
    database = copy_database(crashes.base, tmp_path / "mp.db")
    env = {**crashes.environ, "DATABASE_PATH": str(database)}
    landed = None
    if mode == "write":
        number = rng.randrange(len(crashes.transactions)) + 1
        size, _ = crashes.transactions[number - 1]
        position = rng.randint(1, size)
        report = tmp_path / "kill.txt"
        done = mp(f"{number}:{position}", "run", env={**env, "MP_CRASH_REPORT": str(report)}, cwd=tmp_path,
                  module="tests.reliability.crashpoint")
        assert done.returncode == KILL, (number, position, done.stderr[-2000:])
        landed = report.read_text().split(" ", 2)[2].split(" in ")[0].strip()  # the statement
        where = "at COMMIT" if position == size else "first statement" if position == 1 else "mid-transaction"
        returncode = done.returncode
    else:
        delay = rng.uniform(0.0, crashes.duration)
        process = subprocess.Popen([sys.executable, "-m", "collector", "run"], env=clean_environ(**env),
                                   cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        returncode = process.wait(timeout=60)

    # The database as the kill left it: sound, and each account x dataset whole or untouched.
    assert integrity(database) == "ok"
    held = snapshot(database, with_times=False)
    written = {cell for cell in CELLS if held[cell] == crashes.after[cell]}
    untouched = {cell for cell in CELLS if held[cell] == crashes.before[cell]}
    assert written | untouched == set(CELLS), f"half written: {set(CELLS) - written - untouched}"
    assert crashes.products_before <= product_keys(database) <= crashes.products_after
    # fetch_log says "ok" for exactly the datasets that were written, in the same transaction.
    assert logged_ok(database) == written
    # The summaries were written with the raw rows, in the same transactions: in step with them.
    checking = time.monotonic()
    assert drifted(database) == {}
    check_seconds = time.monotonic() - checking
    assert min(row_counts(database, "daily_figures", "sku_days")) > 0  # (there is something to compare)

    # The next pass completes the data: exactly the figures of an uninterrupted pass.
    done = mp("run", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert snapshot(database, with_times=False) == crashes.after
    assert product_keys(database) == crashes.products_after
    assert integrity(database) == "ok"
    checking = time.monotonic()
    assert drifted(database) == {}
    check_seconds += time.monotonic() - checking

    # Counted only for runs that passed every assertion above (any other run fails the suite).
    tally = figures.setdefault("crash", {"runs": 0, "killed": 0, "finished_before_kill": 0, "integrity_ok": 0,
                                         "half_written": 0, "completed_by_next_pass": 0, "killed_in_write": 0,
                                         "statements": {}, "positions": {}, "datasets_written_at_kill": {},
                                         "summaries_in_step_after_kill": 0, "summaries_in_step_after_next_pass": 0})
    tally["runs"] += 1
    tally["killed" if returncode == KILL else "finished_before_kill"] += 1
    tally["integrity_ok"] += 1
    tally["completed_by_next_pass"] += 1
    tally["summaries_in_step_after_kill"] += 1
    tally["summaries_in_step_after_next_pass"] += 1
    tally["summary_check_seconds"] = round(tally.get("summary_check_seconds", 0) + check_seconds, 2)
    if landed:
        tally["killed_in_write"] += 1
        tally["statements"][landed] = tally["statements"].get(landed, 0) + 1
        tally["positions"][where] = tally["positions"].get(where, 0) + 1
    key = str(len(written))
    tally["datasets_written_at_kill"][key] = tally["datasets_written_at_kill"].get(key, 0) + 1
    tally["write_transactions_per_pass"] = [
        f"{size} statements: {'schema.sql' if len(tables) > 6 else ', '.join(tables)}"
        for size, tables in crashes.transactions]
    tally["statements_per_pass"] = sum(size for size, _ in crashes.transactions)
    tally["pass_seconds"] = round(crashes.duration, 2)


def logged_ok(database: Path) -> set[tuple[str, str]]:
    """Datasets fetch_log records as saved by the killed pass (the base database holds run 1)."""
    conn = sqlite3.connect(database)
    try:
        # The required datasets, whose rows CELLS snapshots (balance and catalog are optional and
        # not due again within the same day anyway)
        rows = conn.execute("SELECT account, dataset FROM fetch_log WHERE run_id > 1 AND status = 'ok' "
                            "AND dataset IN ('stocks', 'orders', 'sales')").fetchall()
    finally:
        conn.close()
    assert max(Counter(rows).values(), default=1) == 1
    return set(rows)


def test_the_summary_check_sees_one_figure_off_by_one(crashes: Crashes, tmp_path):
    """What every kill is checked with can fail: one sku_days figure changed by hand is one row
    apart from the recomputation (its key, with another figure)."""
    database = copy_database(crashes.base, tmp_path / "mp.db")
    assert drifted(database) == {}
    conn = sqlite3.connect(database)
    with conn:
        changed = conn.execute("UPDATE sku_days SET ordered = ordered + 1 WHERE (day, account, sku) = "
                               "(SELECT day, account, sku FROM sku_days WHERE ordered > 0 LIMIT 1)").rowcount
    conn.close()
    assert changed == 1
    found = drifted(database)
    assert found.get("sku_days") == 1 and "daily_figures" not in found


# --------------------------------------------------------------------------------------------
# Kills inside the commands that rewrite summaries in one transaction

REBUILD_KILLS, UPGRADE_KILLS = pick(quick=(1, 1), full=(12, 12))  # the first kill: at the COMMIT
OLD_VERSION = 2  # the upgrade killed starts here: the oldest version upgraded by FILLS, not by a rebuild


@dataclass
class Rewrites:
    schema: set  # the base database's tables, views, triggers and indexes (sqlite_master)
    rebuild: list  # per write transaction of `rebuild` (the schema check, the rebuild): [statements, tables]
    old: Path  # the base database as schema version OLD_VERSION left it
    old_schema: set
    upgrade: list  # the first write transaction of `rebuild --check` on `old`: the upgrade (after it, the pages
    # kept ready are computed again, each in a transaction of its own; the check writes nothing)
    kept: set  # the base database's summaries, as `summary_rows()` gives them


@pytest.fixture(scope="module")
def rewrites(crashes: Crashes, tmp_path_factory) -> Rewrites:
    work = tmp_path_factory.mktemp("rewrites")
    counted = copy_database(crashes.base, work / "rebuilt.db")
    rebuild = count_transactions(work, counted, "rebuild")
    old = as_old_version(copy_database(crashes.base, work / "old.db"))
    upgraded = copy_database(old, work / "upgraded.db")
    upgrade = count_transactions(work, upgraded, "rebuild", "--check")[:1]
    conn = sqlite3.connect(f"file:{crashes.base}?mode=ro", uri=True)
    kept = summary_rows(conn)[0]
    conn.close()
    assert {row[0] for row in kept} >= {"daily_figures", "sku_days"}
    return Rewrites(schema_objects(crashes.base), rebuild, old, schema_objects(old), upgrade, kept)


def count_transactions(work: Path, database: Path, *args: str) -> list:
    report = work / "transactions.json"
    done = mp("count", *args, env={"DATABASE_PATH": str(database), "MP_CRASH_REPORT": str(report)}, cwd=work,
              module="tests.reliability.crashpoint")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(report.read_text())


def as_old_version(database: Path) -> Path:
    """The database as schema version OLD_VERSION left it: the raw rows, daily_figures and
    orders.outcome, without the summaries added since (every summary `summary_drift()` names but
    those two) and the triggers that keep them."""
    conn = sqlite3.connect(database)
    try:
        newer = [name for name in summary_drift(conn) if name not in ("daily_figures", "orders.outcome")]
        triggers = [name for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
                    if any(re.search(rf"\b{table}\b", sql) for table in newer)]
        with conn:
            for name in triggers:
                conn.execute(f"DROP TRIGGER {name}")
            for table in newer:
                conn.execute(f"DROP TABLE {table}")
            conn.execute(f"PRAGMA user_version = {OLD_VERSION}")
    finally:
        conn.close()
    return database


def schema_objects(database: Path) -> set:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        # (not the planner's statistics, which an upgrade may gather and a new database has not yet)
        return set(conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%'")) | {
            ("user_version", conn.execute("PRAGMA user_version").fetchone()[0], None)}
    finally:
        conn.close()


def kill_point(transactions: list, n: int, rng: random.Random) -> tuple[int, int]:
    """(T, S) to die at: first the last transaction's COMMIT (all done, nothing committed), then a
    statement drawn uniformly from all the command writes."""
    if n == 0:
        return len(transactions), transactions[-1][0]
    return rng.choice([(number, position) for number, (size, _) in enumerate(transactions, start=1)
                       for position in range(1, size + 1)])


def killed_inside(database: Path, transactions: list, n: int, rng: random.Random, cwd: Path, *args: str) -> str:
    """`python -m collector ARGS` on the database, killed at `kill_point()`: the statement it died before."""
    number, position = kill_point(transactions, n, rng)
    report = cwd / "kill.txt"
    done = mp(f"{number}:{position}", *args, env={"DATABASE_PATH": str(database), "MP_CRASH_REPORT": str(report)},
              cwd=cwd, module="tests.reliability.crashpoint")
    assert done.returncode == KILL, (number, position, done.stderr[-2000:])
    return report.read_text().split(" ", 2)[2].split(" in ")[0].strip().rstrip(";")


def assert_summaries_checked_ok(database: Path, cwd: Path) -> None:
    """`mp-collector rebuild --check` (which upgrades the schema first, if due) finds every summary in step."""
    checked = mp("rebuild", "--check", env={"DATABASE_PATH": str(database)}, cwd=cwd)
    assert checked.returncode == 0 and "DIFF" not in checked.stdout, checked.stdout + checked.stderr


def count_kill(figures: dict, section: str, landed: str, transactions: list, passed: tuple[str, ...]) -> None:
    """Counted only for runs that passed every assertion (any other run fails the suite)."""
    tally = figures.setdefault(section, {"runs": 0, **dict.fromkeys(passed, 0), "statements": {}})
    for key in ("runs", *passed):
        tally[key] += 1
    tally["statements"][landed] = tally["statements"].get(landed, 0) + 1
    tally["write_transactions"] = [size for size, _ in transactions]


@pytest.mark.parametrize("n", range(REBUILD_KILLS))
def test_a_killed_rebuild_leaves_every_summary_whole_and_in_step(crashes: Crashes, rewrites: Rewrites, n, tmp_path,
                                                                  figures):
    database = copy_database(crashes.base, tmp_path / "mp.db")
    landed = killed_inside(database, rewrites.rebuild, n, random.Random(f"{SEED}-rebuild-{n}"), tmp_path, "rebuild")

    # Wholly as it was: sound, every table, view and trigger in place, the summaries in step.
    assert integrity(database) == "ok"
    assert schema_objects(database) == rewrites.schema
    assert drifted(database) == {}
    assert_summaries_checked_ok(database, tmp_path)
    count_kill(figures, "crash_rebuild", landed, rewrites.rebuild,
               ("integrity_ok", "schema_whole_after_kill", "summaries_in_step_after_kill", "check_ok_after_kill"))


@pytest.mark.parametrize("n", range(UPGRADE_KILLS))
def test_a_killed_schema_upgrade_leaves_the_old_database_and_the_next_start_upgrades_it_in_step(
        crashes: Crashes, rewrites: Rewrites, n, tmp_path, figures):
    database = copy_database(rewrites.old, tmp_path / "mp.db")
    landed = killed_inside(database, rewrites.upgrade, n, random.Random(f"{SEED}-upgrade-{n}"), tmp_path,
                           "rebuild", "--check")

    # Wholly the old version: its schema and version number, none of the new summaries.
    assert integrity(database) == "ok"
    assert schema_objects(database) == rewrites.old_schema

    # The next command upgrades it: every summary filled, in step, and what the base kept.
    assert_summaries_checked_ok(database, tmp_path)
    assert schema_objects(database) == rewrites.schema
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    kept, recomputed = summary_rows(conn)
    conn.close()
    assert kept == recomputed == rewrites.kept
    count_kill(figures, "crash_upgrade", landed, rewrites.upgrade,
               ("integrity_ok", "old_schema_after_kill", "summaries_in_step_after_next_start"))
    figures["crash_upgrade"]["from_version"] = OLD_VERSION


def test_kill_points_are_named_by_their_statement():
    assert statement_label("INSERT INTO orders (account) VALUES ('wb-1')") == "INSERT INTO orders"
    assert statement_label("INSERT OR IGNORE INTO sales (a) VALUES (1)") == "INSERT OR IGNORE INTO sales"
    assert statement_label('-- the schema\nCREATE TABLE IF NOT EXISTS "runs" (id)') == "CREATE TABLE IF NOT EXISTS runs"
    assert statement_label("SELECT sku, quantity FROM stock_current WHERE account = 'x'") == "SELECT ... FROM stock_current"
    assert statement_label("COMMIT") == "COMMIT"
