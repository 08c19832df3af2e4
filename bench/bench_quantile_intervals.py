"""Accuracy and interval coverage of released quantiles, at the catalog's noise.

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python bench/bench_quantile_intervals.py [--draws 40] [--seed 0]

For each catalog report with quantiles, simulated cells of several shapes and sizes are
released through the project's front door (`Releaser.release`, on a throwaway ledger and
store with an ample budget: bench/scratch_releaser.py), as bench/bench_quantile_scale.py
does. One release per shape: its public keys are `replica` (0 .. draws - 1) and
`cell_rows` (the cell's size), so every (replica, size) is a cell of its own, drawn afresh
and noised once; its one metric is the catalog's quantiles metric (epsilon, bounds, scale,
contribution bounds and accounting as the catalog has them: the same tree noise as the
catalog's plan, checked). Every row has its own subscriber, so bounding keeps every row and
the error is the tree's alone.

Printed per shape and size: the draws published (the rest are flagged
`<metric>_insufficient`), then per quantile over the published draws the mean relative
error of the released value against the cell's true quantile (numpy, on the cell's clamped
values), its mean signed error, the coverage of the released 95% interval
(`_ci95_low`/`_ci95_high`) and its mean width as a share of the bounds.

The previous version of this file (commit e000e6f) noised trees itself, outside the front
door, and could measure an older checkout's walk (`--code`). That comparison is gone: the
walk before had no insufficient flag and no Releaser to release through. What it showed
is recorded in the commit message of 7e6a095 (its p90 48% high on lognormal s=1 cells).
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

from core.noise_plan import MetricPlan, insufficient_column  # noqa: E402
from stages.spark import get_spark  # noqa: E402

SIZES = (2_000, 5_000, 8_000, 10_000, 50_000)
CELLS = {
    ("network_traffic_region_hour", "flow_bytes"): {
        "lognormal s=1.8 (generator)": (lambda r, n: r.lognormal(np.log(24_000), 1.8, n), SIZES),
        "lognormal s=1": (lambda r, n: r.lognormal(np.log(24_000), 1.0, n), SIZES),
        "lognormal s=2": (lambda r, n: r.lognormal(np.log(8_000), 2.0, n), SIZES),
        "exponential": (lambda r, n: r.exponential(40_000, n), SIZES),
        "uniform 0-100k": (lambda r, n: r.uniform(0, 100_000, n), SIZES),
    },
    ("call_activity_cell_area_hour", "duration_s"): {
        "exponential (generator-like)": (lambda r, n: r.exponential(150, n), (200, 1_100, 1_400, 10_000)),
    },
}


def figures(table: pd.DataFrame, truth: pd.DataFrame, plan: MetricPlan, draws: int) -> dict[int, str]:
    """Per cell size: the draws published, then per quantile error, signed error, coverage and width."""
    m = plan.metric
    released = keyed(table).reindex(truth.index)
    flagged = released[insufficient_column(plan.name)].astype("boolean").fillna(True).astype(bool)
    lines = {}
    for size, cells in truth.groupby(level="cell_rows"):
        got = released.loc[cells.index]
        published = ~flagged.loc[cells.index]
        for out in plan.outputs:
            published &= got[out].notna()
        line = f"published {int(published.sum()):>3}/{draws}"
        columns = []
        for q, out in zip(m.quantiles, plan.outputs, strict=True):
            true = cells.loc[published, q].to_numpy(float)
            if not len(true):
                continue
            value, low, high = (got.loc[published, c].to_numpy(float)
                                for c in (out, f"{out}_ci95_low", f"{out}_ci95_high"))
            error = value / np.maximum(true, 1e-9) - 1
            covered = (low <= true) & (true <= high)
            width = (high - low) / (m.upper - m.lower)
            columns.append(f"p{round(q * 100)} err {np.abs(error).mean():6.1%} (signed {error.mean():+7.1%}) "
                           f"cover {covered.mean():6.1%} width {width.mean():4.0%}")
        lines[size] = "  ".join([line, *columns])
    return lines


def main() -> None:
    args = parse_args(__doc__, "draws", 40, "cells (each with its own noise) per figure")
    config = ROOT / "config"
    reports = quantile_reports()
    spark = get_spark("kr-reports-bench-quantile-intervals")
    rng = np.random.default_rng(args.seed)

    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        releases = ScratchReleaser(Path(scratch) / "releases", config)
        for (report, metric), shapes in CELLS.items():
            catalog = reports[report]
            tree = catalog_tree(releases, catalog, metric)
            spec = next(m for m in catalog.metrics if m.name == metric)
            print(f"{report}.{metric}: [{spec.lower:g}, {spec.upper:g}], "
                  f"tree noise sd {tree.sd:.1f} rows per node", flush=True)
            for number, (shape, (draw, sizes)) in enumerate(shapes.items()):
                aggregation = replica_aggregation(catalog, (spec,), sizes, args.draws,
                                                  f"bench-{catalog.name}-intervals-{number}")
                (plan,) = releases.plan(aggregation).metrics
                check_tree_noise((plan,), tree, f"{report}.{metric}")
                rows = simulated_rows(draw, spec.column, sizes, args.draws, rng)
                truth = true_quantiles(rows, spec)
                made = release_cells(releases, spark, rows, aggregation, Path(scratch))
                lines = figures(made.table, truth, plan, args.draws)
                for size in sizes:
                    print(f"  {shape:<29} {size:>7,} rows  {lines[size]}", flush=True)
    print(f"reproduce: PYSPARK_PYTHON=.venv/bin/python .venv/bin/python bench/bench_quantile_intervals.py "
          f"--draws {args.draws} --seed {args.seed}")


if __name__ == "__main__":
    main()
