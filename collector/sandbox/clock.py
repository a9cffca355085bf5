"""Time for the sandbox: the clocks it can run on, and the time formats both marketplaces use.

Internally every instant is an int of microseconds since the Unix epoch (UTC). Ints compare and
sort fast, and a generated seller holds hundreds of thousands of them.
"""

from __future__ import annotations

import re
import threading
from datetime import date, datetime, timedelta, timezone

US = 1_000_000
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# Moscow has been UTC+3 all year since 2014, so a fixed offset is exact and needs no tz database.
MSK = timezone(timedelta(hours=3), "MSK")
MSK_OFFSET = 3 * HOUR

WB_NO_DATE = "0001-01-01T00:00:00"  # WB's "not set" sentinel, e.g. cancelDate of a live order

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class SandboxClock:
    """A clock that only moves when told to, so tests can step the seller through time."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("SandboxClock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by `delta` or by timedelta(**kwargs) (minutes=10, hours=2, ...)."""
        step = delta if delta is not None else timedelta(**kwargs)
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("SandboxClock needs an aware datetime")
        with self._lock:
            self._now = when.astimezone(timezone.utc)


class SystemClock:
    """Real time. Looked up on every call, so freezegun in tests freezes it too."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


def to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def msk_day(us: int) -> int:
    """The Moscow calendar day of an instant, as days since 1970-01-01."""
    return (us + MSK_OFFSET) // DAY


def msk_day_start(day: int) -> int:
    """Moscow midnight of a day number: 21:00Z of the previous UTC day."""
    return day * DAY - MSK_OFFSET


def day_number(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def day_date(day: int) -> date:
    return date.fromordinal(day + _EPOCH_ORDINAL)


def msk_hour(us: int) -> int:
    return (us + MSK_OFFSET) // HOUR % 24


def _trim_fraction(text: str) -> str:
    """isoformat() writes 6 fraction digits or none; WB writes only the significant ones."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_msk(us: int) -> str:
    """WB style: naive Moscow time with 0-6 fraction digits, e.g. 2026-11-26T10:30:17.52."""
    return _trim_fraction((_EPOCH_NAIVE + timedelta(microseconds=us + MSK_OFFSET)).isoformat())


def fmt_msk_offset(us: int) -> str:
    """Moscow time to the second with its offset, as WB's /ping writes TS."""
    return (_EPOCH_NAIVE + timedelta(seconds=(us + MSK_OFFSET) // US)).isoformat() + "+03:00"


def fmt_utc(us: int, digits: int = 6) -> str:
    """Ozon style: UTC with Z and a fixed number of fraction digits (3 or 6)."""
    text = (_EPOCH_NAIVE + timedelta(microseconds=us)).isoformat(timespec="microseconds")
    return text[: len(text) - (6 - digits)] + "Z" if digits else text[:-7] + "Z"


def fmt_utc_seconds(us: int) -> str:
    return (_EPOCH_NAIVE + timedelta(seconds=us // US)).isoformat() + "Z"


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_datetime(text: str, naive_zone: timezone) -> int:
    """Parse an RFC 3339 date or date-time into microseconds.

    A value without an offset (and a plain date, taken as its midnight) is read in `naive_zone`:
    Moscow for WB, UTC for Ozon. Fractions of any length are accepted and cut to microseconds.
    Raises ValueError for anything else.
    """
    text = text.strip()
    if _DATE_ONLY.match(text):
        return to_us(datetime.fromisoformat(text).replace(tzinfo=naive_zone))
    match = _DATE_TIME.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    day, hour, minute, second, fraction, offset = match.groups()
    moment = datetime.fromisoformat(f"{day}T{hour}:{minute}:{second or '00'}")
    if fraction:
        moment += timedelta(microseconds=int(fraction[:6].ljust(6, "0")))
    if offset in (None, ""):
        zone = naive_zone
    elif offset in ("Z", "z"):
        zone = timezone.utc
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        zone = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return to_us(moment.replace(tzinfo=zone))
