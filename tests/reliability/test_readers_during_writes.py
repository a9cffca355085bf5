"""Readers during writes: Datasette, served as a real process exactly as datasette_command() runs
it, under concurrent load from a generator on loopback (bounded in requests and in time), while
the collector writes a pass every few seconds into the same file.

Proved: no request fails (every answer is a 200 with a well-formed body; none says "database is
locked"), the collector's passes all succeed meanwhile, and every figure a reader sees is the
state after some complete write transaction, never one in the middle of one. The collector
writes one transaction per account x dataset (plus its bookkeeping: the runs row, the schema
check), so "a whole pass" here means: whatever a reader sees, every account x dataset in it is
either entirely as written by its latest transaction or entirely as before it.

How: the writer records, right after each COMMIT and before any other write can start, what the
readers' two consistency queries return at that moment (an ad-hoc figures query, and the canned
`today` query the dashboard shows). The readers' answers must each be one of those.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import yaml

from collector import datasette_plugin
from collector.config import load_settings
from collector.pipeline import run_pass
from collector.sandbox import Sandbox, SandboxClock, SandboxConfig
from collector.storage import Storage
from tests.conftest import FAST, NOON_MSK, SMALL_SELLER, collector_environ
from tests.reliability.helpers import PROJECT, pick, served_viewer

WORKERS, MAX_REQUESTS, MAX_SECONDS, PASS_EVERY = pick(quick=(6, 1500, 8.0, 1.0), full=(16, 60_000, 120.0, 3.0))
MIN_PASSES = 3  # the collector's passes the load must overlap; it reads on (up to OVERTIME) until then
OVERTIME = 60.0
STEP = timedelta(minutes=20)  # the sandbox seller's time between two passes
ZONE = "Europe/Moscow"

# One statement, so one read transaction: per-account figures plus the count of saved datasets,
# which makes every committed state tell itself apart from its neighbours.
FIGURES_SQL = " ".join("""
SELECT
 (SELECT json_group_array(json_array(account, n, units)) FROM (SELECT account, count(*) AS n,
    sum(CASE WHEN is_cancelled = 0 THEN quantity ELSE 0 END) AS units FROM orders GROUP BY account ORDER BY account)) AS orders,
 (SELECT json_group_array(json_array(account, kind, n, units)) FROM (SELECT account, kind, count(*) AS n,
    sum(quantity) AS units FROM sales GROUP BY account, kind ORDER BY account, kind)) AS sales,
 (SELECT json_group_array(json_array(account, units)) FROM (SELECT account, sum(quantity) AS units
    FROM stock_current GROUP BY account ORDER BY account)) AS stock,
 (SELECT count(*) FROM fetch_log WHERE status = 'ok') AS saved
""".split())


def canned_sql(name: str) -> str:
    metadata = yaml.safe_load((PROJECT / "metadata.yml").read_text(encoding="utf-8"))
    return metadata["databases"]["mp"]["queries"][name]["sql"]


TODAY_SQL = canned_sql("today")
TODAY_PARAMS = {name: "" for name in re.findall(r"(?<!:):(\w+)", TODAY_SQL)}


def canonical(rows) -> str:
    return json.dumps(rows, sort_keys=True, ensure_ascii=False)


class RecordingStorage(Storage):
    """The collector's storage, noting what readers may see after every commit."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.figures: set[str] = set()
        self.todays: set[str] = set()
        self.commits = 0

    @contextmanager
    def transaction(self):
        with self._lock:  # held until the state is noted: no other write can come between
            nested = self.db.conn.in_transaction  # (a savepoint of the pass: nothing committed)
            with super().transaction() as db:
                yield db
            if not nested:
                self.note()

    @contextmanager
    def one_transaction(self, **options):
        try:
            with super().one_transaction(**options) as db:
                yield db
        finally:
            with self._lock:
                self.note()  # (the pass's commit, or what a rollback left: both committed states)

    def note(self) -> None:
        conn = self.db.conn
        datasette_plugin.prepare_connection(conn)  # mp_today() and friends, as Datasette has them
        row = conn.execute(FIGURES_SQL).fetchone()
        self.figures.add(canonical(dict(zip(("orders", "sales", "stock", "saved"), row))))
        cursor = conn.execute(TODAY_SQL, TODAY_PARAMS)
        names = [d[0] for d in cursor.description]
        self.todays.add(canonical([dict(zip(names, r)) for r in cursor.fetchall()]))
        self.commits += 1


@dataclass
class Answer:
    kind: str
    status: int | None
    seconds: float
    problem: str | None = None
    seen: str | None = None  # a consistency query's answer


@dataclass
class Writer:
    settings: object
    storage: RecordingStorage
    clock: SandboxClock
    stop: threading.Event = field(default_factory=threading.Event)
    results: list = field(default_factory=list)
    checkpoints: list = field(default_factory=list)
    error: BaseException | None = None

    def one_pass(self) -> None:
        self.clock.advance(STEP)
        self.storage.migrate()  # as every `mp-collector run` does, views rebuilt included
        self.results.append(run_pass(self.settings, self.storage, "timer", clock=self.clock.now))

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.one_pass()
                if len(self.results) % 4 == 0:  # what the daily maintenance does to the WAL
                    checkpoint = self.storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    self.checkpoints.append(tuple(checkpoint))
                self.stop.wait(PASS_EVERY)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


URLS = [  # (kind, path, weight)
    ("figures", f"/mp.json?_shape=array&sql={quote(FIGURES_SQL)}", 4),
    ("today", "/mp/today.json?_shape=array", 3),
    ("stock_by_warehouse", "/mp/stock_by_warehouse.json?_shape=array", 1),
    ("history", "/mp/history.json?_shape=array&days=14", 1),
    ("freshness", "/mp/freshness.json?_shape=array", 1),
    ("orders table", "/mp/orders.json?_size=100", 1),
    ("today csv", "/mp/today.csv", 1),
    ("dashboard page", "/-/dashboards/today?days=14", 1),
]


def load(base_url: str, enough, budget: int, seed: int) -> list[Answer]:
    """Requests from WORKERS threads until `budget` requests are spent or `enough()` says so."""
    answers: list[Answer] = []
    lock = threading.Lock()
    spent = [0]

    def worker(n: int) -> None:
        rng = random.Random(f"{seed}-{n}")
        kinds, weights = [(k, p) for k, p, _ in URLS], [w for *_, w in URLS]
        with requests.Session() as session:
            while not enough():
                with lock:
                    if spent[0] >= budget:
                        return
                    spent[0] += 1
                kind, path = rng.choices(kinds, weights)[0]
                answer = fetch(session, base_url + path, kind)
                with lock:
                    answers.append(answer)

    threads = [threading.Thread(target=worker, args=(n,), name=f"load-{n}") for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def fetch(session: requests.Session, url: str, kind: str) -> Answer:
    started = time.monotonic()
    try:
        response = session.get(url, timeout=30, allow_redirects=False)
    except requests.RequestException as exc:
        return Answer(kind, None, time.monotonic() - started, f"no answer: {type(exc).__name__}")
    seconds = time.monotonic() - started
    text = response.text
    if response.status_code != 200:
        return Answer(kind, response.status_code, seconds, f"HTTP {response.status_code}: {text[:200]}")
    if "locked" in text.lower() and "database" in text.lower():
        return Answer(kind, 200, seconds, f"database is locked: {text[:200]}")
    seen = None
    if url.endswith(".csv"):
        if not text.startswith("alias,"):
            return Answer(kind, 200, seconds, f"not the CSV: {text[:200]}")
    elif ".json" in url:
        try:
            body = response.json()
        except ValueError:
            return Answer(kind, 200, seconds, f"not JSON: {text[:200]}")
        if kind == "figures":
            seen = canonical(body[0])
        elif kind == "today":
            seen = canonical(body)
    return Answer(kind, 200, seconds, seen=seen)


@pytest.fixture
def viewer_and_writer(tmp_path, monkeypatch):
    monkeypatch.setenv("TIMEZONE", ZONE)  # the writer's mp_today() must agree with Datasette's
    clock = SandboxClock(NOON_MSK - timedelta(hours=6))
    sandbox = Sandbox(SandboxConfig(seed=3, rate_limit_factor=float(FAST), wb_refresh_minutes=1, **SMALL_SELLER), clock=clock).start()
    settings = load_settings(None, collector_environ(sandbox, tmp_path, TIMEZONE=ZONE))
    storage = RecordingStorage(settings.database_path)
    writer = Writer(settings, storage, clock)
    try:
        writer.one_pass()
        writer.one_pass()
        with served_viewer(settings.database_path, {"TIMEZONE": ZONE}) as url:
            yield url, writer
    finally:
        writer.stop.set()
        storage.close()
        sandbox.stop()


def test_readers_never_fail_and_only_ever_see_whole_writes(viewer_and_writer, figures):
    url, writer = viewer_and_writer
    # Why readers never wait for the writer: the file is in WAL mode (a rollback journal makes
    # readers queue behind each commit, which this load alone would not reveal as failures).
    assert writer.storage.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Before the load: a reader sees exactly what the writer noted, so the comparison is real.
    with requests.Session() as session:
        assert fetch(session, url + URLS[0][1], "figures").seen in writer.storage.figures
        today = fetch(session, url + URLS[1][1], "today")
        assert today.seen in writer.storage.todays and json.loads(today.seen), today

    passes_before = len(writer.results)
    thread = threading.Thread(target=writer.run, name="collector")
    started = time.monotonic()
    thread.start()
    def enough() -> bool:
        # On a slow machine a pass under this load takes a few seconds: the readers go on past
        # MAX_SECONDS until the collector has written MIN_PASSES passes beside them.
        spent = time.monotonic() - started
        return spent >= MAX_SECONDS + OVERTIME or (
            spent >= MAX_SECONDS and len(writer.results) - passes_before >= MIN_PASSES)

    try:
        answers = load(url, enough, budget=MAX_REQUESTS, seed=20261126)
    finally:
        writer.stop.set()
        thread.join(timeout=60)
    elapsed = time.monotonic() - started
    assert not thread.is_alive() and writer.error is None, writer.error

    failed = [a for a in answers if a.problem]
    assert failed == [], failed[:5]
    # Bounded in count and in time.
    assert 0 < len(answers) <= MAX_REQUESTS and elapsed < MAX_SECONDS + OVERTIME + 35
    # The collector kept writing, and every pass it made was saved whole.
    passes = writer.results[passes_before:]
    assert len(passes) >= MIN_PASSES and all(result.status == "ok" for result in passes), [r.status for r in passes]
    # Every figure a reader saw is the state after some complete write transaction.
    seen_figures = [a.seen for a in answers if a.kind == "figures"]
    seen_today = [a.seen for a in answers if a.kind == "today"]
    assert [s for s in seen_figures if s not in writer.storage.figures] == []
    assert [s for s in seen_today if s not in writer.storage.todays] == []
    # ... and readers did see the data move while they read.
    assert len(set(seen_figures)) >= 3

    latencies = sorted(a.seconds for a in answers)
    by_kind = {kind: sorted(a.seconds for a in answers if a.kind == kind) for kind, *_ in URLS}
    figures["load"] = {
        "variant": "full" if MAX_REQUESTS > 10_000 else "quick",
        "workers": WORKERS, "requests": len(answers), "failed": len(failed),
        "database_locked": sum("locked" in (a.problem or "") for a in answers),
        "seconds": round(elapsed, 1), "requests_per_second": round(len(answers) / elapsed),
        "p50_ms": ms(statistics.median(latencies)), "p95_ms": ms(percentile(latencies, 0.95)),
        "max_ms": ms(latencies[-1]),
        "p95_ms_by_kind": {kind: ms(percentile(times, 0.95)) for kind, times in by_kind.items() if times},
        "requests_by_kind": {kind: len(times) for kind, times in by_kind.items()},
        "passes_during_load": len(passes), "write_transactions_noted": writer.storage.commits,
        "checkpoints_truncate": len(writer.checkpoints),
        "consistency_checks": len(seen_figures) + len(seen_today),
        "distinct_states_seen": len(set(seen_figures)),
    }


def percentile(ordered: list[float], share: float) -> float:
    return ordered[int(share * (len(ordered) - 1))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
