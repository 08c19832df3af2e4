"""`kr-reports scan`: find identifier-shaped values in data files, reporting counts only.

`scan_path` reads every supported file under a path (Parquet, CSV with a
header, JSON lines) and tests every column, read as a string, against every
detector of `expectations.detectors` (the ones the protected and release
suites use) in one Spark aggregation per file: a `count_if` per column and
detector, next to the row count. Only that one aggregated row reaches the
driver; a report names files, columns, detectors and counts, never a value.

What is read:
- a file by its extension: `.parquet`; `.csv` (first line is the header);
  `.json`, `.jsonl`, `.ndjson` (one JSON document per line); CSV and JSON
  may be compressed (`.gz`, `.bz2`); `.html`, `.htm` (a delivery's
  report.html): each text node and attribute value is a row of the column
  `html_text`, so a label, tooltip or link is tested like a cell;
- Spark's `part-*` files of one folder together, as one dataset named by the
  folder (a Spark output folder counts as one file);
- under a folder, every file but hidden ones and Spark's bookkeeping (names
  starting with "." or "_", such as `_SUCCESS`, and `.crc` checksums); other
  files are listed as not scanned.

Rows that do not parse are not lost: the whole malformed line of a CSV or JSON
file is scanned as the column `_corrupt_record`. A column name is tested too
(a CSV written without a header turns its first row into names); a column
whose name is identifier-shaped is reported by position, never by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from core.errors import KrReportsError
from expectations.detectors import detector_predicates, quote_identifier
from stages.spark import error_condition

FORMATS = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".html": "html",
    ".htm": "html",
}
COMPRESSIONS = (".gz", ".bz2")
CORRUPT_RECORD = "_corrupt_record"
SUPPORTED_TEXT = ".parquet, .csv, .json, .jsonl, .ndjson or .html (CSV and JSON may end in .gz or .bz2)"
HTML_TEXT = "html_text"


class ScanError(KrReportsError):
    """The input cannot be scanned: missing, unsupported or unreadable (names the path)."""


@dataclass(frozen=True)
class Finding:
    """Rows of one file whose `column` the `detector` flags (`count` rows)."""

    file: str
    column: str
    detector: str
    count: int


@dataclass(frozen=True)
class ScannedFile:
    """One dataset read: a file, or a folder of Spark part files."""

    file: str
    format: str
    rows: int
    columns: int


@dataclass(frozen=True)
class ScanReport:
    """What a scan read and found: names and counts only."""

    path: str
    files: tuple[ScannedFile, ...]
    findings: tuple[Finding, ...]
    skipped: tuple[str, ...] = ()

    @property
    def files_scanned(self) -> int:
        return len(self.files)

    @property
    def rows_scanned(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "clean": self.clean,
            "files_scanned": self.files_scanned,
            "rows_scanned": self.rows_scanned,
            "files": [vars(f) for f in self.files],
            "findings": [vars(f) for f in self.findings],
            "skipped": list(self.skipped),
        }


@dataclass(frozen=True)
class _Dataset:
    label: str
    format: str
    paths: tuple[str, ...]


def scan_path(spark: SparkSession, path: Path) -> ScanReport:
    """Scan a file or every supported file under a folder; raise ScanError if unreadable."""
    datasets, skipped = _discover(Path(path))
    predicates = detector_predicates()
    scans = [_scan_dataset(spark, dataset, predicates) for dataset in datasets]
    flagged_names = iter(
        _flagged_names(spark, [name for columns, _, _ in scans for name in columns], predicates)
    )
    findings: list[Finding] = []
    for dataset, (columns, _, counts) in zip(datasets, scans, strict=True):
        for i, name in enumerate(columns):
            name_hits = next(flagged_names)
            # an identifier-shaped name is a value too: report the column by position
            label = f"column {i + 1}" if name_hits else name
            findings.extend(Finding(dataset.label, f"{label} name", d, 1) for d in name_hits)
            findings.extend(
                Finding(dataset.label, label, d, counts[i, d]) for d in predicates if counts[i, d]
            )
    files = tuple(
        ScannedFile(dataset.label, dataset.format, rows, len(columns))
        for dataset, (columns, rows, _) in zip(datasets, scans, strict=True)
    )
    return ScanReport(str(path), files, tuple(findings), tuple(skipped))


def format_report(report: ScanReport) -> str:
    """Human-readable report: a table of file, column, detector and rows; no values."""
    files = _plural(report.files_scanned, "file")
    rows = _plural(report.rows_scanned, "row")
    lines: list[str] = []
    if report.clean:
        lines.append(f"no identifier-shaped values found in {files}, {rows}")
    else:
        affected = len({f.file for f in report.findings})
        lines.append(
            f"identifier-shaped values found in {affected} of {files} ({rows} scanned); "
            "values are not shown"
        )
        header = ("FILE", "COLUMN", "DETECTOR", "ROWS")
        table = [header] + [(f.file, f.column, f.detector, f"{f.count:,}") for f in report.findings]
        widths = [max(len(row[k]) for row in table) for k in range(3)]
        for row in table:
            cells = [row[k].ljust(widths[k]) for k in range(3)]
            lines.append("  " + "  ".join([*cells, row[3].rjust(len("ROWS"))]))
    if report.skipped:
        lines.append(
            f"not scanned (unsupported type): {_plural(len(report.skipped), 'file')}: "
            + ", ".join(report.skipped)
        )
    return "\n".join(lines)


def file_format(path: Path) -> str | None:
    """The reader for a file name, by extension; None when it is not supported."""
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] in COMPRESSIONS
    if compressed:
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if compressed and fmt in ("parquet", "html"):
        return None
    return fmt


def _discover(path: Path) -> tuple[list[_Dataset], list[str]]:
    if not path.exists():
        raise ScanError(f"{path}: no such file or folder")
    if path.is_file():
        fmt = file_format(path)
        if fmt is None:
            raise ScanError(f"{path}: unsupported file type; expected {SUPPORTED_TEXT}")
        _check_readable(path)
        return [_Dataset(str(path), fmt, (str(path),))], []
    if not path.is_dir():
        raise ScanError(f"{path}: not a regular file or folder")

    datasets: list[_Dataset] = []
    skipped: list[str] = []
    for folder, subfolders, files in os.walk(path, onerror=_raise_unreadable):
        subfolders[:] = sorted(d for d in subfolders if not _hidden(d))
        here = Path(folder)
        parts: dict[str, list[str]] = {}
        for name in sorted(files):
            if _hidden(name) or name.lower().endswith(".crc"):
                continue
            file = here / name
            fmt = file_format(file)
            if fmt is None:
                skipped.append(str(file))
                continue
            _check_readable(file)
            if name.startswith("part-"):
                parts.setdefault(fmt, []).append(str(file))
            else:
                datasets.append(_Dataset(str(file), fmt, (str(file),)))
        for fmt, members in parts.items():
            if len(parts) == 1:
                datasets.append(_Dataset(str(here), fmt, tuple(members)))
            else:  # a folder mixing formats of part files: each file alone
                datasets.extend(_Dataset(m, fmt, (m,)) for m in members)
    if not datasets:
        raise ScanError(f"{path}: no supported data files found (expected {SUPPORTED_TEXT})")
    return sorted(datasets, key=lambda d: d.label), sorted(skipped)


def _hidden(name: str) -> bool:
    """Hidden, or Spark/Hadoop bookkeeping (_SUCCESS, _temporary, _delta_log...)."""
    return name.startswith((".", "_"))


def _check_readable(file: Path) -> None:
    if not os.access(file, os.R_OK):
        raise ScanError(f"{file}: not readable (permission denied)")


def _raise_unreadable(error: OSError) -> None:
    raise ScanError(f"{error.filename}: cannot list folder ({error.strerror})")


def _scan_dataset(
    spark: SparkSession, dataset: _Dataset, predicates: dict[str, str]
) -> tuple[list[str], int, dict[tuple[int, str], int]]:
    """Column names, row count and (column index, detector) -> rows, in one aggregation."""
    try:
        df = _read(spark, dataset)
        columns = df.columns
        text = df.select(
            *[F.col(quote_identifier(c)).cast("string").alias(f"c{i}") for i, c in enumerate(columns)]
        )
        aggregates = [F.count(F.lit(1)).alias("rows")]
        for i in range(len(columns)):
            for name, template in predicates.items():
                aggregates.append(F.count_if(F.expr(template.format(column=f"c{i}"))).alias(f"c{i}_{name}"))
        result = text.agg(*aggregates).first()
    except (PySparkException, Py4JError) as exc:
        raise ScanError(f"{dataset.label}: cannot read as {dataset.format}{_condition(exc)}") from None
    assert result is not None  # a global aggregation returns one row
    counts = {
        (i, name): int(result[f"c{i}_{name}"]) for i in range(len(columns)) for name in predicates
    }
    return columns, int(result["rows"]), counts


def _read(spark: SparkSession, dataset: _Dataset) -> DataFrame:
    """The dataset with its own columns; malformed CSV/JSON lines in `_corrupt_record`."""
    paths = list(dataset.paths)
    if dataset.format == "parquet":
        for file in paths:
            _check_parquet_magic(Path(file))
        return spark.read.parquet(*paths)
    if dataset.format == "csv":
        options = {"header": True, "multiLine": True, "inferSchema": False}
        names = spark.read.options(**options).csv(paths).columns
        if not names:  # an empty file
            return spark.read.options(**options).csv(paths)
        corrupt = _unused_name(CORRUPT_RECORD, names)
        # Every column as text, plus the whole line of a row with too many or too
        # few fields, whose extra fields Spark would otherwise drop unread.
        schema = T.StructType(
            [T.StructField(n, T.StringType()) for n in names] + [T.StructField(corrupt, T.StringType())]
        )
        return (
            spark.read.schema(schema)
            .options(**options, columnNameOfCorruptRecord=corrupt, mode="PERMISSIVE")
            .csv(paths)
        )
    if dataset.format == "html":
        chunks = [(chunk,) for file in paths for chunk in html_text(Path(file))]
        return spark.createDataFrame(chunks, T.StructType([T.StructField(HTML_TEXT, T.StringType())]))
    # JSON lines: numbers as written (no 1.0E15), a line that does not parse in _corrupt_record.
    df = spark.read.options(primitivesAsString=True, mode="PERMISSIVE").json(paths)
    if df.columns == [CORRUPT_RECORD]:
        # Spark refuses to query only its corrupt-record column: no line parsed, so
        # scan every line as it is.
        return spark.read.text(paths).select(F.col("value").alias(CORRUPT_RECORD))
    return df


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.chunks.extend(value for _, value in attrs if value)

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.chunks.append(data.strip())


def html_text(file: Path) -> list[str]:
    """Every text node and attribute value of an HTML page (entities decoded), in order.

    The page is small (a report), so it is parsed on the driver; a malformed
    page is read as far as the parser can, and bytes that are not UTF-8 are
    kept as replacement characters rather than refused.
    """
    try:
        markup = file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ScanError(f"{file}: cannot read ({exc.strerror})") from None
    page = _HtmlText()
    page.feed(markup)
    page.close()
    return page.chunks


def _check_parquet_magic(file: Path) -> None:
    """Refuse a file that is not Parquet before Spark does (its error logs quote the bytes)."""
    magic = (b"PAR1", b"PARE")  # plain, encrypted footer
    try:
        with file.open("rb") as handle:
            head = handle.read(4)
            handle.seek(max(file.stat().st_size - 4, 0))
            tail = handle.read(4)
    except OSError as exc:
        raise ScanError(f"{file}: cannot read ({exc.strerror})") from None
    if file.stat().st_size < 12 or head not in magic or tail not in magic:
        raise ScanError(f"{file}: not a Parquet file")


def _unused_name(name: str, taken: list[str]) -> str:
    while name in taken:
        name += "_"
    return name


def _flagged_names(
    spark: SparkSession, names: list[str], predicates: dict[str, str]
) -> list[list[str]]:
    """For each column name, the detectors that flag it (one small Spark job for all)."""
    if not names:
        return []
    frame = spark.createDataFrame([(k, n) for k, n in enumerate(names)], "k int, name string")
    flags = frame.select(
        "k", *[F.expr(template.format(column="name")).alias(d) for d, template in predicates.items()]
    )
    by_position = {row["k"]: [d for d in predicates if row[d]] for row in flags.collect()}
    return [by_position[k] for k in range(len(names))]


def _condition(exc: Exception) -> str:
    """Spark's error condition, else the error's type: never its message, which can quote file contents."""
    return f" ({error_condition(exc) or type(exc).__name__})"


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
