"""Benchmark: protect and the DP report from 1M to 50M flow rows; time per row and driver memory.

    .venv/bin/python bench/bench_scale.py [--sizes 1 5 10 25 50] [--repeats 1] [--workdir /tmp]

Target (issue 16): from 1M to 50M network-flow rows the time per row of the
protect stage and of the DP report stays within 20% of the 1M point, and the
driver's peak memory stays flat (nothing unaggregated is collected).

Data: one day of flows for 50,000 subscribers (about 1M rows) is generated
once, typed as ingest writes it (raw flows) and joined to the subscribers'
region (the report's input, as bench_pipeline.py prepares it); then each is
written as `max(sizes)` copies, one folder per copy, each copy with its own
subscribers (account ids shifted by a copy's number of subscribers), so a
size of N million rows reads the first N copies: the same rows per
subscriber and per cell at every size. Not timed.

Per size, alternating in one Spark session:
- protect (the policy's rules over the raw flows, written to Parquet) against
  a plain Spark select of the same columns written to Parquet;
- the DP report of config/reports/network_traffic_region_hour.yaml through
  the front door (bench/scratch_releaser.py: budget check, bounding,
  aggregation, charge, noise, store) against a plain Spark groupBy of the
  same aggregation (countDistinct, sum; collected).
It prints seconds, ns per row, the ratio of ns per row to the first size,
the ratio to plain Spark at the same size, and the driver's memory while the
size ran: the driver JVM's peak resident memory (VmRSS of the java child,
sampled every 0.2 s; in local mode the executors run in that JVM, so it
grows with the heap Spark's sorts and shuffles use, up to
KR_SPARK_DRIVER_MEMORY), the JVM heap still in use after a full collection
following each step (what the driver retains: it would grow if rows were
collected or kept), and the Python process's peak resident memory (where a
collected or toPandas'd frame lands).

The machine is shared with other work: quote ratios (to plain Spark at the
same size, and to the first size), not absolute seconds.

Measured (issue 16, `--sizes 1 5 10`, machine quiet, one run per size; 25M
and 50M did not fit in the session): protect 2.2, 7.3, 13.4 s (1.16, 1.29,
1.29x a plain select; ns per row 1.00, 0.65, 0.60 of the 1M point); DP
report 8.0, 12.4, 17.3 s (7.53, 4.97, 2.65x a plain groupBy; a fixed ~7 s,
then ~1,000 ns a row at every step); JVM heap after a full collection 220,
225, 227 MiB; Python RSS 270 MiB throughout; JVM RSS 2.4, 3.3, 4.7 GiB
(local mode: the executors' memory, bounded by the 4g heap).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_pipeline import (  # noqa: E402
    BENCH_KEY,
    DAY,
    FLOWS_PER_SUBSCRIBER,
    traffic_aggregation,
    traffic_input,
)
from scratch_releaser import ScratchReleaser  # noqa: E402

from core.policy import load_policy  # noqa: E402
from core.schemas import NETWORK_FLOWS  # noqa: E402
from stages.generate import write_landing  # noqa: E402
from stages.spark import get_spark  # noqa: E402
from transforms.ingest import filter_usable, with_typed_and_reasons  # noqa: E402
from transforms.protect import protect  # noqa: E402

BASE_SUBSCRIBERS = 1_000_000 // FLOWS_PER_SUBSCRIBER  # one copy: about 1M flow rows
MIB = 2**20


# --- data ---------------------------------------------------------------------


@dataclass
class Copies:
    """One day of flows (raw, and the report's input), written as copies on demand."""

    raw_base: DataFrame
    traffic_base: DataFrame
    folder: Path
    rows: int  # rows of one copy
    written: int = 0

    def ensure(self, copies: int) -> None:
        """Write the copies up to `copies` (not timed), each with its own subscribers."""
        for copy in range(self.written, copies):
            write_copy(self.raw_base, "account_id", copy, self.folder / "raw")
            write_copy(self.traffic_base, "subscriber", copy, self.folder / "traffic")
        self.written = max(self.written, copies)


def write_copy(base: DataFrame, account: str, copy: int, out: Path) -> None:
    """Copy `copy` of `base` in out/copy=<copy>/, its account numbers shifted by copy * BASE_SUBSCRIBERS."""
    number = F.substring(F.col(account), 3, 12).cast("long") + F.lit(copy * BASE_SUBSCRIBERS)
    shifted = F.concat(F.lit("KR"), F.lpad(number.cast("string"), 8, "0"))
    base.withColumn(account, shifted).write.mode("overwrite").parquet(str(out / f"copy={copy}"))


def prepare(spark, scratch: Path) -> Copies:
    """One generated day: raw flows as ingest types them, and the report's input (cached)."""
    landing = scratch / "landing"
    write_landing(landing, n_subscribers=BASE_SUBSCRIBERS, days=1, start_date=DAY)
    flows = spark.read.parquet(str(landing / "network_flows" / f"date={DAY}"))
    raw = filter_usable(with_typed_and_reasons(flows, NETWORK_FLOWS, DAY), NETWORK_FLOWS).cache()
    traffic = traffic_input(spark, landing).cache()
    return Copies(raw, traffic, scratch, raw.count())


def read_copies(spark, folder: Path, copies: int) -> DataFrame:
    """The first `copies` copies (no copy column: the folders are read as they are)."""
    return spark.read.parquet(*[str(folder / f"copy={i}") for i in range(copies)])


# --- driver memory ----------------------------------------------------------


def driver_jvm(python: psutil.Process) -> psutil.Process:
    """The driver's JVM: the java child that PySpark started for this process."""
    javas = [p for p in python.children(recursive=True) if "java" in p.name()]
    if len(javas) != 1:
        raise RuntimeError(f"expected one java child of the driver, found {len(javas)}")
    return javas[0]


@dataclass
class MemoryPeak:
    """Peak resident memory of the driver's JVM and Python, sampled while a size runs."""

    jvm: psutil.Process
    python: psutil.Process
    jvm_rss: int = 0
    python_rss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.jvm_rss = max(self.jvm_rss, self.jvm.memory_info().rss)
            self.python_rss = max(self.python_rss, self.python.memory_info().rss)

    def __enter__(self) -> MemoryPeak:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def live_heap_after_gc(spark) -> int:
    """Bytes of the driver JVM's heap still in use after a full collection: what it retains."""
    jvm = spark.sparkContext._jvm
    jvm.java.lang.System.gc()
    return jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed()


# --- timing -----------------------------------------------------------------


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class SizeRun:
    copies: int
    rows: int
    runs: dict[str, list[float]]
    jvm_rss: int
    live_heap: int
    python_rss: int

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])

    def ns_per_row(self, name: str) -> float:
        return self.median(name) / self.rows * 1e9


def run_size(spark, raw: Path, traffic: Path, copies: int, rows: int, repeats: int,
             releases: ScratchReleaser, rules, aggregation, written: Path,
             memory: MemoryPeak) -> SizeRun:
    flows = read_copies(spark, raw, copies)
    report_input = read_copies(spark, traffic, copies)

    def plain_select() -> None:
        flows.select(*flows.columns).write.mode("overwrite").parquet(str(written))

    def protect_write() -> None:
        protect(flows, rules, BENCH_KEY, DAY).write.mode("overwrite").parquet(str(written))

    def plain_report() -> None:
        report_input.groupBy("region", "hour").agg(
            F.countDistinct("subscriber").alias("subscribers"), F.sum("bytes").alias("bytes")
        ).collect()

    def dp_report() -> None:
        releases.release(report_input, aggregation)  # as bench_pipeline's dp_release

    steps = {"plain select": plain_select, "protect": protect_write,
             "plain groupBy": plain_report, "DP report": dp_report}
    runs: dict[str, list[float]] = {name: [] for name in steps}
    live_heap = live_heap_after_gc(spark)
    memory.jvm_rss = memory.python_rss = 0
    for _ in range(repeats):
        for name, step in steps.items():
            runs[name].append(timed(step))
            live_heap = max(live_heap, live_heap_after_gc(spark))  # not timed
    return SizeRun(copies, rows * copies, runs, memory.jvm_rss, live_heap, memory.python_rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 10, 25, 50],
                        help="millions of flow rows (copies of the 1M-row day)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))

    spark = get_spark("kr-reports-bench-scale")
    config = ROOT / "config"
    aggregation = traffic_aggregation(config)
    rules = load_policy(config).resolve(NETWORK_FLOWS)
    python = psutil.Process()
    results: list[SizeRun] = []
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        scratch = Path(folder)
        start = time.perf_counter()
        copies = prepare(spark, scratch)
        copies.ensure(1)
        print(f"prepared one copy of {copies.rows:,} flow rows in {time.perf_counter() - start:.0f} s",
              flush=True)
        raw, traffic, rows = scratch / "raw", scratch / "traffic", copies.rows
        releases = ScratchReleaser(scratch / "releases", config)
        with MemoryPeak(driver_jvm(python), python) as memory:
            run_size(spark, raw, traffic, 1, rows, 1, releases, rules, aggregation,
                     scratch / "written", memory)  # warm-up: JIT, file listing caches
            for size in sizes:
                copies.ensure(size)
                result = run_size(spark, raw, traffic, size, rows, args.repeats, releases, rules,
                                  aggregation, scratch / "written", memory)
                results.append(result)
                print_size(result, results[0], flush=True)
    print_summary(spark, results, args)


def print_size(run: SizeRun, first: SizeRun, flush: bool = False) -> None:
    print(f"{run.rows / 1e6:5.1f}M rows: "
          + "; ".join(f"{name} {run.median(name):.1f} s = {run.ns_per_row(name):,.0f} ns/row "
                      f"({run.ns_per_row(name) / first.ns_per_row(name):.2f}x of first)"
                      for name in run.runs)
          + f"; driver JVM RSS {run.jvm_rss / MIB:,.0f} MiB, live heap {run.live_heap / MIB:,.0f} MiB, "
            f"Python RSS {run.python_rss / MIB:,.0f} MiB", flush=flush)


def print_summary(spark, results: list[SizeRun], args) -> None:
    first = results[0]
    print()
    print(f"machine: {spark.sparkContext.defaultParallelism} cores (Spark {spark.version}), "
          f"shuffle partitions {spark.conf.get('spark.sql.shuffle.partitions')}, shared with other work")
    header = ("rows", "protect s", "ns/row", "vs first", "vs select", "DP s", "ns/row", "vs first",
              "vs groupBy", "JVM RSS MiB", "live heap MiB", "Python MiB")
    print(" | ".join(header))
    for run in results:
        cells = [
            f"{run.rows / 1e6:.1f}M",
            f"{run.median('protect'):.1f}",
            f"{run.ns_per_row('protect'):,.0f}",
            f"{run.ns_per_row('protect') / first.ns_per_row('protect'):.2f}",
            f"{run.median('protect') / run.median('plain select'):.2f}",
            f"{run.median('DP report'):.1f}",
            f"{run.ns_per_row('DP report'):,.0f}",
            f"{run.ns_per_row('DP report') / first.ns_per_row('DP report'):.2f}",
            f"{run.median('DP report') / run.median('plain groupBy'):.2f}",
            f"{run.jvm_rss / MIB:,.0f}",
            f"{run.live_heap / MIB:,.0f}",
            f"{run.python_rss / MIB:,.0f}",
        ]
        print(" | ".join(cells))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Python process peak (ru_maxrss, whole run): {peak:,.0f} MiB")
    print(f"reproduce: .venv/bin/python bench/bench_scale.py --sizes {' '.join(map(str, args.sizes))} "
          f"--repeats {args.repeats}")


if __name__ == "__main__":
    main()
