"""One pass as the timer, the scheduler and a person run it: under the run lock, with the
database opened and migrated, followed by the daily maintenance and the metrics file."""

from __future__ import annotations

import logging

from collector import logs, maintenance
from collector.config import Settings
from collector.metrics import write_textfile
from collector.pipeline import PassResult, run_lock, run_pass
from collector.storage import Storage
from collector.timeutil import utc_now


def collect_once(settings: Settings, trigger: str, datasets: tuple[str, ...] | None = None) -> PassResult:
    """Raises AlreadyRunning when another pass holds the lock, StorageError when the database
    cannot be opened or written."""
    with run_lock(settings.database_path):
        storage = Storage(settings.database_path)
        try:
            storage.migrate()
            result = run_pass(settings, storage, trigger, **({"datasets": datasets} if datasets else {}))
            if maintenance.daily(storage, utc_now().astimezone(settings.timezone)):
                logs.event(logging.INFO, "daily maintenance done: old run logs pruned, statistics refreshed",
                           event="maintenance")
            if settings.metrics_file:
                write_textfile(storage, settings.metrics_file)
            return result
        finally:
            storage.close()
