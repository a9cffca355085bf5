"""SQL functions that make every query agree with the collector on "today".

SQLite's own ``date('now')`` is UTC, so between 00:00 and 03:00 Moscow time it still says
yesterday. The canned queries in metadata.yml use these functions instead:

* ``mp_today()``: today's date (``YYYY-MM-DD``) in ``TIMEZONE`` (default ``Europe/Moscow``);
* ``mp_now()``: the current time, ISO 8601 with the zone's offset
  (``2026-11-26T10:15:00+03:00``), the shape of the collector's timestamps;
* ``mp_day(value)``: the day a query parameter asks for: ``mp_today()`` when the value is empty
  or NULL, the value itself when it is a ``YYYY-MM-DD`` date, NULL otherwise;
* ``mp_date_add(day, n)``: ``day`` plus ``n`` days (``n`` may be negative); NULL when ``day``
  is not a date;
* ``mp_period_days(value)``: how many days a ``period`` parameter spans: 1 for ``day`` (or
  empty), 7 for ``week``, 30 for ``month``, NULL otherwise (so a misspelt period gives no rows
  rather than a silently different figure);
* ``mp_target_cover_days()``, ``mp_low_stock_days()``: ``TARGET_COVER_DAYS`` (30) and
  ``LOW_STOCK_DAYS`` (7) from the environment, for the restock figures.
* ``mp_days_out_of_stock(moves, stock, first_seen, first_day, last_day)``: how many days of a
  window a place was out of stock, worked out from the days its figures moved (see the function).

They are registered as deterministic. To SQLite that means "the same result for the same
arguments within one statement", which holds well enough (a statement takes milliseconds) and
is what the queries need: SQLite pushes ``day = mp_day(:date)`` down into the views' UNION ALL
branches and uses the ``day`` indexes only for deterministic functions, and it evaluates a call
with constant arguments once per statement rather than once per row. Never use them in an
index, a CHECK or a generated column (the writer does not register them anyway).

Registered by the Datasette plugin on the viewer's connections (collector/datasette_plugin.py) and
by the collector on its own (the alerts and the kept pages run the canned queries); this module
imports nothing of Datasette, so that a pass starts without loading it.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Europe/Moscow"


def zone() -> ZoneInfo:
    # An empty TIMEZONE counts as not configured, as everywhere else in the project.
    return ZoneInfo(os.environ.get("TIMEZONE") or DEFAULT_TIMEZONE)


def local_now() -> datetime:
    """Now in TIMEZONE. Goes through UTC so that the machine's own zone never matters."""
    return datetime.now(timezone.utc).astimezone(zone())


def mp_now() -> str:
    return local_now().isoformat(timespec="seconds")


def mp_today() -> str:
    return local_now().date().isoformat()


def _parse_day(value) -> date | None:
    try:
        text = str(value).strip()
        # fromisoformat also takes 20261126 and 2026-W48-4; only YYYY-MM-DD is a day here.
        return date.fromisoformat(text) if len(text) == 10 and text[4] == "-" else None
    except ValueError:
        return None


def mp_day(value) -> str | None:
    if value is None or str(value).strip() == "":
        return mp_today()
    day = _parse_day(value)
    return day.isoformat() if day else None


def mp_date_add(day, n) -> str | None:
    parsed = _parse_day(day) if day is not None else None
    if parsed is None or n is None:
        return None
    try:
        return (parsed + timedelta(days=int(n))).isoformat()
    except (TypeError, ValueError, OverflowError):
        return None


PERIOD_DAYS = {"": 1, "day": 1, "week": 7, "month": 30}


def mp_period_days(value) -> int | None:
    return PERIOD_DAYS.get("" if value is None else str(value).strip().lower())


DEFAULT_SETTINGS = {"TARGET_COVER_DAYS": 30, "LOW_STOCK_DAYS": 7}  # DESIGN.md, "Configuration"


def _setting(name: str):
    """A positive number of days from the environment, as the collector reads it; a whole
    number stays an int, so that the queries' unit arithmetic stays exact."""
    try:
        value = float(os.environ.get(name) or DEFAULT_SETTINGS[name])
    except ValueError:
        value = DEFAULT_SETTINGS[name]
    value = value if value > 0 else DEFAULT_SETTINGS[name]
    return int(value) if value.is_integer() else value


def mp_target_cover_days():
    return _setting("TARGET_COVER_DAYS")


def mp_low_stock_days():
    return _setting("LOW_STOCK_DAYS")


JULIAN_DAY_OF_ORDINAL_0 = 1721424  # date.toordinal() + this = the Julian day number at noon
_DAY_NUMBERS: dict[str, int] = {}


def day_number(text: str) -> int:
    """CAST(julianday(text) AS INTEGER) for a YYYY-MM-DD day, remembered (a window has few days,
    and SQLite's julianday() for every row of it cost restock_window a sixth of its time)."""
    number = _DAY_NUMBERS.get(text)
    if number is None:
        number = _DAY_NUMBERS[text] = date.fromisoformat(text).toordinal() + JULIAN_DAY_OF_ORDINAL_0
    return number


def mp_days_out_of_stock(moves: str | None, stock: int | None, first_seen: int | None, first_day: int,
                         last_day: int) -> int | None:
    """How many of the days first_day..last_day (day numbers) a place was out of stock, as
    `restock_window` counts them: a day is out when the stock was known (on or after first_seen,
    the day the place was first observed; never when it is NULL), at zero or below from the start
    to the end of the day, and nothing was ordered. `moves` lists the days the place's figures
    moved, "YYYY-MM-DD ordered stock_change" joined by ";" in any order, up to today; `stock` is
    the stock now. Between two such days the stock stays what it was and nothing is ordered, so
    the quiet days in between are judged together: a few steps per place rather than a row per day.

    NULL when the place has nothing to show: no stock now, nothing ordered in the window and no
    day of it in stock."""
    stock = stock or 0
    ordered_on, change_on = _moves_by_day(moves)
    level = stock - sum(change_on.values())  # the stock as the window opened
    out, had_stock, ordered_in_window, cursor = 0, False, 0, first_day

    def quiet(until: int) -> int:
        """Days cursor..until: nothing ordered, the stock at `level`; how many were out."""
        nonlocal had_stock
        if until < cursor:
            return 0
        if level > 0:
            had_stock = True
            return 0
        return max(0, until - max(cursor, first_seen) + 1) if first_seen is not None else 0

    for day in sorted(change_on):
        if day > last_day:
            break
        out += quiet(day - 1)
        ordered, before = ordered_on[day], level
        level += change_on[day]
        ordered_in_window += ordered
        if level > 0:
            had_stock = True
        elif first_seen is not None and day >= first_seen and ordered == 0 and before <= 0:
            out += 1
        cursor = day + 1
    out += quiet(last_day)
    return out if stock > 0 or ordered_in_window > 0 or had_stock else None


def _moves_by_day(moves: str | None) -> tuple[dict[int, int], dict[int, int]]:
    """Units ordered and the stock change per day number, from mp_days_out_of_stock's `moves`."""
    tokens = moves.replace(";", " ").split() if moves else []
    ordered_on: dict[int, int] = {}
    change_on: dict[int, int] = {}
    for text, ordered, change in zip(tokens[0::3], map(int, tokens[1::3]), map(int, tokens[2::3])):
        day = day_number(text)
        ordered_on[day] = ordered_on.get(day, 0) + ordered
        change_on[day] = change_on.get(day, 0) + change
    return ordered_on, change_on


def stock_days(moves: str | None, stock: int | None, first_seen: int | None, first_day: int,
               last_day: int) -> tuple[str, list[int]]:
    """Day by day what mp_days_out_of_stock adds up over first_day..last_day, so that any window
    ending on last_day can be read from it: a letter a day, oldest first ("o" out of stock, "i"
    in stock at the end of the day, "-" neither), and the units ordered each day. Counted over a
    window's days, the "o"s are its days out of stock, and the place has something to show when
    its stock now is above zero, or the window has an order or an "i"."""
    ordered_on, change_on = _moves_by_day(moves)
    level = (stock or 0) - sum(change for day, change in change_on.items() if day >= first_day)
    letters, units = [], []
    for day in range(first_day, last_day + 1):
        before = level
        level += change_on.get(day, 0)
        ordered = ordered_on.get(day, 0)
        known = first_seen is not None and day >= first_seen
        letters.append("i" if level > 0 else "o" if known and ordered == 0 and before <= 0 else "-")
        units.append(ordered)
    return "".join(letters), units


def register_functions(conn) -> None:
    """The functions on one of the viewer's connections: \"now\" is the wall clock in TIMEZONE."""
    conn.create_function("mp_today", 0, mp_today, deterministic=True)
    conn.create_function("mp_now", 0, mp_now, deterministic=True)
    conn.create_function("mp_day", 1, mp_day, deterministic=True)
    conn.create_function("mp_date_add", 2, mp_date_add, deterministic=True)
    conn.create_function("mp_period_days", 1, mp_period_days, deterministic=True)
    conn.create_function("mp_target_cover_days", 0, mp_target_cover_days, deterministic=True)
    conn.create_function("mp_low_stock_days", 0, mp_low_stock_days, deterministic=True)
    conn.create_function("mp_days_out_of_stock", 5, mp_days_out_of_stock, deterministic=True)


def prepare_collector_connection(conn, zone: ZoneInfo, clock, target_cover_days: float = 30,
                                 low_stock_days: float = 7) -> None:
    """The same functions on a connection of the collector, whose alerts run the seller's canned
    queries: "now" is the pass's clock in the collector's TIMEZONE setting, and the days are its
    settings (the viewer's environment may not have them, and a test's or a replay's pass runs
    at its own time)."""
    register_functions(conn)
    for name, value in (("mp_target_cover_days", target_cover_days), ("mp_low_stock_days", low_stock_days)):
        number = int(value) if float(value).is_integer() else float(value)  # as _setting: exact when whole
        conn.create_function(name, 0, lambda number=number: number, deterministic=True)

    def today() -> str:
        return clock().astimezone(zone).date().isoformat()

    conn.create_function("mp_today", 0, today, deterministic=True)
    conn.create_function("mp_now", 0, lambda: clock().astimezone(zone).isoformat(timespec="seconds"),
                         deterministic=True)
    conn.create_function("mp_day", 1, lambda value: today() if value is None or str(value).strip() == ""
                         else mp_day(value), deterministic=True)
