"""The project's own landing files ('canonical'), read back as canonical text.

`map_canonical_csv` and `map_canonical_json` parse lines with Spark's
`from_csv` / `from_json` (a record that does not parse is
'malformed:record'); `map_canonical` casts a Spark-read Parquet dataset to
text. Columns are checked against the source by the caller (stages).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from core.formats import canonical_format
from core.schemas import SOURCES
from transforms.formats.records import (
    LANDING_TIMESTAMP_FORMAT,
    FormatResult,
    first_reason,
    is_blank,
    split_result,
    with_line_defaults,
)
from transforms.ingest import check_landing_columns

CORRUPT_RECORD_COLUMN = "_corrupt_record"  # from_csv / from_json, PERMISSIVE mode


def _text_schema(columns: list[str]) -> str:
    fields = [f"`{c}` string" for c in columns]
    return ", ".join([*fields, f"`{CORRUPT_RECORD_COLUMN}` string"])


_PERMISSIVE = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_RECORD_COLUMN}


def _map_canonical_records(lines: DataFrame, source: str, record: Column) -> FormatResult:
    """`record` parses `value` into a struct of the canonical columns plus the corrupt-record column."""
    target = SOURCES[canonical_format(source).target or ""]
    parsed = lines.select("file", "line_number", "value", "truncated", record.alias("_r"))
    reason = first_reason(
        (F.col("truncated"), "malformed:truncated"),
        (F.col("_r").isNull() | F.col(f"_r.{CORRUPT_RECORD_COLUMN}").isNotNull(), "malformed:record"),
    )
    return split_result(
        parsed.select(
            "file", "line_number", "value", reason.alias("_reason"),
            *[F.col(f"_r.`{c}`").alias(c) for c in target.column_names],
        ),
        target,
    )


def join_quoted_lines(lines: DataFrame) -> DataFrame:
    """CSV lines with each record whole: a quoted field holding line breaks joins its lines.

    A line with an odd number of double quotes opens or closes a quoted field
    (a doubled quote counts two, a backslash-escaped one none, as Spark's CSV
    parser reads them); a line that starts inside one continues the record
    above it. The record keeps its first line's number, its lines are joined
    with '\n' (a CRLF inside the field becomes LF) and it is `truncated` when
    any of its lines is. A quote never closed runs to the end of its file and
    fails to parse there, as one malformed record.

    Cost: one sort of each file's lines (a window per file), as Spark's own
    multiLine CSV reading makes each file one task.
    """
    lines = with_line_defaults(lines)
    unescaped = F.regexp_replace(F.col("value"), r"\\.", "")
    quotes = F.length(unescaped) - F.length(F.regexp_replace(unescaped, '"', ""))
    in_file = Window.partitionBy("file").orderBy("line_number")
    above = in_file.rowsBetween(Window.unboundedPreceding, -1)
    so_far = in_file.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    continues = F.coalesce(F.sum(quotes % F.lit(2)).over(above), F.lit(0)) % F.lit(2) == F.lit(1)
    opened = lines.select("*", continues.alias("_continues"))
    record = F.max(F.when(~F.col("_continues"), F.col("line_number"))).over(so_far)
    ordered = F.array_sort(F.collect_list(F.struct("line_number", "value")))
    return (
        opened.select("*", record.alias("_record"))
        .groupBy("file", "_record")
        .agg(
            F.concat_ws("\n", F.transform(ordered, lambda part: part["value"])).alias("value"),
            F.max("truncated").alias("truncated"),
        )
        .select("file", F.col("_record").alias("line_number"), "value", "truncated")
    )


def map_canonical_csv(lines: DataFrame, source: str, header: list[str]) -> FormatResult:
    """Lines of the project's landing CSV files (header line 1 = `header`) -> canonical text.

    Parsed with Spark's own CSV options (`from_csv`: double quotes, backslash
    escapes, as Spark writes them); a record with another number of fields is
    'malformed:record'. A quoted value spanning lines is one record
    (`join_quoted_lines`), numbered by its first line.
    """
    lines = join_quoted_lines(lines)
    data = lines.where((F.col("line_number") > F.lit(1)) & ~is_blank(F.col("value")))
    return _map_canonical_records(data, source, F.from_csv(F.col("value"), _text_schema(header), _PERMISSIVE))


def map_canonical_json(lines: DataFrame, source: str) -> FormatResult:
    """Lines of the project's landing JSON-lines files -> canonical text.

    Numbers and booleans become their JSON text, absent keys null; a line
    that is not a JSON object is 'malformed:record'.
    """
    lines = with_line_defaults(lines)
    data = lines.where(~is_blank(F.col("value")))
    columns = SOURCES[canonical_format(source).target or ""].column_names
    is_object = F.trim(F.col("value")).startswith("{")
    record = F.when(is_object, F.from_json(F.col("value"), _text_schema(columns), _PERMISSIVE))
    return _map_canonical_records(data, source, record)


def map_canonical(df: DataFrame, source: str) -> FormatResult:
    """A Spark-read dataset of the project's landing files (Parquet) -> canonical text columns.

    `df` has the source's canonical columns (any order, any types) and may
    have `file`. Timestamps are written in the landing format, everything
    else cast to string; nothing is rejected (a Parquet file has no broken
    lines). Raises `transforms.ingest.SchemaMismatch` when columns differ.
    """
    target = SOURCES[canonical_format(source).target or ""]
    check_landing_columns(df.drop("file"), target, f"canonical {source}")
    types = dict(df.dtypes)

    def as_text(name: str) -> Column:
        if types[name].startswith("timestamp"):
            return F.date_format(F.col(name), LANDING_TIMESTAMP_FORMAT)
        return F.col(name).cast("string")

    file = F.col("file") if "file" in df.columns else F.lit(None).cast("string")
    parsed = df.select(
        file.alias("file"),
        F.lit(None).cast("bigint").alias("line_number"),
        F.lit(None).cast("string").alias("value"),
        F.lit(None).cast("string").alias("_reason"),
        *[as_text(c).alias(c) for c in target.column_names],
    )
    return split_result(parsed, target)

