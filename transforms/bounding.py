"""Contribution bounding and per-cell aggregation for differentially private reports.

A subscriber's influence on a release is bounded before anything is summed:
at most `max_groups` cells per subscriber (chosen uniformly at random among
that subscriber's cells), at most `max_rows` rows per cell (also random),
and each value clamped to the spec's bounds. All windows are partitioned by
the subscriber, so after one repartition the whole bounding needs no further
shuffle; only the final per-cell aggregation shuffles (a small frame).

"Random" here is a keyed hash of the row with a per-release secret salt:
uniform over choices, yet stable if Spark re-executes a task, so a retried
task cannot change which rows were kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

ROWS_COLUMN = "rows"


def _salted_hash(salt: int, columns: Sequence[str]) -> Column:
    return F.xxhash64(F.lit(salt), *[F.col(c) for c in columns])


def filter_public_keys(df: DataFrame, public_keys: Mapping[str, Sequence]) -> DataFrame:
    """Drop rows whose group key is outside the declared public domain."""
    in_domain = F.lit(True)
    for column, values in public_keys.items():
        in_domain = in_domain & F.col(column).isin(list(values))
    return df.where(in_domain)


def bound_contributions(
    df: DataFrame,
    unit: str,
    groups: Sequence[str],
    clamps: Mapping[str, tuple[int, int]],
    max_groups: int,
    max_rows: int,
    salt: int,
) -> DataFrame:
    """One row per (unit, group) kept: bounded row count and clamped value sums.

    Output columns: unit, *groups, rows, and `<value>` (sum of clamped values)
    for each value column in `clamps`.
    """
    keys = [unit, *groups]
    by_unit = df.repartition(F.col(unit))
    row_order = Window.partitionBy(*keys).orderBy(_salted_hash(salt, df.columns))
    group_order = Window.partitionBy(unit).orderBy(_salted_hash(salt, keys))
    clamped = [
        F.least(F.greatest(F.col(c).cast("bigint"), F.lit(lo)), F.lit(hi)).alias(c)
        for c, (lo, hi) in clamps.items()
    ]
    kept_rows = (
        by_unit.select(*[F.col(k) for k in keys], *clamped)
        .withColumn("_row_rank", F.row_number().over(row_order.rowsBetween(
            Window.unboundedPreceding, Window.currentRow)))
        .where(F.col("_row_rank") <= max_rows)
    )
    per_group = kept_rows.groupBy(*keys).agg(
        F.count(F.lit(1)).alias(ROWS_COLUMN),
        *[F.sum(c).alias(c) for c in clamps],
    )
    return (
        per_group.withColumn("_group_rank", F.row_number().over(group_order))
        .where(F.col("_group_rank") <= max_groups)
        .select(*keys, ROWS_COLUMN, *clamps)
    )


def aggregate_cells(bounded: DataFrame, groups: Sequence[str], values: Sequence[str]) -> DataFrame:
    """Per cell: distinct units (one bounded row each), rows, and value sums."""
    return bounded.groupBy(*groups).agg(
        F.count(F.lit(1)).alias("distinct_units"),
        F.sum(ROWS_COLUMN).alias(ROWS_COLUMN),
        *[F.sum(v).alias(v) for v in values],
    )


def with_all_public_cells(
    cells: DataFrame, public_keys: Mapping[str, Sequence], measures: Sequence[str]
) -> DataFrame:
    """Every combination of public keys, empty cells as zeros, sorted by key."""
    spark = cells.sparkSession
    grid = None
    for column, values in public_keys.items():
        axis = spark.createDataFrame([(v,) for v in values], [column])
        grid = axis if grid is None else grid.crossJoin(axis)
    groups = list(public_keys)
    return (
        grid.join(cells, on=groups, how="left")
        .select(*groups, *[F.coalesce(F.col(m), F.lit(0)).cast("bigint").alias(m) for m in measures])
        .orderBy(*groups)
    )
