"""Synthetic subscribers: demographics, identity, contract and payment, one row per account.

The direct identifiers (name, email, msisdn, card number, password hash) are invented and
shaped like the real ones (Luhn-valid cards, +8210 numbers, 64 hex digits), so ingest's
checks see realistic values.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.schemas import SUBSCRIBERS
from synthetic.draws import (
    keys_of,
    luhn_check_digit,
    random_below,
    random_bits,
    uniform,
    uniform_index,
    weighted_index,
)
from synthetic.model import (
    ADDONS,
    AGE_BANDS,
    CARD_PREFIXES,
    CONTRACTS,
    EMAIL_DOMAINS,
    FAMILY_NAMES,
    FEMALE_NAMES,
    GENDERS,
    MALE_NAMES,
    NEUTRAL_NAMES,
    PAYMENT_METHODS,
    PLANS,
    POSTCODE_PREFIXES,
    REFERENCE_DATE,
    REGION_WEIGHTS,
    REGIONS,
)
from synthetic.records import landing_table
from synthetic.text import (
    NULL_TEXT,
    date_text,
    decimal_text,
    fixed_width_text,
    hex_chars,
    lookup,
    plain_number,
    zero_padded,
)

# given names in one list: female, male, neutral; a gender's names start at its offset
_GIVEN_NAMES = FEMALE_NAMES + MALE_NAMES + NEUTRAL_NAMES
_GIVEN_RANGES = {"female": (0, len(FEMALE_NAMES)),
                 "male": (len(FEMALE_NAMES), len(MALE_NAMES)),
                 "other": (len(FEMALE_NAMES) + len(MALE_NAMES), len(NEUTRAL_NAMES))}
_REFERENCE_DAY = np.datetime64(REFERENCE_DATE, "D")


def generate_subscribers(n_subscribers: int, seed: int, first: int = 1) -> pa.Table:
    """Subscribers 'KR%08d' numbered first..first+n-1, with demographics, contract and
    forbidden columns; a subscriber's row depends on its number and the seed only."""
    numbers = np.arange(first, first + n_subscribers, dtype=np.int64)
    keys = keys_of(numbers)
    gender = weighted_index([w for _, w in GENDERS], uniform(seed, "gender", keys))
    birth = birth_dates(seed, keys)
    plan = weighted_index([w for _, w, _ in PLANS], uniform(seed, "plan", keys))
    columns = {
        "account_id": zero_padded(numbers, 8, prefix="KR"),
        "gender": lookup([g for g, _ in GENDERS], gender),
        "birth_date": date_text(birth),
        "signup_date": date_text(signup_dates(seed, keys, birth)),
        "plan": lookup([p for p, _, _ in PLANS], plan),
        "password_hash": password_hashes(seed, keys),
        **place(seed, keys),
        **identity(seed, numbers, keys, gender),
        **contract(seed, keys, plan),
        **payment(seed, keys),
    }
    return landing_table(SUBSCRIBERS, columns)


def birth_dates(seed: int, keys: np.ndarray) -> np.ndarray:
    """Birth dates (datetime64[D]) for ages 16-90 at REFERENCE_DATE, drawn by age band."""
    band = weighted_index([w for _, _, w in AGE_BANDS], uniform(seed, "age", keys))
    youngest = np.array([lo for lo, _, _ in AGE_BANDS])[band]
    span = np.array([hi - lo + 1 for lo, hi, _ in AGE_BANDS])[band]
    age = youngest + (uniform(seed, "age:year", keys) * span).astype(np.int64)
    # a day 1..364 before the birthday that makes `age`: the age stays exact
    birthday = add_months(np.full(len(keys), _REFERENCE_DAY), -12 * age)
    return birthday - (1 + uniform_index(364, uniform(seed, "age:day", keys)))


def add_months(days: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Dates plus whole months, the day clamped to the target month's last (like Spark's add_months)."""
    month_start = days.astype("datetime64[M]")
    day_of_month = (days - month_start.astype("datetime64[D]")).astype(np.int64)
    target = month_start + np.asarray(months).astype("timedelta64[M]")
    month_length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(np.int64)
    return target.astype("datetime64[D]") + np.minimum(day_of_month, month_length - 1)


def signup_dates(seed: int, keys: np.ndarray, birth: np.ndarray) -> np.ndarray:
    """Signups over 15 years skewed to recent ones, never before the subscriber turned 16."""
    days_ago = 1 + (uniform(seed, "signup", keys) ** 1.4 * (15 * 365)).astype(np.int64)
    return np.maximum(_REFERENCE_DAY - days_ago, add_months(birth, 16 * 12))


def place(seed: int, keys: np.ndarray) -> dict[str, pa.Array]:
    """Region (population-weighted) and a five-digit postcode inside it."""
    region = weighted_index(list(REGION_WEIGHTS.values()), uniform(seed, "region", keys))
    first_area = np.array([POSTCODE_PREFIXES[r][0] for r in REGIONS])[region]
    n_areas = np.array([POSTCODE_PREFIXES[r][1] - POSTCODE_PREFIXES[r][0] + 1 for r in REGIONS])[region]
    area = first_area + (uniform(seed, "postcode:area", keys) * n_areas).astype(np.int64)
    block = uniform_index(1000, uniform(seed, "postcode:block", keys))
    return {"region": lookup(REGIONS, region), "postcode": zero_padded(area * 1000 + block, 5)}


def identity(seed: int, numbers: np.ndarray, keys: np.ndarray, gender: np.ndarray) -> dict[str, pa.Array]:
    """Name (family name first), email (name + number) and msisdn (+8210 + 8 digits)."""
    starts = np.array([_GIVEN_RANGES[g][0] for g, _ in GENDERS])[gender]
    sizes = np.array([_GIVEN_RANGES[g][1] for g, _ in GENDERS])[gender]
    given = starts + (uniform(seed, "name:given", keys) * sizes).astype(np.int64)
    family = weighted_index([w for _, w in FAMILY_NAMES], uniform(seed, "name:family", keys))
    family_names = [f for f, _ in FAMILY_NAMES]
    email_domain = weighted_index([w for _, w in EMAIL_DOMAINS], uniform(seed, "email:domain", keys))
    # affine map with a multiplier coprime to 8*10^7: distinct lines 2000 0000-9999 9999
    line = 20_000_000 + (numbers * 37_249_091 + seed % 80_000_000) % 80_000_000
    return {
        "name": pc.binary_join_element_wise(lookup(family_names, family), lookup(_GIVEN_NAMES, given), " "),
        "email": pc.binary_join_element_wise(
            lookup([n.lower() for n in _GIVEN_NAMES], given), ".",
            lookup([f.lower() for f in family_names], family), plain_number(numbers), "@",
            lookup([d for d, _ in EMAIL_DOMAINS], email_domain), ""),
        "msisdn": zero_padded(line, 8, prefix="+8210"),
    }


def _addon_tables() -> tuple[list[str | None], np.ndarray]:
    """Per set of addons (bit i = ADDONS[i]): its ';'-joined names (None for none) and price."""
    names, prices = [], []
    for mask in range(2 ** len(ADDONS)):
        taken = [(name, price) for i, (name, _, price) in enumerate(ADDONS) if mask >> i & 1]
        names.append(";".join(n for n, _ in taken) or None)
        prices.append(sum(p for _, p in taken))
    return names, np.array(prices)


_ADDON_NAMES, _ADDON_PRICES = _addon_tables()


def contract(seed: int, keys: np.ndarray, plan: np.ndarray) -> dict[str, pa.Array]:
    """Addons (';'-joined or null), contract (prepaid is month-to-month) and monthly_charges."""
    # one hash, a 9-bit field per addon: take-up resolution 1/512 is plenty
    bits = random_bits(seed, "addons", keys)
    addons = np.zeros(len(keys), dtype=np.int64)
    for i, (_, p, _) in enumerate(ADDONS):
        takes = ((bits >> np.uint64(9 * i)) & np.uint64(511)).astype(np.int64) < round(p * 512)
        addons |= takes.astype(np.int64) << i
    prepaid = plan == [p for p, _, _ in PLANS].index("prepaid")
    drawn = weighted_index([w for _, w in CONTRACTS], uniform(seed, "contract", keys))
    month_to_month = [c for c, _ in CONTRACTS].index("month-to-month")
    kind = np.where(prepaid, month_to_month, drawn)
    discount = np.where(kind == month_to_month, 1.0, 0.75)
    charges = np.array([c for _, _, c in PLANS])[plan] * discount + _ADDON_PRICES[addons]
    return {
        "addons": lookup(_ADDON_NAMES, addons),
        "contract": lookup([c for c, _ in CONTRACTS], kind),
        "monthly_charges": decimal_text(charges, 2),
    }


def payment(seed: int, keys: np.ndarray) -> dict[str, pa.Array]:
    """Payment method, and a Luhn-valid card number for card payers only (null otherwise)."""
    method = weighted_index([w for _, w in PAYMENT_METHODS], uniform(seed, "payment", keys))
    methods = [m for m, _ in PAYMENT_METHODS]
    by_card = np.isin(method, [methods.index("credit_card"), methods.index("debit_card")])
    prefix = np.array([int(p) for p in CARD_PREFIXES])[
        uniform_index(len(CARD_PREFIXES), uniform(seed, "card:bin", keys))]
    body = prefix * 10**9 + random_below(10**9, seed, "card:account", keys)
    card = zero_padded(body * 10 + luhn_check_digit(body, 15), 16)
    return {
        "payment_method": lookup(methods, method),
        "card_number": pc.if_else(pa.array(by_card), card, NULL_TEXT),
    }


def password_hashes(seed: int, keys: np.ndarray) -> pa.Array:
    """64 hex digits per subscriber, shaped like a SHA-256 password hash (random, no password)."""
    parts = [hex_chars(random_bits(seed, f"password:{i}", keys), 16) for i in range(4)]
    return fixed_width_text(np.hstack(parts))
