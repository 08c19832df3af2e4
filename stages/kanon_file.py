"""`kr-reports kanon`: a record-level table made k-anonymous (optionally l-diverse, t-close).

Reads a delimited file, quarantines rows whose quasi-identifier values are
not in their hierarchy (with a reason; rows in = rows used + quarantined),
anonymizes with the optimal full-domain search (or Mondrian), and runs the
independent verifier on the output before anything is written. Writes the
anonymized table and `report.json` to OUT: the chosen transformation,
suppressed records, every information-loss metric, the re-identification
risk and the verifier's result. The report holds numbers and column names
only, never values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.kanon.hierarchy import Hierarchy, find_hierarchies
from core.kanon.models import KAnonymityError
from core.location import write_once
from stages.spark import get_spark
from transforms.kanon import AnonymizationConfig, Requirements, anonymize

REASON_COLUMN = "reason"




def check_requirements(req: Requirements) -> None:
    if req.k < 1:
        raise KAnonymityError(f"k must be at least 1, got {req.k}")
    if (req.l is not None or req.t is not None) and req.sensitive is None:
        raise KAnonymityError("l-diversity and t-closeness need --sensitive COL")
    if req.l_kind == "recursive" and req.c is None:
        raise KAnonymityError("recursive (c, l)-diversity needs --c")
    if not 0 <= req.suppression_limit < 1:
        raise KAnonymityError(f"suppression limit must be in [0, 1), got {req.suppression_limit}")


def read_table(path: Path, sep: str) -> DataFrame:
    if not path.exists():
        raise KAnonymityError(f"{path}: input not found")
    return get_spark().read.option("header", True).option("sep", sep).csv(str(path))


def _check_columns(df: DataFrame, path: Path, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KAnonymityError(f"{path}: no column {', '.join(repr(c) for c in missing)} in its header")


def with_quarantine_reason(df: DataFrame, hierarchies: Mapping[str, Hierarchy]) -> DataFrame:
    """A `reason` column: null for usable rows, else which column's value its hierarchy lacks."""
    reason = F.lit(None).cast("string")
    for column, hierarchy in reversed(list(hierarchies.items())):
        unknown = ~F.col(column).isin(list(hierarchy.values)) | F.col(column).isNull()
        reason = F.when(unknown, F.lit(f"{column}: value not in its hierarchy")).otherwise(reason)
    return df.withColumn(REASON_COLUMN, reason)


def kanon_file(
    input_path: Path,
    out: Path,
    quasi_identifiers: Sequence[str],
    hierarchy_dir: Path,
    req: Requirements,
    *,
    sep: str = ";",
    metric: str = "loss",
    algorithm: str = "optimal",
    unit: str | None = None,
    hierarchy_files: Mapping[str, str] | None = None,
    quarantine: Path | None = None,
) -> dict:
    check_requirements(req)
    df = read_table(input_path, sep)
    _check_columns(df, input_path, [*quasi_identifiers, *(c for c in (req.sensitive, unit) if c)])
    hierarchies = find_hierarchies(hierarchy_dir, quasi_identifiers, hierarchy_files, sep)
    flagged = with_quarantine_reason(df, hierarchies).persist()
    try:
        rows_in = flagged.count()
        usable = flagged.where(F.col(REASON_COLUMN).isNull()).drop(REASON_COLUMN).persist()
        rejected = flagged.where(F.col(REASON_COLUMN).isNotNull())
        by_reason = {r[REASON_COLUMN]: r["count"] for r in rejected.groupBy(REASON_COLUMN).count().collect()}
        config = AnonymizationConfig(hierarchies, req, algorithm=algorithm, metric=metric, unit=unit)
        result = anonymize(usable, config)  # a refusal is KAnonymityError: one line, exit 2
        report = _report(input_path, rows_in, by_reason, req, result.summary(), result.verification, out,
                         quarantine)
        _write(out, result.data, sep, report)
        if by_reason and quarantine is not None:
            rejected.write.mode("overwrite").option("header", True).option("sep", sep).csv(str(quarantine))
        result.unpersist()
        usable.unpersist()
    finally:
        flagged.unpersist()
    return report


def _report(input_path, rows_in, by_reason, req, search, verification, out, quarantine) -> dict:
    quarantined = sum(by_reason.values())
    return {
        "input": str(input_path),
        "rows_in": rows_in,
        "rows_used": rows_in - quarantined,
        "rows_quarantined": quarantined,
        "quarantined_by_reason": by_reason,
        "quarantine": str(quarantine) if quarantined and quarantine is not None else None,
        "requirements": asdict(req),
        **search,
        "verification": verification.to_dict(),
        "output": str(out / "anonymized"),
    }


def _write(out: Path, output: DataFrame, sep: str, report: dict) -> None:
    """Table and report land together, or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)

    def fill(folder: Path) -> None:
        output.write.option("header", True).option("sep", sep).csv(str(folder / "anonymized"))
        (folder / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))

    if not write_once(out, fill, marker="report.json"):
        raise KAnonymityError(f"{out}: already exists; choose a new output folder")
