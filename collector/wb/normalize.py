"""Wildberries rows into the common records. Pure functions: no I/O, no clock."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from collector.records import (BadRecord, OrderLine, Product, SaleEvent, StockLevel, kopecks,
                               required, whole)
from collector.timeutil import iso, local_day, parse_wb_time

SALE_KINDS = {"S": "sale", "R": "return"}


def _time(row: dict, key: str, where: str):
    value = required(row, key, where)
    try:
        return parse_wb_time(value)
    except (TypeError, ValueError):
        raise BadRecord(f"{where}: {key}={row.get(key)!r} is not a date-time") from None


def _where(row: dict, key: str, dataset: str) -> str:
    return f"{dataset} row {key}={row.get(key)!r}"


def order_line(row: dict, account: str, zone: ZoneInfo) -> OrderLine:
    """One WB orders row is one unit; `date` places it on its day, never `lastChangeDate`."""
    where = _where(row, "srid", "orders")
    ordered = _time(row, "date", where)
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
        ordered_at=iso(ordered, zone),
        day=local_day(ordered, zone),
        status="cancelled" if is_cancelled else "ordered",
        is_cancelled=int(is_cancelled),
        cancelled_at=iso(cancelled, zone) if cancelled else None,
        quantity=1,
        price_kopecks=kopecks(row.get("priceWithDisc")),
        changed_at=iso(_time(row, "lastChangeDate", where), zone),
    )


def sale_event(row: dict, account: str, zone: ZoneInfo) -> SaleEvent | None:
    """`S…` is a buyout, `R…` a return; other prefixes (old storno kinds) are not counted."""
    where = _where(row, "saleID", "sales")
    sale_id = str(required(row, "saleID", where))
    kind = SALE_KINDS.get(sale_id[:1])
    if kind is None:
        return None
    sold = _time(row, "date", where)
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
        sold_at=iso(sold, zone),
        day=local_day(sold, zone),
        quantity=1,
        amount_kopecks=kopecks(row.get("priceWithDisc")),
        return_type=None,
        changed_at=iso(_time(row, "lastChangeDate", where), zone),
    )


def product(row: dict, account: str) -> Product:
    return Product(account, whole(row["nmId"], "nmId"), str(row.get("techSize") or ""),
                   row.get("supplierArticle"), row.get("subject"), row.get("barcode"))


def stock_levels(items: list[dict], account: str) -> list[StockLevel]:
    """wb-warehouses rows: one size (chrtId) on one warehouse; `quantity` is the stock figure.

    Warehouses are keyed by name, so rows that share one (every row since WB aggregated its
    warehouses into "Склад WB") are summed.
    """
    totals: dict[tuple, int] = {}
    for item in items:
        where = _where(item, "nmId", "stocks")
        key = (whole(required(item, "nmId", where), "nmId"),
               str(whole(required(item, "chrtId", where), "chrtId")),
               str(required(item, "warehouseName", where)))
        totals[key] = totals.get(key, 0) + whole(item.get("quantity", 0), "quantity")
    return [StockLevel(account, sku, size, warehouse, qty) for (sku, size, warehouse), qty in totals.items()]
