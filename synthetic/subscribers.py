"""Synthetic subscribers: demographics, identity, contract and payment, one row per account.

The direct identifiers (name, email, msisdn, card number, password hash) are invented and
shaped like the real ones (Luhn-valid cards, +8210 numbers), so ingest's checks see
realistic values.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from core.schemas import SUBSCRIBERS
from synthetic.draws import (
    SUBSCRIBER_KEY,
    decimal_text,
    luhn_check_digit,
    pick,
    pick_weighted,
    random_bits,
    random_digits,
    uniform,
    uniform_index,
    weighted_index,
    zero_pad,
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
from synthetic.records import select_landing, with_subscriber_key


def generate_subscribers(spark: SparkSession, n_subscribers: int, seed: int) -> DataFrame:
    """Subscribers 'KR00000001'.. with demographics, contract and forbidden columns."""
    return (
        spark.range(1, n_subscribers + 1)
        .select(F.format_string("KR%08d", F.col("id")).alias("account_id"), F.col("id"))
        .transform(with_subscriber_key)
        .transform(with_demographics, seed)
        .transform(with_identity, seed)
        .transform(with_contract, seed)
        .transform(with_payment, seed)
        .transform(select_landing, SUBSCRIBERS)
    )


def with_demographics(df: DataFrame, seed: int) -> DataFrame:
    """Add gender, birth_date (ages 16-90), region (population-weighted) and postcode."""
    key = F.col(SUBSCRIBER_KEY)
    band, region_ix = F.col("age_band"), F.col("region_ix")
    youngest = pick([lo for lo, _, _ in AGE_BANDS], band)
    span = pick([hi - lo + 1 for lo, hi, _ in AGE_BANDS], band)
    age = youngest + F.floor(uniform(seed, "age:year", key) * span).cast("int")
    # a day 1..364 before the birthday that makes `age`: the age stays exact
    birthday = F.add_months(F.lit(REFERENCE_DATE), -12 * age)
    birth_date = F.date_sub(birthday, 1 + uniform_index(364, uniform(seed, "age:day", key)))
    first_area = pick([POSTCODE_PREFIXES[r][0] for r in REGIONS], region_ix)
    n_areas = pick([hi - lo + 1 for lo, hi in (POSTCODE_PREFIXES[r] for r in REGIONS)], region_ix)
    area = first_area + F.floor(uniform(seed, "postcode:area", key) * n_areas).cast("int")
    block = uniform_index(1000, uniform(seed, "postcode:block", key))
    return df.withColumns(
        {
            "age_band": weighted_index([w for _, _, w in AGE_BANDS], uniform(seed, "age", key)),
            "region_ix": weighted_index(list(REGION_WEIGHTS.values()), uniform(seed, "region", key)),
        }
    ).withColumns(
        {
            "gender": pick_weighted(GENDERS, uniform(seed, "gender", key)),
            "birth_date": birth_date,
            "region": pick(REGIONS, region_ix),
            "postcode": F.concat(zero_pad(area, 2), zero_pad(block, 3)),
        }
    )


def with_identity(df: DataFrame, seed: int) -> DataFrame:
    """Add name (family name first), email (name + number) and msisdn (+8210 + 8 digits)."""
    key = F.col(SUBSCRIBER_KEY)
    u_given = uniform(seed, "name:given", key)

    def given_from(names: Sequence[str]) -> Column:
        return pick(names, uniform_index(len(names), u_given))

    given = (
        F.when(F.col("gender") == "female", given_from(FEMALE_NAMES))
        .when(F.col("gender") == "male", given_from(MALE_NAMES))
        .otherwise(given_from(NEUTRAL_NAMES))
    )
    family = pick_weighted(FAMILY_NAMES, uniform(seed, "name:family", key))
    # affine map with a multiplier coprime to 8*10^7: distinct lines 2000 0000-9999 9999
    line = F.lit(20_000_000) + F.pmod(
        F.col("id") * F.lit(37_249_091) + F.lit(seed % 80_000_000), F.lit(80_000_000)
    )
    email_domain = pick_weighted(EMAIL_DOMAINS, uniform(seed, "email:domain", key))
    return df.withColumns({"given": given, "family": family}).withColumns(
        {
            "name": F.concat_ws(" ", F.col("family"), F.col("given")),
            "email": F.concat(
                F.lower(F.col("given")),
                F.lit("."),
                F.lower(F.col("family")),
                F.col("id").cast("string"),
                F.lit("@"),
                email_domain,
            ),
            "msisdn": F.concat(F.lit("+8210"), line.cast("string")),
        }
    )


def with_contract(df: DataFrame, seed: int) -> DataFrame:
    """Add plan, addons (';'-joined or null), contract, monthly_charges and signup_date."""
    key = F.col(SUBSCRIBER_KEY)
    takes = [(F.col(f"addon_{name}"), name, price) for name, _, price in ADDONS]
    addon_names = F.concat_ws(";", *[F.when(t, F.lit(name)) for t, name, _ in takes])
    addon_price = sum((t.cast("double") * F.lit(price) for t, _, price in takes), F.lit(0.0))
    plan_ix = F.col("plan_ix")
    contract = F.when(pick([p for p, _, _ in PLANS], plan_ix) == F.lit("prepaid"), "month-to-month")
    discount = F.when(F.col("contract") == F.lit("month-to-month"), 1.0).otherwise(0.75)
    charges = pick([c for _, _, c in PLANS], plan_ix) * discount + addon_price
    # signups over 15 years skewed to recent ones, never before the subscriber turned 16
    days_ago = 1 + F.floor(uniform(seed, "signup", key) ** 1.4 * F.lit(15 * 365)).cast("int")
    signup = F.greatest(
        F.date_sub(F.lit(REFERENCE_DATE), days_ago), F.add_months(F.col("birth_date"), 16 * 12)
    )
    # one hash, a 9-bit field per addon: take-up resolution 1/512 is plenty
    addon_bits = random_bits(seed, "addons", key)
    flags = {
        f"addon_{name}": F.shiftright(addon_bits, 9 * i).bitwiseAND(511) < F.lit(round(p * 512))
        for i, (name, p, _) in enumerate(ADDONS)
    }
    return (
        df.withColumns(flags)
        .withColumn("plan_ix", weighted_index([w for _, w, _ in PLANS], uniform(seed, "plan", key)))
        .withColumns(
            {
                "plan": pick([p for p, _, _ in PLANS], plan_ix),
                "contract": contract.otherwise(
                    pick_weighted(CONTRACTS, uniform(seed, "contract", key))
                ),
                "addons": F.when(addon_names != F.lit(""), addon_names),
                "signup_date": signup,
            }
        )
        .withColumn("monthly_charges", decimal_text(charges, 2))
    )


def with_payment(df: DataFrame, seed: int) -> DataFrame:
    """Add payment_method, card_number (Luhn-valid, card payers only) and password_hash."""
    key = F.col(SUBSCRIBER_KEY)
    body = F.concat(
        pick(CARD_PREFIXES, uniform_index(len(CARD_PREFIXES), uniform(seed, "card:bin", key))),
        random_digits(9, seed, "card:account", key),
    )
    pays_by_card = F.col("payment_method").isin("credit_card", "debit_card")
    card = F.concat(F.col("card_body"), luhn_check_digit(F.col("card_body"), 15))
    return df.withColumns(
        {
            "payment_method": pick_weighted(PAYMENT_METHODS, uniform(seed, "payment", key)),
            "card_body": body,
            "password_hash": F.sha2(F.concat_ws(":", F.lit(str(seed)), "account_id", F.lit("pw")), 256),
        }
    ).withColumn("card_number", F.when(pays_by_card, card))

