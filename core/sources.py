"""Where each canonical source's daily files land, and in which format (config/sources.yaml).

A source's entry names a path pattern with the day in it
(`/exports/argus/{day:%Y-%m-%d}/*.binetflow`; `{day}` alone is the ISO date)
and the format its files are in: a shipped format name with that format's
options, or `format_file`, a user's own format file. A relative pattern is
resolved against the data folder when the day is read (stages.catalog); a
relative format file against the config folder, here. An entry without a
path, and a source the file does not list, read the generator's canonical
landing zone, as a missing sources.yaml does: the embedded default.

The pattern must tell every day apart (year, month and day), so a run can
never read another day's files as its own. Which format names and options
exist is the formats' business (stages.sources checks them against the
registry before a run touches its data folder); this model checks the shape.
"""

from __future__ import annotations

import datetime as dt
import string
from pathlib import Path

from pydantic import (
    Field,
    PrivateAttr,
    StrictBool,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.config import Frozen, validated
from core.schemas import SOURCES

SOURCES_FILE = "sources.yaml"
CANONICAL = "canonical"  # the generator's canonical files (Parquet, CSV or JSON lines)
DAY = "day"
FORMAT_NAME = r"^[a-z][a-z0-9_]*$"
# Dates that differ in only the year, the month or the day: a pattern must give each its own path.
_DAY_PROBES = (dt.date(2031, 1, 2), dt.date(2032, 1, 2), dt.date(2031, 3, 2), dt.date(2031, 1, 4))

OptionValue = StrictStr | StrictBool  # no format takes a number: a YAML number is refused, not cast


def check_day_pattern(pattern: str) -> str:
    """`pattern` when `{day}` (or `{day:<strftime>}`) is its only placeholder and names the day fully."""
    try:
        fields = [(name, spec, conversion)
                  for _, name, spec, conversion in string.Formatter().parse(pattern) if name is not None]
    except ValueError:
        raise ValueError("unbalanced '{' or '}' (write '{{' and '}}' for literal braces)") from None
    others = sorted({name or "{}" for name, _, _ in fields if name != DAY})
    if others:
        raise ValueError(f"unknown placeholder(s) {', '.join(others)} (only {{day}}, e.g. "
                         "{day:%Y-%m-%d})")
    if not fields:
        raise ValueError("has no {day}: the path must name the day its files hold (e.g. "
                         "/exports/zeek/{day:%Y-%m-%d}/conn.*.log.gz)")
    if any(conversion for _, _, conversion in fields):
        raise ValueError("{day!...} conversions are not supported (use {day:<strftime format>})")
    try:
        paths = {pattern.format(day=probe) for probe in _DAY_PROBES}
    except ValueError as exc:
        raise ValueError(f"the day's format cannot be used ({exc})") from None
    if len(paths) < len(_DAY_PROBES):
        raise ValueError("does not tell every day apart: its {day:...} must give the year, month "
                         "and day (e.g. {day:%Y-%m-%d} or {day:%Y%m%d})")
    return pattern


class SourceLanding(Frozen):
    """One source's daily input: where its files land (`path`) and their format.

    `format` is a shipped format name (stages.formats) or `canonical`;
    `format_file` a user's own format file instead. `options` go to the format.
    """

    path: str | None = Field(default=None, min_length=1)
    format: str | None = Field(default=None, pattern=FORMAT_NAME)
    format_file: Path | None = None
    options: dict[str, OptionValue] = Field(default_factory=dict)

    @field_validator("path")
    @classmethod
    def _day_in_path(cls, path: str | None) -> str | None:
        if path is None:
            return None
        return check_day_pattern(path)  # a folder, a file pattern or a URL (shared storage)

    @field_validator("format_file")
    @classmethod
    def _format_file_exists(cls, file: Path | None, info: ValidationInfo) -> Path | None:
        if file is None:
            return None
        config_dir = (info.context or {}).get("config_dir")
        resolved = file if file.is_absolute() or config_dir is None else Path(config_dir) / file
        if not resolved.is_file():
            raise ValueError(f"format file {resolved} not found (a relative path is read from the "
                             "config folder)")
        return resolved

    @model_validator(mode="after")
    def _one_format(self) -> SourceLanding:
        if self.format is not None and self.format_file is not None:
            raise ValueError("give either format or format_file, not both")
        if self.path is None and not self.is_generator_landing:
            raise ValueError("a path is needed: only format canonical has a default landing (the "
                             "generator's)")
        if self.path is None and self.options:
            raise ValueError("options need a path: the generator's landing takes none")
        return self

    @property
    def format_name(self) -> str:
        """The format named (canonical by default); a format file's is the file's business."""
        return self.format or CANONICAL

    @property
    def is_generator_landing(self) -> bool:
        """Read from the generator's landing zone (no path, canonical files)."""
        return self.path is None and self.format_file is None and self.format_name == CANONICAL

    def day_pattern(self, day: dt.date) -> str:
        """The path pattern of `day` (may still hold glob characters); only with a path."""
        if self.path is None:
            raise ValueError("the generator's landing has no path pattern")
        return self.path.format(day=day)


GENERATOR_LANDING = SourceLanding()


class SourcesConfig(Frozen):
    """config/sources.yaml: per canonical source, its daily input; unlisted sources use the default."""

    sources: dict[str, SourceLanding] = Field(default_factory=dict)
    _file: Path | None = PrivateAttr(default=None)  # where it was read, for error messages

    @field_validator("sources", mode="before")
    @classmethod
    def _none_is_empty(cls, sources: object) -> object:
        return {} if sources is None else sources  # every entry commented out

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, sources: dict[str, SourceLanding]) -> dict[str, SourceLanding]:
        unknown = sorted(set(sources) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown source(s) {', '.join(unknown)} (expected some of "
                             f"{', '.join(SOURCES)})")
        return sources

    def landing(self, source: str) -> SourceLanding:
        return self.sources.get(source, GENERATOR_LANDING)

    def key(self, source: str, field: str) -> str:
        """'<file>: sources.<source>.<field>', the prefix of an error about that key."""
        return f"{self._file or SOURCES_FILE}: sources.{source}.{field}"


def load_sources_config(config_dir: Path) -> SourcesConfig:
    """config/sources.yaml validated; a missing file is the default (the generator's landing)."""
    path = Path(config_dir) / SOURCES_FILE
    if not path.exists():
        return SourcesConfig()
    config = validated(SourcesConfig, path, context={"config_dir": Path(config_dir)})
    config._file = path
    return config
