"""Keeping the database healthy: an online backup, and pruning of the bookkeeping tables.

The data tables stay small by design (stock is change-only; orders and sales are one row per
order line or event). What grows without bound is bookkeeping: a `runs` row per pass and a
`fetch_log` row per account x dataset per pass (about 1,300 rows a day for three accounts at a
10-minute cadence), and the alerts sent (a digest a day, a message per pass that finds a new
low item, with a delivery row per channel). Those are pruned after `keep_days`; an alert still
pending delivery never is.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from collector.storage import Storage

DEFAULT_KEEP_DAYS = 90
BACKUP_PAGES_PER_STEP = 1024  # small steps: the writer is never held up for long


def backup(storage: Storage, destination: Path) -> int:
    """Copy the live database with SQLite's online backup API; returns the copy's size.

    Safe while Datasette reads and a pass writes: the backup restarts a step when the source
    changes under it and ends on a consistent snapshot. The copy is checked before it replaces
    an earlier one.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    target = sqlite3.connect(partial)
    try:
        storage.db.conn.backup(target, pages=BACKUP_PAGES_PER_STEP)
        verdict = target.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"the backup copy failed its integrity check: {verdict}")
    finally:
        target.close()
    partial.replace(destination)
    return destination.stat().st_size


def prune(storage: Storage, now: datetime, keep_days: int = DEFAULT_KEEP_DAYS) -> dict[str, int]:
    """Delete bookkeeping older than `keep_days`; returns rows deleted per table."""
    cutoff = (now - timedelta(days=keep_days)).isoformat(timespec="seconds")
    # julianday() compares instants, whatever offset each time was written with.
    old = "julianday(started_at) < julianday(?) AND status != 'running'"
    sent = "julianday(created_at) < julianday(?) AND status != 'pending'"
    with storage.transaction() as db:
        logs = db.execute(f"DELETE FROM fetch_log WHERE run_id IN (SELECT id FROM runs WHERE {old})", [cutoff]).rowcount
        runs = db.execute(f"DELETE FROM runs WHERE {old}", [cutoff]).rowcount
        deliveries = db.execute(f"DELETE FROM alert_deliveries WHERE event_id IN (SELECT id FROM alert_outbox WHERE {sent})",
                                [cutoff]).rowcount
        alerts = db.execute(f"DELETE FROM alert_outbox WHERE {sent}", [cutoff]).rowcount
    return {"fetch_log": logs, "runs": runs, "alert_deliveries": deliveries, "alert_outbox": alerts}


def daily(storage: Storage, now: datetime, keep_days: int = DEFAULT_KEEP_DAYS) -> bool:
    """Prune and optimize at most once a day, after a pass; True when it ran."""
    last = storage.state("maintenance_at")
    if last and now - datetime.fromisoformat(last) < timedelta(days=1):
        return False
    prune(storage, now, keep_days)
    optimize(storage)
    with storage.transaction():
        storage.set_state("maintenance_at", now.isoformat(timespec="seconds"), now.isoformat(timespec="seconds"))
    return True


def optimize(storage: Storage) -> None:
    """Refresh the planner's statistics and fold the WAL back into the database file."""
    storage.db.execute("PRAGMA optimize")
    storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
