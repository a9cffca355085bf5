"""What to ship, kept ready: after every pass the collector computes the canned query
`restock_window` for its default window and stores its rows in `restock_now`, which the canned
query `restock` (the dashboard's «Заканчивается», the alerts) reads at once.

At a big seller's size the computation takes seconds (every place's days over the window),
too long for a page under Datasette's time limit but nothing for a pass that runs every 10
minutes; and the figures change only when a pass writes, or at midnight, which the next pass
catches.
"""

from __future__ import annotations

from datetime import datetime

from collector.alerts import CannedQueries
from collector.config import Settings
from collector.storage import Storage
from collector.timeutil import iso

COLUMNS = ("alias", "marketplace", "warehouse", "stock", "avg_daily_ordered", "days_of_cover", "runs_out_on",
           "to_ship", "days_out_of_stock", "lost_units", "runs_out_soon")


def refresh(settings: Settings, storage: Storage, now: datetime) -> int:
    """Replace restock_now with the rows of `restock_window` (14 days) at `now`; their number.

    Its sorts and windows run in memory: in temporary files they wrote ~400 MB a pass at the
    reference seller's year (all of it thrown away), in memory they take ~175 MB for seconds."""
    storage.db.execute("PRAGMA temp_store = MEMORY")
    try:
        rows = CannedQueries(storage.db.conn, settings, now).rows("restock_window", days="", soon="")
    finally:
        storage.db.execute("PRAGMA temp_store = DEFAULT")
    computed_at = iso(now, settings.timezone)
    with storage.transaction():
        storage.db.execute("DELETE FROM restock_now")
        storage.db.conn.executemany(
            f"INSERT INTO restock_now (position, {', '.join(COLUMNS)}, computed_at) "
            f"VALUES (?, {', '.join('?' * len(COLUMNS))}, ?)",
            ((n, *(row[c] for c in COLUMNS), computed_at) for n, row in enumerate(rows or [], start=1)))
    return len(rows or [])
