"""The reference seller: the big seller every benchmark measures against.

WB: one cabinet, 3,000 products in 6,000 sizes, 20,000 orders and about 15,000 sales rows a day.
Ozon: three stores, each 1,500 SKUs over 25 warehouses and 5,000 postings a day.

`scale` shrinks every count for quick runs and the smoke test; 1.0 is the seller above.
"""

from __future__ import annotations

from dataclasses import replace

from collector.sandbox import SandboxConfig
from collector.sandbox.catalog import FAMILIES
from collector.sandbox.seller import Seller

# A WB buyout rate of 72.5 %: 20,000 orders make 14,500 S rows, plus returns (3 % of them) and
# the odd D row, about 15,000 sales rows a day.
WB_CANCEL_RATE = 0.275
ALIAS_BUCKETS = 12  # alias groups per product family: 60 groups, as a seller of this size keeps
UNALIASED_EVERY = 10  # every 10th article is in no group (shows up under its own article)


def reference_config(scale: float = 1.0, **overrides) -> SandboxConfig:
    """The reference seller as a sandbox configuration (see the module docstring)."""
    config = SandboxConfig.big_seller(
        seed=1,
        wb_accounts=1,
        ozon_accounts=3,
        wb_products=max(5, round(3000 * scale)),
        wb_sizes_per_product=(2, 2),  # 6,000 sizes
        wb_orders_per_day=20_000 * scale,
        wb_cancel_rate=WB_CANCEL_RATE,
        ozon_products=max(5, round(1500 * scale)),
        ozon_archived_products=max(1, round(20 * scale)),
        ozon_warehouses=(25, 25),
        ozon_postings_per_day=5_000 * scale,
    )
    return replace(config, **overrides)


def describe(config: SandboxConfig) -> str:
    return (f"WB: {config.wb_accounts} cabinet, {config.wb_products:,} products in "
            f"{config.wb_products * config.wb_sizes_per_product[0]:,} sizes, "
            f"{config.wb_orders_per_day:,.0f} orders a day; Ozon: {config.ozon_accounts} stores x "
            f"{config.ozon_products:,} SKUs x {config.ozon_warehouses[0]} warehouses, "
            f"{config.ozon_postings_per_day:,.0f} postings a day each")


def reference_aliases(seller: Seller) -> list[tuple[str, str, str, int]]:
    """sku_aliases rows (marketplace, key, alias, position): the seller's articles in 60 groups,
    12 per product family, in family order; every 10th article left out."""
    groups = [f"{family.title} {bucket + 1:02d}" for family in FAMILIES for bucket in range(ALIAS_BUCKETS)]
    positions = {alias: n for n, alias in enumerate(groups, start=1)}
    by_prefix = {family.prefix: family for family in FAMILIES}
    rows: dict[tuple[str, str], str] = {}
    for account in seller.accounts.values():
        if account.marketplace == "wb":
            articles = [p.article for p in account.products]
        else:
            articles = [p.offer_id for p in account.products]
        for article in articles:
            number = sum(map(ord, article))
            if number % UNALIASED_EVERY == 0:
                continue
            prefix = next((p for p in by_prefix if p in article.split("-")), None)
            family = by_prefix.get(prefix, FAMILIES[number % len(FAMILIES)])
            rows[account.marketplace, article] = f"{family.title} {number % ALIAS_BUCKETS + 1:02d}"
    return [(marketplace, key, alias, positions[alias]) for (marketplace, key), alias in sorted(rows.items())]
