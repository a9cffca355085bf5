"""Ozon answers into the common records. Pure functions: no I/O, no clock."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from collector.records import (Balance, BadRecord, OrderLine, Product, SaleEvent, StockLevel, kopecks,
                               page_kopecks, required, whole)
from collector.timeutil import iso, local_day, local_parts, parse_ozon_time


def _time(value, what: str):
    try:
        return parse_ozon_time(value)
    except (TypeError, ValueError):
        raise BadRecord(f"{what}: {value!r} is not a date-time") from None


def _amount(price) -> str | None:
    """`price` is {amount, currency} in v3 postings, {price, currency_code} in returns."""
    if isinstance(price, dict):
        return price.get("amount", price.get("price"))
    return price


def posting_lines(posting: dict, account: str, zone: ZoneInfo, seen_at: str) -> list[OrderLine]:
    """One line per posting x SKU, quantities summed (a posting may repeat a SKU)."""
    number = str(required(posting, "posting_number", "posting"))
    where = f"posting {number}"
    created = _time(required(posting, "created_at", where), f"{where} created_at")
    ordered_at, day = local_parts(created, zone)
    status = str(required(posting, "status", where))
    warehouse = (posting.get("analytics_data") or {}).get("warehouse_name")
    payouts = _payouts(posting, where)
    lines: dict[int, OrderLine] = {}
    for product in posting.get("products") or []:
        sku = whole(required(product, "sku", where), f"{where} sku")
        quantity = whole(product.get("quantity", 1), f"{where} quantity")
        earlier = lines.get(sku)
        lines[sku] = OrderLine(
            account=account, order_id=number, sku=sku, article=product.get("offer_id"), size="",
            barcode=None, warehouse=warehouse, ordered_at=ordered_at, day=day,
            status=status, is_cancelled=int(status == "cancelled"), cancelled_at=None,
            quantity=quantity + (earlier.quantity if earlier else 0),
            price_kopecks=page_kopecks(_amount(product.get("price"))), changed_at=seen_at,
            payout_kopecks=payouts.get(sku),
        )
    if not lines:
        raise BadRecord(f"{where}: no products")
    return list(lines.values())


def _payouts(posting: dict, where: str) -> dict[int, int]:
    """financial_data.products[].payout per SKU (product_id), summed: what the seller receives."""
    totals: dict[int, int] = {}
    for item in (posting.get("financial_data") or {}).get("products") or []:
        payout = page_kopecks(item.get("payout"))
        if payout is None or item.get("product_id") in (None, ""):
            continue
        sku = whole(item["product_id"], f"{where} financial_data product_id")
        totals[sku] = totals.get(sku, 0) + payout
    return totals


def posting_products(posting: dict, account: str) -> list[Product]:
    return [Product(account, whole(p["sku"], "sku"), "", p.get("offer_id"), p.get("name"), None)
            for p in posting.get("products") or [] if p.get("sku") not in (None, "")]


def return_event(item: dict, account: str, zone: ZoneInfo) -> SaleEvent | None:
    """An FBO return, dated by its logistic return date, else its last status change."""
    where = f"return {item.get('id')!r}"
    if str(item.get("schema") or "FBO").upper() != "FBO":
        return None
    product = required(item, "product", where)
    logistic, visual = item.get("logistic") or {}, item.get("visual") or {}
    moment = _time(logistic.get("return_date") or visual.get("change_moment"), f"{where} date")
    quantity = whole(product.get("quantity", 1), f"{where} quantity")
    price = kopecks(_amount(product.get("price")))
    return SaleEvent(
        account=account, kind="return", sale_id=str(whole(required(item, "id", where), "id")),
        sku=whole(required(product, "sku", where), f"{where} sku"), order_id=item.get("posting_number"),
        article=product.get("offer_id"), size="", barcode=None,
        warehouse=(item.get("place") or {}).get("name"),
        sold_at=iso(moment, zone) if moment else None, day=local_day(moment, zone) if moment else None,
        quantity=quantity, amount_kopecks=price * quantity if price is not None else None,
        return_type=item.get("type"), changed_at=iso(_time(visual.get("change_moment"), where), zone)
        if visual.get("change_moment") else None,
    )


def stock_levels(items: list[dict], account: str) -> list[StockLevel]:
    """One row per SKU x warehouse; `available_stock_count` is the stock figure."""
    totals: dict[tuple, int] = {}
    for item in items:
        where = f"stock row sku={item.get('sku')!r}"
        key = (whole(required(item, "sku", where), "sku"), str(required(item, "warehouse_name", where)))
        totals[key] = totals.get(key, 0) + whole(item.get("available_stock_count") or 0, "available_stock_count")
    return [StockLevel(account, sku, "", warehouse, qty) for (sku, warehouse), qty in totals.items()]


def stock_products(items: list[dict], account: str) -> list[Product]:
    return [Product(account, whole(i["sku"], "sku"), "", i.get("offer_id"), i.get("name"), None)
            for i in items if i.get("sku") not in (None, "")]


def fbo_sku(item: dict) -> int:
    """The SKU FBO postings, stock and returns use. A product sold from one stock has one SKU
    (source SDS); one with separate FBO and FBS stock has an FBO SKU of its own, which the list's
    `sku` need not be. Without sources, the list's `sku` (or the info's)."""
    where = f"product {item.get('product_id')!r}"
    sources = {str(s.get("source") or "").upper(): s.get("sku") for s in (item.get("info") or {}).get("sources") or []
               if isinstance(s, dict)}
    chosen = sources.get("FBO") or sources.get("SDS") or item.get("sku") or (item.get("info") or {}).get("sku")
    return whole(required({"sku": chosen}, "sku", where), f"{where} sku")


def catalog_product(item: dict, account: str) -> Product:
    """A /v3/product/list row with its info: FBO SKU, article, name, first barcode."""
    info = item.get("info") or {}
    barcode = next(iter(info.get("barcodes") or []), None)
    return Product(account, fbo_sku(item), "", item.get("offer_id") or info.get("offer_id"),
                   info.get("name") or None, barcode)


def balance(answer: dict, account: str, day: str) -> Balance:
    """/v1/finance/balance: total{opening_balance, accrued, payments[], closing_balance}, each
    {value, currency_code}; payments summed into what was paid out in the period."""
    total = required(answer, "total", "balance")
    if not isinstance(total, dict):
        raise BadRecord(f"balance: total is {total!r}, not an object")
    amounts = [total.get("opening_balance"), total.get("accrued"), total.get("closing_balance"),
               *(total.get("payments") or [])]
    currency = next((a.get("currency_code") for a in amounts if isinstance(a, dict) and a.get("currency_code")), None)
    payments = [_money(p, "balance payments") for p in total.get("payments") or []]
    return Balance(account=account, day=day, currency=currency,
                   opening_kopecks=_money(total.get("opening_balance"), "balance opening_balance"),
                   accrued_kopecks=_money(total.get("accrued"), "balance accrued"),
                   paid_kopecks=sum(p for p in payments if p is not None) if payments else 0,
                   closing_kopecks=_money(total.get("closing_balance"), "balance closing_balance"))


def _money(amount, what: str) -> int | None:
    """{value, currency_code} (or a bare number) as kopecks."""
    value = amount.get("value") if isinstance(amount, dict) else amount
    try:
        return kopecks(value)
    except BadRecord:
        raise BadRecord(f"{what}: {value!r} is not an amount of money") from None
