"""SandboxConfig: the size and habits of the simulated seller, and how strict the fake APIs are."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True)
class SandboxConfig:
    """Every knob of the sandbox. The defaults describe a small real-looking seller.

    Ranges are (low, high) tuples drawn uniformly. All data is a pure function of these fields,
    the seed and the time, so two sandboxes with the same config and clock answer alike.
    """

    seed: int = 1
    wb_accounts: int = 1
    ozon_accounts: int = 2
    history_days: int = 100  # orders exist from this many days before the sandbox started

    # Wildberries cabinet: catalogue
    wb_products: int = 12
    wb_sizes_per_product: tuple[int, int] = (1, 3)
    # Wildberries cabinet: orders and what becomes of them
    wb_orders_per_day: float = 300.0
    wb_cancel_rate: float = 0.08
    wb_cancel_hours: tuple[float, float] = (0.5, 36.0)
    wb_buyout_days: tuple[float, float] = (1.0, 5.0)
    wb_return_rate: float = 0.03
    wb_return_days: tuple[float, float] = (1.0, 14.0)
    wb_zero_amount_rate: float = 0.1  # S rows first published with forPay etc. = 0 (fixed within 24 h)
    wb_odd_sale_rate: float = 0.005  # an extra D… (surcharge) row after a sale
    wb_warehouse_type_missing_rate: float = 0.01
    # Wildberries API behaviour
    wb_refresh_minutes: int = 30  # statistics and stock data are republished on this grid
    wb_page_rows: int = 80_000  # flag=0 row cap per response
    wb_retention_days: int = 90
    # From this moment (seller's clock) supplier/orders and supplier/sales answer 404 "deprecated",
    # as supplier/stocks already does: WB switching statistics off in favour of the order feed.
    wb_statistics_off_at: datetime | None = None

    # Ozon stores: catalogue
    ozon_products: int = 10
    ozon_archived_products: int = 1
    ozon_warehouses: tuple[int, int] = (3, 5)
    ozon_shared_articles: float = 0.6  # share of a store's offer_ids that equal WB supplierArticles
    # Ozon stores: postings and what becomes of them
    ozon_postings_per_day: float = 120.0
    ozon_cancel_rate: float = 0.07
    ozon_delivery_days: tuple[float, float] = (1.0, 6.0)
    ozon_return_rate: float = 0.04
    # Ozon API behaviour
    ozon_int64_as_strings: bool = True  # /v1/returns/list writes int64s as strings, like the official example
    # Every n-th active product (0: none) has separate FBO and FBS stock: /v3/product/list shows its
    # FBS SKU, /v3/product/info/list lists both in `sources`, and postings and stock use the FBO one.
    ozon_split_sku_every: int = 0

    # Stock: every key is topped up every `restock_every_days` to cover this many periods of demand;
    # a cover below 1 means the key sells out before its next restock.
    restock_every_days: int = 7
    restock_cover: tuple[float, float] = (0.7, 2.0)

    # HTTP behaviour
    rate_limit_factor: float = 1.0  # multiplies every rate-limit interval; 0.01 = 100x faster, 0 = none
    timeout_hold_seconds: float = 30.0  # how long the `timeout` fault holds a request
    huge_page_factor: int = 10  # the `huge_page` fault multiplies page sizes by this
    latency_ms: float = 0.0  # every request waits this long before it is answered (network + server time)

    def __post_init__(self):
        for name in ("wb_refresh_minutes", "wb_page_rows", "restock_every_days", "huge_page_factor",
                     "wb_products", "ozon_products"):
            if getattr(self, name) < 1:
                raise ValueError(f"SandboxConfig.{name} must be at least 1")
        for name, value in vars(self).items():
            if isinstance(value, tuple) and not 0 <= value[0] <= value[1]:
                raise ValueError(f"SandboxConfig.{name} must be a (low, high) range, got {value}")
        if self.latency_ms < 0:
            raise ValueError("SandboxConfig.latency_ms must not be negative")
        if self.ozon_warehouses[0] < 1:
            raise ValueError("SandboxConfig.ozon_warehouses: a store needs a warehouse")

    @classmethod
    def big_seller(cls, **overrides) -> SandboxConfig:
        """A large seller for benchmarks: WB 3000 products / ~6000 sizes / 20000 orders a day,
        Ozon 1500 SKUs x 25 warehouses / 5000 postings a day per store."""
        big = cls(
            wb_products=3000,
            wb_orders_per_day=20_000,
            ozon_products=1500,
            ozon_archived_products=20,
            ozon_warehouses=(25, 25),
            ozon_postings_per_day=5000,
        )
        return replace(big, **overrides)
