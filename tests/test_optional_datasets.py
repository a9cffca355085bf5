"""Optional datasets against the sandbox over HTTP: balances, the daily product catalogue (names,
WB sizes, Ozon SKU discovery), and how a refused category rests without costing the pass."""

import socket
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from collector.config import load_settings
from collector.pipeline import run_pass
from collector.sandbox import Fault, SandboxConfig
from collector.sandbox.auth import ANALYTICS, READ_ONLY, STATISTICS
from tests.conftest import SMALL_SELLER, collector_environ, table

BALANCE_COLUMNS = ("account, fetched_at, day, currency, current_kopecks, for_withdraw_kopecks, opening_kopecks, "
                   "accrued_kopecks, paid_kopecks, closing_kopecks")
WB_BALANCE, WB_CARDS = "/api/v1/account/balance", "/content/v2/get/cards/list"
OZON_BALANCE, OZON_LIST, OZON_INFO = "/v1/finance/balance", "/v3/product/list", "/v3/product/info/list"
OPTIONAL_PATHS = {WB_BALANCE, WB_CARDS, OZON_BALANCE, OZON_LIST, OZON_INFO}
METADATA = Path(__file__).resolve().parent.parent / "metadata.yml"


def balances(storage):
    return table(storage, f"SELECT {BALANCE_COLUMNS} FROM balances ORDER BY id")


def optional_requests(sandbox):
    return Counter((r.account, r.path) for r in sandbox.request_log if r.path in OPTIONAL_PATHS)


def test_balances_are_kopecks_written_only_when_a_figure_changes(sandbox, storage, collect, clock):
    result = collect()
    assert (result.status, result.exit_code) == ("ok", 0)
    # Hand-checked against the sandbox's answers at 12:00 MSK on 26.11:
    # wb-1 {"current": 157180.31, "for_withdraw": 125744.24};
    # ozon-1 total {opening_balance 44750.56, accrued 11056.63, payments [], closing_balance 55807.19};
    # ozon-2 total {opening_balance 107200.18, accrued 7968.81, payments [], closing_balance 115168.99}.
    noon = "2026-11-26T12:00:00+03:00"
    first = [("wb-1", noon, "2026-11-26", "RUB", 15718031, 12574424, None, None, None, None),
             ("ozon-1", noon, "2026-11-26", "RUB", None, None, 4475056, 1105663, 0, 5580719),
             ("ozon-2", noon, "2026-11-26", "RUB", None, None, 10720018, 796881, 0, 11516899)]
    assert sorted(balances(storage)) == sorted(first)
    clock.advance(minutes=10)
    collect()
    assert sorted(balances(storage)) == sorted(first)  # the same figures: no new rows
    clock.advance(days=1)
    collect()
    later = balances(storage)[3:]
    assert sorted(row[0] for row in later) == ["ozon-1", "ozon-2", "wb-1"]
    assert {row[1:3] for row in later} == {("2026-11-27T12:10:00+03:00", "2026-11-27")}
    ozon = [row for row in later if row[0] == "ozon-1"][0]
    assert ozon[9] == ozon[6] + ozon[7] - ozon[8]  # closing = opening + accrued - paid, to the kopeck


def test_the_balances_query_shows_the_latest_figures_in_roubles(sandbox, storage, collect, clock):
    collect()
    clock.advance(days=1)
    collect()
    sql = yaml.safe_load(METADATA.read_text(encoding="utf-8"))["databases"]["mp"]["queries"]["balances"]["sql"]
    conn = sqlite3.connect(storage.path)
    try:
        conn.create_function("mp_now", 0, lambda: "2026-11-27T13:00:00+03:00")
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        conn.close()
    assert [r["account"] for r in rows] == ["wb-1", "ozon-1", "ozon-2"]
    latest = {row[0]: row for row in balances(storage)}  # the last row of each account
    for r in rows:
        figures = latest[r["account"]][4:]
        shown = (r["current_rub"], r["for_withdraw_rub"], r["opening_rub"], r["accrued_rub"], r["paid_rub"],
                 r["closing_rub"])
        assert shown == tuple(None if k is None else round(k / 100, 2) for k in figures)
        assert r["changed_at"] == "2026-11-27T12:00:00+03:00" and r["period_day"] == "2026-11-27"
        assert r["checked_at"] is not None and r["currency"] == "RUB"
    wb = rows[0]
    assert (wb["opening_rub"], wb["closing_rub"]) == (None, None) and isinstance(wb["current_rub"], float)


def test_the_catalogue_runs_once_a_day_and_names_every_product(sandbox, storage, collect, clock):
    collect()
    first = optional_requests(sandbox)
    assert {k: v for k, v in first.items() if k[1] not in (WB_BALANCE, OZON_BALANCE)} == {
        ("wb-1", WB_CARDS): 1, ("ozon-1", OZON_LIST): 1, ("ozon-1", OZON_INFO): 1,
        ("ozon-2", OZON_LIST): 1, ("ozon-2", OZON_INFO): 1}
    # Every WB size of every card, by techSize, with the card's title, article and barcode.
    cabinet = sandbox.seller.wb("wb-1")
    expected = sorted((p.nm_id, s.tech_size, p.article, p.name, s.barcode) for p in cabinet.products for s in p.sizes)
    assert table(storage, "SELECT sku, size, article, name, barcode FROM products WHERE account = 'wb-1' "
                          "AND size IN (SELECT tech_size FROM sizes WHERE sizes.sku = products.sku) "
                          "ORDER BY sku, size, article") == expected
    assert table(storage, "SELECT sku, chrt_id, tech_size, barcode FROM sizes ORDER BY sku, chrt_id") == sorted(
        (p.nm_id, str(s.chrt_id), s.tech_size, s.barcode) for p in cabinet.products for s in p.sizes)
    store = sandbox.seller.ozon("ozon-1")
    listed = sorted((p.sku, p.offer_id, p.name, p.barcode) for p in store.products if not p.archived)
    assert table(storage, f"SELECT sku, article, name, barcode FROM products WHERE account = 'ozon-1' "
                          f"AND sku IN ({', '.join(str(row[0]) for row in listed)}) ORDER BY sku") == listed

    sandbox.clear_request_log()
    clock.advance(hours=23)
    collect()
    assert not [k for k in optional_requests(sandbox) if k[1] not in (WB_BALANCE, OZON_BALANCE)]
    clock.advance(hours=1)
    collect()
    assert {k for k in optional_requests(sandbox) if k[1] not in (WB_BALANCE, OZON_BALANCE)} == set(first) - {
        ("wb-1", WB_BALANCE), ("ozon-1", OZON_BALANCE), ("ozon-2", OZON_BALANCE)}


def test_wb_stock_sizes_move_from_chrt_id_to_tech_size_without_a_zero_row(sandbox, storage, collect, clock):
    collect(datasets=("stocks",))  # a database from before the catalogue: sizes by chrtId
    before = table(storage, "SELECT sku, size, warehouse, quantity FROM stock_current WHERE account = 'wb-1'")
    history = table(storage, "SELECT count(*) FROM stock WHERE account = 'wb-1'")
    stock_figures = ("SELECT day, sku, warehouse, stock_delta FROM daily_figures WHERE account = 'wb-1' "
                     "AND stock_delta != 0 ORDER BY 1, 2, 3")
    figures = table(storage, stock_figures)
    tech = {(p.nm_id, str(s.chrt_id)): s.tech_size for p in sandbox.seller.wb("wb-1").products for s in p.sizes}
    assert before and all((sku, size) in tech for sku, size, _, _ in before)
    collect()
    after = table(storage, "SELECT sku, size, warehouse, quantity FROM stock_current WHERE account = 'wb-1'")
    assert sorted(after) == sorted((sku, tech[sku, size], warehouse, qty) for sku, size, warehouse, qty in before)
    assert table(storage, "SELECT count(*) FROM stock WHERE account = 'wb-1'") == history  # nothing dropped to 0
    assert table(storage, "SELECT count(*) FROM stock WHERE account = 'wb-1' AND size NOT IN "
                          "(SELECT tech_size FROM sizes)") == [(0,)]
    assert figures and table(storage, stock_figures) == figures


def test_a_token_without_finance_and_content_rests_those_and_says_so(sandbox, tmp_path, storage, clock):
    token = sandbox.wb_token("wb-1", categories=(ANALYTICS, STATISTICS, READ_ONLY))
    settings = load_settings(None, collector_environ(sandbox, tmp_path, WB_API_TOKEN=token))
    result = run_pass(settings, storage, clock=clock.now)
    assert (result.status, result.exit_code) == ("ok", 0)
    # (the requestId WB adds is random: cut off)
    assert table(storage, "SELECT dataset, status, substr(error, 1, instr(error, ', requestId') - 1) FROM fetch_log "
                          "WHERE account = 'wb-1' AND dataset IN ('balance', 'catalog') ORDER BY dataset") == [
        ("balance", "failed", "wb-1 (Песочница WB 1) balance: GET /api/v1/account/balance: HTTP 401 Unauthorized: "
                              "token scope not allowed for this API route"),
        ("catalog", "failed", "wb-1 (Песочница WB 1) catalog: POST /content/v2/get/cards/list: "
                              "HTTP 401 Unauthorized: token scope not allowed for this API route")]
    assert table(storage, "SELECT dataset, note FROM source_notes WHERE account = 'wb-1' ORDER BY dataset") == [
        ("balance", "нет доступа: у токена нет категории «Финансы» — баланс не загружается; "
                    "проверим снова 27.11 в 12:00 (через 24 ч; ответ HTTP 401)"),
        ("catalog", "нет доступа: у токена нет категории «Контент» — названия товаров и размеров не обновляются, "
                    "товары показаны как есть; проверим снова 27.11 в 12:00 (через 24 ч; ответ HTTP 401)")]
    # Stock stays keyed by chrtId, as before the catalogue existed.
    assert table(storage, "SELECT count(*) FROM stock_current WHERE account = 'wb-1' AND size GLOB '[0-9]*[0-9][0-9][0-9][0-9]'") != [(0,)]

    sandbox.clear_request_log()
    clock.advance(hours=2)
    result = run_pass(settings, storage, clock=clock.now)
    assert (result.status, result.exit_code) == ("ok", 0)
    assert not [r for r in sandbox.request_log if r.path in (WB_BALANCE, WB_CARDS)]
    assert table(storage, "SELECT dataset, status, requests, error FROM fetch_log WHERE account = 'wb-1' "
                          "AND run_id = ? AND dataset IN ('balance', 'catalog') ORDER BY dataset", [result.run_id]) == [
        ("balance", "skipped", 0, None), ("catalog", "skipped", 0, None)]
    freshness = table(storage, "SELECT dataset, status, note IS NOT NULL FROM source_freshness WHERE account = 'wb-1' "
                               "AND dataset IN ('balance', 'catalog') ORDER BY dataset")
    assert freshness == [("balance", "skipped", 1), ("catalog", "skipped", 1)]

    # The rest over, a token that now has both categories is asked again, and the notes go.
    clock.advance(hours=22)
    settings = load_settings(None, collector_environ(sandbox, tmp_path))
    result = run_pass(settings, storage, clock=clock.now)
    assert {(r.dataset, r.status) for r in result.datasets if r.account == "wb-1"} >= {("balance", "ok"),
                                                                                       ("catalog", "ok")}
    assert table(storage, "SELECT count(*) FROM source_notes WHERE account = 'wb-1'") == [(0,)]


@pytest.mark.parametrize("kind, status", [("wrong_category", 403), ("bad_key", 404)])
def test_an_ozon_key_refused_the_balance_rests_it_and_the_exit_code_stays_0(sandbox, storage, collect, clock,
                                                                           kind, status):
    sandbox.faults.add(Fault(kind, endpoint=OZON_BALANCE, account="ozon-2", times=None))
    result = collect()
    assert (result.status, result.exit_code) == ("ok", 0)
    assert table(storage, "SELECT note FROM source_notes WHERE account = 'ozon-2'") == [
        ("нет доступа: у API-ключа нет доступа к разделу «Финансы» — баланс не загружается; "
         f"проверим снова 27.11 в 12:00 (через 24 ч; ответ HTTP {status})",)]
    assert [r.fault for r in sandbox.request_log if r.path == OZON_BALANCE and r.account == "ozon-2"] == [kind]
    assert table(storage, "SELECT account FROM balances ORDER BY account") == [("ozon-1",), ("wb-1",)]


def test_a_transient_balance_failure_is_retried_next_pass_without_a_rest(sandbox, storage, collect, clock):
    sandbox.faults.add(Fault("500", endpoint=WB_BALANCE, account="wb-1", times=None))
    result = collect()
    assert (result.status, result.exit_code) == ("ok", 0)
    # one attempt a pass (optional.ATTEMPTS): the next pass is the retry
    assert [(r.status, r.requests) for r in result.datasets if r.dataset == "balance" and r.account == "wb-1"] \
        == [("failed", 1)]
    assert table(storage, "SELECT count(*) FROM source_notes") == [(0,)]
    sandbox.faults.clear()
    clock.advance(minutes=10)
    collect()
    assert table(storage, "SELECT account FROM balances WHERE account = 'wb-1'") == [("wb-1",)]


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(seed=1, rate_limit_factor=0.001, wb_refresh_minutes=1,
                                                          ozon_split_sku_every=3, **SMALL_SELLER)])
def test_ozon_stock_is_asked_by_the_fbo_sku_where_it_is_not_the_listed_one(sandbox, storage, collect, clock):
    store = sandbox.seller.ozon("ozon-1")
    split = [p for i, p in enumerate(store.products) if i % 3 == 0 and not p.archived]
    assert split
    collect()
    stock = {k: v for k, v in sandbox.seller.stock_units("ozon-1", clock.now()).items() if v}
    assert {(sku, warehouse): qty for sku, warehouse, qty in table(
        storage, "SELECT sku, warehouse, quantity FROM stock_current WHERE account = 'ozon-1' AND quantity > 0")} \
        == stock
    assert {p.sku for p in split} <= {sku for (sku,) in table(storage, "SELECT sku FROM products")}
    assert not {p.sku + 5_000_000_000 for p in split} & {sku for (sku,) in table(storage, "SELECT sku FROM products")}


def test_an_ozon_key_refused_the_product_list_still_gets_stock_of_the_skus_it_sells(sandbox, storage, collect,
                                                                                    clock):
    sandbox.faults.add(Fault("wrong_category", endpoint=OZON_LIST, account="ozon-1", times=None))
    result = collect()
    assert (result.status, result.exit_code) == ("ok", 0)
    assert {(r.dataset, r.status) for r in result.datasets if r.account == "ozon-1"} == {
        ("catalog", "failed"), ("stocks", "ok"), ("orders", "ok"), ("sales", "ok"), ("balance", "ok")}
    assert table(storage, "SELECT note FROM source_notes WHERE account = 'ozon-1'") == [(
        "нет доступа: у API-ключа нет доступа к товарам — названия товаров и размеров не обновляются, товары "
        "показаны как есть; проверим снова 27.11 в 12:00 (через 24 ч; ответ HTTP 403)",)]
    clock.advance(minutes=10)
    sandbox.clear_request_log()
    collect()
    assert not [r for r in sandbox.request_log if r.path == OZON_LIST]  # resting: stock does not list either
    sold = {sku for (sku,) in table(storage, "SELECT DISTINCT sku FROM orders WHERE account = 'ozon-1'")}
    stock = {k: v for k, v in sandbox.seller.stock_units("ozon-1", clock.now()).items() if v and k[0] in sold}
    assert stock and {(sku, warehouse): qty for sku, warehouse, qty in table(
        storage, "SELECT sku, warehouse, quantity FROM stock_current WHERE account = 'ozon-1' AND quantity > 0")} \
        == stock


def test_ozon_stock_alone_lists_the_products_when_the_catalogue_never_ran(sandbox, storage, collect, clock):
    result = collect(datasets=("stocks",))
    assert result.status == "ok"
    assert Counter(r.path for r in sandbox.request_log if r.account == "ozon-1") == {
        OZON_LIST: 1, OZON_INFO: 1, "/v1/analytics/stocks": 1}
    stock = {k: v for k, v in sandbox.seller.stock_units("ozon-1", clock.now()).items() if v}
    assert {(sku, warehouse): qty for sku, warehouse, qty in table(
        storage, "SELECT sku, warehouse, quantity FROM stock_current WHERE account = 'ozon-1' AND quantity > 0")} \
        == stock


def test_a_dataset_named_by_hand_runs_at_once_resting_or_not_due(sandbox, tmp_path, storage, clock):
    token = sandbox.wb_token("wb-1", categories=(ANALYTICS, STATISTICS, READ_ONLY))
    run_pass(load_settings(None, collector_environ(sandbox, tmp_path, WB_API_TOKEN=token)), storage, clock=clock.now)
    assert table(storage, "SELECT count(*) FROM source_notes WHERE account = 'wb-1'") == [(2,)]
    clock.advance(minutes=5)
    settings = load_settings(None, collector_environ(sandbox, tmp_path))  # the token now has Finance
    result = run_pass(settings, storage, clock=clock.now, datasets=("balance", "catalog"))
    assert {(r.account, r.dataset, r.status) for r in result.datasets if r.account == "wb-1"} == {
        ("wb-1", "balance", "ok"), ("wb-1", "catalog", "ok")}
    assert table(storage, "SELECT count(*) FROM source_notes WHERE account = 'wb-1'") == [(0,)]
    sandbox.clear_request_log()
    run_pass(settings, storage, clock=clock.now, datasets=("catalog",))  # not due, but asked for
    assert optional_requests(sandbox)[("wb-1", WB_CARDS)] == 1


def test_the_real_wb_hosts_are_never_asked_when_the_others_point_elsewhere(sandbox, tmp_path, storage, clock):
    """WB_STATISTICS_URL and WB_ANALYTICS_URL lead to a test double (here the sandbox) while
    WB_FINANCE_URL and WB_CONTENT_URL are left unset: their datasets are skipped with a note
    naming the variable, rather than asking the real marketplace, and the pass stays ok."""
    environ = {k: v for k, v in collector_environ(sandbox, tmp_path).items()
               if k not in ("WB_FINANCE_URL", "WB_CONTENT_URL")}
    result = run_pass(load_settings(None, environ), storage, clock=clock.now)
    assert (result.status, result.exit_code) == ("ok", 0)
    assert {(r.dataset, r.status, r.requests) for r in result.datasets if r.account == "wb-1"
            and r.dataset in ("balance", "catalog")} == {("balance", "skipped", 0), ("catalog", "skipped", 0)}
    assert table(storage, "SELECT dataset, note FROM source_notes WHERE account = 'wb-1' ORDER BY dataset") == [
        ("balance", "не задан адрес WB_FINANCE_URL, а WB_STATISTICS_URL и WB_ANALYTICS_URL ведут не на WB — "
                    "баланс не загружается; задайте WB_FINANCE_URL"),
        ("catalog", "не задан адрес WB_CONTENT_URL, а WB_STATISTICS_URL и WB_ANALYTICS_URL ведут не на WB — "
                    "названия товаров и размеров не обновляются, товары показаны как есть; задайте WB_CONTENT_URL")]


def test_an_unreachable_optional_host_costs_one_attempt_not_minutes(sandbox, tmp_path, storage, clock):
    """Nothing listens at the balance's host: the pass is still ok, and the balance fails after one
    request; retrying would wait out the backoff and WB's pacing of the balance (1 a minute) for
    minutes. Real pacing (RATE_LIMIT_FACTOR 1), so only the balance runs."""
    with socket.socket() as probe:  # a free port on loopback: connections to it are refused
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    environ = collector_environ(sandbox, tmp_path, WB_FINANCE_URL=dead, MAX_RETRY_WAIT="300", RATE_LIMIT_FACTOR="1")
    started = time.monotonic()
    result = run_pass(load_settings(None, environ), storage, datasets=("balance",), clock=clock.now)
    assert time.monotonic() - started < 10
    assert (result.status, result.exit_code) == ("ok", 0)
    (balance,) = [r for r in result.datasets if r.account == "wb-1"]
    assert balance.status == "failed" and "refused" in balance.error
    assert (balance.requests, balance.retries) == (1, 0)
