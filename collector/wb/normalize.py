"""Wildberries rows into the common records. Pure functions: no I/O, no clock."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from zoneinfo import ZoneInfo

from collector.records import (BadRecord, OrderLine, Product, SaleEvent, StockLevel, page_kopecks,
                               required, whole)
from collector.timeutil import iso, local_parts, parse_wb_time, wb_local

SALE_KINDS = {"S": "sale", "R": "return"}


# lastChangeDate: WB publishes rows in batches that share one timestamp, so a page holds a few
# thousand distinct values; remembered conversions skip most of the work.
_batch_local = lru_cache(maxsize=16384)(wb_local)


def _local(row: dict, key: str, where: str, zone: ZoneInfo, convert=wb_local) -> tuple[str, str]:
    """(ISO time in zone, local day) of a required WB time field."""
    value = required(row, key, where)
    try:
        local = convert(value, zone)
    except (TypeError, ValueError):  # unhashable values raise TypeError in the cached converter too
        local = None
    if local is None:
        raise BadRecord(f"{where}: {key}={row.get(key)!r} is not a date-time")
    return local


def _where(row: dict, key: str, dataset: str) -> str:
    return f"{dataset} row {key}={row.get(key)!r}"


def order_line(row: dict, account: str, zone: ZoneInfo) -> OrderLine:
    """One WB orders row is one unit; `date` places it on its day, never `lastChangeDate`."""
    where = _where(row, "srid", "orders")
    ordered_at, day = _local(row, "date", where, zone)
    cancelled = parse_wb_time(row.get("cancelDate"))
    is_cancelled = bool(row.get("isCancel"))
    return OrderLine(
        account=account,
        order_id=str(required(row, "srid", where)),
        sku=whole(required(row, "nmId", where), "nmId"),
        article=row.get("supplierArticle"),
        size=str(row.get("techSize") or ""),
        barcode=row.get("barcode"),
        warehouse=row.get("warehouseName"),
        ordered_at=ordered_at,
        day=day,
        status="cancelled" if is_cancelled else "ordered",
        is_cancelled=int(is_cancelled),
        cancelled_at=iso(cancelled, zone) if cancelled else None,
        quantity=1,
        price_kopecks=page_kopecks(row.get("priceWithDisc")),
        changed_at=_local(row, "lastChangeDate", where, zone, _batch_local)[0],
    )


def sale_event(row: dict, account: str, zone: ZoneInfo) -> SaleEvent | None:
    """`S…` is a buyout, `R…` a return; other prefixes (old storno kinds) are not counted."""
    where = _where(row, "saleID", "sales")
    sale_id = str(required(row, "saleID", where))
    kind = SALE_KINDS.get(sale_id[:1])
    if kind is None:
        return None
    sold_at, day = _local(row, "date", where, zone)
    return SaleEvent(
        account=account,
        kind=kind,
        sale_id=sale_id,
        sku=whole(required(row, "nmId", where), "nmId"),
        order_id=row.get("srid"),
        article=row.get("supplierArticle"),
        size=str(row.get("techSize") or ""),
        barcode=row.get("barcode"),
        warehouse=row.get("warehouseName"),
        sold_at=sold_at,
        day=day,
        quantity=1,
        amount_kopecks=page_kopecks(row.get("priceWithDisc")),
        return_type=None,
        changed_at=_local(row, "lastChangeDate", where, zone, _batch_local)[0],
        payout_kopecks=page_kopecks(row.get("forPay")),
    )


def products(rows: list[dict], account: str) -> list[Product]:
    """The products a page of rows describes: one per nmId x techSize, from the last row that
    names it (what write_products keeps anyway), so 80,000 rows make a few thousand records."""
    latest: dict[tuple, dict] = {}
    for row in rows:
        if row.get("nmId") is not None:
            key = (row["nmId"], row.get("techSize"))
            latest.pop(key, None)  # re-inserted last: the list keeps the order of last sight
            latest[key] = row
    return [product(row, account) for row in latest.values()]


def product(row: dict, account: str) -> Product:
    return Product(account, whole(row["nmId"], "nmId"), str(row.get("techSize") or ""),
                   row.get("supplierArticle"), row.get("subject"), row.get("barcode"))


def stock_levels(items: list[dict], account: str) -> list[StockLevel]:
    """wb-warehouses rows: one size (chrtId) on one warehouse; `quantity` is the stock figure.

    Warehouses are keyed by name, so rows that share one (every row since WB aggregated its
    warehouses into "Склад WB") are summed. Every field of these rows is required (api/wildberries.md),
    so a row without `quantity` is refused rather than read as 0, which would zero a real stock.
    """
    totals: dict[tuple, int] = {}
    for item in items:
        where = _where(item, "nmId", "stocks")
        key = (whole(required(item, "nmId", where), "nmId"),
               str(whole(required(item, "chrtId", where), "chrtId")),
               str(required(item, "warehouseName", where)))
        totals[key] = totals.get(key, 0) + whole(required(item, "quantity", where), "quantity")
    return [StockLevel(account, sku, size, warehouse, qty) for (sku, size, warehouse), qty in totals.items()]


# -- order feed (POST /api/analytics/v1/order-feed) ---------------------------------------------
#
# One feed row is one order (srid) in its current status, reached at updatedAt. It lands in the
# same tables as supplier/orders and supplier/sales, with the same meaning: the order line keyed
# by srid, so statistics and the feed write the same row; a buyout is a sale dated updatedAt, a
# return a return dated updatedAt. Feed sales and returns take the srid as their sale_id.

FEED_SALE_KINDS = {"buyout": "sale", "return": "return", "returnDefective": "return"}
FEED_STATUSES = {"created", "cancel", *FEED_SALE_KINDS}


def _feed_time(row: dict, key: str, where: str, zone: ZoneInfo) -> tuple[str, str]:
    """(ISO time in zone, local day) of a feed time, written with its offset."""
    value = required(row, key, where)
    try:
        moment = parse_wb_time(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise BadRecord(f"{where}: {key}={value!r} is not a date-time")
    return local_parts(moment, zone)


def _feed_status(row: dict, where: str) -> str:
    status = required(row, "status", where)
    if status not in FEED_STATUSES:
        raise BadRecord(f"{where}: status={status!r} is none of {', '.join(sorted(FEED_STATUSES))}")
    return status


def feed_order_line(row: dict, account: str, zone: ZoneInfo) -> OrderLine:
    """The order line of a feed row: placed on the day of createdAt, cancelled when the status is
    `cancel` (since updatedAt); bought or returned orders stay ordered, as in supplier/orders."""
    where = _where(row, "srid", "order-feed")
    status = _feed_status(row, where)
    ordered_at, day = _feed_time(row, "createdAt", where, zone)
    updated_at = _feed_time(row, "updatedAt", where, zone)[0]
    cancelled = status == "cancel"
    return OrderLine(
        account=account,
        order_id=str(required(row, "srid", where)),
        sku=whole(required(row, "nmId", where), "nmId"),
        article=None,
        size="",
        barcode=None,
        warehouse=row.get("warehouseName"),
        ordered_at=ordered_at,
        day=day,
        status="cancelled" if cancelled else "ordered",
        is_cancelled=int(cancelled),
        cancelled_at=updated_at if cancelled else None,
        quantity=1,
        price_kopecks=page_kopecks(row.get("sellerPrice")),
        changed_at=updated_at,
    )


def feed_sale_events(row: dict, account: str, zone: ZoneInfo) -> list[SaleEvent]:
    """A buyout: a sale dated updatedAt. A return: the return dated updatedAt, plus the sale it
    undoes with no day, for the case that the buyout itself was never seen (the feed shows only
    the current status); the pipeline drops it when the order's sale is stored. No day means it
    counts as bought for the buyout rate but on no day, like an Ozon posting delivered at first
    sight. Other statuses make no sales row."""
    where = _where(row, "srid", "order-feed")
    kind = FEED_SALE_KINDS.get(_feed_status(row, where))
    if kind is None:
        return []
    srid = str(required(row, "srid", where))
    updated_at, day = _feed_time(row, "updatedAt", where, zone)
    event = SaleEvent(
        account=account, kind=kind, sale_id=srid, sku=whole(required(row, "nmId", where), "nmId"),
        order_id=srid, article=None, size="", barcode=None, warehouse=row.get("warehouseName"),
        sold_at=updated_at, day=day, quantity=1, amount_kopecks=page_kopecks(row.get("sellerPrice")),
        return_type=None, changed_at=updated_at)
    if kind == "sale":
        return [event]
    return [replace(event, kind="sale", sold_at=None, day=None), event]

# -- optional datasets: balance and product cards ---------------------------------------------

from collector.records import Balance, kopecks  # noqa: E402 - kept with the code that uses it


def balance(answer: dict, account: str, day: str) -> Balance:
    """GET /api/v1/account/balance: {currency, current, for_withdraw} in roubles."""
    current = required(answer, "current", "balance")
    return Balance(account=account, day=day, currency=answer.get("currency"),
                   current_kopecks=kopecks(current), for_withdraw_kopecks=kopecks(answer.get("for_withdraw")))


def card(item: dict, account: str) -> tuple[list[Product], list[tuple[int, str, str, str | None]]]:
    """One product card: a product per size (its real title, article and first barcode), and
    the size map chrtID -> techSize that names stock sizes as orders and sales do."""
    where = f"card nmID={item.get('nmID')!r}"
    sku = whole(required(item, "nmID", where), "nmID")
    title, article = item.get("title") or None, item.get("vendorCode") or None
    products, sizes = [], []
    for size in item.get("sizes") or []:
        tech = str(size.get("techSize") or "0")
        barcode = next(iter(size.get("skus") or []), None)
        products.append(Product(account, sku, tech, article, title, barcode))
        if size.get("chrtID") not in (None, ""):
            sizes.append((sku, str(whole(size["chrtID"], f"{where} chrtID")), tech, barcode))
    if not products:  # a card without sizes still names its product
        products.append(Product(account, sku, "", article, title, None))
    return products, sizes


def named_sizes(levels: list[StockLevel], names: dict[tuple[int, str], str]) -> list[StockLevel]:
    """Stock sizes by techSize where a card maps the chrtId (schema.sql, `sizes`), so a size is
    the same key in stock, orders and sales; unmapped ones keep their chrtId."""
    totals: dict[tuple, int] = {}
    for level in levels:
        key = (level.sku, names.get((level.sku, level.size), level.size), level.warehouse)
        totals[key] = totals.get(key, 0) + level.quantity
    return [StockLevel(levels[0].account, sku, size, warehouse, qty)
            for (sku, size, warehouse), qty in totals.items()] if levels else []
