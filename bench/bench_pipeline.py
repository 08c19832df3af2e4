"""Benchmark: generator throughput; protect and the DP report against plain Spark.

    .venv/bin/python bench/bench_pipeline.py [--rows 10000000] [--repeats 3]
        [--stages protect report] [--protect-pieces]

- protect stage (policy: HMAC pseudonym, IP prefixes, hour) on the typed
  network flows vs a plain Spark select of the same columns, both written
  to Parquet; with --protect-pieces also each treatment alone against a
  plain select of its own input columns, written to Spark's noop sink so the
  figure is compute, not Parquet;
- the DP report of config/reports/network_traffic_region_hour.yaml, released
  through the project's front door (stages.releaser: budget check,
  bounding and aggregation in Spark, charge, noise, roll-up, store) on a
  throwaway ledger and store with an ample budget, a new day per release
  (bench/scratch_releaser.py), vs a plain Spark groupBy of the same
  aggregation (countDistinct, sum).

- with --stages ingest: the daily flow's ingest (stages.daily.ingest) of one
  source read through a shipped format: the shared CTU-13 Argus capture
  (binetflow) repeated to --ingest-lines lines over four files of a day
  folder, with a broken line per file, against a plain Spark read of the
  same files as text, written to Parquet. Ingest counts the lines its format
  rejects while it writes them to the quarantine (one read of the files for
  them, not two): 0.68x the time of counting them apart, old and new
  alternating on 191,844 lines (issue 16, README "Speed").

KR_JVM_FUNCTIONS=off runs protect on Spark's built-in functions instead of
the project's JVM functions, for comparison.

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

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratch_releaser import ScratchReleaser  # noqa: E402

from core.config import Aggregation, load_report_specs  # noqa: E402
from core.policy import load_policy  # noqa: E402
from core.schemas import NETWORK_FLOWS  # noqa: E402
from stages.generate import write_landing  # noqa: E402
from stages.releaser import Release  # noqa: E402
from stages.spark import get_spark  # noqa: E402
from transforms import jvm_functions as jvm  # noqa: E402
from transforms.ingest import filter_usable, with_typed_and_reasons  # noqa: E402
from transforms.protect import protect  # noqa: E402

FLOWS_PER_SUBSCRIBER = 20
DAY = dt.date(2026, 11, 1)
BENCH_KEY = b"k" * 32
STAGES = ("protect", "report")
OPTIONAL_STAGES = ("ingest",)
ARGUS = ROOT.parent / "shared" / "data" / "netflow_ctu" / "2013-10-21_capture-1.binetflow"
ARGUS_DAY = dt.date(2013, 10, 21)
ARGUS_FILES = 4
BROKEN_ARGUS_LINE = "2013/13/41 14:00:00.000000,1.5,tcp,147.32.83.53,40001,   ->,147.32.80.9,80,CON,0,0,2,120"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def traffic_input(spark, landing: Path) -> DataFrame:
    """The report's input from a generated day's flows, typed: subscriber, region, hour, bytes."""
    flows = spark.read.parquet(str(landing / "network_flows" / f"date={DAY}"))
    subscribers = spark.read.parquet(str(landing / "subscribers")).select("account_id", "region")
    return flows.join(subscribers, on="account_id", how="inner").select(
        F.col("account_id").alias("subscriber"),
        "region",
        F.hour(F.to_timestamp("start_time")).alias("hour"),
        F.col("bytes").cast("bigint").alias("bytes"),
    )


def _prepare_traffic(spark, landing: Path, out: Path) -> int:
    """The report's input, written once (not timed)."""
    traffic_input(spark, landing).write.mode("overwrite").parquet(str(out))
    return spark.read.parquet(str(out)).count()


def _prepare_raw_flows(spark, landing: Path, out: Path) -> None:
    """Typed canonical flows, as ingest writes them (not timed)."""
    flows = spark.read.parquet(str(landing / "network_flows" / f"date={DAY}"))
    typed = filter_usable(with_typed_and_reasons(flows, NETWORK_FLOWS, DAY), NETWORK_FLOWS)
    typed.write.mode("overwrite").parquet(str(out))


def _plain_select(spark, raw: Path, out: Path) -> None:
    df = spark.read.parquet(str(raw))
    df.select(*df.columns).write.mode("overwrite").parquet(str(out))


def _protect(spark, raw: Path, out: Path, rules) -> None:
    df = spark.read.parquet(str(raw))
    protect(df, rules, BENCH_KEY, DAY).write.mode("overwrite").parquet(str(out))


def _protect_pieces(rules) -> dict[str, list]:
    """The policy's rules grouped by what each costs: pseudonym, IP prefixes, hour."""
    pieces = {
        "HMAC pseudonym": [r for r in rules if r.treatment == "pseudonymize"],
        "IP prefixes": [r for r in rules if r.generalizer == "ip_prefix"],
        "hour": [r for r in rules if r.generalizer == "hour"],
    }
    return {name: chosen for name, chosen in pieces.items() if chosen}


def _time_piece_pair(spark, raw: Path, rules) -> tuple[float, float]:
    """One piece of protect, and a plain select of its input columns, into the noop sink."""
    df = spark.read.parquet(str(raw)).select(*[r.column for r in rules])
    plain = _timed(lambda: df.select(*df.columns).write.format("noop").mode("overwrite").save())
    protected = protect(df, rules, BENCH_KEY, DAY)
    return plain, _timed(lambda: protected.write.format("noop").mode("overwrite").save())


def _bench_protect_pieces(spark, raw: Path, rules, repeats: int) -> list[tuple[str, str, list, list]]:
    """Per piece of protect: (name, input columns, plain select runs, piece runs), alternating."""
    timings = []
    for name, piece in _protect_pieces(rules).items():
        pairs = [_time_piece_pair(spark, raw, piece) for _ in range(repeats)]
        columns = ", ".join(r.column for r in piece)
        timings.append((name, columns, [plain for plain, _ in pairs], [treated for _, treated in pairs]))
    return timings


def _plain_report(spark, path: Path) -> None:
    """The same aggregation without privacy: distinct subscribers and total bytes per cell."""
    traffic = spark.read.parquet(str(path))
    traffic.groupBy("region", "hour").agg(
        F.countDistinct("subscriber").alias("subscribers"), F.sum("bytes").alias("bytes")
    ).collect()


def _write_argus_day(folder: Path, lines: int) -> int:
    """The Argus capture repeated to about `lines` lines over ARGUS_FILES files, a broken line each."""
    header, *rows = ARGUS.read_text().splitlines()
    per_file = max(1, lines // ARGUS_FILES // len(rows))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(ARGUS_FILES):
        body = "\n".join(rows * per_file)
        (folder / f"capture.{i}.binetflow").write_text(f"{header}\n{body}\n{BROKEN_ARGUS_LINE}\n")
    return ARGUS_FILES * (per_file * len(rows) + 1)


def _ingest_format_source(scratch: Path) -> None:
    """The daily flow's ingest of the Argus day folder (stages.daily.ingest, raw + quarantine)."""
    from core.sources import SourceLanding
    from stages.catalog import Catalog
    from stages.daily import ingest

    catalog = Catalog(data_dir=scratch / "data", out_dir=scratch / "out")
    landing = SourceLanding(path="exports/argus/{day:%Y-%m-%d}/*.binetflow", format="binetflow",
                            options={"timezone": "Europe/Prague"})
    ingest(catalog, "network_flows", ARGUS_DAY, landing=landing)


def _plain_text_copy(spark, scratch: Path) -> None:
    """A plain Spark read of the same files as text, written to Parquet."""
    folder = scratch / "data" / "exports" / "argus" / ARGUS_DAY.isoformat()
    spark.read.text(str(folder / "*.binetflow")).write.mode("overwrite").parquet(str(scratch / "text"))


def traffic_aggregation(config: Path) -> Aggregation:
    """The catalog's report on network flows (config/reports/network_traffic_region_hour.yaml)."""
    return next(s.aggregation for s in load_report_specs(config) if s.aggregation.source == "network_flows")


def dp_release(releases: ScratchReleaser, spark, path: Path, aggregation: Aggregation) -> Release:
    """The DP report on the prepared traffic, released through the front door (a new day each time)."""
    return releases.release(spark.read.parquet(str(path)), aggregation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="network flow rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--stages", nargs="+", choices=STAGES + OPTIONAL_STAGES, default=list(STAGES),
                        help="comparisons to run (default: protect and report)")
    parser.add_argument("--ingest-lines", type=int, default=2_000_000,
                        help="lines of the Argus day folder that --stages ingest reads")
    parser.add_argument("--protect-pieces", action="store_true",
                        help="also time each protect treatment alone (noop sink)")
    args = parser.parse_args()

    spark = get_spark("kr-reports-bench")
    config = ROOT / "config"
    aggregation = traffic_aggregation(config)

    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        releases = ScratchReleaser(Path(scratch) / "releases", config)
        landing = Path(scratch) / "landing"
        subscribers = max(1, args.rows // FLOWS_PER_SUBSCRIBER)
        start = time.perf_counter()
        generated = write_landing(landing, n_subscribers=subscribers, days=1, start_date=DAY)
        generate_s = time.perf_counter() - start
        flow_rows = generated["rows"]["network_flows"]
        traffic = Path(scratch) / "traffic"
        raw = Path(scratch) / "raw_flows"
        _prepare_raw_flows(spark, landing, raw)
        rules = load_policy(config).resolve(NETWORK_FLOWS)
        written = Path(scratch) / "written"

        selects, protects, plain, private = [], [], [], []
        if "report" in args.stages:
            rows = _prepare_traffic(spark, landing, traffic)
            _plain_report(spark, traffic)  # warm-up: JIT, file listing caches
            dp_release(releases, spark, traffic, aggregation)  # warm-up of the release's own jobs
        else:
            _plain_select(spark, raw, written)  # warm-up
        for _ in range(args.repeats):
            if "protect" in args.stages:
                selects.append(_timed(lambda: _plain_select(spark, raw, written)))
                protects.append(_timed(lambda: _protect(spark, raw, written, rules)))
            if "report" in args.stages:
                plain.append(_timed(lambda: _plain_report(spark, traffic)))
                private.append(_timed(lambda: dp_release(releases, spark, traffic, aggregation)))
        reads, ingests, argus_lines = [], [], 0
        if "ingest" in args.stages:
            argus_lines = _write_argus_day(
                Path(scratch) / "data" / "exports" / "argus" / ARGUS_DAY.isoformat(), args.ingest_lines)
            _ingest_format_source(Path(scratch))  # warm-up
            for _ in range(args.repeats):
                reads.append(_timed(lambda: _plain_text_copy(spark, Path(scratch))))
                ingests.append(_timed(lambda: _ingest_format_source(Path(scratch))))
        pieces = _bench_protect_pieces(spark, raw, rules, args.repeats) if args.protect_pieces else []

    all_rows = sum(generated["rows"].values())
    print()
    print(f"machine: {spark.sparkContext.defaultParallelism} cores (Spark {spark.version})")
    route = "the project's JVM functions" if jvm.has_function(jvm.HMAC_SHA256_HEX) else (
        "Spark's built-in functions (KR_JVM_FUNCTIONS=off or no javac)")
    print(f"protect's HMAC and IPv4 run on {route}")
    print(f"generator: {all_rows:,} rows over 5 sources ({flow_rows:,} network flows) "
          f"in {generate_s:.1f} s = {all_rows / generate_s:,.0f} rows/s")
    if "protect" in args.stages:
        _print_pair("plain Spark select + write", selects, "protect + write", protects)
    if pieces:
        print("protect pieces, each against a plain select of its input columns (noop sink):")
    for name, columns, plain_runs, piece_runs in pieces:
        _print_pair(f"plain select of {columns}", plain_runs, name, piece_runs)
    if "report" in args.stages:
        print(f"report input: {rows:,} flow rows with region and hour")
        _print_pair("plain Spark groupBy (countDistinct, sum, percentile_approx)", plain,
                    "DP release via Releaser (bound + aggregate + charge + noise + store)", private)
    if "ingest" in args.stages:
        print(f"ingest of a format source: {argus_lines:,} Argus binetflow lines in {ARGUS_FILES} files")
        _print_pair("plain Spark read as text + write", reads, "ingest (raw + quarantine, counted)", ingests)
    options = f" --stages {' '.join(args.stages)}" if set(args.stages) != set(STAGES) else ""
    options += " --protect-pieces" if args.protect_pieces else ""
    options += f" --ingest-lines {args.ingest_lines}" if "ingest" in args.stages else ""
    print(f"reproduce: .venv/bin/python bench/bench_pipeline.py --rows {args.rows} "
          f"--repeats {args.repeats}{options}")


def _print_pair(base_name: str, base: list[float], name: str, timed: list[float]) -> None:
    for label, runs in ((base_name, base), (name, timed)):
        print(f"  {label}: median {statistics.median(runs):.2f} s, "
              f"runs {[round(t, 2) for t in runs]}")
    print(f"  ratio: {statistics.median(timed) / statistics.median(base):.2f}x")


if __name__ == "__main__":
    main()
