"""Drift and bad answers against the sandbox over HTTP: a body cut half-way, rows the normaliser
cannot read, Ozon's item-quota 429, SKUs typed as the reference says, and WB's 402."""

import json
import time
from datetime import timedelta

import pytest
import requests

from collector.ozon import client as ozon_api
from collector.pipeline import run_pass
from collector.sandbox import Fault
from collector.timeutil import MOSCOW, parse_wb_time
from tests.conftest import table

WB_ORDERS, WB_SALES = "/api/v1/supplier/orders", "/api/v1/supplier/sales"
POSTINGS, OZON_STOCKS = "/v3/posting/fbo/list", "/v1/analytics/stocks"
MIDNIGHT = "2026-11-26T00:00:00"


def wb_orders_since_midnight(sandbox, clock):
    """The orders rows the first pass reads: changed since Moscow midnight, as the sandbox has them."""
    return [row for row in sandbox.seller.wb_orders("wb-1", clock.now()) if row["lastChangeDate"] >= MIDNIGHT]


def dataset_result(result, account, dataset):
    (found,) = [r for r in result.datasets if (r.account, r.dataset) == (account, dataset)]
    return found


# -- a connection cut in the middle of a body ---------------------------------------------------

def test_the_cut_body_fault_really_breaks_the_body_over_http(sandbox):
    sandbox.faults.add(Fault("cut_body", endpoint="/ping"))
    token = sandbox.env()["WB_API_TOKEN"]
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(sandbox.url + "/ping", headers={"Authorization": token}, timeout=5)
    assert [r.fault for r in sandbox.request_log] == ["cut_body"]


@pytest.mark.parametrize("account, path, dataset", [("wb-1", WB_ORDERS, "orders"), ("ozon-2", POSTINGS, "orders"),
                                                    ("ozon-1", OZON_STOCKS, "stocks")])
def test_a_body_cut_half_way_is_retried_like_a_reset(sandbox, storage, collect, account, path, dataset):
    sandbox.faults.add(Fault("cut_body", endpoint=path, account=account))
    result = collect()
    assert (result.status, result.exit_code) == ("ok", 0)
    got = dataset_result(result, account, dataset)
    assert (got.status, got.retries, got.error) == ("ok", 1, None)
    hits = [r.fault for r in sandbox.request_log if (r.account, r.path) == (account, path)]
    assert hits[:2] == ["cut_body", None]


def test_a_body_cut_every_time_fails_the_dataset_in_plain_words(sandbox, storage, collect):
    sandbox.faults.add(Fault("cut_body", endpoint=WB_SALES, account="wb-1", times=None))
    result = collect()
    assert (result.status, result.exit_code) == ("partial", 2)
    assert dataset_result(result, "wb-1", "sales").error == (
        "wb-1 (Песочница WB 1) sales: GET /api/v1/supplier/sales: no HTTP answer: "
        "the connection was cut in the middle of the answer")
    assert table(storage, "SELECT count(*) FROM sales WHERE account = 'wb-1'") == [(0,)]


# -- rows the normaliser cannot read --------------------------------------------------------------

def test_one_unreadable_wb_row_is_set_aside_and_the_rest_saved(sandbox, storage, collect, clock):
    truth = wb_orders_since_midnight(sandbox, clock)
    sandbox.faults.add(Fault("wrong_type", endpoint=WB_ORDERS, account="wb-1", field="nmId", rows=1))
    result = collect()
    assert (result.status, result.exit_code) == ("ok", 0)
    got = dataset_result(result, "wb-1", "orders")
    assert (got.status, got.rows, got.rejected) == ("ok", len(truth), 1)
    assert table(storage, "SELECT status, rejected FROM fetch_log WHERE account = 'wb-1' AND dataset = 'orders'") \
        == [("ok", 1)]

    (account, dataset, raw, reason, first_seen, seen_at), = table(
        storage, "SELECT account, dataset, raw, reason, first_seen, seen_at FROM rejected_rows")
    bad = json.loads(raw)
    original = {row["srid"]: row for row in truth}[bad["srid"]]
    assert bad == {**original, "nmId": "abc"}  # the row exactly as sent
    assert (account, dataset, reason, first_seen, seen_at) == (
        "wb-1", "orders", "nmId: 'abc' is not a whole number", "2026-11-26T12:00:00+03:00",
        "2026-11-26T12:00:00+03:00")
    assert table(storage, "SELECT note FROM source_notes WHERE account = 'wb-1' AND dataset = 'orders'") == [(
        "1 строка отложена: маркетплейс прислал её в непонятном виде (nmId: 'abc' is not a whole number); "
        "остальные сохранены, отложенная лежит в таблице rejected_rows",)]

    saved = {srid for (srid,) in table(storage, "SELECT order_id FROM orders WHERE account = 'wb-1'")}
    assert saved == {row["srid"] for row in truth} - {bad["srid"]}
    # The watermark moved past every row read, the one set aside included: it is kept, not lost.
    latest = max(parse_wb_time(row["lastChangeDate"]) for row in truth)
    assert table(storage, "SELECT value FROM watermarks WHERE account = 'wb-1' AND dataset = 'orders'") == [
        (latest.astimezone(MOSCOW).isoformat(),)]

    clock.advance(minutes=10)
    collect()  # a clean answer: the note goes, the row set aside stays for the record
    assert table(storage, "SELECT count(*) FROM source_notes WHERE account = 'wb-1'") == [(0,)]
    assert table(storage, "SELECT count(*) FROM rejected_rows") == [(1,)]


def test_too_many_unreadable_rows_fail_the_dataset_and_keep_everything_as_it_was(sandbox, storage, collect, clock):
    truth = wb_orders_since_midnight(sandbox, clock)
    spoiled = len(truth) // 10 + 1  # just over 10 %
    sandbox.faults.add(Fault("wrong_type", endpoint=WB_ORDERS, account="wb-1", field="nmId", rows=spoiled))
    result = collect()
    assert (result.status, result.exit_code) == ("partial", 2)
    assert dataset_result(result, "wb-1", "orders").error == (
        f"wb-1 (Песочница WB 1) orders: unreadable data from the marketplace: nmId: 'abc' is not a whole number; "
        f"{spoiled} of {len(truth)} orders rows unreadable, more than 10% "
        f"(GET /api/v1/supplier/orders: HTTP 200 OK, but the data is unreadable)")
    assert table(storage, "SELECT count(*) FROM orders WHERE account = 'wb-1'") == [(0,)]
    assert table(storage, "SELECT count(*) FROM watermarks WHERE account = 'wb-1' AND dataset = 'orders'") == [(0,)]
    assert table(storage, "SELECT count(*) FROM rejected_rows") == [(0,)]


def test_an_unreadable_ozon_posting_costs_only_itself(sandbox, storage, collect, clock):
    sandbox.faults.add(Fault("missing_field", endpoint=POSTINGS, account="ozon-1", field="products.sku", rows=1))
    result = collect()
    assert (result.status, result.exit_code) == ("ok", 0)
    assert dataset_result(result, "ozon-1", "orders").rejected == 1
    (raw, reason), = table(storage, "SELECT raw, reason FROM rejected_rows WHERE account = 'ozon-1'")
    bad = json.loads(raw)
    assert reason == f"posting {bad['posting_number']}: the field 'sku' is missing"
    truth = {p["posting_number"] for p in sandbox.seller.ozon_postings(
        "ozon-1", clock.now(), since=clock.now() - timedelta(days=30))}
    saved = {n for (n,) in table(storage, "SELECT DISTINCT order_id FROM orders WHERE account = 'ozon-1'")}
    assert bad["posting_number"] in truth and saved == truth - {bad["posting_number"]}


# -- Ozon's shapes -------------------------------------------------------------------------------

def test_ozon_item_quota_429_is_waited_out_as_item_retry_after_says(sandbox, settings):
    """The official 429: code "RESOURCE_EXHAUSTED" (a string) and Item-Retry-After in minutes;
    the sandbox scales its 2 minutes by the rate-limit factor: 0.12 s."""
    sandbox.faults.add(Fault("item_quota", endpoint=OZON_STOCKS, account="ozon-1"))
    account = [a for a in settings.accounts if a.account == "ozon-1"][0]
    api = ozon_api.make_client(account, settings)
    try:
        started = time.monotonic()
        items = ozon_api.fetch_stock_items(api, settings, [p.sku for p in sandbox.seller.ozon("ozon-1").products])
        elapsed = time.monotonic() - started
    finally:
        api.close()
    assert items and (api.stats.requests, api.stats.retries) == (2, 1)
    assert api.stats.waited == pytest.approx(0.12) and elapsed >= 0.12
    first = [r for r in sandbox.request_log if r.path == OZON_STOCKS][0]
    assert (first.status, first.fault) == (429, "item_quota")


def test_ozon_refuses_skus_sent_as_numbers_and_the_collector_sends_strings(sandbox, storage, collect):
    env = sandbox.env()
    headers = {"Client-Id": env["OZON_CLIENT_ID_1"], "Api-Key": env["OZON_API_KEY_1"]}
    sku = sandbox.seller.ozon("ozon-1").products[0].sku
    refused = requests.post(sandbox.url + OZON_STOCKS, json={"skus": [sku]}, headers=headers, timeout=5)
    assert (refused.status_code, refused.json()) == (400, {
        "code": 3, "message": "skus: invalid value, expected an array of strings", "details": []})
    assert requests.post(sandbox.url + OZON_STOCKS, json={"skus": [str(sku)]}, headers=headers,
                         timeout=5).status_code == 200
    info = requests.post(sandbox.url + "/v3/product/info/list", json={"product_id": [1]}, headers=headers, timeout=5)
    assert info.status_code == 400
    sandbox.clear_request_log()
    result = collect()
    assert result.status == "ok"
    assert {r.status for r in sandbox.request_log if r.path in (OZON_STOCKS, "/v3/product/info/list")
            and r.fault is None} == {200}


# -- WB 402 -------------------------------------------------------------------------------------

def test_a_wb_402_fails_its_dataset_once_with_a_clear_message(sandbox, storage, collect):
    sandbox.faults.add(Fault("payment_required", endpoint=WB_SALES, account="wb-1", times=None))
    result = collect()
    assert (result.status, result.exit_code) == ("partial", 2)
    assert dataset_result(result, "wb-1", "sales").error == (
        "wb-1 (Песочница WB 1) sales: GET /api/v1/supplier/sales: HTTP 402 Payment Required: the marketplace asks "
        "for payment (a paid app's balance ran out, not the seller's data): wb solution for business has "
        "insufficient funds on its balance. please top up the balance in the company's personal account "
        "https://dev.wildberries.ru/company")
    assert [r.status for r in sandbox.request_log if r.path == WB_SALES] == [402]  # never repeated
    assert {(r.dataset, r.status) for r in result.datasets if r.account == "wb-1"} == {
        ("catalog", "ok"), ("stocks", "ok"), ("orders", "ok"), ("sales", "failed"), ("balance", "ok")}


def test_rows_set_aside_are_not_counted_but_the_pass_still_says_ok(sandbox, settings, storage, clock):
    sandbox.faults.add(Fault("wrong_type", endpoint=WB_SALES, account="wb-1", field="nmId", rows=2))
    result = run_pass(settings, storage, clock=clock.now, datasets=("sales",))
    assert result.exit_code == 0
    assert table(storage, "SELECT count(*), min(dataset) FROM rejected_rows") == [(2, "sales")]
    assert table(storage, "SELECT note FROM source_notes") == [(
        "2 строки отложены: маркетплейс прислал их в непонятном виде (nmId: 'abc' is not a whole number); "
        "остальные сохранены, отложенные лежат в таблице rejected_rows",)]
