"""Accuracy: a quantile tree on the linear scale against the log scale, at the catalog's noise.

    .venv/bin/python bench/bench_quantile_scale.py [--replicas 60] [--seed 0]

For the two catalog reports with quantiles, simulated cells of several sizes
are released through the project's front door (`Releaser.release`, on a
throwaway ledger and store with an ample budget: bench/scratch_releaser.py):
flow bytes lognormal (median 8.1 kB, heavy tail, clamped at 250 kB) and call
seconds exponential (mean 150 s, bunched low, clamped at an hour).

One release per report holds every cell: its public keys are `replica`
(0 .. replicas - 1) and `cell_rows` (the cell's size), so each (replica, size)
is an independent cell, and its two metrics are the catalog's quantiles metric
on the linear and on the log scale, each with the catalog's epsilon, bounds and
contribution bounds: the same tree noise as the catalog's plan (checked). Every
row has its own subscriber, so bounding keeps every row and the error is the
tree's alone. Prints the mean relative error of each released quantile against
the cell's true quantile (of its clamped values), per scale and cell size, over
the replicas; cells released without a value are counted, not averaged.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratch_releaser import ScratchReleaser  # noqa: E402
from simulated_cells import (  # noqa: E402
    catalog_tree,
    check_tree_noise,
    keyed,
    parse_args,
    quantile_reports,
    release_cells,
    replica_aggregation,
    simulated_rows,
    true_quantiles,
)

from core.config import Aggregation, Metric  # noqa: E402
from core.noise_plan import MetricPlan  # noqa: E402
from stages.spark import get_spark  # noqa: E402

CELLS = {
    ("network_traffic_region_hour", "flow_bytes"): (
        lambda rng, n: rng.lognormal(mean=9.0, sigma=1.6, size=n), (200, 1_400, 10_000)),
    ("call_activity_cell_area_hour", "duration_s"): (
        lambda rng, n: rng.exponential(scale=150.0, size=n), (50, 200, 1_400, 10_000)),
}
SCALES = ("linear", "log")


def scale_metrics(catalog: Aggregation, metric: str) -> tuple[Metric, ...]:
    """The catalog metric once per scale."""
    spec = next(m for m in catalog.metrics if m.name == metric)
    return tuple(spec.model_copy(update={"name": f"{metric}_{scale}", "quantile_scale": scale})
                 for scale in SCALES)


def _released_values(table: pd.DataFrame, cells: pd.Index, column: str) -> pd.Series:
    """A released column as floats on the given cells; a missing cell or null value is NaN."""
    return pd.to_numeric(keyed(table)[column].reindex(cells), errors="coerce").astype("float64")


def _flagged(table: pd.DataFrame, metric: MetricPlan, cells: pd.Index) -> int:
    """Cells a release marks as too few rows for its quantiles (`<metric>..._insufficient`), if it does."""
    flags = [c for c in table.columns if c.startswith(metric.name) and c.endswith("_insufficient")]
    if not flags:
        return 0
    return int(keyed(table)[flags].reindex(cells).fillna(False).astype(bool).any(axis=1).sum())


def scale_errors(table: pd.DataFrame, truth: pd.DataFrame, metric: MetricPlan) -> dict[int, str]:
    """Per cell size: mean relative error per quantile over the cells released with a value."""
    lines = {}
    for size, cells in truth.groupby(level="cell_rows"):
        figures, missing = [], 0
        for q, column in zip(metric.metric.quantiles, metric.outputs, strict=True):
            value, true = _released_values(table, cells.index, column), cells[q].astype("float64")
            valued = value.notna()
            missing += int((~valued).sum())
            error = ((value - true).abs() / np.maximum(true, 1e-9))[valued]
            figures.append(f"{error.mean():8.1%}" if valued.any() else "     n/a")
        line = "  ".join(figures)
        if missing:
            line += f"  ({missing} values missing over {len(cells)} cells)"
        flagged = _flagged(table, metric, cells.index)
        if flagged:
            line += f"  ({flagged} cells marked insufficient)"
        lines[size] = line
    return lines


def main() -> None:
    args = parse_args(__doc__, "replicas", 60, "cells (and noise draws) per figure")
    config = ROOT / "config"
    reports = quantile_reports()
    spark = get_spark("kr-reports-bench-quantile-scale")
    rng = np.random.default_rng(args.seed)

    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        releases = ScratchReleaser(Path(scratch) / "releases", config)
        for (report, metric), (draw, sizes) in CELLS.items():
            catalog = reports[report]
            tree = catalog_tree(releases, catalog, metric)
            aggregation = replica_aggregation(catalog, scale_metrics(catalog, metric), sizes, args.replicas,
                                              f"bench-{catalog.name}-scales")
            plans = {m.metric.quantile_scale: m for m in releases.plan(aggregation).metrics}
            check_tree_noise(plans.values(), tree, f"{report}.{metric}")

            spec = plans["linear"].metric
            rows = simulated_rows(draw, spec.column, sizes, args.replicas, rng)
            made = release_cells(releases, spark, rows, aggregation, Path(scratch))
            truth = true_quantiles(rows, spec)

            quantiles = "  ".join(f"p{round(q * 100)}" for q in spec.quantiles)
            print(f"{report}.{metric}: noise sd {tree.sd:.1f} rows per node; "
                  f"mean relative error over {args.replicas} cells ({quantiles})")
            errors = {scale: scale_errors(made.table, truth, plan) for scale, plan in plans.items()}
            for size in sizes:
                for scale in SCALES:
                    print(f"  {size:>6,} rows  {scale:<6}  {errors[scale][size]}")
    print(f"reproduce: .venv/bin/python bench/bench_quantile_scale.py --replicas {args.replicas} "
          f"--seed {args.seed}")


if __name__ == "__main__":
    main()
