"""The benchmarks run, at a tiny scale, and produce figures. No figure is asserted here (a test
machine's speed says nothing): only that each part measures something, plus ratios loose enough
to hold anywhere."""

import json
import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from benchmarks import export, growth, history, ingest, load, passes, passwrites, sqlprofile, undated, viewer
from benchmarks.reference import reference_aliases, reference_config
from benchmarks.run import Options, _viewer_database, run
from benchmarks.stocktrack import tracker_for
from collector.records import OrderLine
from collector.sandbox.seller import Seller
from collector.storage import Storage, summary_rows

AT = datetime(2026, 11, 26, 20, 50, tzinfo=timezone.utc)
TINY = 0.01  # 30 WB products, 15 SKUs per Ozon store, 200 WB orders and 50 postings a day


@pytest.fixture(scope="module")
def config():
    return reference_config(TINY, history_days=12, wb_retention_days=12)


def test_the_reference_seller_is_the_issue_s(config):
    big = reference_config()
    assert (big.wb_products, big.wb_products * big.wb_sizes_per_product[0], big.wb_orders_per_day) == (3000, 6000, 20_000)
    assert (big.ozon_accounts, big.ozon_products, big.ozon_warehouses, big.ozon_postings_per_day) == \
        (3, 1500, (25, 25), 5000)
    rows = reference_aliases(Seller(config, AT))
    assert rows and {marketplace for marketplace, *_ in rows} == {"wb", "ozon"}


def test_stock_trackers_agree_with_the_sandbox(config):
    seller = Seller(config, AT)
    for account in seller.accounts:
        tracker = tracker_for(seller, account, AT - timedelta(days=2))
        for hours in (0, 7, 31):
            tracker.advance(AT - timedelta(days=2) + timedelta(hours=hours, minutes=10))
            tracker.check(AT - timedelta(days=2) + timedelta(hours=hours, minutes=10))


def test_buyouts_are_the_ones_storage_makes(tmp_path):
    storage = Storage(tmp_path / "mp.db")
    storage.migrate()
    line = OrderLine("ozon-1", "1-1", 11, "A", "", None, "W", "2026-11-26T10:00:00+03:00", "2026-11-26",
                     "delivering", 0, None, 2, 10050, "2026-11-26T10:00:00+03:00")
    with storage.transaction():
        storage.write_orders([line])
    delivered = replace(line, status="delivered")
    seen = "2026-11-27T10:00:00+03:00"
    assert history.buyout_events([delivered], seen, "2026-11-27") == storage.ozon_buyouts([delivered], seen, "2026-11-27")


def test_history_through_the_collector_s_storage(config, tmp_path):
    made = history.generate(tmp_path / "mp.db", config, AT - timedelta(days=3), AT, write_stock_days=0.2,
                            processes=2)
    assert made.rows["orders"] and made.rows["sales"] and made.rows["stock"]
    assert made.checked_passes > 0 and made.full_snapshot_rows > made.stock_changes


def test_ingest_measures_both_sides(config, tmp_path):
    results = ingest.measure(config, AT, tmp_path, repeats=1, wb_rows=300, postings=40)
    for result in results:
        assert result.page_rows > 0 and result.collector_rate > 0 and result.plain_rate > 0
        assert result.ratio > 0 and result.write_ratio > 0


def test_a_pass_makes_no_more_requests_than_the_paging_needs(config, tmp_path):
    config = replace(config, history_days=passes.SEEDED_DAYS + 4)
    warm = passes.prepare(config, tmp_path)
    measured = passes.measure(config, warm, tmp_path, latency_ms=0)
    assert measured.status == "ok" and measured.seconds > 0
    assert measured.written_bytes > 4096  # the pass's rows went through the WAL
    assert {(d.account, d.dataset) for d in measured.datasets} >= {("wb-1", "orders"), ("ozon-1", "orders")}
    for dataset in measured.datasets:
        assert dataset.requests == dataset.served and dataset.fewest >= 1
        assert dataset.requests >= dataset.fewest  # the fewest really is a floor


def test_a_day_of_passes_measures_each_hour_s_steady_pass(config, tmp_path):
    config = replace(config, history_days=passes.SEEDED_DAYS + 4)
    day = passes.measure_day(config, tmp_path, hours=3)
    assert [f"{when:%H:%M}" for when in day.written] == ["21:10", "22:10", "23:10"]  # 00:10-02:10 in Moscow
    assert all(size > 4096 for size in day.written.values())  # each pass wrote, through the WAL
    assert day.per_day == passes.PASSES_AN_HOUR * sum(day.written.values())


def test_a_pass_s_writes_are_named_table_by_table(config, tmp_path):
    config = replace(config, history_days=passes.SEEDED_DAYS + 4)
    passes.measure_day(config, tmp_path, hours=1)
    by_frame, by_page, page_size, written = passwrites.measure(config, tmp_path, hour=2)
    assert by_frame["orders"] > 0 and by_frame["daily_figures"] > 0  # (the hour's orders, and their summary)
    assert all(0 < by_page[name] <= frames for name, frames in by_frame.items())
    assert sum(by_frame.values()) * page_size <= written  # (the WAL is written by the pass itself)


def test_growth_compares_with_full_snapshots(config, tmp_path):
    result = growth.measure(config, tmp_path, AT, days=1, write_stock_days=0.1)
    assert result.file_bytes > 0 and result.stock_rows > 0
    assert result.ratio > 1 and result.year_estimate() > result.file_bytes
    # every table is in the estimate with all of its indexes (sales with sales_order, sales_day,
    # sales_undated, empty but a page, and its key)
    with sqlite3.connect(tmp_path / "growth.db") as conn:
        objects = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
    assert sum(result.tables.values()) == sum(objects.values())
    assert result.tables["sales"] == sum(objects[n] for n in ("sales", "sales_order", "sales_day", "sales_undated",
                                                                     "sqlite_autoindex_sales_1"))
    assert result.table_estimate("orders") == result.tables["orders"] * 365  # one day: a year is 365 of it
    first = result.tables["stock"] * result.stock_keys / result.stock_rows  # each key's first row, once
    assert 0 < result.stock_keys < result.stock_rows
    assert result.table_estimate("stock") == pytest.approx(first + (result.tables["stock"] - first) * 365)
    assert result.table_estimate("stock_current") == result.tables["stock_current"]  # the state now


def test_viewer_times_every_canned_query(config, tmp_path):
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    database = tmp_path / "mp.db"
    history.generate(database, config, end - timedelta(days=2), end, processes=1)
    timings = viewer.time_viewer(database, (end - timedelta(days=1)).date().isoformat(), repeats=1, budget=0.5,
                                 cold_repeats=1)
    labels = {t.label for t in timings}
    assert {"today", "history", "freshness"} <= labels
    assert not [t.error or t.cold_error for t in timings if t.error or t.cold_error]
    assert all(t.median > 0 and len(t.cold) == 1 for t in timings)
    assert {"restock soon=1", "restock_window", "buyout", "summary warehouse={warehouse}",
            "dashboard page warehouse={warehouse} + all its charts", "dashboard page alias={alias} + all its charts"} <= labels
    filtered = next(t for t in timings if t.label == "dashboard page warehouse={warehouse} (HTML)")
    assert "warehouse=" in filtered.path and "{" not in filtered.path
    sql, params = sqlprofile.canned_sql("restock_window")  # the computation the pass keeps ready
    steps = sqlprofile.profile(sqlprofile.connect(database), sql, {name: "" for name in params}, repeats=1)
    assert [name for name, _, _ in steps][-1] == "(whole query)" and len(steps) > 5


def test_the_viewer_is_timed_on_the_pages_a_pass_keeps_for_the_day_it_is_timed(tmp_path):
    """The year takes an hour to write: one begun before Moscow's midnight is timed after it,
    when the pages it kept are of the day before, which no page reads; nor does a page read those
    of a database kept from an earlier day (--reuse). Each is timed as a pass then leaves it."""
    options = Options(scale=TINY, reuse=True, out=tmp_path)
    database, _ = _viewer_database(options, tmp_path, "day", 1, log=lambda text: None)
    kept_for = ("SELECT day, in_step FROM restock_now_basis UNION SELECT day, in_step FROM warehouse_month_basis")
    with sqlite3.connect(database) as db:
        db.execute("UPDATE restock_now_basis SET day = date(day, '-1 day')")
        db.execute("UPDATE warehouse_month_basis SET day = date(day, '-1 day')")
        yesterdays = set(db.execute(kept_for))
    reused, timed_at = _viewer_database(options, tmp_path, "day", 1, log=lambda text: None)
    with sqlite3.connect(reused) as db:
        assert set(db.execute(kept_for)) == {(timed_at.date().isoformat(), 1)} != yesterdays
    assert timed_at.utcoffset() == timedelta(hours=3)


def test_undated_load_and_export_use_the_viewer_s_database_of_the_same_seller(tmp_path):
    options = Options(scale=TINY, out=tmp_path)
    database, _ = _viewer_database(options, tmp_path, "day", 1, log=lambda text: None)
    stamp = database.with_suffix(".json")
    written = stamp.read_text()
    stamp.write_text(written.replace('"day": "', '"day": "1999-'))  # of another day: still the run's own
    assert _viewer_database(options, tmp_path, "day", 1, log=lambda text: None, any_day=True)[0] == database
    assert '"day": "1999-' in stamp.read_text()  # not written anew
    bigger = replace(options, scale=TINY * 2)  # another seller's: written anew
    assert _viewer_database(bigger, tmp_path, "day", 1, log=lambda text: None, any_day=True)[0] == database
    assert json.loads(stamp.read_text())["scale"] == TINY * 2


SUMMARIES = ("SELECT * FROM daily_figures", "SELECT * FROM order_warehouses",
             "SELECT account, order_id, sku, outcome FROM orders",
             "SELECT account, sku, size, warehouse, first_day FROM stock_current",
             "SELECT * FROM sku_days", "SELECT * FROM sku_stock", "SELECT * FROM sku_names")


def test_a_bulk_history_counts_what_the_triggers_count(config, tmp_path):
    """The viewer's databases are loaded without the schema's triggers and counted afterwards by
    Storage.rebuild_summaries(): the same summaries as the triggers keep row by row."""
    tables = {}
    for bulk in (False, True):
        path = tmp_path / f"bulk-{bulk}.db"
        history.generate(path, config, AT - timedelta(days=2), AT, bulk=bulk, processes=1)
        storage = Storage(path)
        tables[bulk] = [sorted(storage.db.execute(query).fetchall()) for query in SUMMARIES]
        # the per-group summaries, less the rows of zeros a regrouping leaves behind
        tables[bulk].append(sorted(row for row in summary_rows(storage.db)[0]
                                   if row[0] in ("alias_days", "alias_stock", "summary_days")))
        storage.close()
    assert tables[True] == tables[False] and tables[True][0] and tables[True][-1]
    assert {outcome for _, _, _, outcome in tables[True][2]} >= {"open", "bought"}


def test_the_undated_sales_are_timed_against_dated_ones(config, tmp_path):
    """The copy's first days of Ozon sales lose their day, as a backfill leaves them; every page
    that shows them is timed, each beside a page of dated sales of the same copy."""
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    database = tmp_path / "mp.db"
    history.generate(database, config, end - timedelta(days=12), end, processes=1)
    result = undated.measure(database, tmp_path / "undated", repeats=1, budget=0.5)
    assert result.undated > 0 and result.index_bytes > 0
    assert len(result.timings) == 7 and not (tmp_path / "undated").exists()
    for page, dated in result.timings:
        assert not page.error and not dated.error, (page.path, dated.path)
        assert ".json" not in page.path or page.rows and dated.rows, (page.path, dated.path)  # (an HTML page: no count)
        assert page.median > 0 and dated.median > 0 and "_sort" in page.path


def test_datasette_under_load(config, tmp_path):
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    database = tmp_path / "mp.db"
    history.generate(database, config, end - timedelta(days=1), end, processes=1)
    versions, today, uncached, computed = load.measure(database, tmp_path / "load", clients=2, max_requests=20,
                                                       max_seconds=5)
    assert versions.requests > 0 and today.requests > 0 and uncached.requests > 0
    assert not today.errors and not uncached.errors and not computed.errors
    assert today.rate < versions.rate * 10  # a query is not faster than Datasette's own version page


def test_the_export_streams_whole_and_has_the_view_s_rows(tmp_path):
    options = Options(scale=TINY, year_days=2, export_view_seconds=2.0, out=tmp_path)
    report = run(options, ["export"], log=lambda text: None)
    assert "6 export" in report.text() and "rows/s" in report.text()
    data = report.data["export"]
    daily, stock = data["streams"]["daily"], data["streams"]["stock"]
    assert daily["complete"] and daily["rows"] == data["expected_rows"] > 0 and stock["complete"] and stock["rows"]
    assert daily["rss_peak"] >= daily["rss_before"] > 0
    assert data["checked_days"] and all(day["same"] for day in data["checked_days"].values())
    assert data["streams"]["view"]["rows"] > 0  # the view at a tiny seller still answers within the limit
    assert data["streams"]["answered"]["rows"] == data["expected_rows"]  # the view's own link: every row
    for query in data["queries"]:  # a canned query's CSV: every row it has
        assert query["complete"] and query["rows"] == query["expected_rows"] > 0, query["path"]
    # What Datasette's streamed CSV ends with when a page of the view passes the time limit:
    cut = b"2026-12-04,wb,wb-1,A,A,1,W,1,0,0,1.0,0.0,0.0\r\n(OperationalError('interrupted'), 'select ...', {})"
    assert export.datasette_error(cut).startswith("(OperationalError")
    assert export.datasette_error(b"day,sku\r\n2026-12-04,1\r\n") == ""  # a whole CSV ends with a newline


def test_make_bench_prints_the_table(tmp_path):
    options = Options(scale=TINY, ingest_repeats=1, wb_page_rows=200, ozon_postings=30, out=tmp_path)
    report = run(options, ["ingest"], log=lambda text: None)
    text = report.text()
    assert "1 ingest" in text and "rows/s" in text and "machine:" in text
    assert (tmp_path / "results.md").exists() and (tmp_path / "results.json").exists()


def test_a_page_over_the_bar_says_what_it_is_made_of():
    from benchmarks.run import _warm_unmet

    page = viewer.Timing("history", "/mp/history.json", seconds=[0.12], rows=5000)
    assert _warm_unmet(page, 1.1) == " (5,000 rows sent, 1.1x one day: the page's size, not the history)"
    assert _warm_unmet(page, 2.0) == " (5,000 rows sent)"  # more than the page's size: no such claim
    assert _warm_unmet(page, None) == " (5,000 rows sent)"  # no baseline to compare with
    html = viewer.Timing("history (HTML page)", "/mp/history", seconds=[0.12])
    assert _warm_unmet(html, 1.2) == " (1.2x one day: the page's size, not the history)"
    assert _warm_unmet(html, None) == ""
