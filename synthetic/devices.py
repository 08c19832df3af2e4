"""Synthetic devices: 1-4 per subscriber, with model, IMEI, IMSI and MAC."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.schemas import DEVICES
from synthetic.draws import (
    RECORD_KEY,
    SUBSCRIBER_KEY,
    luhn_check_digit,
    pick,
    random_bits,
    random_digits,
    uniform,
    weighted_index,
)
from synthetic.model import DEVICE_MODELS, DEVICES_PER_SUBSCRIBER, REFERENCE_DATE
from synthetic.records import select_landing, with_records_per_subscriber, with_subscriber_key


def generate_devices(subscribers: DataFrame, seed: int) -> DataFrame:
    """1-4 devices per subscriber (mostly 1) with IMEI, IMSI, MAC and model."""
    key = F.col(SUBSCRIBER_KEY)
    n_devices = F.lit(1) + weighted_index(DEVICES_PER_SUBSCRIBER, uniform(seed, "devices", key))
    return (
        subscribers.transform(with_subscriber_key)
        .transform(with_records_per_subscriber, n_devices, ["signup_date"])
        .transform(with_device_model, seed)
        .transform(with_device_identifiers, seed)
        .transform(select_landing, DEVICES)
    )


def with_device_model(df: DataFrame, seed: int) -> DataFrame:
    """Add brand, model, os and tac from one DEVICE_MODELS entry, and first_seen."""
    keys = (F.col(RECORD_KEY),)
    model_ix = F.col("model_ix")
    signup = F.col("signup_date").try_cast("date")
    span = F.greatest(F.datediff(F.lit(REFERENCE_DATE), signup), F.lit(1))
    later = F.floor(uniform(seed, "device:first_seen", *keys) * span).cast("int")
    weights = [m[4] for m in DEVICE_MODELS]
    return df.withColumn(
        "model_ix", weighted_index(weights, uniform(seed, "device:model", *keys))
    ).withColumns(
        {
            "brand": pick([m[0] for m in DEVICE_MODELS], model_ix),
            "model": pick([m[1] for m in DEVICE_MODELS], model_ix),
            "os": pick([m[2] for m in DEVICE_MODELS], model_ix),
            "tac": pick([m[3] for m in DEVICE_MODELS], model_ix),
            "first_seen": F.when(F.col("seq") == 1, signup).otherwise(F.date_add(signup, later)),
        }
    )


def with_device_identifiers(df: DataFrame, seed: int) -> DataFrame:
    """Add imei (TAC + 6-digit serial + Luhn digit), imsi (45005 + 10 digits) and mac."""
    keys = (F.col(RECORD_KEY),)
    mac_bits = F.pmod(random_bits(seed, "device:mac", *keys), F.lit(2**48))
    mac_hex = F.lpad(F.lower(F.hex(mac_bits)), 12, "0")
    imei_body = F.col("imei_body")
    return df.withColumn(
        "imei_body", F.concat(F.col("tac"), random_digits(6, seed, "device:serial", *keys))
    ).withColumns(
        {
            "imei": F.concat(imei_body, luhn_check_digit(imei_body, 14)),
            "imsi": F.concat(F.lit("45005"), random_digits(10, seed, "device:imsi", *keys)),
            "mac": F.regexp_replace(mac_hex, r"(..)(?!$)", "$1:"),
        }
    )

