"""Random draws as Spark expressions: every draw a hash of (seed, tag, key columns).

A seed gives the same values whatever the partitioning: nothing depends on row order or
on a generator's state. No UDFs, no row loops.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

from synthetic.model import ACTIVITY_SIGMA, HOURLY_WEIGHTS

_HASH_RANGE = 2**52
# Hash keys staged once per subscriber and once per record; every draw hashes them.
SUBSCRIBER_KEY = "subscriber_key"
RECORD_KEY = "record_key"


# --- random draws ---------------------------------------------------------
#
# Hot-path notes: `format_string` costs microseconds a call and an expression
# reused inside a `when` branch is evaluated again each time, so values used
# more than once are staged as columns first and strings are built by concat.


def stream_id(seed: int, tag: str) -> int:
    """A signed 64-bit number naming the random stream of (seed, tag)."""
    digest = hashlib.blake2b(f"{seed}:{tag}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def random_bits(seed: int, tag: str, *keys: Column | str) -> Column:
    """64 random bits fixed by seed, tag and key columns: xxhash64 of them."""
    return F.xxhash64(F.lit(stream_id(seed, tag)), *keys)


def uniform(seed: int, tag: str, *keys: Column | str) -> Column:
    """Uniform draw in (0, 1) fixed by seed, tag and key columns, never 0 or 1."""
    hashed = random_bits(seed, tag, *keys)
    return (F.pmod(hashed, F.lit(_HASH_RANGE)) + F.lit(0.5)) / F.lit(float(_HASH_RANGE))


def normal(seed: int, tag: str, *keys: Column | str) -> Column:
    """Standard normal draw (Box-Muller over two hashed uniforms)."""
    radius = F.sqrt(F.lit(-2.0) * F.log(uniform(seed, f"{tag}:r", *keys)))
    return radius * F.cos(F.lit(2 * math.pi) * uniform(seed, f"{tag}:t", *keys))


def lognormal(median: float, sigma: float, z: Column) -> Column:
    """Lognormal value with the given median from a standard normal draw."""
    return F.exp(F.lit(math.log(median)) + F.lit(sigma) * z)


def alias_table(weights: Sequence[float]) -> tuple[list[float], list[int]]:
    """Walker's alias table (Vose's construction) of positive weights.

    Slot i keeps index i with probability prob[i], else gives alias[i]; a
    uniform slot then draws an index with exactly the given weights.
    """
    n = len(weights)
    total = float(sum(weights))
    scaled = [w * n / total for w in weights]
    prob, alias = [1.0] * n, list(range(n))
    small = [i for i, p in enumerate(scaled) if p < 1.0]
    large = [i for i, p in enumerate(scaled) if p >= 1.0]
    while small and large:
        low, high = small.pop(), large.pop()
        prob[low], alias[low] = scaled[low], high
        scaled[high] -= 1.0 - scaled[low]
        (small if scaled[high] < 1.0 else large).append(high)
    return prob, alias


def weighted_index(weights: Sequence[float], u: Column) -> Column:
    """0-based index drawn with the given weights from one uniform, in constant time.

    Alias method: the integer part of u*n picks a slot, the fraction decides
    between the slot and its alias; branch-free so `u` is computed once. (An
    inverse CDF, `size(filter(cdf, x -> x <= u))`, is equivalent but its
    lambda is interpreted, not compiled: ~30x slower on 100 weights.)
    """
    prob, alias = alias_table(weights)
    scaled = u * F.lit(float(len(weights)))
    slot = F.floor(scaled).cast("int")
    takes_alias = ((scaled - slot) >= pick(prob, slot)).cast("int")
    return slot + (pick(alias, slot) - slot) * takes_alias


def uniform_index(n: int, u: Column) -> Column:
    """0-based index in [0, n) from a uniform draw."""
    return F.floor(u * F.lit(n)).cast("int")


def pick(values: Sequence[object], index: Column) -> Column:
    """The element of a literal list at a 0-based index column."""
    return F.element_at(F.array(*[F.lit(v) for v in values]), (index + F.lit(1)).cast("int"))


def pick_weighted(pairs: Sequence[tuple[object, float]], u: Column) -> Column:
    """A value from (value, weight) pairs drawn with their weights."""
    return pick([v for v, _ in pairs], weighted_index([w for _, w in pairs], u))


def zero_pad(number: Column, width: int) -> Column:
    """Decimal text of a non-negative integer below 10**width, left-padded with zeros."""
    return F.lpad(number.cast("long").cast("string"), width, "0")


def random_digits(n_digits: int, seed: int, tag: str, *keys: Column | str) -> Column:
    """String of `n_digits` uniformly random decimal digits (at most 15)."""
    hashed = random_bits(seed, tag, *keys)
    return zero_pad(F.pmod(hashed, F.lit(10**n_digits)), n_digits)


def decimal_text(value: Column, places: int) -> Column:
    """A non-negative number as text with exactly `places` decimals ('1.500')."""
    scaled = F.floor(value * F.lit(10**places) + F.lit(0.5))
    whole = F.floor(scaled / F.lit(10**places)).cast("string")
    return F.concat(whole, F.lit("."), zero_pad(F.pmod(scaled, F.lit(10**places)), places))


def time_text(day: str | Column, second_of_day: Column) -> Column:
    """'yyyy-MM-dd HH:mm:ss' of a second (0..86399) of a day given as 'yyyy-MM-dd'."""
    day_text = F.lit(day) if isinstance(day, str) else day
    return F.concat(
        day_text,
        F.lit(" "),
        zero_pad(F.floor(second_of_day / F.lit(3600)), 2),
        F.lit(":"),
        zero_pad(F.pmod(F.floor(second_of_day / F.lit(60)), F.lit(60)), 2),
        F.lit(":"),
        zero_pad(F.pmod(second_of_day, F.lit(60)), 2),
    )


def daily_count(seed: int, tag: str, mean: float, sigma_day: float, cap: int) -> Column:
    """Heavy-tailed records per subscriber and day with the given mean.

    A lasting activity level (the same for every source and day) times a
    daily lognormal factor, stochastically rounded so the mean holds.
    """
    key = F.col(SUBSCRIBER_KEY)
    sigma2 = ACTIVITY_SIGMA**2 + sigma_day**2
    log_rate = (
        F.lit(math.log(mean) - sigma2 / 2)
        + F.lit(ACTIVITY_SIGMA) * normal(seed, "activity", key)
        + F.lit(sigma_day) * normal(seed, f"{tag}:count", key)
    )
    rounded = F.floor(F.exp(log_rate) + uniform(seed, f"{tag}:round", key))
    return F.least(rounded, F.lit(cap)).cast("int")


# 'HH:', 'mm:' and 'ss' texts looked up rather than formatted: three zero-padded casts a row
# cost about twice as much.
_HOUR_TEXTS = [f"{hour:02d}:" for hour in range(24)]
_MINUTE_TEXTS = [f"{minute:02d}:" for minute in range(60)]
_SECOND_TEXTS = [f"{second:02d}" for second in range(60)]


def event_time(day: dt.date, seed: int, tag: str, *keys: Column | str) -> Column:
    """'yyyy-MM-dd HH:mm:ss' inside `day`, the hour drawn from the diurnal profile."""
    hour = weighted_index(HOURLY_WEIGHTS, uniform(seed, f"{tag}:hour", *keys))
    second = uniform_index(3600, uniform(seed, f"{tag}:second", *keys))
    minute_text = pick(_MINUTE_TEXTS, F.floor(second / F.lit(60)))
    return F.concat(F.lit(f"{day.isoformat()} "), pick(_HOUR_TEXTS, hour), minute_text,
                    pick(_SECOND_TEXTS, F.pmod(second, F.lit(60))))


def luhn_check_digit(payload: Column, length: int) -> Column:
    """Luhn check digit of a fixed-length digit string, as a one-character string.

    Pass a column (not a long expression): the payload is read once per digit.
    """
    doubled = [(2 * d) % 9 if d != 9 else 9 for d in range(10)]
    terms = []
    for i in range(length):
        digit = F.ascii(F.substring(payload, i + 1, 1)) - F.lit(ord("0"))
        from_right = length - i  # 1 = the digit next to the check digit: doubled
        terms.append(pick(doubled, digit) if from_right % 2 else digit)
    total = sum(terms[1:], terms[0])
    return F.pmod(F.lit(10) - F.pmod(total, F.lit(10)), F.lit(10)).cast("string")

