"""One collector pass: every account x dataset, fetched in parallel across accounts, each
written in its own transaction, each logged in `fetch_log`.

A failing account or dataset never stops the others and never leaves half of its rows. What each
dataset fetches is each marketplace's business: collector/wb/datasets.py, collector/ozon/datasets.py.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from collector import alerts, aliases, kept, logs, optional, rejects
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
def run_lock(database_path: Path):
    """One pass at a time per database, whoever starts it (timer, scheduler or a person)."""
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
            raise AlreadyRunning(f"another collector pass is running on {database_path}; "
                                 f"this one exits without doing anything") from None
        yield


def run_pass(settings: Settings, storage: Storage, trigger: str = "manual",
             datasets: tuple[str, ...] = DATASETS, clock: Callable[[], datetime] = utc_now) -> PassResult:
    started = clock()
    storage.save_accounts((a.account, a.marketplace, a.label) for a in settings.accounts)
    sync_aliases(settings, storage, started)
    storage.keep_recent_minutes(started, settings.timezone)
    run_id = storage.start_run(iso(started, settings.timezone), trigger)
    with ThreadPoolExecutor(max_workers=max(1, len(settings.accounts)), thread_name_prefix="account") as pool:
        per_account = pool.map(lambda account: collect_account(settings, storage, account, run_id, datasets, clock),
                               settings.accounts)
        results = [result for batch in per_account for result in batch]
    status = pass_status(results)
    failed = sum(result.status == "failed" for result in results)
    required = [result for result in results if result.dataset not in optional.OPTIONAL]
    saved = sum(result.status == "ok" for result in required)
    storage.finish_run(run_id, iso(clock(), settings.timezone), status)
    logs.event(logging.INFO if status == "ok" else logging.WARNING,
               f"pass {run_id} {status}: {saved} of {len(required)} datasets saved"
               f"{optional_summary(results)}",
               event="pass", run_id=run_id, status=status, trigger=trigger,
               datasets=len(results), failed=failed,
               rows=sum(r.rows for r in results), requests=sum(r.requests for r in results),
               retries=sum(r.retries for r in results),
               duration_ms=int((clock() - started).total_seconds() * 1000))
    # After the writes: the pages kept ready (what to ship, computed once for the page and the
    # alerts; today by group); then events into the outbox in one commit with the state that
    # detected them, then delivery. None of it raises, nor changes the pass's status or exit code.
    refresh_kept(settings, storage, clock())
    warn_of_a_low_disk(settings)
    alerts.after_pass(settings, storage, run_id, clock)
    return PassResult(run_id, status, results)


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
    # than 1.8 s at a big seller's year)
    for name, refresh in (("restock days", kept.refresh_restock_days), ("restock", kept.refresh_restock),
                          ("today", kept.refresh_today),
                          ("buyout", kept.refresh_buyout), ("warehouse month", kept.refresh_warehouse_month),
                          ("stock days", kept.refresh_stock_days)):
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


def collect_account(settings: Settings, storage: Storage, account: Account, run_id: int,
                    datasets: tuple[str, ...], clock: Callable[[], datetime]) -> list[DatasetResult]:
    make = wb_api.make_client if account.marketplace == "wb" else ozon_api.make_client
    api = make(account, settings)
    memo: dict = {}
    try:
        # Datasets named by hand (`run --dataset balance`) run now, due or resting.
        by_hand = tuple(datasets) != DATASETS
        results = (collect_dataset(Context(settings, storage, account, api, run_id, clock(), memo), dataset,
                                   by_hand) for dataset in datasets)
        return [result for result in results if result is not None]
    finally:
        api.close()


def collect_dataset(ctx: Context, dataset: str, by_hand: bool = False) -> DatasetResult | None:
    """Fetch, normalise and write one dataset; None when an optional one is not due this pass."""
    ctx.api.stats = RequestStats()
    started, started_at = time.monotonic(), ctx.now_iso
    result = DatasetResult(ctx.account.account, dataset, "ok")
    is_optional = dataset in optional.OPTIONAL
    if is_optional and (note := optional.unset_host(ctx.settings, ctx.account.marketplace, dataset)):
        result.status = "skipped"
        with ctx.storage.transaction():
            ctx.storage.set_source_note(ctx.account.account, dataset, note, ctx.now_iso)
        _finish(ctx, result, started, started_at, separate_transaction=True)
        return result
    # The account's datasets share one client: each sets its own attempts.
    ctx.api.max_attempts = optional.ATTEMPTS if is_optional else ApiClient.max_attempts
    if is_optional and not by_hand and optional.resting_until(ctx.storage, ctx.account.account, dataset, ctx.now):
        result.status = "skipped"  # refused its category lately: the note on the freshness page says so
        _finish(ctx, result, started, started_at, separate_transaction=True)
        return result
    if is_optional and not by_hand and not optional.due(ctx.storage, ctx.account.account, dataset, ctx.now):
        return None
    try:
        collected = COLLECTORS[ctx.account.marketplace][dataset](ctx)
        result.rows, result.rejected = collected.rows, len(collected.rejected)
        with ctx.storage.transaction():
            collected.write(ctx.storage)
            keep_rejected(ctx, dataset, collected.rejected)
            ctx.storage.replace_note(ctx.account.account, dataset, None, ctx.now_iso, REFUSAL_MARK)
            if is_optional:
                optional.end_rest(ctx.storage, ctx.account.account, dataset, ctx.now_iso)
            _finish(ctx, result, started, started_at)
    except Exception as exc:  # noqa: BLE001 - one dataset's failure must not stop the others
        result.status, result.error = "failed", ctx.api.redact(describe_failure(ctx, dataset, exc))
        if not isinstance(exc, (ApiError, BadRecord)):
            logs.get_logger().debug(ctx.api.redact(traceback.format_exc()))
        if is_optional and optional.refused(exc):
            with ctx.storage.transaction():
                optional.start_rest(ctx.storage, ctx.account.account, ctx.account.marketplace, dataset,
                                    exc.status, ctx.now, ctx.now_iso, ctx.zone)
        elif optional.refused(exc) and (note := refusal_note(ctx.account.marketplace, exc)):
            with ctx.storage.transaction():
                ctx.storage.replace_note(ctx.account.account, dataset, note, ctx.now_iso, REFUSAL_MARK)
        _finish(ctx, result, started, started_at, separate_transaction=True)
    logs.event(logging.INFO if result.status == "ok" else logging.ERROR,
               f"{result.account} {dataset}: ok, {result.rows} rows" if result.status == "ok" else result.error,
               event="dataset", run_id=ctx.run_id, account=result.account, dataset=dataset,
               status=result.status, rows=result.rows, requests=result.requests,
               retries=result.retries, duration_ms=result.duration_ms)
    return result


def keep_rejected(ctx: Context, dataset: str, rejected: list) -> None:
    """Rows set aside go to rejected_rows and the freshness note; none clears that note."""
    rejects.keep(ctx.storage, ctx.account.account, dataset, rejected, ctx.now_iso)


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


def _finish(ctx: Context, result: DatasetResult, started: float, started_at: str,
            separate_transaction: bool = False) -> None:
    stats = ctx.api.stats
    result.requests, result.retries = stats.requests, stats.retries
    result.duration_ms = int((time.monotonic() - started) * 1000)
    entry = dict(run_id=ctx.run_id, account=result.account, dataset=result.dataset, status=result.status,
                 started_at=started_at, finished_at=iso(utc_now(), ctx.zone), rows=result.rows,
                 requests=result.requests, retries=result.retries, duration_ms=result.duration_ms,
                 error=result.error, rejected=result.rejected)
    if separate_transaction:
        ctx.storage.log_fetch(entry)
    else:
        ctx.storage.db["fetch_log"].insert(entry)


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
