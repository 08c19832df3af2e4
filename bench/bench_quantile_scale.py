"""Accuracy: a quantile tree on the linear scale against the log scale, at the catalog's noise.

    .venv/bin/python bench/bench_quantile_scale.py [--seeds 60]

For the two catalog reports with quantiles, the tree of one cell is noised
exactly as their plans say (same mechanism, sd and walk), on synthetic cells
of several sizes: flow bytes lognormal (median 8.1 kB, heavy tail, clamped at
250 kB) and call seconds exponential (mean 150 s, bunched low, clamped at an
hour). Prints the mean relative error of each released quantile against the
cell's true quantile, per scale and cell size. No Spark: the Spark side of
the mapping is tested against this one (tests/test_quantiles.py).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kr_reports.config import load_pipeline_config, load_report_specs  # noqa: E402
from kr_reports.dp import TREE_LEAVES, plan_aggregation  # noqa: E402
from kr_reports.noising import NoisyTree  # noqa: E402

CELLS = {
    ("network_traffic_region_hour", "flow_bytes"): (
        lambda rng, n: rng.lognormal(mean=9.0, sigma=1.6, size=n), (200, 1_400, 10_000)),
    ("call_activity_cell_area_hour", "duration_s"): (
        lambda rng, n: rng.exponential(scale=150.0, size=n), (50, 200, 1_400, 10_000)),
}


def leaf_counts(values: np.ndarray, lower: float, upper: float, scale: str) -> np.ndarray:
    """transforms.bounding.tree_leaf_index in numpy."""
    offset = np.clip(values, lower, upper) - lower
    share = np.log1p(offset) / math.log1p(upper - lower) if scale == "log" else offset / (upper - lower)
    leaves = np.clip(np.floor(share * TREE_LEAVES), 0, TREE_LEAVES - 1).astype(int)
    return np.bincount(leaves, minlength=TREE_LEAVES)


def mean_errors(metric_plan, draw, rows: int, scale: str, seeds: int) -> list[float]:
    m, noise = metric_plan.metric, metric_plan.part("tree")
    errors = np.zeros(len(m.quantiles))
    for seed in range(seeds):
        values = np.clip(draw(np.random.default_rng(seed), rows), m.lower, m.upper)
        tree = NoisyTree(leaf_counts(values, m.lower, m.upper, scale), noise.sampler(seed), noise.sd)
        released = np.array([tree.quantile(q, m.lower, m.upper, scale) for q in m.quantiles])
        truth = np.quantile(values, m.quantiles)
        errors += np.abs(released - truth) / np.maximum(truth, 1e-9)
    return list(errors / seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=60, help="noise draws (and cells) per figure")
    args = parser.parse_args()
    config = ROOT / "config"
    pipeline = load_pipeline_config(config)
    specs = {s.name: s for s in load_report_specs(config)}
    for (report, metric), (draw, sizes) in CELLS.items():
        plan = next(m for m in plan_aggregation(specs[report].aggregation, pipeline.regions).metrics if m.name == metric)
        quantiles = "  ".join(f"p{round(q * 100)}" for q in plan.metric.quantiles)
        print(f"{report}.{metric}: noise sd {plan.part('tree').sd:.1f} rows per node; "
              f"mean relative error ({quantiles})")
        for rows in sizes:
            for scale in ("linear", "log"):
                errors = mean_errors(plan, draw, rows, scale, args.seeds)
                print(f"  {rows:>6,} rows  {scale:<6}  " + "  ".join(f"{e:8.1%}" for e in errors))
    print(f"reproduce: .venv/bin/python bench/bench_quantile_scale.py --seeds {args.seeds}")


if __name__ == "__main__":
    main()
