"""How a layout turns a file's lines into records of named fields (and which lines are not records).

Each layout returns `(records, get)`: records with `file, line_number,
value, _structural` (why the line is not a record, or null) and the field
arrays; `get(name)` gives a field's text for a record, null where the file
has no value (Zeek's '-' and '(empty)', a blank CSV cell, a web log's '-').

- zeek: TSV under '#fields' header lines; a file may hold several sections
  (rotated logs concatenated with `cat`), each with its own '#fields'.
- csv: a delimiter, double-quote quoting on one line, names from each file's
  first line (or the layout's `fields` for files without a header).
- combined_log: the web server combined (or common) log, by one regular
  expression, fields named as in `COMBINED_LOG_FIELDS`.
- json_lines: one JSON object per line; a line that is not one is broken.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from core.formats import FileFormat
from transforms.formats.records import (
    blank_to_null,
    field_getter,
    first_reason,
    is_blank,
    missing_fields,
    regex_groups,
    with_line_defaults,
)

Getter = Callable[[str], Column]

# Zeek's defaults for '#unset_field' and '#empty_field'; both mean "no value".
ZEEK_UNSET = "-"
ZEEK_EMPTY = "(empty)"
ZEEK_SEPARATOR = "\t"

# host ident authuser [time] "request" status size "referer" "agent". Quoted fields may
# contain backslash-escaped quotes. Valid in Java and Python 3.11+ (possessive quantifiers:
# no backtracking inside long user agents).
_QUOTED = r'"([^"\\]*+(?:\\.[^"\\]*+)*+)"'
COMBINED_LOG_PATTERN = (
    r"^(\S+) (\S+) (\S+) \[([^\]]+)\] " + _QUOTED + r" (\S+) (\S+)"
    r"(?: " + _QUOTED + " " + _QUOTED + r")?\s*$"
)
COMBINED_LOG_FIELDS = ("host", "ident", "authuser", "time", "request", "status", "size", "referer",
                       "user_agent")


def _structural(names: Column, values: Column, required: list[str]) -> Column:
    return first_reason(
        (F.col("truncated"), "malformed:truncated"),
        (names.isNull(), "malformed:no_header"),
        (missing_fields(names, required), "malformed:header"),
        (F.size(values) != F.size(names), "malformed:field_count"),
    )


def zeek_records(lines: DataFrame, fmt: FileFormat) -> tuple[DataFrame, Getter]:
    """Data lines of Zeek logs with their section's `#fields` (`names`) and split `values`.

    A data line takes the nearest '#fields' line above it in its file. Lines
    starting with '#' and blank lines are not data.
    """
    lines = with_line_defaults(lines)
    headers = lines.where(F.col("value").startswith("#fields\t")).select(
        F.col("file").alias("_h_file"),
        F.col("line_number").alias("_h_line"),
        F.split(F.regexp_extract("value", r"^#fields\t(.*)$", 1), ZEEK_SEPARATOR).alias("names"),
    )
    # lead() needs no frame: it reads the next header line of the same file.
    next_header = Window.partitionBy("_h_file").orderBy("_h_line")
    sections = headers.select(
        "_h_file", "_h_line", "names", F.lead("_h_line").over(next_header).alias("_h_next")
    )
    data = lines.where(~F.col("value").startswith("#") & ~is_blank(F.col("value")))
    in_section = (
        data["file"].eqNullSafe(sections["_h_file"])
        & (data["line_number"] > sections["_h_line"])
        & (sections["_h_next"].isNull() | (data["line_number"] < sections["_h_next"]))
    )
    joined = data.join(F.broadcast(sections), on=in_section, how="left")
    values = F.split(F.col("value"), ZEEK_SEPARATOR, -1)
    records = joined.select(
        "file", "line_number", "value", "names", values.alias("values"),
        _structural(F.col("names"), values, fmt.required_columns).alias("_structural"),
    )
    raw = field_getter(F.col("names"), F.col("values"))

    def get(name: str) -> Column:
        text = raw(name)
        return F.when(~text.isin(ZEEK_UNSET, ZEEK_EMPTY, ""), text)

    return records, get


def split_delimited(line: Column, delimiter: str) -> Column:
    """Fields of one line: a delimiter inside double quotes does not split; quotes are removed.

    RFC 4180 quoting on one line ('"a,b"', '""' for a quote); a field with a
    line break inside quotes is not supported.
    """
    escaped = "\\" + delimiter if not delimiter.isalnum() else delimiter
    outside_quotes = escaped + r'(?=(?:[^"]*"[^"]*")*[^"]*$)'
    parts = F.when(line.contains('"'), F.split(line, outside_quotes, -1)).otherwise(
        F.split(line, escaped, -1)
    )
    quoted = r'^"(.*)"$'
    return F.transform(
        parts,
        lambda p: F.when(
            p.rlike(quoted), F.regexp_replace(F.regexp_extract(p, quoted, 1), '""', '"')
        ).otherwise(p),
    )


def csv_records(lines: DataFrame, fmt: FileFormat) -> tuple[DataFrame, Getter]:
    """Data lines of delimited files with their header (`names`, line 1 of each file) and split `values`.

    A byte-order mark before the header is ignored; a line equal to its
    file's header (files concatenated with `cat`) and blank lines are not
    data. Fields are trimmed; a blank one is null.
    """
    lines = with_line_defaults(lines)
    delimiter = fmt.layout.delimiter
    if fmt.layout.header:
        header_text = F.trim(F.regexp_replace(F.col("value"), "^\ufeff", ""))
        headers = lines.where(F.col("line_number") == F.lit(1)).select(
            F.col("file").alias("_h_file"),
            header_text.alias("_h_text"),
            F.transform(split_delimited(header_text, delimiter), lambda n: F.trim(n)).alias("names"),
        )
        data = lines.where((F.col("line_number") > F.lit(1)) & ~is_blank(F.col("value")))
        joined = data.join(
            F.broadcast(headers), on=data["file"].eqNullSafe(headers["_h_file"]), how="left"
        ).where(F.col("_h_text").isNull() | (F.trim(F.col("value")) != F.col("_h_text")))
    else:
        names = F.array(*[F.lit(n) for n in fmt.layout.fields])
        joined = lines.where(~is_blank(F.col("value"))).select("*", names.alias("names"))
    values = split_delimited(F.col("value"), delimiter)
    records = joined.select(
        "file", "line_number", "value", "names", values.alias("values"),
        _structural(F.col("names"), values, fmt.required_columns).alias("_structural"),
    )
    raw = field_getter(F.col("names"), F.col("values"))
    return records, lambda name: blank_to_null(F.trim(raw(name)))


def combined_log_records(lines: DataFrame, fmt: FileFormat) -> tuple[DataFrame, Getter]:
    """Web server log lines split by `COMBINED_LOG_PATTERN`; a line without that form is 'malformed:line'."""
    lines = with_line_defaults(lines)
    value = F.col("value")
    parts = regex_groups(value, COMBINED_LOG_PATTERN, len(COMBINED_LOG_FIELDS))
    well_formed = value.rlike(COMBINED_LOG_PATTERN) & (F.size(parts) == F.lit(len(COMBINED_LOG_FIELDS)))
    reason = first_reason((F.col("truncated"), "malformed:truncated"), (~well_formed, "malformed:line"))
    records = lines.where(~is_blank(value)).select(
        "file", "line_number", "value", parts.alias("values"), reason.alias("_structural")
    )

    def get(name: str) -> Column:
        text = F.get(F.col("values"), COMBINED_LOG_FIELDS.index(name))
        return F.when((text != F.lit("-")) & (text != F.lit("")), text)

    return records, get


def json_records(lines: DataFrame, fmt: FileFormat) -> tuple[DataFrame, Getter]:
    """JSON lines: each a flat object; numbers and booleans as their JSON text, absent keys null."""
    lines = with_line_defaults(lines)
    value = F.col("value")
    as_map = F.when(F.trim(value).startswith("{"), F.try_parse_json(value))
    records = lines.where(~is_blank(value)).select(
        "file", "line_number", "value", as_map.alias("_json"),
        first_reason((F.col("truncated"), "malformed:truncated"),
                     (as_map.isNull(), "malformed:record")).alias("_structural"),
    )

    def get(name: str) -> Column:
        path = "$['" + name.replace("'", "\\'") + "']"
        return blank_to_null(F.trim(F.try_variant_get(F.col("_json"), path, "string")))

    return records, get


def table_records(df: DataFrame, fmt: FileFormat) -> tuple[DataFrame, Getter]:
    """A Spark-read table (Parquet): every row a record, columns read by name as text."""
    file = F.col("file") if "file" in df.columns else F.lit(None).cast("string")
    records = df.select(
        "*", file.alias("_file"), F.lit(None).cast("bigint").alias("line_number"),
        F.lit(None).cast("string").alias("value"), F.lit(None).cast("string").alias("_structural"),
    ).drop("file").withColumnRenamed("_file", "file")
    return records, lambda name: blank_to_null(F.trim(F.col(f"`{name}`").cast("string")))


LAYOUT_RECORDS: dict[str, Callable[[DataFrame, FileFormat], tuple[DataFrame, Getter]]] = {
    "zeek": zeek_records,
    "csv": csv_records,
    "combined_log": combined_log_records,
    "json_lines": json_records,
    "parquet": table_records,
}
