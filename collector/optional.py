"""Optional datasets (`balance`, `catalog`): when they run, and how they rest after a refusal.

They never change `run`'s exit code. A token without their category (WB answers 401, sometimes
403 or 404; Ozon 403, or 404 for a key it does not know) is not a fault to repeat every few
minutes: the dataset rests for REST, the freshness page says why in plain Russian, and each pass
in between logs it as `skipped` without a request. The rest ends early when the dataset succeeds
(e.g. after `--dataset balance` by hand with a new token).

The product catalogue changes rarely and its pages cost requests, so it runs once per
CATALOG_EVERY; a failed attempt (not a refusal) is retried on the next pass.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from collector.config import DEFAULT_URLS, Settings
from collector.http import ApiError, RetryableError
from collector.storage import Storage

OPTIONAL = ("catalog", "balance")
REST = timedelta(hours=24)
# One attempt per pass: an optional dataset must never slow the pass. Its retries would wait out
# both the backoff and its host's pacing (WB's balance: 1 a minute), minutes for an unreachable
# host; a transient failure is simply tried again by the next pass.
ATTEMPTS = 1
# The host each optional WB dataset asks (Ozon's go through OZON_API_URL like the rest).
WB_HOSTS = {"balance": "WB_FINANCE_URL", "catalog": "WB_CONTENT_URL"}
CATALOG_EVERY = timedelta(hours=24)
REFUSALS = (401, 403, 404)
NOTE_MARK = "проверим снова"  # in every rest note, and only there: tells it from other notes

# What each optional dataset needs, and what the seller misses without it.
NEEDS = {
    ("wb", "balance"): "у токена нет категории «Финансы»",
    ("wb", "catalog"): "у токена нет категории «Контент»",
    ("ozon", "balance"): "у API-ключа нет доступа к разделу «Финансы»",
    ("ozon", "catalog"): "у API-ключа нет доступа к товарам",
}
MISSED = {
    "balance": "баланс не загружается",
    "catalog": "названия товаров и размеров не обновляются, товары показаны как есть",
}


def _rest_key(account: str, dataset: str) -> str:
    return f"rest_until:{account}:{dataset}"


def refused_key(dataset: str) -> str:
    """In Context.memo: the dataset was refused in this pass (its rest is written at the pass's end)."""
    return f"refused:{dataset}"


def resting_until(storage: Storage, account: str, dataset: str, now: datetime) -> datetime | None:
    """When the rest of a refused dataset ends, if it has not yet."""
    value = storage.state(_rest_key(account, dataset))
    until = datetime.fromisoformat(value) if value else None
    return until if until and until > now else None


def refused(exc: Exception) -> bool:
    """A refusal that repeating will not fix: 401, 403 or 404, never a transient failure."""
    return isinstance(exc, ApiError) and not isinstance(exc, RetryableError) and exc.status in REFUSALS


def start_rest(storage: Storage, account: str, marketplace: str, dataset: str, status: int | None,
               now: datetime, now_iso: str, zone) -> None:
    """Rest the dataset and say why on the freshness page. Call inside a transaction."""
    until = now + REST
    storage.set_state(_rest_key(account, dataset), until.isoformat(), now_iso)
    storage.set_source_note(account, dataset, rest_note(marketplace, dataset, status, until.astimezone(zone)),
                            now_iso)


def rest_note(marketplace: str, dataset: str, status: int | None, until: datetime) -> str:
    return (f"нет доступа: {NEEDS[marketplace, dataset]} — {MISSED[dataset]}; "
            f"{NOTE_MARK} {until:%d.%m в %H:%M} (через {int(REST.total_seconds() // 3600)} ч; ответ HTTP {status})")


def end_rest(storage: Storage, account: str, dataset: str, now_iso: str) -> None:
    """The dataset worked: no rest, no rest note. Call inside a transaction."""
    storage.db.execute("DELETE FROM collector_state WHERE key = ?", [_rest_key(account, dataset)])
    storage.replace_note(account, dataset, None, now_iso, NOTE_MARK)


def due(storage: Storage, account: str, dataset: str, now: datetime) -> bool:
    """Whether the dataset runs in this pass: balance every pass, the catalogue once a day."""
    if dataset != "catalog":
        return True
    row = storage.db.execute("SELECT started_at FROM fetch_log WHERE account = ? AND dataset = 'catalog' "
                             "AND status = 'ok' ORDER BY id DESC LIMIT 1", [account]).fetchone()
    return row is None or now - datetime.fromisoformat(row[0]) >= CATALOG_EVERY


def unset_host(settings: Settings, marketplace: str, dataset: str) -> str | None:
    """A note when the dataset's WB host is left at the real marketplace while the required ones
    point elsewhere (a proxy, a test double, the sandbox): asking the real host then is never what
    was meant, so the dataset is skipped and the freshness page says which variable to set."""
    if marketplace != "wb":
        return None
    name = WB_HOSTS[dataset]
    pointed_elsewhere = [other for other in ("WB_STATISTICS_URL", "WB_ANALYTICS_URL")
                         if getattr(settings, other.lower()) != DEFAULT_URLS[other]]
    if getattr(settings, name.lower()) != DEFAULT_URLS[name] or not pointed_elsewhere:
        return None
    return (f"не задан адрес {name}, а {' и '.join(pointed_elsewhere)} ведут не на WB — "
            f"{MISSED[dataset]}; задайте {name}")
