"""`kr-reports protect`: one real file through mapping, ingest, the policy and validation.

Writes to OUT: `protected/` (Parquet) and `summary.json`. Unusable rows go to
a quarantine in the internal data zone (they hold raw identifiers, so they
never sit beside a protected output); the summary says where.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.config import DEFAULT_PLAUSIBLE_TIME, PlausibleTime
from core.formats import FileFormat
from core.keys import master_key, release_key
from core.names import check_identifier
from core.policy import Policy
from core.schemas import SOURCES
from expectations.runner import validate_dataframe
from expectations.suites import build_protected_suite
from stages.catalog import read_parquet, write_parquet
from stages.daily import (
    RowConservationError,
    count_by_reason,
    references_for,
    treatment_summary,
)
from stages.formats import FormatError, read_format
from stages.spark import error_condition, get_spark
from transforms.ingest import filter_quarantined, filter_usable, with_typed_and_reasons
from transforms.protect import protect, protected_columns

log = logging.getLogger(__name__)
READ_FAILURES = ("FAILED_READ_FILE", "CANNOT_READ_FILE", "PATH_NOT_FOUND")


def _structural_quarantine(rejected: DataFrame, source: str) -> DataFrame:
    """Lines the format could not map, in the quarantine's columns (flagged structural)."""
    return rejected.select(
        F.lit(source).alias("source"),
        F.col("reason"),
        F.array(F.col("reason")).alias("reasons"),
        F.col("record"),
        F.lit(True).alias("structural"),
    )


def protect_file(
    fmt: str | FileFormat,
    input_path: Path,
    out_dir: Path,
    quarantine_dir: Path,
    policy: Policy,
    purpose: str,
    release: str,
    demo: bool,
    day: dt.date | None = None,
    plausible_time: PlausibleTime = DEFAULT_PLAUSIBLE_TIME,
    **options,
) -> dict:
    """Map, ingest, protect and validate one input; return the summary also written to OUT.

    Release id and purpose must be plain names (core.names); the quarantine
    folder is the caller's to choose (it is replaced).
    """
    check_identifier(release, "release id")
    check_identifier(purpose, "purpose")
    key = release_key(master_key(demo), purpose, release)  # fail before reading on no key
    spark = get_spark()
    with _read_failures_named(input_path, fmt if isinstance(fmt, str) else fmt.name):
        return _protect(spark, fmt, input_path, out_dir, quarantine_dir, policy, purpose, release,
                        key, day, plausible_time, options)


@contextmanager
def _read_failures_named(input_path: Path, fmt: str) -> Iterator[None]:
    """Spark's failure to read the input, as one FormatError naming the file and Spark's error class.

    Spark's message is left out: it may quote the data. Other failures pass unchanged.
    """
    try:
        yield
    except Exception as exc:
        condition = error_condition(exc)
        if condition is None or not condition.startswith(READ_FAILURES):
            raise
        raise FormatError(f"{input_path}: cannot be read as {fmt} ({condition}); expected an intact "
                          "file of that format") from None


def _protect(spark, fmt: str | FileFormat, input_path: Path, out_dir: Path, quarantine_dir: Path,
             policy: Policy, purpose: str, release: str, key: bytes, day: dt.date | None,
             plausible_time: PlausibleTime, options: dict) -> dict:
    mapped, rejected, facts = read_format(spark, fmt, input_path, **options)
    source = SOURCES[facts["target"]]
    rules = policy.resolve(source)

    plausible = plausible_time.time_range(dt.datetime.now(dt.UTC).date())
    flagged = with_typed_and_reasons(mapped, source, day, plausible).persist()
    try:
        records = flagged.count()
        quarantine = filter_quarantined(flagged, source).withColumn(
            "structural", F.lit(False)
        ).unionByName(
            _structural_quarantine(rejected, source.name)
        )
        write_parquet(quarantine, quarantine_dir)
        usable = filter_usable(flagged, source)
        on = day or dt.datetime.now(dt.UTC).date()
        write_parquet(protect(usable, rules, key, on, references_for(rules)), out_dir / "protected")
    finally:
        flagged.unpersist()

    protected = read_parquet(spark, out_dir / "protected")
    kept = protected.count()
    by_reason = count_by_reason(read_parquet(spark, quarantine_dir))
    quarantined = sum(by_reason.values())
    rows_in = records + read_parquet(spark, quarantine_dir).where(F.col("structural")).count()
    if rows_in != kept + quarantined:
        raise RowConservationError(
            f"{input_path}: {rows_in} rows in, but {kept} kept + {quarantined} quarantined"
        )
    validation = validate_dataframe(
        protected,
        build_protected_suite(
            source, protected_columns(rules), [c for c, t in protected.dtypes if t == "string"]
        ),
        label=f"protected {input_path.name}",
    )
    summary = {
        "input": str(input_path),
        "format": facts["format"],
        "target_source": source.name,
        "purpose": purpose,
        "release": release,
        "rows_in": rows_in,
        "rows_kept": kept,
        "rows_quarantined": quarantined,
        "quarantined_by_reason": by_reason,
        "quarantine_path": str(quarantine_dir),
        "protected_path": str(out_dir / "protected"),
        "columns": treatment_summary(rules),
        "input_fields_not_carried": facts["dropped"],
        "validation": {k: validation[k] for k in ("suite", "success", "evaluated")},
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary
