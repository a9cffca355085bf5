"""Wildberries rows into the common records. Pure functions: no I/O, no clock."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo

from collector.records import (BadRecord, OrderLine, Product, SaleEvent, StockLevel, page_kopecks,
                               required, whole)
from collector.timeutil import iso, parse_wb_time, wb_local

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
