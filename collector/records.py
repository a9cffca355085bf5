"""The one record shape per dataset that both marketplaces normalise into.

Field order matches the columns of the table each record is written to (schema.sql).
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache


class BadRecord(ValueError):
    """A row from a marketplace that cannot be read; the dataset fails rather than lose it."""


@dataclass(frozen=True, slots=True)
class OrderLine:
    account: str
    order_id: str
    sku: int
    article: str | None
    size: str
    barcode: str | None
    warehouse: str | None
    ordered_at: str
    day: str
    status: str
    is_cancelled: int
    cancelled_at: str | None
    quantity: int
    price_kopecks: int | None
    changed_at: str | None
    payout_kopecks: int | None = None  # the whole line («к перечислению»), where the API gives it


@dataclass(frozen=True, slots=True)
class SaleEvent:
    account: str
    kind: str  # sale | return
    sale_id: str
    sku: int
    order_id: str | None
    article: str | None
    size: str
    barcode: str | None
    warehouse: str | None
    sold_at: str | None
    day: str | None
    quantity: int
    amount_kopecks: int | None
    return_type: str | None
    changed_at: str | None
    payout_kopecks: int | None = None  # what the seller receives («к перечислению»): WB forPay


@dataclass(frozen=True, slots=True)
class StockLevel:
    account: str
    sku: int
    size: str
    warehouse: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Product:
    account: str
    sku: int
    size: str
    article: str | None
    name: str | None
    barcode: str | None


def columns(record_type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record_type))


def as_row(record) -> tuple:
    return astuple(record)


def kopecks(value) -> int | None:
    """Money as whole kopecks, exactly: 1284.01 and "1284.01" both give 128401."""
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise BadRecord(f"{value!r} is not an amount of money") from None
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@lru_cache(maxsize=65536, typed=True)
def _remembered_kopecks(value) -> int | None:
    return kopecks(value)


def page_kopecks(value) -> int | None:
    """kopecks(), remembered: a page repeats a few thousand prices over tens of thousands of
    rows, and Decimal arithmetic was a tenth of the cost of normalising one."""
    try:
        return _remembered_kopecks(value)
    except TypeError:  # unhashable: not money, and kopecks() says so
        return kopecks(value)


def whole(value, field_name: str) -> int:
    """An int64 that may come as a number or a string."""
    if isinstance(value, bool):
        raise BadRecord(f"{field_name}: {value!r} is not a whole number")
    try:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise BadRecord(f"{field_name}: {value!r} is not a whole number") from None


def required(row: dict, key: str, where: str):
    value = row.get(key)
    if value is None or value == "":
        raise BadRecord(f"{where}: the field {key!r} is missing")
    return value


class _GcPause:
    lock = threading.Lock()
    depth = 0
    resume = False


@contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while a page of rows becomes records.

    Every record stays alive until the page is written, so the collector would walk the growing
    heap again and again for nothing (records hold no reference cycles; reference counting frees
    them): 15 % of the time of normalising an 80,000-row WB page. Nests, and works across the
    threads that collect accounts in parallel: the last one out resumes collection.
    """
    with _GcPause.lock:
        if _GcPause.depth == 0:
            _GcPause.resume = gc.isenabled()
            gc.disable()
        _GcPause.depth += 1
    try:
        yield
    finally:
        with _GcPause.lock:
            _GcPause.depth -= 1
            if _GcPause.depth == 0 and _GcPause.resume:
                gc.enable()


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's balance at one pass, in kopecks; a figure the marketplace does not give is None."""
    account: str
    day: str
    currency: str | None
    current_kopecks: int | None = None
    for_withdraw_kopecks: int | None = None
    opening_kopecks: int | None = None
    accrued_kopecks: int | None = None
    paid_kopecks: int | None = None
    closing_kopecks: int | None = None
