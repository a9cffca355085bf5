"""Configuration: env over .env, empty means unset, several accounts, clear errors, no leaks."""

from pathlib import Path

import pytest

from collector.config import ConfigError, OzonAccount, WbAccount, load_settings


def settings(tmp_path: Path, dotenv: str = "", **environ):
    env_file = tmp_path / ".env"
    env_file.write_text(dotenv, encoding="utf-8")
    return load_settings(env_file, environ)


def test_defaults(tmp_path):
    s = settings(tmp_path)
    assert s.accounts == ()
    assert (str(s.timezone), s.database_path, s.aliases_file) == ("Europe/Moscow", Path("data/mp.db"),
                                                                  Path("data/aliases.csv"))
    assert (s.wb_statistics_url, s.wb_analytics_url, s.ozon_api_url) == (
        "https://statistics-api.wildberries.ru", "https://seller-analytics-api.wildberries.ru",
        "https://api-seller.ozon.ru")


def test_environment_wins_over_dotenv_and_empty_counts_as_unset(tmp_path):
    s = settings(tmp_path, "WB_API_TOKEN=from-file\nTIMEZONE=Asia/Omsk\nDATABASE_PATH=/x/file.db\n",
                 WB_API_TOKEN="from-env", TIMEZONE="", DATABASE_PATH="  ")
    assert s.accounts[0].token.reveal() == "from-env"
    assert str(s.timezone) == "Europe/Moscow"
    assert s.database_path == Path("data/mp.db")


def test_several_cabinets_and_stores_with_labels_and_skus(tmp_path):
    s = settings(tmp_path, "\n".join([
        "WB_API_TOKEN=t1", "WB_API_TOKEN_2=t2", "WB_NAME_2=Второй кабинет",
        "OZON_CLIENT_ID_1=111", "OZON_API_KEY_1=k1", "OZON_SKUS_1=5, 6,5",
        "OZON_CLIENT_ID_3=333", "OZON_API_KEY_3=k3", "OZON_NAME_3=Склад 3",
    ]))
    assert [(a.account, a.label) for a in s.accounts] == [
        ("wb-1", "wb-1"), ("wb-2", "Второй кабинет"), ("ozon-1", "ozon-1"), ("ozon-3", "Склад 3")]
    assert isinstance(s.accounts[0], WbAccount) and isinstance(s.accounts[2], OzonAccount)
    assert s.accounts[2].skus == (5, 6)
    assert s.accounts[3].skus == ()


@pytest.mark.parametrize("dotenv, message", [
    ("OZON_CLIENT_ID_1=111", "OZON_API_KEY_1 is missing"),
    ("OZON_API_KEY_2=k", "OZON_CLIENT_ID_2 is missing"),
    ("OZON_CLIENT_ID_1=abc\nOZON_API_KEY_1=k", "OZON_CLIENT_ID_1 must be a positive whole number"),
    ("OZON_CLIENT_ID_1=1\nOZON_API_KEY_1=k\nOZON_SKUS_1=12,x", "OZON_SKUS_1: x is not a SKU"),
    ("TIMEZONE=Mars/Olympus", "TIMEZONE='Mars/Olympus' is not a known time zone"),
    ("OZON_API_URL=api-seller.ozon.ru", "OZON_API_URL must start with http"),
    ("RATE_LIMIT_FACTOR=fast", "RATE_LIMIT_FACTOR='fast' is not a number"),
])
def test_mistakes_name_the_variable(tmp_path, dotenv, message):
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, dotenv)


def test_a_typo_is_pointed_out(tmp_path):
    s = settings(tmp_path, "WB_API_TOKEM=t\nOZON_CLIENTID_1=1\n")
    assert "WB_API_TOKEM is not a setting MP Dashboard knows (did you mean WB_API_TOKEN?)" in s.warnings
    assert any(w.startswith("OZON_CLIENTID_1 is not a setting") for w in s.warnings)


def test_secrets_never_show_in_repr(tmp_path):
    s = settings(tmp_path, "WB_API_TOKEN=eyJ.secret-wb.x\nOZON_CLIENT_ID_1=1\nOZON_API_KEY_1=secret-ozon-key\n")
    text = repr(s) + str(s.accounts) + str(s.accounts[0].token)
    assert "secret-wb" not in text and "secret-ozon-key" not in text
    assert s.secrets == ("eyJ.secret-wb.x", "secret-ozon-key")


def test_defaults_of_the_seller_settings(tmp_path):
    s = settings(tmp_path)
    assert (s.wb_finance_url, s.wb_content_url, s.wb_orders_source) == (
        "https://finance-api.wildberries.ru", "https://content-api.wildberries.ru", "auto")
    assert (s.low_stock_days, s.target_cover_days, s.alert_after_failures, s.stale_minutes, s.digest_time) == (
        7, 30, 3, 60, "21:00")
    assert (s.alert_urls, s.dashboard_url) == ((), None)


def test_alert_urls_are_secrets_split_on_spaces_and_commas(tmp_path):
    s = settings(tmp_path, ALERT_URLS="tgram://123:ABC/456, mailtos://u:pw@smtp.x.ru  json://127.0.0.1:9/x",
                 DIGEST_TIME="9:05", DASHBOARD_URL="https://mp.example.ru/", WB_ORDERS_SOURCE="Order-Feed")
    assert [u.reveal() for u in s.alert_urls] == ["tgram://123:ABC/456", "mailtos://u:pw@smtp.x.ru",
                                                  "json://127.0.0.1:9/x"]
    assert "123:ABC" not in repr(s)
    assert "tgram://123:ABC/456" in s.secrets  # redacted from every log line
    assert (s.digest_time, s.dashboard_url, s.wb_orders_source) == ("09:05", "https://mp.example.ru", "order-feed")


@pytest.mark.parametrize("name, value, words", [
    ("DIGEST_TIME", "25:00", "not a time of day"),
    ("DIGEST_TIME", "21.00", "not a time of day"),
    ("WB_ORDERS_SOURCE", "feed", "is not one of: statistics, order-feed, auto"),
    ("LOW_STOCK_DAYS", "-1", "must be greater than 0"),
    ("TARGET_COVER_DAYS", "month", "is not a number"),
    ("WB_FINANCE_URL", "finance-api.wildberries.ru", "must start with http"),
])
def test_bad_seller_settings_are_refused_plainly(tmp_path, name, value, words):
    with pytest.raises(ConfigError, match=words):
        settings(tmp_path, **{name: value})
