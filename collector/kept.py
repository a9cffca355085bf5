"""Pages kept ready: after every pass the collector computes the canned queries whose answer
only a write can change and stores their rows, so that the pages the dashboard opens read a few
hundred stored rows instead of computing them at every view.

- `restock_now`: `restock_window` for its default window, which the canned query `restock` (the
  dashboard's «Заканчивается», the alerts) reads. At a big seller's size it takes seconds (every
  place's days over the window), too long for a page but nothing for a pass every 10 minutes;
  at midnight the next pass catches up.
- `today_now`: `today` for today, every group (the dashboard's table by group, the page a seller
  opens most). `today` reads it only while it is whole and its day is the viewer's today: any
  write to the tables it is made of empties it (schema.sql), and until the next pass stores it
  again `today` computes its rows itself, so it never shows older figures than the tables hold.
"""

from __future__ import annotations

from datetime import datetime

from collector.alerts import CannedQueries
from collector.config import Settings
from collector.storage import Storage
from collector.timeutil import iso


def refresh_restock(settings: Settings, storage: Storage, now: datetime) -> int:
    """Replace restock_now with the rows of `restock_window` (14 days) at `now`; their number.

    Its sorts and windows run in memory: in temporary files they wrote ~400 MB a pass at the
    reference seller's year (all of it thrown away), in memory they take ~175 MB for seconds."""
    storage.db.execute("PRAGMA temp_store = MEMORY")
    try:
        rows = CannedQueries(storage.db.conn, settings, now).rows("restock_window", days="", soon="") or []
    finally:
        storage.db.execute("PRAGMA temp_store = DEFAULT")
    with storage.transaction():
        storage.db.execute("DELETE FROM restock_now")
        _insert(storage, "restock_now", rows, computed_at=iso(now, settings.timezone))
    return len(rows)


def refresh_today(settings: Settings, storage: Storage, now: datetime) -> int:
    """Replace today_now with the rows of `today` for the day of `now`; their number. Emptied
    first in the same transaction, so that the query computes them rather than read the old ones;
    a reader sees the old rows or the new, never none."""
    queries = CannedQueries(storage.db.conn, settings, now)
    with storage.transaction():
        storage.db.execute("DELETE FROM today_now")
        rows = queries.rows("today") or []
        _insert(storage, "today_now", rows, day=now.astimezone(settings.timezone).date().isoformat(),
                computed_at=iso(now, settings.timezone))
    return len(rows)


def _insert(storage: Storage, table: str, rows: list[dict], **same: str) -> None:
    """The rows in their order (`position` 1, 2, ...), in the columns the query names, each with
    the same values of `same`."""
    if not rows:
        return
    names = ("position", *rows[0], *same)
    storage.db.conn.executemany(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        ((n, *row.values(), *same.values()) for n, row in enumerate(rows, start=1)))
