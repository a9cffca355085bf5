"""Time in the seller's zone.

The machine's own zone never matters: every "today" and every stored time is in TIMEZONE.
WB sends naive Moscow times, Ozon sends UTC with `Z`; both end up as ISO 8601 with an offset.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

MOSCOW = ZoneInfo("Europe/Moscow")
# WB writes this for "not cancelled"; it overflows when shifted across zones, so it must be
# recognised before any conversion.
WB_NULL_TIME = "0001-01-01T00:00:00"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def local_now(zone: ZoneInfo) -> datetime:
    return utc_now().astimezone(zone)


def local_midnight(moment: datetime, zone: ZoneInfo) -> datetime:
    """The start of the local day that contains `moment`."""
    local = moment.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone)


def iso(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat(timespec="seconds")


def local_day(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).date().isoformat()


def parse_wb_time(value: str | None) -> datetime | None:
    """WB times are naive Moscow time with 0-6 fraction digits."""
    if not value or value.startswith(WB_NULL_TIME[:10]):
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=MOSCOW)


def wb_local(value: str | None, zone: ZoneInfo) -> tuple[str, str] | None:
    """A WB time as (`iso` in `zone`, `local_day` in `zone`): parse_wb_time, iso and local_day in
    one step, with the same results and errors; None for an empty value or WB's null time.

    Normalising a WB page converts two times per row, and the general path (attach the zone,
    convert, format) was a third of the cost of storing a row. The usual case, a naive Moscow time
    read into TIMEZONE=Europe/Moscow, needs no conversion: the text is kept to the second and the
    zone's offset for that wall time appended, as isoformat() would write it.
    """
    if not value or value.startswith(WB_NULL_TIME[:10]):
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None and zone is MOSCOW:
        plain = len(value) >= 19 and value[10] == "T" and value[19:20] in ("", ".")
        text = value[:19] if plain else parsed.isoformat(timespec="seconds")
        return text + _offset_text(zone.utcoffset(parsed)), text[:10]
    return local_parts(parsed if parsed.tzinfo else parsed.replace(tzinfo=MOSCOW), zone)


def local_parts(moment: datetime, zone: ZoneInfo) -> tuple[str, str]:
    """(iso(moment, zone), local_day(moment, zone)), converting once: the ISO text starts with
    the local date."""
    text = iso(moment, zone)
    return text, text[:10]


@lru_cache(maxsize=None)
def _offset_text(offset: timedelta) -> str:
    """"+03:00": a UTC offset exactly as datetime.isoformat() writes it."""
    return datetime(2000, 1, 1, tzinfo=timezone(offset)).isoformat()[19:]


def format_wb_time(moment: datetime) -> str:
    """The naive Moscow form WB expects in `dateFrom`."""
    return moment.astimezone(MOSCOW).replace(tzinfo=None).isoformat(timespec="seconds")


def parse_ozon_time(value: str | None) -> datetime | None:
    """Ozon times are UTC with `Z` and 3 or 6 fraction digits."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_ozon_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_day(value: str) -> date:
    return date.fromisoformat(value)


def days_ago(moment: datetime, days: int) -> datetime:
    return moment - timedelta(days=days)
