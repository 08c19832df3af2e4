"""Read the files operators really have and map them onto a canonical source (the IO half).

`read_format(spark, fmt, path, **options)` checks each input file (present,
not empty, has its header), reads its lines with exact line numbers, and
hands them to the pure mapping in `transforms.formats`. It returns the
mapped canonical landing text, the rejected lines and a small dict of facts
(format, target source, input columns, what was carried and what dropped).

Line numbers: each file is read with `spark.read.text` (which ends lines at
LF, CRLF or CR and drops the terminator), tagged with the split it came from
(`_metadata.file_block_start`) and `monotonically_increasing_id()`; a split is
read in order by one task, so `transforms.formats.number_lines` turns the ids
into exact 1-based line numbers with one small per-split aggregate. No
global sort, no RDD, nothing collected, and files of any size keep their
parallel splits.

A cut file: the last line of a file that does not end with a line
terminator is marked `truncated` and rejected ('malformed:truncated'),
since its last field may be cut short without looking wrong. Pass
`allow_unterminated_last_line=True` for writers that omit the final newline.
(A gzipped file is decompressed once before Spark reads it: a cut stream is
an error naming the file.)
"""

from __future__ import annotations

import csv
import functools
import gzip
import re
import zlib
from pathlib import Path
from typing import IO, Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from core.errors import KrReportsError
from core.schemas import SOURCES
from stages.catalog import MissingInput
from transforms.formats import (
    COMBINED_LOG_PATTERN,
    FORMATS,
    ZEEK_EMPTY,
    ZEEK_UNSET,
    FormatSpec,
    canonical_spec,
    map_canonical,
    map_canonical_csv,
    map_canonical_json,
    map_lines,
    number_lines,
)
from transforms.ingest import check_landing_columns

READER_OPTIONS = {
    "zeek": ("allow_unterminated_last_line",),
    "csv": ("allow_unterminated_last_line",),
    "combined_log": ("allow_unterminated_last_line",),
    "canonical": ("file_format", "allow_unterminated_last_line"),
}
CANONICAL_FILE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json",
                          ".ndjson": "json"}
ZEEK_HEADER_MAX_LINES = 200  # Zeek writes about ten; anything longer is not a header
COMBINED_LOG_PROBE_LINES = 20
FORMAT_NAMES = {
    "zeek_conn": "a Zeek conn log",
    "zeek_dns": "a Zeek dns log",
    "zeek_http": "a Zeek http log",
    "binetflow": "an Argus binetflow CSV",
    "combined_log": "a web server combined log",
    "telco_customers": "an IBM telco customer CSV",
}


class FormatError(KrReportsError, ValueError):
    """An input file is empty or not in the format it was given as (the message names the file)."""


def read_format(
    spark: SparkSession, fmt: str, path: Path, **options: Any
) -> tuple[DataFrame, DataFrame, dict]:
    """Read `path` (a file, or a folder of files) as format `fmt` of `transforms.formats.FORMATS`.

    Returns (mapped, rejected, facts): mapped has exactly the target source's
    canonical columns as strings, rejected has file, line_number, reason,
    record; both are lazy. Options: `site_domain` (combined_log), `timezone`
    (binetflow), `source` and `file_format` (canonical), and
    `allow_unterminated_last_line` (text formats).
    Raises MissingInput when the path is missing, FormatError when a file is
    empty, unreadable, cut short or lacks its header, or for an unknown format,
    option or option value, and SchemaMismatch when canonical files have other columns.
    """
    path = Path(path)
    allowed = format_options(fmt)
    base = FORMATS[fmt]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise FormatError(
            f"{path}: format '{fmt}' takes no option(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})"
        )
    if not _exists(path):
        raise MissingInput(f"{path}: input not found")
    allow_unterminated = bool(options.pop("allow_unterminated_last_line", False))
    if base.layout == "canonical":
        return _read_canonical(
            spark, path, options.get("source"), options.get("file_format"), allow_unterminated
        )
    files = _input_files(path)
    columns_in_files: list[str] = []
    for file in files:
        for column in _check_header(base, file):
            if column not in columns_in_files:
                columns_in_files.append(column)
    lines = functools.reduce(
        DataFrame.unionByName, [read_lines(spark, f, allow_unterminated) for f in files]
    )
    try:
        mapped, rejected = map_lines(fmt, lines, **options)
    except ValueError as exc:  # an option value the mapping cannot use (e.g. an unknown time zone)
        raise FormatError(f"{path}: {exc}") from None
    facts = _facts(base, files, columns_in_files or base.input_columns, options)
    return mapped, rejected, facts


def format_options(fmt: str) -> tuple[str, ...]:
    """The options format `fmt` takes; FormatError for a format that is not known."""
    if fmt not in FORMATS:
        raise FormatError(f"unknown format '{fmt}' (one of {', '.join(FORMATS)})")
    base = FORMATS[fmt]
    return (*base.options, *READER_OPTIONS[base.layout])


# --- files and headers -----------------------------------------------------------


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except PermissionError:  # a folder on the way cannot be entered
        raise FormatError(f"{path}: cannot be reached (permission denied on a folder above it)") from None


def _is_data(path: Path, root: Path) -> bool:
    hidden = any(part.startswith((".", "_")) for part in path.relative_to(root).parts)
    return path.is_file() and not hidden


def _input_files(path: Path, recursive: bool = False) -> list[Path]:
    """The file itself, or a folder's data files (Spark's rule: names starting '.' or '_' are not data)."""
    if not path.is_dir():
        files = [path]
    else:
        try:
            found = path.rglob("*") if recursive else path.iterdir()
            files = sorted(p for p in found if _is_data(p, path))
        except PermissionError:
            raise FormatError(f"{path}: folder cannot be read (permission denied)") from None
        if not files:
            raise FormatError(f"{path}: folder holds no input files")
    for file in files:
        _check_readable(file)
    return files


def _check_readable(file: Path) -> None:
    """FormatError naming the file unless it is a non-empty regular file that can be read whole.

    A gzip file is decompressed once here: Spark would otherwise fail mid-job on a cut stream.
    """
    if not file.is_file():
        raise FormatError(f"{file}: not a regular file (expected a file or a folder of files)")
    if file.stat().st_size == 0:
        raise FormatError(f"{file}: empty file")
    try:
        with file.open("rb") as handle:
            handle.read(1)
        if file.suffix == ".gz":
            with gzip.open(file, "rb") as stream:
                while stream.read(1 << 20):
                    pass
    except PermissionError:
        raise FormatError(f"{file}: cannot be read (permission denied)") from None
    except (EOFError, gzip.BadGzipFile, zlib.error):
        raise FormatError(f"{file}: truncated or corrupt gzip file (expected a whole gzip stream)") from None
    except OSError as exc:
        raise FormatError(f"{file}: cannot be read ({exc.strerror or type(exc).__name__})") from None


def _open_text(file: Path) -> IO[str]:
    if file.suffix == ".gz":
        return gzip.open(file, "rt", encoding="utf-8", errors="replace", newline="")
    return file.open("r", encoding="utf-8", errors="replace", newline="")


def _first_lines(file: Path, limit: int) -> list[str]:
    """Up to `limit` lines from the start of the file, without terminators or a byte-order mark."""
    lines: list[str] = []
    with _open_text(file) as handle:
        for raw in handle:
            lines.append(raw.rstrip("\r\n"))
            if len(lines) >= limit:
                break
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    if not any(line.strip() for line in lines):
        raise FormatError(f"{file}: empty file")
    return lines


def _check_header(spec: FormatSpec, file: Path) -> list[str]:
    """The input columns the file declares; FormatError if it lacks the header `spec` needs."""
    if spec.layout == "zeek":
        return _check_zeek_header(spec, file)
    if spec.layout == "csv":
        return _check_csv_header(spec, file)
    _check_combined_log(file)
    return []


def _check_zeek_header(spec: FormatSpec, file: Path) -> list[str]:
    directives: dict[str, str] = {}
    for line in _first_lines(file, ZEEK_HEADER_MAX_LINES):
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(" " if line.startswith("#separator ") else "\t")
        directives.setdefault(key, value)
    if "fields" not in directives:
        raise FormatError(f"{file}: not a Zeek log (no #fields header line)")
    checks = (("separator", r"\x09"), ("unset_field", ZEEK_UNSET), ("empty_field", ZEEK_EMPTY))
    for key, expected in checks:
        if directives.get(key, expected) != expected:
            raise FormatError(
                f"{file}: Zeek #{key} '{directives[key]}' is not supported (only '{expected}')"
            )
    declared = directives.get("path")
    if declared is not None and spec.zeek_path is not None and declared != spec.zeek_path:
        raise FormatError(f"{file}: a Zeek '{declared}' log, not '{spec.zeek_path}' (format {spec.name})")
    columns = directives["fields"].split("\t")
    _require_columns(spec, file, columns, "#fields line")
    return columns


def _check_csv_header(spec: FormatSpec, file: Path) -> list[str]:
    header = _first_lines(file, 1)[0]
    columns = [c.strip() for c in next(csv.reader([header]))] if header.strip() else []
    _require_columns(spec, file, columns, "header line")
    return columns


def _require_columns(spec: FormatSpec, file: Path, columns: list[str], where: str) -> None:
    missing = [c for c in spec.required_columns if c not in columns]
    if missing:
        raise FormatError(
            f"{file}: not {FORMAT_NAMES[spec.name]} ({where} lacks {', '.join(missing)})"
        )


def _check_combined_log(file: Path) -> None:
    pattern = re.compile(COMBINED_LOG_PATTERN)
    probe = [line for line in _first_lines(file, COMBINED_LOG_PROBE_LINES) if line.strip()]
    if not any(pattern.match(line) for line in probe):
        raise FormatError(
            f"{file}: not a web server combined log (none of its first {len(probe)} lines has "
            'the form: host ident user [time] "request" status size "referer" "agent")'
        )


def _lacks_final_newline(file: Path) -> bool:
    if file.suffix == ".gz":
        return False
    with file.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) not in (b"\n", b"\r")


def read_lines(spark: SparkSession, file: Path, allow_unterminated: bool = False) -> DataFrame:
    """The file's lines: file, line_number (1-based), value, truncated."""
    scanned = spark.read.text(str(file)).select(
        F.lit(str(file)).alias("file"),
        F.col("value"),
        F.col("_metadata.file_block_start").alias("block_start"),
        F.monotonically_increasing_id().alias("row_id"),
    )
    cut = _lacks_final_newline(file) and not allow_unterminated
    return number_lines(scanned).select(
        "file", "line_number", "value", (F.col("last_line") & F.lit(cut)).alias("truncated")
    )


def _facts(spec: FormatSpec, files: list[Path], columns: list[str], options: dict) -> dict:
    """Format, target, input columns and, for each, where it went or why it was dropped."""
    carried, dropped = spec.carried, spec.dropped
    return {
        "format": spec.name,
        "target": spec.target,
        "files": [str(f) for f in files],
        "options": dict(options),
        "input_columns": columns,
        "carried": {c: carried[c] for c in columns if c in carried},
        "dropped": {
            c: dropped.get(c, f"not a known {spec.name} field: not carried")
            for c in columns
            if c not in carried
        },
        "canonical_without_source": spec.canonical_without_source,
    }


# --- canonical files ----------------------------------------------------------------


def _canonical_file_format(files: list[Path], path: Path) -> str:
    for file in files:
        for suffix in file.suffixes:
            if suffix in CANONICAL_FILE_FORMATS:
                return CANONICAL_FILE_FORMATS[suffix]
    suffixes = ", ".join(CANONICAL_FILE_FORMATS)
    raise FormatError(f"{path}: cannot tell parquet, csv or json from the file names (expected a suffix "
                      f"{suffixes}); name it (file_format, or --file-format of kr-reports protect)")


PARQUET_MAGIC = b"PAR1"


def _check_parquet(file: Path) -> None:
    """FormatError unless the file has Parquet's magic at both ends and a footer that fits in it."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        head = handle.read(4)
        handle.seek(max(size - 8, 0))
        tail = handle.read(8)
    footer = int.from_bytes(tail[:4], "little") if len(tail) == 8 else -1
    if head != PARQUET_MAGIC or tail[4:] != PARQUET_MAGIC or not 0 < footer <= size - 12:
        raise FormatError(f"{file}: not a Parquet file, or cut short (expected 'PAR1' at both ends "
                          "around a footer)")


def _check_columns(spark: SparkSession, columns: list[str], source: str, location: str) -> None:
    """SchemaMismatch (naming `location`) unless `columns` are the source's canonical ones."""
    declared = spark.range(0).select(*[F.lit(None).cast("string").alias(c) for c in columns])
    check_landing_columns(declared, SOURCES[source], location)


def _json_keys(lines: DataFrame) -> list[str]:
    """Every key the JSON lines use (one small aggregate: the distinct key names)."""
    keys = lines.select(F.explode(F.json_object_keys("value")).alias("key")).distinct()
    return sorted(row["key"] for row in keys.collect())


def _read_canonical(
    spark: SparkSession, path: Path, source: str | None, file_format: str | None, allow_unterminated: bool
) -> tuple[DataFrame, DataFrame, dict]:
    """Parquet through Spark's reader; CSV and JSON lines line by line, so rejects keep their line."""
    if not source:
        raise FormatError(f"{path}: format 'canonical' needs the source option (one of {', '.join(SOURCES)})")
    spec = canonical_spec(source)
    target = SOURCES[source]
    files = _input_files(path, recursive=True)
    file_format = file_format or _canonical_file_format(files, path)
    if file_format == "parquet":
        for file in files:
            _check_parquet(file)
        df = spark.read.parquet(str(path)).select("*", F.col("_metadata.file_path").alias("file"))
        mapped, rejected = map_canonical(df, source)
    elif file_format == "csv":
        results = []
        for file in files:
            header = _first_lines(file, 1)[0]
            columns = [c.strip() for c in next(csv.reader([header]))]
            _check_columns(spark, columns, source, str(file))
            results.append(map_canonical_csv(read_lines(spark, file, allow_unterminated), source, columns))
        mapped = functools.reduce(DataFrame.unionByName, [r.mapped for r in results])
        rejected = functools.reduce(DataFrame.unionByName, [r.rejected for r in results])
    elif file_format == "json":
        lines = functools.reduce(
            DataFrame.unionByName, [read_lines(spark, f, allow_unterminated) for f in files]
        )
        # JSON lines omit null fields (Spark's default writer), so only unknown keys are an error.
        keys = sorted(set(_json_keys(lines)) | set(target.column_names))
        _check_columns(spark, keys, source, str(path))
        mapped, rejected = map_canonical_json(lines, source)
    else:
        raise FormatError(f"{path}: file_format must be parquet, csv or json, not '{file_format}'")
    facts = _facts(spec, files, target.column_names, {"source": source, "file_format": file_format})
    return mapped, rejected, facts
