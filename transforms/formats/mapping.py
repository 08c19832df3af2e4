"""A file's records -> the canonical source's landing text, as its format file says.

`map_records` computes every canonical column by its rule (conversion of
input fields, `transforms.formats.conversions`); a column no rule names is
null. A record is rejected when its layout found it broken (wrong field
count, no header, a cut last line) or when a time conversion cannot read a
time that is there ('malformed:timestamp'): a row without its event time is
no record of anything. Everything else is ingest's to judge.

`mapped` has exactly `SOURCES[target].column_names`, in order, all strings;
`rejected` has `REJECTED_COLUMNS` (file, line_number, a machine-readable
reason 'malformed:<what>' and the raw line as record).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.formats import CONVERSIONS, FileFormat
from core.schemas import SOURCES
from transforms.formats.conversions import convert
from transforms.formats.layouts import LAYOUT_RECORDS, Getter
from transforms.formats.records import FormatResult, split_result


def map_records(records: DataFrame, get: Getter, fmt: FileFormat, options: dict[str, str]) -> FormatResult:
    """`records` (file, line_number, value, _structural, fields) -> mapped and rejected."""
    target = SOURCES[fmt.target or ""]
    rules = {r.column: r for r in fmt.columns}
    columns = {c: convert(rules[c], get, options) if c in rules else F.lit(None).cast("string")
               for c in target.column_names}
    unreadable: Column = F.lit(None).cast("string")
    for rule in fmt.columns:
        if CONVERSIONS[rule.convert].is_time:
            present = F.lit(False)
            for name in rule.inputs:
                present = present | get(name).isNotNull()
            unreadable = F.coalesce(
                unreadable, F.when(present & columns[rule.column].isNull(), F.lit("malformed:timestamp"))
            )
    reason = F.coalesce(F.col("_structural"), unreadable)
    parsed = records.select(
        "file", "line_number", "value", reason.alias("_reason"),
        *[columns[c].alias(c) for c in target.column_names],
    )
    return split_result(parsed, target)


def map_lines(fmt: FileFormat, lines: DataFrame, **options: str) -> FormatResult:
    """Map the lines (or, for Parquet, the rows) of a file in format `fmt`.

    `options` are the format's options (`fmt.options`); unknown ones and bad
    values are a ValueError naming them.
    """
    if fmt.layout.kind not in LAYOUT_RECORDS:
        raise ValueError(f"format '{fmt.name}': layout {fmt.layout.kind} is not read line by line")
    values = fmt.resolve_options(options)
    records, get = LAYOUT_RECORDS[fmt.layout.kind](lines, fmt)
    return map_records(records, get, fmt, values)
