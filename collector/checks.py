"""`mp-collector check`: is each account configured right and reachable? Writes nothing.

WB: one /ping per host (statistics and analytics prove both token categories), and the token's
own claims (expiry, token type) read without verifying. Ozon: /v1/roles, with the key's expiry.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from collector.config import OzonAccount, Settings, WbAccount
from collector.http import ApiError
from collector.ozon import client as ozon_api
from collector.wb.datasets import feed_state_key
from collector.wb import client as wb_api

WB_TOKEN_TYPES = {1: "Base", 2: "Test", 3: "Personal", 4: "Service"}
EXPIRY_WARNING = timedelta(days=14)


def check_accounts(settings: Settings, now: datetime | None = None) -> Iterator[tuple[str, bool]]:
    now = now or datetime.now(timezone.utc)
    for account in settings.accounts:
        name = f"{account.account} ({account.label})"
        if isinstance(account, WbAccount):
            yield from _check_wb(account, settings, name, now)
        else:
            yield from _check_ozon(account, settings, name, now)


def _check_wb(account: WbAccount, settings: Settings, name: str, now: datetime):
    claims = wb_token_claims(account.token.reveal())
    if claims is None:
        yield f"{name}: the token does not look like a WB token (a JWT of three parts)", False
    else:
        yield from _expiry(name, claims.get("exp"), now)
        kind = WB_TOKEN_TYPES.get(claims.get("acc"))
        if kind == "Base":
            yield _base_token_warning(name, settings), False
    yield from _orders_source(name, account, settings)
    api = wb_api.make_client(account, settings)
    for label, url in (("statistics", settings.wb_statistics_url), ("analytics", settings.wb_analytics_url)):
        try:
            wb_api.ping(api, url)
            yield f"{name}: {label} API reachable, token accepted", True
        except ApiError as exc:
            yield f"{name}: {label} API: {api.redact(str(exc))}", False
    api.close()


def _base_token_warning(name: str, settings: Settings) -> str:
    """A Base token's limits, said before passes start failing on them with HTTP 429."""
    feed = ("" if settings.wb_orders_source == "statistics" else
            "; the order feed, which replaces them when WB switches statistics off, once per 3 hours")
    return (f"{name}: a Base token gets 1 request per 2-3 hours for orders and sales{feed}, and no stock "
            "report (403 \"base token is not allowed\"): passes every few minutes fail with HTTP 429; "
            "use a Personal or Service token")


def _orders_source(name: str, account: WbAccount, settings: Settings):
    """Where orders and sales come from: the statistics methods, or the order feed (chosen in
    WB_ORDERS_SOURCE, or switched to when WB switched statistics off, as the database remembers)."""
    source = settings.wb_orders_source
    if source == "order-feed":
        yield f"{name}: orders and sales come from the order feed (WB_ORDERS_SOURCE=order-feed)", True
        return
    switched = _stored_state(settings, feed_state_key(account.account)) if source == "auto" else None
    if switched:
        yield f"{name}: orders and sales come from the order feed since WB switched statistics off: {switched}", True


def _stored_state(settings: Settings, key: str) -> str | None:
    """A collector_state value, read without writing anything (no database yet: None)."""
    path = Path(settings.database_path)
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM collector_state WHERE key = ?", [key]).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _check_ozon(account: OzonAccount, settings: Settings, name: str, now: datetime):
    api = ozon_api.make_client(account, settings)
    try:
        answer = ozon_api.roles(api, settings)
        yield f"{name}: Ozon API reachable, key accepted", True
        expires = answer.get("expires_at")
        if expires:
            yield from _expiry(name, datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp(), now)
    except ApiError as exc:
        yield f"{name}: {api.redact(str(exc))}", False
    finally:
        api.close()


def _expiry(name: str, timestamp, now: datetime):
    if not timestamp:
        return
    expires = datetime.fromtimestamp(float(timestamp), timezone.utc)
    if expires <= now:
        yield f"{name}: the token expired on {expires:%Y-%m-%d}; issue a new one", False
    elif expires - now < EXPIRY_WARNING:
        yield f"{name}: the token expires on {expires:%Y-%m-%d}; issue a new one soon", False
    else:
        yield f"{name}: the token is valid until {expires:%Y-%m-%d}", True


def wb_token_claims(token: str) -> dict | None:
    """The JWT payload, decoded without verifying (only WB can verify it)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None
