"""A Wildberries cabinet over time: its orders, what becomes of them, and the statistics rows and
stock the API shows at any moment.

Orders are generated per UTC hour from an RNG named by (seed, account, hour), and each order's
whole life (cancellation, buyout, return) is decided when it is created. The rows visible at t are
then a pure function of t: WB republishes its statistics on a fixed grid (`wb_refresh_minutes`),
so an event becomes a row, with that publication time as its lastChangeDate, at the first grid
point after it. Events published in the same batch second share one lastChangeDate, which is
where the boundary duplicates of `dateFrom >=` paging come from.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

from collector.sandbox.catalog import WB_REGIONS, WB_WAREHOUSES, WbProduct, WbSize, wb_catalog
from collector.sandbox.clock import DAY, HOUR, MINUTE, US, msk_day, msk_day_start
from collector.sandbox.config import SandboxConfig
from collector.sandbox.demand import hourly_rate
from collector.sandbox.randomness import (WeightedPicker, below, poisson, rng_for, rough_time,
                                          uniform_us)
from collector.sandbox.stock import RestockSchedule

MAX_ORDERS_PER_HOUR = 10_000  # order numbers are hour * 10_000 + index
BASKET_SHARE = 0.15  # chance that an order joins the previous order's basket (same gNumber)
SPP_CHOICES = (0, 5, 10, 15, 20, 25, 26, 30)
WALLET_SHARE = 0.2  # of buyouts, paid with a WB Wallet discount (paymentSaleAmount)
PUBLISH_SPREAD_SECONDS = 60  # a publication batch writes its rows over its first minute
SALE_FIX_HOURS = (2.0, 24.0)  # S rows published with zero amounts get them within this delay
ODD_ROW_DAYS = (0.05, 3.0)
IN_WAY_BACK = 3 * DAY  # a cancelled order's unit travels back to the warehouse this long
WAREHOUSE_ID = -999_999  # wb-warehouses aggregates every warehouse into one since 15.08.2026
WAREHOUSE_NAME = "Склад WB"
CABINET_CACHE_ORDERS = 240_000  # generated orders kept in memory per cabinet (~450 bytes each)


@dataclass(slots=True)
class WbOrder:
    """One ordered unit and its whole future. Times are µs; `*_listed` are publication times."""

    n: int  # unique per cabinet: hour * MAX_ORDERS_PER_HOUR + index
    created: int
    product: WbProduct
    size: WbSize
    warehouse: str
    region: tuple[str, str, str]
    g_number: int
    income_id: int  # the supply the unit came with
    sticker: int
    spp: int
    has_warehouse_type: bool
    listed: int
    cancel_at: int | None = None
    cancel_listed: int | None = None
    sale_at: int | None = None
    sale_listed: int | None = None
    sale_amounts_listed: int | None = None  # set when the S row first shows zero amounts
    wallet_rub: int = 0  # paymentSaleAmount
    return_at: int | None = None
    return_listed: int | None = None
    odd_at: int | None = None
    odd_listed: int | None = None


class FeedRow(NamedTuple):
    """An order as the order feed shows it at some moment: its current status and the time it
    was reached (`updated`). The feed is real time: no publication grid. Sorts by (updated, n)."""

    updated: int
    n: int
    status: str  # created | cancel | buyout | return | returnDefective
    order: WbOrder


class WbRow(NamedTuple):
    """A row of /supplier/orders or /supplier/sales as visible at some moment.

    `kind` is "order" or a saleID prefix ("S", "R", "D"). `flag` is isCancel for orders and
    "amounts not published yet" for S rows. Rows sort by (last_change, n, kind), which is unique.
    """

    last_change: int
    n: int
    kind: str
    date: int
    order: WbOrder
    flag: bool


@dataclass(frozen=True, slots=True)
class WbStock:
    product: WbProduct
    size: WbSize
    quantity: int
    in_way_to_client: int
    in_way_from_client: int


class WbCabinet:
    """WB cabinet `wb-<number>`. All times are µs since the epoch."""

    marketplace = "wb"

    def __init__(self, config: SandboxConfig, number: int, history_start: int):
        self.account = f"wb-{number}"
        self.config = config
        self.history_start = history_start
        self.products = wb_catalog(config, number)
        sizes = [(product, size) for product in self.products for size in product.sizes]
        self._sizes = WeightedPicker(sizes, [size.weight for _, size in sizes])
        self._warehouses = WeightedPicker(*zip(*WB_WAREHOUSES))
        self._regions = WeightedPicker(*zip(*WB_REGIONS))
        self._refresh = config.wb_refresh_minutes * MINUTE
        self._restocks = RestockSchedule(config.restock_every_days, config.restock_cover)
        self._stock_window = max(config.restock_every_days, int(config.wb_buyout_days[1]) + 1) * DAY
        publish_delay = self._refresh + PUBLISH_SPREAD_SECONDS * US
        self._lags = {  # the longest time from an order's creation to its last published change
            "orders": int(config.wb_cancel_hours[1] * HOUR) + publish_delay,
            "sales": int((config.wb_buyout_days[1] + max(config.wb_return_days[1], ODD_ROW_DAYS[1]))
                         * DAY) + publish_delay,
        }
        # Sales rows other than returns and D rows are published within this of the order.
        self._buyout_lag = int(config.wb_buyout_days[1] * DAY + SALE_FIX_HOURS[1] * HOUR) + publish_delay
        cache_days = max(12, CABINET_CACHE_ORDERS // max(1, int(config.wb_orders_per_day)))
        self.day_orders = functools.lru_cache(maxsize=cache_days)(self._generate_day)
        self._late_orders = functools.lru_cache(maxsize=config.history_days + 2)(self._select_late)
        self._stock_snapshot = functools.lru_cache(maxsize=4)(self._compute_stock)
        # The feed pages one snapshot by offset: every page of it reads the same list.
        self.feed_rows = functools.lru_cache(maxsize=8)(self._feed_rows)

    # --- generation -------------------------------------------------------------------------

    def _generate_day(self, day: int) -> tuple[WbOrder, ...]:
        """Orders created on Moscow day `day`, oldest first."""
        if msk_day_start(day) < self.history_start:
            return ()
        first_hour = msk_day_start(day) // HOUR
        return tuple(order for hour in range(first_hour, first_hour + 24)
                     for order in self._generate_hour(hour))

    def _generate_hour(self, hour: int) -> list[WbOrder]:
        config = self.config
        rng = rng_for(config.seed, self.account, "orders", hour)
        rate = hourly_rate(config.wb_orders_per_day, hour, config.seed, self.account)
        count = min(poisson(rng, rate), MAX_ORDERS_PER_HOUR)
        times = sorted(rough_time(rng, hour * HOUR + below(rng, HOUR)) for _ in range(count))
        orders: list[WbOrder] = []
        for index, created in enumerate(times):
            if orders and rng.random() < BASKET_SHARE:  # bought together with the previous unit
                created, g_number = orders[-1].created, orders[-1].g_number
            else:
                g_number = rng.getrandbits(64)
            product, size = self._sizes.pick(rng)
            order = WbOrder(
                n=hour * MAX_ORDERS_PER_HOUR + index, created=created, product=product, size=size,
                warehouse=self._warehouses.pick(rng), region=self._regions.pick(rng),
                g_number=g_number, income_id=self._income_id(product, created),
                sticker=10**8 + below(rng, 10**10 - 10**8),
                spp=SPP_CHOICES[below(rng, len(SPP_CHOICES))],
                has_warehouse_type=rng.random() >= config.wb_warehouse_type_missing_rate,
                listed=self._publish(created, rng))
            self._decide_fate(order, rng)
            orders.append(order)
        return orders

    def _income_id(self, product: WbProduct, created: int) -> int:
        """Each restock is a supply (income) of its own."""
        return product.income_base + self._restocks.cycle_at(product.restock_phase, created)

    def _decide_fate(self, order: WbOrder, rng) -> None:
        """Cancelled within hours, or bought out within days and then maybe returned."""
        config = self.config
        if rng.random() < config.wb_cancel_rate:
            order.cancel_at = order.created + uniform_us(rng, config.wb_cancel_hours, HOUR)
            order.cancel_listed = self._publish(order.cancel_at, rng)
            return
        order.sale_at = order.created + uniform_us(rng, config.wb_buyout_days, DAY)
        order.sale_listed = self._publish(order.sale_at, rng)
        if rng.random() < WALLET_SHARE:
            order.wallet_rub = order.product.price_kop * 3 // 10_000  # 3 % off, in whole rubles
        if rng.random() < config.wb_zero_amount_rate:
            order.sale_amounts_listed = self._publish(
                order.sale_at + uniform_us(rng, SALE_FIX_HOURS, HOUR), rng)
        if rng.random() < config.wb_odd_sale_rate:
            order.odd_at = order.sale_at + uniform_us(rng, ODD_ROW_DAYS, DAY)
            order.odd_listed = self._publish(order.odd_at, rng)
        if rng.random() < config.wb_return_rate:
            order.return_at = order.sale_at + uniform_us(rng, config.wb_return_days, DAY)
            order.return_listed = self._publish(order.return_at, rng)

    def _publish(self, event: int, rng) -> int:
        """When the event shows up as a row: the next refresh point, plus the batch second.

        Every row published in the same batch second gets the same timestamp, fraction included,
        and the fraction's length varies from batch to batch as WB's own does.
        """
        batch = -(-event // self._refresh) * self._refresh
        second = below(rng, PUBLISH_SPREAD_SECONDS)
        mixed = (batch // US * 2_654_435_761 + second * 40_503 + self.config.seed) % 2**32
        digits = mixed % 7
        fraction = mixed * 7_919 % US
        return batch + second * US + fraction - fraction % 10 ** (6 - digits)

    def _select_late(self, day: int) -> tuple[WbOrder, ...]:
        """The orders of `day` with a sales row published after _buyout_lag: returns, D rows.
        A few percent of a day, kept apart so that sales queries reaching weeks back need not
        hold those weeks of orders in memory."""
        return tuple(order for order in self.day_orders(day)
                     if order.return_listed is not None or order.odd_listed is not None)

    def _orders_with_rows_from(self, dataset: str, day: int, moment: int) -> tuple[WbOrder, ...]:
        """The orders of `day` that can have a `dataset` row published at or after `moment`."""
        if dataset == "sales" and msk_day_start(day + 1) + self._buyout_lag <= moment:
            return self._late_orders(day)
        return self.day_orders(day)

    # --- rows visible at t ------------------------------------------------------------------

    @staticmethod
    def _order_rows(order: WbOrder, t: int) -> list[WbRow]:
        if order.listed > t:
            return []
        if order.cancel_listed is not None and order.cancel_listed <= t:
            return [WbRow(order.cancel_listed, order.n, "order", order.created, order, True)]
        return [WbRow(order.listed, order.n, "order", order.created, order, False)]

    @staticmethod
    def _sale_rows(order: WbOrder, t: int) -> list[WbRow]:
        rows = []
        if order.sale_listed is not None and order.sale_listed <= t:
            fixed = order.sale_amounts_listed
            if fixed is None:
                rows.append(WbRow(order.sale_listed, order.n, "S", order.sale_at, order, False))
            elif fixed <= t:
                rows.append(WbRow(fixed, order.n, "S", order.sale_at, order, False))
            else:
                rows.append(WbRow(order.sale_listed, order.n, "S", order.sale_at, order, True))
        if order.return_listed is not None and order.return_listed <= t:
            rows.append(WbRow(order.return_listed, order.n, "R", order.return_at, order, False))
        if order.odd_listed is not None and order.odd_listed <= t:
            rows.append(WbRow(order.odd_listed, order.n, "D", order.odd_at, order, False))
        return rows

    def _rows_of(self, dataset: str):
        return self._order_rows if dataset == "orders" else self._sale_rows

    def rows_changed_since(self, dataset: str, since: int, t: int, cap: int) -> list[WbRow]:
        """flag=0: rows of `dataset` ("orders" or "sales") visible at t with lastChangeDate >=
        since, sorted by lastChangeDate, at most `cap`.

        Orders are walked day by day from the oldest one that can still change after `since`.
        Rows of later orders change no earlier than their creation, so once `cap` rows precede
        the next day's start the page is complete and the walk stops: a 90-day backfill costs
        in proportion to the page, not to the history.
        """
        rows_of = self._rows_of(dataset)
        kept_from = t - self.config.wb_retention_days * DAY
        rows: list[WbRow] = []
        first_day = msk_day(max(since - self._lags[dataset], self.history_start))
        for day in range(first_day, msk_day(t) + 1):
            for order in self._orders_with_rows_from(dataset, day, since):
                if order.created > t:
                    break
                rows.extend(row for row in rows_of(order, t)
                            if row.last_change >= since and row.date >= kept_from)
            next_day = msk_day_start(day + 1)
            if len(rows) >= cap and sum(row.last_change < next_day for row in rows) >= cap:
                break
        rows.sort()
        return rows[:cap]

    def rows_dated(self, dataset: str, day: int, t: int) -> list[WbRow]:
        """flag=1: every row of `dataset` visible at t whose `date` is on Moscow day `day`."""
        rows_of = self._rows_of(dataset)
        start, end = msk_day_start(day), msk_day_start(day + 1)
        kept_from = t - self.config.wb_retention_days * DAY
        first_day = day if dataset == "orders" else msk_day(start - self._lags["sales"])
        rows = [row
                for order_day in range(first_day, day + 1)
                for order in self._orders_with_rows_from(dataset, order_day, start)
                if order.created <= t
                for row in rows_of(order, t) if start <= row.date < end and row.date >= kept_from]
        rows.sort(key=lambda row: (row.date, row.n, row.kind))
        return rows

    # --- order feed ------------------------------------------------------------------------

    @staticmethod
    def feed_status(order: WbOrder, t: int) -> tuple[str, int] | None:
        """(status, since when) of an order at t in the feed's words; None before it exists."""
        if order.created > t:
            return None
        if order.cancel_at is not None and order.cancel_at <= t:
            return "cancel", order.cancel_at
        if order.return_at is not None and order.return_at <= t:
            # Which returns are defective is not modelled; a stable quarter of them reads so.
            return ("returnDefective" if order.n % 4 == 0 else "return"), order.return_at
        if order.sale_at is not None and order.sale_at <= t:
            return "buyout", order.sale_at
        return "created", order.created

    def _feed_rows(self, start: int, end: int, t: int) -> tuple[FeedRow, ...]:
        """Orders whose status at t was reached within [start, end], by (updatedAt, n)."""
        rows = []
        first_day = msk_day(max(start - self._lags["sales"], self.history_start))
        for day in range(first_day, msk_day(min(end, t)) + 1):
            # A day whose buyouts all lie before `start` can only bring returns: the late orders.
            for order in self._orders_with_rows_from("sales", day, start):
                status = self.feed_status(order, t)
                if status is None:
                    break
                if start <= status[1] <= end:
                    rows.append(FeedRow(status[1], order.n, status[0], order))
        rows.sort()
        return tuple(rows)

    # --- stock ------------------------------------------------------------------------------

    def expected_daily_orders(self, size: WbSize) -> float:
        return self.config.wb_orders_per_day * size.weight / self._sizes.total

    def stock_at(self, t: int) -> list[WbStock]:
        """Stock per size as published at t (WB refreshes it on the same grid as statistics)."""
        return self._stock_snapshot(t - t % self._refresh)

    def _compute_stock(self, at: int) -> list[WbStock]:
        window_start = at - self._stock_window
        restocks = self._restocks
        cycles = {product.nm_id: restocks.cycle_at(product.restock_phase, at)
                  for product in self.products}
        restocked_at = {product.nm_id: restocks.restock_time(product.restock_phase, cycles[product.nm_id])
                        for product in self.products}
        sold, to_client, from_client = Counter(), Counter(), Counter()
        for day in range(msk_day(window_start), msk_day(at) + 1):
            for order in self.day_orders(day):
                if order.created > at:
                    break
                if order.created < window_start:
                    continue
                key = order.size.chrt_id
                if order.cancel_at is not None and order.cancel_at <= at:
                    from_client[key] += at - order.cancel_at < IN_WAY_BACK
                    continue
                sold[key] += order.created >= restocked_at[order.product.nm_id]
                to_client[key] += order.sale_at is None or order.sale_at > at
        stock = []
        for product in self.products:
            for size in product.sizes:
                level = restocks.level((self.config.seed, self.account, size.chrt_id),
                                       cycles[product.nm_id], self.expected_daily_orders(size))
                stock.append(WbStock(product, size, max(0, level - sold[size.chrt_id]),
                                     to_client[size.chrt_id], from_client[size.chrt_id]))
        return stock

    # --- ground truth -----------------------------------------------------------------------

    def units_dated(self, dataset: str, day: int, t: int, kind: str) -> Counter:
        """Units per nmId among rows dated on `day` visible at t: kind "order" counts orders not
        cancelled, "S"/"R" count sales/returns."""
        units: Counter = Counter()
        for row in self.rows_dated(dataset, day, t):
            if row.kind == kind and not (kind == "order" and row.flag):
                units[row.order.product.nm_id] += 1
        return units

    def units_by_event(self, day: int, t: int) -> dict[str, Counter]:
        """Real-time truth, as the order feed knows it at t: units per nmId ordered on `day` and not
        cancelled by t, bought out on `day`, and returned on `day` (event times, Moscow days)."""
        start, end = msk_day_start(day), msk_day_start(day + 1)
        units = {"ordered": Counter(), "bought": Counter(), "returned": Counter()}
        for order_day in range(msk_day(max(start - self._lags["sales"], self.history_start)), day + 1):
            for order in self.day_orders(order_day):
                nm_id = order.product.nm_id
                if order_day == day and order.created <= t and not (
                        order.cancel_at is not None and order.cancel_at <= t):
                    units["ordered"][nm_id] += 1
                for measure, moment in (("bought", order.sale_at), ("returned", order.return_at)):
                    if moment is not None and start <= moment < min(end, t + 1):
                        units[measure][nm_id] += 1
        return units
