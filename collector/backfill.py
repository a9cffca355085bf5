"""`mp-collector backfill --days N`: order and sales history, resumable and idempotent.

Work is cut into steps (a WB page, an Ozon window of days), and each step is written in its
own transaction together with the position it reached. An interrupted backfill resumes from
there; running it again only re-reads what changed since. Pacing is the pass's own, so the
marketplaces' limits hold (WB statistics: one page a minute). Rows a normaliser cannot read are
set aside in rejected_rows with the step, as a pass does (collector/rejects.py): one bad row of a
year's history costs only itself.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterator

from collector import logs, rejects
from collector.config import Account, Settings
from collector.http import ApiClient, ApiError
from collector.ozon import client as ozon_api
from collector.ozon.datasets import read_postings, read_returns, write_postings
from collector.wb.datasets import WbBatch
from collector.records import BadRecord
from collector.storage import Storage
from collector.timeutil import iso, local_day, utc_now
from collector.wb import client as wb_api

WB_RETENTION_DAYS = 90     # WB keeps statistics for 90 days from the order date
OZON_MAX_DAYS = 365        # Ozon refuses periods over a year (PERIOD_IS_TOO_LONG)
OZON_WINDOW = timedelta(days=7)

# progress(account, dataset, fraction done 0..1)
Progress = Callable[[str, str, float], None]


@dataclass
class Position:
    """Where a backfill of one account x dataset got to, kept in collector_state."""
    start: datetime
    cursor: datetime

    @staticmethod
    def key(account: str, dataset: str) -> str:
        return f"backfill:{account}:{dataset}"

    @classmethod
    def resume(cls, storage: Storage, account: str, dataset: str, start: datetime) -> "Position":
        """The stored position when it covers `start` already; a fresh one otherwise."""
        stored = storage.state(cls.key(account, dataset))
        if stored:
            saved = json.loads(stored)
            saved_start, cursor = datetime.fromisoformat(saved["start"]), datetime.fromisoformat(saved["cursor"])
            if saved_start <= start:
                return cls(saved_start, max(cursor, start))
        return cls(start, start)

    def save(self, storage: Storage, account: str, dataset: str, now: str) -> None:
        storage.set_state(self.key(account, dataset),
                          json.dumps({"start": self.start.isoformat(), "cursor": self.cursor.isoformat()}), now)

    def fraction(self, now: datetime) -> float:
        total = (now - self.start).total_seconds()
        return 1.0 if total <= 0 else min(1.0, (self.cursor - self.start).total_seconds() / total)


def backfill(settings: Settings, storage: Storage, days: int, progress: Progress,
             clock: Callable[[], datetime] = utc_now) -> dict[tuple[str, str], int | str]:
    """Load the last `days` days for every account: rows read per account x dataset, or the
    error that stopped it (what was written before the error stays, and a rerun resumes)."""
    storage.save_accounts((a.account, a.marketplace, a.label) for a in settings.accounts)
    storage.keep_recent_minutes(clock(), settings.timezone)
    outcome: dict[tuple[str, str], int | str] = {}
    for account in settings.accounts:
        for dataset in ("orders", "sales"):
            try:
                outcome[account.account, dataset] = _backfill_one(settings, storage, account, dataset, days,
                                                                  progress, clock)
            except (ApiError, BadRecord) as exc:
                error = f"{account.account} ({account.label}) {dataset}: {exc}"
                logs.event(logging.ERROR, f"backfill stopped: {error}", event="backfill",
                           account=account.account, dataset=dataset, status="failed")
                outcome[account.account, dataset] = error
    return outcome


def _backfill_one(settings, storage, account: Account, dataset: str, days: int, progress: Progress, clock) -> int:
    now = clock()
    limit = WB_RETENTION_DAYS if account.marketplace == "wb" else OZON_MAX_DAYS
    if days > limit:
        logs.event(logging.WARNING, f"{account.account}: history is kept for {limit} days; loading {limit}",
                   event="backfill", account=account.account)
    position = Position.resume(storage, account.account, dataset, now - timedelta(days=min(days, limit)))
    make = wb_api.make_client if account.marketplace == "wb" else ozon_api.make_client
    api = make(account, settings)
    steps = _wb_steps if account.marketplace == "wb" else _ozon_steps
    rows = 0
    try:
        progress(account.account, dataset, position.fraction(now))
        for count, write, rejected, reached in steps(api, settings, account, dataset, position, now):
            with storage.transaction():
                write(storage)
                written_at = iso(clock(), settings.timezone)
                if rejected:  # (a step with none leaves the note of the last pass as it is)
                    rejects.keep(storage, account.account, dataset, rejected, written_at)
                position.cursor = reached
                position.save(storage, account.account, dataset, written_at)
            rows += count
            progress(account.account, dataset, position.fraction(now))
    finally:
        api.close()
    # WB publishes with a lag, so the cursor stops short of "now" even when all is read.
    progress(account.account, dataset, 1.0)
    logs.event(logging.INFO, f"{account.account} {dataset}: backfill done, {rows} rows",
               event="backfill", account=account.account, dataset=dataset, rows=rows)
    return rows


# (rows read, their write, the rows set aside, how far they reach)
Step = tuple[int, Callable[[Storage], None], list, datetime]


def _wb_steps(api: ApiClient, settings: Settings, account: Account, dataset: str, position: Position,
              now: datetime) -> Iterator[Step]:
    seen_at = iso(now, settings.timezone)
    for page, reached in wb_api.statistics_pages(api, settings, dataset, position.cursor):
        batch = WbBatch.of(dataset, page, account.account, settings.timezone)
        yield len(page), lambda storage, batch=batch: batch.write(storage, seen_at), batch.rejected, min(reached, now)


def _ozon_steps(api: ApiClient, settings: Settings, account: Account, dataset: str, position: Position,
                now: datetime) -> Iterator[Step]:
    seen_at, today = iso(now, settings.timezone), local_day(now, settings.timezone)
    since = position.cursor
    while since < now:
        until = min(since + OZON_WINDOW, now)
        if dataset == "orders":
            postings = ozon_api.fetch_postings(api, settings, since=since, to=until)
            lines, products, rejected = read_postings(postings, account.account, settings.timezone, seen_at)
            yield len(postings), (lambda storage, lines=lines, products=products:
                                  write_postings(storage, lines, products, seen_at, today)), rejected, until
        else:
            items = ozon_api.fetch_returns(api, settings, since, until)
            events, rejected = read_returns(items, account.account, settings.timezone)
            yield len(items), (lambda storage, events=events: storage.write_sales(events)), rejected, until
        since = until
