"""Rows a normaliser cannot read: set aside, so one bad row never costs its whole dataset.

A marketplace that drifts (a renamed field, a number sent as text) usually spoils one row or a
few; refusing the whole answer for them would stop the figures for everyone. The readable rows are
saved, the others go to `rejected_rows` with the reason, and the freshness page says how many.
Stock is read all or nothing (a stock answer is a whole snapshot, and a key missing from it drops
to 0, so setting a row aside would zero a real stock).
When more than REJECT_SHARE of an answer is unreadable, the shape itself has changed: the dataset
fails as before, keeping its earlier data, because saving the small readable part would move
watermarks past rows nobody could read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Iterable, TypeVar

from collector.records import BadRecord

REJECT_SHARE = 0.10  # more than this share of an answer unreadable fails the dataset
NOTE_MARK = "rejected_rows"  # names the table in the note, and tells this module's note from others

Row = TypeVar("Row")
Out = TypeVar("Out")


@dataclass(frozen=True)
class Rejected:
    raw: str  # the row as JSON, keys sorted
    reason: str

    @property
    def key(self) -> str:
        return hashlib.sha256(self.raw.encode()).hexdigest()


@dataclass
class Sorted:
    """What a normaliser made of an answer: the records it read, the raw rows they came from,
    and the rows it set aside."""
    records: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def read_rows(rows: Iterable[Row], read: Callable[[Row], Out], where: str = "") -> Sorted:
    """`read` every row; a BadRecord sets that row aside. Raises BadRecord when too many are bad."""
    result, total = Sorted(), 0
    for row in rows:
        total += 1
        try:
            result.records.append(read(row))
            result.rows.append(row)
        except BadRecord as exc:
            result.rejected.append(Rejected(as_json(row), str(exc)))
    check_share(len(result.rejected), total, result.rejected[:1], where)
    return result


def check_share(bad: int, total: int, first: list[Rejected], where: str = "") -> None:
    if bad and bad > REJECT_SHARE * total:
        raise BadRecord(f"{first[0].reason}; {bad} of {total} {where or 'rows'} unreadable, more than "
                        f"{REJECT_SHARE:.0%}")


def as_json(row) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=True, default=str)


def note(rejected: list[Rejected]) -> str | None:
    """The seller's line on the freshness page; None when nothing was set aside."""
    if not rejected:
        return None
    reasons = sorted({r.reason for r in rejected})
    shown = "; ".join(reasons[:2]) + (f" и ещё {len(reasons) - 2}" if len(reasons) > 2 else "")
    count = len(rejected)
    one = rows_word(count) == "строка"
    return (f"{count} {rows_word(count)} {'отложена' if one else 'отложены'}: маркетплейс прислал "
            f"{'её' if one else 'их'} в непонятном виде ({shown}); остальные сохранены, "
            f"{'отложенная лежит' if one else 'отложенные лежат'} в таблице {NOTE_MARK}")


def rows_word(count: int) -> str:
    if count % 10 == 1 and count % 100 != 11:
        return "строка"
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return "строки"
    return "строк"


def keep(storage, account: str, dataset: str, rejected: list[Rejected], now: str) -> None:
    """Rows set aside go to rejected_rows, and the freshness note says how many; with none, this
    module's note goes (it spoke of an earlier answer)."""
    storage.write_rejected(account, dataset, rejected, now)
    storage.replace_note(account, dataset, note(rejected), now, NOTE_MARK)
