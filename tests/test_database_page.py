"""The database page /mp («Запросы и выгрузки»): every table and view schema.sql makes has its
entry in metadata.yml, in Russian; the collector's machinery is hidden there and what a seller
reads is listed.

Datasette 0.65 hides the tables metadata.yml marks `hidden`, and with them every table whose name
starts with a hidden table's name (its rule for the tables of a full-text index): a visible table
so named would vanish from the page unnoticed. Views cannot be hidden: they are listed, titled.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest
from datasette.app import Datasette

from test_queries import build_database, load_metadata
from test_viewer import make_datasette

CYRILLIC = re.compile("[а-яА-ЯёЁ]")
# Hidden by Datasette itself, whatever metadata.yml says (made by ANALYZE).
DATASETTE_HIDES = {"sqlite_stat1", "sqlite_stat2", "sqlite_stat3", "sqlite_stat4"}
# What a seller reads directly: listed, and each column labelled in Russian.
SELLER_READS = {"rejected_rows", "balances", "order_outcomes", "sku_stock", "alias_stock"}
# The collector's own state and machinery: the pages kept ready for the viewer (collector/kept.py)
# and what vouches for them, and the tables the canned queries look things up in by key.
MACHINERY = {"sqlite_sequence", "watermarks", "collector_state", "alert_state", "source_notes", "sizes",
             "restock_now", "restock_now_basis", "restock_days_now", "today_now", "buyout_now",
             "warehouse_month_now", "warehouse_month_basis", "stock_days_basis", "recent_minutes_floor",
             "sku_names", "summary_days", "order_warehouses", "marketplace_alias_warehouses",
             "alias_warehouse_first_days"}


def is_left_alone(name: str) -> bool:
    """sqlite_stat1 (Datasette hides it) and the *_recomputed views (the plugin refuses their
    pages: tests/test_viewer.py) need no entry."""
    return name in DATASETTE_HIDES or name.endswith("_recomputed")


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("database_page") / "mp.db"
    build_database(path)
    return path


@pytest.fixture(scope="module")
def schema(db_path) -> dict[str, list[str]]:
    """The built database's names by type: {'table': [...], 'view': [...]}."""
    conn = sqlite3.connect(db_path)
    names = {kind: [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = ? ORDER BY name", [kind])] for kind in ("table", "view")}
    conn.close()
    assert len(names["table"]) > 40 and len(names["view"]) > 10
    return names


def columns_of(db_path: Path, name: str) -> list[str]:
    conn = sqlite3.connect(db_path)
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({name})")]
    conn.close()
    return columns


def entries() -> dict[str, dict]:
    return load_metadata()["databases"]["mp"]["tables"]


def hidden_names() -> set[str]:
    return {name for name, entry in entries().items() if entry.get("hidden")}


def get(ds: Datasette, path: str, **kwargs):
    response = asyncio.run(ds.client.get(path, **kwargs))
    assert response.status_code == 200, (path, response.text)
    return response


@pytest.fixture
def open_ds(db_path, monkeypatch):
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    return make_datasette(db_path)


def test_every_table_and_view_is_titled_and_described_in_russian(schema):
    metadata = entries()
    missing = [name for kind in ("table", "view") for name in schema[kind]
               if not is_left_alone(name) and name not in metadata]
    assert not missing, f"no entry in metadata.yml: {missing}"
    for kind in ("table", "view"):
        for name in schema[kind]:
            if is_left_alone(name):
                continue
            entry = metadata[name]
            title, description = entry.get("title", ""), entry.get("description", "")
            assert CYRILLIC.search(title) and title.endswith(f"({name})"), (name, title)
            assert CYRILLIC.search(description), (name, description)
    # An entry for a table schema.sql no longer makes would be a stale one.
    known = set(schema["table"]) | set(schema["view"])
    assert not [name for name in metadata if name not in known]


def test_views_cannot_be_hidden_so_none_says_it_is(schema):
    hidden_views = [name for name in schema["view"] if name in hidden_names()]
    assert not hidden_views, "Datasette 0.65 lists every view: `hidden` would mislead"


def test_every_column_label_is_russian_and_names_a_real_column(db_path, schema):
    for name, entry in entries().items():
        if "columns" not in entry:
            continue
        real = columns_of(db_path, name)
        for column, label in entry["columns"].items():
            assert column in real, (name, column)
            assert CYRILLIC.search(str(label)), (name, column, label)


def test_what_a_seller_reads_is_shown_with_every_column_labelled(db_path):
    metadata = entries()
    for name in sorted(SELLER_READS):
        assert not metadata[name].get("hidden"), name
        labelled = set(metadata[name].get("columns", {}))
        assert labelled == set(columns_of(db_path, name)), (name, set(columns_of(db_path, name)) - labelled)


def test_no_visible_table_starts_with_a_hidden_tables_name(schema):
    hidden = hidden_names() | DATASETTE_HIDES
    clashes = [(table, prefix) for table in schema["table"] if table not in hidden
               for prefix in hidden if table.startswith(prefix)]
    assert not clashes, f"Datasette would hide these visible tables too: {clashes}"


def test_the_database_page_hides_the_machinery_and_lists_the_rest(open_ds, schema):
    hidden = hidden_names()
    assert MACHINERY <= hidden, f"not hidden: {sorted(MACHINERY - hidden)}"
    assert not SELLER_READS & hidden
    page = get(open_ds, "/mp.json").json()
    flags = {table["name"]: table["hidden"] for table in page["tables"]}
    for table in schema["table"]:
        if table in DATASETTE_HIDES:
            continue
        assert table in flags, table
        assert flags[table] == (table in hidden), (table, "hidden" if flags[table] else "listed")
    views = {view["name"] for view in page["views"]}
    assert views == {name for name in schema["view"] if not is_left_alone(name)}

    # The HTML page links each listed table and view, and no hidden table (until «Show hidden»).
    html = get(open_ds, "/mp").text
    for name in [table for table in schema["table"] if not flags.get(table, True)] + sorted(views):
        assert f'href="/mp/{name}"' in html, name
    for name in hidden:
        assert f'href="/mp/{name}"' not in html, name
    shown_all = get(open_ds, "/mp?_show_hidden=1").text
    assert all(f'href="/mp/{name}"' in shown_all for name in hidden)


def test_a_hidden_table_still_opens_by_its_address(open_ds):
    """Hidden means left off the list, not refused: the engineer can still look."""
    answer = get(open_ds, "/mp/restock_now.json?_size=1").json()
    assert "rows" in answer


def test_the_database_page_asks_again_only_what_a_write_or_an_upgrade_changed(tmp_path, monkeypatch):
    """The database page asks each table's columns, key and full-text table, and counts each small
    table: ~290 trips to an SQL thread on every open (~0.3 ms each, most of the page's time). The
    plugin keeps what it asks of the schema while PRAGMA schema_version stays and the counts while
    PRAGMA data_version does: the second open makes almost none, a row the collector writes is
    counted at the next open, and a column or a table an upgrade adds shows at once."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = tmp_path / "mp.db"
    build_database(path)
    ds = make_datasette(path)
    database = ds.get_database("mp")
    trips = []
    execute_fn = database.execute_fn

    async def counted(fn):
        trips.append(fn)
        return await execute_fn(fn)

    monkeypatch.setattr(database, "execute_fn", counted)
    get(ds, "/mp")
    first = len(trips)
    trips.clear()
    get(ds, "/mp")
    assert first > 250 and len(trips) < 10, (first, len(trips))

    accounts = asyncio.run(database.table_counts(5))["accounts"]
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO accounts (account, marketplace, label) VALUES ('wb-new', 'wb', 'new')")
    assert asyncio.run(database.table_counts(5))["accounts"] == accounts + 1

    assert "note" not in get(ds, "/mp/accounts.json?_shape=objects").json()["columns"]
    assert "added_later" not in [table["name"] for table in get(ds, "/mp.json").json()["tables"]]
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE accounts ADD COLUMN note TEXT")
        conn.execute("CREATE TABLE added_later (id INTEGER PRIMARY KEY, name TEXT)")
    assert "note" in get(ds, "/mp/accounts.json?_shape=objects").json()["columns"]
    assert "added_later" in [table["name"] for table in get(ds, "/mp.json").json()["tables"]]
    assert get(ds, "/mp/added_later.json?_shape=objects").json()["columns"] == ["id", "name"]


def test_datasette_refreshes_its_catalog_of_the_schema_only_when_it_changed(tmp_path, monkeypatch):
    """Before every request Datasette reads each database's PRAGMA schema_version and its own
    catalog's versions, three trips to SQL threads; the plugin lets it do so only when the served
    file's schema has changed. A canned query's answer is then its one query, and a table an
    upgrade adds still reaches the catalog."""
    monkeypatch.delenv("DATASETTE_PASSWORD_HASH", raising=False)
    path = tmp_path / "mp.db"
    build_database(path)
    ds = make_datasette(path)
    trips = []
    for database in ds.databases.values():
        def counting(execute_fn, name=database.name):
            async def counted(fn):
                trips.append(name)
                return await execute_fn(fn)
            return counted
        monkeypatch.setattr(database, "execute_fn", counting(database.execute_fn))
    get(ds, "/mp/freshness.json")
    trips.clear()
    get(ds, "/mp/freshness.json")
    assert trips == ["mp"]  # (the query itself)

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE added_later (id INTEGER PRIMARY KEY)")
    get(ds, "/mp/freshness.json")
    catalog = asyncio.run(ds.get_database("_internal").execute(
        "SELECT table_name FROM tables WHERE database_name = 'mp' AND table_name = 'added_later'")).rows
    assert len(catalog) == 1
