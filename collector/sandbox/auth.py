"""Fake but recognisable credentials, derived from the seed, and how each marketplace checks them.

WB tokens are real JWTs (three base64url parts, claims as WB writes them) signed with HMAC-SHA256
under a key derived from the seed: the sandbox verifies the signature instead of remembering
tokens, so a token stays valid across restarts with the same seed while its `exp` is honoured.
Ozon credentials are a positive integer Client-Id and a UUID Api-Key per store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from collector.sandbox.clock import DAY, US
from collector.sandbox.randomness import stable_int, stable_uuid

# Bit positions of the `s` claim (WB's numbering is uncertain; these follow api/wildberries.md;
# Content and Finance follow WB's token page, 1 and 13, equally unconfirmed).
ANALYTICS, STATISTICS, READ_ONLY = 2, 5, 30
CONTENT, FINANCE = 1, 13
DEFAULT_CATEGORIES = (CONTENT, ANALYTICS, STATISTICS, FINANCE, READ_ONLY)
BASE, TEST, PERSONAL, SERVICE = 1, 2, 3, 4  # the `acc` claim
TOKEN_DAYS = 180


@dataclass(frozen=True)
class WbIdentity:
    account: str
    token_type: int
    categories: int  # the `s` bitmask

    def allows(self, category: int) -> bool:
        return bool(self.categories >> category & 1)


class AuthError(Exception):
    """A credential check failed; `detail` is the marketplace's own wording."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class OzonAuthError(AuthError):
    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code = status, code


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Credentials:
    """The tokens and keys of every account of one seed."""

    def __init__(self, seed: int, wb_accounts: list[str], ozon_accounts: list[str]):
        self._seed = seed
        self._signing_key = hashlib.sha256(f"mp-sandbox/{seed}".encode()).digest()
        self._wb_by_seller = {self._seller_id(account): account for account in wb_accounts}
        self._ozon_by_client = {self.ozon_client_id(account): account for account in ozon_accounts}

    # --- Wildberries ------------------------------------------------------------------------

    def _seller_id(self, account: str) -> str:
        return stable_uuid(self._seed, account, "sid")

    def wb_token(self, account: str, issued_us: int, *,
                 categories: tuple[int, ...] = DEFAULT_CATEGORIES,
                 token_type: int = PERSONAL, days: int = TOKEN_DAYS) -> str:
        """A token of `account` issued at `issued_us`, valid `days`, with these category bits."""
        header = {"alg": "HS256", "kid": "sandbox", "typ": "JWT"}
        claims = {
            "acc": token_type,
            "ent": 1,
            "exp": (issued_us + days * DAY) // US,
            "for": "self",
            "id": stable_uuid(self._seed, account, "token", issued_us, categories, token_type),
            "iid": stable_int(self._seed, account, "iid", bits=26),
            "oid": stable_int(self._seed, account, "oid", bits=22),
            "s": sum(1 << bit for bit in categories),
            "sid": self._seller_id(account),
            "t": token_type == TEST,
            "uid": stable_int(self._seed, account, "uid", bits=26),
        }
        signed = f"{_b64(_compact_json(header))}.{_b64(_compact_json(claims))}"
        return f"{signed}.{self._sign(signed)}"

    def _sign(self, signed: str) -> str:
        return _b64(hmac.new(self._signing_key, signed.encode(), hashlib.sha256).digest())

    def wb_account_hint(self, authorization: str | None) -> str | None:
        """The account a token claims to be, signature unchecked (for logs and fault scoping)."""
        try:
            return self._wb_by_seller.get(self._claims(authorization)["sid"])
        except (AuthError, KeyError, TypeError):
            return None

    def wb_identify(self, authorization: str | None, now_us: int) -> WbIdentity:
        """Check an Authorization header (raw token or `Bearer <token>`). Raises AuthError."""
        claims = self._claims(authorization)
        signed, _, signature = _strip_bearer(authorization).rpartition(".")
        if not _same(signature, self._sign(signed)):
            raise AuthError("token problem; token signature is invalid")
        if not isinstance(claims.get("exp"), int) or claims["exp"] * US <= now_us:
            raise AuthError("token problem; token has invalid claims: token is expired")
        account = self._wb_by_seller.get(claims.get("sid"))
        if account is None:
            raise AuthError("token problem; seller not found")
        return WbIdentity(account, claims.get("acc", BASE), claims.get("s", 0))

    @staticmethod
    def _claims(authorization: str | None) -> dict:
        token = _strip_bearer(authorization)
        if not token:
            raise AuthError("empty Authorization header")
        parts = token.split(".")
        if len(parts) != 3:
            raise AuthError("token problem; token is malformed: token contains an invalid number of segments")
        try:
            claims = json.loads(_unb64(parts[1]))
            _unb64(parts[2])
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise AuthError("token problem; token is malformed: could not base64 decode token") from None
        if not isinstance(claims, dict):
            raise AuthError("token problem; token is malformed: claims are not an object")
        return claims

    # --- Ozon -------------------------------------------------------------------------------

    def ozon_client_id(self, account: str) -> str:
        return str(100_000 + stable_int(self._seed, account, "client-id") % 3_000_000)

    def ozon_api_key(self, account: str) -> str:
        return stable_uuid(self._seed, account, "api-key")

    def ozon_account_hint(self, client_id: str | None) -> str | None:
        return self._ozon_by_client.get((client_id or "").strip())

    def ozon_identify(self, client_id: str | None, api_key: str | None) -> str:
        """The store these headers belong to. Raises OzonAuthError with Ozon's status and code."""
        client_id = (client_id or "").strip()
        if not client_id.isdigit() or int(client_id) <= 0:
            raise OzonAuthError(400, 3, "Client-Id header value should be positive integer")
        account = self._ozon_by_client.get(client_id)
        if account is None or not _same((api_key or "").strip(), self.ozon_api_key(account)):
            raise OzonAuthError(404, 5, "Invalid Api-Key, please check the key and try again")
        return account


def _strip_bearer(authorization: str | None) -> str:
    value = (authorization or "").strip()
    return value[7:].strip() if value[:7].lower() == "bearer " else value


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes the odd non-ASCII header value."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _compact_json(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
