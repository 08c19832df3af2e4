"""Write the embedded default data: synthetic landing files for all five sources.

Layout under `out_dir` (the landing zone, files as an operator exports them):

    subscribers/                      one dataset
    devices/                          one dataset
    <daily source>/date=YYYY-MM-DD/   one dataset per day and source
    .complete                         JSON marker written last: generator, parameters and row counts

Each dataset is written once (overwrite mode) and counted while it is written
(a Spark Observation), so generating costs one action per dataset.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from core.schemas import SOURCES
from stages.catalog import SYNTHETIC_GENERATOR
from stages.spark import get_spark
from synthetic import (
    CORRUPTED,
    generate_call_records,
    generate_devices,
    generate_network_flows,
    generate_subscribers,
    generate_web_visits,
    with_bad_rows,
)

FILE_FORMATS = ("parquet", "csv", "json")
COMPLETE_MARKER = ".complete"
DAILY_GENERATORS: dict[str, Callable[[DataFrame, dt.date, int], DataFrame]] = {
    "call_records": generate_call_records,
    "network_flows": generate_network_flows,
    "web_visits": generate_web_visits,
}


def write_landing(
    out_dir: Path,
    n_subscribers: int,
    days: int,
    seed: int = 7,
    bad_row_rate: float = 0.0,
    start_date: dt.date = dt.date(2026, 11, 1),
    file_format: str = "parquet",
) -> dict:
    """Generate and write all five sources for `days` days; return the .complete record."""
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {FILE_FORMATS}, not '{file_format}'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / COMPLETE_MARKER
    marker.unlink(missing_ok=True)  # a partial rewrite must not look complete
    dates = [start_date + dt.timedelta(days=i) for i in range(days)]

    spark = get_spark()
    subscribers = generate_subscribers(spark, n_subscribers, seed).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        rows: dict[str, int] = {}
        rows_by_date: dict[str, dict[str, int]] = {name: {} for name in DAILY_GENERATORS}
        corrupted: dict[str, int] = {}
        rows["subscribers"], corrupted["subscribers"] = write_source(
            subscribers, "subscribers", out_dir / "subscribers", file_format, bad_row_rate, seed
        )
        rows["devices"], corrupted["devices"] = write_source(
            generate_devices(subscribers, seed),
            "devices", out_dir / "devices", file_format, bad_row_rate, seed,
        )
        for name, generate in DAILY_GENERATORS.items():
            corrupted[name] = 0
            for day in dates:
                path = out_dir / name / f"date={day.isoformat()}"
                daily = generate(subscribers, day, seed)
                rows_by_date[name][day.isoformat()], bad = write_source(
                    daily, name, path, file_format, bad_row_rate, seed, day
                )
                corrupted[name] += bad
            rows[name] = sum(rows_by_date[name].values())
    finally:
        subscribers.unpersist()

    record = {
        "generator": SYNTHETIC_GENERATOR,  # what `serve` with demo keys requires (flows.schedules)
        "seed": seed,
        "subscribers": n_subscribers,
        "days": days,
        "start_date": start_date.isoformat(),
        "dates": [d.isoformat() for d in dates],
        "bad_row_rate": bad_row_rate,
        "format": file_format,
        "rows": rows,
        "rows_by_date": rows_by_date,
        "rows_corrupted": corrupted,  # rows made to fail a rule: what ingest must quarantine
    }
    marker.write_text(json.dumps(record, indent=2) + "\n")
    print(f"generate: complete, {sum(rows.values()):,} rows in {out_dir}", flush=True)
    return record


def write_source(
    df: DataFrame,
    name: str,
    path: Path,
    file_format: str,
    bad_row_rate: float,
    seed: int,
    day: dt.date | None = None,
) -> tuple[int, int]:
    """Corrupt a share of rows, write one dataset; return its rows and corrupted rows (one action)."""
    if bad_row_rate > 0:
        df = with_bad_rows(df, SOURCES[name], bad_row_rate, seed, day)
    else:
        df = df.withColumn(CORRUPTED, F.lit(False))
    rows, corrupted = write_dataset(df, path, file_format)
    when = f" {day.isoformat()}" if day else ""
    print(f"generate: {name}{when} ... {rows:,} rows", flush=True)
    return rows, corrupted


def write_dataset(df: DataFrame, path: Path, file_format: str) -> tuple[int, int]:
    """Write `df` but its `_corrupted` flag to `path` (overwrite); count its rows and the
    flagged ones during the same job."""
    observation = Observation()
    counted = df.observe(
        observation,
        F.count(F.lit(1)).alias("rows"),
        F.coalesce(F.sum(F.col(CORRUPTED).cast("int")), F.lit(0)).alias("corrupted"),
    )
    writer = counted.drop(CORRUPTED).write.mode("overwrite")
    if file_format == "parquet":
        # Most landing columns are near-unique text (ids, addresses, times): building a
        # dictionary per page that Parquet then abandons cost a fifth of the write.
        writer = writer.option("parquet.enable.dictionary", False)
    if file_format == "csv":
        writer = writer.option("header", True)
    if file_format == "json":
        writer = writer.option("ignoreNullFields", False)
    writer.format(file_format).save(str(path))
    return int(observation.get["rows"]), int(observation.get["corrupted"])
