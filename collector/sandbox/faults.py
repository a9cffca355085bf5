"""Fault injection: make the next request(s) to an endpoint, for an account, go wrong on purpose.

Faults fall in three groups, by what the server does with them:
  * replacing kinds answer with an error instead of running the endpoint;
  * `timeout` and `huge_page` change how the endpoint runs;
  * `malformed`, `missing_field`, `wrong_type` and `int64_as_string` spoil the endpoint's real
    answer (`int64_as_string` writes a number as a numeric string, as Ozon's official examples do).
`reset` closes the connection without any answer; `cut_body` sends the status, the headers and
half the body of the real answer, then closes (a proxy dying mid-transfer).
`payment_required` (WB 402, a catalog app out of funds) and `item_quota` (Ozon's 429 with the
string code RESOURCE_EXHAUSTED and `Item-Retry-After`) replace the answer like the others.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

REPLACING = frozenset({"429", "429_noheaders", "500", "502", "503", "html", "empty", "204",
                       "deprecated", "bad_key", "wrong_category", "circle_open",
                       "payment_required", "item_quota"})
SPOILING = frozenset({"malformed", "missing_field", "wrong_type", "int64_as_string"})
KINDS = REPLACING | SPOILING | {"timeout", "huge_page", "reset", "cut_body"}
WRONG_VALUE = "abc"


@dataclass
class Fault:
    """A fault of `kind` for requests to `endpoint` (a path, None = any) from `account` (None =
    any), `times` times (None = every time). `field` picks the row field (dotted, through lists:
    "products.quantity") that missing_field drops or wrong_type spoils; by default each endpoint
    names one its rows need; int64_as_string turns that field's number into a string. `rows`
    spoils only the first so many rows of the answer (None: every row), for drift that hits a
    few rows rather than the shape."""

    kind: str
    endpoint: str | None = None
    account: str | None = None
    times: int | None = 1
    field: str | None = None
    rows: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(sorted(KINDS))}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1, or None for every time")

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """KIND[:ENDPOINT[:TIMES]], as the --fault option takes it. An empty ENDPOINT means any;
        TIMES is a number or `*` (every time, also the default when no TIMES is given)."""
        kind, _, rest = spec.partition(":")
        endpoint, _, times = rest.partition(":")
        if times in ("", "*"):
            count = None
        elif times.isdigit():
            count = int(times)
        else:
            raise ValueError(f"bad TIMES in fault {spec!r}: a number or *")
        return cls(kind=kind, endpoint=endpoint or None, times=count)

    def matches(self, account: str | None, path: str) -> bool:
        return ((self.endpoint is None or self.endpoint == path)
                and (self.account is None or self.account == account))


class FaultSet:
    """The armed faults of one sandbox, consumed in the order they were added. Thread-safe."""

    def __init__(self):
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, account: str | None, path: str) -> Fault | None:
        """The first fault for this request, counted as used; None when nothing is armed."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(account, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
        return None


def spoil_rows(rows: list, field: str, kind: str) -> None:
    """Drop (`missing_field`), garble (`wrong_type`) or stringify a number (`int64_as_string`) of
    a dotted field in every row, in place."""
    head, _, rest = field.partition(".")
    for row in rows:
        if not isinstance(row, dict) or head not in row:
            continue
        if rest:
            value = row[head]
            spoil_rows(value if isinstance(value, list) else [value], rest, kind)
        elif kind == "missing_field":
            del row[head]
        elif kind == "int64_as_string":
            if isinstance(row[head], int) and not isinstance(row[head], bool):
                row[head] = str(row[head])
        else:
            row[head] = WRONG_VALUE
