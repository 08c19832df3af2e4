"""Synthetic call records: a day of calls and messages per subscriber."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.schemas import CALL_RECORDS
from synthetic.draws import (
    RECORD_KEY,
    daily_count,
    event_time,
    normal,
    pick_weighted,
    random_bits,
    random_digits,
    uniform,
    uniform_index,
    zero_pad,
)
from synthetic.model import CALL_TYPES, CELLS_PER_REGION, REGIONS, ROAMING_RATE
from synthetic.records import (
    region_number,
    select_landing,
    with_records_per_subscriber,
    with_subscriber_key,
)


def generate_call_records(subscribers: DataFrame, day: dt.date, seed: int) -> DataFrame:
    """A day of calls and messages: about 6 per subscriber, heavy-tailed, diurnal."""
    tag = f"calls:{day.isoformat()}"
    keep = ["msisdn", "region"]
    return (
        subscribers.transform(with_subscriber_key)
        .transform(with_records_per_subscriber, daily_count(seed, tag, 6.0, 0.6, 500), keep)
        .transform(with_call_kind, seed, tag)
        .transform(with_call_details, day, seed, tag)
        .transform(select_landing, CALL_RECORDS)
    )


def with_call_kind(df: DataFrame, seed: int, tag: str) -> DataFrame:
    """Add call_type (voice/sms/data), roaming flag and the callee number prefix."""
    keys = (F.col(RECORD_KEY),)
    callee_u = uniform(seed, f"{tag}:callee_kind", *keys)
    return df.withColumns(
        {
            "call_type": pick_weighted(CALL_TYPES, uniform(seed, f"{tag}:type", *keys)),
            "is_roaming": uniform(seed, f"{tag}:roaming", *keys) < F.lit(ROAMING_RATE),
            "callee_prefix": pick_weighted(
                (("+8210", 0.85), ("+822", 0.10), ("+8231", 0.05)), callee_u
            ),
        }
    )


def with_call_details(df: DataFrame, day: dt.date, seed: int, tag: str) -> DataFrame:
    """Add call_id, parties, start_time, duration_s, cell_id and roaming."""
    keys = (F.col(RECORD_KEY),)
    call_type = F.col("call_type")
    z = normal(seed, f"{tag}:duration", *keys)
    median = F.when(call_type == "voice", 75.0).when(call_type == "data", 600.0).otherwise(0.0)
    sigma = F.when(call_type == "voice", 1.1).otherwise(1.3)
    duration = median * F.exp(sigma * z)
    away = uniform(seed, f"{tag}:away", *keys) < F.lit(0.08)
    visited = F.lit(1) + uniform_index(len(REGIONS), uniform(seed, f"{tag}:visit", *keys))
    region = F.when(away, visited).otherwise(region_number(F.col("region")))
    cell = uniform_index(CELLS_PER_REGION, uniform(seed, f"{tag}:cell", *keys))
    call_hash = random_bits(seed, f"{tag}:id", *keys)
    return df.withColumns(
        {
            "call_id": F.lpad(F.lower(F.hex(call_hash)), 16, "0"),
            "caller_msisdn": F.col("msisdn"),
            "callee_msisdn": F.concat(
                F.col("callee_prefix"), random_digits(8, seed, f"{tag}:callee", *keys)
            ),
            "start_time": event_time(day, seed, tag, *keys),
            "duration_s": F.least(F.floor(duration), F.lit(86_400)).cast("int"),
            "cell_id": F.when(
                ~F.col("is_roaming"),
                F.concat(F.lit("C"), zero_pad(region, 2), zero_pad(cell, 3)),
            ),
            "roaming": F.col("is_roaming").cast("string"),
        }
    )

