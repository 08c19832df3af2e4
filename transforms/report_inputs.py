"""What a report reads: a source's protected rows with the keys reports group by.

Event sources get the hour of the event and the subscriber's profile
attributes (region, age band, plan); a row whose subscriber has no profile
keeps empty keys, and public-key filtering drops it before aggregation.
Columns a report names but no source has are derived here from protected
columns, as core.report_columns declares (the policy judges each as the
column it comes from).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.config import UNIT_COLUMN
from core.report_columns import (
    ADDON_PREFIX,
    ADDONS,
    CATEGORY,
    CELL_AREA,
    CELL_AREA_LENGTH,
    CELL_ID,
    DOMAIN,
    DOMAIN_CATEGORIES,
    EVENT_HOUR,
    HOUR,
    PROFILE_ATTRIBUTES,
)
from transforms.generalize import with_domain_category

UNIT = UNIT_COLUMN


def report_input(source: str, frames: Mapping[str, DataFrame], columns: Iterable[str] = ()) -> DataFrame:
    """The source's rows, with `hour`, profile attributes and the derived `columns` asked for."""
    df = frames[source]
    if source != "subscribers":
        profile = frames["subscribers"]
        attributes = [c for c in PROFILE_ATTRIBUTES if c in profile.columns and c not in df.columns]
        df = df.join(profile.select(UNIT, *attributes), on=UNIT, how="left")
    if source in EVENT_HOUR:
        df = df.withColumn(HOUR, F.hour(EVENT_HOUR[source]))
    for column in dict.fromkeys(columns):
        if column not in df.columns:
            df = _with_derived(df, column, frames)
    return df


def _with_derived(df: DataFrame, column: str, frames: Mapping[str, DataFrame]) -> DataFrame:
    if column == CATEGORY and DOMAIN in df.columns and DOMAIN_CATEGORIES in frames:
        return with_domain_category(df, DOMAIN, frames[DOMAIN_CATEGORIES], out_col=CATEGORY)
    if column == CELL_AREA and CELL_ID in df.columns:
        return df.withColumn(CELL_AREA, F.substring(CELL_ID, 1, CELL_AREA_LENGTH))
    if column.startswith(ADDON_PREFIX) and ADDONS in df.columns:
        return df.withColumn(column, has_addon(F.col(ADDONS), column.removeprefix(ADDON_PREFIX)))
    return df  # not derivable here: the aggregation names the missing column


def has_addon(addons, name: str):
    """1 when the ';'-joined add-on list holds `name`, else 0 (no add-ons: 0)."""
    listed = F.array_contains(F.split(F.coalesce(addons, F.lit("")), ";"), name)
    return F.when(listed, F.lit(1)).otherwise(F.lit(0))


def sources_read(source: str) -> tuple[str, ...]:
    return (source,) if source == "subscribers" else (source, "subscribers")


def references_read(columns: Iterable[str]) -> tuple[str, ...]:
    """Reference tables the derived columns need."""
    return (DOMAIN_CATEGORIES,) if CATEGORY in columns else ()
