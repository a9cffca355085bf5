"""The Wildberries endpoints: statistics (orders, sales), analytics (wb-warehouses, order-feed),
ping, and the removed supplier/stocks. Behaviour and bodies follow api/wildberries.md.

Statistics orders and sales can be switched off at a moment (SandboxConfig.wb_statistics_off_at,
`mp-collector sandbox --wb-statistics-off-in MINUTES`): they then answer like supplier/stocks."""

from __future__ import annotations

import uuid
from datetime import timezone
from http import HTTPStatus

from collector.sandbox.auth import ANALYTICS, BASE, CONTENT, FINANCE, STATISTICS, AuthError
from collector.sandbox.clock import (DAY, MSK, US, fmt_msk_offset, fmt_utc_seconds, msk_day, parse_datetime,
                                    to_us)
from collector.sandbox.exchange import PROBLEM_JSON, BadRequest, Call, Endpoint, MarketplaceApi, Reply
from collector.sandbox.limits import Decision, Limit
from collector.sandbox.wb_model import WbCabinet
from collector.sandbox.optional_shapes import card_json, card_updated, wb_balance_json
from collector.sandbox.wb_shapes import feed_order_json, order_json, sale_json, stock_item_json

ENDPOINTS = (
    Endpoint("wb", "GET", "/ping", "ping", limit="ping"),
    Endpoint("wb", "GET", "/api/v1/supplier/orders", "orders", limit="orders",
             category=STATISTICS, rows="", row_field="nmId"),
    Endpoint("wb", "GET", "/api/v1/supplier/sales", "sales", limit="sales",
             category=STATISTICS, rows="", row_field="nmId"),
    Endpoint("wb", "POST", "/api/analytics/v1/stocks-report/wb-warehouses", "wb_warehouses",
             limit="wb-warehouses", category=ANALYTICS, rows="data.items", row_field="quantity"),
    Endpoint("wb", "POST", "/api/analytics/v1/order-feed", "order_feed", limit="order-feed",
             category=ANALYTICS, rows="data.orders", row_field="srid"),
    Endpoint("wb", "GET", "/api/v1/account/balance", "balance", limit="balance", category=FINANCE),
    Endpoint("wb", "POST", "/content/v2/get/cards/list", "cards", limit="content", category=CONTENT,
             rows="cards", row_field="nmID"),
    Endpoint("wb", "GET", "/api/v1/supplier/stocks", "removed"),
    Endpoint("wb", "GET", "/api/v1/supplier/incomes", "removed"),
)

LIMITS = {  # per account, method and token type
    "ping": Limit(burst=3, interval=10.0),
    "orders": Limit(burst=10, interval=60.0),
    "sales": Limit(burst=1, interval=60.0),
    "wb-warehouses": Limit(burst=1, interval=20.0),
    "balance": Limit(burst=1, interval=60.0),
    "content": Limit(burst=5, interval=0.6),
    "order-feed": Limit(burst=1, interval=60.0),
}
# Methods a plain Base token may call, at these limits; other analytics methods refuse it (403).
BASE_TOKEN_LIMITS = {"orders": Limit(1, 3 * 3600.0), "sales": Limit(1, 2 * 3600.0),
                     "order-feed": Limit(1, 3 * 3600.0)}
MAX_STOCK_LIMIT = 250_000
MAX_NM_IDS = 1000
CARDS_LIMIT = 100
PAYMENT_REQUIRED_DETAIL = ("wb solution for business has insufficient funds on its balance. please top up the "
                           "balance in the company's personal account https://dev.wildberries.ru/company")
FEED_MAX_LIMIT, FEED_DEFAULT_LIMIT = 10_000, 50
FEED_MAX_DAYS = 31
DEPRECATED_DETAIL = "This method is deprecated. Link: https://dev.wildberries.ru/release-notes?id=494"
BAD_KEY_DETAIL = ("token problem; token is malformed: could not base64 decode signature: "
                  "illegal base64 data at input byte 84")


def problem(status: int, detail: str, *, now: int, title: str | None = None,
            origin: str = "ag-marketplace", with_code: bool = True) -> Reply:
    """An application/problem+json error as WB's gateway writes it (401/403/404/429/5xx)."""
    phrase = HTTPStatus(status).phrase
    request_id = uuid.uuid4().hex
    body = {"title": title or phrase.lower(), "detail": detail}
    if with_code:
        body["code"] = f"{request_id[:8]}--{request_id[8:20]}-[UK-{request_id[20:31]}]"
    body.update({"requestId": request_id, "origin": origin, "status": status,
                 "statusText": phrase, "timestamp": fmt_utc_seconds(now)})
    return Reply(status, body, PROBLEM_JSON)


def statistics_error(errors: str | list[str]) -> Reply:
    """The statistics host's 400: {"errors": ...}, a list of strings or a single string."""
    return Reply(400, {"errors": errors})


def analytics_error(detail: str) -> Reply:
    """The analytics host's 400: {title, detail, requestId, origin}."""
    return Reply(400, {"title": "Bad Request", "detail": detail, "requestId": uuid.uuid4().hex,
                       "origin": "analytics-api"}, PROBLEM_JSON)


class WbApi(MarketplaceApi):
    def account_hint(self, call: Call) -> str | None:
        return self._credentials.wb_account_hint(call.header("Authorization"))

    def handle(self, endpoint: Endpoint, call: Call) -> Reply:
        """Auth, rate limit, then the endpoint, in the order WB's gateway applies them."""
        if endpoint.handler == "removed" or self._statistics_off(endpoint, call):
            return self.removed(call)
        try:
            identity = self._credentials.wb_identify(call.header("Authorization"), call.now)
        except AuthError as error:
            return problem(401, error.detail, now=call.now)
        if endpoint.category is not None and not identity.allows(endpoint.category):
            return problem(401, "token scope not allowed for this API route", now=call.now)
        base_refused = endpoint.category == ANALYTICS and endpoint.limit not in BASE_TOKEN_LIMITS
        if base_refused and identity.token_type == BASE:
            return problem(403, "base token is not allowed", now=call.now, with_code=False)
        limits = BASE_TOKEN_LIMITS if identity.token_type == BASE else {}
        limit = limits.get(endpoint.limit, LIMITS[endpoint.limit])
        decision = self._limiter.take((identity.account, endpoint.limit, identity.token_type), limit)
        if not decision.allowed:
            reply = self.too_many_requests(call)
        else:
            try:
                reply = getattr(self, endpoint.handler)(call, self._seller.wb(identity.account))
            except BadRequest as error:
                reply = error.reply
        reply.headers.update(decision.headers(limit))
        return reply

    def _statistics_off(self, endpoint: Endpoint, call: Call) -> bool:
        """supplier/orders and supplier/sales once SandboxConfig.wb_statistics_off_at has come."""
        off_at = self._config.wb_statistics_off_at
        return (off_at is not None and endpoint.handler in ("orders", "sales")
                and call.now >= to_us(off_at))

    # --- endpoints --------------------------------------------------------------------------

    def ping(self, call: Call, cabinet: WbCabinet) -> Reply:
        return Reply(200, {"TS": fmt_msk_offset(call.now), "Status": "OK"})

    def orders(self, call: Call, cabinet: WbCabinet) -> Reply:
        return self._statistics(call, cabinet, "orders", order_json)

    def sales(self, call: Call, cabinet: WbCabinet) -> Reply:
        return self._statistics(call, cabinet, "sales", sale_json)

    def _statistics(self, call: Call, cabinet: WbCabinet, dataset: str, render) -> Reply:
        """flag=0: rows changed at or after dateFrom, capped; flag=1: the whole day of dateFrom."""
        date_from = call.query.get("dateFrom", "")
        if not date_from:
            return statistics_error(["dateFrom: field required"])
        try:
            since = parse_datetime(date_from, MSK)
        except ValueError:
            return statistics_error("dateFrom: Value not validated")
        flag = call.query.get("flag") or "0"
        if flag == "1":
            rows = cabinet.rows_dated(dataset, msk_day(since), call.now)
        elif flag == "0":
            rows = cabinet.rows_changed_since(dataset, since, call.now,
                                              self._config.wb_page_rows * call.page_factor)
        else:
            return statistics_error("flag: Value not validated")
        return Reply(200, [render(row) for row in rows])

    def wb_warehouses(self, call: Call, cabinet: WbCabinet) -> Reply:
        body = call.json_body(analytics_error)
        nm_ids = _id_list(body, "nmIds")
        chrt_ids = _id_list(body, "chrtIds")
        if len(nm_ids) > MAX_NM_IDS:
            return analytics_error(f"nmIds: at most {MAX_NM_IDS} items")
        if chrt_ids and not nm_ids:
            return analytics_error("chrtIds can be used only together with nmIds")
        limit = _uint(body, "limit", MAX_STOCK_LIMIT)
        offset = _uint(body, "offset", 0)
        if not 0 < limit <= MAX_STOCK_LIMIT:
            return analytics_error(f"limit: must be from 1 to {MAX_STOCK_LIMIT}")
        # Sizes that ran out and have nothing on the way drop out of the report.
        items = [stock_item_json(stock) for stock in cabinet.stock_at(call.now)
                 if (stock.quantity or stock.in_way_to_client or stock.in_way_from_client)
                 and (not nm_ids or stock.product.nm_id in nm_ids)
                 and (not chrt_ids or stock.size.chrt_id in chrt_ids)]
        page = items[offset:offset + limit * call.page_factor]
        return Reply(200, {"data": {"items": page}}) if page else Reply(204)

    def order_feed(self, call: Call, cabinet: WbCabinet) -> Reply:
        """Orders whose current status was reached in selectedPeriod, as of one snapshot:
        page 1 takes the snapshot (now), later pages name it and read the same list by offset."""
        body = call.json_body(analytics_error)
        period = body.get("selectedPeriod")
        if not isinstance(period, dict) or not period.get("start"):
            return analytics_error("selectedPeriod.start: field required")
        pagination = body.get("pagination") or {}
        if not isinstance(pagination, dict):
            return analytics_error("pagination: must be an object")
        limit = _uint(pagination, "limit", FEED_DEFAULT_LIMIT)
        offset = _uint(pagination, "offset", 0)
        if not 0 < limit <= FEED_MAX_LIMIT:
            return analytics_error(f"pagination.limit: must be from 1 to {FEED_MAX_LIMIT}")
        nm_ids = _id_list(body, "nmIds")
        if len(nm_ids) > MAX_NM_IDS:
            return analytics_error(f"nmIds: at most {MAX_NM_IDS} items")
        snapshot = _feed_time(pagination.get("snapshotTime"), "pagination.snapshotTime") \
            if pagination.get("snapshotTime") else call.now - call.now % US
        start = _feed_time(period["start"], "selectedPeriod.start")
        end = _feed_time(period["end"], "selectedPeriod.end") if period.get("end") else snapshot
        if start < snapshot - FEED_MAX_DAYS * DAY:
            return analytics_error(f"selectedPeriod.start: not earlier than {FEED_MAX_DAYS} days ago")
        if end < start:
            return analytics_error("selectedPeriod: end is before start")
        rows = [row for row in cabinet.feed_rows(start, end, min(snapshot, call.now))
                if not nm_ids or row.order.product.nm_id in nm_ids]
        page = rows[offset:offset + limit * call.page_factor]
        return Reply(200, {"data": {"snapshotTime": fmt_utc_seconds(snapshot), "currency": "RUB",
                                    "orders": [feed_order_json(row) for row in page]}})

    def balance(self, call: Call, cabinet: WbCabinet) -> Reply:
        return Reply(200, wb_balance_json(self._config.seed, cabinet.account, call.now))

    def cards(self, call: Call, cabinet: WbCabinet) -> Reply:
        """Cards by (updatedAt, nmID) ascending, after the request's cursor; at most 100 a page."""
        body = call.json_body(analytics_error)
        cursor = (body.get("settings") or {}).get("cursor") or {}
        limit = cursor.get("limit")
        if type(limit) is not int or not 0 < limit <= CARDS_LIMIT:
            return analytics_error(f"settings.cursor.limit: must be from 1 to {CARDS_LIMIT}")
        after = None
        if cursor.get("updatedAt") or cursor.get("nmID"):
            try:
                after = (parse_datetime(str(cursor["updatedAt"]), timezone.utc), int(cursor["nmID"]))
            except (KeyError, TypeError, ValueError):
                return analytics_error("settings.cursor: updatedAt and nmID go together")
        position = lambda p: (card_updated(p, cabinet.history_start), p.nm_id)  # noqa: E731
        order = sorted(cabinet.products, key=position)
        later = [p for p in order if after is None or position(p) > after]
        page = [card_json(p, cabinet.history_start) for p in later[:limit * call.page_factor]]
        last = page[-1] if page else {"updatedAt": cursor.get("updatedAt"), "nmID": cursor.get("nmID")}
        return Reply(200, {"cards": page, "cursor": {"updatedAt": last["updatedAt"], "nmID": last["nmID"],
                                                     "total": len(page)}})

    def removed(self, call: Call) -> Reply:
        """The body supplier/stocks was reported to answer after its removal in 2026."""
        return Reply(404, {"status": 404, "statusText": "Not Found", "title": "Not Found",
                           "detail": DEPRECATED_DETAIL, "requestId": uuid.uuid4().hex,
                           "origin": "ag-statistics"}, PROBLEM_JSON)

    # --- errors -----------------------------------------------------------------------------

    def too_many_requests(self, call: Call) -> Reply:
        return problem(429, f"limited by {uuid.uuid4()}", now=call.now)

    def not_found(self, call: Call) -> Reply:
        return problem(404, "path not found", now=call.now, with_code=False)

    def method_not_allowed(self, call: Call) -> Reply:
        return problem(405, "method not allowed", now=call.now, with_code=False)

    def fault_reply(self, kind: str, endpoint: Endpoint | None, call: Call) -> Reply:
        """What WB answers for each replacing fault kind (html, empty and 204 are generic)."""
        now = call.now
        if kind in ("429", "429_noheaders"):
            reply = self.too_many_requests(call)
            if kind == "429":
                limit = LIMITS.get(endpoint.limit if endpoint else None, Limit(1, 1.0))
                interval = max(1.0, limit.interval * self._config.rate_limit_factor)
                reply.headers.update(Decision(False, 0, interval, interval * limit.burst).headers(limit))
            return reply
        return {
            "500": lambda: problem(500, "internal server error", now=now),
            "502": lambda: problem(502, "bad gateway", now=now),
            "503": lambda: problem(503, "service unavailable", now=now),
            "deprecated": lambda: self.removed(call),
            "bad_key": lambda: problem(401, BAD_KEY_DETAIL, now=now),
            "wrong_category": lambda: problem(403, "scope is not allowed for this resource",
                                              now=now, title="Forbidden", with_code=False),
            "circle_open": lambda: problem(503, "Circle is open", now=now),
            # examples/wb/error_402_example.json: {title, detail} only
            "payment_required": lambda: Reply(402, {"title": "payment required", "detail": PAYMENT_REQUIRED_DETAIL},
                                              PROBLEM_JSON),
            "item_quota": lambda: self.too_many_requests(call),
        }[kind]()


def _id_list(body: dict, name: str) -> set[int]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(type(item) is int for item in value):
        raise BadRequest(analytics_error(f"{name}: must be an array of integers"))
    return set(value)


def _feed_time(value, name: str) -> int:
    """An order-feed time: RFC 3339 with an offset (a naive one is read as Moscow time)."""
    try:
        return parse_datetime(str(value), MSK)
    except ValueError:
        raise BadRequest(analytics_error(f"{name}: not a valid date-time")) from None


def _uint(body: dict, name: str, default: int) -> int:
    value = body.get(name, default)
    if type(value) is not int or value < 0:
        raise BadRequest(analytics_error(f"{name}: must be a non-negative integer"))
    return value
