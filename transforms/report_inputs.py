"""What a report reads: a source's protected rows with the keys reports group by.

Event sources get the hour of the event and the subscriber's profile
attributes (region, age band, plan); a row whose subscriber has no profile
keeps empty keys, and public-key filtering drops it before aggregation.
Columns a report names but no source has are derived here from protected
columns, as core.policy.DERIVED_REPORT_COLUMNS declares (the policy
judges each as the column it comes from):

- `category`: a visited domain's category, from the shipped reference table;
- `cell_area`: a cell's area, the first four characters of its id (C + region
  code + the cell number's hundreds digit); calls with no cell (roaming) have none;
- `addon_<name>`: 1 when the subscriber has add-on <name>, else 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.policy import ADDON_PREFIX
from transforms.generalize import with_domain_category

UNIT = "subscriber"
EVENT_HOUR = {"network_flows": "start_hour", "call_records": "start_hour", "web_visits": "visit_hour"}
PROFILE_ATTRIBUTES = ("region", "age_band", "plan")
CELL_AREA_LENGTH = 4
DOMAIN_CATEGORIES = "domain_categories"  # the reference frame `category` needs


def report_input(source: str, frames: Mapping[str, DataFrame], columns: Iterable[str] = ()) -> DataFrame:
    """The source's rows, with `hour`, profile attributes and the derived `columns` asked for."""
    df = frames[source]
    if source != "subscribers":
        profile = frames["subscribers"]
        attributes = [c for c in PROFILE_ATTRIBUTES if c in profile.columns and c not in df.columns]
        df = df.join(profile.select(UNIT, *attributes), on=UNIT, how="left")
    if source in EVENT_HOUR:
        df = df.withColumn("hour", F.hour(EVENT_HOUR[source]))
    for column in dict.fromkeys(columns):
        if column not in df.columns:
            df = _with_derived(df, column, frames)
    return df


def _with_derived(df: DataFrame, column: str, frames: Mapping[str, DataFrame]) -> DataFrame:
    if column == "category" and "domain" in df.columns and DOMAIN_CATEGORIES in frames:
        return with_domain_category(df, "domain", frames[DOMAIN_CATEGORIES], out_col="category")
    if column == "cell_area" and "cell_id" in df.columns:
        return df.withColumn("cell_area", F.substring("cell_id", 1, CELL_AREA_LENGTH))
    if column.startswith(ADDON_PREFIX) and "addons" in df.columns:
        return df.withColumn(column, has_addon(F.col("addons"), column.removeprefix(ADDON_PREFIX)))
    return df  # not derivable here: the aggregation names the missing column


def has_addon(addons, name: str):
    """1 when the ';'-joined add-on list holds `name`, else 0 (no add-ons: 0)."""
    listed = F.array_contains(F.split(F.coalesce(addons, F.lit("")), ";"), name)
    return F.when(listed, F.lit(1)).otherwise(F.lit(0))


def sources_read(source: str) -> tuple[str, ...]:
    return (source,) if source == "subscribers" else (source, "subscribers")


def references_read(columns: Iterable[str]) -> tuple[str, ...]:
    """Reference tables the derived columns need."""
    return (DOMAIN_CATEGORIES,) if "category" in columns else ()
