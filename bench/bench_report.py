"""Benchmark: generator throughput, and the DP report against plain Spark on the same data.

    .venv/bin/python bench/bench_report.py [--rows 10000000] [--repeats 3]

Prints its figures and the command that reproduces them. These machines are
noisy: the DP report and the plain groupBy alternate in one session, and the
figure to quote is the ratio of their medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyspark.sql import functions as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.generate import write_landing  # noqa: E402
from kr_reports.config import load_pipeline_config, load_report_specs  # noqa: E402
from kr_reports.dp import noise_cells, plan_report  # noqa: E402
from kr_reports.spark import get_spark  # noqa: E402
from transforms.bounding import (  # noqa: E402
    aggregate_cells,
    bound_contributions,
    filter_public_keys,
    with_all_public_cells,
)

FLOWS_PER_SUBSCRIBER = 20
DAY = dt.date(2026, 11, 1)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _prepare_traffic(spark, landing: Path, out: Path) -> int:
    """The report's input, typed: subscriber, region, hour, bytes (not timed)."""
    flows = spark.read.parquet(str(landing / "network_flows" / f"date={DAY}"))
    subscribers = spark.read.parquet(str(landing / "subscribers")).select("account_id", "region")
    traffic = flows.join(subscribers, on="account_id", how="inner").select(
        F.col("account_id").alias("subscriber"),
        "region",
        F.hour(F.to_timestamp("start_time")).alias("hour"),
        F.col("bytes").cast("bigint").alias("bytes"),
    )
    traffic.write.mode("overwrite").parquet(str(out))
    return spark.read.parquet(str(out)).count()


def _plain_report(spark, path: Path) -> None:
    (
        spark.read.parquet(str(path))
        .groupBy("region", "hour")
        .agg(F.countDistinct("subscriber").alias("subscribers"), F.sum("bytes").alias("bytes"))
        .collect()
    )


def _dp_report(spark, path: Path, plan) -> None:
    bounds = plan.spec.contribution
    bounded = bound_contributions(
        filter_public_keys(spark.read.parquet(str(path)), plan.public_keys),
        unit="subscriber",
        groups=list(plan.public_keys),
        clamps=plan.clamps,
        max_groups=bounds.max_groups_per_subscriber,
        max_rows=bounds.max_rows_per_group,
        salt=12345,
    )
    cells = aggregate_cells(bounded, list(plan.public_keys), list(plan.clamps))
    measures = ["distinct_units", *plan.clamps]
    noise_cells(with_all_public_cells(cells, plan.public_keys, measures).toPandas(), plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="network flow rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()

    spark = get_spark("kr-reports-bench")
    config = ROOT / "config"
    pipeline = load_pipeline_config(config)
    spec = next(s for s in load_report_specs(config) if s.source == "network_flows")
    plan = plan_report(spec, pipeline.regions)

    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        landing = Path(scratch) / "landing"
        subscribers = max(1, args.rows // FLOWS_PER_SUBSCRIBER)
        start = time.perf_counter()
        generated = write_landing(landing, n_subscribers=subscribers, days=1, start_date=DAY)
        generate_s = time.perf_counter() - start
        flow_rows = generated["rows"]["network_flows"]
        traffic = Path(scratch) / "traffic"
        rows = _prepare_traffic(spark, landing, traffic)

        plain, private = [], []
        _plain_report(spark, traffic)  # warm-up: JIT, file listing caches
        for _ in range(args.repeats):
            plain.append(_timed(lambda: _plain_report(spark, traffic)))
            private.append(_timed(lambda: _dp_report(spark, traffic, plan)))

    all_rows = sum(generated["rows"].values())
    print()
    print(f"machine: {spark.sparkContext.defaultParallelism} cores (Spark {spark.version})")
    print(f"generator: {all_rows:,} rows over 5 sources ({flow_rows:,} network flows) "
          f"in {generate_s:.1f} s = {all_rows / generate_s:,.0f} rows/s")
    print(f"report input: {rows:,} flow rows with region and hour")
    print(f"plain Spark groupBy (countDistinct + sum), median of {args.repeats}: "
          f"{statistics.median(plain):.2f} s  runs={[round(t, 2) for t in plain]}")
    print(f"DP report (bound + aggregate + noise), median of {args.repeats}: "
          f"{statistics.median(private):.2f} s  runs={[round(t, 2) for t in private]}")
    print(f"ratio DP / plain: {statistics.median(private) / statistics.median(plain):.2f}x")
    print(f"reproduce: .venv/bin/python bench/bench_report.py --rows {args.rows} "
          f"--repeats {args.repeats}")


if __name__ == "__main__":
    main()
