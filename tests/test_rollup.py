"""The summaries the viewer reads are kept by triggers in step with the raw rows: after any
history, what they hold equals a recomputation from the raw rows alone (daily_figures_recomputed,
order_outcomes), and `mp-collector rebuild` and the upgrade of an old database produce exactly that.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
import re
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from collector import kept as kept_module
from collector.records import OrderLine, SaleEvent, StockLevel
from collector.storage import SCHEMA_VERSION, SUMMARIES, Storage, summary_drift, summary_rows

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DAYS = [f"2026-11-{d:02d}" for d in range(20, 31)]
MINUTES_KEPT_FROM = "2026-11-28"  # recent_minutes keeps the last days of DAYS, as a pass would
STATUSES = ["awaiting_packaging", "delivering", "delivered", "cancelled"]


def kept_and_recomputed(db) -> tuple[set, set]:
    return summary_rows(db)


def stale_outcomes(db) -> int:
    return summary_drift(db)["orders.outcome"]


def random_time(rng: random.Random) -> str:
    """A local time of day, either side of noon (the canned queries' "now" below is 12:00)."""
    return rng.choice(["00:00:01", "09:59:00", "11:59:59", "12:00:00", "12:01:00", "23:59:59"])


def random_order(rng: random.Random, n: int, days: list[str] = DAYS) -> OrderLine:
    status = rng.choice(STATUSES)
    day = rng.choice(days)
    line = OrderLine(account=rng.choice(["wb-1", "ozon-1", "ozon-2"]), order_id=f"o{n}", sku=rng.randint(1, 4), article=None,
                     size="", barcode=None, warehouse=rng.choice(["A", "B", None]), ordered_at=f"{day}T{random_time(rng)}+03:00",
                     day=day, status=status, is_cancelled=int(status == "cancelled"), cancelled_at=None,
                     quantity=rng.randint(1, 3), price_kopecks=rng.choice([None, 100, 12345]), changed_at=None,
                     payout_kopecks=rng.choice([None, 90]))
    # (an article of its own, one that several SKUs share, or none, and a barcode of its own, one
    # that is also an article, or none: named_skus; by the step, so that the random draws, and the
    # histories each seed gives, are those before them)
    return replace(line, article=[None, f"A-{line.sku}", "A-shared"][n % 3],
                   barcode=[None, f"B-{line.sku}", "A-shared"][n // 3 % 3])


def random_sale(rng: random.Random, order: OrderLine, n: int, days: list[str] = DAYS) -> SaleEvent:
    kind = rng.choice(["sale", "sale", "return"])
    day = rng.choice(days + [None])
    sale = SaleEvent(account=order.account, kind=kind, sale_id=f"s{n}", sku=order.sku,
                     order_id=rng.choice([order.order_id, order.order_id, None, "elsewhere"]), article=None, size="",
                     barcode=None, warehouse=rng.choice(["A", "B", None]),
                     sold_at=rng.choice([None, f"{day}T{random_time(rng)}+03:00"]) if day else None, day=day,
                     quantity=rng.randint(1, 2), amount_kopecks=rng.choice([None, 500, -500]),
                     return_type=rng.choice([None, "ClientReturn", "FullReturn"]), changed_at=None,
                     payout_kopecks=rng.choice([None, 400, -400]))
    return replace(sale, article=[None, order.article, "A-shared"][n % 3],
                   barcode=[None, order.barcode, "B-other"][n // 3 % 3])


def random_history(storage: Storage, rng: random.Random, steps: int = 300, days: list[str] = DAYS,
                   stock_in_order: bool = False) -> None:
    """Inserts, status changes, re-dated and moved rows, deletes and stock changes, in any order
    (the stock changes day after day, as passes write them, if `stock_in_order`)."""
    orders: list[OrderLine] = []
    sales: list[SaleEvent] = []
    for n in range(steps):
        action = rng.random()
        with storage.transaction():
            if action < 0.35 or not orders:
                orders.append(random_order(rng, n, days))
                storage.write_orders([orders[-1]])
            elif action < 0.45:
                # WB sends money as 0 for up to a day, then corrects it: only the price changes
                i = rng.randrange(len(orders))
                orders[i] = replace(orders[i], price_kopecks=rng.choice([None, 0, 777, 12345]))
                storage.write_orders([orders[i]])
            elif action < 0.55:
                i = rng.randrange(len(orders))
                # the same line, anything else changed: status, day, warehouse, quantity, price
                orders[i] = replace(random_order(rng, n, days), account=orders[i].account,
                                    order_id=orders[i].order_id, sku=orders[i].sku)
                storage.write_orders([orders[i]])
            elif action < 0.8:
                sales.append(random_sale(rng, rng.choice(orders), n, days))
                storage.write_sales([sales[-1]])
            elif action < 0.85 and sales:
                gone = sales.pop(rng.randrange(len(sales)))
                storage.db.execute("DELETE FROM sales WHERE account = ? AND kind = ? AND sale_id = ?",
                                   [gone.account, gone.kind, gone.sale_id])
            elif action < 0.88:
                gone = orders.pop(rng.randrange(len(orders)))
                storage.db.execute("DELETE FROM orders WHERE account = ? AND order_id = ?",
                                   [gone.account, gone.order_id])
            else:
                store = rng.choice(["ozon-1", "ozon-1", "ozon-2"])
                levels = [StockLevel(store, sku, "", wh, rng.randint(0, 5)) for sku in (1, 2) for wh in ("A", "B")
                          if rng.random() < 0.7]
                day = days[n * len(days) // steps] if stock_in_order else days[n % len(days)]
                storage.write_stock(store, levels, f"{day}T12:00:00+03:00", day, None)


@pytest.fixture
def storage(tmp_path):
    store = Storage(tmp_path / "mp.db")
    store.migrate()
    # two Ozon stores: the per-marketplace summaries add them up
    store.save_accounts([("wb-1", "wb", "WB"), ("ozon-1", "ozon", "Ozon"), ("ozon-2", "ozon", "Ozon 2")])
    store.keep_minutes_from(MINUTES_KEPT_FROM)
    yield store
    store.close()


@pytest.mark.parametrize("seed", range(6))
def test_summaries_equal_a_recomputation_after_a_random_history(storage, seed):
    random_history(storage, random.Random(seed))
    kept, recomputed = kept_and_recomputed(storage.db)
    assert kept == recomputed
    assert len(kept) > 20
    assert stale_outcomes(storage.db) == 0
    # A rebuild changes nothing that counts.
    storage.rebuild_summaries()
    assert kept_and_recomputed(storage.db)[0] == kept


@pytest.mark.parametrize("seed", range(3))
def test_the_monthly_stock_changes_equal_a_recomputation_across_months(storage, seed):
    """Rows moved between days of two months (and back) keep the monthly stock changes in step."""
    days = ["2026-09-30", "2026-10-01", "2026-10-31", "2026-11-01", "2026-11-02"]
    random_history(storage, random.Random(seed), days=days)
    kept, recomputed = kept_and_recomputed(storage.db)
    assert kept == recomputed
    for table in ("alias_warehouse_months", "alias_months"):
        assert {row[1] for row in kept if row[0] == table} == {"2026-09", "2026-10", "2026-11"}, table


def run_rebuild(storage: Storage, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector", "--env-file", "/dev/null", "rebuild", *args],
                          env={"DATABASE_PATH": str(storage.path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)


def test_rebuild_repairs_summaries_that_drifted(storage):
    random_history(storage, random.Random(42), steps=120)
    kept, _ = kept_and_recomputed(storage.db)
    with storage.transaction():  # what a bug or a hand edit could leave behind
        storage.db.execute("UPDATE daily_figures SET ordered = ordered + 7, ordered_kopecks = 1")
        storage.db.execute("UPDATE orders SET outcome = 'open'")
        storage.db.execute("UPDATE sku_stock SET quantity = quantity + 1")
    assert kept_and_recomputed(storage.db)[0] != kept

    checked = run_rebuild(storage, "--check")
    assert checked.returncode == 1
    assert "DIFF  sku_stock" in checked.stdout and "ok    sku_names: 0 rows" in checked.stdout
    assert "--    marketplace_alias_warehouse_stock_days: not kept now" in checked.stdout
    lines = checked.stdout.splitlines()  # (said first: a year's check takes minutes)
    assert lines[0].startswith("comparing the summaries") and lines[1].startswith("DIFF  daily_figures: ")
    assert "run `mp-collector rebuild`" in checked.stderr
    assert kept_and_recomputed(storage.db)[0] != kept  # a check writes nothing
    result = run_rebuild(storage)
    assert result.returncode == 0, result.stderr
    assert "daily_figures rows" in result.stdout
    assert kept_and_recomputed(storage.db)[0] == kept
    assert stale_outcomes(storage.db) == 0
    checked = run_rebuild(storage, "--check")
    assert checked.returncode == 0 and "DIFF" not in checked.stdout


def test_a_version_1_database_is_upgraded_in_one_step(tmp_path):
    """A database written by the previous release (schema.sql as it was) gains money, outcomes and
    first stock days, and its figures stay what they were."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript((FIXTURES / "schema_v1.sql").read_text(encoding="utf-8"))
    with old:
        old.execute("INSERT INTO accounts VALUES ('wb-1', 'wb', 'WB')")
        old.executemany(
            "INSERT INTO orders (account, order_id, sku, warehouse, ordered_at, day, status, is_cancelled, quantity, "
            "price_kopecks) VALUES ('wb-1', ?, 7, 'A', ?, ?, ?, ?, 1, 10050)",
            [("o1", "2026-11-20T10:00:00+03:00", "2026-11-20", "ordered", 0),
             ("o2", "2026-11-20T11:00:00+03:00", "2026-11-20", "cancelled", 1),
             ("o3", "2026-11-21T10:00:00+03:00", "2026-11-21", "ordered", 0)])
        old.executemany(
            "INSERT INTO sales (account, kind, sale_id, sku, order_id, warehouse, sold_at, day, quantity, amount_kopecks) "
            "VALUES ('wb-1', ?, ?, 7, ?, 'A', ?, ?, 1, ?)",
            [("sale", "S1", "o1", "2026-11-22T10:00:00+03:00", "2026-11-22", 10050),
             ("return", "R3", "o3", "2026-11-23T10:00:00+03:00", "2026-11-23", -10050)])
        old.executemany("INSERT INTO stock (account, sku, size, warehouse, quantity, observed_at, day) "
                        "VALUES ('wb-1', 7, '', 'A', ?, ?, ?)",
                        [(5, "2026-11-19T10:00:00+03:00", "2026-11-19"), (3, "2026-11-22T10:00:00+03:00", "2026-11-22")])
        old.execute("INSERT INTO stock_current (account, sku, size, warehouse, quantity, changed_at, seen_at) "
                    "VALUES ('wb-1', 7, '', 'A', 3, '2026-11-22T10:00:00+03:00', '2026-11-22T10:00:00+03:00')")
        old.execute("PRAGMA user_version = 1")
    units_before = old.execute("SELECT day, ordered, bought, returned, stock_delta FROM daily_figures "
                               "ORDER BY day").fetchall()
    old.close()

    storage = Storage(path)
    assert storage.migrate() == 1
    assert storage.schema_version == SCHEMA_VERSION
    db = storage.db
    assert db.execute("SELECT day, ordered, bought, returned, stock_delta FROM daily_figures ORDER BY day").fetchall() \
        == units_before
    assert db.execute("SELECT order_id, outcome FROM orders ORDER BY order_id").fetchall() == [
        ("o1", "bought"), ("o2", "not_bought"), ("o3", "not_bought")]
    assert db.execute("SELECT day, ordered_kopecks, bought_kopecks, returned_kopecks, cohort_units, cohort_bought, "
                      "cohort_not_bought FROM daily_figures WHERE ordered_lines + sales_lines > 0 "
                      "OR cohort_units > 0 ORDER BY day").fetchall() == [
        ("2026-11-20", 10050, 0, 0, 2, 1, 1), ("2026-11-21", 10050, 0, 0, 1, 0, 1),
        ("2026-11-22", 0, 10050, 0, 0, 0, 0), ("2026-11-23", 0, 0, 10050, 0, 0, 0)]
    assert db.execute("SELECT first_day FROM stock_current").fetchall() == [("2026-11-19",)]
    kept, recomputed = kept_and_recomputed(db)
    assert kept == recomputed
    # Applying the schema again (every start does) changes nothing.
    storage.migrate()
    assert kept_and_recomputed(db)[0] == kept
    storage.close()


def test_a_version_2_database_gains_the_sku_summaries_from_what_it_kept(storage):
    random_history(storage, random.Random(7), steps=150)
    kept, _ = kept_and_recomputed(storage.db)
    assert {row[0] for row in kept} == {table for table, _, _ in SUMMARIES}
    with storage.transaction():  # the database as schema version 2 left it: every summary after
        # daily_figures gone, with the triggers that keep them
        newer = [table for table, _, _ in SUMMARIES if table != "daily_figures"]
        for name, sql in storage.db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall():
            if any(re.search(rf"\b{table}\b", sql) for table in newer):
                storage.db.execute(f"DROP TRIGGER {name}")
        for table in newer:
            storage.db.execute(f"DROP TABLE {table}")
        storage.db.execute("PRAGMA user_version = 2")
    assert storage.migrate() == 2 and storage.schema_version == SCHEMA_VERSION
    assert kept_and_recomputed(storage.db)[0] == kept


def test_a_version_6_database_gains_the_later_summaries_in_steps_it_logs(storage, monkeypatch, caplog):
    """Schema 7's upgrade fills alias_warehouse_days and alias_warehouse_stock anew,
    schema 8's marketplace_alias_days, schema 9's account_warehouse_days, schema 10's
    alias_warehouse_first_days, schema 11's alias_warehouse_months, schema 12's alias_months (schema
    13's new columns of alias_warehouse_days come with the table; schema 14 sets restock_now_basis
    anew; schema 15 judges partly returned order lines again; schema 16 renames
    the triggers that clear it; schema 17 makes restock_now anew; schema 18 adds the order cohort
    per warehouse; schema 19 keys alias_warehouse_days anew; schema 20 fills
    marketplace_alias_warehouse_days; schema 21 recent_minutes; schema 22
    marketplace_alias_warehouses; schema 23 makes today_now anew, with its week and month; schema 30
    lets alert_outbox hold the disk's alerts; schema 31 adds the SKU
    to orders_day and sales_day; schema 32 counts each article's SKUs and schema 33 each barcode's too), from what version 6 kept,
    statement by statement in one transaction, saying in the log what it is doing and, while a
    statement runs, how long it has taken so far."""
    import logging

    from collector import storage as storage_module

    random_history(storage, random.Random(8), steps=150)
    storage.replace_aliases([("ozon", "1", "Группа", 1), ("wb", "2", "Группа", 2)])
    kept, _ = kept_and_recomputed(storage.db)
    assert {row[0] for row in kept} >= {"alias_warehouse_days", "alias_warehouse_stock", "marketplace_alias_days",
                                        "account_warehouse_days", "alias_warehouse_first_days",
                                        "alias_warehouse_months", "alias_months"}
    with storage.transaction():  # the database as schema version 6 left it
        for name, sql in storage.db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall():
            if any(table in sql for table in ("alias_warehouse", "marketplace_alias_days", "account_warehouse",
                                              "alias_months", "recent_minutes")):
                storage.db.execute(f"DROP TRIGGER {name}")
        storage.db.execute("DROP VIEW account_warehouse_days_recomputed")
        storage.db.execute("DROP TABLE alias_warehouse_days")
        storage.db.execute("DROP TABLE account_warehouse_days")
        storage.db.execute("DROP VIEW marketplace_aliases")
        storage.db.execute("DROP TABLE marketplace_alias_days")
        storage.db.execute("DROP VIEW alias_warehouse_first_days_recomputed")
        storage.db.execute("DROP TABLE alias_warehouse_first_days")
        storage.db.execute("DROP VIEW alias_warehouse_months_recomputed")
        storage.db.execute("DROP TABLE alias_warehouse_months")
        storage.db.execute("DROP VIEW alias_months_recomputed")
        storage.db.execute("DROP TABLE alias_months")
        storage.db.execute("DROP VIEW marketplace_alias_warehouse_days_recomputed")
        storage.db.execute("DROP TABLE marketplace_alias_warehouse_days")
        storage.db.execute("DROP VIEW recent_minutes_recomputed")
        storage.db.execute("DROP TABLE recent_minutes")
        storage.db.execute("DROP TABLE recent_minutes_floor")
        storage.db.execute("DROP VIEW marketplace_alias_warehouses_recomputed")
        storage.db.execute("DROP TABLE marketplace_alias_warehouses")
        storage.db.execute("PRAGMA user_version = 6")
    monkeypatch.setattr(storage_module, "PROGRESS_EVERY", 0)
    monkeypatch.setattr(storage_module, "PROGRESS_CHECK", 1_000)  # a small database is quick
    with caplog.at_level(logging.INFO):
        assert storage.migrate() == 6 and storage.schema_version == SCHEMA_VERSION == 34
    assert kept_and_recomputed(storage.db)[0] == kept
    said = [record.getMessage() for record in caplog.records]
    steps = [line for line in said if line.startswith("upgrading the database from schema 6 to 34: ")]
    assert [line.rsplit(" (", 1)[1] for line in steps if line.endswith(" of 31)")] == [f"{n} of 31)" for n in range(1, 32)]
    assert "upgrading the database from schema 6 to 34: schema 7: filling alias_warehouse_days, alias_warehouse_stock (14 of 31)" in said
    assert "upgrading the database from schema 6 to 34: schema 8: filling marketplace_alias_days (15 of 31)" in said
    assert "upgrading the database from schema 6 to 34: schema 9: filling account_warehouse_days (16 of 31)" in said
    assert "upgrading the database from schema 6 to 34: schema 10: filling alias_warehouse_stock, alias_warehouse_first_days (17 of 31)" in said
    assert "upgrading the database from schema 6 to 34: schema 11: filling alias_warehouse_months (18 of 31)" in said
    assert "upgrading the database from schema 6 to 34: schema 12: filling alias_months (19 of 31)" in said
    assert "upgrading the database from schema 6 to 34: schema 13: filling alias_warehouse_days (20 of 31)" in said
    assert "upgrading the database from schema 6 to 34: schema 15: filling orders (21 of 31)" in said
    assert ("upgrading the database from schema 6 to 34: schema 18: filling alias_warehouse_days, "
            "account_warehouse_days (22 of 31)") in said
    assert "upgrading the database from schema 6 to 34: schema 20: filling marketplace_alias_warehouse_days (23 of 31)" in said
    assert "upgrading the database from schema 6 to 34: schema 21: filling recent_minutes (24 of 31)" in said
    assert "upgrading the database from schema 6 to 34: schema 22: filling marketplace_alias_warehouses (25 of 31)" in said
    assert "upgrading the database from schema 6 to 34: schema 25: filling warehouse_month_basis (26 of 31)" in said
    assert ("upgrading the database from schema 6 to 34: schema 31: filling the statistics of orders, "
            "the statistics of sales (28 of 31)") in said
    assert "upgrading the database from schema 6 to 34: schema 33: filling named_skus (29 of 31)" in said
    assert "upgrading the database from schema 6 to 34: schema 34: filling the statistics of sales_undated (30 of 31)" in said
    assert any(line.endswith(" s so far") for line in steps), said
    assert any(line.startswith("database upgraded from schema 6 to 34 in ") for line in said)


COHORT = ("cohort_units", "cohort_bought", "cohort_not_bought")


def as_version_without(storage, version: int, columns: dict[str, tuple[str, ...]]) -> None:
    """The database as schema `version` left it: without the columns later versions added (and
    the triggers and views that name their tables, which schema.sql makes again)."""
    with storage.transaction():
        for name, kind, sql in storage.db.execute("SELECT name, type, sql FROM sqlite_master "
                                                  "WHERE type IN ('trigger', 'view')").fetchall():
            if any(table in sql for table in columns):
                storage.db.execute(f"DROP {kind.upper()} {name}")
        for table, names in columns.items():
            for column in names:
                storage.db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        storage.db.execute(f"PRAGMA user_version = {version}")


def test_a_version_12_database_gains_the_money_returned_and_paid_out_per_group_and_warehouse(storage):
    """Schema 13 adds returned_kopecks and payout_kopecks to alias_warehouse_days and fills them
    from what daily_figures kept; the other summaries stay as they were."""
    random_history(storage, random.Random(13), steps=200)
    kept, _ = kept_and_recomputed(storage.db)
    money = [row[14:16] for row in kept if row[0] == "alias_warehouse_days"]  # returned, paid out
    assert any(returned or paid for returned, paid in money)
    as_version_without(storage, 12, {"alias_warehouse_days": ("returned_kopecks", "payout_kopecks", *COHORT),
                                      "account_warehouse_days": ("returned_kopecks", "payout_kopecks", *COHORT)})
    assert storage.migrate() == 12 and storage.schema_version == SCHEMA_VERSION
    assert kept_and_recomputed(storage.db)[0] == kept


def test_a_version_17_database_gains_the_order_cohort_per_warehouse(storage):
    """Schema 18 adds the order cohort to alias_warehouse_days, and the cohort and the money
    returned and paid out to account_warehouse_days, filled from what daily_figures kept; the other
    summaries stay as they were."""
    random_history(storage, random.Random(18), steps=200)
    kept, _ = kept_and_recomputed(storage.db)
    cohorts = [row[-3:] for row in kept if row[0] in ("alias_warehouse_days", "account_warehouse_days")]
    assert any(units and bought for units, bought, _ in cohorts) and any(not_bought for *_, not_bought in cohorts)
    as_version_without(storage, 17, {"alias_warehouse_days": COHORT,
                                      "account_warehouse_days": ("returned_kopecks", "payout_kopecks", *COHORT)})
    assert storage.migrate() == 17 and storage.schema_version == SCHEMA_VERSION
    assert kept_and_recomputed(storage.db)[0] == kept


def test_a_version_18_database_keys_alias_warehouse_days_by_day_and_warehouse(storage):
    """Schema 19 gives alias_warehouse_days the key (day, warehouse, account, alias), so that one
    warehouse's days are key ranges: every row stays, and the triggers keep it in step after."""
    from collector import storage as storage_module

    random_history(storage, random.Random(19), steps=150)
    kept, _ = kept_and_recomputed(storage.db)
    assert any(row[0] == "alias_warehouse_days" for row in kept)
    with storage.transaction():  # the table as schema version 18 keyed it
        storage.db.execute("ALTER TABLE alias_warehouse_days RENAME TO alias_warehouse_days_19")
        storage.db.execute(storage_module.create_statement("alias_warehouse_days").replace(
            "PRIMARY KEY (day, warehouse, account, alias)", "PRIMARY KEY (day, account, alias, warehouse)"))
        storage.db.execute("INSERT INTO alias_warehouse_days SELECT * FROM alias_warehouse_days_19")
        storage.db.execute("DROP TABLE alias_warehouse_days_19")
        storage.db.execute("PRAGMA user_version = 18")

    def key() -> list[str]:
        return [name for _, name in sorted((pk, name) for _, name, _, _, _, pk in
                                           storage.db.execute("PRAGMA table_info(alias_warehouse_days)") if pk)]
    assert key() == ["day", "account", "alias", "warehouse"]
    assert storage.migrate() == 18 and storage.schema_version == SCHEMA_VERSION
    assert key() == ["day", "warehouse", "account", "alias"]
    assert kept_and_recomputed(storage.db)[0] == kept
    random_history(storage, random.Random(20), steps=150)
    kept, recomputed = kept_and_recomputed(storage.db)
    assert kept == recomputed



def test_a_version_19_database_gains_each_warehouse_per_marketplace_and_group(storage):
    """Schema 20 fills marketplace_alias_warehouse_days (what `history` at a warehouse reads) from
    alias_warehouse_days; the other summaries stay as they were, and the triggers keep the new
    one in step after."""
    random_history(storage, random.Random(20), steps=200)
    storage.replace_aliases([("ozon", "1", "Группа", 1), ("wb", "2", "Группа", 2)])
    kept, _ = kept_and_recomputed(storage.db)
    assert any(row[0] == "marketplace_alias_warehouse_days" for row in kept)
    with storage.transaction():  # the database as schema version 19 left it
        for (name,) in storage.db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                          "AND name LIKE 'marketplace_alias_warehouse_days%'").fetchall():
            storage.db.execute(f"DROP TRIGGER {name}")
        storage.db.execute("DROP VIEW marketplace_alias_warehouse_days_recomputed")
        storage.db.execute("DROP TABLE marketplace_alias_warehouse_days")
        storage.db.execute("PRAGMA user_version = 19")
    assert storage.migrate() == 19 and storage.schema_version == SCHEMA_VERSION
    assert kept_and_recomputed(storage.db)[0] == kept
    random_history(storage, random.Random(21), steps=150)
    storage.replace_aliases([("ozon", "1", "Другая", 1)])  # a SKU's days move to another group
    kept, recomputed = kept_and_recomputed(storage.db)
    assert kept == recomputed


def test_an_upgrade_to_schema_21_keeps_the_last_days_minutes(storage):
    """Schema 21 keeps minutes per SKU and warehouse (recent_minutes) from the day before the
    last day with orders or buyouts; the next pass moves the floor on."""
    random_history(storage, random.Random(30), steps=200)
    with storage.transaction():  # the database as schema version 20 left it
        for (name,) in storage.db.execute("SELECT name FROM sqlite_master WHERE type IN ('trigger', 'view') "
                                          "AND name LIKE 'recent_minutes%'").fetchall():
            kind = "TRIGGER" if name.endswith(("_added", "_changed", "_removed")) else "VIEW"
            storage.db.execute(f"DROP {kind} {name}")
        storage.db.execute("DROP TABLE recent_minutes")
        storage.db.execute("DROP TABLE recent_minutes_floor")
        storage.db.execute("PRAGMA user_version = 20")
    assert storage.migrate() == 20 and storage.schema_version == SCHEMA_VERSION
    last_day = storage.db.execute("SELECT max(day) FROM minute_lines").fetchone()[0]
    assert storage.db.execute("SELECT day FROM recent_minutes_floor").fetchone()[0] == str(
        date.fromisoformat(last_day) - timedelta(days=2))
    kept, recomputed = kept_and_recomputed(storage.db)
    assert kept == recomputed and any(row[0] == "recent_minutes" for row in kept)
    random_history(storage, random.Random(31), steps=100)
    assert kept_and_recomputed(storage.db)[0] == kept_and_recomputed(storage.db)[1]


def test_an_upgrade_to_schema_22_lists_the_places_and_keeps_them_in_step(storage):
    """Schema 22 counts the days that moved per place of marketplace_alias_warehouse_days
    (marketplace_alias_warehouses), filled at the upgrade; its triggers then keep it, SKUs moved
    between groups and back too."""
    random_history(storage, random.Random(50), steps=200)
    with storage.transaction():  # the database as schema version 21 left it
        for change in ("added", "changed", "removed"):
            storage.db.execute(f"DROP TRIGGER marketplace_alias_warehouses_{change}")
        storage.db.execute("DROP VIEW marketplace_alias_warehouses_recomputed")
        storage.db.execute("DROP TABLE marketplace_alias_warehouses")
        storage.db.execute("PRAGMA user_version = 21")
    assert storage.migrate() == 21 and storage.schema_version == SCHEMA_VERSION
    kept, recomputed = kept_and_recomputed(storage.db)
    assert kept == recomputed and sum(row[0] == "marketplace_alias_warehouses" for row in kept) > 5
    rng = random.Random(51)
    groups = set()
    for aliases in ([("ozon", "1", "Группа", 1), ("wb", "2", "Группа", 2)], [("ozon", "1", "Другая", 1)], []):
        random_history(storage, rng, steps=60)
        storage.replace_aliases(aliases)  # every day of a SKU moves to another group, and back
        kept, recomputed = kept_and_recomputed(storage.db)
        assert kept == recomputed
        groups |= {row[3] for row in kept if row[0] == "marketplace_alias_warehouses"}
    assert {"Группа", "Другая"} <= groups


def test_an_upgrade_to_schema_23_keeps_today_for_the_week_and_the_month_at_once(storage, tmp_path):
    """Schema 23 makes today_now anew, keyed by its period; the upgrade computes the pages kept
    ready at once, so «Сегодня» for the day, the week and the month are read as kept."""
    from collector.config import load_settings
    from collector.pipeline import upgrade

    random_history(storage, random.Random(60), steps=100)
    storage.replace_aliases([("ozon", "1", "Группа", 1), ("wb", "2", "Другая", 2)])
    with storage.transaction():  # the database as schema version 22 left it
        storage.db.execute("DROP TABLE today_now")
        storage.db.execute("CREATE TABLE today_now (position INTEGER PRIMARY KEY, alias TEXT NOT NULL, "
                           "day TEXT NOT NULL, computed_at TEXT NOT NULL)")
        storage.db.execute("INSERT INTO today_now VALUES (1, 'Группа', '2026-11-26', '2026-11-26T12:00:00+03:00')")
        storage.db.execute("PRAGMA user_version = 22")
    upgrade(load_settings(None, {"DATABASE_PATH": str(storage.path), "ALIASES_FILE": str(tmp_path / "none.csv")}),
            storage)
    assert storage.schema_version == SCHEMA_VERSION
    kept = storage.db.execute("SELECT days, alias FROM today_now ORDER BY days, position").fetchall()
    assert {days for days, _ in kept} == {1, 7, 30}
    assert [alias for days, alias in kept if days == 30][:2] == ["Группа", "Другая"]


def test_an_upgrade_to_schema_25_shows_the_warehouse_pages_for_the_week_computed_then_kept(storage, tmp_path):
    """Schema 25 keeps «По складам» for the last 7 days too: a database whose kept pages were
    vouched for without it shows the week computed once upgraded, and the upgrade keeps it at once."""
    from collector.config import load_settings
    from collector.pipeline import refresh_kept

    random_history(storage, random.Random(61), steps=100)
    storage.replace_aliases([("ozon", "1", "Группа", 1), ("wb", "2", "Другая", 2)])
    refresh_warehouse_month(storage)
    with storage.transaction():  # the database as schema version 24 left it
        storage.db.execute("DELETE FROM warehouse_month_now WHERE page = 'by_warehouse week'")
        storage.db.execute("PRAGMA user_version = 24")
    week = [("by_warehouse", {"period": "week"})]
    assert canned_rows(storage.path, asked=week) == [[]]  # (vouched for, not there)
    # (nothing vouched for: schema 25 sets the basis aside, and schema 28 makes the kept pages anew)
    assert storage.migrate() == 24 and in_step(storage) == []
    assert canned_rows(storage.path, asked=week) == [computed_month_pages(storage)[10]] != [[]]
    settings = load_settings(None, {"DATABASE_PATH": str(storage.path), "ALIASES_FILE": str(tmp_path / "none.csv")})
    refresh_kept(settings, storage, datetime.fromisoformat(NOW))  # (what pipeline.upgrade does next)
    assert storage.schema_version == SCHEMA_VERSION and in_step(storage) == [("2026-11-30", 1)]
    assert storage.db.execute("SELECT count(*) FROM warehouse_month_now WHERE page = 'by_warehouse week'").fetchone()[0]
    assert canned_rows(storage.path, asked=week) == [computed_month_pages(storage)[10]] != [[]]


def test_the_minutes_kept_follow_their_floor_either_way(storage):
    """A pass moves recent_minutes' floor: the days before it leave, the days from it on that it
    did not keep come from the raw lines, and the triggers keep no day before it."""
    rng = random.Random(40)
    random_history(storage, rng, steps=150)
    for floor in ("2026-11-30", "2026-11-21", "2026-11-26", "2026-12-01", "2026-11-20"):
        storage.keep_minutes_from(floor)
        random_history(storage, rng, steps=40)
        kept, recomputed = kept_and_recomputed(storage.db)
        assert kept == recomputed
        kept_days = {row[1] for row in kept if row[0] == "recent_minutes"}
        assert kept_days == {day for (day,) in storage.db.execute(
            "SELECT DISTINCT day FROM minute_lines WHERE day >= ?", [floor])}
        assert kept_days or floor == "2026-12-01"


# The canned queries that read sku_days / sku_stock, with and without a warehouse (which reads
# daily_figures and stock_current instead), for today, a past day and longer windows.
ASKED = [("summary", {}), ("summary", {"warehouse": "A"}), ("summary", {"date": "2026-11-24", "period": "week"}),
         ("today", {}), ("today", {"period": "month"}), ("today", {"date": "2026-11-22"}),
         ("today", {"warehouse": "B"}), ("history", {"days": "30"}), ("history", {"days": "30", "warehouse": "A"}),
         ("history", {"days": "12", "warehouse": "B", "period": "week", "date": "2026-11-24"}),
         ("history", {"days": "12", "period": "week", "by": "marketplace"}), ("buyout", {}), ("buyout", {"days": "7"}),
         ("days_of_cover", {}), ("days_of_cover", {"days": "5", "warehouse": "A"}),
         ("today_vs_yesterday", {}), ("today_vs_yesterday", {"alias": "Группа"}),
         ("today_vs_yesterday", {"warehouse": "A"}), ("by_warehouse", {}),
         ("by_warehouse", {"date": "2026-11-22", "period": "week"}), ("by_warehouse", {"date": "2026-10-31"}),
         ("by_warehouse", {"date": "2026-11-21"}), ("stock_by_warehouse", {}),
         ("stock_by_warehouse", {"alias": "Группа"}), ("restock_window", {}), ("restock_window", {"days": "5"}),
         ("restock_window", {"alias": "Группа"}), ("alias_warehouses", {}), ("alias_warehouses", {"alias": "Группа"})]


def recomputed_views(conn) -> str:
    """Temp views named like the summaries the queries read, as a recomputation from the raw rows
    would give them: schema.sql's own *_recomputed views, sku_days and sku_stock over
    daily_figures_recomputed and stock_current, alias_days and alias_stock over those,
    minute_totals and alias_warehouse_stock over the raw rows, alias_warehouse_days over
    daily_figures_recomputed, marketplace_alias_days and alias_months over alias_days,
    account_warehouse_days, alias_warehouse_months and marketplace_alias_warehouse_days over
    alias_warehouse_days, recent_minutes over the raw rows."""
    sql = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE '%_recomputed'"))

    def temp(summary: str, **sources: str) -> str:
        text = sql[f"{summary}_recomputed"].replace(f"VIEW {summary}_recomputed", f"TEMP VIEW {summary}")
        for table, source in sources.items():
            text = text.replace(f"FROM {table}", f"FROM {source}")
        return text + ";\n"

    # (a temp view's plain name finds the temp views first: alias_days reads the temp sku_days)
    return (temp("sku_days", daily_figures="main.daily_figures_recomputed")
            + temp("sku_stock", stock_current="main.stock_current")
            + temp("alias_days") + temp("alias_stock") + temp("minute_totals") + temp("alias_warehouse_stock")
            + temp("alias_warehouse_days", daily_figures="main.daily_figures_recomputed")
            + temp("marketplace_alias_days") + temp("account_warehouse_days") + temp("alias_warehouse_months")
            + temp("alias_months") + temp("marketplace_alias_warehouse_days") + temp("recent_minutes"))


def canned_rows(path: Path, recomputed: bool = False, asked: list = ASKED,
                now: str = "2026-11-30T09:00:00+00:00") -> list:
    """Each query asked for's rows at `now` (12:00 in Moscow), the viewer's functions registered."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from collector.alerts import canned_sql
    from collector.sqlfunctions import prepare_collector_connection

    conn = sqlite3.connect(path)
    prepare_collector_connection(conn, ZoneInfo("Europe/Moscow"), lambda: datetime.fromisoformat(now))
    if recomputed:  # temp objects come first in name lookup: the queries read these instead
        conn.executescript(recomputed_views(conn))
    sql = canned_sql()
    try:
        return [conn.execute(sql[name], {n: params.get(n, "") for n in re.findall(r":(\w+)", sql[name])}).fetchall()
                for name, params in asked]
    finally:
        conn.close()


@pytest.mark.parametrize("seed", range(3))
def test_the_viewer_reads_from_the_summaries_what_the_raw_rows_say(storage, seed):
    random_history(storage, random.Random(100 + seed))
    storage.db.execute("INSERT INTO sku_aliases (marketplace, key, alias, position) VALUES ('ozon', '1', 'Группа', 1)")
    storage.db.conn.commit()
    kept = canned_rows(storage.path, recomputed=False)
    assert kept == canned_rows(storage.path, recomputed=True)
    assert all(kept[:4]) and sum(len(rows) for rows in kept) > 40  # the queries found something to add up


# Queries whose rows are per group, and the group's column: asked for one group, they give that
# group's rows of the unfiltered answer, whichever summary each reads (per group unfiltered, per SKU
# filtered).
PER_GROUP = [("today", {}, 0), ("today", {"period": "week"}, 0), ("history", {"days": "12"}, 1),
             ("buyout", {}, 0), ("days_of_cover", {}, 0), ("stock_by_warehouse", {}, 0), ("by_warehouse", {}, 0),
             ("restock_window", {}, 0)]


@pytest.mark.parametrize("seed", range(2))
def test_a_group_asked_for_is_its_rows_of_the_whole(storage, seed):
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from collector.alerts import canned_sql
    from collector.sqlfunctions import prepare_collector_connection

    random_history(storage, random.Random(200 + seed))
    storage.replace_aliases([("ozon", "1", "Группа", 1), ("wb", "2", "Группа", 1), ("ozon", "3", "Другая", 2)])
    conn = sqlite3.connect(storage.path)
    prepare_collector_connection(conn, ZoneInfo("Europe/Moscow"), lambda: datetime(2026, 11, 30, 9, tzinfo=timezone.utc))
    sql = canned_sql()
    try:
        for name, params, column in PER_GROUP:
            def rows(**asked):
                values = {**params, **asked}
                return conn.execute(sql[name], {n: values.get(n, "") for n in re.findall(r":(\w+)", sql[name])}).fetchall()
            whole = rows()
            for group in ("Группа", "Другая", "4"):
                assert rows(alias=group) == [row for row in whole if row[column] == group], (name, params, group)
            assert any(row[column] == "Группа" for row in whole), name
    finally:
        conn.close()


def test_names_follow_products_and_aliases_whatever_changes(storage):
    """sku_names is what sku_groups' rule says after every kind of change: articles learned and
    changed, aliases by SKU and by article added, replaced, edited and removed; alias_days and
    alias_stock move a SKU's figures with it."""
    from collector.records import Product

    random_history(storage, random.Random(5), steps=80)
    rng = random.Random(9)

    def names_agree():  # and each group's days and stock follow its SKUs
        kept, recomputed = kept_and_recomputed(storage.db)
        assert kept == recomputed

    names_agree()
    for step in range(12):
        with storage.transaction():
            storage.write_products([Product(account, sku, size, rng.choice([None, "A-1", "A-2", "A-9", f"A-{sku}"]), None, None)
                                    for account in ("wb-1", "ozon-1") for sku in (1, 2, 3, 4, 5)
                                    for size in ("", "S") if rng.random() < 0.5], f"2026-11-30T10:{step:02d}:00+03:00")
        names_agree()
        keys = ["1", "2", "5", "A-1", "A-2", "A-3"]
        rows = [(mp, key, f"Группа {rng.randint(1, 3)}", n) for n, (mp, key) in enumerate(
                 (mp, key) for mp in ("wb", "ozon") for key in keys if rng.random() < 0.4)]
        storage.replace_aliases(rows)
        names_agree()
        if rows:
            with storage.transaction():  # a hand edit of one alias row
                storage.db.execute("UPDATE OR IGNORE sku_aliases SET alias = 'Правка', key = 'A-9' WHERE rowid = "
                                   "(SELECT min(rowid) FROM sku_aliases)")
            names_agree()
    assert storage.db.execute("SELECT count(DISTINCT alias) FROM sku_names").fetchone()[0] > 3
    assert storage.db.execute("SELECT count(DISTINCT alias) FROM alias_days WHERE ordered <> 0").fetchone()[0] > 2


@pytest.mark.parametrize("seed", range(4))
def test_history_streams_the_rows_the_whole_grid_gives(storage, seed):
    """history looks each period of each group up (marketplace_alias_days, or the asked SKUs'
    days) in the order of its rows, with no sort; the oracle (its schema-7 SQL) builds the whole
    grid, runs a window over it and sorts it. Same rows, same order, for windows shorter and
    longer than the history, weeks and months, by marketplace, a marketplace, a warehouse, a group,
    an article or SKU and a past date."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from collector.alerts import canned_sql
    from collector.sqlfunctions import prepare_collector_connection

    rng = random.Random(400 + seed)
    random_history(storage, rng)
    storage.replace_aliases([("ozon", "1", "Группа", 1), ("ozon", "2", "Группа", 2), ("wb", "3", "Другая", 3),
                             ("wb", "2", "Б-группа", 4)])
    oracle = (FIXTURES / "history_grid.sql").read_text(encoding="utf-8")
    conn = sqlite3.connect(storage.path)
    prepare_collector_connection(conn, ZoneInfo("Europe/Moscow"), lambda: datetime(2026, 11, 30, 9, tzinfo=timezone.utc))
    try:
        shown = set()
        for asked in ({}, {"days": "1"}, {"days": "3"}, {"days": "30"}, {"days": "12", "period": "week"},
                      {"days": "45", "period": "month"}, {"by": "marketplace"}, {"by": "marketplace", "period": "week"},
                      {"marketplace": "ozon"}, {"warehouse": "A"}, {"warehouse": "B", "by": "marketplace"},
                      {"alias": "Группа"}, {"alias": "2"}, {"alias": "Группа", "by": "marketplace", "period": "week"},
                      {"date": "2026-11-25", "days": "4"}, {"date": "2026-11-25", "period": "week", "days": "9"}):
            def rows(sql):
                return conn.execute(sql, {n: asked.get(n, "") for n in re.findall(r":(\w+)", sql)}).fetchall()
            expected = rows(oracle)
            assert rows(canned_sql()["history"]) == expected, asked
            shown |= {(row[1], row[2], bool(row[6])) for row in expected}
        # groups of both marketplaces, and (the Ozon stores') stock on some days
        assert {"ozon", "wb"} <= {mp for _, mp, _ in shown} and len(shown) > 3
        assert ("Группа", "ozon", True) in shown
    finally:
        conn.close()


@pytest.mark.parametrize("seed", range(4))
def test_restock_judges_quiet_days_together_as_it_would_one_by_one(storage, seed):
    """restock_window judges the days between two moves of a place's figures together; the oracle
    (its schema-6 SQL) judges every day of every place one by one. Same rows, same order, for
    windows shorter and longer than the history, a group, a marketplace and soon=1."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from collector.alerts import canned_sql
    from collector.sqlfunctions import prepare_collector_connection

    rng = random.Random(300 + seed)
    random_history(storage, rng)
    storage.replace_aliases([("ozon", "1", "Группа", 1), ("ozon", "2", "Группа", 2), ("wb", "3", "Другая", 3)])
    # keys first seen within the window, so that days before a first observation count too
    storage.db.execute("UPDATE stock_current SET first_day = ? WHERE sku = 2", [rng.choice(DAYS)])
    storage.db.conn.commit()
    oracle = (Path(__file__).parent / "fixtures" / "restock_window_day_by_day.sql").read_text(encoding="utf-8")
    conn = sqlite3.connect(storage.path)
    prepare_collector_connection(conn, ZoneInfo("Europe/Moscow"), lambda: datetime(2026, 11, 30, 9, tzinfo=timezone.utc))
    try:
        judged = lost_roubles = 0
        for asked in ({}, {"days": "1"}, {"days": "3"}, {"days": "30"}, {"alias": "Группа"}, {"alias": "2"},
                      {"marketplace": "ozon", "days": "7"}, {"soon": "1"}):
            def rows(sql):
                return conn.execute(sql, {n: asked.get(n, "") for n in re.findall(r":(\w+)", sql)}).fetchall()
            expected = rows(oracle)
            assert rows(canned_sql()["restock_window"]) == expected, asked
            judged += sum(row[8] or 0 for row in expected)
            lost_roubles += sum(row[10] or 0 for row in expected)
        assert judged > 0 and lost_roubles > 0  # some days were out of stock, with orders in stock to price them
        # Every window of every group, read from each place's last 60 days as a pass keeps them
        kept_places = refresh_restock_days(storage, datetime(2026, 11, 30, 9, tzinfo=timezone.utc))
        assert kept_places == storage.db.execute("SELECT count(*) FROM restock_days_now").fetchone()[0] > 0
        for asked in [{"days": str(days)} for days in range(1, 61)] + [
                {}, {"marketplace": "ozon", "days": "7"}, {"marketplace": "wb", "days": "11"},
                {"soon": "1", "days": "20"}, {"alias": "Группа", "days": "9"}, {"alias": "Другая", "days": "45"},
                {"alias": "2"}, {"alias": "1"}, {"alias": "4", "days": "2"}, {"alias": "Группа", "marketplace": "wb"},
                {"alias": "нет такой"}]:
            def rows(sql):
                return conn.execute(sql, {n: asked.get(n, "") for n in re.findall(r":(\w+)", sql)}).fetchall()
            assert rows(canned_sql()["restock_window"]) == rows(oracle), asked
        assert refresh_restock_days(storage, datetime(2026, 11, 30, 9, tzinfo=timezone.utc)) == 0
        # What is read is the kept rows (altered on purpose here), for a group asked for by name too,
        # until anything is written
        storage.db.execute("UPDATE restock_days_now SET stock = stock + 1000")
        storage.db.conn.commit()
        for asked in ({"alias": "Группа", "days": "5"}, {"days": "5"}):
            assert rows(canned_sql()["restock_window"]) and all(
                row[3] >= 1000 for row in rows(canned_sql()["restock_window"])), asked
        with storage.transaction():
            storage.write_orders([random_order(rng, 10_000, DAYS)])
        assert rows(canned_sql()["restock_window"]) == rows(oracle)
        # A group's name that is also another group's article: that article's SKUs are shown too
        with storage.transaction():
            storage.db.execute("INSERT OR REPLACE INTO products (account, sku, size, article, updated_at)"
                               " VALUES ('wb-1', 3, '', 'Группа', '2026-11-30T12:00:00+03:00')")
        refresh_restock_days(storage, datetime(2026, 11, 30, 9, tzinfo=timezone.utc))
        asked = {"alias": "Группа", "days": "9"}
        assert rows(canned_sql()["restock_window"]) == rows(oracle)
        assert "Другая" in {row[0] for row in rows(oracle)} or not rows(oracle)
    finally:
        conn.close()


def refresh_restock_days(storage: Storage, now) -> int:
    """What every pass does after its writes; the number of places written."""
    from collector import kept
    from collector.config import load_settings

    return kept.refresh_restock_days(load_settings(None, {"DATABASE_PATH": str(storage.path)}), storage, now)


# --------------------------------------------------------------------------------------------
# «По складам» for 30 days, today and yesterday, kept by the pass (collector/kept.py, warehouse_month_now)

NOW = "2026-11-30T09:00:00+00:00"  # 12:00 in Moscow, as canned_rows asks by default
MONTH_PAGES = [("by_warehouse", {"period": "month"}), ("by_warehouse", {"period": "month", "marketplace": "ozon"}),
               ("by_warehouse", {"period": "month", "warehouse": "A"}),
               ("orders_by_warehouse", {"period": "month"}), ("orders_by_warehouse", {"period": "month", "marketplace": "wb"}),
               ("orders_by_warehouse", {"period": "month", "warehouse": "B"}),
               ("by_warehouse", {}), ("by_warehouse", {"period": "day", "marketplace": "wb"}),
               ("by_warehouse", {"date": "2026-11-29"}), ("by_warehouse", {"date": "2026-11-29", "warehouse": "B"}),
               ("by_warehouse", {"period": "week"}), ("by_warehouse", {"period": "week", "marketplace": "ozon"})]
WHOLE_PAGES = (0, 3, 6, 8, 10)  # the pages as kept, every row


def refresh_warehouse_month(storage: Storage, now: str = NOW) -> int:
    """What every pass does after its writes; the number of rows written."""
    from datetime import datetime

    from collector import kept
    from collector.config import load_settings

    settings = load_settings(None, {"DATABASE_PATH": str(storage.path)})
    return kept.refresh_warehouse_month(settings, storage, datetime.fromisoformat(now))


def month_pages(path: Path, now: str = NOW) -> list[list]:
    return canned_rows(path, asked=MONTH_PAGES, now=now)


def computed_month_pages(storage: Storage, now: str = NOW) -> list[list]:
    """The pages as computed from the summaries, with the kept rows set aside."""
    vouched = storage.db.execute("SELECT in_step FROM warehouse_month_basis").fetchall()
    with storage.transaction():
        storage.db.execute("UPDATE warehouse_month_basis SET in_step = 0")
    try:
        return month_pages(storage.path, now)
    finally:
        with storage.transaction():
            storage.db.execute("UPDATE warehouse_month_basis SET in_step = ?", [vouched[0][0] if vouched else 0])


def in_step(storage: Storage) -> list:
    return storage.db.execute("SELECT day, in_step FROM warehouse_month_basis").fetchall()


@pytest.mark.parametrize("seed", range(3))
def test_the_kept_warehouse_pages_are_read_as_kept_only_while_exact(storage, seed):
    random_history(storage, random.Random(300 + seed))
    storage.replace_aliases([("ozon", "1", "Группа", 2), ("wb", "2", "Группа", 2), ("ozon", "3", "Другая", 1)])
    computed = month_pages(storage.path)
    assert all(computed) and in_step(storage) == []
    written = refresh_warehouse_month(storage)
    assert in_step(storage) == [("2026-11-30", 1)]
    assert written == sum(len(computed[page]) for page in WHOLE_PAGES)
    assert month_pages(storage.path) == computed_month_pages(storage) == computed
    # A group asked for is its rows of the kept page; a period not offered, nothing. (Not checked
    # for yesterday: a group's stock on a past day is read per SKU from the stock rows, and this
    # history writes stock out of day order, which no pass does; test_queries.py checks the two
    # ways agree on a history written in order.)
    today_pages = [n for n, (_, params) in enumerate(MONTH_PAGES) if "date" not in params]
    for group in ("Группа", "Другая"):
        assert canned_rows(storage.path, asked=[(MONTH_PAGES[n][0], {**MONTH_PAGES[n][1], "alias": group})
                                                for n in today_pages]) == [
            [row for row in computed[n] if row[0] == group] for n in today_pages]
    assert canned_rows(storage.path, asked=[("by_warehouse", {"period": "year"}),
                                            ("orders_by_warehouse", {"period": "year"})]) == [[], []]
    # The kept rows are what is read: a kept figure altered on purpose shows, filtered or not...
    with storage.transaction():
        storage.db.execute("UPDATE warehouse_month_now SET ordered = ordered + 1000 WHERE warehouse = 'A'")
    marked = month_pages(storage.path)
    for (name, params), rows, before in zip(MONTH_PAGES, marked, computed):
        column = 4 if name == "by_warehouse" else 3
        assert [row[column] - 1000 * (row[2] == "A") for row in rows] == [row[column] for row in before], params
    # ... but not the next day (the window moved)
    assert month_pages(storage.path, "2026-11-30T21:00:01+00:00") == computed_month_pages(storage, "2026-11-30T21:00:01+00:00")
    # The next pass writes back the rows that differ, and only those; then nothing.
    altered, = storage.db.execute("SELECT count(*) FROM warehouse_month_now WHERE warehouse = 'A'").fetchone()
    assert refresh_warehouse_month(storage) == altered > 0
    assert refresh_warehouse_month(storage) == 0
    assert month_pages(storage.path) == computed
    # Any write to what they are made of stops them being read, until the next pass.
    with storage.transaction():
        storage.write_orders([replace(random_order(random.Random(seed), 10_000, ["2026-11-29"]), status="delivered",
                                      is_cancelled=0)])
    assert in_step(storage) == [("2026-11-30", 0)]
    now_computed = computed_month_pages(storage)
    assert month_pages(storage.path) == now_computed != computed
    rows = sum(len(now_computed[page]) for page in WHOLE_PAGES)
    assert 0 < refresh_warehouse_month(storage) < rows  # the rows that moved, not the pages
    assert in_step(storage) == [("2026-11-30", 1)] and month_pages(storage.path) == now_computed
    # So does a rebuild, which runs without the triggers.
    storage.rebuild_summaries()
    assert in_step(storage) == [("2026-11-30", 0)]


def test_a_version_15_database_loses_restock_now_basis_own_triggers(storage):
    """Schema 16's triggers clear both bases (kept_basis_*): version 15's, which cleared
    restock_now_basis alone, go, and a write still clears both."""
    with storage.transaction():  # what version 15 had besides
        storage.db.execute("CREATE TRIGGER restock_now_basis_accounts_added AFTER INSERT ON accounts "
                           "BEGIN UPDATE restock_now_basis SET in_step = 0; END")
        storage.db.execute("PRAGMA user_version = 15")
    assert storage.migrate() == 15 and storage.schema_version == SCHEMA_VERSION
    triggers = {name for name, in storage.db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert not {name for name in triggers if name.startswith("restock_now_basis_")}
    assert {"kept_basis_accounts_added", "kept_basis_alias_warehouse_days_changed", "kept_basis_sku_aliases_removed"} <= triggers
    with storage.transaction():
        storage.db.execute("INSERT INTO restock_now_basis VALUES (14, '2026-11-30', 30, 7, 1, NULL)")
        storage.db.execute("INSERT INTO warehouse_month_basis VALUES (1, '2026-11-30', 1)")
    storage.save_accounts([("ozon-3", "ozon", "Ozon 3")])
    assert storage.db.execute("SELECT in_step FROM restock_now_basis UNION ALL "
                              "SELECT in_step FROM warehouse_month_basis").fetchall() == [(0,), (0,)]


# --------------------------------------------------------------------------------------------
# The stock at the end of each past day per group and warehouse, kept by the pass
# (collector/kept.py, marketplace_alias_warehouse_stock_days)

PAST_DAYS = [("by_warehouse", {"date": day}) for day in DAYS[:-1]] + [
    ("by_warehouse", {"date": "2026-11-19"}), ("by_warehouse", {"date": "2026-11-22", "period": "week"}),
    ("by_warehouse", {"date": "2026-11-25", "warehouse": "A"}), ("by_warehouse", {"date": "2026-11-27", "marketplace": "ozon"}),
    ("by_warehouse", {"date": "2026-11-24", "by": "warehouse"}), ("by_warehouse", {"date": "2026-11-26", "alias": "Группа"}),
    # (history at a warehouse reads each past day's stock there as kept too)
    ("history", {"warehouse": "A", "days": "12"}), ("history", {"warehouse": "B", "days": "15", "period": "week"}),
    ("history", {"warehouse": "A", "marketplace": "ozon", "days": "4", "date": "2026-11-26"})]
GROUP_ASKED = PAST_DAYS.index(("by_warehouse", {"date": "2026-11-26", "alias": "Группа"}))

STOCK_AT_DAY_ENDS = """
WITH RECURSIVE calendar(day) AS (
  SELECT min(day) FROM alias_warehouse_days WHERE stock_delta <> 0
  UNION ALL
  SELECT date(day, '+1 day') FROM calendar WHERE day < :through)
SELECT c.day, d.warehouse, a.marketplace, d.alias, sum(d.stock_delta)
FROM calendar c JOIN alias_warehouse_days d ON d.day <= c.day AND d.stock_delta <> 0
JOIN accounts a ON a.account = d.account
GROUP BY c.day, d.warehouse, a.marketplace, d.alias
HAVING sum(d.stock_delta) <> 0
ORDER BY 1, 2, 3, 4
"""


def refresh_stock_days(storage: Storage, now: str = NOW) -> int:
    """What every pass does after its writes; the number of rows written."""
    from collector import kept
    from collector.config import load_settings

    settings = load_settings(None, {"DATABASE_PATH": str(storage.path)})
    return kept.refresh_stock_days(settings, storage, datetime.fromisoformat(now))


def stock_days(storage: Storage) -> tuple[list, list]:
    """The days kept and what the changes say they must be, up to the day kept last."""
    through = storage.db.execute("SELECT through FROM stock_days_basis").fetchone()[0]
    return (storage.db.execute("SELECT * FROM marketplace_alias_warehouse_stock_days ORDER BY 1, 2, 3, 4").fetchall(),
            storage.db.execute(STOCK_AT_DAY_ENDS, {"through": through}).fetchall())


def stock_days_basis(storage: Storage) -> list:
    return storage.db.execute("SELECT through, in_step FROM stock_days_basis").fetchall()


@pytest.mark.parametrize("seed", range(3))
def test_the_stock_at_each_day_end_is_kept_and_read_only_while_exact(storage, seed):
    rng = random.Random(500 + seed)
    # (the stock written day after day: worked back from the stock now, a past day's stock is
    # then what the changes up to it add up to; see test_the_kept_warehouse_pages_...)
    random_history(storage, rng, stock_in_order=True)
    storage.replace_aliases([("ozon", "1", "Группа", 2), ("wb", "2", "Группа", 2), ("ozon", "3", "Другая", 1)])
    computed = canned_rows(storage.path, asked=PAST_DAYS)
    assert stock_days_basis(storage) == [] and sum(map(len, computed)) > 20
    written = refresh_stock_days(storage)
    kept, expected = stock_days(storage)
    assert stock_days_basis(storage) == [("2026-11-29", 1)] and kept == expected and written == len(kept) > 10
    assert {day for day, *_ in kept} == set(DAYS[:-1])  # every day from the first change on, not today
    assert canned_rows(storage.path, asked=PAST_DAYS) == computed
    assert refresh_stock_days(storage) == 0  # nothing to add the same day
    assert kept_module.stock_days_drift(storage.db) == ("2026-11-29", 0)
    # The kept rows are what is read, for a group's day, not for a group or a marketplace asked for
    with storage.transaction():
        storage.db.execute("UPDATE marketplace_alias_warehouse_stock_days SET stock = stock + 1000 WHERE warehouse = 'A'")
        gone = next(row for row in kept if row[1] == "B")
        storage.db.execute("DELETE FROM marketplace_alias_warehouse_stock_days"
                           " WHERE day = ? AND warehouse = ? AND marketplace = ? AND alias = ?", gone[:4])
    at_a = sum(row[1] == "A" for row in kept)
    assert kept_module.stock_days_drift(storage.db) == ("2026-11-29", at_a + 1)
    checked = run_rebuild(storage, "--check")
    assert checked.returncode == 1 and (f"DIFF  marketplace_alias_warehouse_stock_days: {at_a + 1} rows differ from"
                                        " a recomputation (the days up to 2026-11-29)") in checked.stdout
    with storage.transaction():
        storage.db.execute("INSERT INTO marketplace_alias_warehouse_stock_days VALUES (?, ?, ?, ?, ?)", gone)
    marked = canned_rows(storage.path, asked=PAST_DAYS)
    for rows, before in zip(marked[:10], computed[:10]):
        assert sorted(map(repr, (row for row in rows if row[2] != "A"))) == sorted(
            map(repr, (row for row in before if row[2] != "A")))
        stock_before = {row[:3]: row[3] for row in before}
        assert all(row[3] >= 1000 or row[3] == stock_before[row[:3]] == 0 for row in rows if row[2] == "A")
    assert marked[GROUP_ASKED] == computed[GROUP_ASKED] and any(row[3] >= 1000 for rows in marked for row in rows)
    # (history at warehouse A: a past day's stock there as kept, altered too where a row is kept)
    assert [row[6] - 1000 * (row[0] < "2026-11-30" and before[6] != 0) for row, before in zip(marked[-3], computed[-3])
            ] == [row[6] for row in computed[-3]] != [row[6] for row in marked[-3]]
    # A change of stock on a day kept (a SKU moved to another group by a new aliases file, stock
    # written late) stops them being read; the next pass computes every day again
    storage.replace_aliases([("ozon", "1", "Другая", 1), ("ozon", "2", "Группа", 2)])
    assert stock_days_basis(storage) == [("2026-11-29", 0)]
    now_computed = canned_rows(storage.path, asked=PAST_DAYS)
    assert now_computed != computed
    refresh_stock_days(storage)
    kept, expected = stock_days(storage)
    assert stock_days_basis(storage) == [("2026-11-29", 1)] and kept == expected
    assert canned_rows(storage.path, asked=PAST_DAYS) == now_computed
    with storage.transaction():
        storage.write_stock("ozon-2", [StockLevel("ozon-2", 1, "", "A", 9)], "2026-11-24T12:00:00+03:00", "2026-11-24", None)
    assert stock_days_basis(storage) == [("2026-11-29", 0)]
    refresh_stock_days(storage)
    assert stock_days(storage)[0] == stock_days(storage)[1]
    with storage.transaction():  # (the days are kept per marketplace: an account's label changes nothing)
        storage.db.execute("UPDATE accounts SET label = 'Ozon второй' WHERE account = 'ozon-2'")
    assert stock_days_basis(storage) == [("2026-11-29", 1)]
    for marketplace in ("wb", "ozon"):
        with storage.transaction():
            storage.db.execute("UPDATE accounts SET marketplace = ? WHERE account = 'ozon-2'", [marketplace])
        assert stock_days_basis(storage) == [("2026-11-29", 0)]
        refresh_stock_days(storage)
        assert stock_days(storage)[0] == stock_days(storage)[1]
    # Today's changes do not touch the days kept; the next day adds today, and only today
    with storage.transaction():
        storage.write_stock("ozon-1", [StockLevel("ozon-1", 2, "", "B", rng.randint(6, 9))],
                            "2026-11-30T23:00:00+03:00", "2026-11-30", None)
        storage.write_orders([random_order(rng, 10_000, ["2026-11-25"])])
    assert stock_days_basis(storage) == [("2026-11-29", 1)]
    last_day = refresh_stock_days(storage, "2026-11-30T21:00:01+00:00")
    kept, expected = stock_days(storage)
    assert stock_days_basis(storage) == [("2026-11-30", 1)] and kept == expected
    assert last_day == sum(day == "2026-11-30" for day, *_ in kept) > 0
    # Days the collector did not run are added as well; a rebuild, which runs without the
    # triggers, stops them being read
    refresh_stock_days(storage, "2026-12-03T09:00:00+00:00")
    kept, expected = stock_days(storage)
    assert stock_days_basis(storage) == [("2026-12-02", 1)] and kept == expected
    assert {day for day, *_ in kept} >= {"2026-12-01", "2026-12-02"}
    storage.rebuild_summaries()
    assert stock_days_basis(storage) == [("2026-12-02", 0)]


def test_the_day_a_pass_keeps_turns_at_moscow_midnight(storage, tmp_path):
    """On a machine whose clock is UTC, the pass at 23:59:59 in Moscow keeps up to the day before,
    the pass at 00:00:01 the day that just ended."""
    from freezegun import freeze_time

    from collector.config import load_settings
    from collector.pipeline import refresh_kept
    from collector.timeutil import utc_now

    random_history(storage, random.Random(510), steps=120)
    settings = load_settings(None, {"DATABASE_PATH": str(storage.path), "ALIASES_FILE": str(tmp_path / "none.csv")})
    with freeze_time("2026-11-30 20:59:59", tz_offset=0):
        refresh_kept(settings, storage, utc_now())
    assert stock_days_basis(storage) == [("2026-11-29", 1)]
    with freeze_time("2026-11-30 21:00:01", tz_offset=0):
        refresh_kept(settings, storage, utc_now())
    kept, expected = stock_days(storage)
    assert stock_days_basis(storage) == [("2026-11-30", 1)] and kept == expected
    assert "2026-11-30" in {day for day, *_ in kept}


def test_an_upgrade_to_schema_27_keeps_the_stock_at_each_day_end_at_once(storage, tmp_path):
    """Schema 27 adds marketplace_alias_warehouse_stock_days; the upgrade computes every past day at once."""
    from freezegun import freeze_time

    from collector.config import load_settings
    from collector.pipeline import upgrade

    random_history(storage, random.Random(520), steps=150, stock_in_order=True)
    with storage.transaction():  # the database as schema version 26 left it
        for name in ("figures_added", "figures_changed", "figures_removed", "sku_names_changed", "sku_names_removed",
                     "accounts_changed", "accounts_removed"):
            storage.db.execute(f"DROP TRIGGER stock_days_basis_{name}")
        storage.db.execute("DROP TABLE marketplace_alias_warehouse_stock_days")
        storage.db.execute("DROP TABLE stock_days_basis")
        storage.db.execute("PRAGMA user_version = 26")
    with freeze_time("2026-11-30 09:00:00", tz_offset=0):
        upgrade(load_settings(None, {"DATABASE_PATH": str(storage.path), "ALIASES_FILE": str(tmp_path / "none.csv")}),
                storage)
    kept, expected = stock_days(storage)
    assert storage.schema_version == SCHEMA_VERSION and stock_days_basis(storage) == [("2026-11-29", 1)]
    assert kept == expected and len(kept) > 10
