"""Simulated quantile cells for the quantile benchmarks, released through the front door.

One release holds every simulated cell: its public keys are `replica` (0 .. replicas - 1)
and `cell_rows` (the cell's size), so each (replica, size) is an independent cell with its
own noise. Every row has its own subscriber, so bounding keeps every row and the error
measured is the tree's alone.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from core.config import Aggregation, GroupKey, Metric
from core.mechanisms import IntegerNoise

KEYS = ["replica", "cell_rows"]
UNIT = "subscriber"


def replica_aggregation(catalog: Aggregation, metrics: Sequence[Metric], sizes: tuple[int, ...],
                        replicas: int, name: str) -> Aggregation:
    """Cells (replica, cell_rows) with the given metrics, bounded as the catalog bounds them.

    approx_dp splits an aggregation's delta over its metrics: each keeps the catalog's share.
    """
    return Aggregation(
        name=name,
        source=catalog.source,
        group_by=(GroupKey(column="replica", range=(0, replicas - 1)),
                  GroupKey(column="cell_rows", values=sizes)),
        contribution=catalog.contribution,
        metrics=tuple(metrics),
        accounting=catalog.accounting,
        delta=catalog.delta * len(metrics) / len(catalog.metrics),
    )


def simulated_rows(draw, column: str, sizes: tuple[int, ...], replicas: int, rng) -> pd.DataFrame:
    """Every cell's values, one subscriber per row."""
    frames = [
        pd.DataFrame({"replica": replica, "cell_rows": rows, column: draw(rng, rows)})
        for replica in range(replicas) for rows in sizes
    ]
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(0, UNIT, [f"s{i}" for i in range(len(frame))])
    return frame


def true_quantiles(rows: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """Per cell, the quantiles of its clamped values (the values the release bounds)."""
    clamped = rows.assign(value=rows[metric.column].clip(metric.lower, metric.upper))
    truth = clamped.groupby(KEYS)["value"].quantile(list(metric.quantiles)).unstack()
    truth.columns = list(metric.quantiles)
    return truth


def release_cells(releases, spark, rows: pd.DataFrame, aggregation: Aggregation, scratch: Path):
    """The simulated rows released through the scratch front door (via Parquet, as a zone is read)."""
    path = scratch / f"{aggregation.name}-{len(rows)}.parquet"
    rows.to_parquet(path, index=False)
    return releases.release(spark.read.parquet(str(path)), aggregation)


def keyed(table: pd.DataFrame) -> pd.DataFrame:
    """A release table indexed by (replica, cell_rows)."""
    return table.astype({k: "int64" for k in KEYS}).set_index(KEYS)


def check_tree_noise(plans, catalog_tree, what: str) -> None:
    """The benchmark's trees must be noised exactly as the catalog's."""
    if any(plan.part("tree") != catalog_tree for plan in plans):
        raise RuntimeError(f"{what}: the bench's tree noise differs from the catalog's")


def parse_args(doc: str, count: str, default: int, help_text: str) -> argparse.Namespace:
    """The quantile benchmarks' options: cells per figure (`--<count>`), seed and scratch folder."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(f"--{count}", type=int, default=default, help=help_text)
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated values (not of the noise)")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    if getattr(args, count) < 1:
        parser.error(f"--{count} must be at least 1")
    return args


def catalog_tree(releases, catalog: Aggregation, metric: str) -> IntegerNoise:
    """The tree noise the catalog's plan gives a quantiles metric (what the benchmarks must match)."""
    return next(m for m in releases.plan(catalog).metrics if m.name == metric).part("tree")


def quantile_reports() -> dict[str, Aggregation]:
    """Two reports with quantiles, at the noise the catalog gave them before its daily re-size.

    The daily catalog carries no quantiles (a tree needs more rows per cell than a daily budget
    affords); these keep the benchmarks measuring the tree at a noise where cells publish:
    pure DP, the network report's flow bytes at epsilon 0.3 (6 cells x 8 rows a subscriber) and
    the call report's seconds at epsilon 0.4 (3 x 3).
    """
    def report(name, source, bounds, metric) -> Aggregation:
        return Aggregation.model_validate({
            "name": name, "source": source, "group_by": [{"column": "hour", "values": "hours"}],
            "contribution": {"max_groups_per_subscriber": bounds[0], "max_rows_per_group": bounds[1]},
            "metrics": [metric]})

    return {
        "network_traffic_region_hour": report("network_traffic_region_hour", "network_flows", (6, 8), {
            "name": "flow_bytes", "kind": "quantiles", "column": "bytes", "lower": 0, "upper": 250_000,
            "quantiles": [0.5, 0.9], "epsilon": 0.3}),
        "call_activity_cell_area_hour": report("call_activity_cell_area_hour", "call_records", (3, 3), {
            "name": "duration_s", "kind": "quantiles", "column": "duration_s", "lower": 0, "upper": 3600,
            "quantiles": [0.5, 0.9], "epsilon": 0.4}),
    }
