"""The HTTP layer shared by both marketplaces: one session per account, client-side pacing,
bounded retries, and errors that say in plain words what failed.

Retried: 429 (waiting what the marketplace says), 5xx, connection errors (also one cut in the
middle of a body), timeouts, malformed or empty bodies and Ozon's `Circle is open`. Never retried: 400, 401, 402, 403 and other 404s,
because repeating them only gets a seller blocked.

A 204 is data only where the marketplace documents it (`empty_ok`: WB's 204 "no stock"); a 204
anywhere else, and an empty 200 body or JSON `null` anywhere at all, is a glitch, retried and then
failed, because reading it as "no rows" would zero the stock or move a watermark past rows never
seen.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from collector import __version__, stopping

USER_AGENT = f"mp-dashboard/{__version__}"
CIRCLE_OPEN = "circle is open"
DEPRECATED = re.compile(r"deprecated|has been removed|switched off", re.IGNORECASE)


class ApiError(Exception):
    """A request that failed for good. `str()` names the endpoint, status and detail."""

    def __init__(self, endpoint: str, status: int | None, detail: str, reason: str = ""):
        self.endpoint, self.status, self.detail, self.reason = endpoint, status, detail, reason
        super().__init__(self.describe())

    def describe(self) -> str:
        status = f"HTTP {self.status} {self.reason}".strip() if self.status else "no HTTP answer"
        return f"{self.endpoint}: {status}: {self.detail}"


class RetryableError(ApiError):
    """A failure worth another try; `retry_after` is the wait the server asked for, if any."""

    def __init__(self, endpoint: str, status: int | None, detail: str, retry_after: float | None = None,
                 reason: str = ""):
        self.retry_after = retry_after
        super().__init__(endpoint, status, detail, reason)


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    waited: float = 0.0


class TokenBucket:
    """Client-side pacing: `burst` requests at once, then one per `interval` seconds.

    Marketplaces keep their own buckets per seller and method; pacing to the documented
    figures means a steady pass never draws a 429 in the first place.
    """

    def __init__(self, interval: float, burst: int = 1, clock: Callable[[], float] = time.monotonic):
        self.interval, self.burst, self._clock = interval, burst, clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take a token, sleeping until one is free; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) / self.interval)
            self._updated = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) * self.interval
            self._tokens -= 1
            if wait:
                stopping.sleep(wait)  # pacing waits up to a minute: a stop must not wait for it
            return wait


@dataclass
class ApiClient:
    """One marketplace account's HTTP access: headers, pacing per method, retries, counters."""

    account: str
    headers: dict[str, str]
    secrets: tuple[str, ...]
    limits: dict[str, TokenBucket]
    timeout: float = 30.0
    max_retry_wait: float = 300.0
    max_attempts: int = 6
    backoff_factor: float = 1.0
    default_retry_after: dict[str, float] = field(default_factory=dict)
    stats: RequestStats = field(default_factory=RequestStats)
    last_endpoint: str = ""  # the endpoint of the latest call, to name where unreadable data came from

    def __post_init__(self):
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, **self.headers})

    def call(self, method: str, url: str, *, limit: str, endpoint: str,
             params: dict | None = None, body: Any = None, empty_ok: bool = False) -> Any:
        """Send one logical request, retrying what is worth retrying; return parsed JSON.

        With `empty_ok` (the marketplace documents 204 "no data" here) a 204 is None; otherwise,
        and for an empty 200 body always, an empty answer is a RetryableError like any glitch.
        """
        self.last_endpoint = endpoint
        stopping.checkpoint()  # a stopped pass sends no new request; its waits end early too
        retrying = Retrying(
            sleep=stopping.sleep,
            retry=retry_if_exception_type(RetryableError),
            wait=self._wait,
            stop=self._stop,
            before_sleep=self._count_retry,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self.limits[limit].acquire()
                return self._send(method, url, endpoint, params, body, limit, empty_ok)

    def _send(self, method, url, endpoint, params, body, limit, empty_ok=False):
        self.stats.requests += 1
        try:
            response = self.session.request(method, url, params=params, json=body,
                                            timeout=(min(10.0, self.timeout), self.timeout))
        except requests.Timeout:
            raise RetryableError(endpoint, None, f"no answer within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise RetryableError(endpoint, None, connection_problem(exc)) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            # The status line came, then the connection broke in the middle of the body: as
            # transient as a reset, and a half body must never be read as the whole answer.
            raise RetryableError(endpoint, None, "the connection was cut in the middle of the answer") from None
        return self._interpret(response, endpoint, limit, empty_ok)

    def _interpret(self, response: requests.Response, endpoint: str, limit: str, empty_ok: bool = False):
        status, reason = response.status_code, response.reason or ""
        text = self.redact(response.text)
        if status in (200, 204):
            try:
                answer = response.json() if status == 200 and text.strip() else None
            except ValueError:
                raise RetryableError(endpoint, status, f"the answer is not valid JSON ({len(text)} characters, "
                                     f"starting: {_snippet(text, 60)})",
                                     reason=reason) from None
            if answer is None and not (status == 204 and empty_ok):
                raise RetryableError(endpoint, status, "the answer is empty", reason=reason)
            return answer
        detail = error_detail(text)
        if CIRCLE_OPEN in detail.lower():
            # Ozon blocks an overloaded method "for a few minutes".
            raise RetryableError(endpoint, status, detail, 120 * self.backoff_factor, reason)
        if status == 429:
            raise RetryableError(endpoint, status, detail, self._retry_after(response, limit), reason)
        if status >= 500:
            raise RetryableError(endpoint, status, detail, reason=reason)
        if status == 402:  # WB: the token belongs to a catalog app whose balance ran out
            raise ApiError(endpoint, status, f"the marketplace asks for payment (a paid app's balance ran out, "
                                             f"not the seller's data): {detail}", reason)
        if status == 404 and DEPRECATED.search(detail):
            raise ApiError(endpoint, status, f"the method is removed or deprecated: {detail}", reason)
        raise ApiError(endpoint, status, detail, reason)

    def _retry_after(self, response: requests.Response, limit: str) -> float | None:
        for header in ("X-Ratelimit-Retry", "Retry-After"):
            value = response.headers.get(header)
            if value:
                try:
                    return max(0.0, float(value))
                except ValueError:
                    continue
        minutes = response.headers.get("Item-Retry-After")
        if minutes:
            try:
                return float(minutes) * 60
            except ValueError:
                pass
        fallback = self.default_retry_after.get(limit)
        return fallback * self.backoff_factor if fallback is not None else None

    def _longest_wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception()
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return error.retry_after
        # Exponential backoff: 1, 2, 4, ... s, capped at 30 s.
        return min(30.0, 2 ** (state.attempt_number - 1)) * self.backoff_factor

    def _wait(self, state: RetryCallState) -> float:
        longest = self._longest_wait(state)
        error = state.outcome.exception()
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return longest
        return random.uniform(longest / 2, longest)  # jitter, so parallel clients spread out

    def _stop(self, state: RetryCallState) -> bool:
        """`max_attempts` (six) at most, and never more than `max_retry_wait` seconds asleep in all."""
        planned = self.stats.waited + self._longest_wait(state)
        return state.attempt_number >= self.max_attempts or planned > self.max_retry_wait

    def _count_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        self.stats.waited += state.upcoming_sleep

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        self.session.close()


def connection_problem(exc: BaseException) -> str:
    """What went wrong with a connection, in words: requests wraps the socket error in layers."""
    seen, pending = set(), [exc]
    while pending:
        error = pending.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ConnectionResetError):
            return "the connection was reset before the answer came"
        if isinstance(error, ConnectionRefusedError):
            return "the connection was refused (is the URL right?)"
        if isinstance(error, socket.gaierror):
            return "the host name could not be resolved (is the URL right?)"
        pending += [e for e in (*getattr(error, "args", ()), getattr(error, "reason", None),
                                error.__cause__, error.__context__) if isinstance(e, BaseException)]
    return f"the connection failed ({type(exc).__name__})"


def error_detail(text: str) -> str:
    """The human part of an error body, whatever shape the marketplace chose this time."""
    try:
        body = json.loads(text)
    except ValueError:
        return _snippet(text) if text.strip() else "empty body"
    if not isinstance(body, dict):
        return _snippet(text)
    parts = []
    errors = body.get("errors")
    if errors:  # WB statistics 400: a string or a list of strings
        parts.append("; ".join(errors) if isinstance(errors, list) else str(errors))
    for key in ("detail", "message", "title"):
        if body.get(key) and not parts:
            parts.append(str(body[key]))
    if body.get("code") not in (None, "", 0) and "message" in body:
        parts.append(f"code {body['code']}")
    if body.get("requestId"):
        parts.append(f"requestId {body['requestId']}")
    return ", ".join(parts) or _snippet(text)


def _snippet(text: str, size: int = 160) -> str:
    """A short, single-line excerpt; HTML pages reduced to their text."""
    plain = re.sub(r"<[^>]+>", " ", text)
    plain = " ".join(plain.split())
    return plain[:size] + ("…" if len(plain) > size else "")
