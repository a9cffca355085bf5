"""One request and its reply, as the endpoint handlers see them, apart from the HTTP plumbing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.sandbox.auth import Credentials
    from collector.sandbox.config import SandboxConfig
    from collector.sandbox.limits import RateLimiter
    from collector.sandbox.seller import Seller

JSON = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json"
HTML = "text/html; charset=utf-8"


class BadRequest(Exception):
    """The request is invalid; `reply` is how the marketplace says so."""

    def __init__(self, reply: Reply):
        super().__init__(reply.status)
        self.reply = reply


@dataclass
class Reply:
    status: int
    body: object = None  # JSON-able, or bytes sent as they are; None sends no body
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False  # send the headers and half the body, then drop the connection (cut_body)

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class Call:
    """An incoming request. `now` is the seller's clock (µs) when it arrived; `page_factor` is
    above 1 while a huge_page fault is active."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    now: int
    account: str | None = None
    page_factor: int = 1

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json_body(self, invalid: Callable[[str], Reply]) -> dict:
        """The body as a JSON object; `invalid(detail)` builds the marketplace's 400 otherwise."""
        try:
            body = json.loads(self.body or b"{}")
        except (UnicodeDecodeError, ValueError) as error:
            raise BadRequest(invalid(f"invalid JSON body: {error}")) from None
        if not isinstance(body, dict):
            raise BadRequest(invalid("the body must be a JSON object"))
        return body


@dataclass(frozen=True)
class Endpoint:
    """A route: which handler serves it and what faults and limits need to know about it."""

    marketplace: str  # "wb" or "ozon"
    method: str
    path: str
    handler: str  # the name of the API object's method that serves it
    limit: str | None = None  # rate-limit bucket name (WB); Ozon has one bucket per Client-Id
    category: int | None = None  # WB token category the route needs
    rows: str | None = None  # where the rows sit in the body: "" = the body is the list
    row_field: str | None = None  # the field missing_field / wrong_type spoil by default


class MarketplaceApi:
    """What a marketplace's endpoint handlers work with: the sandbox's settings, the seller whose
    data they serve, the accounts' credentials and the rate limiter they share."""

    def __init__(self, config: SandboxConfig, seller: Seller, credentials: Credentials,
                 limiter: RateLimiter):
        self._config = config
        self._seller = seller
        self._credentials = credentials
        self._limiter = limiter
