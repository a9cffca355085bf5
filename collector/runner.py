"""One pass as the timer, the scheduler and a person run it: under the run lock, with the
database opened and migrated, followed by the daily maintenance and the metrics file."""

from __future__ import annotations

import logging

from collector import logs, maintenance
from collector.config import Settings
from collector.metrics import write_textfile
from collector.pipeline import PassResult, run_lock, run_pass, upgrade
from collector.stopping import Stopped
from collector.storage import Storage
from collector.timeutil import iso, utc_now


def collect_once(settings: Settings, trigger: str, datasets: tuple[str, ...] | None = None) -> PassResult:
    """Raises AlreadyRunning when another pass holds the lock, StorageError when the database
    cannot be opened or written, Stopped when a signal cut the pass short."""
    with run_lock(settings.database_path):
        storage = Storage(settings.database_path)
        try:
            upgrade(settings, storage)
            result = run_or_close(settings, storage, trigger, **({"datasets": datasets} if datasets else {}))
            if maintenance.daily(storage, utc_now().astimezone(settings.timezone)):
                logs.event(logging.INFO, "daily maintenance done: old run logs pruned, statistics refreshed",
                           event="maintenance")
            if settings.metrics_file:
                write_textfile(storage, settings.metrics_file)
            return result
        finally:
            storage.close()


def run_or_close(settings: Settings, storage: Storage, trigger: str, **options) -> PassResult:
    """run_pass; when a stop cuts it short, its run is closed as failed before Stopped goes on,
    so that the runs table never shows a pass running that no process runs. The datasets saved
    before the stop keep their rows and fetch_log rows; the one in progress wrote nothing."""
    try:
        return run_pass(settings, storage, trigger, **options)
    except Stopped:
        finished = iso(options.get("clock", utc_now)(), settings.timezone)
        with storage.transaction():  # callers hold the run lock: the running run is this one
            storage.db.execute("UPDATE runs SET status = 'failed', finished_at = ? WHERE status = 'running'",
                               [finished])
        logs.event(logging.WARNING, "pass stopped by a signal: the datasets saved so far are kept, "
                   "the next pass fetches the rest", event="pass", status="stopped", trigger=trigger)
        raise
