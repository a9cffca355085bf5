"""Token-bucket rate limits, kept per (account, method, token type) as WB documents them.

Buckets run on real monotonic time even when the seller's clock is a manual SandboxClock: limits
are about how fast a client talks to the server, and a frozen test clock would otherwise never
refill them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    burst: int  # bucket size
    interval: float  # seconds to earn one request back


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int  # whole requests left in the bucket after this one
    retry_after: float  # seconds until one request is allowed (0 when allowed)
    reset_after: float  # seconds until the bucket is full again

    def headers(self, limit: Limit) -> dict[str, str]:
        """WB's headers: Remaining on success; Retry, Limit and Reset on a 429."""
        if self.allowed:
            return {"X-Ratelimit-Remaining": str(self.remaining)}
        return {"X-Ratelimit-Retry": str(math.ceil(self.retry_after)),
                "X-Ratelimit-Limit": str(limit.burst),
                "X-Ratelimit-Reset": str(math.ceil(self.reset_after))}


class RateLimiter:
    """All buckets of one sandbox. `factor` scales every interval (0 switches limits off)."""

    def __init__(self, factor: float, monotonic: Callable[[], float] = time.monotonic):
        self._factor = factor
        self._monotonic = monotonic
        self._buckets: dict[tuple, tuple[float, float]] = {}  # key -> (tokens, as of)
        self._lock = threading.Lock()

    def take(self, key: tuple, limit: Limit) -> Decision:
        """Spend one request from the bucket `key` if it has one; a refused request costs nothing,
        so a client that retries too early keeps getting refused until the bucket refills."""
        interval = limit.interval * self._factor
        if interval <= 0:
            return Decision(True, limit.burst, 0.0, 0.0)
        with self._lock:
            now = self._monotonic()
            tokens, as_of = self._buckets.get(key, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - as_of) / interval)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._buckets[key] = (tokens, now)
        return Decision(allowed, int(tokens), 0.0 if allowed else (1 - tokens) * interval,
                        (limit.burst - tokens) * interval)
