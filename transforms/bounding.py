"""Contribution bounding and per-cell aggregation for differentially private reports.

A subscriber's influence on a release is bounded before anything is summed:
at most `max_groups` cells per subscriber (chosen uniformly at random among
that subscriber's cells), at most `max_rows` rows per cell (also random),
and each value encoded as an integer, then clamped to the very integer
bounds the plan's sensitivity is computed from (core.noise_plan, core.kinds).
Every window is partitioned by the subscriber, so after one repartition the
whole bounding needs no further shuffle; only the final per-cell
aggregation shuffles (partial aggregates, a small frame).

"Random" here is a keyed hash with a per-release secret salt, never
`rand()` or `monotonically_increasing_id()`: those depend on which task
holds a row and in what order, which a retried task or another partitioning
of the input changes: a retry could keep other rows than the first attempt
did, and a stage reading output of both attempts could then hold more of a
subscriber than the bounds allow. A hash is a function of the row alone:

- rows: a row's priority hashes (salt, unit, cell, encoded values, copy),
  where `copy` numbers identical rows 1..n. Without it, identical rows share
  one priority and are kept or dropped together: 9 identical rows and 1 rare
  one would keep the rare one half the time, not a tenth. Which physical row
  gets which number is Spark's choice and may differ between attempts, but
  the rows are identical, so the numbered rows, their priorities and the
  rows kept are the same every time. Every row of a cell has a distinct
  input, so the `max_rows` lowest priorities are a uniform choice of rows.
- cells: a cell's priority hashes (salt, unit, cell), distinct per cell of
  a subscriber, so the `max_groups` lowest are a uniform choice of cells,
  whatever rows each holds.

Ties (a 64-bit collision) are broken by the row's content, so the order is
total and even they are stable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from core.config import Metric
from core.kinds import BUCKET, ROWS, UNITS, Aggregate, Encoding, fixed_point_bounds, squares_column

ROWS_COLUMN = ROWS
UNITS_COLUMN = UNITS
BUCKET_COLUMN = BUCKET


@dataclass(frozen=True)
class EncodedInputs:
    """Integer per-row columns, by how a cell aggregates them."""

    sums: tuple[str, ...] = ()  # summed
    squares: tuple[str, ...] = ()  # summed, and their squares summed into squares_column(name)
    buckets: tuple[str, ...] = ()  # bucket ids, counted per (cell, bucket)


def _salted_hash(salt: int, columns: Sequence[str]) -> Column:
    return F.xxhash64(F.lit(salt), *[F.col(c) for c in columns])


def filter_public_keys(df: DataFrame, public_keys: Mapping[str, Sequence]) -> DataFrame:
    """Drop rows whose group key is outside the declared public domain."""
    in_domain = F.lit(True)
    for column, values in public_keys.items():
        in_domain = in_domain & F.col(column).isin(list(values))
    return df.where(in_domain)


def _clamped(metric: Metric) -> Column:
    value = F.col(metric.column).cast("double")
    return F.least(F.greatest(value, F.lit(float(metric.lower))), F.lit(float(metric.upper)))


def _fixed_point(metric: Metric) -> Column:
    """The value in fixed point, rounded half up, THEN clamped to the plan's integer bounds.

    Clamping last is what makes the plan's sensitivity hold whatever the rounding does: a
    row's integer is inside [low, high] from core.kinds.fixed_point_bounds by
    construction. The first clamp, in doubles, keeps the cast to bigint in range (ANSI mode
    fails on overflow); the second, in integers, is exact even where a double is not (2^53).
    """
    low, high = fixed_point_bounds(metric)
    value, precision = F.col(metric.column).cast("double"), metric.precision
    # Dividing for a coarser unit keeps whole units exact (2500 / 1000, not 2500 x 0.001).
    scaled = value * F.lit(10.0**precision) if precision >= 0 else value / F.lit(10.0**-precision)
    in_range = F.least(F.greatest(F.round(scaled), F.lit(float(low))), F.lit(float(high)))
    return F.least(F.greatest(in_range.cast("bigint"), F.lit(low)), F.lit(high))


def _bucket_index(value: Column, edges: Sequence[float]) -> Column:
    """Index of the bin holding the value; values outside go to the first or last bin."""
    index = F.lit(0)
    for i, edge in enumerate(edges[1:-1], start=1):
        index = F.when(value >= F.lit(float(edge)), F.lit(i)).otherwise(index)
    return index


def tree_leaf_index(value: Column, lower: float, upper: float, leaves: int, scale: str = "linear") -> Column:
    """Leaf of a quantile tree: the domain cut into `leaves` equal parts, or equal ratios
    of 1 + (value - lower) on the log scale (core.quantile_tree.tree_value is the inverse)."""
    offset = value - F.lit(float(lower))
    if scale == "log":
        share = F.log1p(offset) / F.lit(math.log1p(upper - lower))
    else:
        share = offset / F.lit(float(upper - lower))
    position = F.floor(share * F.lit(leaves))
    return F.least(F.greatest(position, F.lit(0)), F.lit(leaves - 1)).cast("int")


def _centred_fixed_point(metric: Metric) -> Column:
    """Twice the fixed-point integer v, centred: 2v - (low + high), within +-(high - low)."""
    return F.lit(2) * _fixed_point(metric) - F.lit(sum(fixed_point_bounds(metric)))


def _bin_index(metric: Metric) -> Column:
    return _bucket_index(F.col(metric.column).cast("double"), metric.bins)


def _tree_leaf(metric: Metric, tree_leaves: int) -> Column:
    return tree_leaf_index(_clamped(metric), metric.lower, metric.upper, tree_leaves, metric.quantile_scale)


ENCODERS = {  # a kind's row encoding (core.kinds.Encoding) as a Spark column
    Encoding.FIXED_POINT: lambda metric, leaves: _fixed_point(metric),
    Encoding.CENTRED_FIXED_POINT: lambda metric, leaves: _centred_fixed_point(metric),
    Encoding.TREE_LEAF: _tree_leaf,
    Encoding.BIN_INDEX: lambda metric, leaves: _bin_index(metric),
}


def encode_metric_inputs(
    df: DataFrame, metrics: Sequence[Metric], tree_leaves: int
) -> tuple[DataFrame, EncodedInputs]:
    """Add each metric's integer input column, named after the metric, as its kind's
    `row_input` asks (core.kinds): an encoding, and how the cell aggregates it.

    FIXED_POINT (sums): the value in fixed point, clamped to the integer bounds [low, high].
    CENTRED_FIXED_POINT (means, variances): that integer v doubled and centred,
    2v - (low + high), within +-(high - low). TREE_LEAF (quantiles): the leaf of the
    quantile tree (clamped to the leaves, so any value is in one leaf). BIN_INDEX
    (histograms): the bin index (outside values go to the end bins). Trees and histograms
    count rows, so their sensitivity is rows whatever the value. Counts need no input.
    """
    columns: dict[str, Column] = {}
    by_aggregate: dict[Aggregate, list[str]] = {aggregate: [] for aggregate in Aggregate}
    for m in metrics:
        row_input = m.measure.row_input
        if row_input is not None:
            columns[m.name] = ENCODERS[row_input.encoding](m, tree_leaves)
            by_aggregate[row_input.aggregate].append(m.name)
    inputs = EncodedInputs(sums=tuple(by_aggregate[Aggregate.SUM]),
                           squares=tuple(by_aggregate[Aggregate.SUM_AND_SQUARES]),
                           buckets=tuple(by_aggregate[Aggregate.BUCKETS]))
    return df.withColumns(columns), inputs


def _with_row_priority(df: DataFrame, keys: Sequence[str], values: Sequence[str], salt: int) -> DataFrame:
    """Add `_copy`, which numbers identical rows, and `_priority`, a salted hash distinct for
    every row of a cell (see the module docstring for why this is uniform and stable)."""
    # Identical rows are interchangeable, so the order among them is irrelevant: any column will do.
    copies = Window.partitionBy(*keys, *values).orderBy(*keys)
    numbered = df.withColumn("_copy", F.row_number().over(copies))
    return numbered.withColumn("_priority", _salted_hash(salt, [*keys, *values, "_copy"]))


def bound_contributions(
    df: DataFrame,
    unit: str,
    groups: Sequence[str],
    inputs: EncodedInputs,
    max_groups: int,
    max_rows: int,
    salt: int,
) -> DataFrame:
    """One row per (unit, cell) kept: its bounded row count and input aggregates.

    Output: unit, *groups, rows, a sum per `inputs.sums` and `inputs.squares`
    column (plus `<name>__sq`), and the list of bucket ids per `inputs.buckets`
    column (at most `max_rows` each).
    """
    keys = [unit, *groups]
    values = [*inputs.sums, *inputs.squares, *inputs.buckets]
    by_unit = df.select(*keys, *values).repartition(F.col(unit))
    # Every window below is partitioned by the unit (and more), so none shuffles again.
    row_order = Window.partitionBy(*keys).orderBy("_priority", *values, "_copy")
    group_order = Window.partitionBy(unit).orderBy(_salted_hash(salt, keys), *groups)
    kept_rows = (
        by_unit.transform(lambda rows: _with_row_priority(rows, keys, values, salt))
        .withColumn("_row_rank", F.row_number().over(row_order))
        .where(F.col("_row_rank") <= max_rows)
    )
    per_group = kept_rows.groupBy(*keys).agg(
        F.count(F.lit(1)).alias(ROWS_COLUMN),
        *[F.sum(c).alias(c) for c in (*inputs.sums, *inputs.squares)],
        *[F.sum(F.col(c) * F.col(c)).alias(squares_column(c)) for c in inputs.squares],
        *[F.collect_list(c).alias(c) for c in inputs.buckets],
    )
    return (
        per_group.withColumn("_group_rank", F.row_number().over(group_order))
        .where(F.col("_group_rank") <= max_groups)
        .drop("_group_rank")
    )


def aggregate_cells(bounded: DataFrame, groups: Sequence[str], inputs: EncodedInputs) -> DataFrame:
    """Per cell: distinct units (one bounded row each), rows, and the input sums."""
    summed = [*inputs.sums, *inputs.squares, *[squares_column(c) for c in inputs.squares]]
    return bounded.groupBy(*groups).agg(
        F.count(F.lit(1)).alias(UNITS_COLUMN),
        F.sum(ROWS_COLUMN).alias(ROWS_COLUMN),
        *[F.sum(c).alias(c) for c in summed],
    )


def bucket_counts(bounded: DataFrame, groups: Sequence[str], column: str) -> DataFrame:
    """Rows per (cell, bucket) of one bucket column: the leaves of a tree or a histogram."""
    return (
        bounded.select(*groups, F.explode(column).alias(BUCKET_COLUMN))
        .groupBy(*groups, BUCKET_COLUMN)
        .agg(F.count(F.lit(1)).alias(ROWS_COLUMN))
    )


def units_per_partition(bounded: DataFrame, unit: str, private_keys: Sequence[str],
                        max_partitions: int | None = None, salt: int = 0) -> DataFrame:
    """Distinct units per value of the private keys (the input of partition selection).

    With `max_partitions`, each unit counts in at most that many of its (already bounded)
    private partitions, chosen by a salted hash: the selection's own, tighter bound.
    """
    pairs = bounded.select(unit, *private_keys).distinct()
    if max_partitions is not None:
        order = Window.partitionBy(unit).orderBy(_salted_hash(salt, [unit, *private_keys]), *private_keys)
        pairs = (pairs.withColumn("_partition_rank", F.row_number().over(order))
                 .where(F.col("_partition_rank") <= max_partitions).drop("_partition_rank"))
    return pairs.groupBy(*private_keys).agg(F.count(F.lit(1)).alias(UNITS_COLUMN))
