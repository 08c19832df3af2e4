"""Benchmark: our DP report against a plain Spark groupBy and PipelineDP's Spark backend.

    make bench-pipelinedp BENCH_ARGS="--rows 10000000 --repeats 3"
    # or, once the bench venv exists:
    .venv-bench/bin/python bench/bench_pipelinedp.py [--rows 10000000] [--repeats 3]

PipelineDP is not a dependency of the product: it lives in the separate
`.venv-bench` that `make bench-pipelinedp` builds (project + the pins in
bench/requirements-pipelinedp.txt). Its Spark backend runs Python on the
workers, so the workers must use that venv's interpreter (set below).
Without pipeline_dp installed, only `--help` and `--skip-pipelinedp` run.

Same synthetic data and report input as bench_pipeline.py, whose functions
are reused. Our side is the project's release front door, `Releaser.release`,
on a throwaway ledger and store with an ample budget, a new day per release
(bench/scratch_releaser.py): plan, budget check, bounding and aggregation in
Spark, charge, noise, post-processing, store. PipelineDP's side is its own
engine. The report is config/reports/network_traffic_region_hour.yaml:
public cells regions x hours; per subscriber at most G cells and R rows per
cell; distinct subscribers, the sum of bytes and quantiles of a flow's bytes,
bytes clamped per row; pure DP. PipelineDP gets the same query from the same
spec: DPEngine on SparkRDDBackend over an RDD of (subscriber, (region, hour),
bytes), the same public partitions, PRIVACY_ID_COUNT, SUM and a PERCENTILE
per quantile, max_partitions_contributed=G, max_contributions_per_partition=R,
min_value/max_value = the byte clamps, Laplace noise (its pure-DP noise), and
a NaiveBudgetAccountant with the spec's total epsilon and delta 0.

Budget split: one PipelineDP aggregation splits its epsilon equally between
its metrics (count, sum, quantiles), and offers no per-metric weights. So
both engines run the spec's aggregation with its total epsilon re-split equally
across its metrics (`_bench_aggregation`); bounds, delta, keys and k are the spec's. The split
changes only the noise scales, not the work, so the timing is that of the
product report. Both engines compute the same L1 sensitivities for the count
(G) and the sum (G*R*upper), hence the same noise scale for those two.

Timing: plain groupBy (bench_pipeline's `_plain_report`, the same
aggregation), our release (bench_pipeline's `dp_release`: the Releaser, read to
stored release) and PipelineDP (read, aggregate, collect) alternate in one
session; quote the ratios of the medians. The timed releases are the ones
whose accuracy is measured.

Accuracy: the true value per cell is the unbounded, unclamped plain groupBy
(distinct subscribers, sum of bytes, exact percentiles of bytes). For each
engine and released value the figure is the mean over cells with a true
value > 0 of |released - true| / true, over cells both engines released (ours
withholds cells under k; their number is printed). The relative error
includes the bias of contribution bounding (cells and rows dropped, values
clamped), not only the noise. Both engines bound the same way (same G, R and
clamps, uniformly random choice of the kept cells and rows), so this is the
right comparison: it is the error a reader of either release sees. The
"bounding only" row is our bounded aggregates before noise (one bounding, with
its own salt: a release's salt is secret): how much of the error is the spec's
bounds. PipelineDP releases floats (Laplace on the float
aggregates, negative values possible); ours releases integers clamped at 0,
so a third row applies that same free post-processing to PipelineDP's.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

try:
    import pipeline_dp
except ModuleNotFoundError:  # the main venv: --help and --skip-pipelinedp still run
    pipeline_dp = None

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_pipeline import (  # noqa: E402
    DAY,
    FLOWS_PER_SUBSCRIBER,
    _plain_report,
    _prepare_traffic,
    _timed,
    dp_release,
)
from scratch_releaser import ScratchReleaser  # noqa: E402

from core.config import Aggregation, Metric  # noqa: E402
from core.noise_plan import ReportPlan, quantile_column  # noqa: E402
from stages.generate import write_landing  # noqa: E402
from stages.spark import get_spark  # noqa: E402
from transforms.report_aggregate import aggregate_report  # noqa: E402

UNIT = "subscriber"
BOUNDING_SALT = 12345  # the "bounding only" row's; each release draws its own, secret
COMPARED_KINDS = ("count_distinct_subscribers", "sum", "quantiles")


def compared_aggregation() -> Aggregation:
    """The network report as the catalog had it before its daily zCDP re-size: pure DP (the
    only accounting PipelineDP's Laplace noise matches), distinct subscribers, total bytes and
    flow-byte quantiles, 6 cells x 8 rows a subscriber. The comparison's figures above are on it."""
    return Aggregation.model_validate({
        "name": "network_traffic_region_hour", "source": "network_flows",
        "group_by": [{"column": "region", "values": "regions"}, {"column": "hour", "values": "hours"}],
        "contribution": {"max_groups_per_subscriber": 6, "max_rows_per_group": 8},
        "metrics": [
            {"name": "distinct_subscribers", "kind": "count_distinct_subscribers", "epsilon": 0.4},
            {"name": "total_bytes", "kind": "sum", "column": "bytes", "lower": 0, "upper": 250_000,
             "epsilon": 0.3},
            {"name": "flow_bytes", "kind": "quantiles", "column": "bytes", "lower": 0, "upper": 250_000,
             "quantiles": [0.5, 0.9], "epsilon": 0.3},
        ],
        "min_subscribers": 5, "sparse_cells": "roll_up", "roll_up": "hour",
    })


def _bench_aggregation(aggregation: Aggregation) -> Aggregation:
    """The aggregation with its total epsilon split equally across its metrics (see the docstring)."""
    if aggregation.accounting != "pure_dp" or aggregation.delta != 0:
        raise ValueError("PipelineDP's Laplace noise is pure DP: the bench needs a pure_dp aggregation")
    kinds = sorted(m.kind for m in aggregation.metrics)
    if kinds != sorted(COMPARED_KINDS):
        raise ValueError(f"the bench compares one metric of each kind {COMPARED_KINDS}; "
                         f"the aggregation has {kinds}")
    valued = [m for m in aggregation.metrics if m.kind != "count_distinct_subscribers"]
    if len({(m.column, m.lower, m.upper) for m in valued}) != 1:
        raise ValueError("PipelineDP has one value and one [min, max] per aggregation")
    share = sum(m.epsilon for m in aggregation.metrics) / len(aggregation.metrics)
    return aggregation.model_copy(
        update={"metrics": tuple(m.model_copy(update={"epsilon": share}) for m in aggregation.metrics)}
    )


def _metric(plan: ReportPlan, kind: str) -> Metric:
    return next(m for m in plan.metric_specs if m.kind == kind)


def _percentile(q: float) -> tuple[float, str]:
    """PipelineDP's percentile for quantile q, and the name of its output field."""
    p = round(q * 100, 6)  # 0.9 * 100 is 90.00000000000001
    return p, "percentile_" + (f"{int(p)}" if p == int(p) else str(p).replace(".", "_"))


def _outputs(plan: ReportPlan) -> dict[str, str]:
    """Released value column -> PipelineDP's output field, for every compared value."""
    counted, summed = _metric(plan, "count_distinct_subscribers"), _metric(plan, "sum")
    quantiles = _metric(plan, "quantiles")
    return {
        counted.name: "privacy_id_count",
        summed.name: "sum",
        **{quantile_column(quantiles.name, q): _percentile(q)[1] for q in quantiles.quantiles},
    }


def _pipelinedp_params(plan: ReportPlan) -> tuple[pipeline_dp.AggregateParams, list[tuple]]:
    """PipelineDP's AggregateParams and public partitions for the same report plan."""
    summed, quantiles = _metric(plan, "sum"), _metric(plan, "quantiles")
    bounds = plan.aggregation.contribution
    params = pipeline_dp.AggregateParams(
        metrics=[
            pipeline_dp.Metrics.PRIVACY_ID_COUNT,
            pipeline_dp.Metrics.SUM,
            *[pipeline_dp.Metrics.PERCENTILE(_percentile(q)[0]) for q in quantiles.quantiles],
        ],
        noise_kind=pipeline_dp.NoiseKind.LAPLACE,
        max_partitions_contributed=bounds.max_groups_per_subscriber,
        max_contributions_per_partition=bounds.max_rows_per_group,
        min_value=summed.lower,
        max_value=summed.upper,
        output_noise_stddev=True,
    )
    public = list(itertools.product(*plan.public_keys.values()))
    return params, public


def _pipelinedp_report(spark, path: Path, plan: ReportPlan) -> tuple[list, list]:
    """PipelineDP on Spark RDDs: read, aggregate, collect. Returns (rows, mechanism specs)."""
    params, public = _pipelinedp_params(plan)
    groups = list(plan.public_keys)
    value = _metric(plan, "sum").column
    accountant = pipeline_dp.NaiveBudgetAccountant(total_epsilon=plan.epsilon, total_delta=plan.delta)
    engine = pipeline_dp.DPEngine(accountant, pipeline_dp.SparkRDDBackend(spark.sparkContext))
    # PipelineDP's Spark API takes an RDD of Python rows: (subscriber, (region, hour), bytes).
    rows = (
        spark.read.parquet(str(path))
        .select(UNIT, *groups, value)
        .rdd.map(lambda r: (r[0], tuple(r[1:-1]), r[-1]))
    )
    extractors = pipeline_dp.DataExtractors(
        privacy_id_extractor=lambda row: row[0],
        partition_extractor=lambda row: row[1],
        value_extractor=lambda row: row[2],
    )
    released = engine.aggregate(rows, params, extractors, public_partitions=public)
    accountant.compute_budgets()  # before the lazy RDD runs: it fills in each mechanism's epsilon
    return released.collect(), accountant.mechanism_specs


def _pipelinedp_frame(rows: list, plan: ReportPlan) -> pd.DataFrame:
    counted, summed = _metric(plan, "count_distinct_subscribers"), _metric(plan, "sum")
    outputs = _outputs(plan)
    return pd.DataFrame(
        [
            {
                **dict(zip(plan.public_keys, key, strict=True)),
                **{column: getattr(metrics, field) for column, field in outputs.items()},
                f"{counted.name}_noise_sd": metrics.privacy_id_count_noise_stddev,
                f"{summed.name}_noise_sd": metrics.sum_noise_stddev,
            }
            for key, metrics in rows
        ]
    )


def _as_ours(release: pd.DataFrame, plan: ReportPlan) -> pd.DataFrame:
    """PipelineDP's floats post-processed like our release: counts and sums rounded and
    clamped at 0, quantiles clamped to their bounds and non-decreasing in q."""
    out = release.copy()
    counted, summed = _metric(plan, "count_distinct_subscribers"), _metric(plan, "sum")
    for name in (counted.name, summed.name):
        out[name] = out[name].round().clip(lower=0)
    quantiles = _metric(plan, "quantiles")
    columns = [quantile_column(quantiles.name, q) for q in quantiles.quantiles]
    clamped = out[columns].clip(lower=quantiles.lower, upper=quantiles.upper).to_numpy()
    out[columns] = np.maximum.accumulate(clamped, axis=1)
    return out


def _truth(spark, path: Path, plan: ReportPlan) -> pd.DataFrame:
    """Unbounded, unclamped per-cell truth: distinct subscribers, sum and exact percentiles of bytes."""
    counted, summed = _metric(plan, "count_distinct_subscribers"), _metric(plan, "sum")
    quantiles = _metric(plan, "quantiles")
    truth = (
        spark.read.parquet(str(path))
        .groupBy(*plan.public_keys)
        .agg(
            F.countDistinct(UNIT).alias(counted.name),
            F.sum(summed.column).alias(summed.name),
            F.percentile(quantiles.column, list(quantiles.quantiles)).alias("_quantiles"),
        )
        .toPandas()
    )
    for i, q in enumerate(quantiles.quantiles):
        truth[quantile_column(quantiles.name, q)] = truth["_quantiles"].map(lambda v, i=i: v[i])
    return truth.drop(columns="_quantiles")


def _bounded(spark, path: Path, plan: ReportPlan) -> pd.DataFrame:
    """Our bounded per-cell aggregates before noise (one bounding; no noise is drawn here)."""
    counted, summed = _metric(plan, "count_distinct_subscribers"), _metric(plan, "sum")
    aggregates = aggregate_report(spark.read.parquet(str(path)), plan, UNIT, salt=BOUNDING_SALT)
    try:
        cells = aggregates.cells.toPandas()
    finally:
        aggregates.unpersist()
    cells[summed.name] = cells[summed.name] / summed.scale
    return cells.rename(columns={"distinct_units": counted.name})


def _keyed(frame: pd.DataFrame, plan: ReportPlan) -> pd.DataFrame:
    """Indexed by cell; rows without a full key (our roll-up's remainder rows) dropped."""
    keys = list(plan.public_keys)
    frame = frame.dropna(subset=keys)
    typed = {k: "int64" if isinstance(plan.public_keys[k][0], int) else "object" for k in keys}
    return frame.astype(typed).set_index(keys).sort_index()


def _relative_errors(release: pd.DataFrame, truth: pd.DataFrame, cells, column: str) -> float:
    true = truth.loc[cells, column].astype(float)
    positive = true > 0
    released = release.reindex(cells)[column].astype(float).fillna(0.0)
    return float(((released[positive] - true[positive]).abs() / true[positive]).mean())


def _error_row(releases: list[pd.DataFrame], truth: pd.DataFrame, cells, columns) -> dict[str, list]:
    """Per released value: the mean relative error per cell of each release (None if not released)."""
    return {
        column: [_relative_errors(r, truth, cells, column) for r in releases]
        if all(column in r.columns for r in releases)
        else None
        for column in columns
    }


def _quantile_regime(plan: ReportPlan, bounded: pd.DataFrame, cells, truth: pd.DataFrame,
                     releases: dict[str, list[pd.DataFrame]]) -> list[str]:
    """Why quantiles err: rows per cell against the tree's noise, and the typical value released."""
    quantiles = _metric(plan, "quantiles")
    columns = [quantile_column(quantiles.name, q) for q in quantiles.quantiles]
    rows = bounded.reindex(cells)["rows"].quantile([0.25, 0.5, 0.75]).round().astype(int).tolist()
    tree = next(m for m in plan.metrics if m.kind == "quantiles").part("tree")
    lines = [f"quantile tree: noise sd {tree.sd:,.0f} rows per node (ours); "
             f"bounded rows per cell: quartiles {rows}"]
    typical = {"truth": [truth.loc[cells]]} | releases
    for label, frames in typical.items():
        medians = [pd.concat([f.reindex(cells)[c] for f in frames]).median() for c in columns]
        lines.append(f"  median over cells, {label}: "
                     + ", ".join(f"{c} {v:,.0f}" for c, v in zip(columns, medians, strict=True)))
    return lines


def _error_text(errors: list[float] | None) -> str:
    """Mean over releases and their range: the noise in the figure itself."""
    if errors is None:
        return "-"
    if len(errors) == 1:
        return f"{errors[0]:.2%}"
    return f"{statistics.fmean(errors):.2%} [{min(errors):.1%}, {max(errors):.1%}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="network flow rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--skip-pipelinedp", action="store_true",
                        help="only our engine (PipelineDP is the slow part): for quick iterations")
    args = parser.parse_args()
    with_pipelinedp = not args.skip_pipelinedp
    if with_pipelinedp and pipeline_dp is None:
        parser.error("pipeline_dp is not installed in this interpreter: run `make bench-pipelinedp` "
                     "(it builds .venv-bench), or pass --skip-pipelinedp")

    # PipelineDP's RDD functions run in Python workers that must import pipeline_dp:
    # use this interpreter (the bench venv), whatever an outer Makefile exported.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    spark = get_spark("kr-reports-bench-pipelinedp")
    config = ROOT / "config"
    product = compared_aggregation()
    aggregation = _bench_aggregation(product)

    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        releases = ScratchReleaser(Path(scratch) / "releases", config)
        plan = releases.plan(aggregation)  # the plan the Releaser executes; PipelineDP gets the same query
        columns = list(_outputs(plan))
        landing = Path(scratch) / "landing"
        subscribers = max(1, args.rows // FLOWS_PER_SUBSCRIBER)
        generated = write_landing(landing, n_subscribers=subscribers, days=1, start_date=DAY)
        traffic = Path(scratch) / "traffic"
        rows = _prepare_traffic(spark, landing, traffic)
        truth = _keyed(_truth(spark, traffic, plan), plan)
        bounded = _keyed(_bounded(spark, traffic, plan), plan)

        # Warm-up (JIT, file listing caches, Python workers), untimed.
        _plain_report(spark, traffic)
        dp_release(releases, spark, traffic, aggregation)
        specs = _pipelinedp_report(spark, traffic, plan)[1] if with_pipelinedp else []

        plain, ours, theirs, our_releases, their_releases = [], [], [], [], []
        for _ in range(args.repeats):
            plain.append(_timed(lambda: _plain_report(spark, traffic)))
            start = time.perf_counter()
            made = dp_release(releases, spark, traffic, aggregation)
            ours.append(time.perf_counter() - start)
            our_releases.append(_keyed(made.table, plan))
            if with_pipelinedp:
                start = time.perf_counter()
                released, _ = _pipelinedp_report(spark, traffic, plan)
                theirs.append(time.perf_counter() - start)
                their_releases.append(_keyed(_pipelinedp_frame(released, plan), plan))

    # Cells every one of our releases published as cells (not withheld under k, not a remainder row).
    released_cells = truth.index
    for release in our_releases:
        released_cells = released_cells.intersection(release.index[release["status"] == "released"])
    withheld = len(truth.index.difference(released_cells))
    error_rows = [("ours (geometric, integers)", _error_row(our_releases, truth, released_cells, columns))]
    if with_pipelinedp:
        error_rows += [
            ("PipelineDP (Laplace, floats)", _error_row(their_releases, truth, released_cells, columns)),
            ("PipelineDP post-processed as ours",
             _error_row([_as_ours(r, plan) for r in their_releases], truth, released_cells, columns)),
        ]
    error_rows.append(
        ("ours bounding only (before noise)", _error_row([bounded], truth, released_cells, columns))
    )

    counted, summed = _metric(plan, "count_distinct_subscribers"), _metric(plan, "sum")
    quantiles = _metric(plan, "quantiles")
    bounds = plan.aggregation.contribution
    print()
    print(f"machine: {os.cpu_count()} cores, Spark {spark.version} "
          f"(default parallelism {spark.sparkContext.defaultParallelism})"
          + (f", pipeline-dp {pipeline_dp.__version__}" if pipeline_dp is not None else ""))
    print(f"data: {generated['rows']['network_flows']:,} generated flows -> {rows:,} report input rows "
          f"({UNIT}, {', '.join(plan.public_keys)}, {summed.column}); {plan.public_cells} public cells, "
          f"{int((truth[counted.name] > 0).sum())} with data")
    print(f"report: {plan.aggregation.name}: per {UNIT} <= {bounds.max_groups_per_subscriber} cells, "
          f"<= {bounds.max_rows_per_group} rows per cell, {summed.column} clamped to "
          f"[{summed.lower:g}, {summed.upper:g}], quantiles {list(quantiles.quantiles)}, "
          f"k {plan.aggregation.min_subscribers} ({plan.aggregation.sparse_cells})")
    print(f"budget: total epsilon {plan.epsilon:g}, delta {plan.delta:g}; the spec splits it "
          + ", ".join(f"{m.name} {m.epsilon:g}" for m in product.metrics))
    print("  both engines here split it equally: ours "
          + ", ".join(f"{m.name} {m.epsilon:.4g}" for m in plan.metrics)
          + ("; PipelineDP " + ", ".join(f"{s.name} {s.eps:.4g}" for s in specs) if with_pipelinedp else ""))
    print("time (median of alternating runs):")
    timed = [("plain Spark groupBy (countDistinct, sum, percentile_approx)", plain),
             ("ours: Releaser (bound + aggregate + charge + noise + roll-up + store)", ours)]
    if with_pipelinedp:
        timed.append(("PipelineDP on SparkRDDBackend (read + aggregate + collect)", theirs))
    for label, runs in timed:
        print(f"  {label}: median {statistics.median(runs):.2f} s, runs {[round(t, 2) for t in runs]}")
    ours_s = statistics.median(ours)
    print(f"  ratio ours / plain: {ours_s / statistics.median(plain):.2f}x (target <= 2x)")
    noise_sd = (f"noise sd per cell, {counted.name} / {summed.name}: "
                f"ours {our_releases[0][f'{counted.name}_noise_sd'].iloc[0]:.1f} / "
                f"{our_releases[0][f'{summed.name}_noise_sd'].iloc[0]:.4g}")
    if with_pipelinedp:
        print(f"  ratio ours / PipelineDP: {ours_s / statistics.median(theirs):.2f}x (target < 1x)")
        noise_sd += (f", PipelineDP {their_releases[0][f'{counted.name}_noise_sd'].iloc[0]:.1f} / "
                     f"{their_releases[0][f'{summed.name}_noise_sd'].iloc[0]:.4g}")
    print(noise_sd)
    print(f"mean relative error per cell ({len(released_cells)} cells released by both, "
          f"{withheld} withheld by our k; true value > 0; mean [min, max] over {args.repeats} releases):")
    width = max(len(c) for c in columns) + 8
    print(f"  {'engine':<34}" + "".join(f"{c:>{max(width, 24)}}" for c in columns))
    for label, errors in error_rows:
        print(f"  {label:<34}" + "".join(f"{_error_text(errors[c]):>{max(width, 24)}}" for c in columns))
    releases = {"ours": our_releases} | ({"PipelineDP": their_releases} if with_pipelinedp else {})
    print("\n".join(_quantile_regime(plan, bounded, released_cells, truth, releases)))
    flags = f"--rows {args.rows} --repeats {args.repeats}"
    flags += " --skip-pipelinedp" if args.skip_pipelinedp else ""
    print(f"reproduce: make bench-pipelinedp BENCH_ARGS=\"{flags}\"")
    print(f"       or: .venv-bench/bin/python bench/bench_pipelinedp.py {flags}")


if __name__ == "__main__":
    main()
