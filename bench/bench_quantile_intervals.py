"""Accuracy and interval coverage of released quantiles, at the catalog's noise.

    .venv/bin/python bench/bench_quantile_intervals.py [--draws 400]
    # the walk before quantiles said what they knew (commit 2d4bf72), for comparison:
    mkdir -p /tmp/before && git archive 2d4bf72 kr_reports | tar -x -C /tmp/before
    .venv/bin/python bench/bench_quantile_intervals.py --code /tmp/before

For each catalog report with quantiles, cells of several shapes and sizes are drawn afresh
for every noise draw, and one cell's tree is noised as the plan says (same mechanism and
sd, numpy leaf counts, no Spark). Printed per shape and size: the draws published (the
rest are flagged insufficient; the walk before published every cell), then per quantile
over published draws the mean relative error of the value against the cell's true
quantile, its mean signed error, the coverage of the 95% interval and its mean width as a
share of the bounds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
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


def leaf_counts(values: np.ndarray, lower: float, upper: float, leaves: int) -> np.ndarray:
    """transforms.bounding.tree_leaf_index (linear scale) in numpy."""
    share = (np.clip(values, lower, upper) - lower) / (upper - lower)
    return np.bincount(np.minimum(share * leaves, leaves - 1).astype(int), minlength=leaves)


def released(noising, metric, tree):
    """[(value, low, high)] per quantile, or None where the release publishes none."""
    m = metric.metric
    if hasattr(tree, "place"):
        if noising.is_insufficient(tree, metric):
            return None
        return [tree.place(q).values(m.lower, m.upper, m.quantile_scale) for q in m.quantiles]
    # The walk before: a clamped root as the rows, a rank spread from quantile_rank_sd.
    rows = tree.total()
    spread = noising.Z * noising.quantile_rank_sd(metric.part("tree").sd) / rows if rows > 0 else 1.0
    out = []
    for q in m.quantiles:
        value = tree.quantile(q, m.lower, m.upper, m.quantile_scale)
        low = tree.quantile(max(q - spread, 0.0), m.lower, m.upper, m.quantile_scale)
        high = tree.quantile(min(q + spread, 1.0), m.lower, m.upper, m.quantile_scale)
        out.append((value, min(low, value), max(high, value)))
    return out


def measure(noising, leaves_per_tree: int, metric, draw, rows: int, draws: int) -> str:
    m, noise = metric.metric, metric.part("tree")
    rng = np.random.RandomState(rows)
    results, truths = [], []
    for _ in range(draws):
        values = np.clip(draw(rng, rows), m.lower, m.upper)
        tree = noising.NoisyTree(leaf_counts(values, m.lower, m.upper, leaves_per_tree), noise.sampler(rng),
                                 noise.sd)
        result = released(noising, metric, tree)
        if result is not None:
            results.append(result)
            truths.append(np.quantile(values, m.quantiles))
    published = f"published {len(results):>3}/{draws}"
    if not results:
        return published
    got, truth = np.array(results), np.array(truths)
    error = got[:, :, 0] / np.maximum(truth, 1e-9) - 1
    covered = (got[:, :, 1] <= truth) & (truth <= got[:, :, 2])
    width = (got[:, :, 2] - got[:, :, 1]) / (m.upper - m.lower)
    columns = [f"p{round(q * 100)} err {np.abs(error[:, j]).mean():6.1%} (signed {error[:, j].mean():+7.1%}) "
               f"cover {covered[:, j].mean():6.1%} width {width[:, j].mean():4.0%}"
               for j, q in enumerate(m.quantiles)]
    return f"{published}  " + "  ".join(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=400, help="cells (each with its own noise) per figure")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose kr_reports is measured")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    from kr_reports import noising
    from kr_reports.config import load_pipeline_config, load_report_specs
    from kr_reports.dp import TREE_LEAVES, plan_aggregation

    config = ROOT / "config"
    pipeline = load_pipeline_config(config)
    specs = {s.name: s for s in load_report_specs(config)}
    for (report, name), shapes in CELLS.items():
        metric = next(m for m in plan_aggregation(specs[report].aggregation, pipeline.regions).metrics
                      if m.name == name)
        print(f"{report}.{name}: [{metric.metric.lower:g}, {metric.metric.upper:g}], "
              f"tree noise sd {metric.part('tree').sd:.1f} rows per node")
        for shape, (draw, sizes) in shapes.items():
            for rows in sizes:
                line = measure(noising, TREE_LEAVES, metric, draw, rows, args.draws)
                print(f"  {shape:<29} {rows:>7,} rows  {line}", flush=True)
    print(f"reproduce: .venv/bin/python bench/bench_quantile_intervals.py --draws {args.draws}"
          + (f" --code {args.code}" if args.code != ROOT else ""))


if __name__ == "__main__":
    main()
