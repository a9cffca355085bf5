"""Shared fixtures: the sandbox seller on loopback, and collector settings pointed at it."""

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from collector.config import load_settings
from collector.pipeline import run_pass
from collector.sandbox import Sandbox, SandboxClock, SandboxConfig
from collector.storage import Storage

# 12:00 in Moscow on a weekday: the seller has a morning of orders behind it.
NOON_MSK = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
FAST = "0.001"  # rate-limit factor: the documented limits, 1000 times faster
# A third of the sandbox's default orders: still pages, returns and every status, while a first
# pass (Ozon's 30 days re-read) writes in a third of the time.
SMALL_SELLER = {"wb_orders_per_day": 100.0, "ozon_postings_per_day": 40.0}


@pytest.fixture
def clock() -> SandboxClock:
    return SandboxClock(NOON_MSK)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(seed=1, rate_limit_factor=float(FAST), wb_refresh_minutes=1, **SMALL_SELLER)


@pytest.fixture
def sandbox(sandbox_config, clock):
    sb = Sandbox(sandbox_config, clock=clock).start()
    yield sb
    sb.stop()


def collector_environ(sandbox: Sandbox, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**sandbox.env(), "DATABASE_PATH": str(tmp_path / "mp.db"),
            "ALIASES_FILE": str(tmp_path / "aliases.csv"), "RATE_LIMIT_FACTOR": FAST,
            "HTTP_TIMEOUT": "2", "MAX_RETRY_WAIT": "5", **extra}


@pytest.fixture
def settings(sandbox, tmp_path):
    return load_settings(env_file=None, environ=collector_environ(sandbox, tmp_path))


@pytest.fixture
def storage(settings):
    store = Storage(settings.database_path)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def collect(settings, storage, clock):
    """One pass at the sandbox clock's time."""
    def collect_once(**kwargs):
        return run_pass(kwargs.pop("settings", settings), storage, clock=clock.now, **kwargs)
    return collect_once


def table(store: Storage, sql: str, params=()) -> list[tuple]:
    return [tuple(row) for row in store.db.execute(sql, params).fetchall()]


@pytest.fixture
def machine_in_utc(monkeypatch):
    """The machine's clock is UTC and the project's settings are not set: the defaults apply
    (TIMEZONE Europe/Moscow, LOW_STOCK_DAYS 7, TARGET_COVER_DAYS 30)."""
    for name in ("TIMEZONE", "LOW_STOCK_DAYS", "TARGET_COVER_DAYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
