"""The sandbox seller's stock, followed through time event by event.

The sandbox computes the stock at t from scratch (the restock level of each key minus the units
ordered since its last restock and not cancelled by t): about a second per account at the
reference seller's size, too slow to ask at every 10-minute step of a month, let alone a year.
The trackers here apply the same model incrementally: an order takes its units off when it is
created, gives them back when it is cancelled (if no restock came in between), and a restock
resets its product's keys to their new level. `check()` compares the result with the sandbox's
own answer (`Seller.stock_units`), so the two cannot drift apart unnoticed.

WB publishes its stock report on the statistics grid (every `wb_refresh_minutes`), so its tracker
answers for the last grid point; Ozon's answer is real time, to the minute.
"""

from __future__ import annotations

import heapq
from datetime import datetime

from collector.records import StockLevel
from collector.sandbox.clock import DAY, MINUTE, from_us, msk_day, to_us
from collector.sandbox.seller import Seller
from collector.sandbox.stock import RestockSchedule

WB_WAREHOUSE = "Склад WB"  # wb-warehouses aggregates every warehouse into one since 15.08.2026
WARM_UP = 8 * DAY  # longer than a restock period: every key has been restocked at least once


class _Tracker:
    """Shared mechanics: keys with a level and units sold since their product's last restock."""

    account: str
    grid: int  # the answer at t is the state at t - t % grid

    def __init__(self, seller: Seller, account: str, start: datetime):
        self.seller = seller
        self.config = seller.config
        self.restocks = RestockSchedule(self.config.restock_every_days, self.config.restock_cover)
        self.level: dict = {}  # key -> units after the last restock
        self.sold: dict = {}  # key -> units taken since then
        self.restocked_at: dict = {}  # product id -> time of its last restock
        self.cycle: dict = {}  # product id -> restock cycle number
        self.product_keys: dict = {}  # product id -> its keys
        self.touched: set = set()
        self._events: list = []  # heap of (time, order, seq, kind, payload)
        self._seq = 0
        self._loaded_until_day: int | None = None
        begin = to_us(start) - WARM_UP
        self.now = begin
        self._init_products(begin)
        self._load_days(msk_day(begin), msk_day(begin))
        self.advance(start)
        self.touched = set(self.level)

    # --- model ------------------------------------------------------------------------------

    def _restock(self, product_id, phase: int, cycle: int) -> None:
        self.cycle[product_id] = cycle
        self.restocked_at[product_id] = self.restocks.restock_time(phase, cycle)
        for key, seed_parts, expected in self.product_keys[product_id]:
            self.level[key] = self.restocks.level(seed_parts, cycle, expected)
            self.sold[key] = 0
            self.touched.add(key)
        self._push(self.restocks.restock_time(phase, cycle + 1), 0, "restock", (product_id, phase))

    def _push(self, when: int, order: int, kind: str, payload) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, order, self._seq, kind, payload))

    def _take(self, key, units: int, created: int, product_id) -> None:
        if created >= self.restocked_at[product_id]:
            self.sold[key] += units
            self.touched.add(key)

    def _give_back(self, key, units: int, created: int, product_id) -> None:
        # Units of an order created before the last restock were never taken from this cycle.
        if created >= self.restocked_at[product_id]:
            self.sold[key] -= units
            self.touched.add(key)

    def advance(self, t: datetime) -> None:
        """Apply every event up to the answer time of t."""
        until = to_us(t)
        until -= until % self.grid
        self._load_days(msk_day(self.now), msk_day(until) + 1)
        events = self._events
        while events and events[0][0] <= until:
            when, _, _, kind, payload = heapq.heappop(events)
            if kind == "restock":
                product_id, phase = payload
                self._restock(product_id, phase, self.cycle[product_id] + 1)
            else:
                self._apply(kind, payload)
        self.now = until

    def _load_days(self, first: int, last: int) -> None:
        """Queue the order events of Moscow days first..last (each day once)."""
        start = first if self._loaded_until_day is None else max(first, self._loaded_until_day + 1)
        for day in range(start, last + 1):
            self._load_day(day)
            self._loaded_until_day = day

    # --- answers ----------------------------------------------------------------------------

    def quantity(self, key) -> int:
        return max(0, self.level[key] - self.sold[key])

    def changed(self) -> dict:
        """{key: quantity} of the keys touched since the last call (their quantity may be the same)."""
        touched, self.touched = self.touched, set()
        return {key: self.quantity(key) for key in touched}

    def check(self, t: datetime) -> None:
        """Raise if the tracked stock differs from the sandbox's own at t."""
        truth = self.seller.stock_units(self.account, t)
        mine = {self.truth_key(key): self.quantity(key) for key in self.level}
        if truth != mine:
            wrong = sorted(k for k in truth.keys() | mine.keys() if truth.get(k) != mine.get(k))
            raise AssertionError(f"{self.account}: the stock tracker disagrees with the sandbox at "
                                 f"{t.isoformat()} on {len(wrong)} keys, e.g. {wrong[:3]}")


class WbStockTracker(_Tracker):
    """Keys are chrtIds (sizes); quantities as the wb-warehouses report shows them."""

    def __init__(self, seller: Seller, account: str, start: datetime):
        self.account = account
        self.cabinet = seller.wb(account)
        self.grid = self.cabinet.config.wb_refresh_minutes * MINUTE
        self.nm_of: dict[int, int] = {}
        super().__init__(seller, account, start)

    def _init_products(self, at: int) -> None:
        seed, cabinet = self.config.seed, self.cabinet
        for product in cabinet.products:
            self.product_keys[product.nm_id] = [
                (size.chrt_id, (seed, self.account, size.chrt_id), cabinet.expected_daily_orders(size))
                for size in product.sizes]
            for size in product.sizes:
                self.nm_of[size.chrt_id] = product.nm_id
            self._restock(product.nm_id, product.restock_phase,
                          self.restocks.cycle_at(product.restock_phase, at))

    def _load_day(self, day: int) -> None:
        for order in self.cabinet.day_orders(day):
            nm_id = order.product.nm_id
            self._push(order.created, 1, "order", (order.size.chrt_id, order.created, nm_id))
            if order.cancel_at is not None:
                self._push(order.cancel_at, 1, "cancel", (order.size.chrt_id, order.created, nm_id))

    def _apply(self, kind: str, payload) -> None:
        key, created, nm_id = payload
        if kind == "order":
            self._take(key, 1, created, nm_id)
        else:
            self._give_back(key, 1, created, nm_id)

    def truth_key(self, key):
        return self.nm_of[key], key

    def level_of(self, key, quantity: int) -> StockLevel:
        return StockLevel(self.account, self.nm_of[key], str(key), WB_WAREHOUSE, quantity)

    def reported(self, key, quantity: int) -> bool:
        """The report leaves out sizes with nothing on hand (and nothing on the way): the
        collector then writes their 0 itself."""
        return quantity > 0


class OzonStockTracker(_Tracker):
    """Keys are (sku, warehouse_id); quantities are available_stock_count."""

    def __init__(self, seller: Seller, account: str, start: datetime):
        self.account = account
        self.store = seller.ozon(account)
        self.grid = MINUTE
        self.warehouse_name = {w.warehouse_id: w.name for w in self.store.warehouses}
        super().__init__(seller, account, start)

    def _init_products(self, at: int) -> None:
        seed, store = self.config.seed, self.store
        for product in store.active_products:
            self.product_keys[product.sku] = [
                ((product.sku, w.warehouse_id), (seed, self.account, product.sku, w.warehouse_id),
                 store.expected_daily_units(product, w))
                for w in store.warehouses]
            self._restock(product.sku, product.restock_phase,
                          self.restocks.cycle_at(product.restock_phase, at))

    def _load_day(self, day: int) -> None:
        for posting in self.store.day_postings(day):
            lines = tuple(((line.product.sku, posting.warehouse.warehouse_id), line.quantity, line.product.sku)
                          for line in posting.lines if line.product.sku in self.product_keys)
            self._push(posting.created, 1, "order", (lines, posting.created))
            if posting.cancel_at is not None:
                self._push(posting.cancel_at, 1, "cancel", (lines, posting.created))

    def _apply(self, kind: str, payload) -> None:
        lines, created = payload
        change = self._take if kind == "order" else self._give_back
        for key, units, sku in lines:
            change(key, units, created, sku)

    def truth_key(self, key):
        sku, warehouse_id = key
        return sku, self.warehouse_name[warehouse_id]

    def level_of(self, key, quantity: int) -> StockLevel:
        sku, warehouse_id = key
        return StockLevel(self.account, sku, "", self.warehouse_name[warehouse_id], quantity)

    def reported(self, key, quantity: int) -> bool:
        return True  # /v1/analytics/stocks answers every SKU x warehouse asked for


def tracker_for(seller: Seller, account: str, start: datetime) -> _Tracker:
    kind = WbStockTracker if account.startswith("wb-") else OzonStockTracker
    return kind(seller, account, start)


class StockReport:
    """What the collector's stock request returns at each pass, as StockLevels, kept up to date
    cheaply: only the keys that changed are rebuilt."""

    def __init__(self, tracker: _Tracker):
        self.tracker = tracker
        self.levels: dict = {}
        self.last_touched: dict = {}  # {tracker key: quantity} that may have changed at the last call

    @property
    def size(self) -> int:
        """Rows the report holds."""
        return len(self.levels)

    def at(self, t: datetime, complete: bool = True) -> list[StockLevel] | None:
        """The report at t (None unless `complete`: building the list costs a copy of every key)."""
        self.tracker.advance(t)
        self.last_touched = self.tracker.changed()
        for key, quantity in self.last_touched.items():
            if self.tracker.reported(key, quantity):
                self.levels[key] = self.tracker.level_of(key, quantity)
            else:
                self.levels.pop(key, None)
        return list(self.levels.values()) if complete else None
