"""Benchmark: accuracy of every catalog report, released through the front door on generated data.

    .venv/bin/python bench/bench_accuracy.py [--subscribers 200000] [--seed 7] [--workdir DIR]

One day of the five sources is generated for N subscribers (stages.generate), ingested,
protected with demo keys and joined into each report's input by the daily flow's own
stages (stages.daily: ingest, protect_source, report_data) in a scratch data folder.
Every report of config/reports/*.yaml, read at run time, is then released once through
`Releaser.release` on a throwaway ledger and store with an ample budget
(bench/scratch_releaser.py): bounding, aggregation, noise, partition selection,
suppression and roll-up are the real release's.

The truth is plain Spark on the same input rows (those the report may use: public keys
in their domains, no empty key or value), unbounded and unclamped: rows, distinct
subscribers, sums, means, population variances, exact percentiles and histogram bins
per cell. Each metric output is compared in the cells the release published as
`released`, as |noisy - true| / max(|true|, 1):

- median over all released cells, and over released cells whose true distinct
  subscriber count is at least 500 (how many such cells there are is printed);
- bias: the median signed error (noisy - true) / max(|true|, 1) in those large cells,
  where contribution bounding and clamping show as a negative figure;
- cells released / cells: public keys count every cell of the grid (empty ones too);
  private keys every cell the release lists or the data holds, so partitions that
  partition selection did not publish count as not released;
- rolled-up remainder rows sum several true cells and are not compared; a released
  cell whose quantiles were flagged insufficient publishes none and is left out of
  that output's medians (counted under the table).

Target: counts and distinct counts within 10% median relative error in cells of at
least 500 subscribers (PASS/FAIL per row). Sums and quantiles: figures only.

A second table sets each report's contribution bounds against the data: the share of
subscriber-cells within max_groups_per_subscriber and of rows within max_rows_per_group,
each bound alone. What they drop is a bias no epsilon removes, and where it is large it,
not the noise, decides the counts' error.

Prints both tables in Markdown, the wall time and the command that reproduces them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scratch_releaser import ScratchReleaser  # noqa: E402

from core.config import UNIT_COLUMN, ReportSpec, load_report_specs  # noqa: E402
from core.noise_plan import ReportPlan  # noqa: E402
from core.policy import load_policy  # noqa: E402
from stages import daily as stages  # noqa: E402
from stages.catalog import Catalog  # noqa: E402
from stages.generate import write_landing  # noqa: E402
from stages.spark import get_spark  # noqa: E402
from transforms.report_aggregate import report_rows  # noqa: E402
from transforms.report_inputs import sources_read  # noqa: E402

DAY = dt.date(2026, 11, 1)
TARGET = 0.10  # median relative error of counts in large cells
LARGE_CELL = 500  # true distinct subscribers of a "large" cell
COUNT_KINDS = ("count", "count_distinct_subscribers")
UNDEFINED_WHEN_EMPTY = ("mean", "variance", "quantiles")  # a cell with no rows has no true value
RELEASED = "released"
REMAINDER = "remainder"
SUBSCRIBERS = "_true_subscribers"  # the truth's distinct subscribers per cell


@dataclass(frozen=True)
class Accuracy:
    """One report output's accuracy in one release."""

    report: str
    output: str
    kind: str
    cells: int
    released: int
    median_error: float  # over released cells with a value
    median_error_large: float  # over those of at least LARGE_CELL true subscribers
    bias_large: float  # median signed relative error in those cells
    large_cells: int
    noise_sd: float  # median of the release's own noise sd over released cells
    no_value: int  # released cells that publish no value for this output (insufficient quantiles)
    rollups: int  # the release's roll-up rows, not compared

    @property
    def verdict(self) -> str:
        if self.kind not in COUNT_KINDS:
            return "-"
        if self.large_cells == 0:
            return "n/a (no cell >= 500)"
        return "PASS" if self.median_error_large <= TARGET else "FAIL"


# ---- data: the daily flow's own stages ------------------------------------------------------


def prepare_protected(catalog: Catalog, config_dir: Path, specs: list[ReportSpec], subscribers: int,
                      seed: int) -> tuple[dict[str, int], dict[str, float]]:
    """Generate one day, then ingest and protect every source the reports read (demo keys).

    Returns the rows generated per source and the seconds each stage took."""
    start = time.perf_counter()
    generated = write_landing(catalog.landing_root, n_subscribers=subscribers, days=1, seed=seed,
                              start_date=DAY)
    seconds = {"generate": time.perf_counter() - start, "ingest": 0.0, "protect": 0.0}
    policy = load_policy(config_dir)
    needed = {name for spec in specs for name in sources_read(spec.aggregation.source)}
    for source in sorted(needed):
        start = time.perf_counter()
        stages.ingest(catalog, source, DAY, "parquet")
        ingested = time.perf_counter()
        stages.protect_source(catalog, source, DAY, demo=True, policy=policy)
        seconds["ingest"] += ingested - start
        seconds["protect"] += time.perf_counter() - ingested
    return generated["rows"], seconds


# ---- truth: plain Spark on the report's rows ------------------------------------------------


def _histogram_bin(value, edges) -> F.Column:
    """The bin a value falls in: [edge i, edge i+1), values outside in the end bins."""
    index = F.lit(0)
    for i, edge in enumerate(edges[1:-1], start=1):
        index = F.when(value >= F.lit(float(edge)), F.lit(i)).otherwise(index)
    return index


def true_cells(data: DataFrame, plan: ReportPlan) -> pd.DataFrame:
    """Per cell with data: every metric output's true value and the cell's distinct subscribers.

    Two passes, joined on the keys: per (cell, subscriber) then per cell for counts and sums
    (cheaper than countDistinct beside them), and exact percentiles over the cell's rows.
    """
    keys = list(plan.group_columns)
    rows = report_rows(data, plan, UNIT_COLUMN)
    per_unit, per_cell, outputs = [F.count(F.lit(1)).alias("_rows")], [], {}
    for m in plan.metrics:
        spec, name = m.metric, m.name
        value = F.col(spec.column).cast("double") if spec.column else None
        if m.kind == "count":
            outputs[name] = F.col("_rows_sum")
        elif m.kind == "count_distinct_subscribers":
            outputs[name] = F.col(SUBSCRIBERS)
        elif m.kind in ("sum", "mean", "variance"):
            per_unit += [F.sum(value).alias(f"_{name}_s"), F.sum(value * value).alias(f"_{name}_q")]
            per_cell += [F.sum(f"_{name}_s").alias(f"_{name}_s"), F.sum(f"_{name}_q").alias(f"_{name}_q")]
            total, squares, n = F.col(f"_{name}_s"), F.col(f"_{name}_q"), F.col("_rows_sum")
            outputs[name] = {"sum": total, "mean": total / n,
                             "variance": squares / n - (total / n) * (total / n)}[m.kind]
        elif m.kind == "histogram":
            for i, out in enumerate(m.outputs):
                hit = F.when(_histogram_bin(value, spec.bins) == i, 1).otherwise(0)
                per_unit.append(F.sum(hit).alias(f"_{out}"))
                per_cell.append(F.sum(f"_{out}").alias(f"_{out}"))
                outputs[out] = F.col(f"_{out}")
    counts = (
        rows.groupBy(*keys, UNIT_COLUMN).agg(*per_unit)
        .groupBy(*keys).agg(F.count(F.lit(1)).alias(SUBSCRIBERS), F.sum("_rows").alias("_rows_sum"),
                            *per_cell)
        .select(*keys, SUBSCRIBERS, *[column.alias(out) for out, column in outputs.items()])
    )
    quantile_metrics = [m for m in plan.metrics if m.kind == "quantiles"]
    if quantile_metrics:
        exact = rows.groupBy(*keys).agg(*[
            F.percentile(F.col(m.metric.column).cast("double"), list(m.metric.quantiles)).alias(m.name)
            for m in quantile_metrics
        ])
        exact = exact.select(*keys, *[F.col(m.name)[i].alias(out) for m in quantile_metrics
                                      for i, out in enumerate(m.outputs)])
        counts = counts.join(exact, on=keys, how="left")
    return counts.toPandas()


# ---- comparison ------------------------------------------------------------------------------


def _keyed(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Keys as text, so the release's typed keys and Spark's match."""
    return frame.assign(**{k: frame[k].astype("string") for k in keys})


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else math.nan


def compare(report: str, plan: ReportPlan, table: pd.DataFrame, truth: pd.DataFrame) -> list[Accuracy]:
    """Every metric output of one release against the truth, in its released cells."""
    keys = list(plan.group_columns)
    # Roll-up rows (published or suppressed) leave the rolled-up key empty: they are no true cell.
    single = table[keys].notna().all(axis=1) & (table["status"].astype("object") != REMAINDER)
    cells = _keyed(table[single], keys)
    truth = _keyed(truth, keys)
    outputs = [(m, out) for m in plan.metrics for out in m.outputs]
    merged = cells.merge(truth.rename(columns={out: f"{out}__true" for _, out in outputs}),
                         on=keys, how="outer", indicator=True)
    # A cell of the grid (or a selected partition) with no rows has true counts and sums of 0.
    empty = merged["_merge"] == "left_only"
    merged[SUBSCRIBERS] = merged[SUBSCRIBERS].fillna(0)
    released = merged[merged["status"].astype("object") == RELEASED]
    large = released[SUBSCRIBERS].to_numpy(dtype="float64") >= LARGE_CELL
    results = []
    for metric, out in outputs:
        true = merged[f"{out}__true"].astype("float64")
        if metric.kind not in UNDEFINED_WHEN_EMPTY:
            true = true.mask(empty, 0.0)  # no rows: zero counts and sums
        true = true.loc[released.index].to_numpy()
        noisy = released[out].astype("float64").to_numpy()
        signed = (noisy - true) / np.maximum(np.abs(true), 1.0)
        has_value = np.isfinite(signed)
        errors = np.abs(signed)
        results.append(Accuracy(
            report=report, output=out, kind=metric.kind, cells=len(merged), released=len(released),
            median_error=_median(errors[has_value]),
            median_error_large=_median(errors[has_value & large]),
            bias_large=_median(signed[has_value & large]),
            large_cells=int((has_value & large).sum()),
            noise_sd=_median(released[f"{out}_noise_sd"].astype("float64").dropna().to_numpy()),
            no_value=int((~np.isfinite(noisy)).sum()),
            rollups=int((~single).sum()),
        ))
    return results


@dataclass(frozen=True)
class BoundsKept:
    """How much of the true data a report's contribution bounds leave, bound by bound.

    Each share is that bound's alone, on the report's rows: the subscriber-cells within
    `max_groups_per_subscriber` (what distinct counts can reach), and the rows within
    `max_rows_per_group` in every cell a subscriber touches (the row cap before the group cap).
    """

    report: str
    max_groups: int
    cells_per_subscriber: float  # mean true cells a subscriber touches
    groups_kept: float
    max_rows: int
    rows_kept: float


def bounds_kept(data: DataFrame, plan: ReportPlan) -> BoundsKept:
    contribution = plan.aggregation.contribution
    groups, rows = contribution.max_groups_per_subscriber, contribution.max_rows_per_group
    per_cell = report_rows(data, plan, UNIT_COLUMN).groupBy(*plan.group_columns, UNIT_COLUMN).count()
    per_unit = per_cell.groupBy(UNIT_COLUMN).agg(
        F.count(F.lit(1)).alias("cells"), F.sum("count").alias("rows"),
        F.sum(F.least(F.col("count"), F.lit(rows))).alias("capped"))
    total = per_unit.agg(
        F.count(F.lit(1)).alias("units"), F.sum("cells").alias("cells"), F.sum("rows").alias("rows"),
        F.sum("capped").alias("capped"), F.sum(F.least(F.col("cells"), F.lit(groups))).alias("kept"),
    ).first()
    share = lambda part, whole: part / whole if whole else math.nan  # noqa: E731
    return BoundsKept(
        report=plan.aggregation.name, max_groups=groups,
        cells_per_subscriber=share(total["cells"], total["units"]),
        groups_kept=share(total["kept"], total["cells"]), max_rows=rows,
        rows_kept=share(total["capped"], total["rows"]),
    )


def report_accuracy(releases: ScratchReleaser, catalog: Catalog, spec: ReportSpec,
                    day: dt.date) -> tuple[list[Accuracy], BoundsKept]:
    """Release one report of a day's protected data through the front door and compare it with its truth."""
    aggregation = spec.aggregation
    plan = releases.plan(aggregation)
    data = stages.report_data(catalog, aggregation, day).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        made = releases.release(data, aggregation)
        truth = true_cells(data, plan)
        kept = bounds_kept(data, plan)
    finally:
        data.unpersist()
    return compare(spec.name, plan, made.table, truth), kept


@dataclass(frozen=True)
class Measurement:
    results: list[Accuracy]
    bounds: list[BoundsKept]


def measure_reports(catalog: Catalog, config_dir: Path, day: dt.date, scratch: Path) -> Measurement:
    """Release every catalog report of the catalog's protected `day` and measure it.

    Reads the protected zone only; the releases' ledger and store go to `scratch`.
    """
    specs = load_report_specs(config_dir)
    releases = ScratchReleaser(scratch / "bench-releases", config_dir)
    measured = [report_accuracy(releases, catalog, spec, day) for spec in specs]
    return Measurement(results=[row for accuracy, _ in measured for row in accuracy],
                       bounds=[kept for _, kept in measured])


# ---- output ----------------------------------------------------------------------------------


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}%"


def _signed_percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:+.2f}%"


def _number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def markdown_table(results: list[Accuracy]) -> str:
    lines = [
        "| report | metric | kind | cells released / cells | median rel. error, released cells "
        f"| median rel. error, cells >= {LARGE_CELL} subscribers | cells >= {LARGE_CELL} subscribers "
        f"| median signed error, cells >= {LARGE_CELL} | noise sd | target <= {TARGET:.0%} |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        share = f"{r.released:,} / {r.cells:,} ({r.released / r.cells:.1%})" if r.cells else "0 / 0"
        lines.append(
            f"| {r.report} | {r.output} | {r.kind} | {share} | {_percent(r.median_error)} "
            f"| {_percent(r.median_error_large)} | {r.large_cells:,} | {_signed_percent(r.bias_large)} "
            f"| {_number(r.noise_sd)} | {r.verdict} |"
        )
    return "\n".join(lines)


def bounds_table(bounds: list[BoundsKept]) -> str:
    lines = [
        "| report | max cells / subscriber | true cells / subscriber (mean) | subscriber-cells within it "
        "| max rows / cell | rows within it |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {b.report} | {b.max_groups} | {b.cells_per_subscriber:.2f} | {_percent(b.groups_kept)} "
              f"| {b.max_rows} | {_percent(b.rows_kept)} |" for b in bounds]
    return "\n".join(lines)


def footnotes(results: list[Accuracy]) -> list[str]:
    rollups = {r.report: r.rollups for r in results if r.rollups}
    notes = [f"{report}: {n:,} roll-up rows (remainders, published or suppressed) sum several cells and "
             "are compared with no true cell" for report, n in rollups.items()]
    return notes + [f"{r.report} {r.output}: {r.no_value:,} released cells publish no quantile "
                    "(insufficient rows), left out of its medians" for r in results if r.no_value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200_000, help="generated subscribers (one day)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()

    start = time.perf_counter()
    spark = get_spark("kr-reports-bench-accuracy")
    config = ROOT / "config"
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        root = Path(scratch)
        catalog = Catalog(data_dir=root / "data", out_dir=root / "out")
        specs = load_report_specs(config)
        rows, seconds = prepare_protected(catalog, config, specs, args.subscribers, args.seed)
        prepared = time.perf_counter()
        measured = measure_reports(catalog, config, DAY, root)
    wall, released = time.perf_counter() - start, time.perf_counter() - prepared
    results = measured.results

    print()
    print(f"machine: {spark.sparkContext.defaultParallelism} cores (Spark {spark.version})")
    print(f"data: {args.subscribers:,} subscribers, one day ({DAY}), seed {args.seed}: "
          + ", ".join(f"{name} {n:,}" for name, n in rows.items()) + " rows")
    print("each report released once through the front door (ample scratch budget); truth: plain "
          "Spark, unbounded and unclamped, on the same rows")
    print()
    print(markdown_table(results))
    print()
    for note in footnotes(results):
        print(f"- {note}")
    counted = [r for r in results if r.kind in COUNT_KINDS]
    passed = sum(r.verdict == "PASS" for r in counted)
    print(f"target (counts and distinct counts, median rel. error <= {TARGET:.0%} in cells >= "
          f"{LARGE_CELL} subscribers): {passed} of {len(counted)} rows pass")
    print()
    print("contribution bounds against the data (each bound alone; what they drop is a bias no "
          "epsilon removes):")
    print()
    print(bounds_table(measured.bounds))
    print()
    seconds[f"{len(measured.bounds)} report inputs, releases and truths"] = released
    print(f"wall time: {wall:.0f} s (" + ", ".join(f"{stage} {s:.0f} s" for stage, s in seconds.items())
          + "; the rest is Spark's start)")
    seed = f" --seed {args.seed}" if args.seed != 7 else ""
    print(f"reproduce: .venv/bin/python bench/bench_accuracy.py --subscribers {args.subscribers}{seed}")


if __name__ == "__main__":
    main()
