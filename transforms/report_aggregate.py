"""A report plan's true aggregates on Spark: bounded, per cell, before any noise.

One repartition by subscriber bounds every contribution; the per-cell
aggregates, bucket counts (quantile trees, histograms) and the distinct
subscribers per private key are then small partial aggregations of the
bounded frame, which is cached while they are read.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.errors import KrReportsError
from core.noise_plan import TREE_LEAVES, ReportPlan
from transforms.bounding import (
    aggregate_cells,
    bound_contributions,
    bucket_counts,
    encode_metric_inputs,
    filter_public_keys,
    units_per_partition,
)


class MissingReportColumn(KrReportsError, ValueError):
    """A report names a column its input does not have."""


@dataclass(frozen=True)
class TrueAggregates:
    cells: DataFrame  # one row per cell present in the data: keys, distinct_units, rows, sums
    buckets: dict[str, DataFrame]  # metric -> (keys, bucket, rows)
    partitions: DataFrame | None  # private keys -> distinct_units; None without private keys
    bounded: DataFrame  # cached while the aggregates above are read

    def unpersist(self) -> None:
        self.bounded.unpersist()


def _check_columns(df: DataFrame, plan: ReportPlan, unit: str) -> None:
    needed = [unit, *plan.group_columns, *[m.column for m in plan.metric_specs if m.column]]
    missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
    if missing:
        aggregation = plan.aggregation
        raise MissingReportColumn(
            f"aggregation '{aggregation.name}': its input from source '{aggregation.source}' has no column "
            f"{', '.join(repr(c) for c in missing)}"
        )


def report_rows(df: DataFrame, plan: ReportPlan, unit: str) -> DataFrame:
    """Rows the report may use: public keys inside their domains, no empty key or value."""
    _check_columns(df, plan, unit)
    used = [unit, *plan.private_keys, *[m.column for m in plan.metric_specs if m.column]]
    complete = F.lit(True)
    for column in dict.fromkeys(used):
        complete = complete & F.col(column).isNotNull()
    return filter_public_keys(df, plan.public_keys).where(complete)


def aggregate_report(
    df: DataFrame, plan: ReportPlan, unit: str, salt: int, cache: bool = True
) -> TrueAggregates:
    rows = report_rows(df, plan, unit)
    encoded, inputs = encode_metric_inputs(rows, plan.metric_specs, TREE_LEAVES)
    bounds = plan.aggregation.contribution
    groups = list(plan.group_columns)
    bounded = bound_contributions(
        encoded, unit, groups, inputs, bounds.max_groups_per_subscriber, bounds.max_rows_per_group, salt
    )
    if cache and (inputs.buckets or plan.private_keys):
        bounded = bounded.persist()
    partitions = None
    if plan.private_keys:
        selection_bound = plan.aggregation.partition_selection.max_partitions_per_subscriber
        partitions = units_per_partition(bounded, unit, plan.private_keys, selection_bound, salt)
    return TrueAggregates(
        cells=aggregate_cells(bounded, groups, inputs),
        buckets={name: bucket_counts(bounded, groups, name) for name in inputs.buckets},
        partitions=partitions,
        bounded=bounded,
    )


def _empty_input(spark, plan: ReportPlan, unit: str) -> DataFrame:
    """A typed empty frame with the columns the plan reads: lets Spark plan without data."""
    fields = {unit: "string"}
    for key in plan.aggregation.group_by:
        domain = plan.public_keys.get(key.column, ("",))
        fields[key.column] = "bigint" if isinstance(domain[0], int) else "string"
    for metric in plan.metric_specs:
        if metric.column:
            fields[metric.column] = "double"
    schema = ", ".join(f"`{name}` {dtype}" for name, dtype in fields.items())
    return spark.createDataFrame([], schema)


def count_shuffles(spark, plan: ReportPlan, unit: str) -> dict[str, int]:
    """Exchanges in Spark's physical plan of each aggregate, planned on an empty input."""
    aggregates = aggregate_report(_empty_input(spark, plan, unit), plan, unit, salt=0, cache=False)
    frames = {"cells": aggregates.cells, **{f"buckets of {k}": v for k, v in aggregates.buckets.items()}}
    if aggregates.partitions is not None:
        frames["partition selection"] = aggregates.partitions
    return {name: df._jdf.queryExecution().executedPlan().toString().count("Exchange ")
            for name, df in frames.items()}
