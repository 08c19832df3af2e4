"""Malformed rows: corrupt a share of a source's rows so that each fails one FieldSpec rule.

Ingest must quarantine exactly these rows; `with_bad_rows` flags them so the generator
can count them (rows in = rows out + quarantined is then checked against a known number).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.schemas import SourceSpec
from synthetic.draws import pick, random_bits, time_text, uniform, uniform_index, weighted_index

# Corruption kinds of inject_bad_rows and the raw values they write.
UNPARSEABLE_VALUES = ("12kb", "n/a", "2026-13-45 99:00")
NOT_ALLOWED_VALUES = ("unknown", "invalid", "?")
PARSED_DTYPES = ("int", "bigint", "double", "date", "timestamp", "boolean")


CORRUPTED = "_corrupted"  # with_bad_rows' flag: the rows it corrupted, counted by the generator


def inject_bad_rows(
    df: DataFrame, source: SourceSpec, rate: float, seed: int, day: dt.date | None
) -> DataFrame:
    """Corrupt one column in about `rate` of the rows, each failing a FieldSpec rule."""
    return with_bad_rows(df, source, rate, seed, day).drop(CORRUPTED)


def with_bad_rows(
    df: DataFrame, source: SourceSpec, rate: float, seed: int, day: dt.date | None
) -> DataFrame:
    """Corrupt one column in about `rate` of the rows, each failing a FieldSpec rule,
    and flag them in a boolean `_corrupted` column (so the count of bad rows is known).

    Kinds, drawn with equal chance among those the source has: a required
    value nulled, an unparseable number/date/time, a negative number, an
    absurd number, an event time outside `day` (daily sources) and a value
    outside `allowed`; then a column among those the kind applies to. The
    draws hash the row's values, so the result is deterministic.
    """
    columns = source.column_names
    row = random_bits(seed, f"bad:{source.name}", *[F.col(c) for c in columns])
    kinds = [kind for kind in corruption_kinds(source, day) if kind]
    weights = [1.0 / len(kinds) / len(kind) for kind in kinds for _ in kind]
    candidates = [candidate for kind in kinds for candidate in kind]
    selected = uniform(seed, "bad:select", F.col("_row")) < F.lit(rate)
    choice = weighted_index(weights, uniform(seed, "bad:kind", F.col("_row")))
    return (
        df.withColumn("_row", row)
        .withColumns(
            {
                "_corruption": F.when(selected, choice).otherwise(F.lit(-1)),
                "_bad_u": uniform(seed, "bad:value", F.col("_row")),
            }
        )
        .select(
            *[corrupt_column(c, candidates) for c in columns],
            (F.col("_corruption") >= F.lit(0)).alias(CORRUPTED),
        )
    )


def corrupt_column(name: str, candidates: Sequence[tuple[str, Column]]) -> Column:
    """Column `name`, replaced where the row's `_corruption` picks a candidate for it."""
    value = F.col(name)
    for i, (column, bad_value) in enumerate(candidates):
        if column == name:
            value = F.when(F.col("_corruption") == F.lit(i), bad_value).otherwise(value)
    return value.cast("string").alias(name)


def corruption_kinds(source: SourceSpec, day: dt.date | None) -> list[list[tuple[str, Column]]]:
    """Per corruption kind, the (column, bad value) candidates it has in `source`."""
    u = F.col("_bad_u")
    negative = F.concat(F.lit("-"), (F.lit(1) + uniform_index(999, u)).cast("string"))
    unparseable = pick(UNPARSEABLE_VALUES, uniform_index(len(UNPARSEABLE_VALUES), u))
    not_allowed = pick(NOT_ALLOWED_VALUES, uniform_index(len(NOT_ALLOWED_VALUES), u))
    fields = source.fields
    kinds = [
        [(f.name, F.lit(None).cast("string")) for f in fields if f.required],
        [(f.name, unparseable) for f in fields if f.dtype in PARSED_DTYPES],
        [(f.name, negative) for f in fields if f.min_value is not None],
        [(f.name, F.lit(absurd_value(f.max_value))) for f in fields if f.max_value is not None],
        [(f.name, not_allowed) for f in fields if f.allowed],
    ]
    if source.event_time is not None:
        kinds.append([(source.event_time, out_of_day_time(day, u))])
    return kinds


def absurd_value(max_value: float) -> str:
    """A number far above `max_value`: 999999, or 10^15 for byte counters."""
    return "999999" if max_value < 999_999 else str(10**15)


def out_of_day_time(day: dt.date | None, u: Column) -> Column:
    """A timestamp outside `day`: the day before, the day after, or in 1970."""
    others = ["1970-01-01"]
    if day is not None:
        others += [(day + dt.timedelta(days=step)).isoformat() for step in (-1, 1)]
    which = uniform_index(len(others), u)
    second = uniform_index(86_400, F.pmod(u * F.lit(7919.0), F.lit(1.0)))
    return time_text(pick(others, which), second)
