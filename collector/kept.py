"""Pages kept ready: after every pass the collector computes the canned queries whose answer
only a write can change and stores their rows, so that the pages the dashboard opens read a few
hundred stored rows instead of computing them at every view.

- `restock_now`: `restock_window` for the windows a seller picks most (KEPT_WINDOWS), the
  default of which the canned query `restock` (the dashboard's «Заканчивается», the alerts)
  reads. At a big seller's size a window takes about a second (every place's days over it), too
  long for a page but nothing for a pass every 10 minutes; at midnight the next pass catches up.
  `restock_window` itself reads these rows for a kept window while its row of restock_now_basis
  vouches for them (nothing written since, same day and settings), and computes them otherwise.
  Only the rows that differ from those kept at their places are written.
- `restock_days_now`: each place's last 60 days as `restock_window` judges them (a letter a day,
  the units ordered and their kopecks), from which it reads any other window of every group, or
  of a group asked for by name (1..60 days; 0.5-1.2 s and 45-170 ms computed at a big seller's
  year), vouched for by restock_now_basis's row of days 0. Kept first: the windows of
  restock_now are then read from it too.
- `today_now`: `today` for today, every group (the dashboard's table by group, the page a seller
  opens most), and for the week and the month to today. `today` reads it only while it is whole
  and its day is the viewer's today: any write to the tables it is made of empties it
  (schema.sql), and until the next pass stores it again `today` computes its rows itself, so it
  never shows older figures than the tables hold.
- `buyout_now`: `buyout` for the last 30 days, every group (the dashboard's «Выкуп»), kept and
  emptied as today_now is.
- `marketplace_alias_warehouse_stock_days`: the stock at the end of each past day per warehouse,
  marketplace and group, from which `by_warehouse` reads a past day's stock: a day added when it
  is over, all of them computed again from the changes when a change lands on a day kept.
- `warehouse_month_now`: «По складам» per group for the last 30 days (`by_warehouse` and
  `orders_by_warehouse` with period=month, today) and for the last 7 days, today and yesterday
  (`by_warehouse`), read while warehouse_month_basis vouches for them as restock_now_basis does,
  written as restock_now is.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import operator
from datetime import datetime, timedelta

from collector import logs
from collector.alerts import CannedQueries
from collector.config import Settings
from collector.sqlfunctions import day_number, mp_date_add, prepare_collector_connection, stock_days
from collector.storage import Storage, rows_differing
from collector.timeutil import iso

RESTOCK_DAYS = 14  # the window of `restock` (what the dashboard and the alerts read)
# The windows kept ready, `restock`'s first: the help's examples besides the default, a week and
# a month (each ~1 s a pass at the reference seller's year, computed at every view otherwise).
KEPT_WINDOWS = (RESTOCK_DAYS, 7, 30)
RESTOCK_COLUMNS = ("alias", "marketplace", "warehouse", "stock", "avg_daily_ordered", "days_of_cover",
                   "runs_out_on", "to_ship", "days_out_of_stock", "lost_units", "lost_rub", "runs_out_soon")


def refresh_restock(settings: Settings, storage: Storage, now: datetime) -> int:
    """Bring each kept window's rows of restock_now to the rows of `restock_window` for it at
    `now`, and its row of restock_now_basis to what they were computed for; the number of rows
    written. Each window inside a write transaction of its own, so that no other writer comes
    between the rows and the basis that vouches for them, and with its basis cleared first, so
    that the query computes them rather than read the old ones back (in memory, as every
    transaction's temporary files: Storage.transaction)."""
    queries = CannedQueries(storage.db.conn, settings, now)
    written = 0
    for days in KEPT_WINDOWS:
        with storage.transaction():
            storage.db.execute("UPDATE restock_now_basis SET in_step = 0 WHERE days = ?", [days])
            rows = queries.rows("restock_window", days=str(days), soon="") or []
            written += _write_changed(storage, "restock_now", ("days", days), RESTOCK_COLUMNS, rows)
            storage.db.execute(
                "INSERT OR REPLACE INTO restock_now_basis"
                " (days, day, target_cover_days, low_stock_days, in_step, computed_at)"
                " VALUES (?, mp_today(), mp_target_cover_days(), mp_low_stock_days(), 1, ?)",
                [days, iso(now, settings.timezone)])
    return written


# The longest window of restock_window, and the days of restock_days_now.
RESTOCK_DAYS_KEPT = 60
ORDERED_DIGITS = 10  # a place's units in ordered_days: up to 9,999,999,999 in 60 days
KOPECKS_DIGITS = 12  # and their kopecks in ordered_kopecks_days: up to ~10 billion roubles

# Per place: the days from RESTOCK_DAYS_KEPT before today that moved units ordered or the stock
# ("day ordered change" joined by ";"), the stock now, and the day number from which its stock is
# known (NULL: never observed), as restock_window's `places` gathers them for its longest window;
# and the kopecks ordered on those days ("day kopecks" joined by ";").
PLACE_MOVES = """
WITH opened AS MATERIALIZED (SELECT mp_date_add(mp_today(), -:days) AS first_day,
                                    CAST(julianday(mp_today()) AS INTEGER) - :days AS first_n),
     inputs AS (
       SELECT w.alias, w.marketplace, w.warehouse,
              group_concat(m.day || ' ' || m.ordered || ' ' || m.stock_delta, ';') AS moves,
              group_concat(CASE WHEN m.ordered_kopecks <> 0 THEN m.day || ' ' || m.ordered_kopecks END, ';')
                  AS kopecks,
              0 AS quantity, 0 AS known_keys, 0 AS recent_keys, NULL AS recent_first_day
       FROM marketplace_alias_warehouses w
       CROSS JOIN marketplace_alias_warehouse_days m
       WHERE w.moving_days > 0
         AND m.warehouse = w.warehouse AND m.marketplace = w.marketplace AND m.alias = w.alias
         AND m.day >= (SELECT first_day FROM opened) AND (m.ordered <> 0 OR m.stock_delta <> 0)
       GROUP BY w.warehouse, w.marketplace, w.alias
       UNION ALL
       SELECT s.alias, a.marketplace, s.warehouse, NULL, NULL, s.quantity, 0, 0, NULL
       FROM alias_warehouse_stock s JOIN accounts a ON a.account = s.account
       UNION ALL
       SELECT d.alias, a.marketplace, d.warehouse, NULL, NULL, 0, d.keys,
              CASE WHEN d.first_day >= o.first_day THEN d.keys ELSE 0 END,
              CASE WHEN d.first_day >= o.first_day THEN d.first_day END
       FROM alias_warehouse_first_days d JOIN accounts a ON a.account = d.account CROSS JOIN opened o
       WHERE d.keys <> 0)
SELECT alias, marketplace, CASE WHEN marketplace = 'ozon' THEN warehouse ELSE '' END AS place,
       group_concat(moves, ';') AS moves, group_concat(kopecks, ';') AS kopecks, sum(quantity) AS stock,
       CASE WHEN sum(known_keys) = 0 THEN NULL
            WHEN sum(known_keys) > sum(recent_keys) THEN (SELECT first_n FROM opened) - 1
            ELSE CAST(julianday(min(recent_first_day)) AS INTEGER) END AS first_seen
FROM inputs
GROUP BY 1, 2, 3
"""


def refresh_restock_days(settings: Settings, storage: Storage, now: datetime) -> int:
    """Bring restock_days_now to each place's last RESTOCK_DAYS_KEPT days at `now`, and the row
    of days 0 of restock_now_basis to vouch for them; the number of places written. In one
    write transaction with the basis cleared first, as refresh_restock does."""
    prepare_collector_connection(storage.db.conn, settings.timezone, lambda: now,
                                 settings.target_cover_days, settings.low_stock_days)
    last_n = day_number(now.astimezone(settings.timezone).date().isoformat()) - 1
    first_n = last_n - RESTOCK_DAYS_KEPT + 1
    with storage.transaction():
        storage.db.execute("UPDATE restock_now_basis SET in_step = 0 WHERE days = 0")
        rows = [_place_days(alias, marketplace, place, moves, kopecks, stock, first_seen, first_n, last_n)
                for alias, marketplace, place, moves, kopecks, stock, first_seen
                in storage.db.execute(PLACE_MOVES, {"days": RESTOCK_DAYS_KEPT})]
        written = _write_keyed(storage, "restock_days_now", 3, [row for row in rows if row])
        storage.db.execute(
            "INSERT OR REPLACE INTO restock_now_basis"
            " (days, day, target_cover_days, low_stock_days, in_step, computed_at)"
            " VALUES (0, mp_today(), mp_target_cover_days(), mp_low_stock_days(), 1, ?)",
            [iso(now, settings.timezone)])
    return written


def _place_days(alias: str, marketplace: str, place: str, moves: str | None, kopecks: str | None,
                stock: int | None, first_seen: int | None, first_n: int, last_n: int) -> tuple | None:
    """A row of restock_days_now; None for a place with nothing to show in any window (no stock
    now, no order and no day in stock in the last RESTOCK_DAYS_KEPT days)."""
    letters, units = stock_days(moves, stock, first_seen, first_n, last_n)
    if (stock or 0) <= 0 and not any(units) and "i" not in letters:
        return None
    kopecks_on = _kopecks_by_day(kopecks)
    place_name = f"{alias} ({marketplace} {place})"
    return (alias, marketplace, place, stock or 0, letters,
            _last_days_totals(units, ORDERED_DIGITS, f"{place_name}: units"),
            _last_days_totals([kopecks_on.get(day, 0) for day in range(first_n, last_n + 1)], KOPECKS_DIGITS,
                              f"{place_name}: kopecks"))


def _kopecks_by_day(kopecks: str | None) -> dict[int, int]:
    """Kopecks ordered per day number, from PLACE_MOVES's "day kopecks" joined by ";"."""
    tokens = kopecks.replace(";", " ").split() if kopecks else []
    by_day: dict[int, int] = {}
    for day, amount in zip(map(day_number, tokens[0::2]), map(int, tokens[1::2])):
        by_day[day] = by_day.get(day, 0) + amount
    return by_day


def _last_days_totals(per_day: list[int], digits: int, what: str) -> bytes:
    """The totals of the last 1, 2, ... days of `per_day` (oldest first), each as `digits` ASCII
    digits, as bytes (a BLOB: see restock_days_now in schema.sql)."""
    totals = list(itertools.accumulate(reversed(per_day)))
    if totals and not 0 <= min(totals) <= max(totals) < 10 ** digits:
        raise ValueError(f"{what} out of range in {RESTOCK_DAYS_KEPT} days: {min(totals)}..{max(totals)}")
    return "".join(f"{total:0{digits}d}" for total in totals).encode("ascii")


def _write_keyed(storage: Storage, table: str, key_length: int, rows: list[tuple]) -> int:
    """`rows` as the whole of `table`, each known by its first `key_length` values (the table's
    primary key, then the rest of its columns in order): those that differ from the kept row of
    their key written, the kept rows of other keys removed; the number written."""
    columns = [row[1] for row in storage.db.execute(f"PRAGMA table_info({table})")]
    kept = {tuple(row[:key_length]): tuple(row) for row in storage.db.execute(f"SELECT * FROM {table}")}
    changed = [row for row in rows if _typed(kept.get(tuple(row[:key_length]))) != _typed(tuple(row))]
    gone = kept.keys() - {tuple(row[:key_length]) for row in rows}
    key = " AND ".join(f"{name} = ?" for name in columns[:key_length])
    storage.db.conn.executemany(f"DELETE FROM {table} WHERE {key}", list(gone))
    storage.db.conn.executemany(
        f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", changed)
    return len(changed)


def refresh_stock_days(settings: Settings, storage: Storage, now: datetime) -> int:
    """Bring marketplace_alias_warehouse_stock_days up to the day before `now` (local) and its
    basis to vouch for it; the number of rows written. The days after the last one kept are added
    from it and the changes since; without a basis in step (none yet, or a change since on a day
    kept) every day is computed again from the first change on. One write transaction."""
    yesterday = (now.astimezone(settings.timezone).date() - timedelta(days=1)).isoformat()
    with storage.transaction():
        basis = storage.db.execute("SELECT through, in_step FROM stock_days_basis").fetchone()
        if basis and basis[1] and basis[0] >= yesterday:
            return 0
        if basis and basis[1]:
            through = basis[0]
            stock = {tuple(place): quantity for *place, quantity in storage.db.execute(
                "SELECT warehouse, marketplace, alias, stock FROM marketplace_alias_warehouse_stock_days"
                " WHERE day = ?", [through])}
        else:
            # (17 s at the reference seller's year: after an upgrade, a rebuild, a new aliases file)
            logs.event(logging.INFO, "stock days: computing every day from the stock changes", event="stock days")
            through, stock = None, {}
            storage.db.execute("DELETE FROM marketplace_alias_warehouse_stock_days")
        written = 0
        for day, places in _stock_at_day_ends(_stock_changes(storage.db, through, yesterday), stock, through, yesterday):
            storage.db.conn.executemany(
                "INSERT INTO marketplace_alias_warehouse_stock_days (day, warehouse, marketplace, alias, stock)"
                " VALUES (?, ?, ?, ?, ?)",
                ((day, *place, quantity) for place, quantity in places))
            written += len(places)
        storage.db.execute("INSERT OR REPLACE INTO stock_days_basis (id, through, in_step)"
                           " VALUES (1, ?, 1)", [yesterday])
    return written


def stock_days_drift(db) -> tuple[str, int] | None:
    """The day the stock days are kept through and how many of their rows differ from every day
    computed again from alias_warehouse_days (which `rebuild --check` compares with the raw rows);
    None while no basis vouches for them (the next pass computes them). Reads both in key order,
    so memory stays flat at a year."""
    basis = db.execute("SELECT through FROM stock_days_basis WHERE in_step").fetchone()
    if basis is None:
        return None
    through = basis[0]
    computed = ((day, *place, quantity) for day, places in _stock_at_day_ends(_stock_changes(db, None, through), {},
                                                                             None, through)
                for place, quantity in places)
    kept = db.execute("SELECT day, warehouse, marketplace, alias, stock FROM marketplace_alias_warehouse_stock_days"
                      " ORDER BY day, warehouse, marketplace, alias")
    return through, rows_differing(kept, computed, 4)


def _stock_changes(db, after: str | None, through: str):
    """The stock changes per day, group, warehouse and marketplace after one day up to another."""
    # (the days in their order, as kept: no sort of the changes; CROSS JOIN keeps that order)
    return db.execute(
        "SELECT d.day, d.warehouse, a.marketplace, d.alias, d.stock_delta"
        " FROM alias_warehouse_days d CROSS JOIN accounts a ON a.account = d.account"
        " WHERE d.stock_delta <> 0 AND d.day > coalesce(?, '') AND d.day <= ? ORDER BY d.day", [after, through])


def _stock_at_day_ends(changes, stock: dict, through: str | None, last: str):
    """Per day after `through` up to `last` (from the first change's day when `through` is None),
    the places with stock at its end, in key order: `stock` (per place, at the end of `through`)
    carried forward through `changes` (day, *place, delta in order of day)."""
    changes = itertools.groupby(changes, key=operator.itemgetter(0))
    next_change = next(changes, None)
    day = mp_date_add(through, 1) if through else (next_change[0] if next_change else None)
    while day is not None and day <= last:
        if next_change and next_change[0] == day:
            for _, *place, delta in next_change[1]:
                stock[tuple(place)] = stock.get(tuple(place), 0) + delta
            next_change = next(changes, None)
        yield day, sorted((place, quantity) for place, quantity in stock.items() if quantity)
        day = mp_date_add(day, 1)


# The periods of today_now: its days, and `today`'s period parameter for them.
TODAY_PERIODS = ((1, ""), (7, "week"), (30, "month"))


def refresh_today(settings: Settings, storage: Storage, now: datetime) -> int:
    """Replace today_now with the rows of `today` for the day of `now`, for each period."""
    return _replace_whole(settings, storage, now, "today_now", "today",
                          [({"days": days}, {"period": period}) for days, period in TODAY_PERIODS])


BUYOUT_COLUMNS = ("alias", "marketplace", "ordered", "bought", "not_bought")


def refresh_buyout(settings: Settings, storage: Storage, now: datetime) -> int:
    """Replace buyout_now with the rows of `buyout` for the 30 days to the day of `now` (the
    dashboard's «Выкуп»)."""
    return _replace_whole(settings, storage, now, "buyout_now", "buyout", [({}, {})], BUYOUT_COLUMNS)


def _replace_whole(settings: Settings, storage: Storage, now: datetime, table: str, query: str,
                   pages: list[tuple[dict, dict]], columns: tuple[str, ...] | None = None) -> int:
    """Replace `table` with the rows of the canned `query` for each page (the values that key its
    rows, the query's parameters for it), in `columns` if given; the number of rows written.
    Emptied first in the same transaction, so that the query computes its rows rather than read
    the old ones; a reader sees the old rows or the new, never none. When they are the same (a
    pass that wrote nothing they are made of), the transaction is rolled back: nothing written."""
    queries = CannedQueries(storage.db.conn, settings, now)
    same = {"day": now.astimezone(settings.timezone).date().isoformat(), "computed_at": iso(now, settings.timezone)}
    written = 0
    try:
        with storage.transaction():
            kept = _rows_but_when(storage, table)
            storage.db.execute(f"DELETE FROM {table}")
            for key, params in pages:
                rows = queries.rows(query, **params) or []
                if columns:
                    rows = [{name: row[name] for name in columns} for row in rows]
                _insert(storage, table, rows, **key, **same)
                written += len(rows)
            if kept and _rows_but_when(storage, table) == kept:
                raise _Unchanged  # (a rollback writes nothing; a commit would write every page again)
    except _Unchanged:
        return 0
    return written


class _Unchanged(Exception):
    """The rows computed are the rows kept: nothing written since emptied the table."""


def _rows_but_when(storage: Storage, table: str) -> list[tuple]:
    """The table's rows, in order, without computed_at (which alone changes when nothing else did)."""
    cursor = storage.db.execute(f"SELECT * FROM {table}")
    names = [d[0] for d in cursor.description]
    return sorted(tuple(v for name, v in zip(names, row) if name != "computed_at") for row in cursor)


# The pages of warehouse_month_now, every group: its name there, the canned query, the period and
# how many days before today it ends (by_warehouse for today is the page «По складам» by group
# opens with; for yesterday, the day a seller compares it with).
WAREHOUSE_MONTH_PAGES = (("by_warehouse", "by_warehouse", "month", 0),
                         ("orders_by_warehouse", "orders_by_warehouse", "month", 0),
                         ("by_warehouse week", "by_warehouse", "week", 0),
                         ("by_warehouse day", "by_warehouse", "day", 0),
                         ("by_warehouse yesterday", "by_warehouse", "day", 1))
WAREHOUSE_MONTH_COLUMNS = ("alias", "marketplace", "warehouse", "stock", "ordered", "bought", "returned",
                           "ordered_rub", "bought_rub", "returned_rub")


def refresh_warehouse_month(settings: Settings, storage: Storage, now: datetime) -> int:
    """Bring warehouse_month_now to the rows of its pages at `now` and set warehouse_month_basis
    to vouch for them; the number of rows written. In one write transaction with the basis
    cleared first, as refresh_restock does."""
    queries = CannedQueries(storage.db.conn, settings, now)
    written = 0
    with storage.transaction():
        storage.db.execute("UPDATE warehouse_month_basis SET in_step = 0")
        today = now.astimezone(settings.timezone).date()
        for page, query, period, days_back in WAREHOUSE_MONTH_PAGES:
            rows = queries.rows(query, period=period, date=(today - timedelta(days=days_back)).isoformat()) or []
            written += _write_changed(storage, "warehouse_month_now", ("page", page), WAREHOUSE_MONTH_COLUMNS, rows)
        storage.db.execute("INSERT OR REPLACE INTO warehouse_month_basis (id, day, in_step) VALUES (1, mp_today(), 1)")
    return written


def _write_changed(storage: Storage, table: str, part: tuple[str, object], columns: tuple[str, ...],
                   rows: list[dict]) -> int:
    """`rows`, in their order, as the part of `table` where part[0] = part[1]; the number of rows
    written. A row is known by its place (IDENTITY) and ordered by `position`, spaced apart:
    the kept rows that stay in order keep their positions and are written only if a figure
    changed; the others (new, or moved up or down the page) are written between them, and the
    rows no longer there removed. Most of a kept page does not change between two passes, and a
    row that moves no longer moves every row after it."""
    name, value = part
    listed = ", ".join(columns)
    kept_rows = storage.db.execute(
        f"SELECT position, {listed} FROM {table} WHERE {name} = ? ORDER BY position", [value]).fetchall()
    identity = operator.itemgetter(*(columns.index(name) for name in IDENTITY))
    kept = {identity(old): (position, old) for position, *old in kept_rows}
    new = [tuple(row.get(column) for column in columns) for row in rows]
    olds = [kept.get(identity(row)) for row in new]
    positions = _spaced_positions([old and old[0] for old in olds])
    if positions is None or len({identity(row) for row in new}) < len(new):
        positions, olds = [SPACING * n for n in range(1, len(new) + 1)], [None] * len(new)
    # (the type of each value too: 0 and 0.0 are equal in Python, not on the page)
    changed = [(value, position, *row) for position, row, old in zip(positions, new, olds)
               if old is None or old[0] != position or _typed(row) != _typed(tuple(old[1]))]
    staying = {position for position, old in zip(positions, olds) if old and old[0] == position}
    storage.db.conn.executemany(f"DELETE FROM {table} WHERE {name} = ? AND position = ?",
                                [(value, position) for position, *_ in kept_rows if position not in staying])
    storage.db.conn.executemany(
        f"INSERT OR REPLACE INTO {table} ({name}, position, {listed}) VALUES (?, ?, {', '.join('?' * len(columns))})",
        changed)
    return len(changed)


IDENTITY = ("alias", "marketplace", "warehouse")  # what a row of a kept page is about
SPACING = 1 << 32  # between two kept rows' positions: room for rows moved in between them


def _spaced_positions(kept: list[int | None]) -> list[int] | None:
    """The positions of a page's rows in their new order, given each row's kept position (None
    for a row not kept): the longest run of kept rows still in order keeps its positions, every
    other row gets one between its neighbours'; None if there is no room between them."""
    staying = set(_longest_increasing(kept))
    positions: list[int] = []
    start = 0
    while start < len(kept):
        if start in staying:
            positions.append(kept[start])
            start += 1
            continue
        end = next((n for n in range(start, len(kept)) if n in staying), len(kept))
        low = positions[-1] if positions else 0
        step = SPACING if end == len(kept) else (kept[end] - low) // (end - start + 1)
        if step == 0:
            return None
        positions.extend(low + step * n for n in range(1, end - start + 1))
        start = end
    return positions


def _longest_increasing(values: list[int | None]) -> list[int]:
    """The indexes of a longest strictly increasing run of the values that are not None
    (patience sorting, n log n)."""
    tails: list[int] = []  # index of the smallest last value of a run of each length
    before: dict[int, int | None] = {}
    for index, value in enumerate(values):
        if value is None:
            continue
        length = bisect.bisect_left(tails, value, key=values.__getitem__)
        before[index] = tails[length - 1] if length else None
        if length == len(tails):
            tails.append(index)
        else:
            tails[length] = index
    run, index = [], tails[-1] if tails else None
    while index is not None:
        run.append(index)
        index = before[index]
    return run[::-1]


def _typed(row: tuple | None) -> tuple | None:
    return row and tuple((type(value), value) for value in row)


def _insert(storage: Storage, table: str, rows: list[dict], **same: object) -> None:
    """The rows in their order (`position` 1, 2, ...), in the columns the query names, each with
    the same values of `same`."""
    if not rows:
        return
    names = ("position", *rows[0], *same)
    storage.db.conn.executemany(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        ((n, *row.values(), *same.values()) for n, row in enumerate(rows, start=1)))
