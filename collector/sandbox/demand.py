"""When buyers order: a daily shape (quiet at night, busiest in the evening, Moscow time) and a
day-to-day wobble, the same for both marketplaces."""

from __future__ import annotations

from collector.sandbox.clock import HOUR, msk_day, msk_hour
from collector.sandbox.randomness import rng_for

_RAW_SHAPE = (0.30, 0.18, 0.10, 0.07, 0.07, 0.12, 0.30, 0.60, 0.90, 1.10, 1.25, 1.30,
              1.30, 1.30, 1.30, 1.30, 1.35, 1.40, 1.50, 1.60, 1.60, 1.50, 1.20, 0.70)
HOUR_SHAPE = tuple(weight * 24 / sum(_RAW_SHAPE) for weight in _RAW_SHAPE)  # averages 1.0
DAY_WOBBLE = (0.85, 1.15)


def hourly_rate(per_day: float, hour: int, *seed_parts: object) -> float:
    """Expected orders in UTC hour number `hour` (hours since the epoch) for an account whose
    average is `per_day`. `seed_parts` name the account, so accounts wobble independently."""
    start = hour * HOUR
    wobble = rng_for(*seed_parts, "day", msk_day(start)).uniform(*DAY_WOBBLE)
    return per_day / 24 * HOUR_SHAPE[msk_hour(start)] * wobble
