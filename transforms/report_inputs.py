"""What a report reads: a source's protected rows with the keys reports group by.

Event sources get the hour of the event and the subscriber's profile
attributes (region, age band, plan); a row whose subscriber has no profile
keeps empty keys, and public-key filtering drops it before aggregation.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

UNIT = "subscriber"
EVENT_HOUR = {"network_flows": "start_hour", "call_records": "start_hour", "web_visits": "visit_hour"}
PROFILE_ATTRIBUTES = ("region", "age_band", "plan")


def report_input(source: str, frames: Mapping[str, DataFrame]) -> DataFrame:
    """The source's rows, with `hour` for events and profile attributes for non-profile sources."""
    df = frames[source]
    if source != "subscribers":
        profile = frames["subscribers"]
        attributes = [c for c in PROFILE_ATTRIBUTES if c in profile.columns and c not in df.columns]
        df = df.join(profile.select(UNIT, *attributes), on=UNIT, how="left")
    if source in EVENT_HOUR:
        df = df.withColumn("hour", F.hour(EVENT_HOUR[source]))
    return df


def sources_read(source: str) -> tuple[str, ...]:
    return (source,) if source == "subscribers" else (source, "subscribers")
