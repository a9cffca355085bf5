"""An Ozon store over time: its FBO postings, their statuses, returns and stock at any moment.

Orders are generated per UTC hour from an RNG named by (seed, account, hour); an order of two SKUs
is sometimes split into two postings (…-1, …-2) shipped from different warehouses. Each posting's
timeline (awaiting_packaging → awaiting_deliver → delivering → delivered | cancelled) and its
returns are decided when it is created, so its status at t is a pure function of t. Ozon answers
in real time: a posting is visible from its created_at.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

from collector.sandbox.catalog import (OZON_BUYER_CITIES, OzonProduct, OzonWarehouse, WbProduct,
                                       ozon_catalog, ozon_warehouse_set)
from collector.sandbox.clock import DAY, HOUR, MINUTE, US, msk_day, msk_day_start
from collector.sandbox.config import SandboxConfig
from collector.sandbox.demand import hourly_rate
from collector.sandbox.randomness import WeightedPicker, below, poisson, rng_for, stable_int, uniform_us
from collector.sandbox.stock import RestockSchedule

MAX_ORDERS_PER_HOUR = 10_000  # order numbers start with hour * 10_000 + index
TWO_SKU_SHARE = 0.25
SPLIT_SHARE = 0.3  # of two-SKU orders, split into two postings
QUANTITIES = WeightedPicker((1, 2, 3), (80, 15, 5))  # units per posting line
DELIVERY_TYPES = WeightedPicker(("PVZ", "Courier"), (75, 25))
PAYMENT_TYPES = WeightedPicker(
    ("Карты оплаты", "Система Быстрых Платежей", "Ozon Карта", "Оплата при получении"), (45, 25, 20, 10))
# Where in a posting's life a cancellation strikes: before packaging, waiting for the courier,
# or during delivery (a refusal at handover, which comes back as a FullReturn).
CANCEL_STAGES = WeightedPicker(("awaiting_packaging", "awaiting_deliver", "delivering"), (60, 25, 15))
CANCEL_REASONS = (  # cancel_reason_id, cancel_reason, cancellation_initiator, cancellation_type
    (402, "Покупатель отменил заказ", "Клиент", "client"),
    (401, "Покупатель передумал", "Клиент", "client"),
    (352, "Товар закончился на складе", "Ozon", "ozon"),
    (400, "Покупатель отказался от товара при получении", "Клиент", "client"),
)
CLIENT_RETURN_DAYS = (1.0, 10.0)  # from delivery to the buyer's return
RETURN_TRANSIT_DAYS = (1.0, 4.0)  # from the return's start to its arrival at the warehouse
PARTIAL_RETURN_SHARE = 0.01  # of delivered multi-unit postings, part refused at handover
CANCELLATION_RETURN_SHARE = 0.5  # of postings cancelled while awaiting the courier
RETURN_REASONS = {
    "ClientReturn": ("Не подошёл размер", "Товар не соответствует описанию", "Передумал покупать",
                     "Брак"),
    "FullReturn": ("Покупатель отказался при вручении: недоволен качеством товара",
                   "Покупатель отказался при вручении: передумал"),
    "PartialReturn": ("Покупатель отказался от части товаров при вручении",),
    "Cancellation": ("Отмена заказа до передачи в доставку",),
}
STORAGE_FREE_DAYS = 7
# The official example shows only ArrivedAtReturnPlace (an FBS pickup point); FBO returns travel
# back to an Ozon warehouse. These two statuses are modelled on it.
VISUAL_MOVING = (2, "Едет на склад Ozon", "MovingToOzon")
VISUAL_ARRIVED = (5, "Вернулся на склад Ozon", "ReturnedToOzon")
RETURN_DATE_FIELDS = ("logistic_return_date", "storage_tariffication_start_date",
                      "visual_status_change_moment")
STOCK_WINDOW_DAYS = 3  # postings reserve units until they ship, at most this long
SUPPLY_REQUESTED = 5 * DAY  # a coming restock shows as requested this long before it lands
SUPPLY_IN_TRANSIT = 2 * DAY  # and as in transit for the last part of that
STORE_CACHE_POSTINGS = 160_000  # generated postings kept in memory per store (~630 bytes each)


@dataclass(frozen=True, slots=True)
class OzonLine:
    product: OzonProduct
    quantity: int
    price_kop: int  # per unit


@dataclass(frozen=True, slots=True)
class OzonReturn:
    return_id: int
    line: OzonLine
    quantity: int
    kind: str  # ClientReturn, FullReturn, PartialReturn, Cancellation
    reason: str
    started: int  # the return is registered (logistic.technical_return_moment)
    arrived: int  # it reaches the warehouse (logistic.return_date)
    barcode: str

    def arrived_by(self, t: int) -> int | None:
        return self.arrived if self.arrived <= t else None

    def storage_start(self, t: int) -> int | None:
        """Storage is charged from STORAGE_FREE_DAYS after arrival, a date known once arrived."""
        return self.arrived + STORAGE_FREE_DAYS * DAY if self.arrived <= t else None

    def visual_status(self, t: int) -> tuple[tuple[int, str, str], int]:
        """The (id, display_name, sys_name) of the return's status at t, and when it changed."""
        if self.arrived <= t:
            return VISUAL_ARRIVED, self.arrived
        return VISUAL_MOVING, self.started

    def date_for(self, field: str, t: int) -> int | None:
        """The date /v1/returns/list filters on, by the name of its filter range."""
        if field == "logistic_return_date":
            return self.arrived_by(t)
        if field == "storage_tariffication_start_date":
            return self.storage_start(t)
        return self.visual_status(t)[1]


@dataclass(slots=True)
class OzonPosting:
    n: int  # unique per store: hour * MAX_ORDERS_PER_HOUR + index
    part: int  # the posting_number's last number
    order_number: str
    order_id: int
    created: int
    in_process: int
    warehouse: OzonWarehouse
    lines: tuple[OzonLine, ...]
    delivery_type: str
    city: str
    cluster_to: str
    payment_type: str
    is_premium: bool
    packaged_at: int
    shipped_at: int
    delivered_at: int | None = None
    cancel_at: int | None = None
    cancel_reason: tuple | None = None
    returns: tuple[OzonReturn, ...] = ()

    @property
    def posting_number(self) -> str:
        return f"{self.order_number}-{self.part}"

    @property
    def key(self) -> tuple[int, int, int]:
        """The sort and cursor key: created_at, then the posting number."""
        return self.created, self.n, self.part

    def status_at(self, t: int) -> str:
        if self.cancel_at is not None and self.cancel_at <= t:
            return "cancelled"
        if self.delivered_at is not None and self.delivered_at <= t:
            return "delivered"
        if self.shipped_at <= t:
            return "delivering"
        if self.packaged_at <= t:
            return "awaiting_deliver"
        return "awaiting_packaging"

    def substatus_at(self, t: int) -> str:
        status = self.status_at(t)
        if status == "delivering":
            # A PVZ parcel waits at the pickup point for the last part of its delivery time.
            arrives = self.delivered_at or self.cancel_at
            waiting_from = self.shipped_at + (arrives - self.shipped_at) * 7 // 10
            at_pickup_point = self.delivery_type == "PVZ" and t >= waiting_from
            return "posting_in_pickup_point" if at_pickup_point else "posting_in_carriage"
        if status == "delivered":
            return "posting_received" if self.delivery_type == "PVZ" else "posting_delivered"
        return {"awaiting_packaging": "posting_created",
                "awaiting_deliver": "posting_transferring_to_delivery",
                "cancelled": "posting_canceled"}[status]


@dataclass(frozen=True, slots=True)
class OzonStock:
    product: OzonProduct
    warehouse: OzonWarehouse
    available: int
    reserved: int  # units of postings not shipped yet
    requested: int  # the next restock, once it is due within SUPPLY_REQUESTED
    in_transit: int  # the same, once due within SUPPLY_IN_TRANSIT
    expected_per_day: float


def parse_posting_number(posting_number: str) -> tuple[int, int] | None:
    """(n, part) of a posting number this store could have issued, else None."""
    try:
        head, _, part = posting_number.split("-")
        return int(head), int(part)
    except ValueError:
        return None


class OzonStore:
    """Ozon store `ozon-<number>`. All times are µs since the epoch."""

    marketplace = "ozon"

    def __init__(self, config: SandboxConfig, number: int, history_start: int,
                 wb_products: tuple[WbProduct, ...]):
        self.account = f"ozon-{number}"
        self.config = config
        self.history_start = history_start
        self.company_id = 1000 + stable_int(config.seed, self.account, "company") % 900_000
        self.products = ozon_catalog(config, number, wb_products)
        self.active_products = tuple(p for p in self.products if not p.archived)
        self.warehouses = ozon_warehouse_set(config, number)
        self._products = WeightedPicker(self.active_products, [p.weight for p in self.active_products])
        self._warehouses = WeightedPicker(self.warehouses, [w.weight for w in self.warehouses])
        self._cities = WeightedPicker([c[:2] for c in OZON_BUYER_CITIES], [c[2] for c in OZON_BUYER_CITIES])
        self._restocks = RestockSchedule(config.restock_every_days, config.restock_cover)
        self._orders_per_day = config.ozon_postings_per_day / (1 + TWO_SKU_SHARE * SPLIT_SHARE)
        self._units_per_order = (1 + TWO_SKU_SHARE) * QUANTITIES.mean()
        # From creation, a posting is delivered within the delivery range; a return then takes
        # up to CLIENT_RETURN_DAYS to start and RETURN_TRANSIT_DAYS to arrive.
        self.return_lag = int((config.ozon_delivery_days[1] + CLIENT_RETURN_DAYS[1]
                               + RETURN_TRANSIT_DAYS[1] + 1) * DAY)
        # Every posting is delivered or cancelled within this of its creation.
        self.final_within = int(config.ozon_delivery_days[1] * DAY) + HOUR
        cache_days = max(12, STORE_CACHE_POSTINGS // max(1, int(config.ozon_postings_per_day)))
        self.day_postings = functools.lru_cache(maxsize=cache_days)(self._generate_day)
        self._day_index = functools.lru_cache(maxsize=8)(self._index_day)
        # Returns sit on a few percent of postings but reach weeks back; kept apart so that
        # returns queries need not hold those weeks of postings in memory.
        self._returning = functools.lru_cache(maxsize=config.history_days + 2)(self._select_returning)
        self._stock_snapshot = functools.lru_cache(maxsize=4)(self._compute_stock)

    # --- generation -------------------------------------------------------------------------

    def _generate_day(self, day: int) -> tuple[OzonPosting, ...]:
        """Postings created on Moscow day `day`, by created_at then posting number."""
        if msk_day_start(day) < self.history_start:
            return ()
        first_hour = msk_day_start(day) // HOUR
        return tuple(posting for hour in range(first_hour, first_hour + 24)
                     for posting in self._generate_hour(hour))

    def _generate_hour(self, hour: int) -> tuple[OzonPosting, ...]:
        config = self.config
        rng = rng_for(config.seed, self.account, "postings", hour)
        count = min(poisson(rng, hourly_rate(self._orders_per_day, hour, config.seed, self.account)),
                    MAX_ORDERS_PER_HOUR)
        times = sorted(hour * HOUR + below(rng, HOUR) for _ in range(count))
        postings = []
        for index, created in enumerate(times):
            postings.extend(self._order_postings(rng, hour * MAX_ORDERS_PER_HOUR + index, created))
        return tuple(postings)

    def _order_postings(self, rng, n: int, created: int) -> list[OzonPosting]:
        """The postings of one order: one, or two when a two-SKU order is split."""
        lines = [self._line(rng, self._products.pick(rng))]
        if rng.random() < TWO_SKU_SHARE and len(self.active_products) > 1:
            second = self._products.pick(rng)
            while second is lines[0].product:
                second = self._products.pick(rng)
            lines.append(self._line(rng, second))
        parts = [[line] for line in lines] if len(lines) > 1 and rng.random() < SPLIT_SHARE else [lines]
        order_number = f"{n:010d}-{rng.randint(1, 400):04d}"
        city, cluster_to = self._cities.pick(rng)
        delivery_type = DELIVERY_TYPES.pick(rng)
        payment_type = PAYMENT_TYPES.pick(rng)
        postings = []
        for part, part_lines in enumerate(parts, start=1):
            posting = OzonPosting(
                n=n, part=part, order_number=order_number, order_id=30_000_000_000 + n,
                created=created, in_process=created + 2 * US + below(rng, 58 * US),
                warehouse=self._warehouses.pick(rng), lines=tuple(part_lines),
                delivery_type=delivery_type, city=city, cluster_to=cluster_to,
                payment_type=payment_type, is_premium=rng.random() < 0.1, packaged_at=0,
                shipped_at=0)
            self._decide_fate(posting, rng)
            postings.append(posting)
        return postings

    @staticmethod
    def _line(rng, product: OzonProduct) -> OzonLine:
        return OzonLine(product, QUANTITIES.pick(rng), product.price_kop)

    def _decide_fate(self, posting: OzonPosting, rng) -> None:
        """The posting's timeline, its cancellation if any, and its returns."""
        config = self.config
        total = uniform_us(rng, config.ozon_delivery_days, DAY)
        posting.packaged_at = posting.created + int(total * rng.uniform(0.05, 0.2))
        posting.shipped_at = posting.packaged_at + int(total * rng.uniform(0.1, 0.3))
        if rng.random() < config.ozon_cancel_rate:
            stage = CANCEL_STAGES.pick(rng)
            stage_start, stage_end = {
                "awaiting_packaging": (posting.created, posting.packaged_at),
                "awaiting_deliver": (posting.packaged_at, posting.shipped_at),
                "delivering": (posting.shipped_at, posting.created + total),
            }[stage]
            posting.cancel_at = rng.randrange(stage_start + US, max(stage_end, stage_start + 2 * US))
            reason = 3 if stage == "delivering" else rng.randrange(3)
            posting.cancel_reason = CANCEL_REASONS[reason]
            posting.returns = self._cancel_returns(posting, stage, rng)
        else:
            posting.delivered_at = posting.created + total
            posting.returns = self._buyer_returns(posting, rng)

    def _new_return(self, rng, posting: OzonPosting, index: int, kind: str, quantity: int,
                    started: int) -> OzonReturn:
        return OzonReturn(
            return_id=posting.n * 10 + (posting.part - 1) * 4 + index, line=posting.lines[index],
            quantity=quantity, kind=kind, reason=rng.choice(RETURN_REASONS[kind]), started=started,
            arrived=started + uniform_us(rng, RETURN_TRANSIT_DAYS, DAY),
            barcode=f"ii{rng.randrange(10**9, 10**10)}")

    def _cancel_returns(self, posting: OzonPosting, stage: str, rng) -> tuple[OzonReturn, ...]:
        """Goods already picked come back: refused at handover, or cancelled before it."""
        if stage == "delivering":
            kind = "FullReturn"
        elif stage == "awaiting_deliver" and rng.random() < CANCELLATION_RETURN_SHARE:
            kind = "Cancellation"
        else:
            return ()
        return tuple(self._new_return(rng, posting, index, kind, line.quantity, posting.cancel_at)
                     for index, line in enumerate(posting.lines))

    def _buyer_returns(self, posting: OzonPosting, rng) -> tuple[OzonReturn, ...]:
        """A unit refused at handover (PartialReturn), or sent back after purchase (ClientReturn)."""
        index = rng.randrange(len(posting.lines))
        line = posting.lines[index]
        units = sum(line.quantity for line in posting.lines)
        if units > 1 and rng.random() < PARTIAL_RETURN_SHARE:
            return (self._new_return(rng, posting, index, "PartialReturn", 1, posting.delivered_at),)
        if rng.random() < self.config.ozon_return_rate:
            started = posting.delivered_at + uniform_us(rng, CLIENT_RETURN_DAYS, DAY)
            quantity = rng.randint(1, line.quantity)
            return (self._new_return(rng, posting, index, "ClientReturn", quantity, started),)
        return ()

    # --- postings and returns visible at t ---------------------------------------------------

    def iter_postings(self, since: int, until: int, descending: bool = False):
        """Postings created in [since, until], in key order (reversed when `descending`)."""
        days = range(msk_day(max(since, self.history_start)), msk_day(until) + 1)
        for day in reversed(days) if descending else days:
            postings = self.day_postings(day)
            for posting in reversed(postings) if descending else postings:
                if since <= posting.created <= until:
                    yield posting

    def find_posting(self, posting_number: str, t: int) -> OzonPosting | None:
        """The posting with this number if it exists at t. The number names its creation hour,
        so this looks at one day instead of the history."""
        parsed = parse_posting_number(posting_number)
        if parsed is None:
            return None
        n, part = parsed
        hour_start = n // MAX_ORDERS_PER_HOUR * HOUR
        if not self.history_start <= hour_start <= t:
            return None
        posting = self._day_index(msk_day(hour_start)).get((n, part))
        return posting if posting is not None and posting.created <= t else None

    def _index_day(self, day: int) -> dict[tuple[int, int], OzonPosting]:
        return {(posting.n, posting.part): posting for posting in self.day_postings(day)}

    def _select_returning(self, day: int) -> tuple[OzonPosting, ...]:
        return tuple(posting for posting in self.day_postings(day) if posting.returns)

    def returns_between(self, since: int, until: int, t: int):
        """(posting, return) pairs visible at t that could be dated in [since, until] by any of
        the return's dates."""
        earliest = max(since - self.return_lag - STORAGE_FREE_DAYS * DAY, self.history_start)
        last = min(until, t)
        for day in range(msk_day(earliest), msk_day(last) + 1):
            for posting in self._returning(day):
                if earliest <= posting.created <= last:
                    for ret in posting.returns:
                        if ret.started <= t:
                            yield posting, ret

    # --- stock ------------------------------------------------------------------------------

    def expected_daily_units(self, product: OzonProduct, warehouse: OzonWarehouse) -> float:
        return (self._orders_per_day * self._units_per_order
                * product.weight / self._products.total * warehouse.weight / self._warehouses.total)

    def stock_at(self, t: int) -> list[OzonStock]:
        """Stock per SKU x warehouse at t (to the minute), active products only."""
        return self._stock_snapshot(t - t % MINUTE)

    def _compute_stock(self, at: int) -> list[OzonStock]:
        restocks = self._restocks
        cycles = {p.sku: restocks.cycle_at(p.restock_phase, at) for p in self.active_products}
        restocked_at = {p.sku: restocks.restock_time(p.restock_phase, cycles[p.sku])
                        for p in self.active_products}
        window_start = at - max(self.config.restock_every_days, STOCK_WINDOW_DAYS) * DAY
        sold, reserved = Counter(), Counter()
        for posting in self.iter_postings(window_start, at):
            if posting.cancel_at is not None and posting.cancel_at <= at:
                continue
            unshipped = posting.shipped_at > at
            for line in posting.lines:
                key = (line.product.sku, posting.warehouse.warehouse_id)
                if posting.created >= restocked_at[line.product.sku]:
                    sold[key] += line.quantity
                if unshipped:
                    reserved[key] += line.quantity
        stock = []
        for product in self.active_products:
            cycle = cycles[product.sku]
            next_restock = restocks.restock_time(product.restock_phase, cycle + 1)
            for warehouse in self.warehouses:
                key = (product.sku, warehouse.warehouse_id)
                expected = self.expected_daily_units(product, warehouse)
                seed_parts = (self.config.seed, self.account, *key)
                level = restocks.level(seed_parts, cycle, expected)
                supply_in = next_restock - at
                incoming = 0
                if supply_in < SUPPLY_REQUESTED:
                    incoming = restocks.level(seed_parts, cycle + 1, expected)
                stock.append(OzonStock(
                    product, warehouse, available=max(0, level - sold[key]), reserved=reserved[key],
                    requested=incoming, in_transit=incoming if supply_in < SUPPLY_IN_TRANSIT else 0,
                    expected_per_day=expected))
        return stock

    # --- ground truth -----------------------------------------------------------------------

    def units_created_on(self, day: int, t: int) -> Counter:
        """Units per sku in postings created on Moscow day `day`, visible and not cancelled at t."""
        units: Counter = Counter()
        for posting in self.iter_postings(msk_day_start(day), min(msk_day_start(day + 1) - 1, t)):
            if posting.status_at(t) != "cancelled":
                for line in posting.lines:
                    units[line.product.sku] += line.quantity
        return units

    def units_delivered_on(self, day: int, t: int) -> Counter:
        """Units per sku in postings delivered on Moscow day `day` (at or before t).

        The API gives no delivery time: the collector can only see a posting turn `delivered`
        between two passes, so this is the truth it approximates."""
        start, end = msk_day_start(day), min(msk_day_start(day + 1) - 1, t)
        units: Counter = Counter()
        for posting in self.iter_postings(start - self.final_within, end):
            if posting.delivered_at is not None and start <= posting.delivered_at <= end:
                for line in posting.lines:
                    units[line.product.sku] += line.quantity
        return units
