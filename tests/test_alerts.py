"""Alerts end to end: detection after a pass, the outbox, and delivery by the real Apprise over
HTTP to the sandbox's receiver (collector/sandbox/alerts.py). Never a real messenger's host."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from freezegun import freeze_time

from collector import alerts, logs, kept
from collector.cli import cli
from collector.config import ConfigError, load_settings
from collector.records import OrderLine, Product, StockLevel
from collector.sandbox import Fault, SandboxClock
from collector.storage import SCHEMA_VERSION, Storage
from collector.timeutil import MOSCOW, iso, utc_now
from tests.conftest import NOON_MSK, collector_environ, table

TODAY = date(2026, 11, 26)
ROOT = Path(__file__).resolve().parent.parent


def titles(sandbox, path="/alerts") -> list[str]:
    return [alert.title for alert in sandbox.alerts.received_at(path)]


def digests(sandbox, path="/alerts") -> list[str]:
    return [alert.message for alert in sandbox.alerts.received_at(path) if alert.title.startswith("Итоги дня")]


def posts(sandbox, path: str) -> int:
    return sum(1 for r in sandbox.request_log if r.path == path and r.method == "POST")


def alert_settings(tmp_path: Path, **env: str):
    """Settings with no marketplace account: the alerts alone, on data a test writes itself."""
    return load_settings(env_file=None, environ={"DATABASE_PATH": str(tmp_path / "mp.db"),
                                                 "ALIASES_FILE": str(tmp_path / "aliases.csv"), **env})


@pytest.fixture
def quiet_storage(tmp_path):
    store = Storage(tmp_path / "mp.db")
    store.migrate()
    yield store
    store.close()


# -- money and words ------------------------------------------------------------------------

def test_money_is_exact_and_written_the_russian_way():
    assert alerts.rub(123456789) == "1 234 567,89 ₽"
    assert alerts.rub(5) == "0,05 ₽" and alerts.rub(-150000) == "−1 500,00 ₽"
    # 0.29 * 100 is 28.999999999999996 in floating point: kopecks go through the decimal text
    assert alerts.kopecks(0.29) == 29 and alerts.kopecks(1234.56) == 123456 and alerts.kopecks(7) == 700
    assert [alerts.plural(n, "раз", "раза", "раз") for n in (1, 3, 5, 11, 21, 22)] == \
        ["раз", "раза", "раз", "раз", "раз", "раза"]


# -- nothing configured: nothing changes -----------------------------------------------------

def test_without_alert_urls_a_pass_queues_and_sends_nothing(sandbox, storage, collect, clock):
    clock.set(datetime(2026, 11, 26, 19, 0, tzinfo=timezone.utc))  # 22:00 in Moscow: digest time
    assert collect(datasets=("stocks", "sales")).status == "ok"
    assert table(storage, "SELECT count(*) FROM alert_outbox") == [(0,)]
    assert table(storage, "SELECT count(*) FROM alert_state") == [(0,)]
    assert sandbox.alerts.received == []


# -- the daily digest ------------------------------------------------------------------------

def test_the_digest_is_sent_once_a_day_across_passes_and_a_crash_between_commit_and_send(
        sandbox, tmp_path, storage, clock, monkeypatch):
    settings = load_settings(None, collector_environ(sandbox, tmp_path, ALERT_URLS=sandbox.alerts_url,
                                                     DIGEST_TIME="11:30", DASHBOARD_URL="https://mp.example.ru/"))
    from collector.pipeline import run_pass

    def crash(*args, **kwargs):  # the process dies right after the commit, before anything is sent
        raise KeyboardInterrupt

    monkeypatch.setattr(alerts, "send", crash)
    with pytest.raises(KeyboardInterrupt):
        run_pass(settings, storage, clock=clock.now)
    assert table(storage, "SELECT key, status FROM alert_outbox WHERE kind = 'digest'") == \
        [("digest:2026-11-26", "pending")]
    assert sandbox.alerts.received == []

    monkeypatch.undo()
    for _ in range(2):  # the timer keeps running every few minutes
        clock.advance(minutes=5)
        assert run_pass(settings, storage, clock=clock.now, datasets=("stocks",)).status == "ok"
    (digest,) = digests(sandbox)
    assert table(storage, "SELECT key, status FROM alert_outbox WHERE kind = 'digest'") == \
        [("digest:2026-11-26", "sent")]

    # Hand-checked against the simulated seller's own figures (units) and the stored order lines
    # (money, integer kopecks) for the day the crashed pass saw: the digest was composed then.
    now = NOON_MSK
    wb_units = sum(sandbox.seller.ordered_units("wb-1", TODAY, now).values())
    ozon_units = sum(sum(sandbox.seller.ordered_units(a, TODAY, now).values()) for a in ("ozon-1", "ozon-2"))
    assert f"WB: заказано {alerts.number(wb_units)} шт. на " in digest
    assert f"Ozon: заказано {alerts.number(ozon_units)} шт. на " in digest
    assert "Сегодня до 12:00 против чт 19.11 (весь день):" in digest
    assert "Больше всего заказов:\n1. " in digest
    assert digest.endswith("Подробнее: https://mp.example.ru/-/dashboards/today")

    clock.advance(days=1)  # the next day at its digest time: a new one, once
    run_pass(settings, storage, clock=clock.now, datasets=("stocks",))
    clock.advance(minutes=10)
    run_pass(settings, storage, clock=clock.now, datasets=("stocks",))
    assert len(digests(sandbox)) == 2
    assert [t for t in titles(sandbox) if t.startswith("Итоги")] == \
        ["Итоги дня, чт 26.11.2026", "Итоги дня, пт 27.11.2026"]


@pytest.mark.parametrize("utc, digest_time, expected", [
    # 20:59:59 UTC is 23:59:59 in Moscow: after 21:00 there, so today's (4 Dec) digest is due,
    # though a UTC clock says 20:59
    ("2026-12-04 20:59:59", "21:00", ["digest:2026-12-04"]),
    # 00:00:01 in Moscow is the 5th: its digest is not due before 21:00, and the 4th's is not resent
    ("2026-12-04 21:00:01", "21:00", []),
    # a digest at midnight belongs to the Moscow day that just began, not to UTC's 4 Dec
    ("2026-12-04 20:59:59", "00:00", ["digest:2026-12-04"]),
    ("2026-12-04 21:00:01", "00:00", ["digest:2026-12-05"]),
])
def test_the_digest_day_and_time_are_moscow_on_a_utc_clock(tmp_path, quiet_storage, utc, digest_time, expected):
    settings = alert_settings(tmp_path, ALERT_URLS="json://127.0.0.1:1/alerts", DIGEST_TIME=digest_time)
    with freeze_time(utc, tz_offset=0):
        alerts.queue(settings, quiet_storage, 1, utc_now())
    assert [key for (key,) in table(quiet_storage, "SELECT key FROM alert_outbox")] == expected


def test_a_digest_already_queued_that_day_is_not_queued_again_after_midnight(tmp_path, quiet_storage):
    settings = alert_settings(tmp_path, ALERT_URLS="json://127.0.0.1:1/alerts")
    with freeze_time("2026-12-04 20:59:59", tz_offset=0):
        alerts.queue(settings, quiet_storage, 1, utc_now())
        alerts.queue(settings, quiet_storage, 2, utc_now())
    with freeze_time("2026-12-04 21:00:01", tz_offset=0):
        alerts.queue(settings, quiet_storage, 3, utc_now())
    assert table(quiet_storage, "SELECT key, day FROM alert_outbox") == [("digest:2026-12-04", "2026-12-04")]


# -- a channel that fails, then recovers ---------------------------------------------------

def test_a_failing_channel_is_retried_with_backoff_and_the_others_never_get_a_message_twice(
        sandbox, tmp_path, quiet_storage):
    clock = SandboxClock(NOON_MSK)
    urls = f"{sandbox.alerts_url}/shop {sandbox.alerts_url}/phone"
    settings = alert_settings(tmp_path, ALERT_URLS=urls, DIGEST_TIME="11:00")
    sandbox.faults.add(Fault("500", endpoint="/alerts/phone", times=2))

    def tick(run_id, minutes=0.0, days=0):
        clock.advance(minutes=minutes, days=days)
        alerts.after_pass(settings, quiet_storage, run_id, clock.now)

    tick(1)                  # queued; /shop has it; /phone answers 500 and rests 1 minute
    assert (titles(sandbox, "/alerts/shop"), titles(sandbox, "/alerts/phone")) == (["Итоги дня, чт 26.11.2026"], [])
    tick(2, minutes=0.5)     # still resting: not even tried
    assert posts(sandbox, "/alerts/phone") == 1
    tick(3, minutes=0.5)     # tried: 500 again, rests 2 minutes
    assert posts(sandbox, "/alerts/phone") == 2
    assert table(quiet_storage, "SELECT channel, status, attempts, substr(next_try_at, 12, 5) FROM alert_deliveries "
                                "WHERE channel LIKE '%#2'") == [(f"{label(sandbox)}#2", "failed", 2, "12:03")]
    assert table(quiet_storage, "SELECT status FROM alert_outbox") == [("pending",)]
    tick(4, minutes=2)       # the receiver is back
    tick(5, minutes=10)
    tick(6, days=1)          # the next day's digest goes to both at once
    assert titles(sandbox, "/alerts/shop") == titles(sandbox, "/alerts/phone") == \
        ["Итоги дня, чт 26.11.2026", "Итоги дня, пт 27.11.2026"]
    assert posts(sandbox, "/alerts/shop") == 2 and posts(sandbox, "/alerts/phone") == 4
    assert table(quiet_storage, "SELECT status FROM alert_outbox ORDER BY id") == [("sent",), ("sent",)]
    assert table(quiet_storage, "SELECT channel, attempts FROM alert_deliveries WHERE event_id = 1 ORDER BY channel") \
        == [(label(sandbox), 1), (f"{label(sandbox)}#2", 3)]


def label(sandbox) -> str:
    return "json://" + sandbox.url.split("://")[1]


# -- low stock ---------------------------------------------------------------------------------

def seed_item(store: Storage, today: date) -> None:
    """One WB item, "Пакеты 8": 100 in stock since 20 days ago and 2 ordered every day of the
    14 whole days before today, so its demand is 2 a day and its cover stock / 2 days."""
    store.save_accounts([("wb-1", "wb", "Кабинет")])
    store.replace_aliases([("wb", "ART-8", "Пакеты 8", 1)])
    start = datetime.combine(today - timedelta(days=20), datetime.min.time(), MOSCOW)
    with store.transaction():
        store.write_products([Product("wb-1", 111, "", "ART-8", "Пакет 8 мкм", None)], iso(start, MOSCOW))
        set_stock(store, 100, start)
        lines = []
        for back in range(1, 15):
            day = today - timedelta(days=back)
            at = iso(datetime.combine(day, datetime.min.time(), MOSCOW) + timedelta(hours=10), MOSCOW)
            lines += [OrderLine("wb-1", f"o-{back}-{n}", 111, "ART-8", "", None, "Коледино", at, day.isoformat(),
                                "ordered", 0, None, 1, 50000, at) for n in range(2)]
        store.write_orders(lines)


def set_stock(store: Storage, quantity: int, at: datetime) -> None:
    store.write_stock("wb-1", [StockLevel("wb-1", 111, "", "Коледино", quantity)], iso(at, MOSCOW),
                      at.astimezone(MOSCOW).date().isoformat(), None)


def test_low_stock_is_alerted_once_per_crossing_and_again_after_recovery(sandbox, tmp_path, quiet_storage):
    clock = SandboxClock(NOON_MSK)
    settings = alert_settings(tmp_path, ALERT_URLS=sandbox.alerts_url, DASHBOARD_URL="https://mp.example.ru")
    seed_item(quiet_storage, TODAY)

    def after_stock(run_id: int, quantity: int) -> list[str]:
        clock.advance(minutes=10)
        with quiet_storage.transaction():
            set_stock(quiet_storage, quantity, clock.now())
        before = len(sandbox.alerts.received)
        kept.refresh_restock(settings, quiet_storage, clock.now())  # as every pass does first
        alerts.after_pass(settings, quiet_storage, run_id, clock.now)
        return [a.message for a in sandbox.alerts.received[before:]]

    assert after_stock(1, 100) == []           # 50 days of cover
    (first,) = after_stock(2, 10)              # 5 days: below 7
    assert first == ("Запаса меньше чем на 7 дн. или не осталось:\n"
                     "• Пакеты 8 (WB): 10 шт., хватит на 5 дн. (до 01.12), отгрузить 50 шт.\n\n"
                     "Подробнее: https://mp.example.ru/mp/restock")
    assert after_stock(3, 8) == []             # still low: no second message
    assert after_stock(4, 6) == []
    assert after_stock(5, 100) == []           # recovered, quietly
    (second,) = after_stock(6, 0)              # a new crossing, to zero
    assert "• Пакеты 8 (WB): нет в наличии, отгрузить 60 шт." in second
    assert after_stock(7, 0) == []
    assert titles(sandbox) == ["Заканчивается товар", "Заканчивается товар"]
    assert table(quiet_storage, "SELECT key FROM alert_state") == [("low:wb::Пакеты 8",)]



def test_a_stock_line_says_what_was_lost_while_out_of_stock():
    row = {"alias": "Кронштейны", "marketplace": "ozon", "warehouse": "Хоругвино", "stock": 40,
           "days_of_cover": 16.0, "runs_out_on": "2026-12-20", "to_ship": 35, "lost_units": 5.0, "lost_rub": 5600.0}
    assert alerts.stock_line(row) == ("• Кронштейны (Ozon, Хоругвино): 40 шт., хватит на 16 дн. (до 20.12), "
                                      "отгрузить 35 шт.; упущено 5 шт. на 5 600,00 ₽")
    # units lost with no price known, and nothing lost
    assert alerts.stock_line(row | {"lost_rub": 0.0}).endswith("; упущено 5 шт.")
    assert alerts.stock_line(row | {"lost_units": 0.0, "lost_rub": 0.0}).endswith("отгрузить 35 шт.")
    assert alerts.stock_line(row | {"lost_units": 2.5, "lost_rub": 1234.57}).endswith("; упущено 2,5 шт. на 1 234,57 ₽")

# -- failing and silent sources ---------------------------------------------------------------

def test_a_failing_source_is_alerted_after_n_failures_in_a_row_and_its_recovery_once(
        sandbox, tmp_path, storage, clock):
    from collector.pipeline import run_pass

    settings = load_settings(None, collector_environ(sandbox, tmp_path, ALERT_URLS=sandbox.alerts_url,
                                                     ALERT_AFTER_FAILURES="3"))
    sandbox.faults.add(Fault("bad_key", endpoint="/v1/returns/list", account="ozon-1", times=None))
    received = []
    for _ in range(4):
        assert run_pass(settings, storage, clock=clock.now, datasets=("sales",)).exit_code == 2
        received.append(titles(sandbox))
        clock.advance(minutes=10)
    assert received == [[], [], ["Данные не загружаются"], ["Данные не загружаются"]]
    (down,) = [a.message for a in sandbox.alerts.received]
    assert down.startswith("• Песочница Ozon 1 (ozon-1), продажи: ошибка 3 раза подряд. Последняя ошибка: "
                           "ozon-1 (Песочница Ozon 1) sales: POST /v1/returns/list: HTTP 404")
    sandbox.faults.clear()
    for _ in range(2):
        assert run_pass(settings, storage, clock=clock.now, datasets=("sales",)).exit_code == 0
        clock.advance(minutes=10)
    assert titles(sandbox) == ["Данные не загружаются", "Загрузка данных восстановлена"]
    assert sandbox.alerts.received[-1].message == "• Песочница Ozon 1 (ozon-1), продажи: снова загружается"


def test_a_silent_source_is_alerted_after_stale_minutes_and_its_recovery_once(sandbox, tmp_path, storage, clock):
    from collector.pipeline import run_pass

    settings = load_settings(None, collector_environ(sandbox, tmp_path, ALERT_URLS=sandbox.alerts_url,
                                                     ALERT_AFTER_FAILURES="10", STALE_MINUTES="60"))
    run_pass(settings, storage, clock=clock.now, datasets=("sales",))  # 12:00, ok
    sandbox.faults.add(Fault("bad_key", endpoint="/api/v1/supplier/sales", account="wb-1", times=None))
    for minutes in (30, 25, 10):  # 12:30, 12:55: under an hour; 13:05: 65 minutes without data
        clock.advance(minutes=minutes)
        run_pass(settings, storage, clock=clock.now, datasets=("sales",))
        if minutes != 10:
            assert titles(sandbox) == []
    (stale,) = sandbox.alerts.received
    assert stale.message.startswith("• Песочница WB 1 (wb-1), продажи: нет свежих данных 65 мин "
                                    "(последние — на 12:00 26.11). Последняя ошибка: ")
    clock.advance(minutes=10)
    run_pass(settings, storage, clock=clock.now, datasets=("sales",))
    assert titles(sandbox) == ["Данные не загружаются"]  # still down: no repeat
    sandbox.faults.clear()
    clock.advance(minutes=10)
    run_pass(settings, storage, clock=clock.now, datasets=("sales",))
    clock.advance(minutes=10)
    run_pass(settings, storage, clock=clock.now, datasets=("sales",))
    assert titles(sandbox) == ["Данные не загружаются", "Загрузка данных восстановлена"]


def test_a_disk_running_out_of_room_is_alerted_once_and_its_recovery_once(sandbox, tmp_path, storage, clock,
                                                                        caplog):
    """Free space on the database's disk, as the system reports it, against LOW_DISK_MB: a real
    disk, the threshold moved past its free space and back (0 turns the check off)."""
    from collector.pipeline import run_pass

    free_mb = shutil.disk_usage(tmp_path).free // alerts.MEGABYTE

    def pass_with(low_disk_mb: int) -> list[str]:
        settings = load_settings(None, collector_environ(sandbox, tmp_path, ALERT_URLS=sandbox.alerts_url,
                                                         LOW_DISK_MB=str(low_disk_mb)))
        run_pass(settings, storage, clock=clock.now, datasets=("sales",))
        clock.advance(minutes=10)
        return titles(sandbox)

    assert pass_with(1) == []
    above_the_free_space = free_mb + 10_000
    with caplog.at_level(logging.WARNING):
        assert pass_with(above_the_free_space) == ["Мало места на диске"]
    assert any(r.getMessage().startswith("the disk holding the database has ") and
               r.getMessage().endswith(f" MB free, under LOW_DISK_MB={above_the_free_space}: when it is full, "
                                       "nothing is saved") for r in caplog.records)
    assert pass_with(above_the_free_space) == ["Мало места на диске"]  # (still low: no repeat)
    (low,) = sandbox.alerts.received
    assert low.message.startswith(f"На диске с базой ({tmp_path}) свободно ")
    assert f"Освободите место или увеличьте диск (порог — LOW_DISK_MB, {alerts.number(above_the_free_space)} МБ)." \
        in low.message
    assert pass_with(0) == ["Мало места на диске", "Место на диске снова есть"]  # (off: nothing is low)
    assert pass_with(above_the_free_space) == ["Мало места на диске", "Место на диске снова есть",
                                               "Мало места на диске"]


def test_an_upgrade_to_schema_30_keeps_every_alert_and_takes_the_disk_s(tmp_path, quiet_storage):
    """Schema 30 widens alert_outbox.kind's CHECK to the disk's alerts: SQLite changes a CHECK
    only by making the table anew, which must keep every event, its id and the sequence after it,
    and what was delivered of it."""
    db = quiet_storage.db
    with quiet_storage.transaction():  # (the table as schema 29 made it, then three events, one gone)
        old_check = "CHECK (kind IN ('low_stock', 'sources_down', 'sources_up', 'digest'))"
        table_sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'alert_outbox'").fetchone()[0]
        db.execute("DROP TABLE alert_outbox")
        db.execute(re.sub(r"CHECK \(kind\s+IN \([^)]*\)\)", old_check, table_sql, flags=re.S))
        assert "disk_low" not in db.execute("SELECT sql FROM sqlite_master WHERE name = 'alert_outbox'").fetchone()[0]
        for n, kind in enumerate(("low_stock", "digest", "sources_down"), start=1):
            db.execute("INSERT INTO alert_outbox (key, kind, title, body, created_at, day) VALUES (?, ?, ?, ?, ?, ?)",
                       [f"k{n}", kind, f"t{n}", "b", "2026-11-26T12:00:00+03:00", "2026-11-26"])
        db.execute("DELETE FROM alert_outbox WHERE key = 'k3'")  # (the sequence is past the last row)
        db.execute("INSERT INTO alert_deliveries (event_id, channel, status, attempts) VALUES (1, 'json://x', 'sent', 1)")
        db.execute("PRAGMA user_version = 29")
    before = table(quiet_storage, "SELECT * FROM alert_outbox ORDER BY id")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO alert_outbox (key, kind, title, body, created_at, day) VALUES ('d', 'disk_low', 't', 'b', 'c', 'd')")
    assert quiet_storage.migrate() == 29 and quiet_storage.schema_version == SCHEMA_VERSION
    assert table(quiet_storage, "SELECT * FROM alert_outbox ORDER BY id") == before
    with quiet_storage.transaction():
        db.execute("INSERT INTO alert_outbox (key, kind, title, body, created_at, day) VALUES ('d', 'disk_low', 't', 'b', 'c', 'd')")
    assert table(quiet_storage, "SELECT id FROM alert_outbox WHERE key = 'd'") == [(4,)]
    assert table(quiet_storage, "SELECT event_id, status FROM alert_deliveries") == [(1, "sent")]
    assert table(quiet_storage, "PRAGMA foreign_key_check") == [] and table(quiet_storage, "PRAGMA integrity_check") == [("ok",)]
    fresh = Storage(tmp_path / "fresh.db")  # (the table and its index as schema.sql says, word for word)
    fresh.migrate()
    made = "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'alert_outbox' ORDER BY name"
    assert table(quiet_storage, made) == table(fresh, made)
    fresh.close()


def test_low_disk_mb_is_a_whole_number_of_megabytes(tmp_path):
    assert alert_settings(tmp_path).low_disk_mb == 1024 and alert_settings(tmp_path, LOW_DISK_MB="0").low_disk_mb == 0
    with pytest.raises(ConfigError, match=r"^LOW_DISK_MB='1G' is not a whole number of megabytes \(0 turns it off\)$"):
        alert_settings(tmp_path, LOW_DISK_MB="1G")


def test_sizes_are_written_the_russian_way():
    assert [alerts.size(n) for n in (0, 812 * alerts.MEGABYTE, 1023 * alerts.MEGABYTE, 19_600 * alerts.MEGABYTE)] \
        == ["0 МБ", "812 МБ", "1 023 МБ", "19,1 ГБ"]


# -- secrets -------------------------------------------------------------------------------------

SECRET_PASSWORD = "S3cretPassw0rd"
SECRET_TOKEN = "123456789:AAHsecretTokenValue1234567890abcdefg"


def test_labels_show_scheme_and_host_only():
    assert alerts.channel_label(f"tgram://{SECRET_TOKEN}/-1001234567") == "tgram://1...g"
    assert alerts.channel_label(f"mailtos://seller:{SECRET_PASSWORD}@smtp.example.ru?to=a@example.ru") == \
        "mailtos://smtp.example.ru"
    assert alerts.channel_label("nonsense-without-scheme") == "?://?"
    assert SECRET_TOKEN.split(":")[1] in alerts.secret_parts(f"tgram://{SECRET_TOKEN}/-100", "tgram://1...g/-100")


def test_secrets_never_reach_the_database_the_logs_or_any_page(sandbox, tmp_path, quiet_storage, capsys):
    clock = SandboxClock(NOON_MSK)
    base = sandbox.url.split("://")[1]
    urls = [f"json://seller:{SECRET_PASSWORD}@{base}/alerts/ok",       # works
            f"json://bot:{SECRET_PASSWORD}@127.0.0.1:1/alerts/down",    # connection refused
            # unknown to Apprise, so never sent anywhere (a tgram:// URL would reach Telegram)
            f"nosuchscheme://{SECRET_TOKEN}@example.invalid"]
    env = {"ALERT_URLS": " ".join(urls), "DIGEST_TIME": "11:00"}
    settings = alert_settings(tmp_path, **env)
    logs.configure("text", "DEBUG", settings.secrets)
    try:
        alerts.after_pass(settings, quiet_storage, 1, clock.now)
        assert titles(sandbox, "/alerts/ok") == ["Итоги дня, чт 26.11.2026"]
        runner = CliRunner()
        environ = {"DATABASE_PATH": str(tmp_path / "mp.db"), **env}
        tested = runner.invoke(cli, ["--env-file", str(tmp_path / "none.env"), "alerts", "test"], env=environ)
        listed = runner.invoke(cli, ["--env-file", str(tmp_path / "none.env"), "alerts", "list"], env=environ)
    finally:
        logs.configure("text", "INFO")
    assert tested.exit_code == 2
    lines = tested.output.splitlines()
    assert f"ok    json://{base}" in lines
    assert any(line.startswith("FAIL  json://127.0.0.1:1: ") for line in lines)
    assert "FAIL  nosuchscheme://?: Apprise не понимает этот адрес (проверьте ALERT_URLS)" in lines
    assert "digest" in listed.output and "json://127.0.0.1:1: failed after 1 attempt(s)" in listed.output
    page = events_page(tmp_path / "mp.db")
    dump = "\n".join(sqlite3.connect(tmp_path / "mp.db").iterdump())
    logged = capsys.readouterr()
    for where, text in (("database", dump), ("logs", logged.err + logged.out), ("page", page),
                        ("cli", tested.output + listed.output)):
        for secret in (SECRET_PASSWORD, SECRET_TOKEN, SECRET_TOKEN.split(":")[1]):
            assert secret not in text, (where, secret)
    events = json.loads(page)
    assert [e["what"] for e in events] == ["итоги дня"]
    assert "json://127.0.0.1:1 — ошибка, попыток 1" in events[0]["delivery"]



def events_page(path: Path) -> str:
    """/mp/events as the viewer serves it (JSON, so every column is there)."""
    from datasette.app import Datasette

    async def get() -> str:
        ds = Datasette([str(path)], metadata=yaml.safe_load((ROOT / "metadata.yml").read_text(encoding="utf-8")))
        await ds.invoke_startup()
        return (await ds.client.get("/mp/events.json?_shape=array")).text

    return asyncio.run(get())


# -- alerts never get in the collection's way ----------------------------------------------

def test_a_dead_channel_never_fails_or_stalls_the_pass(sandbox, tmp_path, storage, clock):
    from collector.pipeline import run_pass

    settings = load_settings(None, collector_environ(sandbox, tmp_path, ALERT_URLS="json://127.0.0.1:1/down",
                                                     DIGEST_TIME="11:00"))
    result = run_pass(settings, storage, clock=clock.now, datasets=("stocks",))
    assert (result.status, result.exit_code) == ("ok", 0)
    assert table(storage, "SELECT e.key, e.status, d.status, d.attempts FROM alert_outbox e "
                          "JOIN alert_deliveries d ON d.event_id = e.id WHERE e.kind = 'digest'") == \
        [("digest:2026-11-26", "pending", "failed", 1)]


def test_a_broken_canned_query_keeps_no_other_alert_from_the_seller(sandbox, tmp_path, quiet_storage, monkeypatch):
    clock = SandboxClock(NOON_MSK)
    settings = alert_settings(tmp_path, ALERT_URLS=sandbox.alerts_url, WB_API_TOKEN="token", DIGEST_TIME="23:00")
    real = alerts.canned_sql
    monkeypatch.setattr(alerts, "canned_sql", lambda: {**real(), "restock": "SELECT * FROM no_such_table"})
    quiet_storage.save_accounts([("wb-1", "wb", "wb-1")])
    for n in range(3):  # three failed passes of wb-1 orders, as the pipeline logs them
        run_id = quiet_storage.start_run(iso(NOON_MSK, MOSCOW), "timer")
        quiet_storage.log_fetch(dict(run_id=run_id, account="wb-1", dataset="orders", status="failed",
                                     started_at=iso(NOON_MSK, MOSCOW), finished_at=iso(NOON_MSK, MOSCOW),
                                     error=f"wb-1 (wb-1) orders: GET /api/v1/supplier/orders: HTTP 502 ({n})"))
    alerts.after_pass(settings, quiet_storage, 3, clock.now)
    assert [a.message for a in sandbox.alerts.received] == [
        "• wb-1 (wb-1), заказы: ошибка 3 раза подряд. Последняя ошибка: "
        "wb-1 (wb-1) orders: GET /api/v1/supplier/orders: HTTP 502 (2)"]
    assert table(quiet_storage, "SELECT key FROM alert_state") == [("source:wb-1:orders",)]
