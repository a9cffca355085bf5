"""Pages kept ready: after every pass the collector computes the canned queries whose answer
only a write can change and stores their rows, so that the pages the dashboard opens read a few
hundred stored rows instead of computing them at every view.

- `restock_now`: `restock_window` for its default window, which the canned query `restock` (the
  dashboard's «Заканчивается», the alerts) reads. At a big seller's size it takes about a second
  (every place's days over the window), too long for a page but nothing for a pass every 10
  minutes; at midnight the next pass catches up. `restock_window` itself reads these rows for
  that window while restock_now_basis vouches for them (nothing written since, same day and
  settings), and computes them otherwise.
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

RESTOCK_DAYS = 14  # the window of `restock` (what the dashboard and the alerts read)


def refresh_restock(settings: Settings, storage: Storage, now: datetime) -> int:
    """Replace restock_now with the rows of `restock_window` for RESTOCK_DAYS at `now`, and
    restock_now_basis with what they were computed for; their number. Computed inside the write
    transaction, so that no other writer comes between the rows and the basis that vouches for
    them, and with the basis cleared first, so that the query computes them rather than read the
    old ones back.

    Its sorts and windows run in memory: in temporary files they wrote ~400 MB a pass at the
    reference seller's year (all of it thrown away), in memory they take ~175 MB for seconds."""
    queries = CannedQueries(storage.db.conn, settings, now)
    storage.db.execute("PRAGMA temp_store = MEMORY")
    try:
        with storage.transaction():
            storage.db.execute("UPDATE restock_now_basis SET in_step = 0")
            rows = queries.rows("restock_window", days=str(RESTOCK_DAYS), soon="") or []
            storage.db.execute("DELETE FROM restock_now")
            _insert(storage, "restock_now", rows, computed_at=iso(now, settings.timezone))
            storage.db.execute(
                "INSERT OR REPLACE INTO restock_now_basis (id, day, days, target_cover_days, low_stock_days, in_step)"
                " VALUES (1, mp_today(), ?, mp_target_cover_days(), mp_low_stock_days(), 1)", [RESTOCK_DAYS])
    finally:
        storage.db.execute("PRAGMA temp_store = DEFAULT")
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
