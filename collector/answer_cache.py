"""Answers of canned queries kept in memory between two writes of the collector.

Every open of the dashboard asks the same dozen canned queries, and so does every other browser
that has it open. Between two passes (every 10 minutes) nothing they read changes, so a JSON
answer is kept and sent again as it was, for as long as it is exactly what the query would say:

- the database is unchanged: SQLite's `PRAGMA data_version`, read on a connection of our own
  before the request is answered, moves with every commit of any other connection;
- the day is the same, and so are the settings the queries read (TIMEZONE's today,
  TARGET_COVER_DAYS, LOW_STOCK_DAYS); a query that reads the clock finer than the day
  (`mp_now()`: «сегодня против вчера к этому часу», freshness) is never kept;
- the request is the same: path and query string, and who asks (Datasette's signed `ds_actor`
  cookie and an Authorization header), so an answer is only ever sent to whom it was made for.

Only a 200 answer of a named canned query's `.json` is kept, within a bound on memory; every
other request (pages, CSV, tables, ad-hoc SQL) passes through untouched.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from http.cookies import SimpleCookie

MAX_BYTES = 64 * 1024 * 1024  # all answers kept together
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # one answer (a canned query's JSON stops at 5,000 rows)
# A query whose SQL holds one of these answers differently within a day (SQLite's own clock is
# UTC and the queries never read it, but a query that did would be just as unfit to keep).
CLOCK_FUNCTIONS = ("mp_now(", "'now'", "current_time", "current_date")


@dataclass
class Answer:
    version: int
    start: dict  # the http.response.start message
    body: bytes


class FileVersions:
    """SQLite's versions of the served file, read on a connection of this process's own (tens of
    microseconds, in the request's own thread): `PRAGMA schema_version` moves when the collector
    changes the schema (an upgrade), `PRAGMA data_version` with every commit it makes."""

    def __init__(self, path: str):
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def _read(self, pragma: str) -> int:
        if self._conn is None:
            self._conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, check_same_thread=False)
        return self._conn.execute(f"PRAGMA {pragma}").fetchone()[0]

    def schema(self) -> int:
        return self._read("schema_version")

    def data(self) -> int:
        return self._read("data_version")


class AnswerCache:
    def __init__(self, versions: FileVersions, cacheable: set[str], prefix: str,
                 max_bytes: int = MAX_BYTES, max_answer_bytes: int = MAX_ANSWER_BYTES):
        self._versions = versions
        self._cacheable = cacheable
        self._prefix = prefix  # "/mp/" under base_url
        self._max_bytes, self._max_answer_bytes = max_bytes, max_answer_bytes
        self._answers: OrderedDict[tuple, Answer] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0

    def query_name(self, path: str) -> str | None:
        """The canned query a path asks for as JSON, when it is one kept here."""
        if not (path.startswith(self._prefix) and path.endswith(".json")):
            return None
        name = path[len(self._prefix):-len(".json")]
        return name if name in self._cacheable else None

    async def serve(self, scope, receive, send, app, context: tuple) -> None:
        """Answer from memory when the kept answer is still exact; else let `app` answer and keep
        what it said."""
        key = (scope.get("path"), scope.get("query_string", b""), _who_asks(scope), *context)
        version = self._versions.data()  # before the answer is computed: a write after it misses
        answer = self._answers.get(key)
        if answer is not None and answer.version == version:
            self._answers.move_to_end(key)
            self.hits += 1
            await send(answer.start)
            await send({"type": "http.response.body", "body": answer.body})
            return
        self.misses += 1
        if answer is not None:
            self._forget(key)
        start, chunks, size = None, [], 0

        async def keeping(message):
            nonlocal start, size
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body" and start is not None and size <= self._max_answer_bytes:
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
            await send(message)

        await app(scope, receive, keeping)
        if start is not None and start.get("status") == 200 and size <= self._max_answer_bytes:
            self._keep(key, Answer(version, start, b"".join(chunks)))

    def _keep(self, key: tuple, answer: Answer) -> None:
        self._forget(key)
        self._answers[key] = answer
        self._bytes += len(answer.body)
        while self._bytes > self._max_bytes and self._answers:
            self._forget(next(iter(self._answers)))

    def _forget(self, key: tuple) -> None:
        answer = self._answers.pop(key, None)
        if answer is not None:
            self._bytes -= len(answer.body)


def cacheable_queries(queries: dict) -> set[str]:
    """The canned queries (name -> metadata) whose answer depends on the data and the day only."""
    return {name for name, query in (queries or {}).items()
            if isinstance(query, dict) and query.get("sql") and not query.get("write")
            and not any(function in query["sql"].lower() for function in CLOCK_FUNCTIONS)}


def _who_asks(scope) -> tuple:
    headers = dict(scope.get("headers") or ())
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # noqa: BLE001 - a malformed cookie: keyed by the whole header instead
        return (headers.get(b"cookie"), headers.get(b"authorization"))
    actor = cookie.get("ds_actor")
    return (actor.value if actor else None, headers.get(b"authorization"))
