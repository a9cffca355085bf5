"""Storage: schema and migrations, change-only stock, Ozon buyouts, one transaction per dataset."""

import contextlib
import sqlite3
from dataclasses import replace

import pytest

from benchmarks.passes import written_bytes
from collector import storage as storage_module
from collector.records import OrderLine, Product, SaleEvent, StockLevel
from collector.storage import SCHEMA_VERSION, Storage, StorageError, rows_differing


@pytest.fixture
def store(tmp_path):
    s = Storage(tmp_path / "mp.db")
    s.migrate()
    s.save_accounts([("wb-1", "wb", "WB"), ("ozon-1", "ozon", "Ozon")])
    yield s
    s.close()


def rows(store, sql, params=()):
    return [tuple(r) for r in store.db.execute(sql, params).fetchall()]


def posting(number, status, sku=11, quantity=2, day="2026-11-26"):
    return OrderLine(account="ozon-1", order_id=number, sku=sku, article="A", size="", barcode=None,
                     warehouse="Казань_РФЦ", ordered_at=f"{day}T10:00:00+03:00", day=day, status=status,
                     is_cancelled=int(status == "cancelled"), cancelled_at=None, quantity=quantity,
                     price_kopecks=10050, changed_at=f"{day}T12:00:00+03:00")


def test_schema_is_applied_idempotently_with_wal_and_a_version(store, tmp_path):
    assert store.migrate() == SCHEMA_VERSION
    assert store.schema_version == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"accounts", "runs", "fetch_log", "products", "stock", "orders", "sales", "sku_aliases"} <= set(
        store.db.table_names())


def test_an_account_is_written_only_when_it_differs(store):
    """Every pass saves its accounts; the same ones are not written (their triggers would set aside
    every page kept ready), a changed label or marketplace is."""
    changes = store.db.conn.total_changes
    store.save_accounts([("wb-1", "wb", "WB"), ("ozon-1", "ozon", "Ozon")])
    assert store.db.conn.total_changes == changes
    store.save_accounts([("wb-1", "wb", "WB main"), ("ozon-1", "wb", "Ozon")])
    assert rows(store, "SELECT account, marketplace, label FROM accounts ORDER BY account") == [
        ("ozon-1", "wb", "Ozon"), ("wb-1", "wb", "WB main")]


def store_with_next_migration(tmp_path, monkeypatch, script: str) -> Storage:
    """A database at today's version with one account, and `script` as the next version's migration."""
    store = Storage(tmp_path / "mp.db")
    store.migrate()
    store.save_accounts([("wb-1", "wb", "WB")])
    monkeypatch.setattr(storage_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(storage_module.MIGRATIONS, SCHEMA_VERSION + 1, script)
    return store


def test_migrations_run_in_order_and_keep_data(tmp_path, monkeypatch):
    store = store_with_next_migration(tmp_path, monkeypatch, "ALTER TABLE accounts ADD COLUMN note TEXT;")
    assert store.migrate() == SCHEMA_VERSION
    assert rows(store, "SELECT account, note FROM accounts") == [("wb-1", None)]
    assert store.schema_version == SCHEMA_VERSION + 1


def test_a_failed_upgrade_leaves_the_database_as_it_was_and_says_why(tmp_path, monkeypatch):
    store = store_with_next_migration(tmp_path, monkeypatch,
                                      "ALTER TABLE accounts ADD COLUMN note TEXT;\nUPDATE no_such_table SET x = 1;")
    with pytest.raises(StorageError, match=r"cannot write the database .*mp\.db: no such table: no_such_table"):
        store.migrate()
    assert store.schema_version == SCHEMA_VERSION and not store.db.conn.in_transaction
    assert rows(store, "SELECT * FROM accounts") == [("wb-1", "wb", "WB")]  # no column added


def test_a_newer_database_is_refused(tmp_path):
    store = Storage(tmp_path / "mp.db")
    store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(StorageError, match="newer than this collector"):
        store.migrate()


def test_stock_rows_only_on_change_and_zero_when_a_key_disappears(store):
    def write(levels, when):
        with store.transaction():
            return store.write_stock("ozon-1", [StockLevel("ozon-1", sku, "", wh, q) for sku, wh, q in levels],
                                     f"2026-11-26T{when}+03:00", "2026-11-26", None)

    assert write([(11, "A", 5), (12, "A", 3)], "10:00:00") == 2
    assert write([(11, "A", 5), (12, "A", 3)], "10:10:00") == 0
    assert write([(11, "A", 4)], "10:20:00") == 2
    assert write([(11, "A", 4)], "10:30:00") == 0
    assert rows(store, "SELECT sku, warehouse, quantity, observed_at FROM stock ORDER BY id") == [
        (11, "A", 5, "2026-11-26T10:00:00+03:00"), (12, "A", 3, "2026-11-26T10:00:00+03:00"),
        (11, "A", 4, "2026-11-26T10:20:00+03:00"), (12, "A", 0, "2026-11-26T10:20:00+03:00")]
    # An unchanged key's row is not rewritten (the 10:30 pass wrote nothing); first_day stays.
    assert rows(store, "SELECT sku, quantity, changed_at, seen_at, first_day FROM stock_current ORDER BY sku") == [
        (11, 4, "2026-11-26T10:20:00+03:00", "2026-11-26T10:20:00+03:00", "2026-11-26"),
        (12, 0, "2026-11-26T10:20:00+03:00", "2026-11-26T10:20:00+03:00", "2026-11-26")]


def test_ozon_buyout_dated_by_the_pass_that_sees_delivery(store):
    def see(lines, seen_at, day):
        with store.transaction():
            buyouts = store.ozon_buyouts(lines, seen_at, day)
            store.write_orders(lines)
            store.insert_new_sales(buyouts)

    see([posting("1-1", "delivering"), posting("2-1", "delivered")], "2026-11-26T10:00:00+03:00", "2026-11-26")
    see([posting("1-1", "delivered"), posting("2-1", "delivered")], "2026-11-27T00:00:01+03:00", "2026-11-27")
    see([posting("1-1", "delivered")], "2026-11-27T10:00:00+03:00", "2026-11-27")
    assert rows(store, "SELECT sale_id, kind, sku, sold_at, day, quantity, amount_kopecks FROM sales ORDER BY sale_id") == [
        ("1-1", "sale", 11, "2026-11-27T00:00:01+03:00", "2026-11-27", 2, 20100),
        # delivered at first sight: kept as a sale that counts on no day
        ("2-1", "sale", 11, None, None, 2, 20100)]


def test_order_upsert_updates_status_in_place_and_keeps_changed_at_while_unchanged(store):
    first = posting("1-1", "awaiting_packaging")
    with store.transaction():
        store.write_orders([first])
    with store.transaction():
        store.write_orders([replace(first, changed_at="2026-11-26T13:00:00+03:00")])
    assert rows(store, "SELECT status, changed_at FROM orders") == [("awaiting_packaging", "2026-11-26T12:00:00+03:00")]
    with store.transaction():
        store.write_orders([replace(first, status="cancelled", is_cancelled=1, changed_at="2026-11-26T14:00:00+03:00")])
    assert rows(store, "SELECT count(*), status, is_cancelled, changed_at FROM orders") == [
        (1, "cancelled", 1, "2026-11-26T14:00:00+03:00")]


def test_a_line_first_seen_delivered_or_cancelled_is_written_once_and_judged_with_its_sales(store):
    """A backfill and a first pass meet most lines already delivered or cancelled: each is written
    with its outcome on its own, as cheaply as an open line (its trigger had it written again, and
    every summary with it), and still judged with the sales stored before it."""
    def changes(lines):
        before = store.db.conn.total_changes
        with store.transaction():
            store.write_orders(lines)
        return store.db.conn.total_changes - before

    changes([posting("0-1", "awaiting_packaging")])  # the day's summary rows exist from here on
    open_line = changes([posting("1-1", "awaiting_packaging")])
    assert changes([posting("2-1", "delivered")]) == open_line
    assert changes([posting("3-1", "cancelled")]) <= open_line  # (a cancelled line adds to fewer minutes)
    with store.transaction():  # a return stored before its posting
        store.write_sales([SaleEvent(account="ozon-1", kind="return", sale_id="r-4", sku=11, order_id="4-1",
                                     article="A", size="", barcode=None, warehouse=None,
                                     sold_at="2026-11-27T10:00:00+03:00", day="2026-11-27", quantity=2,
                                     amount_kopecks=20100, return_type=None, changed_at=None)])
    changes([posting("4-1", "delivered")])
    assert rows(store, "SELECT order_id, outcome FROM orders ORDER BY order_id") == [
        ("0-1", "open"), ("1-1", "open"), ("2-1", "bought"), ("3-1", "not_bought"), ("4-1", "not_bought")]
    assert set(store.summary_drift().values()) == {0}


def test_a_product_seen_again_unchanged_is_not_written_again(store):
    """Every pass sees the products of the day's orders again: only what changes is written
    (updated_at says when), and a missing article or name never erases a known one."""
    def write(products, now):
        with store.transaction():
            before = store.db.conn.total_changes
            store.write_products(products, now)
            return store.db.conn.total_changes - before

    card = Product("wb-1", 111, "", "ART-8", "Пакет 8 мкм", "2000000000011")
    assert write([card], "2026-11-26T10:00:00+03:00") > 0
    assert write([card, replace(card, article=None, name=None, barcode=None)], "2026-11-26T10:10:00+03:00") == 0
    assert write([replace(card, name="Пакет 8 мкм, 100 шт")], "2026-11-26T10:20:00+03:00") > 0
    assert rows(store, "SELECT article, name, barcode, updated_at FROM products") == [
        ("ART-8", "Пакет 8 мкм, 100 шт", "2000000000011", "2026-11-26T10:20:00+03:00")]
    with store.transaction():  # a statistics row's subject never replaces a card's title
        store.write_products([replace(card, name="Пакеты")], "2026-11-26T10:30:00+03:00", names_fill_only=True)
    assert rows(store, "SELECT name, updated_at FROM products") == [("Пакет 8 мкм, 100 шт", "2026-11-26T10:20:00+03:00")]


def test_a_dataset_written_in_one_transaction_keeps_its_statement_journals_in_memory(store):
    """Each upsert fires triggers into a dozen summaries and journals, for its own rollback, the
    pages it changes that the transaction changed already. SQLite spills that journal to a
    temporary file past 64 KiB, so a pass wrote as much to temporary files as to its WAL; in
    memory nothing is written until the commit puts the pages in the WAL."""
    def written_before_commit(number: int, in_memory: bool) -> int:
        lines = [posting(f"{number}-{n:04}", "awaiting_packaging", sku=10 + n % 40) for n in range(400)]
        with store.transaction() if in_memory else bare_transaction():
            store.write_orders(lines[:200])  # the summaries' pages dirty in the transaction
            before = written_bytes()
            store.write_orders(lines[200:])
            return written_bytes() - before

    @contextlib.contextmanager
    def bare_transaction():  # (what Storage.transaction was)
        store.db.execute("BEGIN IMMEDIATE")
        yield
        store.db.execute("COMMIT")

    assert written_before_commit(1, in_memory=False) > 100_000  # (what a pass did)
    assert written_before_commit(2, in_memory=True) == 0
    assert store.db.execute("PRAGMA temp_store").fetchone()[0] == 0  # back to the default after


def test_a_transaction_s_pages_wait_in_the_cache_for_its_commit(store):
    """A pass's transactions change thousands of pages (the lines, their indexes and a dozen
    summaries). In SQLite's default cache of 2 MB they went to the WAL before the commit and again
    at it, a fifth of what a pass wrote; in the collector's cache they are written at the commit."""
    def written_before_commit(number: int, cache_kib: int) -> int:
        store.db.execute(f"PRAGMA cache_size=-{cache_kib}")
        lines = [posting(f"{number}-{n:05}", "awaiting_packaging", sku=10 + n % 500) for n in range(8000)]
        with store.transaction():
            before = written_bytes()
            store.write_orders(lines)
            return written_bytes() - before

    try:
        assert written_before_commit(1, 2000) > 100_000  # (SQLite's default)
        assert written_before_commit(2, storage_module.CACHE_KIB) == 0
    finally:
        store.db.execute(f"PRAGMA cache_size=-{storage_module.CACHE_KIB}")
    assert store.db.execute("PRAGMA cache_size").fetchone()[0] == -storage_module.CACHE_KIB


def test_a_failed_transaction_leaves_nothing_behind(store):
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction():
            store.write_orders([posting("1-1", "delivering")])
            store.db.execute("INSERT INTO accounts (account, marketplace, label) VALUES ('x', 'bad', 'x')")
    assert rows(store, "SELECT count(*) FROM orders") == [(0,)]


def test_unwritable_database_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError, match="cannot open the database"):
        Storage(blocker / "mp.db")


def test_a_run_cut_short_is_closed_as_failed_by_the_next_one(store):
    killed = store.start_run("2026-11-26T10:00:00+03:00", "timer")
    store.start_run("2026-11-26T10:10:00+03:00", "timer")
    assert rows(store, "SELECT id, status, finished_at FROM runs ORDER BY id")[0] == (
        killed, "failed", "2026-11-26T10:10:00+03:00")


def test_rows_are_compared_by_key_in_sqlites_order():
    """NULL before numbers before text, as SQLite sorts them: a key in one stream only, or with
    other values, is one row apart."""
    kept = [(None, "x", 1), (1, "a", 2), (2.5, "a", 2), ("a", "b", 3), ("ä", "b", 1)]
    recomputed = [(1, "a", 2), (2.5, "a", 3), ("a", "b", 3), ("b", "a", 1), ("ä", "b", 1)]
    assert rows_differing(iter(kept), iter(recomputed), 2) == 3
    assert rows_differing(iter(kept), iter(kept), 2) == 0
    assert rows_differing(iter([]), iter(recomputed), 2) == len(recomputed)
