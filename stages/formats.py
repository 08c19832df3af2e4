"""Read the files operators really have and map them onto a canonical source (the IO half).

`read_format(spark, fmt, path, **options)` takes a format (a shipped name,
i.e. config/formats/<name>.yaml, or a `core.formats.FileFormat` read from an
operator's own format file), checks each input file (present, not empty,
whole, has its header, holds no field its format does not classify), reads
its lines with exact line numbers, and hands them to the pure mapping in
`transforms.formats`. It returns the mapped canonical landing text, the
rejected lines and a small dict of facts (format, target source, input
columns, what was carried and what dropped, and why).

A field the format neither maps nor drops is refused, naming the file and
the field and saying how to go on (classify it in a copy of the format
file): an unknown column may be an identifier nobody decided about.

Line numbers: each file is read with `spark.read.text` (which ends lines at
LF, CRLF or CR, drops the terminator and decompresses .gz), tagged with the
split it came from and `monotonically_increasing_id()`; a split is read in
order by one task, so `transforms.formats.number_lines` turns the ids into
exact 1-based line numbers. No global sort, no RDD, nothing collected.

A cut file: the last line of a file that does not end with a line
terminator is marked `truncated` and rejected ('malformed:truncated'),
since its last field may be cut short without looking wrong. Pass
`allow_unterminated_last_line=True` for writers that omit the final newline.
A gzipped file is read once, whole, before Spark reads it (for its header,
its last byte and its integrity): a cut stream is an error naming the file,
not a failure in the middle of a Spark job.
"""

from __future__ import annotations

import csv
import functools
import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from core.errors import KrReportsError
from core.format_file import load_format_file
from core.formats import CANONICAL, FileFormat, canonical_format
from core.location import location, on_shared_storage, url_of
from core.schemas import SOURCES, describe_column_names
from stages.catalog import MissingInput
from transforms.formats import (
    COMBINED_LOG_FIELDS,
    COMBINED_LOG_PATTERN,
    ZEEK_EMPTY,
    ZEEK_UNSET,
    map_canonical,
    map_canonical_csv,
    map_canonical_json,
    map_lines,
    number_lines,
)
from transforms.formats.layouts import table_records
from transforms.formats.mapping import map_records
from transforms.ingest import check_landing_columns

SHIPPED_FORMATS = Path(__file__).resolve().parents[1] / "config" / "formats"
FORMAT_NAMES = (*sorted(p.stem for p in SHIPPED_FORMATS.glob("*.yaml")), "canonical")
READER_OPTIONS = {
    "zeek": ("allow_unterminated_last_line",),
    "csv": ("allow_unterminated_last_line",),
    "combined_log": ("allow_unterminated_last_line",),
    "json_lines": ("allow_unterminated_last_line",),
    "parquet": (),
    "canonical": ("file_format", "allow_unterminated_last_line"),
}
CANONICAL_FILE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json",
                          ".ndjson": "json"}
HEADER_MAX_LINES = 200  # Zeek writes about ten header lines; anything longer is not a header
COMBINED_LOG_PROBE_LINES = 20
GZIP_CHUNK = 1 << 20


class FormatError(KrReportsError, ValueError):
    """An input file is empty or not in the format it was given as (the message names the file)."""


class UnclassifiedField(FormatError):
    """An input file has a field its format neither maps nor drops."""


def shipped_format(name: str) -> FileFormat:
    """The shipped format `name` (config/formats/<name>.yaml, or the built-in 'canonical')."""
    if name == "canonical":
        return CANONICAL
    if name not in FORMAT_NAMES:
        raise FormatError(f"unknown format '{name}' (one of {', '.join(FORMAT_NAMES)}; "
                          "or your own format file)")
    return _load_shipped(name)


@functools.cache
def _load_shipped(name: str) -> FileFormat:
    return load_format_file(SHIPPED_FORMATS / f"{name}.yaml")


def shipped_formats() -> list[FileFormat]:
    return [shipped_format(n) for n in FORMAT_NAMES]


def as_format(fmt: str | FileFormat) -> FileFormat:
    return shipped_format(fmt) if isinstance(fmt, str) else fmt


def read_format(
    spark: SparkSession, fmt: str | FileFormat, path: Path, **options: Any
) -> tuple[DataFrame, DataFrame, dict]:
    """Read `path` (a file, or a folder of files) as format `fmt` (a shipped name or a FileFormat).

    Returns (mapped, rejected, facts): mapped has exactly the target source's
    canonical columns as strings, rejected has file, line_number, reason,
    record; both are lazy. Options: the format's own (its file's `options`:
    `site_domain` for combined_log, `timezone` for binetflow), `source` and
    `file_format` (canonical), and `allow_unterminated_last_line` (text layouts).
    Raises MissingInput when the path is missing, FormatError when a file is
    empty, unreadable, cut short, lacks its header or has an unclassified
    field, or for an unknown format, option or option value, and
    SchemaMismatch when canonical files have other columns.
    """
    path = location(path)
    spec = as_format(fmt)
    allowed = format_options(spec)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise FormatError(f"{path}: format '{spec.name}' takes no option(s) {', '.join(unknown)} "
                          f"(allowed: {', '.join(allowed) or 'none'})")
    if not _exists(path):
        raise MissingInput(f"{path}: input not found")
    allow_unterminated = bool(options.pop("allow_unterminated_last_line", False))
    if spec.layout.kind == "canonical":
        return _read_canonical(
            spark, path, options.get("source"), options.get("file_format"), allow_unterminated
        )
    files = _input_files(path, recursive=spec.layout.kind == "parquet")
    if spec.layout.kind == "parquet":
        return _read_parquet(spark, spec, path, files, options)
    heads = {file: _scan(file) for file in files}
    columns: list[str] = []
    for file, head in heads.items():
        for column in _check_header(spec, file, head.lines):
            if column not in columns:
                columns.append(column)
    lines = functools.reduce(DataFrame.unionByName, [
        read_lines(spark, f, allow_unterminated, ends_with_newline=heads[f].ends_with_newline) for f in files
    ])
    if spec.layout.kind == "json_lines":
        columns = _json_keys(lines)
        _refuse_unclassified(spec, path, columns)
    try:
        mapped, rejected = map_lines(spec, lines, **options)
    except ValueError as exc:  # an option value the mapping cannot use (e.g. an unknown time zone)
        raise FormatError(f"{path}: {exc}") from None
    return mapped, rejected, _facts(spec, files, columns or spec.input_columns, options)


def format_options(fmt: str | FileFormat) -> tuple[str, ...]:
    """The options format `fmt` takes; FormatError for a format that is not known."""
    spec = as_format(fmt)
    return (*spec.option_names, *READER_OPTIONS[spec.layout.kind])


# --- files ---------------------------------------------------------------------------


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
        _check_file(file)
    return files


def _check_file(file: Path) -> None:
    if not file.is_file():
        raise FormatError(f"{file}: not a regular file (expected a file or a folder of files)")
    if file.stat().st_size == 0:
        raise FormatError(f"{file}: empty file")
    try:
        with file.open("rb") as handle:
            handle.read(1)
    except PermissionError:
        raise FormatError(f"{file}: cannot be read (permission denied)") from None
    except OSError as exc:
        raise FormatError(f"{file}: cannot be read ({exc.strerror or type(exc).__name__})") from None


@dataclass(frozen=True)
class FileHead:
    lines: list[str]  # the first lines, without terminators or a byte-order mark
    ends_with_newline: bool


def _open_text(file: Path) -> IO[str]:
    if file.suffix == ".gz" and on_shared_storage(file):
        return file.fs.open(file.path, "rt", compression="gzip", encoding="utf-8", errors="replace",
                            newline="")
    if file.suffix == ".gz":
        return gzip.open(file, "rt", encoding="utf-8", errors="replace", newline="")
    return file.open("r", encoding="utf-8", errors="replace", newline="")


def _scan(file: Path, limit: int = HEADER_MAX_LINES) -> FileHead:
    """The file's first lines and whether it ends with a line terminator, reading a .gz whole once.

    FormatError naming the file when it cannot be read, is empty, or is a cut or corrupt gzip stream.
    """
    lines: list[str] = []
    last = ""
    try:
        with _open_text(file) as handle:
            while len(lines) < limit and (line := handle.readline()):
                lines.append(line.rstrip("\r\n"))
                last = line
            if file.suffix == ".gz":  # the rest, to its end: whole stream, and its last character
                while chunk := handle.read(GZIP_CHUNK):
                    last = chunk
        if file.suffix != ".gz":
            with file.open("rb") as handle:
                handle.seek(-1, 2)
                last = handle.read(1).decode("latin-1")
    except PermissionError:
        raise FormatError(f"{file}: cannot be read (permission denied)") from None
    except (EOFError, gzip.BadGzipFile, zlib.error):
        raise FormatError(f"{file}: truncated or corrupt gzip file (expected a whole gzip stream)") from None
    except OSError as exc:
        raise FormatError(f"{file}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    if not any(line.strip() for line in lines):
        raise FormatError(f"{file}: empty file")
    return FileHead(lines, last.endswith(("\n", "\r")))


def read_lines(spark: SparkSession, file: Path, allow_unterminated: bool = False,
               ends_with_newline: bool | None = None) -> DataFrame:
    """The file's lines: file, line_number (1-based), value, truncated (Spark decompresses .gz)."""
    if ends_with_newline is None:
        ends_with_newline = _scan(file).ends_with_newline
    scanned = spark.read.text(url_of(file)).select(
        F.lit(str(file)).alias("file"),
        F.col("value"),
        F.col("_metadata.file_block_start").alias("block_start"),
        F.monotonically_increasing_id().alias("row_id"),
    )
    cut = not ends_with_newline and not allow_unterminated
    return number_lines(scanned).select(
        "file", "line_number", "value", (F.col("last_line") & F.lit(cut)).alias("truncated")
    )


# --- headers and fields -----------------------------------------------------------------


def _check_header(spec: FileFormat, file: Path, head: list[str]) -> list[str]:
    """The input fields the file declares; FormatError if it lacks the header or fields `spec` needs."""
    kind = spec.layout.kind
    if kind == "zeek":
        columns, where = _zeek_fields(spec, file, head), "#fields line"
    elif kind == "csv" and spec.layout.header:
        columns, where = _csv_fields(spec, head[0]), "header line"
    elif kind == "csv":
        columns, where = list(spec.layout.fields), "layout"
    elif kind == "combined_log":
        _check_combined_log(file, head)
        columns, where = list(COMBINED_LOG_FIELDS), "the combined log's fields"
    else:  # json_lines: the keys are found once all lines are read
        return []
    missing = [c for c in spec.required_columns if c not in columns]
    if missing:
        raise FormatError(f"{file}: not a {spec.name} file ({where} lacks {describe_column_names(missing)}; "
                          f"format {spec.origin})")
    _refuse_unclassified(spec, file, columns)
    return columns


def _refuse_unclassified(spec: FileFormat, file: Path, columns: list[str]) -> None:
    unclassified = spec.unclassified(columns)
    if unclassified:
        names = describe_column_names(unclassified)
        raise UnclassifiedField(
            f"{file}: field(s) {names} not in format '{spec.name}' ({spec.origin}): neither mapped nor "
            f"dropped. To go on, copy the format file, add each under 'dropped:' with a reason (or map "
            f"it under 'columns:'), and pass --format-file <your copy>"
        )


def _zeek_fields(spec: FileFormat, file: Path, head: list[str]) -> list[str]:
    directives: dict[str, str] = {}
    for line in head:
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
    declared, expected_path = directives.get("path"), spec.layout.zeek_path
    if declared is not None and expected_path is not None and declared != expected_path:
        raise FormatError(f"{file}: a Zeek '{declared}' log, not '{expected_path}' (format {spec.name})")
    return directives["fields"].split("\t")


def _csv_fields(spec: FileFormat, header: str) -> list[str]:
    if not header.strip():
        return []
    return [c.strip() for c in next(csv.reader([header], delimiter=spec.layout.delimiter))]


def _check_combined_log(file: Path, head: list[str]) -> None:
    pattern = re.compile(COMBINED_LOG_PATTERN)
    probe = [line for line in head[:COMBINED_LOG_PROBE_LINES] if line.strip()]
    if not any(pattern.match(line) for line in probe):
        raise FormatError(
            f"{file}: not a web server combined log (none of its first {len(probe)} lines has "
            'the form: host ident user [time] "request" status size "referer" "agent")'
        )


def _facts(spec: FileFormat, files: list[Path], columns: list[str], options: dict) -> dict:
    """Format, target, input columns and, for each, where it went or why it was dropped."""
    carried, dropped = spec.carried, spec.dropped
    return {
        "format": spec.name,
        "format_file": spec.origin,
        "target": spec.target,
        "files": [str(f) for f in files],
        "options": dict(options),
        "input_columns": columns,
        "carried": {c: carried[c] for c in columns if c in carried},
        "dropped": {c: dropped[c] for c in columns if c in dropped},
        "canonical_without_source": spec.canonical_without_source,
    }


def _read_parquet(spark: SparkSession, spec: FileFormat, path: Path, files: list[Path],
                  options: dict) -> tuple[DataFrame, DataFrame, dict]:
    """An operator's Parquet export: its columns are the fields, each row a record."""
    for file in files:
        _check_parquet(file)
    df = spark.read.parquet(url_of(path))
    columns = df.columns
    missing = [c for c in spec.required_columns if c not in columns]
    if missing:
        raise FormatError(f"{path}: not a {spec.name} file (columns lack {describe_column_names(missing)}; "
                          f"format {spec.origin})")
    _refuse_unclassified(spec, path, columns)
    try:
        values = spec.resolve_options(options)
    except ValueError as exc:
        raise FormatError(f"{path}: {exc}") from None
    records, get = table_records(df.select("*", F.col("_metadata.file_path").alias("file")), spec)
    mapped, rejected = map_records(records, get, spec, values)
    return mapped, rejected, _facts(spec, files, columns, options)


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
    spec = canonical_format(source)
    target = SOURCES[source]
    files = _input_files(path, recursive=True)
    file_format = file_format or _canonical_file_format(files, path)
    if file_format == "parquet":
        for file in files:
            _check_parquet(file)
        df = spark.read.parquet(url_of(path)).select("*", F.col("_metadata.file_path").alias("file"))
        mapped, rejected = map_canonical(df, source)
    elif file_format == "csv":
        results = []
        for file in files:
            head = _scan(file)
            columns = [c.strip() for c in next(csv.reader([head.lines[0]]))]
            _check_columns(spark, columns, source, str(file))
            lines = read_lines(spark, file, allow_unterminated, head.ends_with_newline)
            results.append(map_canonical_csv(lines, source, columns))
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
