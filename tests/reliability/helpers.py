"""Shared by the reliability tests: what an account x dataset wrote, whether the summaries are in
step with the raw rows, a leak detector for secrets, the collector and Datasette as real
processes, and the quick/full switch."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator, Mapping
from zoneinfo import ZoneInfo

from collector.demo import datasette_command
from collector.storage import summary_drift

PROJECT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("RELIABILITY_FULL") == "1"

ACCOUNTS = ("wb-1", "ozon-1", "ozon-2")  # the sandbox's default seller
DATASETS = ("stocks", "orders", "sales")
CELLS = tuple((account, dataset) for account in ACCOUNTS for dataset in DATASETS)

# Variables of the real environment that must not leak into a collector or viewer under test.
FOREIGN = ("WB_", "OZON_", "DATASETTE_", "DATABASE_PATH", "ALIASES_FILE", "TIMEZONE", "METRICS_FILE",
           "RATE_LIMIT_FACTOR", "HTTP_TIMEOUT", "MAX_RETRY_WAIT", "LOG_", "COLLECT_INTERVAL", "INVOCATION_ID",
           "JOURNAL_STREAM")


def pick(quick, full):
    """The quick variant's value in `make test`, the full one under RELIABILITY_FULL=1."""
    return full if FULL else quick


def marketplace(account: str) -> str:
    return account.split("-")[0]


# --------------------------------------------------------------------------------------------
# What each account x dataset wrote

# Stamped by the collector's own clock (the pass's "now", or the wall clock), so they differ
# between two passes that fetched the same figures at different moments.
CLOCK_COLUMNS = frozenset({"changed_at", "seen_at", "observed_at", "updated_at", "sold_at"})
ROW_IDS = frozenset({"id", "run_id"})
# Kept by triggers from other datasets' rows: orders.outcome and orders.returned_units follow the
# returns of the sales dataset, which may well be saved in a pass whose orders failed.
DERIVED = frozenset({"outcome", "returned_units"})

# The rows one account x dataset owns, as (table, WHERE over its rows); `?` is the account.
CELL_ROWS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("wb", "stocks"): (("stock", "account = ?"), ("stock_current", "account = ?")),
    ("wb", "orders"): (("orders", "account = ?"), ("watermarks", "account = ? AND dataset = 'orders'")),
    ("wb", "sales"): (("sales", "account = ?"), ("watermarks", "account = ? AND dataset = 'sales'")),
    ("ozon", "stocks"): (("stock", "account = ?"), ("stock_current", "account = ?")),
    # Ozon buyouts are written with the postings that reveal them, in the same transaction.
    ("ozon", "orders"): (("orders", "account = ?"), ("sales", "account = ? AND kind = 'sale'")),
    ("ozon", "sales"): (("sales", "account = ? AND kind = 'return'"),
                        ("watermarks", "account = ? AND dataset = 'sales'")),
}


def _columns(conn: sqlite3.Connection, table: str, with_times: bool) -> list[str]:
    names = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    skip = ROW_IDS | DERIVED | (set() if with_times else CLOCK_COLUMNS)
    if table == "watermarks" and not with_times:
        skip |= {"value"}  # Ozon's is the pass's own time
    return [name for name in names if name not in skip]


def cell_rows(conn: sqlite3.Connection, account: str, dataset: str, with_times: bool = True) -> tuple:
    """Everything one account x dataset wrote, as a comparable value; `with_times=False` leaves
    out what the collector's clock stamped (for passes run on the wall clock)."""
    parts = []
    for table, where in CELL_ROWS[marketplace(account), dataset]:
        names = _columns(conn, table, with_times)
        rows = conn.execute(f"SELECT {', '.join(names)} FROM {table} WHERE {where}", [account]).fetchall()
        parts.append((table, tuple(sorted(rows, key=repr))))
    return tuple(parts)


def snapshot(path: Path, with_times: bool = True) -> dict[tuple[str, str], tuple]:
    """{(account, dataset): what it wrote} for every cell of the sandbox seller."""
    conn = sqlite3.connect(path)
    try:
        return {cell: cell_rows(conn, *cell, with_times=with_times) for cell in CELLS}
    finally:
        conn.close()


def product_keys(path: Path) -> set[tuple]:
    conn = sqlite3.connect(path)
    try:
        return set(conn.execute("SELECT account, sku, size FROM products"))
    finally:
        conn.close()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def drifted(path: Path) -> dict[str, int]:
    """The summaries that differ from a recomputation from the raw rows, with how many rows:
    `summary_drift()` through a read-only connection (its views need none of the collector's SQL
    functions); {} when every summary is in step."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {summary: rows for summary, rows in summary_drift(conn).items() if rows}
    finally:
        conn.close()


def row_counts(path: Path, *tables: str) -> list[int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables]
    finally:
        conn.close()


def copy_database(source: Path, target: Path) -> Path:
    """A consistent copy of a closed or open database (SQLite's backup API, WAL included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")
    finally:
        src.close()
        dst.close()
    return target


def database_bytes(path: Path) -> bytes:
    """The database file with its WAL and shared-memory files: every byte SQLite keeps."""
    return b"".join(Path(str(path) + suffix).read_bytes() for suffix in ("", "-wal", "-shm")
                    if Path(str(path) + suffix).exists())


# --------------------------------------------------------------------------------------------
# Secrets

FRAGMENT = 12
LEAK_LENGTH = 2 * FRAGMENT - 1  # any run of this many characters of a secret is caught


def fragments(secret: str, size: int = FRAGMENT) -> set[str]:
    """Pieces of `secret` every leak of LEAK_LENGTH or more of its characters contains one of:
    windows of `size` at a stride of `size` (a run of 2*size - 1 always holds a whole window)."""
    if len(secret) <= LEAK_LENGTH:
        return {secret}
    return {secret[i:i + size] for i in range(0, len(secret) - size + 1, size)} | {secret[-size:]}


def find_leaks(secrets: Iterable[str], sources: Mapping[str, str | bytes], shapes: Iterable[str] = ()) -> list[str]:
    """Where any secret, or any LEAK_LENGTH-character piece of one, appears: ["stderr of run: secret 2 (eyJh…)"].

    `shapes` are harmless strings of the same form (a JWT of another seller): pieces found in
    them are the form's common structure ("eyJhbGciOiJIUzI1NiIs..."), not the secret, and do not count.
    """
    secrets = [s for s in secrets if s]
    shapes = list(shapes)
    pieces = [(n, {p for p in fragments(secret) if not any(p in shape for shape in shapes)})
              for n, secret in enumerate(secrets, start=1)]
    found = []
    for where, content in sources.items():
        for n, parts in pieces:
            needles = parts if isinstance(content, str) else {p.encode() for p in parts}
            if any(needle in content for needle in needles):
                found.append(f"{where}: secret {n} ({secrets[n - 1][:4]}…)")
    return found


# --------------------------------------------------------------------------------------------
# Processes

def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without anything that configures the collector or the viewer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
    return {**env, **extra}


def mp(*args: str, env: Mapping[str, str], cwd: Path, timeout: float = 120,
       module: str = "collector") -> subprocess.CompletedProcess:
    """`python -m collector ARGS` as a person or the timer runs it."""
    return subprocess.run([sys.executable, "-m", module, *args], env=clean_environ(**env), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_viewer(database: Path, env: Mapping[str, str] | None = None, startup: float = 30) -> Iterator[str]:
    """Datasette serving `database` exactly as datasette_command() runs it, on a free loopback
    port; yields its base URL and stops it afterwards."""
    port = free_port()
    log = database.with_name(f"datasette-{port}.log")
    with open(log, "wb") as output:
        process = subprocess.Popen(datasette_command(database, port), env=clean_environ(**(env or {})),
                                   stdout=output, stderr=subprocess.STDOUT, cwd=database.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup
        while True:
            try:
                urllib.request.urlopen(url + "/robots.txt", timeout=2).read()
                break
            except urllib.error.HTTPError:
                break  # it answers, which is all we wait for
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Datasette did not start: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wall_clock_zone(now: datetime | None = None, margin: timedelta = timedelta(hours=1)) -> str:
    """A TIMEZONE whose midnight is more than `margin` away from now: tests that let the collector
    run on the wall clock then never see "today" change under them."""
    now = now or datetime.now(timezone.utc)
    for name in ("Europe/Moscow", "Asia/Vladivostok", "America/New_York"):
        local = now.astimezone(ZoneInfo(name))
        since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
        if margin < since_midnight < timedelta(days=1) - margin:
            return name
    raise AssertionError("unreachable: the three zones' midnights are hours apart")

