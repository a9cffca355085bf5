"""One collector pass: every account x dataset, fetched in parallel across accounts, written by
the pass's own thread as each arrives, each in a savepoint of its own inside the pass's one
transaction, each logged in `fetch_log`.

A failing account or dataset never stops the others and never leaves half of its rows. What each
dataset fetches is each marketplace's business: collector/wb/datasets.py, collector/ozon/datasets.py.
"""

from __future__ import annotations

import fcntl
import logging
import queue
import sqlite3
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from collector import alerts, aliases, kept, logs, optional, rejects, stopping
from collector.config import Account, Settings
from collector.dataset import Context
from collector.http import DEPRECATED, ApiClient, ApiError, RequestStats
from collector.ozon import client as ozon_api
from collector.ozon import datasets as ozon_datasets
from collector.records import BadRecord
from collector.storage import SCHEMA_VERSION, Storage, StorageError, make_database_folder
from collector.timeutil import iso, utc_now
from collector.wb import client as wb_api
from collector.wb import datasets as wb_datasets

REQUIRED = ("stocks", "orders", "sales")
# The catalogue first: Ozon stock asks for the SKUs it lists, and WB stock names sizes by its cards.
# Optional datasets never change the exit code (collector/optional.py).
DATASETS = ("catalog", *REQUIRED, "balance")


class AlreadyRunning(Exception):
    pass


@dataclass
class DatasetResult:
    account: str
    dataset: str
    status: str
    rows: int = 0
    requests: int = 0
    retries: int = 0
    duration_ms: int = 0
    error: str | None = None
    rejected: int = 0


@dataclass
class PassResult:
    run_id: int
    status: str
    datasets: list[DatasetResult]

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "ok" else 2


@contextmanager
def run_lock(database_path: Path, wait: bool = False):
    """One pass at a time per database, whoever starts it (timer, scheduler or a person). A
    command that writes outside a pass waits (`wait`) for the pass in progress to end: a pass
    holds SQLite's write lock from its start to its commit, longer than SQLite's busy timeout."""
    lock_path = Path(str(database_path) + ".lock")
    make_database_folder(database_path)
    try:
        handle = open(lock_path, "w")
    except OSError as exc:
        raise StorageError(f"cannot open the database {database_path}: cannot create {lock_path} "
                           f"({exc.strerror or exc})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise AlreadyRunning(f"another collector pass is running on {database_path}; "
                                     f"this one exits without doing anything") from None
            logs.event(logging.INFO, f"a collector pass is writing {database_path}: waiting for it to end",
                       event="waiting")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def run_pass(settings: Settings, storage: Storage, trigger: str = "manual",
             datasets: tuple[str, ...] = DATASETS, clock: Callable[[], datetime] = utc_now) -> PassResult:
    started = clock()
    storage.save_accounts((a.account, a.marketplace, a.label) for a in settings.accounts)
    run_id = storage.start_run(iso(started, settings.timezone), trigger)
    # The pass lands at once: its rows, their summaries and the pages kept ready from them, in one
    # transaction. Until it commits, the viewer reads the previous pass whole, its kept pages
    # included, rather than computing every page from the moment the first dataset is written
    # to the end (the whole pass, minutes against the marketplaces' limits). A stop commits the
    # datasets written before it (collector/stopping.py).
    with storage.one_transaction(commit_on=(stopping.Stopped,)):
        sync_aliases(settings, storage, started)
        storage.keep_recent_minutes(started, settings.timezone)
        results = collect_accounts(settings, storage, run_id, datasets, clock)
        status = pass_status(results)
        storage.finish_run(run_id, iso(clock(), settings.timezone), status)
        log_pass(run_id, status, trigger, results, (clock() - started).total_seconds())
        refresh_kept(settings, storage, clock())
    # After the commit: events into the outbox in one commit with the state that detected them,
    # then delivery. None of it raises, nor changes the pass's status or exit code.
    warn_of_a_low_disk(settings)
    alerts.after_pass(settings, storage, run_id, clock)
    return PassResult(run_id, status, results)


def log_pass(run_id: int, status: str, trigger: str, results: list[DatasetResult], seconds: float) -> None:
    failed = sum(result.status == "failed" for result in results)
    required = [result for result in results if result.dataset not in optional.OPTIONAL]
    saved = sum(result.status == "ok" for result in required)
    logs.event(logging.INFO if status == "ok" else logging.WARNING,
               f"pass {run_id} {status}: {saved} of {len(required)} datasets saved"
               f"{optional_summary(results)}",
               event="pass", run_id=run_id, status=status, trigger=trigger,
               datasets=len(results), failed=failed,
               rows=sum(r.rows for r in results), requests=sum(r.requests for r in results),
               retries=sum(r.retries for r in results), duration_ms=int(seconds * 1000))


def warn_of_a_low_disk(settings: Settings) -> None:
    """Every pass while the disk holding the database is below LOW_DISK_MB free, in the log,
    alerts or not (the alert itself comes once: collector/alerts.py)."""
    usage, low = alerts.disk_space(settings)
    if low:
        logs.event(logging.WARNING, f"the disk holding the database has {usage.free // alerts.MEGABYTE} MB free, "
                   f"under LOW_DISK_MB={settings.low_disk_mb}: when it is full, nothing is saved",
                   event="disk", free_mb=usage.free // alerts.MEGABYTE)


def upgrade(settings: Settings, storage: Storage) -> None:
    """Create or upgrade the database. After an upgrade the pages kept ready are computed at
    once rather than at the end of the next pass: an upgrade may set them aside (schema 17 made
    restock_now anew), and `restock`, the dashboard's «Заканчивается», shows only what was kept."""
    found = storage.migrate()
    if found and found != SCHEMA_VERSION:
        refresh_kept(settings, storage, utc_now())


def refresh_kept(settings: Settings, storage: Storage, now: datetime) -> None:
    # (each place's days first: the windows of restock_now are then read from them, 0.6 s rather
    # than 1.8 s at a big seller's year). A stop skips what is left: the pass's rows are
    # committed without it, and the queries compute those pages until the next pass keeps them.
    for name, refresh in (("restock days", kept.refresh_restock_days), ("restock", kept.refresh_restock),
                          ("today", kept.refresh_today),
                          ("buyout", kept.refresh_buyout), ("warehouse month", kept.refresh_warehouse_month),
                          ("stock days", kept.refresh_stock_days)):
        if stopping.STOP.is_set():
            logs.event(logging.WARNING, f"{name} not recomputed: the pass is stopping", event=name, status="stopped")
            continue
        started = time.monotonic()
        try:
            rows = refresh(settings, storage, now)
        except Exception as exc:  # noqa: BLE001 - the figures are saved; the query computes them itself
            logs.event(logging.ERROR, f"{name} not recomputed: {type(exc).__name__}: {exc}", event=name,
                       status="failed")
            continue
        logs.event(logging.INFO, f"{name}: {rows} rows written in {time.monotonic() - started:.1f} s", event=name,
                   status="ok", rows=rows, duration_ms=int((time.monotonic() - started) * 1000))


def optional_summary(results: list[DatasetResult]) -> str:
    """"; optional: 5 ok, 1 skipped" for the pass's log line (they never change its status)."""
    counts: dict[str, int] = {}
    for result in results:
        if result.dataset in optional.OPTIONAL:
            counts[result.status] = counts.get(result.status, 0) + 1
    return "; optional: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) if counts else ""


def pass_status(results: list[DatasetResult]) -> str:
    """ok, partial or failed, judged by the required datasets only."""
    required = [result for result in results if result.dataset not in optional.OPTIONAL]
    failed = sum(result.status == "failed" for result in required)
    return "ok" if not failed else ("failed" if failed == len(required) else "partial")


@dataclass
class Fetched:
    """What an account's thread hands the pass's thread: a dataset's result, and what to write
    for it there (its rows, or what its failure leaves: a note, a rest)."""
    ctx: Context
    result: DatasetResult
    started_at: str
    write: Callable[[], None]


_ACCOUNT_DONE = object()


def collect_accounts(settings: Settings, storage: Storage, run_id: int, datasets: tuple[str, ...],
                     clock: Callable[[], datetime]) -> list[DatasetResult]:
    """Each account fetches in a thread of its own (the marketplaces' limits are per account),
    reading what the passes before left; this thread writes each dataset as it arrives, inside
    the pass's transaction (Storage.one_transaction: SQLite has one writer, and a transaction
    is one connection's). Results in the order of the accounts and the datasets."""
    # (bounded: an account fetches ahead of the writer by one dataset at most, so a pass holds in
    # memory about what it did when each account wrote its own)
    arrived: queue.Queue = queue.Queue(maxsize=max(1, len(settings.accounts)))

    def fetch_account(account: Account) -> None:
        try:
            for fetched in fetch_datasets(settings, storage, account, run_id, datasets, clock):
                arrived.put(fetched)
        except BaseException as exc:  # noqa: BLE001 - a stop: handed over, raised by the pass's thread
            arrived.put(exc)
        finally:
            arrived.put(_ACCOUNT_DONE)

    results, stop, broken = [], None, None
    with ThreadPoolExecutor(max_workers=max(1, len(settings.accounts)), thread_name_prefix="account") as pool:
        for account in settings.accounts:
            pool.submit(fetch_account, account)
        for _ in settings.accounts:
            while (item := arrived.get()) is not _ACCOUNT_DONE:
                if isinstance(item, BaseException):
                    stop = stop or item
                elif broken is None:
                    try:
                        results.append(write_dataset(item))
                    except BaseException as exc:  # noqa: BLE001 - the database failed: raised once all have ended
                        broken = exc  # (the rest is taken and dropped, so that no fetch waits on a full queue)
    if broken is not None or stop is not None:
        raise broken or stop
    accounts = [account.account for account in settings.accounts]
    return sorted(results, key=lambda r: (accounts.index(r.account), datasets.index(r.dataset)))


def fetch_datasets(settings: Settings, storage: Storage, account: Account, run_id: int,
                   datasets: tuple[str, ...], clock: Callable[[], datetime]) -> Iterator[Fetched]:
    make = wb_api.make_client if account.marketplace == "wb" else ozon_api.make_client
    api = make(account, settings)
    memo: dict = {}
    try:
        # Datasets named by hand (`run --dataset balance`) run now, due or resting.
        by_hand = tuple(datasets) != DATASETS
        for dataset in datasets:
            fetched = fetch_dataset(Context(settings, storage, account, api, run_id, clock(), memo), dataset, by_hand)
            if fetched is not None:
                yield fetched
    finally:
        api.close()


def fetch_dataset(ctx: Context, dataset: str, by_hand: bool = False) -> Fetched | None:
    """Fetch and normalise one dataset, writing nothing; None when an optional one is not due."""
    ctx.api.stats = RequestStats()
    started, started_at = time.monotonic(), ctx.now_iso
    result = DatasetResult(ctx.account.account, dataset, "ok")
    account = ctx.account.account
    is_optional = dataset in optional.OPTIONAL
    if is_optional and (note := optional.unset_host(ctx.settings, ctx.account.marketplace, dataset)):
        result.status = "skipped"
        return _fetched(ctx, result, started, started_at,
                        lambda: ctx.storage.set_source_note(account, dataset, note, ctx.now_iso))
    # The account's datasets share one client: each sets its own attempts.
    ctx.api.max_attempts = optional.ATTEMPTS if is_optional else ApiClient.max_attempts
    if is_optional and not by_hand and optional.resting_until(ctx.storage, account, dataset, ctx.now):
        result.status = "skipped"  # refused its category lately: the note on the freshness page says so
        return _fetched(ctx, result, started, started_at, lambda: None)
    if is_optional and not by_hand and not optional.due(ctx.storage, account, dataset, ctx.now):
        return None
    try:
        collected = COLLECTORS[ctx.account.marketplace][dataset](ctx)
    except Exception as exc:  # noqa: BLE001 - one dataset's failure must not stop the others
        return _fetched(ctx, result, started, started_at, failure(ctx, result, exc))
    result.rows, result.rejected = collected.rows, len(collected.rejected)

    def write() -> None:
        collected.write(ctx.storage)
        keep_rejected(ctx, dataset, collected.rejected)
        ctx.storage.replace_note(account, dataset, None, ctx.now_iso, REFUSAL_MARK)
        if is_optional:
            optional.end_rest(ctx.storage, account, dataset, ctx.now_iso)
    return _fetched(ctx, result, started, started_at, write)


def failure(ctx: Context, result: DatasetResult, exc: Exception) -> Callable[[], None]:
    """Mark `result` failed; what its failure leaves to write."""
    account, dataset = ctx.account.account, result.dataset
    result.status, result.error = "failed", ctx.api.redact(describe_failure(ctx, dataset, exc))
    if not isinstance(exc, (ApiError, BadRecord)):
        logs.get_logger().debug(ctx.api.redact(traceback.format_exc()))
    if dataset in optional.OPTIONAL and optional.refused(exc):
        ctx.memo[optional.refused_key(dataset)] = True  # (the rest is written at the pass's end)
        return lambda: optional.start_rest(ctx.storage, account, ctx.account.marketplace, dataset,
                                           exc.status, ctx.now, ctx.now_iso, ctx.zone)
    if optional.refused(exc) and (note := refusal_note(ctx.account.marketplace, exc)):
        return lambda: ctx.storage.replace_note(account, dataset, note, ctx.now_iso, REFUSAL_MARK)
    return lambda: None


def _fetched(ctx: Context, result: DatasetResult, started: float, started_at: str,
             write: Callable[[], None]) -> Fetched:
    result.requests, result.retries = ctx.api.stats.requests, ctx.api.stats.retries
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return Fetched(ctx, result, started_at, write)


def write_dataset(fetched: Fetched) -> DatasetResult:
    """Write what a dataset fetched, with its fetch_log row, in a savepoint of its own: a write
    that fails leaves none of its rows, and the dataset is failed with what failed."""
    ctx, result = fetched.ctx, fetched.result
    try:
        write_logged(fetched, fetched.write)
    except Exception as exc:  # noqa: BLE001 - one dataset's failure must not stop the others
        if result.status == "failed":
            raise  # (what its failure leaves could not be written either: the database is the matter)
        write_logged(fetched, failure(ctx, result, exc))
    logs.event(logging.INFO if result.status == "ok" else logging.ERROR,
               f"{result.account} {result.dataset}: ok, {result.rows} rows" if result.status == "ok"
               else result.error,
               event="dataset", run_id=ctx.run_id, account=result.account, dataset=result.dataset,
               status=result.status, rows=result.rows, requests=result.requests,
               retries=result.retries, duration_ms=result.duration_ms)
    return result


def keep_rejected(ctx: Context, dataset: str, rejected: list) -> None:
    """Rows set aside go to rejected_rows and the freshness note; none clears that note."""
    rejects.keep(ctx.storage, ctx.account.account, dataset, rejected, ctx.now_iso)


def write_logged(fetched: Fetched, write: Callable[[], None]) -> None:
    """`write` and the dataset's fetch_log row, in one savepoint."""
    ctx, result = fetched.ctx, fetched.result
    with ctx.storage.transaction():
        write()
        ctx.storage.log_fetch(dict(
            run_id=ctx.run_id, account=result.account, dataset=result.dataset, status=result.status,
            started_at=fetched.started_at, finished_at=iso(utc_now(), ctx.zone), rows=result.rows,
            requests=result.requests, retries=result.retries, duration_ms=result.duration_ms,
            error=result.error, rejected=result.rejected))


def describe_failure(ctx: Context, dataset: str, exc: Exception) -> str:
    if isinstance(exc, ApiError):
        what = str(exc)
    elif isinstance(exc, BadRecord):
        # Records are read right after their answer arrives, so the latest endpoint sent them.
        what = (f"unreadable data from the marketplace: {exc} "
                f"({ctx.api.last_endpoint}: HTTP 200 OK, but the data is unreadable)")
    elif isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
        # (not an internal error: nothing is wrong with the code or the data, only the space)
        what = (f"the disk holding the database is full ({ctx.storage.path.parent}): nothing of this dataset "
                f"was saved, and the next pass fetches it again once there is space")
    else:
        what = f"internal error: {type(exc).__name__}: {exc}"
    return f"{ctx.account.account} ({ctx.account.label}) {dataset}: {what}"


REFUSAL_MARK = "что сделать:"  # in every refusal note, and only there


def refusal_note(marketplace: str, exc: ApiError) -> str | None:
    """What a refusal of a required dataset means for the seller, in plain Russian, for the
    freshness page (cleared by the dataset's next success); None when the error says it all."""
    if exc.status == 404 and DEPRECATED.search(exc.detail):
        return (f"маркетплейс отключил метод {exc.endpoint}; прежние данные сохранены, "
                f"{REFUSAL_MARK} обновите MP Dashboard")
    if marketplace == "wb" and "base token" in exc.detail.lower():
        return f"токен типа Base сюда не пускают; {REFUSAL_MARK} выпустите персональный или сервисный токен"
    if marketplace == "wb" and exc.status in (401, 403):
        category = "Аналитика" if "/analytics/" in exc.endpoint else "Статистика"
        return (f"WB не принял токен: у него нет категории «{category}», или он отозван или истёк; "
                f"{REFUSAL_MARK} выпустите токен с категориями «Статистика» и «Аналитика» (WB_API_TOKEN)")
    if marketplace == "ozon" and exc.status == 403:
        return f"у API-ключа Ozon нет доступа к этому методу; {REFUSAL_MARK} выдайте ключу роль с доступом к FBO"
    return None


# Each marketplace's collectors, by dataset: a function from a Context to what to write.
COLLECTORS = {"wb": wb_datasets.COLLECTORS, "ozon": ozon_datasets.COLLECTORS}


# -- aliases -------------------------------------------------------------------------------

def sync_aliases(settings: Settings, storage: Storage, now: datetime) -> None:
    """Reload the alias table when the CSV changed. A broken CSV keeps the previous aliases:
    the figures still get collected, and the error is logged for the person to fix."""
    path = settings.aliases_file
    if not path.exists():
        return
    try:
        fingerprint = aliases.fingerprint(path)
        if storage.state("aliases_fingerprint") == fingerprint:
            return
        rows = aliases.read_aliases(path)
    except (aliases.AliasFileError, OSError) as exc:
        logs.event(logging.ERROR, f"aliases not reloaded: {exc}", event="aliases", status="failed")
        return
    storage.replace_aliases(rows, state={"aliases_fingerprint": fingerprint}, now=iso(now, settings.timezone))
    logs.event(logging.INFO, f"aliases loaded from {path}: {len(rows)} keys, "
               f"{len({r[2] for r in rows})} aliases", event="aliases", status="ok")
