"""Wildberries JSON bodies, field for field as in the official examples (api/examples/wb/)."""

from __future__ import annotations

from collector.sandbox.clock import WB_NO_DATE, fmt_msk, fmt_msk_offset
from collector.sandbox.wb_model import WAREHOUSE_ID, WAREHOUSE_NAME, FeedRow, WbOrder, WbRow, WbStock

WAREHOUSE_TYPE = "Склад WB"


def money(kopecks: int) -> int | float:
    """A WB amount: a JSON number with at most 2 decimals (an int when whole, as WB writes)."""
    return kopecks // 100 if kopecks % 100 == 0 else kopecks / 100


def _percent_off(kopecks: int, percent: int) -> int:
    return (kopecks * (100 - percent) + 50) // 100


def _amounts(order: WbOrder) -> tuple[int, int, int]:
    """(priceWithDisc, finishedPrice, forPay) in kopecks: the seller's discount, then the buyer's
    WB discount (spp) for finishedPrice, and WB's commission off the seller's price for forPay."""
    with_discount = _percent_off(order.product.price_kop, order.product.discount_percent)
    return (with_discount, _percent_off(with_discount, order.spp),
            _percent_off(with_discount, order.product.family.commission_percent))


def _common(row: WbRow) -> dict:
    """The fields orders and sales rows share, up to and including discountPercent."""
    order = row.order
    product, size = order.product, order.size
    country, okrug, region = order.region
    fields = {
        "date": fmt_msk(row.date),
        "lastChangeDate": fmt_msk(row.last_change),
        "warehouseName": order.warehouse,
        "warehouseType": WAREHOUSE_TYPE,
        "countryName": country,
        "oblastOkrugName": okrug,
        "regionName": region,
        "supplierArticle": product.article,
        "nmId": product.nm_id,
        "barcode": size.barcode,
        "category": product.family.category,
        "subject": product.family.subject,
        "brand": product.family.brand,
        "techSize": size.tech_size,
        "incomeID": order.income_id,
        "isSupply": False,
        "isRealization": True,
        "totalPrice": money(product.price_kop),
        "discountPercent": product.discount_percent,
    }
    if not order.has_warehouse_type:  # some real rows come without it
        del fields["warehouseType"]
    return fields


def order_json(row: WbRow) -> dict:
    """A /api/v1/supplier/orders row; `row.flag` is isCancel."""
    order = row.order
    with_discount, finished, _ = _amounts(order)
    return {
        **_common(row),
        "spp": order.spp,
        "finishedPrice": money(finished),
        "priceWithDisc": money(with_discount),
        "isCancel": row.flag,
        "cancelDate": fmt_msk(order.cancel_at) if row.flag else WB_NO_DATE,
        "sticker": str(order.sticker),
        "gNumber": f"{order.g_number:020d}",
        "srid": srid(order),
    }


def sale_json(row: WbRow) -> dict:
    """A /api/v1/supplier/sales row: S (buyout), R (return, negative amounts) or D (surcharge).

    An S row whose `flag` is set is the first publication, with amounts still 0."""
    order = row.order
    with_discount, finished, for_pay = _amounts(order)
    wallet = order.wallet_rub
    if row.kind == "S" and row.flag:
        with_discount = finished = for_pay = 0
    elif row.kind == "R":
        with_discount, finished, for_pay, wallet = -with_discount, -finished, -for_pay, 0
    elif row.kind == "D":
        with_discount, finished, for_pay, wallet = 0, 0, for_pay // 20, 0
    return {
        **_common(row),
        "spp": order.spp,
        "paymentSaleAmount": wallet,
        "forPay": money(for_pay),
        "finishedPrice": money(finished),
        "priceWithDisc": money(with_discount),
        "saleID": f"{row.kind}{order.n:010d}",
        "sticker": str(order.sticker),
        "gNumber": f"{order.g_number:020d}",
        "srid": srid(order),
    }


def feed_order_json(row: FeedRow) -> dict:
    """An order of /api/analytics/v1/order-feed (api/examples/wb/order_feed_example.json): the
    same order, srid and warehouse as its supplier/orders row; sellerPrice is priceWithDisc."""
    order = row.order
    country, okrug, region = order.region
    return {
        "nmId": order.product.nm_id,
        "chrtId": order.size.chrt_id,
        "srid": srid(order),
        "createdAt": fmt_msk_offset(order.created),
        "updatedAt": fmt_msk_offset(row.updated),
        "status": row.status,
        "cancelType": "app" if row.status == "cancel" else "",
        "warehouseName": order.warehouse,
        "warehouseRegion": "",
        "isMp": True,
        "destinationCity": region,
        "destinationDistrict": okrug,
        "sellerPrice": money(_amounts(order)[0]),
        "isB2b": False,
    }


def srid(order: WbOrder) -> str:
    return f"{order.n * 1000 + order.sticker % 1000}.1.0"


def stock_item_json(stock: WbStock) -> dict:
    """An item of /api/analytics/v1/stocks-report/wb-warehouses (aggregated since 15.08.2026)."""
    return {
        "nmId": stock.product.nm_id,
        "chrtId": stock.size.chrt_id,
        "warehouseId": WAREHOUSE_ID,
        "warehouseName": WAREHOUSE_NAME,
        "regionName": WAREHOUSE_NAME,
        "quantity": stock.quantity,
        "inWayToClient": stock.in_way_to_client,
        "inWayFromClient": stock.in_way_from_client,
    }
