"""Normalisation from recorded JSON shaped like the official example bodies: whole records."""

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collector.ozon import normalize as ozon
from collector.records import BadRecord, OrderLine, Product, SaleEvent, StockLevel, kopecks
from collector.wb import normalize as wb

FIXTURES = Path(__file__).parent / "fixtures"
MOSCOW = ZoneInfo("Europe/Moscow")
SEEN = "2026-11-26T12:00:00+03:00"


def load(name):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_wb_orders_become_one_unit_each_dated_by_order_date():
    first, cancelled = (wb.order_line(row, "wb-1", MOSCOW) for row in load("wb_orders.json"))
    assert first == OrderLine(
        account="wb-1", order_id="11.rf9ef11fce1684117b0nhj96222982382.3.0", sku=1234567,
        article="KR-100", size="0", barcode="2037401340280", warehouse="Коледино",
        ordered_at="2026-11-25T23:59:59+03:00", day="2026-11-25", status="ordered", is_cancelled=0,
        cancelled_at=None, quantity=1, price_kopecks=154735, changed_at="2026-11-26T00:10:02+03:00")
    assert cancelled == OrderLine(
        account="wb-1", order_id="12.a1b2c3.0.0", sku=1234567, article="KR-100", size="0",
        barcode="2037401340280", warehouse="Склад WB РФ", ordered_at="2026-11-26T00:00:01+03:00",
        day="2026-11-26", status="cancelled", is_cancelled=1, cancelled_at="2026-11-26T09:15:00+03:00",
        quantity=1, price_kopecks=154700, changed_at="2026-11-26T09:15:00+03:00")


def test_wb_times_follow_the_configured_zone():
    line = wb.order_line(load("wb_orders.json")[1], "wb-1", ZoneInfo("Asia/Yekaterinburg"))
    assert (line.ordered_at, line.day) == ("2026-11-26T02:00:01+05:00", "2026-11-26")
    line = wb.order_line(load("wb_orders.json")[1], "wb-1", ZoneInfo("Europe/Kaliningrad"))
    assert (line.ordered_at, line.day) == ("2026-11-25T23:00:01+02:00", "2026-11-25")


def test_wb_sales_s_is_sale_r_is_return_other_prefixes_skipped():
    sale, ret, other = (wb.sale_event(row, "wb-1", MOSCOW) for row in load("wb_sales.json"))
    assert sale == SaleEvent(
        account="wb-1", kind="sale", sale_id="S9993700024", sku=7654321, order_id="21.s1.0.0",
        article="PAK-8", size="M", barcode="2000000000017", warehouse="Подольск",
        sold_at="2026-11-26T10:00:00+03:00", day="2026-11-26", quantity=1, amount_kopecks=41010,
        return_type=None, changed_at="2026-11-26T10:05:00+03:00", payout_kopecks=0)
    assert ret == SaleEvent(
        account="wb-1", kind="return", sale_id="R1000000001", sku=7654321, order_id="21.s1.0.0",
        article="PAK-8", size="M", barcode=None, warehouse="Подольск",
        sold_at="2026-11-26T11:00:00+03:00", day="2026-11-26", quantity=1, amount_kopecks=-41010,
        return_type=None, changed_at="2026-11-26T11:00:00+03:00", payout_kopecks=-30000)
    assert other is None


def test_wb_stock_sums_rows_sharing_a_warehouse_name():
    levels = wb.stock_levels(load("wb_warehouses.json")["data"]["items"], "wb-1")
    assert levels == [
        StockLevel("wb-1", 47254354, "91663228", "Склад WB", 43),
        StockLevel("wb-1", 47254354, "91663229", "Склад WB", 0),
        StockLevel("wb-1", 47254354, "91663228", "Коледино", 7),
    ]


def test_official_wb_examples_normalise():
    examples = Path("/work/shared/api/examples/wb")
    if not examples.exists():
        pytest.skip("shared examples not present")
    for name in ("orders_example.json", "orders_example_2025.json"):
        assert wb.order_line(json.loads((examples / name).read_text())[0], "wb-1", MOSCOW).day == "2022-03-04"
    sale = wb.sale_event(json.loads((examples / "sales_example.json").read_text())[0], "wb-1", MOSCOW)
    assert (sale.kind, sale.amount_kopecks) == ("sale", 154700)


def test_ozon_posting_lines_sum_a_repeated_sku_and_convert_utc_to_moscow():
    (line,) = ozon.posting_lines(load("ozon_postings.json")["postings"][0], "ozon-1", MOSCOW, SEEN)
    assert line == OrderLine(
        account="ozon-1", order_id="0123456789-0001-1", sku=1100526203, article="KR-100", size="",
        barcode=None, warehouse="ХОРУГВИНО_РФЦ", ordered_at="2026-11-26T00:00:01+03:00",
        day="2026-11-26", status="cancelled", is_cancelled=1, cancelled_at=None, quantity=3,
        price_kopecks=49990, changed_at=SEEN)


def test_ozon_official_posting_example():
    (line,) = ozon.posting_lines(load("ozon_postings_official.json")["postings"][0], "ozon-1", MOSCOW, SEEN)
    # created 2026-05-10T23:59:51Z is 02:59:51 on 11 May in Moscow
    assert (line.sku, line.day, line.status, line.quantity, line.price_kopecks, line.warehouse) == (
        9880276314, "2026-05-11", "delivered", 1, 2899000, "ОМСК_РФЦ")
    assert ozon.posting_products(load("ozon_postings_official.json")["postings"][0], "ozon-1") == [
        Product("ozon-1", 9880276314, "", "SM-GALAXY-A54-128", "Смартфон Samsung Galaxy A54", None)]


def test_ozon_official_return_example_with_int64_as_strings():
    (item,) = load("ozon_returns_official.json")["returns"]
    assert ozon.return_event(item, "ozon-1", MOSCOW) is None  # the example's schema is "Fbs"
    event = ozon.return_event({**item, "schema": "Fbo"}, "ozon-1", MOSCOW)
    assert event == SaleEvent(
        account="ozon-1", kind="return", sale_id="1000015552", sku=1100526203,
        order_id="58544282-0057-1", article="81451", size="", barcode=None,
        warehouse="СЦ_Львовский_Возвраты", sold_at="2024-07-29T09:15:48+03:00", day="2024-07-29",
        quantity=1, amount_kopecks=331800, return_type="FullReturn",
        changed_at="2024-07-29T09:15:48+03:00")


def test_ozon_stock_rows():
    items = [
        {"sku": "11", "offer_id": "A", "name": "Товар", "warehouse_id": 1, "warehouse_name": "Казань_РФЦ",
         "available_stock_count": 5, "valid_stock_count": 9},
        {"sku": 11, "warehouse_name": "ХОРУГВИНО_РФЦ", "available_stock_count": None},
    ]
    assert ozon.stock_levels(items, "ozon-2") == [
        StockLevel("ozon-2", 11, "", "Казань_РФЦ", 5), StockLevel("ozon-2", 11, "", "ХОРУГВИНО_РФЦ", 0)]


@pytest.mark.parametrize("row, message", [
    ({"date": "2026-11-26T10:00:00", "lastChangeDate": "2026-11-26T10:00:00", "nmId": 1}, "'srid' is missing"),
    ({"srid": "x", "lastChangeDate": "2026-11-26T10:00:00", "nmId": 1}, "'date' is missing"),
    ({"srid": "x", "date": "yesterday", "lastChangeDate": "2026-11-26T10:00:00", "nmId": 1}, "not a date-time"),
    ({"srid": "x", "date": "2026-11-26T10:00:00", "lastChangeDate": "2026-11-26T10:00:00", "nmId": "abc"},
     "not a whole number"),
])
def test_unreadable_wb_rows_are_refused_with_the_field_named(row, message):
    with pytest.raises(BadRecord, match=message):
        wb.order_line(row, "wb-1", MOSCOW)


def test_money_is_exact():
    assert kopecks(1284.01) == 128401
    assert kopecks("28990") == 2899000
    assert kopecks(0.1 + 0.2) == 30
    assert kopecks(None) is None
    with pytest.raises(BadRecord):
        kopecks("abc")
