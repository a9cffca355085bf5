"""The Ozon Seller API endpoints the collector uses. Behaviour and bodies follow api/ozon.md;
every error is an rpcStatus {code, message, details}."""

from __future__ import annotations

import base64
import binascii
from datetime import timezone

from collector.sandbox.auth import OzonAuthError
from collector.sandbox.clock import DAY, fmt_utc, parse_datetime
from collector.sandbox.exchange import BadRequest, Call, Endpoint, MarketplaceApi, Reply
from collector.sandbox.limits import Limit
from collector.sandbox.ozon_model import RETURN_DATE_FIELDS, OzonPosting, OzonStore
from collector.sandbox.optional_shapes import day_number, ozon_balance_json
from collector.sandbox.ozon_shapes import (posting_json, product_info_item, product_list_item,
                                           return_json, stock_items_json)

ENDPOINTS = (
    Endpoint("ozon", "POST", "/v3/product/list", "product_list", rows="result.items", row_field="sku"),
    Endpoint("ozon", "POST", "/v3/product/info/list", "product_info", rows="items", row_field="sku"),
    Endpoint("ozon", "POST", "/v1/roles", "roles"),
    Endpoint("ozon", "POST", "/v1/analytics/stocks", "stocks", rows="items",
             row_field="available_stock_count"),
    Endpoint("ozon", "POST", "/v3/posting/fbo/list", "postings", rows="postings",
             row_field="products.quantity"),
    Endpoint("ozon", "POST", "/v1/returns/list", "returns", rows="returns", row_field="product.quantity"),
    Endpoint("ozon", "POST", "/v1/finance/balance", "balance"),
    Endpoint("ozon", "POST", "/v2/posting/fbo/list", "switched_off"),
)

PER_CLIENT_LIMIT = Limit(burst=50, interval=1 / 50)  # 50 requests a second per Client-Id
INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE = 3, 5, 7, 8, 13, 14
RATE_LIMIT_MESSAGE = "You have reached request rate limit per second"
SWITCHED_OFF_MESSAGE = "This method is deprecated and switched off, use /v3/posting/fbo/list"
MAX_PRODUCT_PAGE, MAX_POSTING_PAGE, MAX_RETURN_PAGE = 1000, 100, 500
MAX_ANALYTICS_SKUS, MAX_POSTING_NUMBERS, MAX_RETURN_POSTING_NUMBERS, MAX_INFO_IDS = 100, 1000, 50, 1000
MAX_PERIOD = 365 * DAY
MAX_BALANCE_DAYS = 30
ITEM_QUOTA_MESSAGE = "You have reached operation items limits. Retry after 120 seconds. Remaining 10 items"
POSTING_STATUSES = ("awaiting_packaging", "awaiting_deliver", "delivering", "delivered", "cancelled")
FINAL_STATUSES = {"delivered", "cancelled"}
VISIBILITIES = ("ALL", "VISIBLE", "IN_SALE", "EMPTY_STOCK", "ARCHIVED")
ROLES = (
    {"name": "Product", "methods": ["/v3/product/list", "/v3/product/info/list"]},
    {"name": "Posting FBO", "methods": ["/v3/posting/fbo/list"]},
    {"name": "Analytics", "methods": ["/v1/analytics/stocks"]},
    {"name": "Returns", "methods": ["/v1/returns/list"]},
)
KEY_DAYS_LEFT = 150  # the sandbox's keys are a month into their six-month life


def rpc_error(status: int, code: int | str, message: str) -> Reply:
    return Reply(status, {"code": code, "message": message, "details": []})


def invalid(message: str) -> Reply:
    return rpc_error(400, INVALID_ARGUMENT, message)


class OzonApi(MarketplaceApi):
    def account_hint(self, call: Call) -> str | None:
        return self._credentials.ozon_account_hint(call.header("Client-Id"))

    def handle(self, endpoint: Endpoint, call: Call) -> Reply:
        try:
            account = self._credentials.ozon_identify(call.header("Client-Id"), call.header("Api-Key"))
        except OzonAuthError as error:
            return rpc_error(error.status, error.code, error.detail)
        if not self._limiter.take((account, "ozon"), PER_CLIENT_LIMIT).allowed:
            return self.too_many_requests(call)
        try:
            return getattr(self, endpoint.handler)(call, self._seller.ozon(account))
        except BadRequest as error:
            return error.reply

    # --- products ---------------------------------------------------------------------------

    def product_list(self, call: Call, store: OzonStore) -> Reply:
        """Products by id filter, or by visibility (ALL = everything not archived); last_id paging."""
        body = call.json_body(invalid)
        wanted = body.get("filter") or {}
        limit = _int_in(body.get("limit"), "limit", 1, MAX_PRODUCT_PAGE)
        offer_ids = _string_set(wanted, "offer_id", MAX_INFO_IDS)
        product_ids = _int_set(wanted, "product_id", MAX_INFO_IDS)
        skus = _int_set(wanted, "skus", MAX_INFO_IDS)
        visibility = wanted.get("visibility") or "ALL"
        if visibility not in VISIBILITIES:
            raise BadRequest(invalid(f"filter.visibility: unknown value {visibility!r}"))
        in_stock = self._skus_in_stock(store, call.now)
        if offer_ids or product_ids or skus:  # an id filter ignores visibility
            products = [p for p in store.products
                        if (not offer_ids or p.offer_id in offer_ids)
                        and (not product_ids or p.product_id in product_ids)
                        and (not skus or p.sku in skus)]
        else:
            products = [p for p in store.products if _visible(visibility, p.archived, p.sku in in_stock)]
        start = _decode_last_id(body.get("last_id") or "")
        page = products[start:start + limit * call.page_factor]
        last_id = _encode_last_id(start + len(page)) if page else ""
        return Reply(200, {"result": {
            "items": [product_list_item(p, p.sku in in_stock, self._split(store, p)) for p in page],
            "total": len(products), "last_id": last_id}})

    def product_info(self, call: Call, store: OzonStore) -> Reply:
        body = call.json_body(invalid)
        product_ids = _string_ids(body, "product_id", MAX_INFO_IDS)
        offer_ids = _string_set(body, "offer_id", MAX_INFO_IDS)
        skus = _string_ids(body, "sku", MAX_INFO_IDS)
        if len(product_ids) + len(offer_ids) + len(skus) > MAX_INFO_IDS:
            raise BadRequest(invalid(f"at most {MAX_INFO_IDS} ids in total"))
        stock = self._fbo_units(store, call.now)
        items = [product_info_item(p, store, *stock.get(p.sku, (0, 0)), split=self._split(store, p))
                 for p in store.products
                 if p.product_id in product_ids or p.offer_id in offer_ids or p.sku in skus]
        return Reply(200, {"items": items})

    def _split(self, store: OzonStore, product) -> bool:
        """Whether a product has separate FBO and FBS SKUs (config.ozon_split_sku_every)."""
        every = self._config.ozon_split_sku_every
        return bool(every) and not product.archived and store.products.index(product) % every == 0

    def roles(self, call: Call, store: OzonStore) -> Reply:
        expires = self._seller.origin + KEY_DAYS_LEFT * DAY
        # fresh copies: a spoiling fault edits the body in place
        roles = [{"name": role["name"], "methods": list(role["methods"])} for role in ROLES]
        return Reply(200, {"expires_at": fmt_utc(expires, 3), "roles": roles})

    def _fbo_units(self, store: OzonStore, now: int) -> dict[int, tuple[int, int]]:
        """(present, reserved) units per SKU over all warehouses."""
        units: dict[int, tuple[int, int]] = {}
        for stock in store.stock_at(now):
            present, reserved = units.get(stock.product.sku, (0, 0))
            units[stock.product.sku] = (present + stock.available, reserved + stock.reserved)
        return units

    def _skus_in_stock(self, store: OzonStore, now: int) -> set[int]:
        return {sku for sku, (present, _) in self._fbo_units(store, now).items() if present}

    # --- stocks -----------------------------------------------------------------------------

    def stocks(self, call: Call, store: OzonStore) -> Reply:
        """One item per SKU x warehouse; `skus` is required, strings, at most 100."""
        body = call.json_body(invalid)
        if not body.get("skus"):
            raise BadRequest(invalid("skus: value is required"))
        skus = _string_ids(body, "skus", MAX_ANALYTICS_SKUS)
        if body.get("cluster_ids") and body.get("macrolocal_cluster_ids"):
            raise BadRequest(invalid("use either cluster_ids or macrolocal_cluster_ids, not both"))
        warehouse_ids = _int_set(body, "warehouse_ids", None)
        cluster_ids = _int_set(body, "cluster_ids", None)
        macro_ids = _int_set(body, "macrolocal_cluster_ids", None)
        stocks = [s for s in store.stock_at(call.now)
                  if s.product.sku in skus
                  and (not warehouse_ids or s.warehouse.warehouse_id in warehouse_ids)
                  and (not cluster_ids or s.warehouse.cluster_id in cluster_ids)
                  and (not macro_ids or s.warehouse.macrolocal_cluster_id in macro_ids)]
        return Reply(200, {"items": stock_items_json(stocks)})

    # --- postings ---------------------------------------------------------------------------

    def postings(self, call: Call, store: OzonStore) -> Reply:
        """FBO postings matching the filter at call time, by created_at; cursor paging."""
        body = call.json_body(invalid)
        wanted = body.get("filter") or {}
        limit = _int_in(body.get("limit", MAX_POSTING_PAGE), "limit", 1, MAX_POSTING_PAGE)
        descending = _sort_descending(body.get("sort_dir"))
        since = _time(wanted.get("since"), "filter.since", store.history_start)
        until = _time(wanted.get("to"), "filter.to", call.now)
        if until - since > MAX_PERIOD:
            raise BadRequest(invalid("PERIOD_IS_TOO_LONG"))
        statuses = _string_set(wanted, "statuses", None)
        unknown = statuses - set(POSTING_STATUSES)
        if unknown:
            raise BadRequest(invalid(f"filter.statuses: unknown status {sorted(unknown)[0]!r}"))
        if statuses and not statuses & FINAL_STATUSES:  # open postings are all recent
            since = max(since, call.now - store.final_within)
        numbers = _string_set(wanted, "posting_numbers", MAX_POSTING_NUMBERS)
        order_numbers = _string_set(wanted, "order_numbers", MAX_POSTING_NUMBERS)
        after = _decode_cursor(body.get("cursor") or "")
        extras = body.get("with") or {}

        if numbers:
            found = (store.find_posting(number, call.now) for number in numbers)
            candidates = sorted((p for p in found if p and since <= p.created <= until),
                                key=lambda p: p.key, reverse=descending)
        else:
            candidates = store.iter_postings(since, min(until, call.now), descending)
        size = limit * call.page_factor
        page: list[OzonPosting] = []
        for posting in candidates:
            if after and (posting.key <= after if not descending else posting.key >= after):
                continue
            if statuses and posting.status_at(call.now) not in statuses:
                continue
            if order_numbers and posting.order_number not in order_numbers:
                continue
            page.append(posting)
            if len(page) > size:
                break
        has_next = len(page) > size
        page = page[:size]
        return Reply(200, {
            "has_next": has_next,
            "cursor": _encode_cursor(page[-1].key) if has_next else "",
            "postings": [posting_json(p, call.now, analytics=bool(extras.get("analytics_data")),
                                      financial=bool(extras.get("financial_data"))) for p in page],
        })

    def balance(self, call: Call, store: OzonStore) -> Reply:
        """Финансы → Баланс over [date_from, date_to], dates as YYYY-MM-DD, at most 30 days."""
        body = call.json_body(invalid)
        try:
            first, last = day_number(str(body["date_from"])), day_number(str(body["date_to"]))
        except (KeyError, ValueError):
            raise BadRequest(invalid("date_from and date_to: required, YYYY-MM-DD")) from None
        if last < first or last - first > MAX_BALANCE_DAYS:
            raise BadRequest(invalid("PERIOD_IS_TOO_LONG"))
        return Reply(200, ozon_balance_json(self._config.seed, store.account, first, last))

    def switched_off(self, call: Call, store: OzonStore) -> Reply:
        return rpc_error(404, NOT_FOUND, SWITCHED_OFF_MESSAGE)

    # --- returns ----------------------------------------------------------------------------

    def returns(self, call: Call, store: OzonStore) -> Reply:
        """FBO returns in exactly one date range, by id; last_id paging."""
        body = call.json_body(invalid)
        if "limit" not in body:
            raise BadRequest(invalid("limit: value is required"))
        limit = _int_in(body["limit"], "limit", 1, MAX_RETURN_PAGE)
        last_id = _int_in(body.get("last_id") or 0, "last_id", 0, None)
        wanted = body.get("filter") or {}
        ranges = [name for name in RETURN_DATE_FIELDS if wanted.get(name)]
        if len(ranges) != 1:
            raise BadRequest(invalid("filter: exactly one of " + ", ".join(RETURN_DATE_FIELDS)
                                     + " must be set"))
        field = ranges[0]
        period = wanted[field]
        if not isinstance(period, dict):
            raise BadRequest(invalid(f"filter.{field}: must be an object"))
        since = _time(period.get("time_from"), f"filter.{field}.time_from", store.history_start)
        until = _time(period.get("time_to"), f"filter.{field}.time_to", call.now)
        schema = (wanted.get("return_schema") or "FBO").upper()
        if schema not in ("FBO", "FBS"):
            raise BadRequest(invalid(f"filter.return_schema: unknown value {schema!r}"))
        matches = _return_filter(wanted)
        found = [] if schema == "FBS" else sorted(
            ((posting, ret) for posting, ret in store.returns_between(since, until, call.now)
             if ret.return_id > last_id and _dated_within(ret.date_for(field, call.now), since, until)
             and matches(posting, ret, call.now)),
            key=lambda pair: pair[1].return_id)
        page = found[:limit * call.page_factor]
        as_strings = self._config.ozon_int64_as_strings
        return Reply(200, {
            "returns": [return_json(store, posting, ret, call.now, as_strings) for posting, ret in page],
            "has_next": len(found) > len(page),
        })

    # --- errors -----------------------------------------------------------------------------

    def too_many_requests(self, call: Call) -> Reply:
        return rpc_error(429, RESOURCE_EXHAUSTED, RATE_LIMIT_MESSAGE)

    def not_found(self, call: Call) -> Reply:
        return rpc_error(404, NOT_FOUND, "Not Found")

    def method_not_allowed(self, call: Call) -> Reply:
        return rpc_error(405, 12, "Method Not Allowed")

    def fault_reply(self, kind: str, endpoint: Endpoint | None, call: Call) -> Reply:
        """What Ozon answers for each replacing fault kind (html, empty and 204 are generic)."""
        if kind == "429":  # some real 429s carry retry-after; 429_noheaders is the bare one
            reply = self.too_many_requests(call)
            reply.headers["Retry-After"] = "1"
            return reply
        return {
            "429_noheaders": lambda: self.too_many_requests(call),
            "500": lambda: rpc_error(500, INTERNAL, "Internal error"),
            "502": lambda: rpc_error(502, UNAVAILABLE, "Bad Gateway"),
            "503": lambda: rpc_error(503, UNAVAILABLE, "Service Unavailable"),
            "deprecated": lambda: rpc_error(404, NOT_FOUND, SWITCHED_OFF_MESSAGE),
            "bad_key": lambda: rpc_error(404, NOT_FOUND,
                                         "Invalid Api-Key, please check the key and try again"),
            "wrong_category": lambda: rpc_error(403, PERMISSION_DENIED,
                                                "Access denied: the API key has no role for this method"),
            "circle_open": lambda: rpc_error(503, UNAVAILABLE, "Circle is open"),
            "item_quota": lambda: self.item_quota(),
            "payment_required": lambda: rpc_error(402, PERMISSION_DENIED, "Payment required"),
        }[kind]()

    def item_quota(self) -> Reply:
        """The official 429 example: the string code and `Item-Retry-After` in minutes (scaled
        like every sandbox wait by rate_limit_factor, so tests need not wait two minutes)."""
        reply = rpc_error(429, "RESOURCE_EXHAUSTED", ITEM_QUOTA_MESSAGE)
        reply.headers["Item-Retry-After"] = f"{2 * self._config.rate_limit_factor:g}"
        return reply


# --- request parsing helpers -----------------------------------------------------------------

def _int_in(value, name: str, low: int, high: int | None) -> int:
    """An int64 field, sent as a number or a numeric string, within [low, high]."""
    try:
        number = int(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise BadRequest(invalid(f"{name}: must be an integer {bounds}"))
    return number


def _list(container: dict, name: str, most: int | None) -> list:
    value = container.get(name) or []
    if not isinstance(value, list):
        raise BadRequest(invalid(f"{name}: must be an array"))
    if most is not None and len(value) > most:
        raise BadRequest(invalid(f"{name}: at most {most} items"))
    return value


def _int_set(container: dict, name: str, most: int | None) -> set[int]:
    """Ids sent as strings (as documented) or numbers."""
    return {_int_in(item, name, 0, None) for item in _list(container, name, most)}


def _string_ids(container: dict, name: str, most: int | None) -> set[int]:
    """int64 ids the reference types as strings: a number is refused, as Ozon's validator does."""
    items = _list(container, name, most)
    if not all(isinstance(item, str) for item in items):
        raise BadRequest(invalid(f"{name}: invalid value, expected an array of strings"))
    return {_int_in(item, name, 0, None) for item in items}


def _string_set(container: dict, name: str, most: int | None) -> set[str]:
    items = _list(container, name, most)
    if not all(isinstance(item, str) for item in items):
        raise BadRequest(invalid(f"{name}: must be an array of strings"))
    return set(items)


def _time(value, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        return parse_datetime(str(value), timezone.utc)
    except ValueError:
        raise BadRequest(invalid(f"{name}: invalid time {value!r}")) from None


def _sort_descending(sort_dir) -> bool:
    direction = (sort_dir or "ASC").upper()
    if direction not in ("ASC", "DESC"):
        raise BadRequest(invalid(f"sort_dir: unknown value {sort_dir!r}"))
    return direction == "DESC"


def _visible(visibility: str, archived: bool, in_stock: bool) -> bool:
    if visibility == "ARCHIVED":
        return archived
    if archived:
        return False
    return {"IN_SALE": in_stock, "EMPTY_STOCK": not in_stock}.get(visibility, True)


def _encode_last_id(position: int) -> str:
    return base64.b64encode(f"p{position}".encode()).decode()


def _decode_last_id(last_id: str) -> int:
    if not last_id:
        return 0
    try:
        text = base64.b64decode(last_id, validate=True).decode()
        if text[:1] == "p" and text[1:].isdigit():
            return int(text[1:])
    except (binascii.Error, UnicodeDecodeError):
        pass
    raise BadRequest(invalid("last_id: invalid value"))


def _encode_cursor(key: tuple[int, int, int]) -> str:
    return base64.urlsafe_b64encode("{}:{}:{}".format(*key).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[int, int, int] | None:
    if not cursor:
        return None
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        if len(parts) == 3 and all(part.isdigit() for part in parts):
            created, n, part = map(int, parts)
            return created, n, part
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadRequest(invalid("cursor: invalid value"))


def _return_filter(wanted: dict):
    """A predicate for the optional /v1/returns/list filters besides the date range."""
    numbers = _string_set(wanted, "posting_numbers", MAX_RETURN_POSTING_NUMBERS)
    order_id = _optional_int(wanted, "order_id")
    warehouse_id = _optional_int(wanted, "warehouse_id")
    compensation = wanted.get("compensation_status_id")
    text = {name: wanted.get(name) or None
            for name in ("offer_id", "barcode", "visual_status_name", "product_name")}

    def matches(posting, ret, now: int) -> bool:
        product = ret.line.product
        return ((not numbers or posting.posting_number in numbers)
                and (order_id is None or posting.order_id == order_id)
                and (warehouse_id is None or posting.warehouse.warehouse_id == warehouse_id)
                and (not compensation)  # FBO returns carry no compensation status
                and (text["offer_id"] is None or product.offer_id == text["offer_id"])
                and (text["barcode"] is None or ret.barcode == text["barcode"])
                and (text["visual_status_name"] is None
                     or ret.visual_status(now)[0][2] == text["visual_status_name"])
                and (text["product_name"] is None
                     or text["product_name"].lower() in product.name.lower()))
    return matches


def _dated_within(moment: int | None, since: int, until: int) -> bool:
    return moment is not None and since <= moment <= until


def _optional_int(container: dict, name: str) -> int | None:
    value = container.get(name)
    return None if value in (None, "", "0", 0) else _int_in(value, name, 0, None)
