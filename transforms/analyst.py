"""The analyst zone's record-level dataset: one row per subscriber, before k-anonymization.

Quasi-identifiers: region, age band, plan, number of add-ons, device brand.
Sensitive attribute: the day's data usage band. The pseudonym is not kept:
one row is one subscriber, and a pseudonym would single every row out.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

UNIT = "subscriber"
QUASI_IDENTIFIERS = ("region", "age_band", "plan", "addons", "device_brand")
SENSITIVE = "usage_band"
# Upper bounds (bytes per day) of the usage bands, in order; above the last: the last label.
USAGE_BANDS = ((10_000_000, "under 10 MB"), (100_000_000, "10-100 MB"), (1_000_000_000, "100 MB-1 GB"))
TOP_USAGE_BAND = "1 GB and more"
NO_DEVICE = "none"


def _addon_count(addons):
    """How many add-ons (';'-separated): 0, 1, 2, or '3+'."""
    count = F.when(addons.isNull() | (F.trim(addons) == ""), F.lit(0)).otherwise(
        F.size(F.split(addons, ";"))
    )
    return F.when(count >= 3, F.lit("3+")).otherwise(count.cast("string"))


def _usage_band(total_bytes):
    band = F.lit(TOP_USAGE_BAND)
    for upper, label in reversed(USAGE_BANDS):
        band = F.when(total_bytes < upper, F.lit(label)).otherwise(band)
    return band


def _primary_brand(devices: DataFrame) -> DataFrame:
    """Each subscriber's most recently first-seen device's brand (ties: by brand name)."""
    latest = Window.partitionBy(UNIT).orderBy(F.col("first_seen").desc_nulls_last(), F.col("brand"))
    return (
        devices.withColumn("_rank", F.row_number().over(latest))
        .where(F.col("_rank") == 1)
        .select(UNIT, F.col("brand").alias("device_brand"))
    )


def analyst_records(subscribers: DataFrame, devices: DataFrame, flows: DataFrame) -> DataFrame:
    """One row per subscriber: the quasi-identifiers and the usage band (0 bytes when no flows)."""
    usage = flows.groupBy(UNIT).agg(F.sum("bytes").alias("_bytes"))
    return (
        subscribers.select(UNIT, "region", "age_band", "plan", _addon_count(F.col("addons")).alias("addons"))
        .join(_primary_brand(devices), on=UNIT, how="left")
        .join(usage, on=UNIT, how="left")
        .select(
            *[F.coalesce(F.col(c), F.lit("unknown")).alias(c) for c in QUASI_IDENTIFIERS[:4]],
            F.coalesce(F.col("device_brand"), F.lit(NO_DEVICE)).alias("device_brand"),
            _usage_band(F.coalesce(F.col("_bytes"), F.lit(0))).alias(SENSITIVE),
        )
    )
