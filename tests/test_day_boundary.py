"""Day boundaries in TIMEZONE (Moscow), on a machine whose clock is UTC, end to end:
the sandbox, the collector and Datasette's `today` all frozen at the same instant."""

import asyncio
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml
from datasette.app import Datasette
from freezegun import freeze_time

from collector.config import load_settings
from collector.pipeline import run_pass
from collector.sandbox import Sandbox, SandboxConfig
from collector.storage import Storage
from tests.conftest import collector_environ

METADATA = Path(__file__).resolve().parent.parent / "metadata.yml"
BEFORE_MIDNIGHT = "2026-11-26T20:59:59Z"   # 23:59:59 in Moscow, 26 November
AFTER_MIDNIGHT = "2026-11-26T21:00:01Z"    # 00:00:01 in Moscow, 27 November


@pytest.fixture
def utc_machine(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("TIMEZONE", raising=False)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def truth(sandbox: Sandbox, figure: str, day: date, at: datetime) -> dict[str, int]:
    units = {"wb": 0, "ozon": 0}
    for account in sandbox.seller.accounts:
        counted = getattr(sandbox.seller, figure)(account, day, at)
        units[account.split("-")[0]] += sum(counted.values())
    return units


def today_totals(database: Path, **params) -> dict[str, int]:
    ds = Datasette([str(database)], metadata=yaml.safe_load(METADATA.read_text(encoding="utf-8")))
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = asyncio.run(ds.client.get(f"/mp/today.json?_shape=array&{query}"))
    assert response.status_code == 200, response.text
    rows = response.json()
    return {"wb": sum(r["wb_ordered"] for r in rows), "ozon": sum(r["ozon_ordered"] for r in rows)}


@pytest.fixture
def real_clock_sandbox():
    """On the real (here: frozen) clock, so freezegun moves the seller with the collector."""
    sandbox = Sandbox(SandboxConfig(seed=3, rate_limit_factor=0, wb_refresh_minutes=1)).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def settings_and_storage(real_clock_sandbox, tmp_path):
    settings = load_settings(None, collector_environ(real_clock_sandbox, tmp_path))
    storage = Storage(settings.database_path)
    storage.migrate()
    yield settings, storage
    storage.close()


def test_today_switches_exactly_at_moscow_midnight(utc_machine, real_clock_sandbox, settings_and_storage):
    sandbox, (settings, storage) = real_clock_sandbox, settings_and_storage
    with freeze_time(BEFORE_MIDNIGHT):
        assert time.strftime("%H:%M:%S") == "20:59:59"  # the machine's own clock is UTC
        assert run_pass(settings, storage).status == "ok"
        expected = truth(sandbox, "ordered_units", date(2026, 11, 26), datetime.now(timezone.utc))
        assert expected["wb"] > 100 and expected["ozon"] > 100
        assert today_totals(settings.database_path) == expected
    with freeze_time(AFTER_MIDNIGHT):
        # Before a pass: the rows kept at 23:59:59 are yesterday's; nothing is stored for today yet.
        assert today_totals(settings.database_path) == {"wb": 0, "ozon": 0}
        assert run_pass(settings, storage).status == "ok"
        now = datetime.now(timezone.utc)
        assert today_totals(settings.database_path) == truth(sandbox, "ordered_units", date(2026, 11, 27), now)
        assert today_totals(settings.database_path, date="2026-11-26") == truth(
            sandbox, "ordered_units", date(2026, 11, 26), now)
        # Rows placed on the 27th are exactly those ordered from Moscow midnight on.
        days = storage.db.execute("SELECT DISTINCT day FROM orders WHERE ordered_at >= '2026-11-27'").fetchall()
        assert [tuple(d) for d in days] in ([], [("2026-11-27",)])


def test_a_first_run_just_after_midnight_starts_today_at_moscow_midnight(utc_machine, settings_and_storage):
    settings, storage = settings_and_storage
    with freeze_time(AFTER_MIDNIGHT):
        run_pass(settings, storage, datasets=("orders",))
    # WB rows come from dateFrom = 2026-11-27T00:00:00 Moscow: nothing changed before it.
    oldest = storage.db.execute("SELECT min(changed_at) FROM orders WHERE account = 'wb-1'").fetchone()[0]
    assert oldest is None or oldest >= "2026-11-27T00:00:00+03:00"
    # Ozon's "today" window starts at 21:00Z: no posting created before it counts as today.
    assert storage.db.execute("SELECT count(*) FROM orders WHERE account LIKE 'ozon%' AND day = '2026-11-27' "
                              "AND ordered_at < '2026-11-27T00:00:00+03:00'").fetchone()[0] == 0
