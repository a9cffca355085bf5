"""The generated seller: every account, and ground-truth helpers for tests.

The helpers answer "what is true at time t" straight from the model, without HTTP, so a test can
run the collector against the sandbox and compare the database with them. Every helper takes
`t` as an aware datetime and a `day` as a date in Moscow time; SKUs are WB nmIds and Ozon skus.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime

from collector.sandbox.clock import DAY, day_number, msk_day, msk_day_start, to_us
from collector.sandbox.config import SandboxConfig
from collector.sandbox.ozon_model import RETURN_DATE_FIELDS, OzonStore
from collector.sandbox.ozon_shapes import posting_json, return_json, stock_items_json
from collector.sandbox.wb_model import WbCabinet
from collector.sandbox.wb_shapes import order_json, sale_json, stock_item_json

Account = WbCabinet | OzonStore


class Seller:
    """All accounts of the seller. History starts `history_days` before the Moscow midnight of
    `started_at` (the moment the sandbox was created)."""

    def __init__(self, config: SandboxConfig, started_at: datetime):
        self.config = config
        self.origin = msk_day_start(msk_day(to_us(started_at)))
        self.history_start = self.origin - config.history_days * DAY
        cabinets = [WbCabinet(config, n, self.history_start) for n in range(1, config.wb_accounts + 1)]
        wb_products = cabinets[0].products if cabinets else ()
        stores = [OzonStore(config, n, self.history_start, wb_products)
                  for n in range(1, config.ozon_accounts + 1)]
        self.accounts: dict[str, Account] = {a.account: a for a in (*cabinets, *stores)}

    @property
    def wb_accounts(self) -> list[str]:
        return [name for name, account in self.accounts.items() if account.marketplace == "wb"]

    @property
    def ozon_accounts(self) -> list[str]:
        return [name for name, account in self.accounts.items() if account.marketplace == "ozon"]

    def wb(self, account: str) -> WbCabinet:
        cabinet = self.accounts.get(account)
        if not isinstance(cabinet, WbCabinet):
            raise KeyError(f"no WB cabinet {account!r}; have {self.wb_accounts}")
        return cabinet

    def ozon(self, account: str) -> OzonStore:
        store = self.accounts.get(account)
        if not isinstance(store, OzonStore):
            raise KeyError(f"no Ozon store {account!r}; have {self.ozon_accounts}")
        return store

    # --- rows as the APIs would show them at t ---------------------------------------------

    def wb_orders(self, account: str, t: datetime) -> list[dict]:
        """Every /supplier/orders row visible at t (retention applied), by lastChangeDate."""
        rows = self.wb(account).rows_changed_since("orders", self.history_start, to_us(t), 10**9)
        return [order_json(row) for row in rows]

    def wb_sales(self, account: str, t: datetime) -> list[dict]:
        """Every /supplier/sales row (S, R and the odd D) visible at t, by lastChangeDate."""
        rows = self.wb(account).rows_changed_since("sales", self.history_start, to_us(t), 10**9)
        return [sale_json(row) for row in rows]

    def ozon_postings(self, account: str, t: datetime, since: datetime | None = None,
                      until: datetime | None = None) -> list[dict]:
        """Postings created in [since, until] (default: all history up to t) as they are at t,
        with analytics_data and financial_data, oldest first."""
        store, now = self.ozon(account), to_us(t)
        first = to_us(since) if since else self.history_start
        last = min(to_us(until), now) if until else now
        return [posting_json(p, now, analytics=True, financial=True)
                for p in store.iter_postings(first, last)]

    def ozon_returns(self, account: str, t: datetime) -> list[dict]:
        """Every FBO return registered by t, by id."""
        store, now = self.ozon(account), to_us(t)
        found = sorted(store.returns_between(self.history_start, now, now), key=lambda pr: pr[1].return_id)
        return [return_json(store, posting, ret, now, self.config.ozon_int64_as_strings)
                for posting, ret in found]

    def wb_stock(self, account: str, t: datetime) -> list[dict]:
        """wb-warehouses items at t: every size with stock or goods on the way."""
        return [stock_item_json(s) for s in self.wb(account).stock_at(to_us(t))
                if s.quantity or s.in_way_to_client or s.in_way_from_client]

    def ozon_stock(self, account: str, t: datetime) -> list[dict]:
        """/v1/analytics/stocks items at t for every active SKU."""
        return stock_items_json(self.ozon(account).stock_at(to_us(t)))

    # --- figures ----------------------------------------------------------------------------

    def stock_units(self, account: str, t: datetime) -> dict[tuple, int]:
        """The stock figure per key at t, zeros included: WB {(nmId, chrtId): quantity} as last
        published on the refresh grid, Ozon {(sku, warehouse_name): available_stock_count}."""
        now = to_us(t)
        if isinstance(self.accounts.get(account), WbCabinet):
            return {(s.product.nm_id, s.size.chrt_id): s.quantity for s in self.wb(account).stock_at(now)}
        return {(s.product.sku, s.warehouse.name): s.available for s in self.ozon(account).stock_at(now)}

    def ordered_units(self, account: str, day: date, t: datetime) -> dict[int, int]:
        """Units ordered on Moscow day `day` and not cancelled, per SKU, as visible at t.
        WB: orders rows dated `day`, isCancel false. Ozon: postings created on `day`, status not
        cancelled, quantities summed."""
        day_no, now = day_number(day), to_us(t)
        if isinstance(self.accounts.get(account), WbCabinet):
            return dict(self.wb(account).units_dated("orders", day_no, now, "order"))
        return dict(self.ozon(account).units_created_on(day_no, now))

    def bought_units(self, account: str, day: date, t: datetime) -> dict[int, int]:
        """Units bought out on `day`, per SKU, as visible at t. WB: S rows dated `day`. Ozon:
        units of postings delivered on `day` (the true time the collector approximates)."""
        day_no, now = day_number(day), to_us(t)
        if isinstance(self.accounts.get(account), WbCabinet):
            return dict(self.wb(account).units_dated("sales", day_no, now, "S"))
        return dict(self.ozon(account).units_delivered_on(day_no, now))

    def returned_units(self, account: str, day: date, t: datetime,
                       ozon_date: str = "logistic_return_date") -> dict[int, int]:
        """Units returned on `day`, per SKU, as visible at t. WB: R rows dated `day`. Ozon:
        returned quantities whose `ozon_date` (a /v1/returns/list filter range name) is `day`."""
        day_no, now = day_number(day), to_us(t)
        if isinstance(self.accounts.get(account), WbCabinet):
            return dict(self.wb(account).units_dated("sales", day_no, now, "R"))
        if ozon_date not in RETURN_DATE_FIELDS:
            raise ValueError(f"ozon_date must be one of {RETURN_DATE_FIELDS}")
        start, end = msk_day_start(day_no), msk_day_start(day_no + 1)
        units: Counter = Counter()
        for _, ret in self.ozon(account).returns_between(start, end - 1, now):
            moment = ret.date_for(ozon_date, now)
            if moment is not None and start <= moment < end:
                units[ret.line.product.sku] += ret.quantity
        return dict(units)
