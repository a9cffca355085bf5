"""Configuration from the environment and `.env`.

A variable already set in the environment wins over `.env` (as with systemd's
EnvironmentFile=), and a variable set to an empty value counts as not configured.
Secrets live in `Secret` objects whose repr never shows them.
"""

from __future__ import annotations

import difflib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from dotenv.parser import parse_stream

DEFAULT_URLS = {
    "WB_STATISTICS_URL": "https://statistics-api.wildberries.ru",
    "WB_ANALYTICS_URL": "https://seller-analytics-api.wildberries.ru",
    "WB_FINANCE_URL": "https://finance-api.wildberries.ru",
    "WB_CONTENT_URL": "https://content-api.wildberries.ru",
    "OZON_API_URL": "https://api-seller.ozon.ru",
}
WB_ORDERS_SOURCES = ("statistics", "order-feed", "auto")

# Every name the project reads; used to point at likely typos.
KNOWN_VARIABLES = {
    "WB_API_TOKEN", "TIMEZONE", "DATABASE_PATH", "ALIASES_FILE", "WB_AUTH_SCHEME",
    "RATE_LIMIT_FACTOR", "HTTP_TIMEOUT", "WB_PAGE_ROWS", "MAX_RETRY_WAIT", "LOG_FORMAT", "LOG_LEVEL",
    "COLLECT_INTERVAL_MINUTES", "METRICS_FILE", "STALE_AFTER_MINUTES",
    "DATASETTE_PASSWORD_HASH", "DATASETTE_PORT", "WB_ORDERS_SOURCE", "LOW_STOCK_DAYS", "TARGET_COVER_DAYS",
    "ALERT_URLS", "ALERT_AFTER_FAILURES", "STALE_MINUTES", "DIGEST_TIME", "DASHBOARD_URL", "LOW_DISK_MB",
    *DEFAULT_URLS,
}
NUMBERED_VARIABLE = re.compile(
    r"^(WB_API_TOKEN|WB_NAME|OZON_CLIENT_ID|OZON_API_KEY|OZON_SKUS|OZON_NAME)_(\d+)$"
)
PROJECT_PREFIXES = ("WB_", "OZON_", "DATABASE", "ALIASES", "TIMEZONE")


class ConfigError(Exception):
    """A mistake in the configuration, worded for the person who made it."""


class Secret:
    """A token or key. Only `reveal()` gives the value; repr and str never do."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class WbAccount:
    account: str
    label: str
    token: Secret
    marketplace: str = "wb"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.token.reveal(),)


@dataclass(frozen=True)
class OzonAccount:
    account: str
    label: str
    client_id: str
    api_key: Secret
    skus: tuple[int, ...] = ()
    marketplace: str = "ozon"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key.reveal(),)


Account = WbAccount | OzonAccount


@dataclass(frozen=True)
class Settings:
    accounts: tuple[Account, ...]
    timezone: ZoneInfo
    database_path: Path
    aliases_file: Path
    wb_statistics_url: str
    wb_analytics_url: str
    ozon_api_url: str
    wb_finance_url: str = DEFAULT_URLS["WB_FINANCE_URL"]
    wb_content_url: str = DEFAULT_URLS["WB_CONTENT_URL"]
    wb_orders_source: str = "auto"
    low_stock_days: float = 7.0
    target_cover_days: float = 30.0
    alert_urls: tuple[Secret, ...] = ()
    alert_after_failures: int = 3
    stale_minutes: float = 60.0
    low_disk_mb: int = 1024
    digest_time: str = "21:00"
    dashboard_url: str | None = None
    wb_auth_scheme: str = ""
    rate_limit_factor: float = 1.0
    http_timeout: float = 30.0
    max_retry_wait: float = 300.0
    wb_page_rows: int = 80_000
    metrics_file: Path | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def secrets(self) -> tuple[str, ...]:
        # Alert URLs carry bot tokens and passwords: a whole URL is never printed.
        return (tuple(s for account in self.accounts for s in account.secrets)
                + tuple(url.reveal() for url in self.alert_urls))


def read_env_file(env_file: Path, strict: bool = True) -> dict[str, str]:
    """The variables a `.env` file sets.

    Strict (the collector): text that is not UTF-8, or a line that is not VARIABLE=value, is an
    error naming the line, because a file read only in part could drop a key or a setting
    without a word. The line itself is never quoted: it may hold a secret. Lenient (the viewer,
    which needs only its own few variables): such lines are skipped, as python-dotenv does.
    """
    raw = env_file.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if not strict:
            text = raw.decode("utf-8-sig", errors="replace")
        else:
            line = raw[:exc.start].count(b"\n") + 1
            raise ConfigError(f"{env_file}: line {line} is not UTF-8 text; save the file as UTF-8") from None
    if strict:
        for binding in parse_stream(io.StringIO(text)):
            if binding.error:
                raise ConfigError(f"{env_file}: line {binding.original.line} is not VARIABLE=value "
                                  f"(a missing = or an unclosed quote?)")
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def read_environment(env_file: Path | None = Path(".env"), environ=None) -> dict[str, str]:
    """The effective variables, leniently: `.env` under the real environment, empties dropped."""
    from_file = read_env_file(env_file, strict=False) if env_file is not None and env_file.exists() else {}
    return _merge(from_file, environ)


def _merge(from_file: dict[str, str], environ) -> dict[str, str]:
    merged = {**from_file, **(os.environ if environ is None else environ)}
    return {k: v.strip() for k, v in merged.items() if v is not None and v.strip() != ""}


def load_settings(env_file: Path | None = Path(".env"), environ=None) -> Settings:
    from_file = read_env_file(env_file) if env_file is not None and env_file.exists() else {}
    env = _merge(from_file, environ)
    try:
        return _settings(env, from_file)
    except ConfigError as exc:
        # A mistake is often a misspelt name ("OZON_API_KYE_1"): say so in the same breath.
        hints = list(_typo_warnings(env, from_file))
        if not hints:
            raise
        raise ConfigError(f"{exc}; note: {'; '.join(hints)}") from None


def _settings(env: dict[str, str], from_file: dict[str, str]) -> Settings:
    return Settings(
        accounts=tuple(_wb_accounts(env)) + tuple(_ozon_accounts(env)),
        timezone=known_zone(env.get("TIMEZONE", "Europe/Moscow")),
        database_path=Path(env.get("DATABASE_PATH", "data/mp.db")),
        aliases_file=Path(env.get("ALIASES_FILE", "data/aliases.csv")),
        wb_statistics_url=_url(env, "WB_STATISTICS_URL"),
        wb_analytics_url=_url(env, "WB_ANALYTICS_URL"),
        ozon_api_url=_url(env, "OZON_API_URL"),
        wb_finance_url=_url(env, "WB_FINANCE_URL"),
        wb_content_url=_url(env, "WB_CONTENT_URL"),
        wb_orders_source=_choice(env, "WB_ORDERS_SOURCE", WB_ORDERS_SOURCES),
        low_stock_days=_number(env, "LOW_STOCK_DAYS", 7.0),
        target_cover_days=_number(env, "TARGET_COVER_DAYS", 30.0),
        alert_urls=tuple(Secret(url) for url in re.split(r"[\s,]+", env.get("ALERT_URLS", "")) if url),
        alert_after_failures=int(_number(env, "ALERT_AFTER_FAILURES", 3)),
        stale_minutes=_number(env, "STALE_MINUTES", 60.0),
        low_disk_mb=_megabytes(env, "LOW_DISK_MB", 1024),
        digest_time=_clock_time(env, "DIGEST_TIME", "21:00"),
        dashboard_url=env["DASHBOARD_URL"].rstrip("/") if "DASHBOARD_URL" in env else None,
        wb_auth_scheme=env.get("WB_AUTH_SCHEME", ""),
        rate_limit_factor=_number(env, "RATE_LIMIT_FACTOR", 1.0),
        http_timeout=_number(env, "HTTP_TIMEOUT", 30.0),
        max_retry_wait=_number(env, "MAX_RETRY_WAIT", 300.0),
        wb_page_rows=int(_number(env, "WB_PAGE_ROWS", 80_000)),
        metrics_file=Path(env["METRICS_FILE"]) if "METRICS_FILE" in env else None,
        warnings=tuple(_typo_warnings(env, from_file)),
    )


def _wb_accounts(env: dict[str, str]):
    numbers = _numbers(env, "WB_API_TOKEN")
    if "WB_API_TOKEN" in env:
        numbers.add(1)
    for n in sorted(numbers):
        name = "WB_API_TOKEN" if n == 1 and "WB_API_TOKEN" in env else f"WB_API_TOKEN_{n}"
        if n == 1 and "WB_API_TOKEN" in env and "WB_API_TOKEN_1" in env:
            raise ConfigError("WB_API_TOKEN and WB_API_TOKEN_1 both name the first WB cabinet: keep one")
        account = f"wb-{n}"
        yield WbAccount(account, env.get(f"WB_NAME_{n}", account), Secret(env[name]))


def _ozon_accounts(env: dict[str, str]):
    for n in sorted(_numbers(env, "OZON_CLIENT_ID") | _numbers(env, "OZON_API_KEY")):
        client_id, api_key = env.get(f"OZON_CLIENT_ID_{n}"), env.get(f"OZON_API_KEY_{n}")
        if not client_id:
            raise ConfigError(f"OZON_API_KEY_{n} is set but OZON_CLIENT_ID_{n} is missing: set both or neither")
        if not api_key:
            raise ConfigError(f"OZON_CLIENT_ID_{n} is set but OZON_API_KEY_{n} is missing: set both or neither")
        if not client_id.isdigit():
            raise ConfigError(f"OZON_CLIENT_ID_{n} must be a positive whole number (the store's Client-Id)")
        account = f"ozon-{n}"
        yield OzonAccount(account, env.get(f"OZON_NAME_{n}", account), client_id, Secret(api_key),
                          _skus(env, n))


def _skus(env: dict[str, str], n: int) -> tuple[int, ...]:
    raw = env.get(f"OZON_SKUS_{n}", "")
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    bad = [p for p in parts if not p.isdigit()]
    if bad:
        raise ConfigError(f"OZON_SKUS_{n}: {', '.join(bad)} is not a SKU (comma-separated numbers expected)")
    return tuple(dict.fromkeys(int(p) for p in parts))


def _numbers(env: dict[str, str], prefix: str) -> set[int]:
    found = set()
    for key in env:
        match = NUMBERED_VARIABLE.match(key)
        if match and match.group(1) == prefix:
            n = int(match.group(2))
            if n < 1:
                raise ConfigError(f"{key}: accounts are numbered from 1")
            found.add(n)
    return found


PASSWORD_HASH = re.compile(r"pbkdf2_sha256\$[0-9]+\$[^$]+\$[A-Za-z0-9+/]+=*")  # `datasette hash-password`


def check_viewer_environment(env: dict[str, str]) -> None:
    """What the viewer reads, checked before it starts: with a zone it does not know every page
    fails; with a password where the hash belongs nobody can sign in. The value is never shown."""
    known_zone(env.get("TIMEZONE", "Europe/Moscow"))
    if "DATASETTE_PASSWORD_HASH" in env and not PASSWORD_HASH.fullmatch(env["DATASETTE_PASSWORD_HASH"]):
        raise ConfigError("DATASETTE_PASSWORD_HASH is not a password hash: set it to the line "
                          "`.venv/bin/datasette hash-password` prints (pbkdf2_sha256$...), not to the password")


def known_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"TIMEZONE={name!r} is not a known time zone (e.g. Europe/Moscow)") from None


def _url(env: dict[str, str], name: str) -> str:
    value = env.get(name, DEFAULT_URLS[name]).rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must start with http:// or https://")
    return value


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, choices[-1]).lower()
    if value not in choices:
        raise ConfigError(f"{name}={env[name]!r} is not one of: {', '.join(choices)}")
    return value


def _clock_time(env: dict[str, str], name: str, default: str) -> str:
    """HH:MM on a 24-hour clock, normalised to two digits each."""
    value = env.get(name, default)
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
    if not match:
        raise ConfigError(f"{name}={value!r} is not a time of day (HH:MM, e.g. 21:00)")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def _megabytes(env: dict[str, str], name: str, default: int) -> int:
    """A whole number of megabytes; 0 turns off what it sets."""
    value = env.get(name, str(default))
    if not value.isdigit():
        raise ConfigError(f"{name}={value!r} is not a whole number of megabytes (0 turns it off)")
    return int(value)


def _number(env: dict[str, str], name: str, default: float) -> float:
    try:
        value = float(env.get(name, default))
    except ValueError:
        raise ConfigError(f"{name}={env[name]!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0")
    return value


def _typo_warnings(env: dict[str, str], from_file=()):
    """Names we do not read but that look meant for us are most likely typos; say what was meant.

    Meant for us: a project prefix (WB_, OZON_, ...), or a line of the `.env` file close to a
    setting's name (DATABSE_PATH, TIMEZNOE); other variables of the environment are not ours."""
    numbered = ("WB_API_TOKEN", "WB_NAME", "OZON_CLIENT_ID", "OZON_API_KEY", "OZON_SKUS", "OZON_NAME")
    for key in sorted(env):
        if key in KNOWN_VARIABLES or NUMBERED_VARIABLE.match(key):
            continue
        # Numbered names are offered with the number the misspelt one carries (OZON_API_KYE_2).
        number = re.search(r"(\d+)$", key)
        candidates = sorted(KNOWN_VARIABLES) + [f"{name}_{number.group(1) if number else 1}" for name in numbered]
        close = difflib.get_close_matches(key, candidates, n=1)
        if not key.startswith(PROJECT_PREFIXES) and not (key in from_file and close):
            continue
        hint = f" (did you mean {close[0]}?)" if close else ""
        yield f"{key} is not a setting MP Dashboard knows{hint}"
