"""Money, the order-cohort buyout rate and restock: each definition of DESIGN.md on hand-checked data.

The database is built by the collector's own storage (schema.sql with its triggers), the rows go
in through the same writes the collector makes, and every figure is read through Datasette's
canned queries. "Today" is 2026-12-04 in Moscow; the machine's clock is UTC.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from datasette.app import Datasette
from freezegun import freeze_time

from collector import kept
from collector.config import load_settings
from collector.ozon import normalize as ozon_norm
from collector.records import OrderLine, SaleEvent, StockLevel
from collector.pipeline import refresh_kept, upgrade
from collector.storage import SCHEMA_VERSION, Storage
from collector.timeutil import MOSCOW
from collector.wb import normalize as wb_norm

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT.parent / "shared" / "api" / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
NOON = "2026-12-04T09:00:00Z"  # 12:00 in Moscow
T = "2026-12-04"
COHORT_DAY = "2026-11-29"

ALIASES = [("wb", "KR-10", "Кронштейны", 1), ("ozon", "KR-10", "Кронштейны", 1),
           ("wb", "PAK-8", "Пакеты 8", 2), ("ozon", "PAK-8", "Пакеты 8", 2)]
PRODUCTS = [("wb-1", 1001, "KR-10"), ("wb-1", 1004, "PAK-8"), ("ozon-1", 2001, "KR-10"), ("ozon-1", 2004, "PAK-8")]


pytestmark = pytest.mark.usefixtures("machine_in_utc")


def order(account, order_id, sku, article, warehouse, day, quantity=1, status="ordered", price=None):
    return OrderLine(account=account, order_id=order_id, sku=sku, article=article, size="", barcode=None,
                     warehouse=warehouse, ordered_at=f"{day}T10:00:00+03:00", day=day, status=status,
                     is_cancelled=int(status == "cancelled"), cancelled_at=None, quantity=quantity,
                     price_kopecks=price, changed_at=f"{day}T10:00:00+03:00")


def sale(account, kind, sale_id, order_id, sku, article, day, quantity=1, amount=None, payout=None,
         return_type=None, warehouse="Коледино"):
    return SaleEvent(account=account, kind=kind, sale_id=sale_id, sku=sku, order_id=order_id, article=article,
                     size="", barcode=None, warehouse=warehouse, sold_at=f"{day}T15:00:00+03:00", day=day,
                     quantity=quantity, amount_kopecks=amount, return_type=return_type,
                     changed_at=f"{day}T15:00:00+03:00", payout_kopecks=payout)


def wb_cohort():
    """Five WB units ordered on 29.11 at 500,50 ₽ each: w1 bought; w2 cancelled; w3 bought and then
    returned; w4 still on its way; w5 bought, its sale arriving before its order line."""
    orders = [order("wb-1", f"w{n}", 1004, "PAK-8", "Коледино", COHORT_DAY, price=50050,
                    status="cancelled" if n == 2 else "ordered") for n in range(1, 6)]
    sales = [sale("wb-1", "sale", "S1", "w1", 1004, "PAK-8", "2026-12-01", amount=50050, payout=40000),
             sale("wb-1", "sale", "S3", "w3", 1004, "PAK-8", "2026-12-01", amount=50050, payout=40000),
             sale("wb-1", "return", "R3", "w3", 1004, "PAK-8", "2026-12-01", amount=-50050, payout=-40000),
             sale("wb-1", "sale", "S5", "w5", 1004, "PAK-8", "2026-12-01", amount=50050, payout=40000)]
    return orders, sales


def ozon_cohort(p4_status="delivering"):
    """Eight Ozon units ordered on 29.11: p1 (2) delivered; p2 (1) cancelled; p3 (1) delivered and
    returned by the customer; p4 (3) on its way; p5 (1) refused at handover."""
    statuses = {"p1": ("delivered", 2), "p2": ("cancelled", 1), "p3": ("delivered", 1), "p4": (p4_status, 3),
                "p5": ("delivering", 1)}
    orders = [order("ozon-1", number, 2004, "PAK-8", "Хоругвино", COHORT_DAY, quantity, status, price=30000)
              for number, (status, quantity) in statuses.items()]
    returns = [sale("ozon-1", "return", "901", "p3", 2004, "PAK-8", "2026-12-02", amount=30000,
                    return_type="ClientReturn", warehouse="Хоругвино"),
               sale("ozon-1", "return", "902", "p5", 2004, "PAK-8", "2026-12-02", amount=30000,
                    return_type="FullReturn", warehouse="Хоругвино")]
    return orders, returns


def restock_history():
    """Кронштейны on Ozon at Хоругвино: 20 until it ran out on 25.11 (2 ordered that day), nothing on
    26-27.11, 50 from 28.11, 40 now; 2 a day ordered 20-25.11 and 3 a day 28.11-03.12. At Тверь: first
    seen on 30.11 with 3, one ordered a day 01-03.12. On WB (one stock for all warehouses): 10 since
    01.11, 5 ordered on 21.11 at Коледино and 2 on 02.12 at Электросталь. Хоругвино's units cost
    1 000 ₽ until 25.11 and 1 200 ₽ from 28.11; the others' have no price."""
    stock = [("ozon-1", 2001, "Хоругвино", "2026-11-10", 20), ("ozon-1", 2001, "Хоругвино", "2026-11-25", 0),
             ("ozon-1", 2001, "Хоругвино", "2026-11-28", 50), ("ozon-1", 2001, "Хоругвино", T, 40),
             ("ozon-1", 2001, "Тверь", "2026-11-30", 3), ("wb-1", 1001, "Склад WB", "2026-11-01", 10)]
    days = {f"2026-11-{d}": 2 for d in range(20, 26)} | {"2026-11-28": 3, "2026-11-29": 3, "2026-11-30": 3,
                                                        "2026-12-01": 3, "2026-12-02": 3, "2026-12-03": 3}
    orders = [order("ozon-1", f"h-{day}", 2001, "KR-10", "Хоругвино", day, quantity,
                    price=100_000 if day < "2026-11-28" else 120_000) for day, quantity in days.items()]
    orders += [order("ozon-1", f"t-{d}", 2001, "KR-10", "Тверь", f"2026-12-0{d}") for d in (1, 2, 3)]
    orders += [order("wb-1", f"k{n}", 1001, "KR-10", "Коледино", "2026-11-21") for n in range(5)]
    orders += [order("wb-1", f"e{n}", 1001, "KR-10", "Электросталь", "2026-12-02") for n in range(2)]
    return stock, orders


def write(storage: Storage, orders=(), sales=(), stock=()):
    with storage.transaction():
        storage.write_orders(list(orders))
        storage.write_sales(list(sales))
    for account, sku, warehouse, day, quantity in stock:
        with storage.transaction():
            # write_stock records an account's whole stock; one key per call keeps the others as they are
            storage.db.execute("INSERT INTO stock (account, sku, size, warehouse, quantity, observed_at, day) "
                               "VALUES (?, ?, '', ?, ?, ?, ?)",
                               [account, sku, warehouse, quantity, f"{day}T09:00:00+03:00", day])
            storage.db.execute(
                "INSERT INTO stock_current (account, sku, size, warehouse, quantity, changed_at, seen_at, first_day) "
                "VALUES (?, ?, '', ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET quantity = excluded.quantity, "
                "changed_at = excluded.changed_at, seen_at = excluded.seen_at",
                [account, sku, warehouse, quantity, f"{day}T09:00:00+03:00", f"{day}T09:00:00+03:00", day])


@pytest.fixture
def storage(tmp_path):
    store = Storage(tmp_path / "mp.db")
    store.migrate()
    store.save_accounts([("wb-1", "wb", "WB"), ("ozon-1", "ozon", "Ozon")])
    store.replace_aliases(ALIASES)
    with store.transaction():
        for account, sku, article in PRODUCTS:
            store.db.execute("INSERT INTO products (account, sku, size, article, updated_at) VALUES (?, ?, '', ?, ?)",
                             [account, sku, article, "2026-11-01T00:00:00+03:00"])
    yield store
    store.close()


def query(path: Path, name: str, at: str = NOON, **params) -> list[dict]:
    metadata = yaml.safe_load((ROOT / "metadata.yml").read_text(encoding="utf-8"))
    datasette = Datasette([str(path)], metadata=metadata)
    with freeze_time(at):
        response = asyncio.run(datasette.client.get(f"/mp/{name}.json?{urlencode({'_shape': 'objects', **params})}"))
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def pick(rows: list[dict], *columns: str) -> list[tuple]:
    return [tuple(row[c] for c in columns) for row in rows]


def assert_summaries_match_raw_rows(storage: Storage) -> None:
    """What the triggers kept in step equals a recomputation from the raw rows (zero rows aside)."""
    columns = [row[1] for row in storage.db.execute("PRAGMA table_info(daily_figures)")]
    nonzero = " OR ".join(f"{c} <> 0" for c in columns[4:])
    kept = set(storage.db.execute(f"SELECT * FROM daily_figures WHERE {nonzero}"))
    recomputed = set(storage.db.execute(f"SELECT {', '.join(columns)} FROM daily_figures_recomputed WHERE {nonzero}"))
    assert kept == recomputed
    stale = storage.db.execute("SELECT count(*) FROM orders o JOIN order_outcomes v USING (account, order_id, sku) "
                               "WHERE o.outcome IS NOT v.outcome").fetchone()[0]
    assert stale == 0


# --------------------------------------------------------------------------------------------
# Buyout: the order cohort

BUYOUT = ("alias", "marketplace", "ordered", "bought", "not_bought", "in_transit", "buyout_pct")


def test_buyout_rate_follows_each_order_to_its_outcome(storage):
    wb_orders, wb_sales = wb_cohort()
    # w5's sale comes first: its order line must still end up bought
    write(storage, sales=[s for s in wb_sales if s.order_id == "w5"])
    write(storage, orders=wb_orders, sales=[s for s in wb_sales if s.order_id != "w5"])
    ozon_orders, ozon_returns = ozon_cohort()
    write(storage, orders=ozon_orders, sales=ozon_returns)
    # WB: bought w1 w5; not bought w2 (cancelled) w3 (returned); w4 on its way: 2 / 4 = 50 %.
    # Ozon: bought p1 (2); not bought p2 p3 p5 (3); p4 (3) on its way: 2 / 5 = 40 %.
    assert pick(query(storage.path, "buyout"), *BUYOUT) == [
        ("Пакеты 8", "wb", 5, 2, 2, 1, 50.0),
        ("Пакеты 8", "ozon", 8, 2, 3, 3, 40.0),
    ]
    assert_summaries_match_raw_rows(storage)

    # p4 delivered at a later pass: 5 / 8; the window follows the order day, not the delivery day
    write(storage, orders=ozon_cohort(p4_status="delivered")[0])
    assert pick(query(storage.path, "buyout", marketplace="ozon"), *BUYOUT) == [
        ("Пакеты 8", "ozon", 8, 5, 3, 0, 62.5)]
    assert query(storage.path, "buyout", days="3") == []  # ordered 5 days ago: outside a 3-day window
    assert_summaries_match_raw_rows(storage)


def test_buyout_reads_the_rows_kept_after_the_pass_only_while_nothing_was_written_since(storage):
    """The dashboard's «Выкуп» (30 days, every group) is kept by the pass and read as kept; any
    write to the order cohort empties it, and the query computes its rows again."""
    wb_orders, wb_sales = wb_cohort()
    ozon_orders, ozon_returns = ozon_cohort()
    write(storage, orders=wb_orders + ozon_orders, sales=wb_sales + ozon_returns)
    computed = pick(query(storage.path, "buyout"), *BUYOUT)
    settings = load_settings(None, {"DATABASE_PATH": str(storage.path)})
    assert kept.refresh_buyout(settings, storage, datetime.fromisoformat(NOON.replace("Z", "+00:00"))) == 2
    assert pick(query(storage.path, "buyout"), *BUYOUT) == computed
    with storage.transaction():  # a kept figure made visible: read as kept, for the kept page only
        storage.db.execute("UPDATE buyout_now SET bought = 1, not_bought = 0 WHERE marketplace = 'wb'")
    assert pick(query(storage.path, "buyout"), *BUYOUT)[0] == ("Пакеты 8", "wb", 5, 1, 0, 4, 100.0)
    assert pick(query(storage.path, "buyout", marketplace="wb"), *BUYOUT) == computed[:1]
    assert pick(query(storage.path, "buyout", days="7"), *BUYOUT) == computed
    assert query(storage.path, "buyout", at="2026-11-26T21:00:01Z")[0]["bought"] == 2  # the next day: computed
    write(storage, orders=ozon_cohort(p4_status="delivered")[0])  # a write empties it
    assert storage.db.execute("SELECT count(*) FROM buyout_now").fetchone()[0] == 0
    assert pick(query(storage.path, "buyout"), *BUYOUT)[1] == ("Пакеты 8", "ozon", 8, 5, 3, 0, 62.5)


def test_a_pass_that_changed_nothing_writes_no_kept_page_again(storage):
    """today_now and buyout_now are computed after every pass; when their rows come out as kept
    (nothing they are made of was written), the file is left as it was: no page written."""
    wb_orders, wb_sales = wb_cohort()
    write(storage, orders=wb_orders, sales=wb_sales)
    computed = pick(query(storage.path, "buyout"), *BUYOUT)
    settings = load_settings(None, {"DATABASE_PATH": str(storage.path)})
    noon = datetime.fromisoformat(NOON.replace("Z", "+00:00"))
    assert kept.refresh_today(settings, storage, noon) > 0 and kept.refresh_buyout(settings, storage, noon) == 1
    storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(str(storage.path) + "-wal")
    later = noon.replace(minute=10)
    storage.save_accounts([("wb-1", "wb", "WB"), ("ozon-1", "ozon", "Ozon")])  # as every pass: the same, not written
    assert kept.refresh_today(settings, storage, later) == 0 and kept.refresh_buyout(settings, storage, later) == 0
    assert wal.stat().st_size == 0
    assert storage.db.execute("SELECT DISTINCT computed_at FROM buyout_now").fetchall() == [("2026-12-04T12:00:00+03:00",)]  # as first kept
    # a kept row that is not what the query gives is written again, with the others
    with storage.transaction():
        storage.db.execute("UPDATE buyout_now SET bought = bought + 1")
    assert kept.refresh_buyout(settings, storage, later) == 1
    assert pick(query(storage.path, "buyout"), *BUYOUT) == computed


def test_buyout_rate_is_empty_until_an_order_settles_and_never_above_100(storage):
    write(storage, orders=[order("wb-1", "x1", 1004, "PAK-8", "Коледино", T)])
    assert pick(query(storage.path, "buyout"), *BUYOUT) == [("Пакеты 8", "wb", 1, 0, 0, 1, None)]
    # More sales than orders in a day (the old bought/ordered reading gave 200 %) stay within 100 %
    write(storage, sales=[sale("wb-1", "sale", "S-x1", "x1", 1004, "PAK-8", T),
                          sale("wb-1", "sale", "S-old", "old-order", 1004, "PAK-8", T)])
    assert pick(query(storage.path, "buyout"), *BUYOUT) == [("Пакеты 8", "wb", 1, 1, 0, 0, 100.0)]
    summary = query(storage.path, "summary")[0]
    assert (summary["wb_ordered"], summary["wb_bought"], summary["wb_buyout_pct"], summary["wb_in_transit"]) == \
        (1, 2, 100.0, 0)


def test_buyout_rate_at_a_warehouse_counts_the_orders_shipped_from_it(storage):
    """The dashboard's warehouse filter narrows the buyout table to the order lines shipped from
    that warehouse: per group from alias_warehouse_days, per SKU (a group asked for by name) from
    daily_figures, and the summary's rate says the same."""
    wb_orders, wb_sales = wb_cohort()
    moved = [replace(line, warehouse="Тула") if line.order_id in ("w4", "w5") else line for line in wb_orders]
    write(storage, orders=moved, sales=wb_sales)
    # Коледино: w1 bought, w2 cancelled, w3 returned: 1 / 3; Тула: w5 bought, w4 on its way: 1 / 1
    at_koledino = [("Пакеты 8", "wb", 3, 1, 2, 0, 33.3)]
    at_tula = [("Пакеты 8", "wb", 2, 1, 0, 1, 100.0)]
    assert pick(query(storage.path, "buyout", warehouse="Коледино"), *BUYOUT) == at_koledino
    assert pick(query(storage.path, "buyout", warehouse="Тула"), *BUYOUT) == at_tula
    assert pick(query(storage.path, "buyout", warehouse="Тула", alias="PAK-8"), *BUYOUT) == at_tula
    assert pick(query(storage.path, "buyout", warehouse="Коледино", alias="Пакеты 8"), *BUYOUT) == at_koledino
    assert query(storage.path, "buyout", warehouse="Тверь") == []
    assert pick(query(storage.path, "buyout"), *BUYOUT) == [("Пакеты 8", "wb", 5, 2, 2, 1, 50.0)]
    for warehouse, rows in (("Коледино", at_koledino), ("Тула", at_tula)):
        summary = query(storage.path, "summary", warehouse=warehouse)[0]
        assert (summary["wb_buyout_pct"], summary["wb_in_transit"]) == (rows[0][-1], rows[0][-2])


def test_an_order_line_partly_returned_is_bought_but_for_the_units_returned(storage):
    """Ozon lines of several units: p6 (3) delivered, then one unit sent back (ClientReturn) and
    later the other two; p7 (2) with one unit refused at handover (PartialReturn) while the
    posting is still on its way. What came back is not bought, the rest is."""
    orders = [order("ozon-1", "p6", 2004, "PAK-8", "Хоругвино", COHORT_DAY, 3, "delivered", price=30000),
              order("ozon-1", "p7", 2004, "PAK-8", "Хоругвино", COHORT_DAY, 2, "delivering", price=30000)]
    first = [sale("ozon-1", "return", "911", "p6", 2004, "PAK-8", "2026-12-02", amount=30000,
                  return_type="ClientReturn", warehouse="Хоругвино"),
             sale("ozon-1", "return", "912", "p7", 2004, "PAK-8", "2026-12-02", amount=30000,
                  return_type="PartialReturn", warehouse="Хоругвино")]
    write(storage, orders=orders, sales=first)
    # bought: p6 2 + p7 1; not bought: p6 1 + p7 1 -> 3 / 5 = 60 %
    assert pick(query(storage.path, "buyout"), *BUYOUT) == [("Пакеты 8", "ozon", 5, 3, 2, 0, 60.0)]
    assert storage.db.execute("SELECT order_id, outcome, returned_units FROM orders ORDER BY order_id").fetchall() == [
        ("p6", "bought", 1), ("p7", "bought", 1)]
    assert_summaries_match_raw_rows(storage)
    # the other two units of p6 come back: the whole line is not bought
    write(storage, sales=[sale("ozon-1", "return", "913", "p6", 2004, "PAK-8", "2026-12-03", quantity=2,
                               amount=60000, return_type="ClientReturn", warehouse="Хоругвино")])
    assert pick(query(storage.path, "buyout"), *BUYOUT) == [("Пакеты 8", "ozon", 5, 1, 4, 0, 20.0)]
    assert storage.db.execute("SELECT outcome, returned_units FROM orders WHERE order_id = 'p6'").fetchone() == (
        "not_bought", 0)
    assert_summaries_match_raw_rows(storage)
    # a return taken back (deleted) and p7's line grown to 4 units: judged again
    with storage.transaction():
        storage.db.execute("DELETE FROM sales WHERE sale_id = '913'")
        storage.db.execute("UPDATE orders SET quantity = 4 WHERE order_id = 'p7'")
    assert pick(query(storage.path, "buyout"), *BUYOUT) == [("Пакеты 8", "ozon", 7, 5, 2, 0, 71.4)]
    assert_summaries_match_raw_rows(storage)


def test_a_version_14_database_judges_its_partly_returned_lines_again(storage):
    """Schema 14 counted any return as the whole line not bought; the upgrade to 15 judges the
    lines with returns by units and carries the change through every summary."""
    from collector.storage import summary_drift

    orders, returns = ozon_cohort(p4_status="delivered")
    returns.append(sale("ozon-1", "return", "903", "p4", 2004, "PAK-8", "2026-12-02", amount=30000,
                        return_type="ClientReturn", warehouse="Хоругвино"))
    write(storage, orders=orders, sales=returns)
    judged = pick(query(storage.path, "buyout"), *BUYOUT)
    # p1 2 + p4 2 bought; p2 p3 p5 and one unit of p4 not bought: 4 / 8 = 50 %
    assert judged == [("Пакеты 8", "ozon", 8, 4, 4, 0, 50.0)]
    with storage.transaction():  # the database as schema 14 left it: p4 not bought as a whole
        storage.db.execute("UPDATE orders SET outcome = 'not_bought', returned_units = 0 WHERE order_id = 'p4'")
        for name, kind, sql in storage.db.execute("SELECT name, type, sql FROM sqlite_master "
                                                  "WHERE type IN ('trigger', 'view')").fetchall():
            if "returned_units" in sql or "order_outcomes" in sql:
                storage.db.execute(f"DROP {kind.upper()} IF EXISTS {name}")
        storage.db.execute("ALTER TABLE orders DROP COLUMN returned_units")
        storage.db.execute("PRAGMA user_version = 14")
    assert pick(query(storage.path, "buyout"), *BUYOUT) == [("Пакеты 8", "ozon", 8, 2, 6, 0, 25.0)]
    assert storage.migrate() == 14
    assert pick(query(storage.path, "buyout"), *BUYOUT) == judged
    assert set(summary_drift(storage.db).values()) == {0}


# --------------------------------------------------------------------------------------------
# Money

def test_money_beside_every_count_in_kopecks(storage):
    wb_orders, wb_sales = wb_cohort()
    ozon_orders, ozon_returns = ozon_cohort()
    write(storage, orders=wb_orders + ozon_orders, sales=wb_sales + ozon_returns)
    # 29.11, WB: 4 units not cancelled x 500,50 ₽; Ozon: p1 2 + p3 1 + p4 3 + p5 1 = 7 x 300 ₽.
    history = query(storage.path, "history", date="2026-12-02", days="4")
    by_day = {(r["day"], r["marketplace"]): r for r in history}
    assert pick([by_day["2026-11-29", "wb"], by_day["2026-11-29", "ozon"]],
                "ordered", "ordered_rub", "bought", "bought_rub") == [(4, 2002.0, 0, 0.0), (7, 2100.0, 0, 0.0)]
    # 01.12, WB: S1 S3 S5 at 500,50 ₽ bought, R3 returned; к перечислению 3 x 400 − 400 = 800 ₽.
    assert pick([by_day["2026-12-01", "wb"]], "bought", "bought_rub", "returned", "returned_rub", "payout_rub") == [
        (3, 1501.5, 1, 500.5, 800.0)]
    # 02.12, Ozon: only the ClientReturn counts as returned (p5 was refused at handover, never bought).
    assert pick([by_day["2026-12-02", "ozon"]], "returned", "returned_rub") == [(1, 300.0)]
    # At a warehouse: per group (alias_warehouse_days) as the group asked for by name (per SKU).
    at_koledino = query(storage.path, "history", date="2026-12-02", days="4", warehouse="Коледино")
    assert pick([r for r in at_koledino if r["day"] == "2026-12-01"], "returned_rub", "payout_rub") == [(500.5, 800.0)]
    for warehouse in ("Коледино", "Хоругвино"):
        at = query(storage.path, "history", date="2026-12-02", days="4", warehouse=warehouse)
        assert at and at == query(storage.path, "history", date="2026-12-02", days="4", warehouse=warehouse,
                                  alias="Пакеты 8"), warehouse
    today = {row["alias"]: row for row in query(storage.path, "today", date=COHORT_DAY)}["Пакеты 8"]
    assert (today["wb_ordered_rub"], today["ozon_ordered_rub"]) == (2002.0, 2100.0)
    assert pick(query(storage.path, "orders_by_warehouse", date=COHORT_DAY), "marketplace", "warehouse",
                "ordered", "ordered_rub") == [("wb", "Коледино", 4, 2002.0), ("ozon", "Хоругвино", 7, 2100.0)]


def wb_row(srid: str, date: str, price) -> dict:
    return {"date": date, "lastChangeDate": date, "srid": srid, "nmId": 1004, "supplierArticle": "PAK-8",
            "techSize": "0", "warehouseName": "Коледино", "isCancel": False, "priceWithDisc": price}


@pytest.mark.parametrize("now, today_rub, yesterday_rub", [
    ("2026-12-03T20:59:59Z", 1547.35, None),        # 23:59:59 in Moscow: still 3 December
    ("2026-12-03T21:00:01Z", 999.99, 1547.35),      # 00:00:01 in Moscow: 4 December has begun
])
def test_money_of_the_day_turns_at_moscow_midnight(storage, now, today_rub, yesterday_rub):
    # WB times are Moscow wall-clock; the second order is placed one second into 4 December.
    rows = [wb_row("m1", "2026-12-03T23:59:59", 1547.35), wb_row("m2", "2026-12-04T00:00:01", "999.99")]
    write(storage, orders=[wb_norm.order_line(row, "wb-1", MOSCOW) for row in rows])
    def ordered_rub(**params):
        return {row["alias"]: row for row in query(storage.path, "today", at=now, **params)}["Пакеты 8"][
            "wb_ordered_rub"]

    assert ordered_rub() == today_rub
    if yesterday_rub is not None:
        assert ordered_rub(date="2026-12-03") == yesterday_rub


def test_today_money_matches_the_official_example_bodies_to_the_kopeck(storage):
    """The marketplaces' own example answers, through the normalisers: `today` for their day adds
    up priceWithDisc (WB) and price x quantity (Ozon) exactly, in Decimal."""
    wb_orders = load_example("wb/orders_example.json", "wb_orders.json")
    # the example order is cancelled (it must not count); a kept twin of it must
    wb_orders += [dict(row, srid=f"{row['srid']}-kept", isCancel=False) for row in wb_orders]
    wb_sales = load_example("wb/sales_example.json", "wb_sales.json")
    postings = load_example("ozon/posting_fbo_list_v3.response_200.json", None)
    postings = postings["postings"] if isinstance(postings, dict) else postings
    lines = [wb_norm.order_line(row, "wb-1", MOSCOW) for row in wb_orders]
    events = [e for e in (wb_norm.sale_event(row, "wb-1", MOSCOW) for row in wb_sales) if e]
    ozon_lines = [line for p in postings for line in ozon_norm.posting_lines(p, "ozon-1", MOSCOW, "x")]
    write(storage, orders=lines + ozon_lines, sales=events)
    days = {line.day for line in lines + ozon_lines} | {e.day for e in events}
    seen = []
    for day in sorted(days):
        want_wb = sum((Decimal(str(r["priceWithDisc"])) for r, line in zip(wb_orders, lines)
                       if line.day == day and not line.is_cancelled), Decimal(0))
        want_bought = sum((Decimal(str(r["priceWithDisc"])) for r in wb_sales
                           if str(r["saleID"]).startswith("S") and wb_norm.sale_event(r, "wb-1", MOSCOW).day == day),
                          Decimal(0))
        want_ozon = sum((Decimal(pr["price"]["amount"]) * pr["quantity"] for p in postings for pr in p["products"]
                         if ozon_norm.posting_lines(p, "ozon-1", MOSCOW, "x")[0].day == day
                         and p["status"] != "cancelled"), Decimal(0))
        rows = query(storage.path, "today", date=day)
        totals = {c: sum((Decimal(str(r[c])) for r in rows), Decimal(0))
                  for c in ("wb_ordered_rub", "wb_bought_rub", "ozon_ordered_rub")}
        assert totals == {"wb_ordered_rub": want_wb, "wb_bought_rub": want_bought, "ozon_ordered_rub": want_ozon}, day
        seen.append(totals)
    assert all(any(t[c] > 0 for t in seen) for c in ("wb_ordered_rub", "wb_bought_rub", "ozon_ordered_rub"))


def load_example(official: str, fallback: str | None):
    path = EXAMPLES / official
    if not path.exists():
        if fallback is None:
            pytest.skip(f"{path} is not beside the repository")
        path = FIXTURES / fallback
    data = json.loads(path.read_text(encoding="utf-8"))
    return data


# --------------------------------------------------------------------------------------------
# Restock

RESTOCK = ("alias", "marketplace", "warehouse", "stock", "avg_daily_ordered", "days_of_cover", "runs_out_on",
           "to_ship", "days_out_of_stock", "lost_units", "lost_rub")


def refresh_restock(storage: Storage, **environ: str) -> None:
    """What every pass does after its writes: restock_now from restock_window, at noon."""
    settings = load_settings(None, {"DATABASE_PATH": str(storage.path), **environ})
    kept.refresh_restock(settings, storage, datetime.fromisoformat(NOON.replace("Z", "+00:00")))


def test_restock_leaves_days_out_of_stock_out_of_demand(storage):
    stock, orders = restock_history()
    wb_orders, _ = wb_cohort()
    ozon_orders, _ = ozon_cohort()
    write(storage, orders=orders + wb_orders + ozon_orders, stock=stock)
    refresh_restock(storage)
    # restock (kept by the pass) and restock_window (computed when asked) say the same
    assert pick(query(storage.path, "restock_window"), *RESTOCK) == pick(query(storage.path, "restock"), *RESTOCK)
    assert pick(query(storage.path, "restock"), *RESTOCK) == [
        # No stock ever seen: out now; 4 (WB) and 7 (Ozon) units over 14 days; ship 4 x 30 / 14 -> 9
        ("Пакеты 8", "wb", "", 0, 0.29, 0, T, 9, 0, 0.0, 0.0),
        ("Пакеты 8", "ozon", "Хоругвино", 0, 0.5, 0, T, 15, 0, 0.0, 0.0),
        # Тверь: days before its first observation count as in stock: 3 / 14 a day, 3 units last 14 days
        ("Кронштейны", "ozon", "Тверь", 3, 0.21, 14.0, "2026-12-18", 4, 0, 0.0, 0.0),
        # Хоругвино: 26 and 27.11 at zero are left out: 30 units / 12 days = 2.5; 40 / 2.5 = 16 days;
        # 2.5 x 30 − 40 = 35 to ship; 2 days x 2.5 = 5 units lost; 12 x 1 000 + 18 x 1 200 =
        # 33 600 ₽ ordered in 12 days in stock, x 2 days out / 12 = 5 600 ₽ lost (5 units at 1 120 ₽)
        ("Кронштейны", "ozon", "Хоругвино", 40, 2.5, 16.0, "2026-12-20", 35, 2, 5.0, 5600.0),
        # WB as a whole, whichever warehouse shipped: 7 / 14 = 0.5; 10 / 0.5 = 20 days
        ("Кронштейны", "wb", "", 10, 0.5, 20.0, "2026-12-24", 5, 0, 0.0, 0.0),
    ]
    soon = pick(query(storage.path, "restock", soon="1"), "alias", "marketplace", "warehouse")
    assert soon == [("Пакеты 8", "wb", ""), ("Пакеты 8", "ozon", "Хоругвино")]
    # top=N: the first N rows of the same order (the dashboard's card asks for its 30 + 1)
    assert query(storage.path, "restock", top="2") == query(storage.path, "restock")[:2]
    assert query(storage.path, "restock", soon="1", top="1") == query(storage.path, "restock", soon="1")[:1]
    assert query(storage.path, "restock", top="0") == query(storage.path, "restock", top="x") == query(
        storage.path, "restock")
    assert_summaries_match_raw_rows(storage)


def test_restock_window_reads_the_kept_rows_only_while_they_are_exact(storage, monkeypatch):
    stock, orders = restock_history()
    write(storage, orders=orders, stock=stock)
    refresh_restock(storage)
    computed = computed_restock_window(storage)
    assert pick(query(storage.path, "restock"), *RESTOCK, "runs_out_soon") == pick(computed, *RESTOCK, "runs_out_soon")
    windows = {days: computed_restock_window(storage, days=str(days)) for days in kept.KEPT_WINDOWS}
    assert windows[14] == computed and windows[7] != computed != windows[30]
    # A kept figure made visible: read as kept for each kept window with or without its filters...
    with storage.transaction():
        storage.db.execute("UPDATE restock_now SET stock = stock + 1000 WHERE alias = 'Кронштейны' AND warehouse = 'Тверь'")
    marked = {days: [row | {"stock": row["stock"] + 1000} if row["warehouse"] == "Тверь" else row for row in rows]
              for days, rows in windows.items()}
    assert query(storage.path, "restock_window") == query(storage.path, "restock_window", days="14") == marked[14]
    assert query(storage.path, "restock_window", days="7") == marked[7]
    assert query(storage.path, "restock_window", days="30") == marked[30]
    assert query(storage.path, "restock_window", marketplace="ozon") == [r for r in marked[14] if r["marketplace"] == "ozon"]
    assert query(storage.path, "restock_window", soon="1") == [r for r in marked[14] if r["runs_out_soon"]]
    assert query(storage.path, "restock_window", days="30", soon="1") == [r for r in marked[30] if r["runs_out_soon"]]
    # ... and computed for a group asked for, another window, other settings or another day
    assert query(storage.path, "restock_window", alias="Кронштейны") == [r for r in computed if r["alias"] == "Кронштейны"]
    assert 1003 not in [row["stock"] for row in query(storage.path, "restock_window", days="13")]
    assert query(storage.path, "restock_window", at="2026-12-04T21:00:01Z") != marked[14]
    monkeypatch.setenv("TARGET_COVER_DAYS", "60")
    assert query(storage.path, "restock_window")[0]["to_ship"] != marked[14][0]["to_ship"]
    assert query(storage.path, "restock_window", days="30")[0]["to_ship"] != marked[30][0]["to_ship"]
    monkeypatch.delenv("TARGET_COVER_DAYS")
    # Any write to what it is made of stops the kept rows being read: one more order at Тверь.
    assert query(storage.path, "restock_window") == marked[14]
    write(storage, orders=[order("ozon-1", "t-late", 2001, "KR-10", "Тверь", "2026-12-02")])
    assert basis(storage) == {7: 0, 14: 0, 30: 0}
    assert query(storage.path, "restock_window") == computed_restock_window(storage) != computed
    assert query(storage.path, "restock_window", days="30") == computed_restock_window(storage, days="30") != windows[30]
    # So does a rebuild, which runs without the triggers.
    refresh_restock(storage)
    assert basis(storage) == {7: 1, 14: 1, 30: 1}
    storage.rebuild_summaries()
    assert basis(storage) == {7: 0, 14: 0, 30: 0}


def test_restock_window_looks_back_at_most_60_days(storage):
    stock, orders = restock_history()
    write(storage, orders=orders, stock=stock)
    sixty = query(storage.path, "restock_window", days="60")
    assert sixty != query(storage.path, "restock_window", days="14")
    assert query(storage.path, "restock_window", days="366") == query(storage.path, "restock_window", days="61") == sixty


def basis(storage: Storage) -> dict[int, int]:
    """Per kept window, whether restock_now_basis vouches for its rows."""
    return dict(storage.db.execute("SELECT days, in_step FROM restock_now_basis").fetchall())


def computed_restock_window(storage: Storage, **params: str) -> list[dict]:
    """restock_window as computed from the summaries, with the kept rows set aside."""
    vouched = basis(storage)
    with storage.transaction():
        storage.db.execute("UPDATE restock_now_basis SET in_step = 0")
    try:
        return query(storage.path, "restock_window", **params)
    finally:
        with storage.transaction():
            storage.db.conn.executemany("UPDATE restock_now_basis SET in_step = ? WHERE days = ?",
                                        [(in_step, days) for days, in_step in vouched.items()])


def test_restock_writes_only_the_rows_that_moved(storage):
    """A pass writes the rows of what to ship that differ from those kept at their places: none
    when nothing changed, one for one kept row put right, a few for a few places' stock."""
    stock, orders = restock_history()
    write(storage, orders=orders, stock=stock)
    refresh_restock(storage)
    rows = {days: storage.db.execute("SELECT count(*) FROM restock_now WHERE days = ?", [days]).fetchone()[0]
            for days in kept.KEPT_WINDOWS}
    assert all(rows.values())
    assert kept_restock(storage) == 0
    with storage.transaction():
        storage.db.execute("UPDATE restock_now SET stock = stock + 1000 WHERE days = 7 AND position ="
                           " (SELECT position FROM restock_now WHERE days = 7 ORDER BY position LIMIT 1 OFFSET 1)")
    assert kept_restock(storage) == 1 and kept_restock(storage) == 0
    write(storage, stock=[("ozon-1", 2001, "Хоругвино", T, 41)])  # (16.4 days of cover: no place moves)
    assert kept_restock(storage) == len(kept.KEPT_WINDOWS) < sum(rows.values())
    assert basis(storage) == {7: 1, 14: 1, 30: 1}
    for days in kept.KEPT_WINDOWS:
        assert query(storage.path, "restock_window", days=str(days)) == computed_restock_window(storage, days=str(days))


def place(number: int, stock: int) -> dict:
    """A row of what to ship, as restock_window gives it, for the place `number`."""
    return {"alias": f"Группа {number}", "marketplace": "wb", "warehouse": "Коледино", "stock": stock,
            "avg_daily_ordered": 1.0, "days_of_cover": float(stock), "runs_out_on": None, "to_ship": 0,
            "days_out_of_stock": 0, "lost_units": 0.0, "lost_rub": 0.0, "runs_out_soon": 0}


def keep_page(storage: Storage, rows: list[dict]) -> int:
    """The rows as window 7's page of restock_now, as a pass writes them; the number written."""
    with storage.transaction():
        written = kept._write_changed(storage, "restock_now", ("days", 7), kept.RESTOCK_COLUMNS, rows)
    kept_rows = storage.db.execute(f"SELECT {', '.join(kept.RESTOCK_COLUMNS)} FROM restock_now WHERE days = 7"
                                   " ORDER BY position").fetchall()
    assert kept_rows == [tuple(row.values()) for row in rows]
    return written


def by_cover(stocks: dict[int, int]) -> list[dict]:
    return [place(number, stock) for number, stock in sorted(stocks.items(), key=lambda item: (item[1], item[0]))]


def test_a_kept_row_that_moves_is_written_alone(storage):
    """A place whose stock moves it up or down the page is the one row written: the rows after it
    keep their places (before, each of them was written again at the position after)."""
    stocks = {number: 10 * number for number in range(1, 201)}
    assert keep_page(storage, by_cover(stocks)) == 200
    assert keep_page(storage, by_cover(stocks)) == 0
    stocks[190] = 5  # from near the end to the top
    assert keep_page(storage, by_cover(stocks)) == 1
    stocks[3] = 1_000  # from the top to the middle, one figure changed in place
    stocks[100] = 1_001
    assert keep_page(storage, by_cover(stocks)) == 2
    del stocks[50]  # a place gone, one new
    stocks[201] = 555
    assert keep_page(storage, by_cover(stocks)) == 1
    assert keep_page(storage, by_cover(stocks)[::-1]) == 199  # all but one moved
    assert keep_page(storage, []) == 0 and storage.db.execute("SELECT count(*) FROM restock_now").fetchone() == (0,)


def test_kept_rows_moved_between_the_same_two_make_room_when_there_is_none(storage):
    """Rows moved again and again between the same two rows halve the room between them: when none
    is left the page is numbered anew, written whole once, and stays exact throughout."""
    stocks = {1: 0, 2: 1_000_000}
    keep_page(storage, by_cover(stocks))
    written = []
    for number in range(3, 60):
        stocks[number] = 1 + 1_000_000 // number  # each new place just after the first
        written.append(keep_page(storage, by_cover(stocks)))
    # (2**32 between two rows at first: 32 halvings, then the whole page of that pass, 3 + 32 rows)
    assert [(step, rows) for step, rows in enumerate(written) if rows != 1] == [(32, 35)]


@pytest.mark.parametrize("seed", range(5))
def test_kept_rows_are_the_page_after_any_changes(storage, seed):
    """Random pages in a row (places come, go, and change stock): the kept rows are each page in
    its order, and a pass writes no more rows than places changed or moved."""
    rng = random.Random(seed)
    stocks = {number: rng.randrange(100) for number in range(300)}
    keep_page(storage, by_cover(stocks))
    for _ in range(30):
        changed = rng.sample(sorted(stocks), rng.randrange(0, 20))
        for number in changed:
            stocks[number] = rng.randrange(100)
        for number in rng.sample(sorted(stocks), rng.randrange(0, 3)):
            del stocks[number]
        stocks.update({rng.randrange(300, 10_000): rng.randrange(100) for _ in range(rng.randrange(0, 3))})
        assert keep_page(storage, by_cover(stocks)) <= len(changed) + 3


def kept_restock(storage: Storage) -> int:
    """What a pass does after its writes; the rows it wrote."""
    settings = load_settings(None, {"DATABASE_PATH": str(storage.path)})
    return kept.refresh_restock(settings, storage, datetime.fromisoformat(NOON.replace("Z", "+00:00")))


def test_a_version_16_database_has_its_restock_rows_kept_again_on_upgrade(storage):
    """Schema 17 makes restock_now anew, keyed per window, with the time in restock_now_basis:
    the collector's upgrade keeps the rows again at once, so that `restock` shows them."""
    stock, orders = restock_history()
    write(storage, orders=orders, stock=stock)
    refresh_restock(storage)
    shown = [row | {"computed_at": None} for row in query(storage.path, "restock")]
    computed = {days: computed_restock_window(storage, days=str(days)) for days in kept.KEPT_WINDOWS}
    with storage.transaction():  # the database as schema version 16 left it
        storage.db.execute("DROP TABLE restock_now")
        storage.db.execute("CREATE TABLE restock_now (position INTEGER PRIMARY KEY, alias TEXT NOT NULL, "
                           "marketplace TEXT NOT NULL, warehouse TEXT NOT NULL, stock INTEGER NOT NULL, "
                           "avg_daily_ordered REAL, days_of_cover REAL, runs_out_on TEXT, to_ship INTEGER, "
                           "days_out_of_stock INTEGER NOT NULL, lost_units REAL, runs_out_soon INTEGER NOT NULL, "
                           "computed_at TEXT NOT NULL, days INTEGER NOT NULL DEFAULT 14)")
        storage.db.execute("INSERT INTO restock_now (alias, marketplace, warehouse, stock, days_out_of_stock, "
                           "runs_out_soon, computed_at) VALUES ('old', 'wb', '', 1, 0, 0, '2026-12-04T11:50:00+03:00')")
        storage.db.execute("DROP TABLE restock_now_basis")
        storage.db.execute("CREATE TABLE restock_now_basis (days INTEGER PRIMARY KEY, day TEXT NOT NULL, "
                           "target_cover_days REAL NOT NULL, low_stock_days REAL NOT NULL, in_step INTEGER NOT NULL)")
        storage.db.execute("INSERT INTO restock_now_basis VALUES (14, ?, 30, 7, 1)", [T])
        storage.db.execute("PRAGMA user_version = 16")
    settings = load_settings(None, {"DATABASE_PATH": str(storage.path)})
    with freeze_time(NOON):
        upgrade(settings, storage)
    assert storage.schema_version == SCHEMA_VERSION
    assert basis(storage) == {0: 1, 7: 1, 14: 1, 30: 1}  # (0: every place's last 60 days, restock_days_now)
    assert [row | {"computed_at": None} for row in query(storage.path, "restock")] == shown
    assert {row["computed_at"] for row in query(storage.path, "restock")} == {"2026-12-04T12:00:00+03:00"}
    for days, rows in computed.items():
        assert query(storage.path, "restock_window", days=str(days)) == rows



def test_a_version_27_database_learns_the_roubles_lost_on_upgrade(storage):
    """Schema 28 makes restock_now and restock_days_now anew with the roubles lost, and
    warehouse_month_now with the roubles returned: the upgrade keeps them again at once, for the
    kept windows and for any other (read from each place's 60 days), equal to what
    restock_window computes."""
    stock, orders = restock_history()
    write(storage, orders=orders, stock=stock)
    with storage.transaction():  # the kept tables as schema version 27 left them, with stale rows
        storage.db.execute("DROP TABLE restock_now")
        storage.db.execute("CREATE TABLE restock_now (days INTEGER NOT NULL, position INTEGER NOT NULL, "
                           "alias TEXT NOT NULL, marketplace TEXT NOT NULL, warehouse TEXT NOT NULL, "
                           "stock INTEGER NOT NULL, avg_daily_ordered REAL, days_of_cover REAL, runs_out_on TEXT, "
                           "to_ship INTEGER, days_out_of_stock INTEGER NOT NULL, lost_units REAL, "
                           "runs_out_soon INTEGER NOT NULL, PRIMARY KEY (days, position)) WITHOUT ROWID")
        storage.db.execute("INSERT INTO restock_now VALUES (14, 1, 'old', 'wb', '', 1, 0, 0, NULL, 0, 0, 0, 0)")
        storage.db.execute("DROP TABLE restock_days_now")
        storage.db.execute("CREATE TABLE restock_days_now (alias TEXT NOT NULL, marketplace TEXT NOT NULL, "
                           "warehouse TEXT NOT NULL, stock INTEGER NOT NULL, stock_days TEXT NOT NULL, "
                           "ordered_days TEXT NOT NULL, PRIMARY KEY (alias, marketplace, warehouse)) WITHOUT ROWID")
        storage.db.execute("INSERT OR REPLACE INTO restock_now_basis VALUES (14, ?, 30, 7, 1, ?)", [T, T])
        storage.db.execute("DROP TABLE warehouse_month_now")  # (and «По складам» kept without the roubles returned)
        storage.db.execute("CREATE TABLE warehouse_month_now (page TEXT NOT NULL, position INTEGER NOT NULL, "
                           "alias TEXT NOT NULL, marketplace TEXT NOT NULL, warehouse TEXT, stock INTEGER, "
                           "ordered INTEGER NOT NULL, bought INTEGER, returned INTEGER, ordered_rub REAL NOT NULL, "
                           "bought_rub REAL, PRIMARY KEY (page, position)) WITHOUT ROWID")
        storage.db.execute("PRAGMA user_version = 27")
    settings = load_settings(None, {"DATABASE_PATH": str(storage.path)})
    with freeze_time(NOON):
        upgrade(settings, storage)
        assert storage.schema_version == SCHEMA_VERSION
        assert basis(storage) == {0: 1, 7: 1, 14: 1, 30: 1}
        lost = {(r["alias"], r["warehouse"]): r["lost_rub"] for r in query(storage.path, "restock")}
        assert "old" not in {alias for alias, _ in lost} and lost["Кронштейны", "Хоругвино"] == 5600.0
        for days in ("14", "9", "21", "60"):  # kept, and read from each place's days
            assert query(storage.path, "restock_window", days=days) == computed_restock_window(storage, days=days)
        assert storage.db.execute("SELECT in_step FROM warehouse_month_basis").fetchone() == (1,)
        assert query(storage.path, "by_warehouse", period="month") and all(
            "returned_rub" in row for row in query(storage.path, "by_warehouse", period="month"))


def test_a_version_28_database_keeps_each_places_digits_as_blobs(storage):
    """Schema 29 keeps restock_days_now's units and kopecks as ASCII digits in BLOBs (substr()
    goes straight to a window's place): the upgrade makes the table anew from the text that
    schema 28 kept, and restock_window reads any window from it as it computes it."""
    stock, orders = restock_history()
    write(storage, orders=orders, stock=stock)
    settings = load_settings(None, {"DATABASE_PATH": str(storage.path)})
    refresh_kept(settings, storage, datetime.fromisoformat(NOON.replace("Z", "+00:00")))
    with storage.transaction():  # the table as schema 28 made it, its digits text
        storage.db.execute("ALTER TABLE restock_days_now RENAME TO kept_by_29")
        storage.db.execute("CREATE TABLE restock_days_now (alias TEXT NOT NULL, marketplace TEXT NOT NULL, "
                           "warehouse TEXT NOT NULL, stock INTEGER NOT NULL, stock_days TEXT NOT NULL, "
                           "ordered_days TEXT NOT NULL, ordered_kopecks_days TEXT NOT NULL, "
                           "PRIMARY KEY (alias, marketplace, warehouse))")
        storage.db.execute("INSERT INTO restock_days_now SELECT alias, marketplace, warehouse, stock, stock_days, "
                           "CAST(ordered_days AS TEXT), CAST(ordered_kopecks_days AS TEXT) FROM kept_by_29")
        storage.db.execute("DROP TABLE kept_by_29")
        storage.db.execute("PRAGMA user_version = 28")
    assert kept_digit_types(storage) == {("text", "text")}
    with freeze_time(NOON):
        upgrade(settings, storage)
        assert storage.schema_version == SCHEMA_VERSION and basis(storage) == {0: 1, 7: 1, 14: 1, 30: 1}
        assert kept_digit_types(storage) == {("blob", "blob")}
        assert declared_types(storage, "restock_days_now")["ordered_kopecks_days"] == "BLOB"
        for days in ("9", "21", "60"):
            assert query(storage.path, "restock_window", days=days) == computed_restock_window(storage, days=days)


def declared_types(storage, table: str) -> dict[str, str]:
    return {name: kind for _, name, kind, *_ in storage.db.execute(f"PRAGMA table_info({table})")}


def kept_digit_types(storage) -> set[tuple]:
    return set(storage.db.execute(
        "SELECT typeof(ordered_days), typeof(ordered_kopecks_days) FROM restock_days_now").fetchall())


def test_restock_reads_its_settings(storage, monkeypatch):
    stock, orders = restock_history()
    write(storage, orders=orders, stock=stock)
    refresh_restock(storage, LOW_STOCK_DAYS="15", TARGET_COVER_DAYS="60")
    rows = query(storage.path, "restock", soon="1")
    # the viewer's own environment says the same for the live query
    monkeypatch.setenv("LOW_STOCK_DAYS", "15")
    monkeypatch.setenv("TARGET_COVER_DAYS", "60")
    assert pick(query(storage.path, "restock_window", soon="1"), *RESTOCK) == pick(rows, *RESTOCK)
    # Тверь (14 days) now runs out within 15 days; to reach 60 days: 3 x 60 / 14 − 3 = 9.86 -> 10
    assert pick(rows, "warehouse", "days_of_cover", "to_ship") == [("Тверь", 14.0, 10)]
