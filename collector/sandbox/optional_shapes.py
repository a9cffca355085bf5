"""Bodies of the optional datasets' methods: WB balance and product cards, Ozon balance.

Balances are a pure function of (seed, account, Moscow day): they change once a day, so a
collector that writes a row only when a figure changed writes one a day. Card `updatedAt` values
are fixed per card, so the cursor order (updatedAt, nmID) is stable.
"""

from __future__ import annotations

from datetime import date

from collector.sandbox.catalog import FAMILIES, WbProduct
from collector.sandbox.clock import DAY, fmt_utc, msk_day
from collector.sandbox.randomness import stable_int

CURRENCY = "RUB"


def balance_kopecks(seed: int, account: str, day: int, what: str, most: int = 50_000_000) -> int:
    """A figure in kopecks for a Moscow day (days since 1970-01-01), up to `most`."""
    return stable_int(seed, account, "balance", what, day) % most


def wb_balance_json(seed: int, account: str, t: int) -> dict:
    """GET /api/v1/account/balance: roubles as JSON numbers with kopecks."""
    day = msk_day(t)
    current = balance_kopecks(seed, account, day, "current")
    withdraw = current * 80 // 100
    return {"currency": CURRENCY, "current": current / 100, "for_withdraw": withdraw / 100}


def ozon_balance_json(seed: int, account: str, first_day: int, last_day: int) -> dict:
    """/v1/finance/balance over [first_day, last_day]: opening + accrued - payments = closing."""
    opening = balance_kopecks(seed, account, first_day, "opening")
    accrued = sum(balance_kopecks(seed, account, d, "accrued", 2_000_000) for d in range(first_day, last_day + 1))
    payments = [balance_kopecks(seed, account, d, "payment", 1_500_000)
                for d in range(first_day, last_day + 1) if d % 3 == 0]
    closing = opening + accrued - sum(payments)

    def amount(kopecks: int) -> dict:
        return {"value": kopecks / 100, "currency_code": CURRENCY}

    sales = {"amount": amount(accrued), "fee": amount(accrued // 10),
             "amount_details": {"revenue": amount(accrued), "partner_programs": amount(0),
                                "points_for_discounts": amount(0)}}
    zero = {"amount": amount(0), "fee": amount(0),
            "amount_details": {"revenue": amount(0), "partner_programs": amount(0), "points_for_discounts": amount(0)}}
    return {"total": {"opening_balance": amount(opening), "accrued": amount(accrued),
                      "payments": [amount(p) for p in payments], "closing_balance": amount(closing)},
            "cashflows": {"sales": sales, "returns": zero, "services": []}}


def card_updated(product: WbProduct, history_start: int) -> int:
    """When a card last changed: some time in the year before the history starts."""
    return history_start - (stable_int("card", product.nm_id) % (365 * DAY))


def card_json(product: WbProduct, history_start: int) -> dict:
    """A /content/v2/get/cards/list card."""
    updated = card_updated(product, history_start)
    return {
        "nmID": product.nm_id,
        "imtID": product.nm_id // 3,
        "vendorCode": product.article,
        "brand": product.family.brand,
        "title": product.name,
        "subjectID": 1000 + FAMILIES.index(product.family),
        "subjectName": product.family.subject,
        "sizes": [{"chrtID": size.chrt_id, "techSize": size.tech_size, "wbSize": "", "skus": [size.barcode]}
                  for size in product.sizes],
        "photos": [],
        "createdAt": fmt_utc(updated - 30 * DAY, 0),
        "updatedAt": fmt_utc(updated, 0),
    }


def day_number(text: str) -> int:
    """YYYY-MM-DD as days since 1970-01-01 (a Moscow calendar day); ValueError if it is not one."""
    return (date.fromisoformat(text[:10]) - date(1970, 1, 1)).days
