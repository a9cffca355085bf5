"""The WB order feed (POST /api/analytics/v1/order-feed): the sandbox serves it as
api/wildberries.md describes, the collector reads it into orders and sales, and WB_ORDERS_SOURCE=auto
moves a cabinet onto it when WB switches statistics off, with nothing doubled or lost."""

import json
import logging
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from collector.checks import check_accounts
from collector.config import load_settings
from collector.pipeline import run_pass
from collector.records import BadRecord
from collector.sandbox import Sandbox, SandboxConfig
from collector.sandbox.auth import BASE, READ_ONLY
from collector.sandbox.auth import STATISTICS as STATISTICS_CATEGORY
from collector.sandbox.clock import day_number, to_us
from collector.storage import Storage
from collector.timeutil import MOSCOW
from collector.wb import normalize as wb_norm
from tests.conftest import NOON_MSK, collector_environ, table
from tests.test_drills import freshness, wb_figures

EXAMPLES = Path("/work/shared/api/examples/wb")
FEED = "/api/analytics/v1/order-feed"
STATISTICS = ("/api/v1/supplier/orders", "/api/v1/supplier/sales")
TODAY = date(2026, 11, 26)
SWITCH_NOTE = "заказы и продажи идут из order-feed: WB отключил supplier/orders (404) 2026-11-26"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    # WB only: the order feed is all these tests are about.
    return SandboxConfig(seed=1, rate_limit_factor=0.001, wb_refresh_minutes=1, ozon_accounts=0)


def post_feed(sandbox, body: dict, token: str | None = None) -> requests.Response:
    return requests.post(sandbox.url + FEED, json=body, timeout=5,
                         headers={"Authorization": token or sandbox.env()["WB_API_TOKEN"]})


def feed_body(start: str = "2026-11-26T00:00:00+03:00", **pagination) -> dict:
    return {"selectedPeriod": {"start": start}, "pagination": pagination}


def feed_env(sandbox, tmp_path, source: str, **extra):
    return load_settings(None, collector_environ(sandbox, tmp_path, WB_ORDERS_SOURCE=source, **extra))


# -- the sandbox serves the feed as the reference describes ---------------------------------------

def test_pages_repeat_the_first_snapshot_and_walk_it_by_offset(sandbox, clock):
    first = post_feed(sandbox, feed_body(limit=40)).json()["data"]
    assert first["currency"] == "RUB" and first["snapshotTime"] == "2026-11-26T09:00:00Z"
    pages, offset = [first["orders"]], 40
    clock.advance(hours=1)  # orders placed meanwhile stay out of the snapshot's pages
    while len(pages[-1]) == 40:
        time.sleep(0.07)  # 1 request a minute, scaled down
        pages.append(post_feed(sandbox, feed_body(limit=40, offset=offset,
                                                  snapshotTime=first["snapshotTime"])).json()["data"]["orders"])
        offset += 40
    rows = [row for page in pages for row in page]
    assert len(pages) > 2 and len({row["srid"] for row in rows}) == len(rows)
    assert all("2026-11-26T00:00:00+03:00" <= row["updatedAt"] <= "2026-11-26T12:00:00+03:00" for row in rows)
    assert set(rows[0]) == set(json.loads((EXAMPLES / "order_feed_example.json").read_text())["data"]["orders"][0])


def test_the_feed_and_supplier_orders_describe_the_same_orders(sandbox, clock):
    feed = post_feed(sandbox, feed_body(limit=10_000)).json()["data"]["orders"]
    orders = {row["srid"]: row for row in sandbox.seller.wb_orders("wb-1", clock.now())}
    # supplier/orders publishes on its refresh grid (1 minute here): rows settled before 11:55
    created_today = [row for row in feed if row["createdAt"] >= "2026-11-26" and row["updatedAt"] < "2026-11-26T11:55"]
    assert created_today
    for row in created_today:
        order = orders[row["srid"]]
        assert (row["nmId"], row["sellerPrice"], row["warehouseName"]) == (
            order["nmId"], order["priceWithDisc"], order["warehouseName"])
        assert (row["status"] == "cancel") == order["isCancel"]


@pytest.mark.parametrize("body, detail", [
    ({"pagination": {"limit": 10}}, "selectedPeriod.start: field required"),
    (feed_body(limit=10_001), "limit: must be from 1 to 10000"),
    (feed_body(start="2026-10-20T00:00:00+03:00"), "selectedPeriod.start: not earlier than 31 days ago"),
    (feed_body(start="yesterday"), "selectedPeriod.start: not a valid date-time"),
])
def test_a_bad_request_gets_the_analytics_400(sandbox, body, detail):
    answer = post_feed(sandbox, body)
    assert answer.status_code == 400
    assert set(answer.json()) == {"title", "detail", "requestId", "origin"} and detail in answer.json()["detail"]


def test_one_request_a_minute_and_a_base_token_once_in_three_hours(clock):
    with Sandbox(SandboxConfig(seed=1, ozon_accounts=0), clock=clock) as sandbox:
        assert post_feed(sandbox, feed_body()).status_code == 200
        refused = post_feed(sandbox, feed_body())
        assert refused.status_code == 429 and refused.json()["detail"].startswith("limited by")
        assert 55 <= int(refused.headers["X-Ratelimit-Retry"]) <= 60 and refused.headers["X-Ratelimit-Limit"] == "1"
        base = sandbox.wb_token("wb-1", token_type=BASE)
        assert post_feed(sandbox, feed_body(), base).status_code == 200  # Base may call it, unlike wb-warehouses
        refused = post_feed(sandbox, feed_body(), base)
        assert refused.status_code == 429 and int(refused.headers["X-Ratelimit-Retry"]) > 3 * 3600 - 60


# -- normalising ------------------------------------------------------------------------------

def test_the_official_example_reads_as_a_cancelled_order_line():
    (row,) = json.loads((EXAMPLES / "order_feed_example.json").read_text())["data"]["orders"]
    line = wb_norm.feed_order_line(row, "wb-1", MOSCOW)
    assert (line.order_id, line.sku, line.day, line.status, line.is_cancelled, line.quantity) == (
        "7513432034713632943.1.0", 47254354, "2026-06-24", "cancelled", 1, 1)
    assert (line.ordered_at, line.cancelled_at, line.price_kopecks) == (
        "2026-06-24T12:57:26+03:00", "2026-06-26T19:19:38+03:00", 432800)
    assert wb_norm.feed_sale_events(row, "wb-1", MOSCOW) == []


def test_a_buyout_is_a_sale_and_a_return_a_return_dated_by_updated_at():
    row = {"nmId": 1, "chrtId": 2, "srid": "s.1.0", "createdAt": "2026-11-25T23:30:00+03:00",
           "updatedAt": "2026-11-26T02:15:00+03:00", "status": "buyout", "sellerPrice": 1284.01}
    (sale,) = wb_norm.feed_sale_events(row, "wb-1", MOSCOW)
    assert (sale.kind, sale.sale_id, sale.order_id, sale.day, sale.amount_kopecks) == (
        "sale", "s.1.0", "s.1.0", "2026-11-26", 128401)
    # Vladivostok: the same instant falls on the 26th at 09:15; the order on the 26th at 06:30.
    assert wb_norm.feed_order_line(row, "wb-1", MOSCOW).day == "2026-11-25"
    assert wb_norm.feed_order_line(row, "wb-1", ZoneInfo("Asia/Vladivostok")).day == "2026-11-26"
    undone, returned = wb_norm.feed_sale_events({**row, "status": "returnDefective"}, "wb-1", MOSCOW)
    assert (returned.kind, returned.day) == ("return", "2026-11-26")
    assert (undone.kind, undone.day, undone.sold_at) == ("sale", None, None)  # counts on no day
    with pytest.raises(BadRecord, match="status='lost'"):
        wb_norm.feed_order_line({**row, "status": "lost"}, "wb-1", MOSCOW)


# -- the collector on the feed ------------------------------------------------------------------

def test_the_feed_source_gives_the_same_figures_as_the_seller(sandbox, tmp_path, storage, clock):
    settings = feed_env(sandbox, tmp_path, "order-feed", WB_PAGE_ROWS="50")
    assert run_pass(settings, storage, clock=clock.now).status == "ok"
    truth = sandbox.seller.wb("wb-1").units_by_event(day_number(TODAY), to_us(clock.now()))
    assert wb_figures(storage, TODAY) == {k: dict(v) for k, v in truth.items()}
    paths = Counter(r.path for r in sandbox.request_log)
    assert paths[FEED] > 2 and not any(paths[p] for p in STATISTICS)  # pages of 50; orders and sales share them
    assert freshness(settings.database_path)["wb-1", "orders"]["note"] == (
        "заказы и продажи идут из order-feed: так задано в WB_ORDERS_SOURCE")
    assert table(storage, "SELECT DISTINCT substr(ordered_at, -6) FROM orders") == [("+03:00",)]


def test_a_later_pass_continues_from_the_watermark_with_one_request(sandbox, tmp_path, storage, clock):
    settings = feed_env(sandbox, tmp_path, "order-feed")
    run_pass(settings, storage, clock=clock.now)
    clock.advance(hours=3)
    time.sleep(0.07)
    sandbox.clear_request_log()
    run_pass(settings, storage, clock=clock.now)
    assert [(r.path, r.status) for r in sandbox.request_log if r.path == FEED] == [(FEED, 200)]
    watermark = datetime.fromisoformat(storage.watermark("wb-1", "orders"))
    assert clock.now() - timedelta(minutes=5) < watermark <= clock.now()


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(
    seed=1, rate_limit_factor=0.001, wb_refresh_minutes=1, ozon_accounts=0,
    wb_statistics_off_at=NOON_MSK + timedelta(hours=1))])
def test_auto_switches_once_remembers_and_never_doubles_a_sale(sandbox, settings, storage, collect, clock, caplog):
    collect()
    statistics_sales = table(storage, "SELECT count(*) FROM sales")[0][0]
    clock.advance(hours=2)
    with caplog.at_level(logging.WARNING):
        collect()
        sandbox.clear_request_log()
        for _ in range(12):  # two days of passes every 4 hours: the buyouts of today's orders come from the feed
            clock.advance(hours=4)
            time.sleep(0.07)
            collect()
    assert [r.message for r in caplog.records if "order feed from now on" in r.message] == [
        "wb-1: GET /api/v1/supplier/orders answered HTTP 404 (the method is gone): "
        "orders and sales come from the order feed from now on"]
    assert not [r for r in sandbox.request_log if r.path in STATISTICS]  # remembered
    assert table(storage, "SELECT count(*) FROM sales WHERE sale_id LIKE 'S%'")[0][0] <= statistics_sales
    assert table(storage, "SELECT order_id, kind FROM sales GROUP BY order_id, kind HAVING count(*) > 1") == []
    now = to_us(clock.now())
    for day in (TODAY, TODAY + timedelta(days=1), TODAY + timedelta(days=2)):
        truth = sandbox.seller.wb("wb-1").units_by_event(day_number(day), now)
        assert wb_figures(storage, day) == {k: dict(v) for k, v in truth.items()}, day
    assert freshness(settings.database_path)["wb-1", "sales"]["note"] == SWITCH_NOTE


def test_back_on_statistics_after_the_feed_nothing_counts_twice(sandbox, tmp_path, storage, clock):
    run_pass(feed_env(sandbox, tmp_path, "order-feed"), storage, clock=clock.now)
    assert table(storage, "SELECT count(*) FROM sales WHERE sale_id = order_id")[0][0] > 0
    clock.advance(minutes=30)
    time.sleep(0.07)
    assert run_pass(feed_env(sandbox, tmp_path, "statistics"), storage, clock=clock.now).status == "ok"
    assert table(storage, "SELECT order_id, kind FROM sales GROUP BY order_id, kind HAVING count(*) > 1") == []
    truth = sandbox.seller.bought_units("wb-1", TODAY, clock.now())  # the S rows published by now
    assert wb_figures(storage, TODAY)["bought"] == {k: v for k, v in truth.items() if v}
    assert freshness(storage.path)["wb-1", "sales"]["note"] is None


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(
    seed=1, rate_limit_factor=0.001, wb_refresh_minutes=1, ozon_accounts=0, wb_statistics_off_at=NOON_MSK)])
def test_statistics_gone_and_no_feed_either_says_both_and_switches_nothing(sandbox, tmp_path, storage, clock):
    token = sandbox.wb_token("wb-1", categories=(STATISTICS_CATEGORY, READ_ONLY))  # no Analytics
    settings = load_settings(None, collector_environ(sandbox, tmp_path, WB_API_TOKEN=token))
    result = run_pass(settings, storage, clock=clock.now, datasets=("orders",))
    (error,) = [r.error for r in result.datasets]
    assert error.startswith("wb-1 (Песочница WB 1) orders: POST /api/analytics/v1/order-feed: HTTP 401")
    assert error.endswith("(the order feed was tried because GET /api/v1/supplier/orders answered HTTP 404: "
                          "the method is gone)")
    assert storage.state("wb_orders_source:wb-1") is None and token not in error


def test_statistics_mode_never_switches(tmp_path, clock):
    config = SandboxConfig(seed=1, rate_limit_factor=0.001, ozon_accounts=0, wb_statistics_off_at=NOON_MSK)
    with Sandbox(config, clock=clock) as sandbox:
        settings = feed_env(sandbox, tmp_path, "statistics")
        storage = Storage(settings.database_path)
        storage.migrate()
        result = run_pass(settings, storage, clock=clock.now, datasets=("orders",))
        assert result.status == "failed" and "HTTP 404" in result.datasets[0].error
        assert not [r for r in sandbox.request_log if r.path == FEED]
        storage.close()


# -- check ----------------------------------------------------------------------------------

def test_check_names_the_source_and_warns_of_a_base_token(sandbox, tmp_path, clock):
    environ = collector_environ(sandbox, tmp_path, WB_API_TOKEN=sandbox.wb_token("wb-1", token_type=BASE))
    lines = [line for line, ok in check_accounts(load_settings(None, environ), clock.now()) if not ok]
    assert any("Base token" in line and "order feed" in line and "once per 3 hours" in line
               and "HTTP 429" in line for line in lines)


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(
    seed=1, rate_limit_factor=0.001, wb_refresh_minutes=1, ozon_accounts=0, wb_statistics_off_at=NOON_MSK)])
def test_check_says_the_cabinet_moved_to_the_feed(sandbox, settings, storage, collect, clock):
    assert [line for line, _ in check_accounts(settings, clock.now()) if "order feed" in line] == []
    collect(datasets=("orders",))
    assert f"wb-1 (Песочница WB 1): orders and sales come from the order feed since WB switched statistics off: " \
           f"{SWITCH_NOTE}" in [line for line, ok in check_accounts(settings, clock.now()) if ok]


def test_the_sandbox_and_the_demo_can_switch_statistics_off():
    from click.testing import CliRunner

    from collector.cli import cli
    for command in ("sandbox", "demo"):
        help_text = CliRunner().invoke(cli, [command, "--help"]).output
        assert "--wb-statistics-off-in MINUTES" in help_text, command
