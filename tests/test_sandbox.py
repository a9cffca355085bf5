"""The sandbox over real HTTP: auth, paging, limits, determinism, time, faults."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from collector.sandbox import Fault, Sandbox, SandboxClock, SandboxConfig
from collector.sandbox.auth import BASE, STATISTICS
from collector.sandbox.command import sandbox_command

START = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)  # 12:00 in Moscow
TODAY = date(2026, 11, 26)
ORDERS = "/api/v1/supplier/orders"
SALES = "/api/v1/supplier/sales"
WB_STOCKS = "/api/analytics/v1/stocks-report/wb-warehouses"
POSTINGS = "/v3/posting/fbo/list"
RETURNS = "/v1/returns/list"
OZON_STOCKS = "/v1/analytics/stocks"
PRODUCTS = "/v3/product/list"
TIMEOUT = 10
EXAMPLES = Path(__file__).parent / "fixtures" / "sandbox_examples"  # official example bodies


def make_sandbox(start: datetime = START, **config) -> Sandbox:
    config.setdefault("rate_limit_factor", 0)
    return Sandbox(SandboxConfig(**config), clock=SandboxClock(start)).start()


@pytest.fixture(scope="module")
def sb():
    sandbox = make_sandbox()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def fresh():
    """A sandbox of its own, for tests that move the clock or arm faults."""
    made = []

    def factory(start: datetime = START, **config) -> Sandbox:
        made.append(make_sandbox(start, **config))
        return made[-1]

    yield factory
    for sandbox in made:
        sandbox.stop()


def wb_get(sb: Sandbox, path: str, token: str | None = None, **params) -> requests.Response:
    token = sb.env()["WB_API_TOKEN"] if token is None else token
    return requests.get(sb.url + path, headers={"Authorization": token}, params=params, timeout=TIMEOUT)


def wb_post(sb: Sandbox, path: str, body: dict) -> requests.Response:
    return requests.post(sb.url + path, headers={"Authorization": sb.env()["WB_API_TOKEN"]},
                         json=body, timeout=TIMEOUT)


def ozon_post(sb: Sandbox, path: str, body: dict, store: int = 1, **headers) -> requests.Response:
    env = sb.env()
    sent = {"Client-Id": env[f"OZON_CLIENT_ID_{store}"], "Api-Key": env[f"OZON_API_KEY_{store}"]}
    sent.update(headers)
    return requests.post(sb.url + path, headers=sent, json=body, timeout=TIMEOUT)


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def example(name: str):
    return json.loads((EXAMPLES / name).read_text())


# --- credentials and auth --------------------------------------------------------------------

def test_env_points_every_account_at_one_url(sb):
    env = sb.env()
    assert env["WB_STATISTICS_URL"] == env["WB_ANALYTICS_URL"] == env["OZON_API_URL"] == sb.url
    assert {"WB_API_TOKEN", "WB_NAME_1", "OZON_CLIENT_ID_1", "OZON_API_KEY_1", "OZON_NAME_1",
            "OZON_CLIENT_ID_2", "OZON_API_KEY_2", "OZON_NAME_2"} <= env.keys()
    assert env["OZON_CLIENT_ID_1"].isdigit() and int(env["OZON_CLIENT_ID_1"]) > 0
    assert len(env["OZON_API_KEY_1"].split("-")) == 5


def test_wb_token_is_a_personal_jwt(sb):
    _, payload, signature = sb.env()["WB_API_TOKEN"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["acc"] == 3 and claims["s"] >> STATISTICS & 1
    assert claims["exp"] > START.timestamp() + 100 * 86400
    assert len(claims["sid"]) == 36 and signature


def test_wb_auth_errors_are_401_problem_json(sb):
    token = sb.env()["WB_API_TOKEN"]
    expired = sb.wb_token(issued=START - timedelta(days=200))
    for bad in ("", "not-a-token", token[:-4] + "AAAA", expired):
        reply = wb_get(sb, ORDERS, bad, dateFrom="2026-11-26")
        assert reply.status_code == 401, bad
        assert reply.headers["Content-Type"] == "application/problem+json"
        body = reply.json()
        assert body["title"] == "unauthorized" and body["status"] == 401 and body["requestId"]
    assert wb_get(sb, "/ping", "Bearer " + token).status_code == 200


def test_wb_token_category_and_type_are_enforced(sb):
    no_statistics = sb.wb_token(categories=(2,))
    assert wb_get(sb, ORDERS, no_statistics, dateFrom="2026-11-26").status_code == 401
    base = sb.wb_token(token_type=BASE)
    reply = requests.post(sb.url + WB_STOCKS, headers={"Authorization": base}, json={}, timeout=TIMEOUT)
    assert reply.status_code == 403 and reply.json()["detail"] == "base token is not allowed"


def test_ozon_auth_errors(sb):
    wrong_key = {"Api-Key": "00000000-0000-4000-8000-000000000000"}
    reply = ozon_post(sb, PRODUCTS, {"limit": 10}, **wrong_key)
    assert reply.status_code == 404
    assert reply.json() == {"code": 5, "message": "Invalid Api-Key, please check the key and try again",
                            "details": []}
    reply = ozon_post(sb, PRODUCTS, {"limit": 10}, **{"Client-Id": "abc"})
    assert reply.status_code == 400 and reply.json()["code"] == 3


# --- Wildberries statistics ------------------------------------------------------------------

def test_wb_date_from_errors(sb):
    assert wb_get(sb, ORDERS).json() == {"errors": ["dateFrom: field required"]}
    reply = wb_get(sb, SALES, dateFrom="yesterday")
    assert reply.status_code == 400 and reply.json() == {"errors": "dateFrom: Value not validated"}


def test_wb_rows_have_the_documented_shape(sb):
    orders = wb_get(sb, ORDERS, dateFrom="2026-11-20").json()
    fields = example("orders_example.json")[0].keys()
    assert orders and all(row.keys() <= fields for row in orders)
    assert sum(row.keys() == fields for row in orders) > 0.9 * len(orders)  # warehouseType may lack
    live = [row for row in orders if not row["isCancel"]]
    assert live and all(row["cancelDate"] == "0001-01-01T00:00:00" for row in live)
    assert any(row["isCancel"] and row["cancelDate"] != "0001-01-01T00:00:00" for row in orders)
    fractions = {len(row["date"].partition(".")[2]) for row in orders}
    assert len(fractions) >= 3  # naive Moscow times with varying fraction digits
    sales = wb_get(sb, SALES, dateFrom="2026-11-01").json()
    prefixes = Counter(row["saleID"][0] for row in sales)
    assert prefixes["S"] > prefixes["R"] > 0
    fields = example("sales_example.json")[0].keys()
    for row in sales:
        assert row.keys() <= fields and round(row["forPay"], 2) == row["forPay"]


def test_wb_paging_is_inclusive_with_boundary_duplicates(fresh):
    sb = fresh(wb_page_rows=25)
    since = "2026-11-23T00:00:00"
    seen, pages, date_from = Counter(), 0, since
    while True:
        page = wb_get(sb, ORDERS, dateFrom=date_from, flag=0).json()
        pages += 1
        assert len(page) <= 25
        changes = [row["lastChangeDate"] for row in page]
        assert changes == sorted(changes, key=lambda text: datetime.fromisoformat(text))
        new = [row for row in page if row["srid"] not in seen]
        seen.update(row["srid"] for row in page)
        if not new:
            break
        date_from = page[-1]["lastChangeDate"]
    truth = [row for row in sb.seller.wb_orders("wb-1", START)
             if datetime.fromisoformat(row["lastChangeDate"]) >= datetime.fromisoformat(since)]
    assert set(seen) == {row["srid"] for row in truth}
    assert pages > len(truth) / 25
    assert max(seen.values()) >= 2  # the last row of a page comes back on the next one
    shared = Counter(row["lastChangeDate"] for row in truth)
    assert max(shared.values()) >= 2  # many rows share one lastChangeDate


def test_wb_flag_1_gives_the_whole_day_uncapped(fresh):
    sb = fresh(wb_page_rows=25)
    rows = wb_get(sb, ORDERS, dateFrom="2026-11-25T15:00:00", flag=1).json()
    assert len(rows) > 100
    assert {row["date"][:10] for row in rows} == {"2026-11-25"}
    ordered = Counter(row["nmId"] for row in rows if not row["isCancel"])
    assert ordered == Counter(sb.seller.ordered_units("wb-1", date(2026, 11, 25), START))


def test_wb_stock_report(sb):
    reply = wb_post(sb, WB_STOCKS, {"nmIds": [], "limit": 5, "offset": 0})
    items = reply.json()["data"]["items"]
    assert reply.status_code == 200 and len(items) == 5
    assert items[0].keys() == example("wb_warehouses_example.json")["data"]["items"][0].keys()
    assert {(i["warehouseId"], i["warehouseName"], i["regionName"]) for i in items} == {
        (-999999, "Склад WB", "Склад WB")}
    everything = wb_post(sb, WB_STOCKS, {}).json()["data"]["items"]
    assert everything == sb.seller.wb_stock("wb-1", START)
    assert wb_post(sb, WB_STOCKS, {"offset": len(everything)}).status_code == 204
    assert wb_post(sb, WB_STOCKS, {"limit": 250_001}).status_code == 400


def test_wb_removed_stocks_method_is_404(sb):
    reply = wb_get(sb, "/api/v1/supplier/stocks", dateFrom="2026-11-26")
    assert reply.status_code == 404
    assert "deprecated" in reply.json()["detail"] and reply.json()["origin"] == "ag-statistics"


def test_wb_rate_limits(fresh):
    strict = fresh(rate_limit_factor=1.0)
    first = wb_get(strict, SALES, dateFrom="2026-11-26")
    assert first.status_code == 200 and first.headers["X-Ratelimit-Remaining"] == "0"
    second = wb_get(strict, SALES, dateFrom="2026-11-26")
    assert second.status_code == 429
    assert second.json()["title"] == "too many requests"
    assert int(second.headers["X-Ratelimit-Retry"]) >= 59
    assert second.headers["X-Ratelimit-Limit"] == "1"
    assert "X-Ratelimit-Remaining" not in second.headers
    burst = [wb_get(strict, ORDERS, dateFrom="2026-11-26").status_code for _ in range(11)]
    assert burst == [200] * 10 + [429]  # orders: a burst of 10

    quick = fresh(rate_limit_factor=0.001)  # sales: one request per 60 ms
    statuses = []
    for _ in range(4):
        statuses.append(wb_get(quick, SALES, dateFrom="2026-11-26").status_code)
        time.sleep(0.08)
    assert statuses == [200] * 4


# --- Ozon ------------------------------------------------------------------------------------

def test_ozon_product_list_pages_and_aliases(sb):
    first = ozon_post(sb, PRODUCTS, {"filter": {"visibility": "ALL"}, "limit": 4, "last_id": ""}).json()
    items, last_id = first["result"]["items"], first["result"]["last_id"]
    while True:
        page = ozon_post(sb, PRODUCTS, {"limit": 4, "last_id": last_id}).json()["result"]
        items += page["items"]
        last_id = page["last_id"]
        if len(page["items"]) < 4:
            break
    assert len(items) == first["result"]["total"] == 10 and not any(i["archived"] for i in items)
    archived = ozon_post(sb, PRODUCTS, {"filter": {"visibility": "ARCHIVED"}, "limit": 100}).json()
    assert [i["archived"] for i in archived["result"]["items"]] == [True]
    wb_articles = {row["supplierArticle"] for row in sb.seller.wb_orders("wb-1", START)}
    assert len({i["offer_id"] for i in items} & wb_articles) >= 3
    assert ozon_post(sb, PRODUCTS, {"limit": 1001}).status_code == 400


def test_ozon_stocks_take_at_most_100_skus(sb):
    skus = [str(i["sku"]) for i in ozon_post(sb, PRODUCTS, {"limit": 100}).json()["result"]["items"]]
    reply = ozon_post(sb, OZON_STOCKS, {"skus": skus})
    items = reply.json()["items"]
    sample = example("analytics_stocks_v1.response_200.redoc_sample.json")["items"][0]
    assert reply.status_code == 200 and items
    assert all(item.keys() >= sample.keys() for item in items)
    assert len({i["warehouse_id"] for i in items}) >= 3 and all(i["warehouse_id"] > 10**14 for i in items)
    assert items == sb.seller.ozon_stock("ozon-1", START)
    too_many = ozon_post(sb, OZON_STOCKS, {"skus": [str(n) for n in range(101)]})
    assert too_many.status_code == 400 and too_many.json()["code"] == 3
    assert ozon_post(sb, OZON_STOCKS, {}).status_code == 400


def test_ozon_rate_limit_is_per_client_id(fresh):
    sb = fresh(rate_limit_factor=10)  # a burst of 50, then 5 requests a second
    replies = [ozon_post(sb, "/v1/roles", {}) for _ in range(60)]
    statuses = Counter(reply.status_code for reply in replies)
    assert statuses[200] >= 50 and statuses[429] > 0
    refused = next(reply for reply in replies if reply.status_code == 429)
    assert refused.json() == {"code": 8, "message": "You have reached request rate limit per second",
                              "details": []}
    assert ozon_post(sb, "/v1/roles", {}, store=2).status_code == 200


def test_ozon_ground_truth_matches_the_api(sb):
    window = {"since": "2026-11-25T21:00:00Z", "to": utc(START)}  # today in Moscow
    postings = [p for page in postings_pages(sb, {"filter": window, "limit": 100}, store=2)
                for p in page["postings"]]
    ordered = Counter()
    for posting in postings:
        if posting["status"] != "cancelled":
            for product in posting["products"]:
                ordered[product["sku"]] += product["quantity"]
    assert ordered and ordered == Counter(sb.seller.ordered_units("ozon-2", TODAY, START))


def postings_pages(sb: Sandbox, body: dict, store: int = 1) -> list[dict]:
    pages, cursor = [], ""
    while True:
        page = ozon_post(sb, POSTINGS, {**body, "cursor": cursor}, store).json()
        pages.append(page)
        if not page["has_next"]:
            return pages
        assert page["cursor"] and page["cursor"] != cursor
        cursor = page["cursor"]


def test_ozon_postings_cursor_paging(sb):
    window = {"since": utc(START - timedelta(days=3)), "to": utc(START)}
    pages = postings_pages(sb, {"filter": window, "limit": 50, "sort_dir": "ASC",
                                "with": {"analytics_data": True, "financial_data": True}})
    assert len(pages) > 3 and pages[-1]["cursor"] == ""
    postings = [p for page in pages for p in page["postings"]]
    numbers = [p["posting_number"] for p in postings]
    assert len(numbers) == len(set(numbers))
    truth = sb.seller.ozon_postings("ozon-1", START, START - timedelta(days=3), START)
    assert postings == truth
    assert postings[0].keys() == example("posting_fbo_list_v3.response_200.json")["postings"][0].keys()
    assert all(isinstance(p["products"][0]["price"]["amount"], str) for p in postings)
    assert all(p["analytics_data"]["warehouse_id"] > 10**14 for p in postings)
    cancelled = [p for p in postings if p["status"] == "cancelled"]
    assert cancelled and all(p["cancellation"] for p in cancelled)
    assert all(p["cancellation"] is None for p in postings if p["status"] != "cancelled")

    descending = postings_pages(sb, {"filter": window, "limit": 100, "sort_dir": "DESC"})
    assert [p["posting_number"] for page in descending for p in page["postings"]] == numbers[::-1]
    assert descending[0]["postings"][0]["analytics_data"] is None


def test_ozon_postings_filters_and_limits(sb):
    window = {"since": utc(START - timedelta(days=10)), "to": utc(START)}
    wanted = ["awaiting_packaging", "delivering"]
    open_ones = postings_pages(sb, {"filter": {**window, "statuses": wanted}, "limit": 100})
    statuses = {p["status"] for page in open_ones for p in page["postings"]}
    assert statuses == {"awaiting_packaging", "delivering"}
    some = [p["posting_number"] for p in open_ones[0]["postings"][:3]]
    by_number = ozon_post(sb, POSTINGS, {"filter": {**window, "posting_numbers": some},
                                         "limit": 100}).json()
    assert sorted(p["posting_number"] for p in by_number["postings"]) == sorted(some)
    too_long = ozon_post(sb, POSTINGS, {"filter": {"since": "2025-01-01T00:00:00Z", "to": utc(START)},
                                        "limit": 10})
    assert too_long.status_code == 400 and too_long.json()["message"] == "PERIOD_IS_TOO_LONG"
    assert ozon_post(sb, POSTINGS, {"filter": window, "limit": 101}).status_code == 400
    assert ozon_post(sb, "/v2/posting/fbo/list", {"limit": 10}).status_code == 404


def test_ozon_returns_need_exactly_one_date_range(sb):
    period = {"time_from": utc(START - timedelta(days=30)), "time_to": utc(START)}
    none = ozon_post(sb, RETURNS, {"limit": 500, "last_id": 0, "filter": {"return_schema": "FBO"}})
    two = ozon_post(sb, RETURNS, {"limit": 500, "filter": {"logistic_return_date": period,
                                                           "visual_status_change_moment": period}})
    assert none.status_code == two.status_code == 400 and none.json()["code"] == 3
    for limit in ({}, {"limit": 501}):
        body = {**limit, "filter": {"logistic_return_date": period}}
        assert ozon_post(sb, RETURNS, body).status_code == 400

    returns, last_id = [], 0
    while True:
        page = ozon_post(sb, RETURNS, {"limit": 7, "last_id": last_id, "filter": {
            "logistic_return_date": period, "return_schema": "FBO"}}).json()
        returns += page["returns"]
        if not page["has_next"]:
            break
        last_id = int(page["returns"][-1]["id"])
    ids = [int(r["id"]) for r in returns]
    assert len(returns) > 7 and ids == sorted(set(ids))
    assert returns[0].keys() == example("returns_list_v1.response_200.json")["returns"][0].keys()
    assert all(r["schema"] == "Fbo" and isinstance(r["product"]["sku"], str) for r in returns)
    kinds = Counter(r["type"] for r in returns)
    assert kinds.most_common(1)[0][0] == "ClientReturn"
    fbs = ozon_post(sb, RETURNS, {"limit": 10, "filter": {"logistic_return_date": period,
                                                          "return_schema": "FBS"}}).json()
    assert fbs == {"returns": [], "has_next": False}


# --- determinism and time --------------------------------------------------------------------

def answers(sb: Sandbox) -> list:
    window = {"since": utc(START - timedelta(days=2)), "to": utc(START)}
    return [wb_get(sb, ORDERS, dateFrom="2026-11-24").json(),
            wb_get(sb, SALES, dateFrom="2026-11-24").json(),
            wb_post(sb, WB_STOCKS, {}).json(),
            ozon_post(sb, POSTINGS, {"filter": window, "limit": 100,
                                     "with": {"analytics_data": True, "financial_data": True}}).json(),
            ozon_post(sb, OZON_STOCKS, {"skus": [str(p.sku) for p in sb.seller.ozon("ozon-2").products]},
                      store=2).json()]


def test_same_seed_and_time_give_the_same_answers(sb, fresh):
    twin, other = fresh(), fresh(seed=2)
    assert answers(sb) == answers(twin)
    assert sb.env()["WB_API_TOKEN"] == twin.env()["WB_API_TOKEN"]
    assert answers(other)[0] != answers(sb)[0]


def test_data_moves_with_the_clock(fresh):
    sb = fresh()
    clock = sb.clock
    morning = wb_get(sb, ORDERS, dateFrom="2026-11-26", flag=1).json()
    window = {"since": utc(START - timedelta(hours=12)), "to": utc(START)}
    pages = postings_pages(sb, {"filter": window, "limit": 100})
    before = {p["posting_number"]: p["status"] for page in pages for p in page["postings"]}
    stock_before = sb.seller.stock_units("ozon-1", clock.now())

    clock.advance(hours=3)
    later = wb_get(sb, ORDERS, dateFrom="2026-11-26", flag=1).json()
    assert len(later) > len(morning)
    assert {r["srid"] for r in morning} <= {r["srid"] for r in later}
    assert sum(sb.seller.stock_units("ozon-1", clock.now()).values()) < sum(stock_before.values())

    clock.advance(days=7)
    cancelled = [r for r in wb_get(sb, ORDERS, dateFrom="2026-11-26", flag=1).json() if r["isCancel"]]
    assert cancelled and all(r["lastChangeDate"] >= r["date"] for r in cancelled)
    body = {"filter": {**window, "posting_numbers": list(before)}, "limit": 100}
    after = {p["posting_number"]: p["status"] for p in ozon_post(sb, POSTINGS, body).json()["postings"]}
    assert after.keys() == before.keys()
    assert set(after.values()) <= {"delivered", "cancelled"}
    assert any(status != "delivered" for status in before.values())
    assert sum(after[n] == "delivered" for n in before) > sum(s == "delivered" for s in before.values())
    bought = sb.seller.bought_units("wb-1", TODAY, clock.now())
    assert sum(bought.values()) > 0


# --- faults ----------------------------------------------------------------------------------

def test_fault_scoping_and_counting(fresh):
    sb = fresh(wb_accounts=2)
    env = sb.env()
    sb.faults.add(Fault(kind="500", endpoint=ORDERS, account="wb-2", times=2))
    assert wb_get(sb, ORDERS, dateFrom="2026-11-26").status_code == 200
    assert [wb_get(sb, ORDERS, env["WB_API_TOKEN_2"], dateFrom="2026-11-26").status_code
            for _ in range(3)] == [500, 500, 200]
    sb.faults.add(Fault(kind="503", times=None))
    assert wb_get(sb, "/ping").status_code == 503 and ozon_post(sb, PRODUCTS, {"limit": 1}).status_code == 503
    sb.faults.clear()
    assert wb_get(sb, "/ping").status_code == 200
    records = [r for r in sb.request_log if r.fault]
    assert [(r.account, r.status, r.fault) for r in records[:2]] == [("wb-2", 500, "500")] * 2
    assert sb.request_counts()[("wb-2", ORDERS)] == 3


@pytest.mark.parametrize("kind, path, check", [
    ("429", SALES, lambda r: r.status_code == 429
     and {"X-Ratelimit-Retry", "X-Ratelimit-Limit", "X-Ratelimit-Reset"} <= r.headers.keys()),
    ("429_noheaders", SALES, lambda r: r.status_code == 429 and "X-Ratelimit-Retry" not in r.headers),
    ("500", ORDERS, lambda r: r.status_code == 500 and r.json()["status"] == 500),
    ("502", ORDERS, lambda r: r.status_code == 502),
    ("html", ORDERS, lambda r: r.status_code == 502 and r.text.startswith("<html>")),
    ("empty", ORDERS, lambda r: r.status_code == 200 and r.content == b""),
    ("204", WB_STOCKS, lambda r: r.status_code == 204 and r.content == b""),
    ("malformed", ORDERS, lambda r: r.status_code == 200 and not _parses(r.content)),
    ("missing_field", ORDERS, lambda r: r.json() and all("nmId" not in row for row in r.json())),
    ("wrong_type", WB_STOCKS, lambda r: all(i["quantity"] == "abc" for i in r.json()["data"]["items"])),
    ("deprecated", SALES, lambda r: r.status_code == 404 and "deprecated" in r.json()["detail"]),
    ("bad_key", ORDERS, lambda r: r.status_code == 401 and r.json()["title"] == "unauthorized"),
    ("wrong_category", WB_STOCKS, lambda r: r.status_code == 403
     and r.json()["detail"] == "scope is not allowed for this resource"),
    ("huge_page", ORDERS, lambda r: len(r.json()) == 50),
])
def test_wb_faults(fresh, kind, path, check):
    sb = fresh(wb_page_rows=5, huge_page_factor=10)
    sb.faults.add(Fault(kind=kind, endpoint=path))
    reply = (wb_post(sb, path, {}) if path == WB_STOCKS else wb_get(sb, path, dateFrom="2026-11-20"))
    assert check(reply)
    again = wb_post(sb, path, {}) if path == WB_STOCKS else wb_get(sb, path, dateFrom="2026-11-20")
    assert again.status_code == 200 and _parses(again.content)  # times=1: used up


@pytest.mark.parametrize("kind, path, check", [
    ("429", POSTINGS, lambda r: r.status_code == 429 and r.json()["code"] == 8),
    ("503", POSTINGS, lambda r: r.status_code == 503 and r.json()["message"]),
    ("circle_open", POSTINGS, lambda r: r.status_code == 503 and r.json()["message"] == "Circle is open"),
    ("bad_key", OZON_STOCKS, lambda r: r.status_code == 404 and r.json()["code"] == 5),
    ("wrong_category", RETURNS, lambda r: r.status_code == 403 and r.json()["code"] == 7),
    ("deprecated", POSTINGS, lambda r: r.status_code == 404),
    ("missing_field", POSTINGS, lambda r: all("quantity" not in product for p in r.json()["postings"]
                                               for product in p["products"])),
    ("wrong_type", OZON_STOCKS, lambda r: {i["available_stock_count"] for i in r.json()["items"]} == {"abc"}),
    ("huge_page", POSTINGS, lambda r: len(r.json()["postings"]) == 50 and r.json()["has_next"]),
])
def test_ozon_faults(fresh, kind, path, check):
    sb = fresh(huge_page_factor=10)
    sb.faults.add(Fault(kind=kind, endpoint=path, account="ozon-1"))
    body = {
        POSTINGS: {"filter": {"since": utc(START - timedelta(days=2)), "to": utc(START)}, "limit": 5},
        OZON_STOCKS: {"skus": [str(p.sku) for p in sb.seller.ozon("ozon-1").products]},
        RETURNS: {"limit": 5, "filter": {"logistic_return_date": {"time_from": "2026-11-01T00:00:00Z"}}},
    }[path]
    assert check(ozon_post(sb, path, body))
    assert ozon_post(sb, path, body, store=2).status_code == 200  # scoped to ozon-1


def test_timeout_and_reset_faults(fresh):
    sb = fresh(timeout_hold_seconds=0.6)
    sb.faults.add(Fault(kind="timeout", endpoint="/ping", times=2))
    with pytest.raises(requests.Timeout):
        requests.get(sb.url + "/ping", headers={"Authorization": sb.env()["WB_API_TOKEN"]}, timeout=0.2)
    started = time.monotonic()
    assert wb_get(sb, "/ping").status_code == 200
    assert time.monotonic() - started >= 0.55
    sb.faults.add(Fault(kind="reset", endpoint=POSTINGS))
    with pytest.raises(requests.ConnectionError):
        ozon_post(sb, POSTINGS, {"limit": 1})
    assert [r.status for r in sb.request_log if r.fault == "reset"] == [None]


def _parses(content: bytes) -> bool:
    try:
        json.loads(content)
    except ValueError:
        return False
    return True


# --- scale and command -----------------------------------------------------------------------

def test_big_seller_answers_lazily(fresh):
    sb = fresh(**{name: value for name, value in vars(SandboxConfig.big_seller()).items()
                  if name not in ("seed", "rate_limit_factor")})
    started = time.monotonic()
    orders = wb_get(sb, ORDERS, dateFrom="2026-11-26T11:00:00").json()
    postings = ozon_post(sb, POSTINGS, {"filter": {"since": utc(START - timedelta(hours=1)),
                                                   "to": utc(START)}, "limit": 100}).json()
    assert len(orders) > 500 and len(postings["postings"]) == 100
    assert len(sb.seller.wb("wb-1").products) == 3000
    assert time.monotonic() - started < 5


def test_command_prints_env_lines():
    result = CliRunner().invoke(sandbox_command, ["--print-env", "--port", "8999", "--ozon-accounts", "1"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.output.splitlines())
    assert lines["OZON_API_URL"] == "http://127.0.0.1:8999"
    assert lines["WB_API_TOKEN"].count(".") == 2 and "OZON_CLIENT_ID_2" not in lines
    bad = CliRunner().invoke(sandbox_command, ["--fault", "nonsense", "--print-env"])
    assert bad.exit_code == 2
