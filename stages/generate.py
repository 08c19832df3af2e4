"""Write the embedded default data: synthetic landing files for all five sources.

Layout under `out_dir` (the landing zone, files as an operator exports them):

    subscribers/                      one dataset
    devices/                          one dataset
    <daily source>/date=YYYY-MM-DD/   one dataset per day and source
    .complete                         JSON marker written last: generator, parameters and row counts

A dataset is a folder of part files (`part-00000.parquet`, ...), one per chunk of
subscribers, and an empty `_SUCCESS` file written once all its parts are (what Spark's
committer writes, and what stages.catalog's readers check). The subscribers are made in
chunks so memory stays bounded whatever their number; every value depends on the seed and
the subscriber alone, so the rows are the same whatever the chunk size. No Spark: the
synthetic package draws with numpy, and pyarrow writes the files.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from core.errors import InternalAlarm, KrReportsError
from core.private import use_private_umask
from core.schemas import SOURCES
from stages.catalog import DATASET_MARKER, SYNTHETIC_GENERATOR
from synthetic import (
    generate_call_records,
    generate_devices,
    generate_network_flows,
    generate_subscribers,
    generate_web_visits,
    with_bad_rows,
)

FILE_FORMATS = ("parquet", "csv", "json")
COMPLETE_MARKER = ".complete"
CHUNK_SUBSCRIBERS = 100_000  # ~2M flow rows a chunk: a few hundred MB of text at a time
DAILY_GENERATORS: dict[str, Callable[[pa.Table, dt.date, int], pa.Table]] = {
    "call_records": generate_call_records,
    "network_flows": generate_network_flows,
    "web_visits": generate_web_visits,
}


class GenerateError(KrReportsError, ValueError):
    """An argument of write_landing out of its range (the CLI shows it as one line)."""


def write_landing(
    out_dir: Path,
    n_subscribers: int,
    days: int,
    seed: int = 7,
    bad_row_rate: float = 0.0,
    start_date: dt.date = dt.date(2026, 11, 1),
    file_format: str = "parquet",
    *,
    chunk_subscribers: int = CHUNK_SUBSCRIBERS,
) -> dict:
    """Generate and write all five sources for `days` days; return the .complete record."""
    check_arguments(n_subscribers, days, bad_row_rate, file_format, chunk_subscribers)
    use_private_umask()  # the landing holds (synthetic) records: the operator's alone
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / COMPLETE_MARKER
    marker.unlink(missing_ok=True)  # a partial rewrite must not look complete
    dates = [start_date + dt.timedelta(days=i) for i in range(days)]
    writers = [DatasetWriter("subscribers", None, out_dir, file_format),
               DatasetWriter("devices", None, out_dir, file_format)]
    writers += [DatasetWriter(name, day, out_dir, file_format) for name in DAILY_GENERATORS for day in dates]

    # One process, one table at a time: memory holds one dataset's chunk. (Writing each part
    # in a thread while the next is drawn was no faster on this shared 2-core machine.)
    for chunk, first in enumerate(range(1, n_subscribers + 1, chunk_subscribers)):
        subscribers = generate_subscribers(min(chunk_subscribers, n_subscribers + 1 - first), seed, first)
        for writer in writers:
            writer.write(chunk, writer.generate(subscribers, seed), bad_row_rate, seed)

    for writer in writers:
        writer.finish()
        print(f"generate: {writer.label} ... {writer.rows:,} rows", flush=True)
    record = landing_record(writers, seed, n_subscribers, start_date, dates, bad_row_rate, file_format)
    marker.write_text(json.dumps(record, indent=2) + "\n")
    print(f"generate: complete, {sum(record['rows'].values()):,} rows in {out_dir}", flush=True)
    return record


def check_arguments(n_subscribers: int, days: int, bad_row_rate: float, file_format: str, chunk: int) -> None:
    """GenerateError naming the argument and what it must be."""
    if file_format not in FILE_FORMATS:
        raise GenerateError(f"file_format must be one of {FILE_FORMATS}, not '{file_format}'")
    if not isinstance(n_subscribers, int) or n_subscribers < 1:
        raise GenerateError(f"n_subscribers must be a whole number of at least 1, not {n_subscribers!r}")
    if not isinstance(days, int) or days < 0:
        raise GenerateError(f"days must be a whole number of at least 0, not {days!r}")
    if not 0.0 <= bad_row_rate <= 1.0:
        raise GenerateError(f"bad_row_rate must be between 0 and 1, not {bad_row_rate!r}")
    if not isinstance(chunk, int) or chunk < 1:
        raise GenerateError(f"chunk_subscribers must be a whole number of at least 1, not {chunk!r}")


def landing_record(
    writers: list[DatasetWriter], seed: int, n_subscribers: int, start_date: dt.date,
    dates: list[dt.date], bad_row_rate: float, file_format: str,
) -> dict:
    """The .complete marker's content: parameters, rows per source and date, corrupted rows."""
    rows = {name: 0 for name in SOURCES}
    rows_by_date: dict[str, dict[str, int]] = {name: {} for name in DAILY_GENERATORS}
    corrupted = {name: 0 for name in SOURCES}
    for writer in writers:
        rows[writer.source] += writer.rows
        corrupted[writer.source] += writer.corrupted
        if writer.day is not None:
            rows_by_date[writer.source][writer.day.isoformat()] = writer.rows
    return {
        "generator": SYNTHETIC_GENERATOR,  # what `serve` with demo keys requires (flows.schedules)
        "seed": seed,
        "subscribers": n_subscribers,
        "days": len(dates),
        "start_date": start_date.isoformat(),
        "dates": [d.isoformat() for d in dates],
        "bad_row_rate": bad_row_rate,
        "format": file_format,
        "rows": rows,
        "rows_by_date": rows_by_date,
        "rows_corrupted": corrupted,  # rows made to fail a rule: what ingest must quarantine
    }


class DatasetWriter:
    """One dataset folder (a source, and its day for a daily one): part files as chunks
    come, `_SUCCESS` when all are written; counts its rows and corrupted rows."""

    def __init__(self, source: str, day: dt.date | None, out_dir: Path, file_format: str) -> None:
        self.source, self.day, self.file_format = source, day, file_format
        self.path = out_dir / source / f"date={day.isoformat()}" if day else out_dir / source
        self.label = f"{source} {day.isoformat()}" if day else source
        self.rows = self.corrupted = self.parts = 0
        if self.path.exists():
            shutil.rmtree(self.path)  # overwrite: no part of an earlier run stays
        self.path.mkdir(parents=True)

    def generate(self, subscribers: pa.Table, seed: int) -> pa.Table:
        """This dataset's rows for a chunk of subscribers."""
        if self.source == "subscribers":
            return subscribers
        if self.source == "devices":
            return generate_devices(subscribers, seed)
        return DAILY_GENERATORS[self.source](subscribers, self.day, seed)

    def write(self, chunk: int, table: pa.Table, bad_row_rate: float, seed: int) -> None:
        """Corrupt a share of the chunk's rows (counted) and write them as part `chunk` (none when empty)."""
        if table.num_rows == 0:
            return
        if bad_row_rate > 0:
            table, corrupted = with_bad_rows(table, SOURCES[self.source], bad_row_rate, seed, self.day)
            self.corrupted += int(np.count_nonzero(corrupted))
        write_part(table, self.path / f"part-{chunk:05d}.{self.file_format}", self.file_format)
        self.rows += table.num_rows
        self.parts += 1

    def finish(self) -> None:
        """An empty part when no chunk had rows (a reader still finds the columns), then `_SUCCESS`."""
        if self.parts == 0:
            names = SOURCES[self.source].column_names
            empty = pa.table([pa.array([], pa.string()) for _ in names], names=names)
            write_part(empty, self.path / f"part-00000.{self.file_format}", self.file_format)
        (self.path / DATASET_MARKER).write_bytes(b"")


def write_part(table: pa.Table, path: Path, file_format: str) -> None:
    """One part file: Parquet without dictionaries, CSV with a header, or JSON lines keeping nulls."""
    if file_format == "parquet":
        # Most landing columns are near-unique text (ids, addresses, times): dictionaries
        # that Parquet then abandons only cost time.
        pq.write_table(table, path, use_dictionary=False)
    elif file_format == "csv":
        pa_csv.write_csv(table, path, pa_csv.WriteOptions(include_header=True))
    else:
        with path.open("wb") as out:
            out.write(json_lines(table))


def json_lines(table: pa.Table) -> memoryview:
    """The table as JSON lines, one object per row with every column (null as null), in order."""
    if table.num_rows == 0:
        return memoryview(b"")
    parts: list[pa.ChunkedArray | pa.Scalar] = []
    for i, name in enumerate(table.column_names):
        parts += [_text(("{" if i == 0 else ",") + json.dumps(name) + ":"), json_values(table.column(name))]
    parts.append(_text("}\n"))
    lines = pc.binary_join_element_wise(*parts, _text("")).combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[offsets[0]:offsets[-1]]


def json_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """JSON texts of a string column: quoted and escaped, or null."""
    text = column.cast(pa.large_string())
    if pc.any(pc.match_substring_regex(text, "[\\x00-\\x1f]")).as_py():
        raise InternalAlarm("a generated value holds a control character: not written as JSON lines")
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    quoted = pc.binary_join_element_wise(_text('"'), escaped, _text('"'), _text(""))
    return pc.fill_null(quoted, _text("null"))


def _text(value: str) -> pa.Scalar:
    """A large_string scalar (JSON lines are joined as large strings: a chunk can pass 2 GiB)."""
    return pa.scalar(value, pa.large_string())
