"""The day's input of each canonical source, read as config/sources.yaml says (the IO half).

The generator's landing (the default) is read as the daily flow always has
read it (stages.catalog.read_landing). A configured source's files go through
their format (stages.formats.read_format): the mapped canonical text goes on
to ingest's typing and validation, and the lines the format cannot read come
back as `rejected`, for the quarantine, each with its reason.

The format each entry names, the source it feeds and the options it takes are
checked by `check_sources` before a run touches its data folder, so a typo in
sources.yaml is one line naming the file and the key, not a failed ingest.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from core.config import ConfigError
from core.format_file import load_format_file
from core.schemas import SOURCES, SourceSpec
from core.sources import CANONICAL, SourceLanding, SourcesConfig
from stages.catalog import Catalog, read_landing
from stages.formats import FormatError, format_options, read_format, shipped_format

SET_BY_THE_RUN = ("source",)  # canonical's option: the source the entry is for


@dataclass(frozen=True)
class SourceFormat:
    """A configured format: what read_format takes as `fmt`, the source it feeds, its options.

    `target` is None for canonical, which reads any source onto itself.
    """

    fmt: object
    name: str
    target: str | None
    options: tuple[str, ...]


def format_of(landing: SourceLanding) -> SourceFormat:
    """The format an entry names: a shipped one, or its format file (FormatError if unknown)."""
    if landing.format_file is not None:
        fmt = load_format_file(landing.format_file)
    else:
        fmt = shipped_format(landing.format_name)
    allowed = tuple(o for o in format_options(fmt) if o not in SET_BY_THE_RUN)
    return SourceFormat(fmt=fmt, name=fmt.name, target=fmt.target, options=allowed)


def check_sources(sources: SourcesConfig) -> None:
    """ConfigError naming the file and key for a format that is unknown, feeds another source,
    or is given an option it does not take."""
    for source, landing in sources.sources.items():
        if landing.is_generator_landing:
            continue
        key = "format_file" if landing.format_file is not None else "format"
        try:
            fmt = format_of(landing)
        except (FormatError, ConfigError) as exc:  # a format file's error names its own file and line
            raise ConfigError(f"{sources.key(source, key)}: {exc}") from None
        if fmt.target not in (None, source):
            raise ConfigError(f"{sources.key(source, key)}: format '{fmt.name}' reads {fmt.target} "
                              f"files, not {source}")
        unknown = sorted(set(landing.options) - set(fmt.options))
        if unknown:
            raise ConfigError(f"{sources.key(source, 'options')}: format '{fmt.name}' takes no option(s) "
                              f"{', '.join(unknown)} (allowed: {', '.join(fmt.options) or 'none'})")


def generator_landing_format(catalog: Catalog, sources: SourcesConfig) -> str | None:
    """The file format of the generator's landing, when a source reads it (from its manifest)."""
    if not any(sources.landing(source).is_generator_landing for source in SOURCES):
        return None
    return catalog.landing_manifest().get("format", "parquet")


@dataclass(frozen=True)
class DayInput:
    """A source's input for a day: canonical landing text, the lines its format rejected, where."""

    landing: DataFrame
    rejected: DataFrame | None  # file, line_number, reason, record; None for the generator's landing
    location: str


def read_day_input(spark: SparkSession, catalog: Catalog, source: SourceSpec, day: dt.date,
                   landing: SourceLanding, landing_format: str | None = None) -> DayInput:
    """The day's input of `source` as its entry says; MissingInput when its files are not there.

    `landing_format`: the generator landing's file format (read from its manifest when None).
    """
    paths = catalog.source_input(source, day, landing)
    if landing.is_generator_landing:
        (path,) = paths
        file_format = landing_format or catalog.landing_manifest().get("format", "parquet")
        return DayInput(read_landing(spark, path, file_format), None, str(path))
    fmt = format_of(landing)
    options = {**landing.options, **({"source": source.name} if fmt.name == CANONICAL else {})}
    mapped, rejected = [], []
    for path in paths:
        # read_format refuses a field the format neither maps nor drops, naming the file.
        day_mapped, day_rejected, _ = read_format(spark, fmt.fmt, path, **options)
        mapped.append(day_mapped)
        rejected.append(day_rejected)
    return DayInput(functools.reduce(DataFrame.unionByName, mapped),
                    functools.reduce(DataFrame.unionByName, rejected), landing.path or "")


def quarantined_lines(rejected: DataFrame, source: SourceSpec) -> DataFrame:
    """Lines the format could not read, in the quarantine's columns, their reason as the first."""
    return rejected.select(
        F.lit(source.name).alias("source"),
        F.col("reason"),
        F.array(F.col("reason")).alias("reasons"),
        F.col("record"),
    )
