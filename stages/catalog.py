"""Where every dataset lives and how it is read and written (the one IO catalog).

data/                            the driver's folder; by default the zones' too
  <zones>/                       the internal zones ($KR_ZONES_URL: a URL on storage every
                                 executor reads, e.g. s3a://bucket/kr, hdfs://nn/kr, file:///mnt/kr)
  landing/<source>[/date=D]      files as they arrive (text columns)
  raw/<source>/date=D            canonical, typed
  quarantine/<source>/date=D     unusable rows with reasons
  protected/<source>/date=D      identifiers dropped, pseudonymized, generalized
  analyst/date=D                 the analyst zone: k-anonymous subscriber records + report.json
  releases/<report>/<D>/<n>      noisy releases, stored once, never re-noised (core.store)
  ledger.sqlite                  the privacy ledger (or $KR_LEDGER_URL, e.g. PostgreSQL)
  keys/                          demo signing keys (never beside deliveries)
  data_docs/<D>/<run id>/        Great Expectations Data Docs of one flow run
  .run.lock                      one run at a time on this data folder (core.locking)
out/deliveries/<partner>/<report>/<D>[.release-<n>]   what partners receive (stages.delivery;
                                 $KR_OUT_DIR may be a URL)

The zones (landing to releases) live under the data folder unless $KR_ZONES_URL
puts them elsewhere; the rest of the data folder is the driver's own and stays
local. Spark reads and writes a zone through Hadoop's filesystems, the small files
through fsspec (core.location). A Spark dataset is complete when its `_SUCCESS`
marker is there (Hadoop's committer writes it last): a reader refuses one without it.

Everything under data/ is the operator's alone (files 0600, folders 0700):
core.private sets the process umask, stages.spark Hadoop's. A
delivery keeps the modes the operator's own umask gives: a pickup may read it.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from upath import UPath

from core.errors import KrReportsError
from core.location import is_url, location, on_shared_storage, url_of
from core.schemas import SourceSpec
from core.sources import SourceLanding
from core.store import ReleaseStore

LANDING_MARKER = ".complete"
GLOB_CHARACTERS = re.compile(r"[*?[]")
SYNTHETIC_GENERATOR = "kr-reports generate"  # the landing marker's `generator` when the generator wrote it
DATASET_MARKER = "_SUCCESS"  # written last by Hadoop's output committer
ZONES_ENV = "KR_ZONES_URL"


class MissingInput(KrReportsError, FileNotFoundError):
    """An input dataset the run needs is not there."""


class NotLocal(KrReportsError, ValueError):
    """A folder that must be the driver's own was given as a URL."""


@dataclass(frozen=True)
class Catalog:
    data_dir: Path
    out_dir: Path | UPath
    zones: Path | UPath | None = None  # None: in the data folder

    @classmethod
    def from_env(cls, data_dir: str | Path | None = None, out_dir: str | Path | None = None,
                 zones: str | Path | None = None):
        data = data_dir or os.environ.get("KR_DATA_DIR", "data")
        if is_url(str(data)):
            raise NotLocal(f"KR_DATA_DIR {data}: the data folder holds the run lock, the SQLite ledger and "
                           f"keys, so it is a local folder; put the zones on shared storage with {ZONES_ENV}")
        out = _resolved(location(out_dir or os.environ.get("KR_OUT_DIR", "out")))
        shared = zones or os.environ.get(ZONES_ENV)
        zones_root = _resolved(location(shared)) if shared else None
        return cls(data_dir=Path(data).resolve(), out_dir=out, zones=zones_root)

    @property
    def zones_root(self) -> Path | UPath:
        return self.data_dir if self.zones is None else self.zones

    @property
    def landing_root(self) -> Path | UPath:
        return self.zones_root / "landing"

    def landing(self, source: SourceSpec, day: dt.date) -> Path:
        base = self.landing_root / source.name
        return base / f"date={day.isoformat()}" if source.is_daily else base

    def source_input(self, source: SourceSpec, day: dt.date, landing: SourceLanding) -> list[Path]:
        """Where a source's files for `day` are, as its entry in sources.yaml says.

        No path: the generator's landing folder (read_landing says when it is missing).
        A path: the day's pattern, relative to the data folder; a glob may match several
        files or folders (sorted; names starting with '.' are not matched). MissingInput
        when nothing is there.
        """
        if landing.path is None:
            return [self.landing(source, day)]
        text = landing.day_pattern(day)
        pattern = location(text) if is_url(text) or Path(text).is_absolute() else self.zones_root / text
        if GLOB_CHARACTERS.search(str(pattern)):
            found = _matches(pattern)
        else:
            found = [pattern] if pattern.exists() else []
        if not found:
            raise MissingInput(f"{pattern}: no {source.name} input for {day.isoformat()} "
                               f"(sources.yaml: {landing.path})")
        return found

    def _zone(self, zone: str, source: SourceSpec, day: dt.date) -> Path | UPath:
        return self.zones_root / zone / source.name / f"date={day.isoformat()}"

    def raw(self, source: SourceSpec, day: dt.date) -> Path | UPath:
        return self._zone("raw", source, day)

    def quarantine(self, source: SourceSpec, day: dt.date) -> Path | UPath:
        return self._zone("quarantine", source, day)

    def protected(self, source: SourceSpec, day: dt.date) -> Path | UPath:
        return self._zone("protected", source, day)

    def zone_root(self, zone: str) -> Path | UPath:
        """The folder of an internal zone (raw, quarantine, protected): what retention purges."""
        return self.zones_root / zone

    def analyst(self, day: dt.date) -> Path | UPath:
        return self.zones_root / "analyst" / f"date={day.isoformat()}"

    @property
    def release_store(self) -> ReleaseStore:
        return ReleaseStore(self.zones_root / "releases")

    def release_numbers(self, report: str, day: dt.date) -> list[int]:
        """Stored releases of a report for a day, oldest first."""
        return self.release_store.numbers(report, day.isoformat())

    @property
    def signing_keys(self) -> Path:
        return self.data_dir / "keys"

    def data_docs(self, day: dt.date, run_id: str) -> Path:
        return self.data_dir / "data_docs" / day.isoformat() / run_id

    def landing_manifest(self) -> dict:
        marker = self.landing_root / LANDING_MARKER
        if not marker.is_file():
            raise MissingInput(
                f"{marker}: no landing data; run `kr-reports generate --out {self.landing_root}`"
            )
        return json.loads(marker.read_text())

    def landing_is_synthetic(self) -> bool:
        """Whether the landing zone holds the embedded synthetic data: its marker names the generator."""
        try:
            return self.landing_manifest().get("generator") == SYNTHETIC_GENERATOR
        except (MissingInput, ValueError, AttributeError):  # no marker, not JSON, not an object
            return False


def _resolved(path: Path | UPath) -> Path | UPath:
    return path if on_shared_storage(path) else path.resolve()


def _matches(pattern: Path | UPath) -> list[Path | UPath]:
    """Files or folders a glob matches, sorted; names starting with '.' are not matched."""
    if not on_shared_storage(pattern):
        return [Path(p) for p in sorted(glob.glob(str(pattern)))]
    found = [p for p in sorted(pattern.fs.glob(pattern.path)) if p.rstrip("/").split("/")[-1][:1] != "."]
    # The pattern's own scheme (s3a, not fsspec's s3): Spark reads these paths too.
    return [UPath(f"{pattern.protocol}://{p}", **pattern.storage_options) for p in found]


def read_landing(spark: SparkSession, path: Path | UPath, file_format: str) -> DataFrame:
    """Landing files as text columns; a missing folder is an error naming it."""
    if not path.exists():
        raise MissingInput(f"{path}: landing dataset not found")
    reader, uri = spark.read, url_of(path)
    if file_format == "csv":
        # multiLine: a quoted value may hold a line break (valid CSV); without it each
        # piece became a row of its own. Each file is then read whole by one task,
        # which landing folders of many part files keep parallel.
        return (reader.option("header", True).option("inferSchema", False)
                .option("multiLine", True).csv(uri))
    if file_format == "json":
        return reader.option("primitivesAsString", True).json(uri)
    if file_format == "parquet":
        return reader.parquet(uri)
    raise ValueError(f"{path}: unsupported landing format '{file_format}' (parquet, csv, json)")


def read_parquet(spark: SparkSession, path: Path | UPath) -> DataFrame:
    """A dataset a stage wrote; one without its `_SUCCESS` marker is an interrupted write, not read."""
    if not path.exists():
        raise MissingInput(f"{path}: dataset not found; run the stage that writes it first")
    if not (path / DATASET_MARKER).exists():
        raise MissingInput(f"{path}: incomplete dataset (no {DATASET_MARKER}: its write was interrupted); "
                           "run the stage that writes it again")
    return spark.read.parquet(url_of(path))


def write_parquet(df: DataFrame, path: Path | UPath) -> None:
    df.write.mode("overwrite").parquet(url_of(path))
