"""Where every dataset lives and how it is read and written (the one IO catalog).

data/                            internal zones, never shared
  landing/<source>[/date=D]      files as they arrive (text columns)
  raw/<source>/date=D            canonical, typed
  quarantine/<source>/date=D     unusable rows with reasons
  protected/<source>/date=D      identifiers dropped, pseudonymized, generalized
  analyst/date=D                 the analyst zone: k-anonymous subscriber records + report.json
  releases/<report>/<D>/<n>      noisy releases, stored once, never re-noised (core.store)
  ledger.sqlite                  the privacy ledger
  keys/                          demo signing keys (never beside deliveries)
  data_docs/<D>/<run id>/        Great Expectations Data Docs of one flow run
out/deliveries/<partner>/<report>/<D>[.release-<n>]   what partners receive (stages.delivery)

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

from core.errors import KrReportsError
from core.schemas import SourceSpec
from core.sources import SourceLanding
from core.store import ReleaseStore

LANDING_MARKER = ".complete"
GLOB_CHARACTERS = re.compile(r"[*?[]")
SYNTHETIC_GENERATOR = "kr-reports generate"  # the landing marker's `generator` when the generator wrote it


class MissingInput(KrReportsError, FileNotFoundError):
    """An input dataset the run needs is not there."""


@dataclass(frozen=True)
class Catalog:
    data_dir: Path
    out_dir: Path

    @classmethod
    def from_env(cls, data_dir: str | Path | None = None, out_dir: str | Path | None = None):
        data = Path(data_dir or os.environ.get("KR_DATA_DIR", "data")).resolve()
        out = Path(out_dir or os.environ.get("KR_OUT_DIR", "out")).resolve()
        return cls(data_dir=data, out_dir=out)

    @property
    def landing_root(self) -> Path:
        return self.data_dir / "landing"

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
        pattern = Path(landing.day_pattern(day))
        pattern = pattern if pattern.is_absolute() else self.data_dir / pattern
        if GLOB_CHARACTERS.search(str(pattern)):
            found = [Path(p) for p in sorted(glob.glob(str(pattern)))]
        else:
            found = [pattern] if pattern.exists() else []
        if not found:
            raise MissingInput(f"{pattern}: no {source.name} input for {day.isoformat()} "
                               f"(sources.yaml: {landing.path})")
        return found

    def _zone(self, zone: str, source: SourceSpec, day: dt.date) -> Path:
        return self.data_dir / zone / source.name / f"date={day.isoformat()}"

    def raw(self, source: SourceSpec, day: dt.date) -> Path:
        return self._zone("raw", source, day)

    def quarantine(self, source: SourceSpec, day: dt.date) -> Path:
        return self._zone("quarantine", source, day)

    def protected(self, source: SourceSpec, day: dt.date) -> Path:
        return self._zone("protected", source, day)

    def zone_root(self, zone: str) -> Path:
        """The folder of an internal zone (raw, quarantine, protected): what retention purges."""
        return self.data_dir / zone

    def analyst(self, day: dt.date) -> Path:
        return self.data_dir / "analyst" / f"date={day.isoformat()}"

    @property
    def release_store(self) -> ReleaseStore:
        return ReleaseStore(self.data_dir / "releases")

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


def read_landing(spark: SparkSession, path: Path, file_format: str) -> DataFrame:
    """Landing files as text columns; a missing folder is an error naming it."""
    if not path.exists():
        raise MissingInput(f"{path}: landing dataset not found")
    reader = spark.read
    if file_format == "csv":
        # multiLine: a quoted value may hold a line break (valid CSV); without it each
        # piece became a row of its own. Each file is then read whole by one task,
        # which landing folders of many part files keep parallel.
        return (reader.option("header", True).option("inferSchema", False)
                .option("multiLine", True).csv(str(path)))
    if file_format == "json":
        return reader.option("primitivesAsString", True).json(str(path))
    if file_format == "parquet":
        return reader.parquet(str(path))
    raise ValueError(f"{path}: unsupported landing format '{file_format}' (parquet, csv, json)")


def read_parquet(spark: SparkSession, path: Path) -> DataFrame:
    if not path.exists():
        raise MissingInput(f"{path}: dataset not found; run the stage that writes it first")
    return spark.read.parquet(str(path))


def write_parquet(df: DataFrame, path: Path) -> None:
    df.write.mode("overwrite").parquet(str(path))
