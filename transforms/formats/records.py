"""Pieces every layout shares: line numbers, blank and null handling, and the mapped/rejected split.

Input of the text layouts ("lines"): one row per line of a file, columns
`value` (the line without its terminator) and `line_number` (1-based), plus
optionally `file` (lines of several files; headers are matched per file) and
`truncated` (true for a last line that had no line terminator). The stages
layer builds it (`stages.formats.read_lines`) with `number_lines`.

A layout turns lines into records: `file, line_number, value, names` (the
field names that apply to the line), `values` (its fields, same order) and
`_structural` (why the line is not a record, or null). Native Spark only:
no Python UDFs, no RDDs, nothing collected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from core.schemas import SourceSpec

LANDING_TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"  # transforms.ingest.TIMESTAMP_FORMAT
REJECTED_COLUMNS = ("file", "line_number", "reason", "record")
REJECTED_SCHEMA = "file string, line_number bigint, reason string, record string"
_GROUP_SEPARATOR = "\u0001"  # not in log text; a line holding it does not split into its groups


class FormatResult(NamedTuple):
    """Canonical landing text and the lines that could not be read as records."""

    mapped: DataFrame
    rejected: DataFrame


def number_lines(scanned: DataFrame) -> DataFrame:
    """Exact 1-based line numbers for lines read by `spark.read.text`, without a global sort.

    `scanned` has `file`, `value`, `block_start` (`_metadata.file_block_start`:
    which split of the file the line came from) and `row_id`
    (`monotonically_increasing_id()` taken right after the scan). A split is
    read in order by one task, so within a split the id grows by one per line;
    lines before a split are counted in a small per-split aggregate (one row
    per split) that is broadcast back. Adds `last_line` (the file's last line).
    """
    per_split = scanned.groupBy("file", "block_start").agg(
        F.count(F.lit(1)).alias("_lines"), F.min("row_id").alias("_first_id")
    )
    earlier = (
        Window.partitionBy("file").orderBy("block_start")
        .rowsBetween(Window.unboundedPreceding, -1)
    )
    whole_file = Window.partitionBy("file").rowsBetween(
        Window.unboundedPreceding, Window.unboundedFollowing
    )
    splits = per_split.select(
        "file",
        "block_start",
        "_first_id",
        F.coalesce(F.sum("_lines").over(earlier), F.lit(0)).alias("_lines_before"),
        F.sum("_lines").over(whole_file).alias("_file_lines"),
    )
    line_number = F.col("_lines_before") + (F.col("row_id") - F.col("_first_id")) + F.lit(1)
    return scanned.join(F.broadcast(splits), on=["file", "block_start"], how="inner").select(
        "file",
        line_number.cast("bigint").alias("line_number"),
        "value",
        (line_number == F.col("_file_lines")).alias("last_line"),
    )


def with_line_defaults(lines: DataFrame) -> DataFrame:
    """`file`, `line_number`, `value`, `truncated`, whichever optional ones were absent."""
    file = F.col("file") if "file" in lines.columns else F.lit(None).cast("string")
    truncated = F.col("truncated") if "truncated" in lines.columns else F.lit(False)
    return lines.select(
        file.alias("file"),
        F.col("line_number").cast("bigint").alias("line_number"),
        F.col("value"),
        F.coalesce(truncated, F.lit(False)).alias("truncated"),
    )


def is_blank(value: Column) -> Column:
    return F.trim(value) == F.lit("")


def blank_to_null(text: Column) -> Column:
    return F.when(~is_blank(text), text)


def first_reason(*checks: tuple[Column, str]) -> Column:
    """The first failed check's reason, null when every check passes."""
    reason = F.lit(None).cast("string")
    for failed, name in reversed(checks):
        reason = F.when(failed, F.lit(name)).otherwise(reason)
    return reason


def split_result(parsed: DataFrame, target: SourceSpec) -> FormatResult:
    """`parsed` has file, line_number, value, _reason and the canonical columns."""
    mapped = parsed.where(F.col("_reason").isNull()).select(
        *[F.col(c).cast("string").alias(c) for c in target.column_names]
    )
    rejected = parsed.where(F.col("_reason").isNotNull()).select(
        F.col("file").cast("string").alias("file"),
        F.col("line_number").cast("bigint").alias("line_number"),
        F.col("_reason").alias("reason"),
        F.col("value").cast("string").alias("record"),
    )
    return FormatResult(mapped, rejected)


def field_getter(names: Column, values: Column) -> Callable[[str], Column]:
    """name -> the value of that field (null when the names lack it)."""

    def get(name: str) -> Column:
        position = F.array_position(names, F.lit(name))
        return F.get(values, (position - F.lit(1)).cast("int"))

    return get


def missing_fields(names: Column, required: list[str]) -> Column:
    return F.size(F.array_except(F.array(*[F.lit(n) for n in required]), names)) > F.lit(0)


def regex_groups(text: Column, pattern: str, groups: int) -> Column:
    """The pattern's groups 1..`groups` as an array, from one regex match (not one per group).

    Only meaningful where `text` matches the anchored `pattern` (check with rlike).
    """
    replacement = _GROUP_SEPARATOR.join(f"${i}" for i in range(1, groups + 1))
    return F.split(F.regexp_replace(text, pattern, replacement), _GROUP_SEPARATOR, -1)


def ntz_text(wall_clock: Column) -> Column:
    return F.date_format(wall_clock, LANDING_TIMESTAMP_FORMAT)
