"""Datasette plugin: SQL functions that make every query agree with the collector on "today".

SQLite's own ``date('now')`` is UTC, so between 00:00 and 03:00 Moscow time it still says
yesterday. The canned queries in metadata.yml use these functions instead:

* ``mp_today()``: today's date (``YYYY-MM-DD``) in ``TIMEZONE`` (default ``Europe/Moscow``);
* ``mp_now()``: the current time, ISO 8601 with the zone's offset
  (``2026-11-26T10:15:00+03:00``), the shape of the collector's timestamps;
* ``mp_day(value)``: the day a query parameter asks for: ``mp_today()`` when the value is empty
  or NULL, the value itself when it is a ``YYYY-MM-DD`` date, NULL otherwise;
* ``mp_date_add(day, n)``: ``day`` plus ``n`` days (``n`` may be negative); NULL when ``day``
  is not a date.

They are registered as deterministic. To SQLite that means "the same result for the same
arguments within one statement", which holds well enough (a statement takes milliseconds) and
is what the queries need: SQLite pushes ``day = mp_day(:date)`` down into the views' UNION ALL
branches and uses the ``day`` indexes only for deterministic functions, and it evaluates a call
with constant arguments once per statement rather than once per row. Never use them in an
index, a CHECK or a generated column (the writer does not register them anyway).
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from datasette import hookimpl

DEFAULT_TIMEZONE = "Europe/Moscow"


def _zone() -> ZoneInfo:
    # An empty TIMEZONE counts as not configured, as everywhere else in the project.
    return ZoneInfo(os.environ.get("TIMEZONE") or DEFAULT_TIMEZONE)


def local_now() -> datetime:
    """Now in TIMEZONE. Goes through UTC so that the machine's own zone never matters."""
    return datetime.now(timezone.utc).astimezone(_zone())


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


@hookimpl
def prepare_connection(conn):
    conn.create_function("mp_today", 0, mp_today, deterministic=True)
    conn.create_function("mp_now", 0, mp_now, deterministic=True)
    conn.create_function("mp_day", 1, mp_day, deterministic=True)
    conn.create_function("mp_date_add", 2, mp_date_add, deterministic=True)
