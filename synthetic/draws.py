"""Random draws as numpy arrays: every draw a hash of (seed, tag, key), vectorized.

A key is a uint64 per row (a subscriber's or a record's); a draw mixes it with a number
naming the stream (seed, tag) through the splitmix64 finalizer in numpy's wraparound
uint64 arithmetic. Nothing depends on row order, on how the rows are chunked or on a
generator's state: the same (seed, tag, key) always gives the same value.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from synthetic.model import ACTIVITY_SIGMA

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 2.0**53


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64 whose output bits all depend on all input bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return x


def stream_id(seed: int, tag: str) -> np.uint64:
    """A 64-bit number naming the random stream of (seed, tag)."""
    digest = hashlib.blake2b(f"{seed}:{tag}".encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "big"))


def keys_of(numbers: np.ndarray) -> np.ndarray:
    """uint64 hash keys of non-negative integers (account numbers, servers...)."""
    return mix64(numbers.astype(np.uint64) * _GOLDEN + _GOLDEN)


def child_keys(parent_keys: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Keys of a parent's records 1, 2, ...: a function of the parent's key and the record's number."""
    # a sum, not parent ^ mix64(seq): that is symmetric (subscriber a's record b+1 was b's record a+1)
    return mix64(parent_keys + seq.astype(np.uint64) * _GOLDEN)


def random_bits(seed: int, tag: str, keys: np.ndarray) -> np.ndarray:
    """64 random bits per key, fixed by seed, tag and the key."""
    return mix64(keys ^ stream_id(seed, tag))


def uniform(seed: int, tag: str, keys: np.ndarray) -> np.ndarray:
    """Uniform draws in (0, 1) fixed by seed, tag and key, never 0 or 1."""
    return ((random_bits(seed, tag, keys) >> np.uint64(11)).astype(np.float64) + 0.5) * _TO_UNIT


def normal(seed: int, tag: str, keys: np.ndarray) -> np.ndarray:
    """Standard normal draws (Box-Muller over two hashed uniforms)."""
    radius = np.sqrt(-2.0 * np.log(uniform(seed, f"{tag}:r", keys)))
    return radius * np.cos(2 * math.pi * uniform(seed, f"{tag}:t", keys))


def lognormal(median: float, sigma: float, z: np.ndarray) -> np.ndarray:
    """Lognormal values with the given median from standard normal draws."""
    return np.exp(math.log(median) + sigma * z)


def weighted_index(weights: Sequence[float], u: np.ndarray) -> np.ndarray:
    """0-based indexes drawn with the given weights from uniforms (inverse CDF)."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    index = np.searchsorted(cdf, u * cdf[-1], side="right")
    return np.minimum(index, len(cdf) - 1).astype(np.int64)


def uniform_index(n: int, u: np.ndarray) -> np.ndarray:
    """0-based indexes in [0, n) from uniforms."""
    return np.minimum((u * n).astype(np.int64), n - 1)


def random_below(bound: int, seed: int, tag: str, keys: np.ndarray) -> np.ndarray:
    """Integers in [0, bound) (bound at most 2**63), as int64."""
    return (random_bits(seed, tag, keys) % np.uint64(bound)).astype(np.int64)


def daily_count(seed: int, tag: str, keys: np.ndarray, mean: float, sigma_day: float, cap: int) -> np.ndarray:
    """Heavy-tailed records per subscriber (by key) and day with the given mean.

    A lasting activity level (the same for every source and day) times a daily
    lognormal factor, stochastically rounded so the mean holds.
    """
    sigma2 = ACTIVITY_SIGMA**2 + sigma_day**2
    log_rate = (
        math.log(mean) - sigma2 / 2
        + ACTIVITY_SIGMA * normal(seed, "activity", keys)
        + sigma_day * normal(seed, f"{tag}:count", keys)
    )
    rounded = np.floor(np.exp(log_rate) + uniform(seed, f"{tag}:round", keys))
    return np.minimum(rounded, cap).astype(np.int64)


def luhn_check_digit(payload: np.ndarray, length: int) -> np.ndarray:
    """Luhn check digits of `length`-digit numbers (int64, leading zeros allowed)."""
    total = np.zeros(len(payload), dtype=np.int64)
    rest = payload.astype(np.int64)
    for from_right in range(1, length + 1):  # 1 = the digit next to the check digit: doubled
        digit = rest % 10
        rest = rest // 10
        if from_right % 2:
            digit = 2 * digit - 9 * (digit > 4)
        total += digit
    return (10 - total % 10) % 10
