"""Deterministic randomness: every random choice in the sandbox comes from an RNG named by what
it decides (seed, account, purpose, bucket), so any bucket can be generated alone, lazily, in any
order, and always comes out the same. Python's hash() is salted per process, so names are hashed
with hashlib (random.Random seeds str through SHA-512) instead.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
import uuid
from collections.abc import Sequence


def rng_for(*parts: object) -> random.Random:
    return random.Random("/".join(map(str, parts)))


def stable_int(*parts: object, bits: int = 64) -> int:
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big") >> (128 - bits)


def stable_uuid(*parts: object) -> str:
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw; the normal approximation above 50 is plenty for order counts."""
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, product, count = math.exp(-lam), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


def below(rng: random.Random, n: int) -> int:
    """A uniform int in [0, n): what rng.randrange does, several times faster, for the hot loops
    that generate orders (the bias, under n / 2**53, does not matter here)."""
    return int(rng.random() * n)


def uniform_us(rng: random.Random, span: tuple[float, float], unit_us: int) -> int:
    """A random duration in microseconds, uniform over a (low, high) range counted in `unit_us`."""
    low, high = span
    return int(rng.uniform(low, high) * unit_us)


# Real timestamps come with whatever precision the writing service had: whole seconds, millis,
# micros. Weights of 0..6 kept fraction digits.
_PRECISION_DIGITS = (0, 0, 0, 1, 2, 3, 3, 6, 6)


def rough_time(rng: random.Random, us: int) -> int:
    """Drop a random number of trailing fraction digits, so formatted times vary in length."""
    step = 10 ** (6 - _PRECISION_DIGITS[below(rng, len(_PRECISION_DIGITS))])
    return us - us % step


class WeightedPicker:
    """Picks items with given weights in O(log n), for catalogues of thousands of products."""

    def __init__(self, items: Sequence, weights: Sequence[float]):
        self.items = tuple(items)
        self._cumulative = list(itertools.accumulate(weights))
        self.total = self._cumulative[-1]
        self._last = len(self.items) - 1

    def pick(self, rng: random.Random):
        # hi bounds the index even if rounding puts the draw at the very top
        return self.items[bisect.bisect_right(self._cumulative, rng.random() * self.total, 0, self._last)]

    def mean(self) -> float:
        """The expected value, for pickers of numbers."""
        weights = [high - low for low, high in zip([0.0, *self._cumulative], self._cumulative)]
        return sum(item * weight for item, weight in zip(self.items, weights)) / self.total


def zipf_weights(count: int) -> list[float]:
    """Zipf-like shares, biggest first: a few bestsellers and a long tail."""
    return [1 / (rank + 1) ** 0.8 for rank in range(count)]


def popularity_weights(rng: random.Random, count: int) -> list[float]:
    """Zipf-like shares in random catalogue order."""
    weights = zipf_weights(count)
    rng.shuffle(weights)
    return weights


def ean13(rng: random.Random, prefix: str = "20") -> str:
    """A barcode with a valid EAN-13 check digit (WB's own barcodes start with 20)."""
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(12 - len(prefix)))
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)
