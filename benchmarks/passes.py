"""A pass: requests per account x dataset next to the fewest the APIs' paging allows, the wall
time of a whole pass against the sandbox, answering at once and with a realistic latency, and
the bytes a pass writes, at the busiest time and over a whole day.

The pass measured is a steady one at 23:50 Moscow time, the busiest of the day (today's postings
are all there to re-read). The database before it holds a week of history (written straight
from the seller's model, see history.py) and then one pass through HTTP ten minutes earlier, so
what the collector reads back (watermarks, postings stored as open, stock) is what it left itself.

Each measured pass runs against a fresh sandbox with the documented rate limits (the collector
paces itself to them) and, for the latency figure, `SandboxConfig.latency_ms`. The simulator's
own work (generating the seller's week, computing its stock) is done before the clock starts.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from collector import http as collector_http
from collector.config import load_settings
from collector.pipeline import run_pass
from collector.sandbox import Sandbox, SandboxClock
from collector.sandbox.clock import DAY, msk_day, to_us
from collector.storage import Storage

from benchmarks import history
from benchmarks.reference import reference_aliases

PASS_AT = datetime(2026, 11, 26, 20, 50, tzinfo=timezone.utc)  # 23:50 in Moscow
DAY_STARTS = datetime(2026, 11, 25, 21, 0, tzinfo=timezone.utc)  # 26 Nov, 00:00 in Moscow
PASSES_AN_HOUR = 6  # the timer's period: 10 minutes
SEEDED_DAYS = 8  # every Ozon posting is delivered or cancelled within 6 days

# Page sizes the collector may ask for, by endpoint (api/*.md).
PAGE_LIMITS = {
    "GET /api/v1/supplier/orders": 80_000,
    "GET /api/v1/supplier/sales": 80_000,
    "POST /api/analytics/v1/stocks-report/wb-warehouses": 250_000,
    "POST /v3/product/list": 1000,
    "POST /content/v2/get/cards/list": 100,
    "POST /v1/analytics/stocks": 100,  # SKUs per request; no paging
    "POST /v3/posting/fbo/list": 100,
    "POST /v1/returns/list": 500,
}
DATASET_OF = {
    "GET /api/v1/supplier/orders": "orders", "GET /api/v1/supplier/sales": "sales",
    "POST /api/analytics/v1/stocks-report/wb-warehouses": "stocks",
    "POST /v3/product/list": "catalog", "POST /v3/product/info/list": "catalog", "POST /v1/analytics/stocks": "stocks",
    "POST /content/v2/get/cards/list": "catalog", "GET /api/v1/account/balance": "balance",
    "POST /v1/finance/balance": "balance",
    "POST /v3/posting/fbo/list": "orders", "POST /v1/returns/list": "sales",
}


@dataclass
class Call:
    account: str
    endpoint: str
    first_page: bool  # starts a new query (no cursor / last_id / offset yet)
    query: str  # what identifies the query across its pages
    rows: int  # rows in this page
    skus: tuple = ()  # SKUs asked (analytics/stocks)


@dataclass
class DatasetRequests:
    account: str
    dataset: str
    requests: int  # HTTP requests the collector sent (fetch_log, retries included)
    served: int  # requests the sandbox answered, by its own log
    refused: int  # of which 429
    fewest: int
    rows: int
    seconds: float


@dataclass
class PassResult:
    latency_ms: float
    seconds: float
    status: str
    datasets: list[DatasetRequests] = field(default_factory=list)
    written_bytes: int = 0  # what the pass wrote to files: SQLite's WAL frames and checkpoints
    # what a second pass at the same minute wrote, when asked: nothing changed at the marketplaces
    written_again: int | None = None
    kept: "KeptWatch | None" = None  # what a reader beside the pass saw of the pages kept ready


def written_bytes() -> int:
    """Bytes this process has passed to write()/pwrite() on files so far (/proc/self/io `wchar`;
    socket sends do not count). The sandbox answers from memory, so in a pass this is SQLite's
    WAL frames, its checkpoints into the database file, and the odd log line."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no wchar")


class KeptWatch:
    """What a reader (the viewer) beside a pass finds of the pages kept ready, looking every
    POLL seconds: whether `restock_now_basis` vouches for every window and `today_now` holds its
    rows. While it does not, every canned query computes its answer (`restock_window` up to a
    second at a year). `unkept_seconds`: the time from a look that found them not kept to the next."""

    POLL = 0.02

    def __init__(self, database: Path):
        self.database = database
        self.looks = 0
        self.unkept_looks = 0
        self.unkept_seconds = 0.0
        self.kept_at_start: bool | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="kept-watch", daemon=True)

    def __enter__(self):
        with closing(self._connect()) as reader:
            self.kept_at_start = self._kept_now(reader)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, check_same_thread=False)

    @staticmethod
    def _kept_now(reader: sqlite3.Connection) -> bool:
        return bool(reader.execute("SELECT NOT EXISTS (SELECT 1 FROM restock_now_basis WHERE NOT in_step)"
                                   " AND EXISTS (SELECT 1 FROM restock_now_basis)"
                                   " AND EXISTS (SELECT 1 FROM today_now)").fetchone()[0])

    def _watch(self) -> None:
        reader = self._connect()
        try:
            last, kept = time.perf_counter(), True
            while not self._stop.wait(self.POLL):
                now = time.perf_counter()
                if not kept:
                    self.unkept_seconds += now - last
                kept = self._kept_now(reader)
                self.looks += 1
                self.unkept_looks += not kept
                last = now
            if not kept:
                self.unkept_seconds += time.perf_counter() - last
        finally:
            reader.close()


class CallRecorder:
    """Wraps ApiClient.call to note, per answer, how many rows it carried."""

    def __init__(self):
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._original = collector_http.ApiClient.call

    def __enter__(self):
        recorder, original = self, self._original

        def call(api, method, url, **options):
            answer = original(api, method, url, **options)
            recorder.note(api.account, options["endpoint"], options.get("params"), options.get("body"), answer)
            return answer

        collector_http.ApiClient.call = call
        return self

    def __exit__(self, *exc):
        collector_http.ApiClient.call = self._original

    def note(self, account: str, endpoint: str, params, body, answer) -> None:
        body = body or {}
        if endpoint.endswith(("/supplier/orders", "/supplier/sales")):
            rows, first, query = len(answer or []), None, endpoint
        elif endpoint.endswith("wb-warehouses"):
            rows = len(((answer or {}).get("data") or {}).get("items") or [])
            first, query = body.get("offset", 0) == 0, endpoint
        elif endpoint.endswith("/v3/product/list"):
            rows = len(((answer or {}).get("result") or {}).get("items") or [])
            first, query = body.get("last_id", "") == "", endpoint
        elif endpoint.endswith("/v1/analytics/stocks"):
            rows, first, query = len((answer or {}).get("items") or []), True, endpoint
        elif endpoint.endswith("/v3/posting/fbo/list"):
            rows = len((answer or {}).get("postings") or [])
            first, query = body.get("cursor", "") == "", repr(sorted((body.get("filter") or {}).items()))
        elif endpoint.endswith("/v1/returns/list"):
            rows = len((answer or {}).get("returns") or [])
            first, query = not body.get("last_id"), endpoint
        else:
            rows, first, query = 0, True, endpoint
        with self._lock:
            if first is None:  # WB statistics: a new query unless the last call was its page
                last = next((c for c in reversed(self.calls) if c.account == account), None)
                first = last is None or last.endpoint != endpoint
            self.calls.append(Call(account, endpoint, first, query, rows, tuple(body.get("skus") or ())))

    def fewest(self) -> dict[tuple[str, str], tuple[int, int]]:
        """{(account, dataset): (fewest requests, rows)}. A query's rows fill pages of the
        largest size the API allows; with cursor paging (has_next) the last page is known as
        last, with "a short page ends it" a full last page costs one more, empty, request.
        Ozon stock takes the distinct SKUs asked in batches of 100."""
        number: dict[tuple, int] = {}
        query_rows: dict[tuple, int] = defaultdict(int)
        skus: dict[str, set] = defaultdict(set)
        for n, call in enumerate(self.calls):
            if call.endpoint.endswith("/v1/analytics/stocks"):
                skus[call.account].update(call.skus)
                continue
            ident = (call.account, call.endpoint, call.query)
            if call.first_page or ident not in number:
                number[ident] = n
            query_rows[ident + (number[ident],)] += call.rows
        result: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for (account, endpoint, _, _), rows in query_rows.items():
            limit = PAGE_LIMITS.get(endpoint, 1)
            if endpoint.endswith(("/v3/posting/fbo/list", "/v1/returns/list")):
                pages = max(1, -(-rows // limit))
            else:
                pages = rows // limit + 1
            entry = result[account, DATASET_OF.get(endpoint, "?")]
            entry[0] += pages
            entry[1] += rows
        for account, asked in skus.items():
            result[account, "stocks"][0] += -(-len(asked) // PAGE_LIMITS["POST /v1/analytics/stocks"])
        return {key: tuple(value) for key, value in result.items()}


def collector_environ(sandbox: Sandbox, database: Path, aliases: Path, factor: str) -> dict[str, str]:
    return {**sandbox.env(), "DATABASE_PATH": str(database), "ALIASES_FILE": str(aliases),
            "RATE_LIMIT_FACTOR": factor, "TIMEZONE": "Europe/Moscow"}


def _write_aliases(seller, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["marketplace", "key", "alias"])
        for marketplace, key, alias, _ in sorted(reference_aliases(seller), key=lambda r: (r[3], r[0], r[1])):
            writer.writerow([marketplace, key, alias])


def _warm_simulator(sandbox: Sandbox, at: datetime) -> None:
    """Generate the seller's recent days and its stock at `at`, as the measured pass will ask."""
    seller, now = sandbox.seller, to_us(at)
    for account in seller.accounts:
        seller.stock_units(account, at)
        if account in seller.ozon_accounts:
            store = seller.ozon(account)
            for day in range(msk_day(now - SEEDED_DAYS * DAY), msk_day(now) + 1):
                store.day_postings(day)
                store._day_index(day)
        else:
            cabinet = seller.wb(account)
            for day in range(msk_day(now - 3 * DAY), msk_day(now) + 1):
                cabinet.day_orders(day)


def prepare(config, out: Path, at: datetime = PASS_AT) -> Path:
    """The database a steady pass at `at` finds: a week of history, then a pass via HTTP."""
    out.mkdir(parents=True, exist_ok=True)
    warm = out / "warm.db"
    history.generate(warm, config, at - timedelta(minutes=10) - timedelta(days=SEEDED_DAYS),
                     at - timedelta(minutes=10))
    clock = SandboxClock(at - timedelta(minutes=10))
    with Sandbox(replace(config, rate_limit_factor=0), clock=clock) as sandbox:
        aliases = out / "aliases.csv"
        _write_aliases(sandbox.seller, aliases)
        settings = load_settings(env_file=None, environ=collector_environ(sandbox, warm, aliases, "0.001"))
        written_by_a_pass(settings, warm, clock, "the warm-up pass")
    return warm


def fresh_copy(warm: Path, database: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(database) + suffix).unlink(missing_ok=True)
    shutil.copyfile(warm, database)


def measure(config, warm: Path, out: Path, latency_ms: float, at: datetime = PASS_AT, again: bool = False) -> PassResult:
    """`again`: then a second pass at the same minute, whose bytes are those of a pass that finds
    nothing changed (every row it reads is one it has: only its own log is new)."""
    database = out / f"pass-{latency_ms:g}ms.db"
    fresh_copy(warm, database)
    clock = SandboxClock(at)
    with Sandbox(replace(config, rate_limit_factor=1.0, latency_ms=latency_ms), clock=clock) as sandbox:
        _warm_simulator(sandbox, at)
        settings = load_settings(env_file=None, environ=collector_environ(sandbox, database, out / "aliases.csv", "1"))
        storage = Storage(database)
        try:
            with CallRecorder() as recorder, KeptWatch(database) as kept:
                began, written = time.perf_counter(), written_bytes()
                result = run_pass(settings, storage, "bench", clock=clock.now)
                seconds = time.perf_counter() - began
        finally:
            storage.close()  # its last checkpoint is part of what the pass wrote
        written = written_bytes() - written
        served = Counter((r.account, DATASET_OF.get(f"{r.method} {r.path}", "?")) for r in sandbox.request_log)
        refused = Counter((r.account, DATASET_OF.get(f"{r.method} {r.path}", "?"))
                          for r in sandbox.request_log if r.status == 429)
        written_again = written_by_a_pass(settings, database, clock, "the pass again") if again else None
    fewest = recorder.fewest()
    measured = PassResult(latency_ms, seconds, result.status, written_bytes=written, written_again=written_again,
                          kept=kept)
    for dataset in result.datasets:
        key = (dataset.account, dataset.dataset)
        least, rows = fewest.get(key, (0, 0))
        measured.datasets.append(DatasetRequests(
            dataset.account, dataset.dataset, dataset.requests, served[key], refused[key], least,
            rows, dataset.duration_ms / 1000))
    return measured


@dataclass
class DayOfPasses:
    """The bytes of one steady pass at ten past each hour of a day (`written`, by that time)."""
    written: dict[datetime, int] = field(default_factory=dict)

    @property
    def per_day(self) -> int:
        """The day's passes, each hour's six taken to write what its measured one did."""
        return PASSES_AN_HOUR * sum(self.written.values())


def measure_day(config, out: Path, start: datetime = DAY_STARTS, hours: int = 24) -> DayOfPasses:
    """What a day of passes writes, sampled: from a database with a week of history and a pass at
    midnight, for each hour a pass on the hour (catching up the hour, not measured) and a steady
    one ten minutes later, measured as `measure` measures it (the collector opened, the pass, the
    collector closed with its last checkpoint), as the timer runs it. Unpaced (the sandbox without
    rate limits): the bytes do not depend on the pacing, and a day of passes takes minutes."""
    warm = prepare(config, out, at=start + timedelta(minutes=10))  # the history, then the pass at 00:00
    database = out / "day.db"
    fresh_copy(warm, database)
    clock = SandboxClock(start)
    day = DayOfPasses()
    with Sandbox(replace(config, rate_limit_factor=0), clock=clock) as sandbox:
        settings = load_settings(env_file=None, environ=collector_environ(sandbox, database, out / "aliases.csv", "0.001"))
        for at, measured in day_pass_times(start, hours):
            clock.set(at)
            written = written_by_a_pass(settings, database, clock, f"the pass at {at:%H:%M} UTC")
            if measured:
                day.written[at] = written
    return day


def day_pass_times(start: datetime, hours: int):
    """(when, measured) of the day's passes after the warm-up's at `start`: each hour's on the
    hour (catching up the hour, not measured) and its steady one ten minutes later."""
    for hour in range(hours):
        if hour:
            yield start + timedelta(hours=hour), False
        yield start + timedelta(hours=hour, minutes=10), True


def written_by_a_pass(settings, database: Path, clock: SandboxClock, what: str) -> int:
    """One pass as the timer runs it (the collector opened, the pass, the collector closed with
    its last checkpoint); the bytes it wrote. An error unless it ended ok."""
    storage = Storage(database)
    try:
        before = written_bytes()
        result = run_pass(settings, storage, "bench", clock=clock.now)
    finally:
        storage.close()
    if result.status != "ok":
        raise RuntimeError(f"{what} ended {result.status}: " + "; ".join(r.error or "" for r in result.datasets if r.error))
    return written_bytes() - before
