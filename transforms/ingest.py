"""Ingest: type landing text into the canonical schema and flag unusable rows.

Landing files hold text. Each column is parsed with Spark's `try_` functions,
so a bad value becomes a reason instead of an exception, and every row ends
up either in the raw zone or in quarantine with machine-readable reasons.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.errors import KrReportsError
from core.schemas import FieldSpec, SourceSpec, TimeRange, describe_column_names

TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"
DATE_FORMAT = "yyyy-MM-dd"
REASONS_COLUMN = "_reasons"


class SchemaMismatch(KrReportsError, ValueError):
    """A landing dataset's columns are not the canonical ones."""


def check_landing_columns(df: DataFrame, source: SourceSpec, location: str) -> None:
    """Fail with the file and column names when landing columns differ from the spec."""
    expected, actual = source.column_names, df.columns
    missing = [c for c in expected if c not in actual]
    unexpected = [c for c in actual if c not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unexpected:
            parts.append(f"unclassified column(s) {describe_column_names(unexpected)}")
        raise SchemaMismatch(
            f"{location}: {'; '.join(parts)} (expected for {source.name}: {', '.join(expected)})"
        )


def _blank_to_null(raw: Column) -> Column:
    trimmed = F.trim(raw.cast("string"))
    return F.when(trimmed == "", F.lit(None)).otherwise(trimmed)


def _parse(text: Column, dtype: str) -> Column:
    if dtype == "string":
        return text
    if dtype == "timestamp":
        return F.try_to_timestamp(text, F.lit(TIMESTAMP_FORMAT))
    if dtype == "date":
        return F.try_to_date(text, DATE_FORMAT)
    if dtype == "boolean":
        return F.lower(text).try_cast("boolean")
    return text.try_cast(dtype)


def _reasons_for(field: FieldSpec, text: Column, typed: Column) -> list[Column]:
    """One nullable reason Column per rule of the field; null means the rule holds."""
    name = field.name
    missing = text.isNull()
    unparseable = text.isNotNull() & typed.isNull()
    reasons = [F.when(unparseable, F.lit(f"unparseable:{name}"))]
    if field.required:
        reasons.append(F.when(missing, F.lit(f"missing_required:{name}")))
    if field.min_value is not None:
        reasons.append(F.when(typed < F.lit(field.min_value), F.lit(f"below_min:{name}")))
    if field.max_value is not None:
        reasons.append(F.when(typed > F.lit(field.max_value), F.lit(f"above_max:{name}")))
    if field.allowed is not None:
        outside = typed.isNotNull() & ~typed.isin(*field.allowed)
        reasons.append(F.when(outside, F.lit(f"not_allowed:{name}")))
    if field.pattern is not None:
        malformed = text.isNotNull() & ~text.rlike(field.pattern.anchored)
        reasons.append(F.when(malformed, F.lit(f"bad_{field.pattern.name}:{name}")))
    return reasons


def _outside_day(typed: Column, name: str, day: dt.date) -> Column:
    start = dt.datetime.combine(day, dt.time())
    end = start + dt.timedelta(days=1)
    outside = (typed < F.lit(start)) | (typed >= F.lit(end))
    return F.when(outside, F.lit(f"outside_day:{name}"))


def _implausible(typed: Column, name: str, plausible: TimeRange) -> Column:
    outside = (typed < F.lit(plausible.start)) | (typed >= F.lit(plausible.end))
    return F.when(outside, F.lit(f"implausible_time:{name}"))


def with_typed_and_reasons(
    df: DataFrame, source: SourceSpec, day: dt.date | None, plausible: TimeRange | None = None
) -> DataFrame:
    """Typed canonical columns, the original row as JSON (`_record`), and `_reasons`.

    `_reasons` lists every broken rule of the row (empty for a usable row), in
    field order, so the first reason is stable and all of them are kept. With
    `plausible`, an event time outside it is a reason too, whether or not a
    `day` is given (a clock at 0 or a counter read as seconds is not an event).
    """
    texts = {f.name: _blank_to_null(F.col(f.name)) for f in source.fields}
    typed = {f.name: _parse(texts[f.name], f.dtype) for f in source.fields}
    reasons: list[Column] = []
    for field in source.fields:
        reasons.extend(_reasons_for(field, texts[field.name], typed[field.name]))
        if day is not None and field.name == source.event_time:
            reasons.append(_outside_day(typed[field.name], field.name, day))
        if plausible is not None and field.name == source.event_time:
            reasons.append(_implausible(typed[field.name], field.name, plausible))
    return df.select(
        *[typed[f.name].alias(f.name) for f in source.fields],
        F.to_json(F.struct(*[F.col(f.name) for f in source.fields])).alias("_record"),
        F.filter(F.array(*reasons), lambda r: r.isNotNull()).alias(REASONS_COLUMN),
    )


def filter_usable(flagged: DataFrame, source: SourceSpec) -> DataFrame:
    """Rows that broke no rule, in the canonical schema."""
    return flagged.where(F.size(REASONS_COLUMN) == 0).select(*source.column_names)


def filter_quarantined(flagged: DataFrame, source: SourceSpec) -> DataFrame:
    """Rows that broke a rule: source name, first reason, all reasons, the original record."""
    return flagged.where(F.size(REASONS_COLUMN) > 0).select(
        F.lit(source.name).alias("source"),
        F.element_at(REASONS_COLUMN, 1).alias("reason"),
        F.col(REASONS_COLUMN).alias("reasons"),
        F.col("_record").alias("record"),
    )
