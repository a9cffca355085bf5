"""The collector against the sandbox over real HTTP: what a pass saves, and what it never does."""

import sqlite3
from collections import Counter
from contextlib import closing
from datetime import date

import pytest

from collector.config import load_settings
from collector.pipeline import DATASETS, run_pass
from collector.sandbox import Fault, SandboxConfig
from collector.sandbox.clock import to_us
from collector.storage import Storage, StorageError
from tests.conftest import SMALL_SELLER, collector_environ, table

TODAY = date(2026, 11, 26)
ACCOUNTS = ("wb-1", "ozon-1", "ozon-2")
COUNTED = "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM sales), (SELECT count(*) FROM stock)"


def ordered_today(storage, account):
    return dict(table(storage, "SELECT sku, sum(quantity) FROM orders WHERE account = ? AND day = ? "
                               "AND is_cancelled = 0 GROUP BY sku", [account, TODAY.isoformat()]))


def current_stock(storage, account):
    rows = table(storage, "SELECT sku, size, warehouse, quantity FROM stock_current WHERE account = ?", [account])
    if account.startswith("wb"):
        return {(sku, size): qty for sku, size, _, qty in rows}
    return {(sku, warehouse): qty for sku, _, warehouse, qty in rows}


def seller_stock(sandbox, account, t):
    """The sandbox's stock figures, WB sizes named by techSize as the product cards map them."""
    units = sandbox.seller.stock_units(account, t)
    if account.startswith("wb"):
        tech = {(p.nm_id, s.chrt_id): s.tech_size for p in sandbox.seller.wb(account).products for s in p.sizes}
        return {(sku, tech[sku, chrt]): qty for (sku, chrt), qty in units.items()}
    return units


def test_a_pass_saves_every_account_and_dataset_and_matches_the_seller(sandbox, storage, collect, clock):
    result = collect()
    assert (result.status, result.exit_code) == ("ok", 0)
    assert sorted((r.account, r.dataset, r.status) for r in result.datasets) == sorted(
        (a, d, "ok") for a in ACCOUNTS for d in DATASETS)
    assert table(storage, "SELECT status, trigger FROM runs") == [("ok", "manual")]
    assert table(storage, "SELECT count(*) FROM fetch_log WHERE status = 'ok' AND requests > 0") == [(15,)]
    for account in ACCOUNTS:
        truth = sandbox.seller.ordered_units(account, TODAY, clock.now())
        assert truth and ordered_today(storage, account) == {k: v for k, v in truth.items() if v}, account
        stock = {k: v for k, v in seller_stock(sandbox, account, clock.now()).items() if v}
        assert {k: v for k, v in current_stock(storage, account).items() if v} == stock, account
    wb_bought = dict(table(storage, "SELECT sku, count(*) FROM sales WHERE account = 'wb-1' AND kind = 'sale' "
                                    "AND day = ? GROUP BY sku", [TODAY.isoformat()]))
    assert wb_bought == {k: v for k, v in sandbox.seller.bought_units("wb-1", TODAY, clock.now()).items() if v}


def test_a_pass_keeps_the_minutes_per_sku_from_the_day_before_yesterday(storage, collect, clock):
    """Each pass moves recent_minutes' floor to the day before yesterday (Moscow) before it
    writes: what it writes is kept per SKU, warehouse and minute, the older days leave."""
    collect()
    assert table(storage, "SELECT day FROM recent_minutes_floor") == [("2026-11-24",)]
    per_minute = table(storage, "SELECT account, sum(ordered), sum(bought) FROM recent_minutes "
                                "WHERE day = ? GROUP BY account", [TODAY.isoformat()])
    assert per_minute and per_minute == table(
        storage, "SELECT account, sum(ordered), sum(bought) FROM minute_totals WHERE day = ? GROUP BY account",
        [TODAY.isoformat()])
    clock.advance(days=3)
    collect()
    assert table(storage, "SELECT day FROM recent_minutes_floor") == [("2026-11-27",)]
    assert table(storage, "SELECT min(day) >= '2026-11-27' FROM recent_minutes") == [(1,)]
    assert storage.summary_drift()["recent_minutes"] == 0


def test_a_second_pass_with_nothing_changed_adds_nothing(storage, collect):
    collect()
    before = table(storage, COUNTED)
    assert collect().status == "ok"
    assert table(storage, COUNTED) == before
    assert table(storage, "SELECT count(*) FROM runs") == [(2,)]


def test_stock_is_written_only_where_it_changed(sandbox, storage, collect, clock):
    collect()
    first = table(storage, "SELECT count(*) FROM stock")[0][0]
    before = sandbox.seller.stock_units("ozon-1", clock.now())
    clock.advance(minutes=90)
    collect()
    after = sandbox.seller.stock_units("ozon-1", clock.now())
    changed = sum(before.get(k, 0) != v for k, v in after.items())
    added = table(storage, "SELECT count(*) FROM stock WHERE account = 'ozon-1' AND id > ?", [first])[0][0]
    assert changed > 0 and added == changed


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(seed=1, rate_limit_factor=0.001, wb_refresh_minutes=1,
                                                          wb_page_rows=10, **SMALL_SELLER)])
def test_wb_paging_reaches_every_row_once(sandbox, tmp_path, storage, clock):
    settings = load_settings(None, collector_environ(sandbox, tmp_path, WB_PAGE_ROWS="10"))
    assert run_pass(settings, storage, clock=clock.now, datasets=("orders",)).status == "ok"
    pages = [r for r in sandbox.request_log if r.path.startswith("/api/v1/supplier/orders")]
    truth = sandbox.seller.ordered_units("wb-1", TODAY, clock.now())
    assert len(pages) > 3
    assert ordered_today(storage, "wb-1") == {k: v for k, v in truth.items() if v}
    assert table(storage, "SELECT rows FROM fetch_log WHERE account = 'wb-1'") == table(
        storage, "SELECT count(*) FROM orders WHERE account = 'wb-1'")


def test_a_429_is_waited_out_and_counted(sandbox, storage, collect):
    sandbox.faults.add(Fault("429", endpoint="/api/v1/supplier/orders", account="wb-1", times=1))
    sandbox.faults.add(Fault("429", endpoint="/v3/posting/fbo/list", account="ozon-2", times=1))
    assert collect().status == "ok"
    retried = table(storage, "SELECT account, dataset, retries FROM fetch_log WHERE retries > 0 ORDER BY account")
    assert retried == [("ozon-2", "orders", 1), ("wb-1", "orders", 1)]
    assert table(storage, "SELECT requests FROM fetch_log WHERE account = 'wb-1' AND dataset = 'orders'") == [(2,)]


def test_one_failing_dataset_never_stops_the_others(sandbox, storage, collect):
    sandbox.faults.add(Fault("bad_key", endpoint="/v1/returns/list", account="ozon-1", times=None))
    result = collect()
    assert (result.status, result.exit_code) == ("partial", 2)
    failed = table(storage, "SELECT account, dataset, error FROM fetch_log WHERE status = 'failed'")
    assert failed == [("ozon-1", "sales", "ozon-1 (Песочница Ozon 1) sales: POST /v1/returns/list: "
                       "HTTP 404 Not Found: Invalid Api-Key, please check the key and try again, code 5")]
    assert table(storage, "SELECT count(*) FROM fetch_log WHERE status = 'ok'") == [(14,)]
    assert ordered_today(storage, "ozon-1")


# What the orders dataset itself writes; `outcome` follows the sales dataset, which did succeed.
WRITTEN_BY_ORDERS = ("SELECT account, order_id, sku, article, size, barcode, warehouse, ordered_at, day, status, "
                     "is_cancelled, cancelled_at, quantity, price_kopecks, changed_at, payout_kopecks FROM orders "
                     "WHERE account = 'ozon-2' ORDER BY order_id, sku")


def test_a_failed_dataset_leaves_no_rows_and_earlier_data_intact(sandbox, storage, collect, clock):
    collect()
    before = table(storage, WRITTEN_BY_ORDERS)
    clock.advance(hours=2)
    sandbox.faults.add(Fault("wrong_type", endpoint="/v3/posting/fbo/list", account="ozon-2", times=None))
    result = collect()
    assert result.status == "partial"
    (error,) = [r.error for r in result.datasets if r.status == "failed"]
    assert error.startswith("ozon-2 (Песочница Ozon 2) orders: unreadable data from the marketplace: posting ")
    assert table(storage, WRITTEN_BY_ORDERS) == before


class FullDisk(Storage):
    """The collector's storage on a disk with room for `pages` more pages: SQLite's own
    SQLITE_FULL ("database or disk is full"), on every connection the pass opens."""

    def __init__(self, path, pages: int):
        self.pages = pages
        super().__init__(path)

    @property
    def db(self):
        db = Storage.db.fget(self)
        if not getattr(self._local, "limited", False):
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages + self.pages}")
            self._local.limited = True
        return db


def test_a_full_disk_fails_the_pass_says_so_and_loses_nothing(sandbox, settings, storage, collect, clock):
    """SQLite undoes the whole pass when the disk fills as it spills pages: the pass says that
    nothing of it was saved, the data before it is whole, and the next pass saves it all."""
    collect()
    before = table(storage, "SELECT count(*), sum(quantity) FROM orders")
    clock.advance(hours=2)
    storage.close()
    full = FullDisk(settings.database_path, pages=2)
    with pytest.raises(StorageError) as raised:
        run_pass(settings, full, clock=clock.now)
    full.close()
    assert str(raised.value) == (f"the disk holding the database is full ({settings.database_path.parent}): "
                                 f"nothing of this pass was saved, and the next pass fetches it again once there "
                                 f"is space")
    assert table(storage, "PRAGMA integrity_check") == [("ok",)]
    assert table(storage, "SELECT count(*), sum(quantity) FROM orders") == before
    assert collect().status == "ok"  # (space again: the next pass)
    for account in ACCOUNTS:
        truth = sandbox.seller.ordered_units(account, TODAY, clock.now())
        assert ordered_today(storage, account) == {k: v for k, v in truth.items() if v}, account


def test_a_dataset_that_fails_to_write_leaves_the_others_of_the_pass_saved(sandbox, settings, storage, collect,
                                                                         monkeypatch):
    """Each dataset writes in a savepoint of the pass's transaction: one that fails is undone
    alone, and the pass commits the rest."""
    def broken(*args, **kwargs):
        raise sqlite3.IntegrityError("a write the schema refuses")

    monkeypatch.setattr(Storage, "write_stock", broken)
    result = collect()
    failed = {(r.account, r.dataset) for r in result.datasets if r.status == "failed"}
    assert result.status == "partial" and failed == {(a, "stocks") for a in ACCOUNTS}
    assert table(storage, "SELECT count(*) FROM stock") == [(0,)]
    assert table(storage, "SELECT count(*) FROM orders")[0][0] > 0
    assert {(a, d) for a, d in table(storage, "SELECT account, dataset FROM fetch_log WHERE status = 'ok'"
                                              " AND dataset IN ('stocks', 'orders', 'sales')")} == \
        {(a, d) for a in ACCOUNTS for d in ("orders", "sales")}


def test_ozon_buyouts_are_dated_by_the_pass_that_sees_delivery(sandbox, storage, collect, clock):
    collect()
    open_before = {n for (n,) in table(storage, "SELECT order_id FROM orders WHERE account = 'ozon-1' "
                                                "AND status NOT IN ('delivered', 'cancelled')")}
    clock.advance(days=2)
    collect()
    delivered_now = {n for (n,) in table(storage, "SELECT order_id FROM orders WHERE account = 'ozon-1' "
                                                  "AND status = 'delivered'")}
    dated = table(storage, "SELECT sale_id, day FROM sales WHERE account = 'ozon-1' AND kind = 'sale' "
                           "AND day IS NOT NULL")
    assert dated and {day for _, day in dated} == {"2026-11-28"}
    assert {sale_id for sale_id, _ in dated} == open_before & delivered_now
    undated = table(storage, "SELECT count(DISTINCT sale_id) FROM sales WHERE account = 'ozon-1' AND kind = 'sale' AND day IS NULL")
    assert undated[0][0] == len(delivered_now - open_before)


def test_open_postings_from_earlier_days_are_followed_to_delivery(sandbox, storage, collect, clock):
    collect()
    clock.advance(days=1)
    collect()
    clock.advance(days=1)
    collect()
    statuses = dict(table(storage, "SELECT order_id, status FROM orders WHERE account = 'ozon-2' AND day = ?",
                          [TODAY.isoformat()]))
    now = to_us(clock.now())
    assert statuses and {n: sandbox.seller.ozon("ozon-2").find_posting(n, now).status_at(now) for n in statuses} == statuses
    assert "delivered" in statuses.values()


def test_aliases_are_loaded_and_reloaded_when_the_file_changes(settings, storage, collect):
    settings.aliases_file.write_text("marketplace,key,alias\nwb,KR-101,Кронштейны\nozon,KR-101,Кронштейны\n",
                                     encoding="utf-8")
    collect()
    assert table(storage, "SELECT marketplace, key, alias, position FROM sku_aliases ORDER BY marketplace") == [
        ("ozon", "KR-101", "Кронштейны", 1), ("wb", "KR-101", "Кронштейны", 1)]
    settings.aliases_file.write_text("marketplace;key;alias\nwb;PAK8-101;Пакеты 8\n", encoding="utf-8")
    collect()
    assert table(storage, "SELECT marketplace, key, alias FROM sku_aliases") == [("wb", "PAK8-101", "Пакеты 8")]


def test_a_broken_aliases_file_keeps_the_old_aliases_and_collects_anyway(settings, storage, collect, caplog):
    settings.aliases_file.write_text("marketplace,key,alias\nwb,KR-101,Кронштейны\n", encoding="utf-8")
    collect()
    settings.aliases_file.write_text("marketplace,key,alias\nmarket,KR-101,X\n", encoding="utf-8")
    assert collect().status == "ok"
    assert table(storage, "SELECT key, alias FROM sku_aliases") == [("KR-101", "Кронштейны")]


def test_a_steady_pass_sends_the_fewest_requests_paging_allows(sandbox, storage, collect, clock):
    collect()
    clock.advance(minutes=10)
    open_older = {a: table(storage, "SELECT count(DISTINCT order_id) FROM orders WHERE account = ? AND day < ? "
                                    "AND status NOT IN ('delivered', 'cancelled')", [a, TODAY.isoformat()])[0][0]
                  for a in ("ozon-1", "ozon-2")}
    sandbox.clear_request_log()
    collect()
    today = {a: table(storage, "SELECT count(DISTINCT order_id) FROM orders WHERE account = ? AND day = ?",
                      [a, TODAY.isoformat()])[0][0] for a in ("ozon-1", "ozon-2")}
    pages = lambda n: -(-n // 100)  # noqa: E731 - Ozon lists at most 100 postings a page
    expected = {("wb-1", "/api/analytics/v1/stocks-report/wb-warehouses"): 1,
                ("wb-1", "/api/v1/supplier/orders"): 1, ("wb-1", "/api/v1/supplier/sales"): 1,
                ("wb-1", "/api/v1/account/balance"): 1}
    # The product catalogue (names, Ozon SKU discovery) is daily: not in a pass 10 minutes later.
    for account in ("ozon-1", "ozon-2"):
        expected |= {(account, "/v1/finance/balance"): 1,
                     (account, "/v1/analytics/stocks"): 1,   # up to 100 SKUs a request
                     (account, "/v3/posting/fbo/list"): pages(today[account]) + pages(open_older[account]),
                     (account, "/v1/returns/list"): 1}
    assert Counter((r.account, r.path) for r in sandbox.request_log) == expected
    assert all(open_older.values()) and all(today.values())


def test_secrets_never_reach_the_database_or_the_errors(sandbox, settings, storage, collect):
    sandbox.faults.add(Fault("bad_key", account="wb-1", times=None))
    collect()
    storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = settings.database_path.read_bytes()
    for secret in settings.secrets:
        assert secret.encode() not in raw
        assert all(secret not in (e or "") for (e,) in table(storage, "SELECT error FROM fetch_log"))


def test_days_follow_the_configured_zone(sandbox, tmp_path, storage, clock):
    settings = load_settings(None, collector_environ(sandbox, tmp_path, TIMEZONE="Asia/Vladivostok"))
    run_pass(settings, storage, clock=clock.now, datasets=("orders",))
    # Times carry +10:00 and each day is the Vladivostok date of its time.
    assert table(storage, "SELECT DISTINCT substr(ordered_at, -6) FROM orders") == [("+10:00",)]
    assert table(storage, "SELECT count(*) FROM orders WHERE day != substr(ordered_at, 1, 10)") == [(0,)]
    # "Today" started at Vladivostok midnight (14:00 Moscow the day before), not Moscow's.
    first_today = table(storage, "SELECT min(ordered_at) FROM orders WHERE account = 'ozon-1' AND day = '2026-11-26'")
    assert first_today[0][0] >= "2026-11-26T00:00:00+10:00"


def test_a_reader_sees_the_previous_pass_whole_until_the_next_lands_with_its_kept_pages(
        storage, settings, collect, clock, monkeypatch):
    """A pass commits once, after its pages kept ready: until then the viewer reads the
    previous pass's rows and the pages kept from them, never rows whose pages are not kept."""
    import collector.pipeline as pipeline

    def seen() -> tuple:
        with closing(sqlite3.connect(f"file:{settings.database_path}?mode=ro", uri=True)) as reader:
            return reader.execute(
                "SELECT (SELECT count(*) || ':' || total(quantity) FROM orders),"
                " (SELECT count(*) FROM stock), (SELECT count(*) FROM fetch_log),"
                " (SELECT group_concat(in_step) FROM restock_now_basis),"
                " (SELECT count(*) FROM today_now)").fetchone()

    collect()
    after_first = seen()
    assert set(after_first[3].split(",")) == {"1"} and after_first[4] > 0  # (kept, and vouched for)
    during = []
    keep = pipeline.refresh_kept

    def refresh_kept_and_look(*args):
        during.append(seen())  # every dataset written, the pages not yet kept
        keep(*args)
        during.append(seen())  # kept, not yet committed
    monkeypatch.setattr(pipeline, "refresh_kept", refresh_kept_and_look)
    clock.advance(hours=3)
    assert collect().status == "ok"
    after_second = seen()
    assert during == [after_first, after_first]
    assert after_second[:3] != after_first[:3]  # (the second pass did bring rows)
    assert set(after_second[3].split(",")) == {"1"} and after_second[4] > 0
