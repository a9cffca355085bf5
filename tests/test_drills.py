"""Drills: each API change WB or Ozon has made (or announced), played against the sandbox over real
HTTP. Each ends with a plain message on the freshness page and the rest of the pass saved.

docs/API-CHANGES.md lists the changes; the order-feed switch itself is in tests/test_order_feed.py.
"""

import asyncio
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
import yaml
from datasette.app import Datasette

from collector.config import load_settings
from collector.pipeline import run_pass
from collector.sandbox import Fault, SandboxConfig
from collector.sandbox.auth import READ_ONLY, STATISTICS
from collector.sandbox.clock import day_number, to_us
from tests.conftest import NOON_MSK, SMALL_SELLER, collector_environ, table

METADATA = Path(__file__).resolve().parent.parent / "metadata.yml"
TODAY = date(2026, 11, 26)
STOCKS_REMOVED = "/api/v1/supplier/stocks"
V2_POSTINGS = "/v2/posting/fbo/list"
V3_POSTINGS = "/v3/posting/fbo/list"
WB_WAREHOUSES = "/api/analytics/v1/stocks-report/wb-warehouses"
REQUIRED = ("stocks", "orders", "sales")


def freshness(db_path: Path) -> dict[tuple[str, str], dict]:
    """The `freshness` canned query as the viewer serves it: {(account, dataset): row}."""
    datasette = Datasette([str(db_path)], metadata=yaml.safe_load(METADATA.read_text(encoding="utf-8")))
    asyncio.run(datasette.invoke_startup())
    response = asyncio.run(datasette.client.get("/mp/freshness.json?_shape=objects"))
    assert response.status_code == 200, response.text
    return {(row["account"], row["dataset"]): row for row in response.json()["rows"]}


def required_saved(page: dict, but: tuple[str, str]) -> None:
    """Every required dataset of every account succeeded, except the drilled one."""
    assert {key: row["status"] for key, row in page.items() if key[1] in REQUIRED and key != but} == {
        key: "ok" for key in page if key[1] in REQUIRED and key != but}


def test_wb_supplier_stocks_is_removed_and_stock_comes_from_wb_warehouses(sandbox, settings, storage, collect,
                                                                            clock):
    """WB removed supplier/stocks (23.06.2026): it answers 404 "deprecated"; stock comes from
    wb-warehouses and the removed method is never asked."""
    answer = requests.get(sandbox.url + STOCKS_REMOVED, params={"dateFrom": "2026-11-26"},
                          headers={"Authorization": sandbox.env()["WB_API_TOKEN"]}, timeout=5)
    assert answer.status_code == 404 and "deprecated" in answer.json()["detail"]
    sandbox.clear_request_log()
    assert collect().status == "ok"
    assert not [r for r in sandbox.request_log if r.path == STOCKS_REMOVED and r.account == "wb-1"]
    truth = {k: v for k, v in sandbox.seller.stock_units("wb-1", clock.now()).items() if v}
    assert sum(v for (v,) in table(storage, "SELECT quantity FROM stock_current WHERE account = 'wb-1'")) \
        == sum(truth.values()) > 0
    assert freshness(settings.database_path)["wb-1", "stocks"]["status"] == "ok"


def test_wb_stock_method_removed_fails_stocks_plainly_and_saves_the_rest(sandbox, settings, storage, collect):
    """Should wb-warehouses go the way of supplier/stocks: the stock dataset fails with WB's own
    words, the rest of the pass is saved, and the earlier stock stays as it was."""
    collect()
    before = table(storage, "SELECT * FROM stock_current WHERE account = 'wb-1' ORDER BY sku, size")
    time.sleep(0.1)  # the sandbox's wb-warehouses limit, 1 in 20 s scaled down
    sandbox.faults.add(Fault("deprecated", endpoint=WB_WAREHOUSES, account="wb-1", times=None))
    assert collect().status == "partial"
    page = freshness(settings.database_path)
    error = page["wb-1", "stocks"]["last_error"]
    assert page["wb-1", "stocks"]["status"] == "failed"
    assert "HTTP 404" in error and "the method is removed or deprecated" in error and "release-notes?id=494" in error
    assert page["wb-1", "stocks"]["note"] == (
        f"маркетплейс отключил метод POST {WB_WAREHOUSES}; прежние данные сохранены, что сделать: обновите MP Dashboard")
    required_saved(page, but=("wb-1", "stocks"))
    assert table(storage, "SELECT * FROM stock_current WHERE account = 'wb-1' ORDER BY sku, size") == before


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(seed=1, rate_limit_factor=0.001, wb_refresh_minutes=1,
                                                          wb_statistics_off_at=NOON_MSK + timedelta(hours=3), **SMALL_SELLER)])
def test_wb_statistics_switched_off_mid_day_moves_to_the_order_feed(sandbox, settings, storage, collect, clock):
    """WB switches supplier/orders and supplier/sales off at 15:00: the 17:00 pass moves to the
    order feed, and by evening the day's figures equal the seller's, none doubled or lost."""
    assert collect().status == "ok"
    clock.advance(hours=5)
    assert collect().status == "ok"
    page = freshness(settings.database_path)
    assert page["wb-1", "orders"]["note"] == page["wb-1", "sales"]["note"] == (
        "заказы и продажи идут из order-feed: WB отключил supplier/orders (404) 2026-11-26")
    required_saved(page, but=())
    truth = sandbox.seller.wb("wb-1").units_by_event(day_number(TODAY), to_us(clock.now()))
    assert wb_figures(storage, TODAY) == {k: dict(v) for k, v in truth.items()}


def wb_figures(storage, day: date) -> dict[str, dict[int, int]]:
    figures = {}
    for measure, sql in (
            ("ordered", "SELECT sku, count(*) FROM orders WHERE account = 'wb-1' AND day = ? AND is_cancelled = 0 "
                        "GROUP BY sku"),
            ("bought", "SELECT sku, count(*) FROM sales WHERE account = 'wb-1' AND kind = 'sale' AND day = ? "
                       "GROUP BY sku"),
            ("returned", "SELECT sku, count(*) FROM sales WHERE account = 'wb-1' AND kind = 'return' AND day = ? "
                         "GROUP BY sku")):
        figures[measure] = dict(table(storage, sql, [day.isoformat()]))
    return figures


def test_ozon_v2_postings_are_switched_off_and_v3_is_used(sandbox, settings, storage, collect):
    """Ozon switched /v2/posting/fbo/list off: it answers 404; the collector reads v3 only."""
    answer = requests.post(sandbox.url + V2_POSTINGS, json={"dir": "ASC", "limit": 10},
                           headers={"Client-Id": sandbox.env()["OZON_CLIENT_ID_1"],
                                    "Api-Key": sandbox.env()["OZON_API_KEY_1"]}, timeout=5)
    assert answer.status_code == 404 and "switched off" in answer.text
    sandbox.clear_request_log()
    assert collect().status == "ok"
    paths = {r.path for r in sandbox.request_log}
    assert V3_POSTINGS in paths and V2_POSTINGS not in paths


def test_ozon_v3_postings_switched_off_too_fail_orders_plainly(sandbox, settings, storage, collect):
    """Should v3 follow v2: the store's orders fail with Ozon's words, everything else is saved."""
    sandbox.faults.add(Fault("deprecated", endpoint=V3_POSTINGS, account="ozon-1", times=None))
    assert collect().status == "partial"
    page = freshness(settings.database_path)
    assert page["ozon-1", "orders"]["status"] == "failed"
    assert "HTTP 404" in page["ozon-1", "orders"]["last_error"]
    assert "switched off" in page["ozon-1", "orders"]["last_error"]
    assert page["ozon-1", "orders"]["note"].startswith(f"маркетплейс отключил метод POST {V3_POSTINGS}")
    required_saved(page, but=("ozon-1", "orders"))


def test_a_wb_token_without_analytics_fails_stock_plainly_and_saves_the_rest(sandbox, tmp_path, storage, clock):
    """A token issued without the Analytics category: WB answers 403 "scope is not allowed for
    this resource" (api/examples/wb/error_403_token_category_example.json) on the analytics host."""
    token = sandbox.wb_token("wb-1", categories=(STATISTICS, READ_ONLY))  # no Analytics
    settings = load_settings(None, collector_environ(sandbox, tmp_path, WB_API_TOKEN=token))
    sandbox.faults.add(Fault("wrong_category", endpoint=WB_WAREHOUSES, account="wb-1", times=None))
    result = run_pass(settings, storage, clock=clock.now)
    assert result.status == "partial"
    page = freshness(settings.database_path)
    assert page["wb-1", "stocks"]["status"] == "failed"
    assert "HTTP 403" in page["wb-1", "stocks"]["last_error"]
    assert "scope is not allowed for this resource" in page["wb-1", "stocks"]["last_error"]
    assert token not in page["wb-1", "stocks"]["last_error"]
    assert page["wb-1", "stocks"]["note"] == (
        "WB не принял токен: у него нет категории «Аналитика», или он отозван или истёк; что сделать: "
        "выпустите токен с категориями «Статистика» и «Аналитика» (WB_API_TOKEN)")
    required_saved(page, but=("wb-1", "stocks"))
    # A token with both categories: the next pass saves stock and the note goes.
    fixed = load_settings(None, collector_environ(sandbox, tmp_path))
    sandbox.faults.clear()
    time.sleep(0.1)
    assert run_pass(fixed, storage, clock=clock.now).status == "ok"
    assert freshness(settings.database_path)["wb-1", "stocks"]["note"] is None
