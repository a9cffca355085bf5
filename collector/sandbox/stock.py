"""Stock as a function of time: restocks on a schedule, orders take units away.

Every stock key (a WB size, an Ozon SKU at a warehouse) is topped up once every
`restock_every_days` at 06:00 Moscow time, on a day that depends on its product, to a fresh level
worth `restock_cover` periods of its expected demand. Between restocks, units ordered and not
(yet) cancelled come off, never below 0. So the stock at t needs only the orders since the key's
last restock, not the whole history, and a cover below 1 makes a key sell out for a while.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.sandbox.clock import HOUR, msk_day, msk_day_start
from collector.sandbox.randomness import rng_for

RESTOCK_TIME_OF_DAY = 6 * HOUR


@dataclass(frozen=True)
class RestockSchedule:
    period_days: int
    cover: tuple[float, float]

    def cycle_at(self, phase: int, at_us: int) -> int:
        """The number of the latest restock at or before `at_us`; cycle c lands on the day
        c * period - phase."""
        return (msk_day(at_us - RESTOCK_TIME_OF_DAY) + phase) // self.period_days

    def restock_time(self, phase: int, cycle: int) -> int:
        return msk_day_start(cycle * self.period_days - phase) + RESTOCK_TIME_OF_DAY

    def level(self, seed_parts: tuple, cycle: int, expected_per_day: float) -> int:
        """The units on hand right after restock `cycle` of the key named by `seed_parts`."""
        cover = rng_for(*seed_parts, "restock", cycle).uniform(*self.cover)
        return round(expected_per_day * self.period_days * cover)
