"""Ozon JSON bodies, field for field as in the official examples (api/examples/ozon/)."""

from __future__ import annotations

from collector.sandbox.catalog import FAMILIES, OzonProduct
from collector.sandbox.clock import DAY, HOUR, fmt_utc
from collector.sandbox.ozon_model import OzonLine, OzonPosting, OzonReturn, OzonStock, OzonStore
from collector.sandbox.wb_shapes import money

CURRENCY = "RUB"
SELLER_ACTION = "Системная виртуальная скидка селлера"


def decimal_string(kopecks: int) -> str:
    """Ozon's exact money: a decimal string, "28990" or "1299.50"."""
    rubles, cents = divmod(kopecks, 100)
    return f"{rubles}.{cents:02d}" if cents else str(rubles)


def _commission_kop(line: OzonLine) -> int:
    return line.price_kop * line.quantity * line.product.family.commission_percent // 100


# --- /v3/posting/fbo/list --------------------------------------------------------------------

def posting_json(posting: OzonPosting, t: int, *, analytics: bool, financial: bool) -> dict:
    """A posting as /v3/posting/fbo/list shows it at t; the `with` blocks only when asked."""
    status = posting.status_at(t)
    cancelled = status == "cancelled"
    reason_id, reason, initiator, cancel_type = posting.cancel_reason or (0, "", "", "")
    return {
        "posting_number": posting.posting_number,
        "order_id": posting.order_id,
        "order_number": posting.order_number,
        "status": status,
        "substatus": posting.substatus_at(t),
        "cancellation": {"cancel_reason": reason, "cancellation_initiator": initiator,
                         "cancellation_type": cancel_type} if cancelled else None,
        "products": [_posting_product(line) for line in posting.lines],
        "analytics_data": _analytics_data(posting) if analytics else None,
        "financial_data": _financial_data(posting) if financial else None,
        "legal_info": None,
        "external_order": {"is_external": False, "platform_name": ""},
        "cancel_reason_id": reason_id if cancelled else 0,
        "created_at": fmt_utc(posting.created),
        "in_process_at": fmt_utc(posting.in_process),
        "additional_data": [],
    }


def _posting_product(line: OzonLine) -> dict:
    return {
        "is_marketplace_buyout": False,
        "offer_id": line.product.offer_id,
        "name": line.product.name,
        "sku": line.product.sku,
        "quantity": line.quantity,
        "price": {"amount": decimal_string(line.price_kop), "currency": CURRENCY},
        "digital_codes": [],
    }


def _analytics_data(posting: OzonPosting) -> dict:
    """Courier deliveries carry a promised window; PVZ ones leave it null, as the example does."""
    window_begin = window_end = None
    if posting.delivery_type == "Courier":
        promised = posting.delivered_at or posting.shipped_at + DAY
        window_begin, window_end = fmt_utc(promised - 2 * HOUR, 3), fmt_utc(promised + 2 * HOUR, 3)
    return {
        "city": posting.city,
        "delivery_type": posting.delivery_type,
        "is_premium": posting.is_premium,
        "payment_type_group_name": posting.payment_type,
        "warehouse_id": posting.warehouse.warehouse_id,
        "warehouse_name": posting.warehouse.name,
        "is_legal": False,
        "client_delivery_date_begin": window_begin,
        "client_delivery_date_end": window_end,
    }


def _financial_data(posting: OzonPosting) -> dict:
    products = []
    for line in posting.lines:
        product = line.product
        discount = product.old_price_kop - line.price_kop
        commission = _commission_kop(line)
        products.append({
            "payout": money(line.price_kop * line.quantity - commission),
            "product_id": product.sku,  # in financial_data product_id is the SKU
            "old_price": money(product.old_price_kop),
            "price": money(line.price_kop),
            "total_discount_value": money(discount),
            "total_discount_percent": round(discount * 100 / product.old_price_kop, 2),
            "actions": [SELLER_ACTION] if discount else [],
            "commission": {"amount": money(commission),
                           "percent": product.family.commission_percent, "currency": CURRENCY},
        })
    return {"products": products, "cluster_from": posting.warehouse.cluster_name,
            "cluster_to": posting.cluster_to}


# --- /v1/returns/list ------------------------------------------------------------------------

def return_json(store: OzonStore, posting: OzonPosting, ret: OzonReturn, t: int,
                int64_as_strings: bool) -> dict:
    """A return as /v1/returns/list shows it at t. With `int64_as_strings` (the official example)
    int64 and decimal values are written as strings."""
    int64 = str if int64_as_strings else int

    def price(kopecks: int) -> dict:
        return {"currency_code": CURRENCY,
                "price": decimal_string(kopecks) if int64_as_strings else money(kopecks)}

    line, warehouse = ret.line, posting.warehouse
    place = {"id": int64(warehouse.warehouse_id), "name": warehouse.name,
             "address": f"Россия, г. {warehouse.city}, склад {warehouse.name}"}
    (status_id, status_name, status_sys_name), changed = ret.visual_status(t)
    arrived, storage_start = ret.arrived_by(t), ret.storage_start(t)
    stored_days = max(0, (t - storage_start) // DAY) if storage_start else 0
    amount = line.price_kop * ret.quantity
    commission = amount * line.product.family.commission_percent // 100
    return {
        "exemplars": [{"id": int64(ret.return_id * 100 + unit)} for unit in range(ret.quantity)],
        "id": int64(ret.return_id),
        "company_id": int64(store.company_id),
        "return_reason_name": ret.reason,
        "type": ret.kind,
        "schema": "Fbo",
        "order_id": int64(posting.order_id),
        "order_number": posting.order_number,
        "place": place,
        "target_place": place,
        "storage": {
            "sum": price(0),
            "tariffication_first_date": _utc_after(storage_start, days=1),
            "tariffication_start_date": _utc_after(storage_start),
            "arrived_moment": _utc_after(arrived),
            "days": int64(stored_days),
            "utilization_sum": price(0),
            "utilization_forecast_date": _utc_after(storage_start, days=30),
        },
        "product": {
            "sku": int64(line.product.sku),
            "offer_id": line.product.offer_id,
            "name": line.product.name,
            "price": price(amount),
            "price_without_commission": price(amount - commission),
            "commission_percent": (str if int64_as_strings else float)(
                line.product.family.commission_percent),
            "commission": price(commission),
            "quantity": ret.quantity,
        },
        "logistic": {
            "technical_return_moment": fmt_utc(ret.started),
            "final_moment": _utc_after(arrived),
            "cancelled_with_compensation_moment": None,
            "return_date": _utc_after(arrived),
            "barcode": ret.barcode,
        },
        "visual": {
            "status": {"id": status_id, "display_name": status_name, "sys_name": status_sys_name},
            "change_moment": fmt_utc(changed),
        },
        "additional_info": {"is_opened": ret.kind == "ClientReturn", "is_super_econom": False},
        "source_id": int64(posting.n),
        "posting_number": posting.posting_number,
        "clearing_id": int64(ret.return_id * 7 + 21_000_000_000_000),
        "return_clearing_id": None,
        # FBO returns go back into the seller's stock at Ozon: no compensation applies.
        "compensation_status": None,
    }


def _utc_after(moment: int | None, days: int = 0) -> str | None:
    """`days` after `moment` in Ozon's format; None while `moment` has not happened."""
    return None if moment is None else fmt_utc(moment + days * DAY)


# --- /v1/analytics/stocks --------------------------------------------------------------------

def _turnover_grade(days_of_cover: float, ads: float) -> str:
    if ads <= 0:
        return "NO_SALES"
    if days_of_cover < 7:
        return "DEFICIT"
    if days_of_cover < 30:
        return "POPULAR"
    if days_of_cover < 60:
        return "ACTUAL"
    return "SURPLUS"


def stock_items_json(stocks: list[OzonStock]) -> list[dict]:
    """Items of /v1/analytics/stocks: one per SKU x warehouse that has any stock to speak of.
    Cluster figures sum the store's warehouses of the same cluster."""
    cluster_ads: dict[tuple[int, int], float] = {}
    cluster_available: dict[tuple[int, int], int] = {}
    for stock in stocks:
        key = (stock.product.sku, stock.warehouse.cluster_id)
        cluster_ads[key] = cluster_ads.get(key, 0.0) + stock.expected_per_day
        cluster_available[key] = cluster_available.get(key, 0) + stock.available
    items = []
    for stock in stocks:
        if not (stock.available or stock.reserved or stock.requested):
            continue  # an SKU without FBO stock returns no row
        product, warehouse = stock.product, stock.warehouse
        key = (product.sku, warehouse.cluster_id)
        ads, ads_cluster = round(stock.expected_per_day, 2), round(cluster_ads[key], 2)
        idc = round(stock.available / ads, 1) if ads else 0
        idc_cluster = round(cluster_available[key] / ads_cluster, 1) if ads_cluster else 0
        items.append({
            "ads": ads, "ads_cluster": ads_cluster,
            "available_stock_count": stock.available,
            "cluster_id": warehouse.cluster_id, "cluster_name": warehouse.cluster_name,
            "days_without_sales": 0, "days_without_sales_cluster": 0,
            "excess_stock_count": 0, "expiring_stock_count": 0,
            "idc": idc, "idc_cluster": idc_cluster,
            "item_tags": [],
            "macrolocal_cluster_id": warehouse.macrolocal_cluster_id,
            "name": product.name, "offer_id": product.offer_id,
            "other_stock_count": 0,
            "placement_zone": [],
            "requested_stock_count": stock.requested,
            "return_from_customer_stock_count": 0, "return_to_seller_stock_count": 0,
            "sku": product.sku,
            "stock_defect_stock_count": 0, "transit_defect_stock_count": 0,
            "transit_stock_count": stock.in_transit,
            "turnover_grade": _turnover_grade(idc, ads),
            "turnover_grade_cluster": _turnover_grade(idc_cluster, ads_cluster),
            "valid_stock_count": 0, "waiting_docs_stock_count": 0,
            "waiting_docs_to_export_stock_count": 0,
            "warehouse_id": warehouse.warehouse_id, "warehouse_name": warehouse.name,
            # fields added in Sep 2026
            "inbound_replenishment": stock.requested,
            "outbound_pending_delivery": stock.reserved,
            "stock_not_being_sold": 0,
        })
    return items


# --- /v3/product/list and /v3/product/info/list ----------------------------------------------

def fbs_sku(product: OzonProduct) -> int:
    """The FBS SKU of a product with separate stocks: apart from every FBO SKU (1e9..4e9)."""
    return product.sku + 5_000_000_000


def product_list_item(product: OzonProduct, has_fbo_stocks: bool, split: bool = False) -> dict:
    return {
        "product_id": product.product_id,
        "offer_id": product.offer_id,
        "sku": fbs_sku(product) if split else product.sku,
        "has_fbo_stocks": has_fbo_stocks,
        "has_fbs_stocks": False,
        "archived": product.archived,
        "is_discounted": False,
        "quants": [],
    }


def product_info_item(product: OzonProduct, store: OzonStore, present: int, reserved: int,
                      split: bool = False) -> dict:
    created = fmt_utc(store.history_start - (product.product_id % 300 + 30) * DAY)
    category_id = 17_000_000 + FAMILIES.index(product.family)
    return {
        "id": product.product_id,
        "name": product.name,
        "offer_id": product.offer_id,
        "sku": fbs_sku(product) if split else product.sku,
        "is_archived": product.archived,
        "is_autoarchived": False,
        "is_discounted": False,
        "barcodes": [product.barcode],
        "description_category_id": category_id,
        "type_id": 90_000 + FAMILIES.index(product.family),
        "created_at": created,
        "updated_at": created,
        "images": [],
        "currency_code": CURRENCY,
        "price": decimal_string(product.price_kop),
        "old_price": decimal_string(product.old_price_kop),
        "min_price": decimal_string(product.price_kop * 9 // 10),
        "vat": "0.20",
        "sources": [{"sku": sku, "source": source, "created_at": created,
                     "shipment_type": "SHIPMENT_TYPE_GENERAL", "quant_code": ""}
                    for sku, source in ([(fbs_sku(product), "FBS"), (product.sku, "FBO")] if split
                                        else [(product.sku, "SDS")])],
        "stocks": {"has_stock": present > 0,
                   "stocks": [{"present": present, "reserved": reserved, "sku": product.sku,
                               "source": "fbo"}]},
    }
