"""What every dataset collector works with: the context of one account in one pass, and what a
collector hands back to be written in one transaction (collector/pipeline.py runs them).

A collector (collector/wb/datasets.py, collector/ozon/datasets.py) fetches and normalises with no
write, in its account's thread, reading what the passes before left; `Collected.write` is then
called in the pass's own thread, in a savepoint of the pass's one transaction, where it reads
what this pass wrote before it (collector/pipeline.py). What a later dataset of the same account
must know at fetch time of an earlier one's outcome goes through `Context.memo`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from collector.config import Account, Settings
from collector.http import ApiClient
from collector.storage import Storage
from collector.timeutil import iso, local_day

# Re-read this much before the stored watermark: WB publishes changes in 30-minute batches and
# a row may show up with a lastChangeDate older than rows already seen.
WATERMARK_OVERLAP = timedelta(hours=1)


@dataclass
class Collected:
    """What a dataset fetched: how many records, how to write them in one transaction, and the
    rows set aside as unreadable (collector/rejects.py)."""
    rows: int
    write: Callable[[Storage], None]
    rejected: list = field(default_factory=list)


@dataclass
class Context:
    settings: Settings
    storage: Storage
    account: Account
    api: ApiClient
    run_id: int
    now: datetime
    # What the datasets of one account in one pass share: the order feed answers orders and
    # sales at once, and its 1-a-minute limit allows one fetch per pass; what the catalogue
    # listed, or that it was refused; that the cabinet switched to the feed.
    memo: dict = field(default_factory=dict)

    @property
    def zone(self):
        return self.settings.timezone

    @property
    def now_iso(self) -> str:
        return iso(self.now, self.zone)

    @property
    def today(self) -> str:
        return local_day(self.now, self.zone)
