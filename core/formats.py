"""Operators' file formats as data: one YAML file per format, validated into frozen models.

A format file says which canonical source a file feeds (`target`), how its
records are laid out (`layout`), how each canonical column is computed from
the file's fields (`columns`: the input field(s) and a conversion from the
closed set `CONVERSIONS`) and why every other field is not carried
(`dropped`). Every field a file may hold is so classified once, in the open:
a field a file has that its format neither maps nor drops is refused when
the file is read, with an error that says how to classify it. An identifier
is never carried by accident because nobody listed it.

No Spark here: the conversions are implemented once in
`transforms.formats.conversions`, files are read in `stages.formats`.
The YAML files are read and checked in `core.format_file`.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass

from core.config import ConfigError
from core.schemas import SOURCES

LAYOUTS = ("csv", "tsv", "zeek", "combined_log", "json_lines", "parquet")
OPTION_KINDS = ("text", "host", "timezone")
FORMAT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_UTC_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


class FormatFileError(ConfigError):
    """A format file is unreadable or does not describe a format (the message names file and line)."""


@dataclass(frozen=True)
class Conversion:
    """A named conversion: how many input fields it takes and which parameters."""

    name: str
    inputs: str  # 'none' | 'one' | 'many' | 'flags' (the inputs are the keys of its `flags`)
    doc: str
    params: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    mappings: tuple[str, ...] = ()  # parameters whose value is a mapping, not text
    is_time: bool = False  # a value it cannot read is a broken record ('malformed:timestamp')


CONVERSIONS: dict[str, Conversion] = {c.name: c for c in (
    Conversion("text", "one", "the value as it is"),
    Conversion("lower", "one", "lower-cased"),
    Conversion("domain", "one", "a DNS name: lower-cased, a final '.' removed"),
    Conversion("host", "one", "a Host header: lower-cased, a ':port' removed"),
    Conversion("port", "one", "a port: hexadecimal '0x0303' becomes '771', decimal stays"),
    Conversion("epoch_seconds", "one", "seconds since 1970 (with a fraction) -> UTC time", is_time=True),
    Conversion("timestamp", "one", "a time written as `pattern` (Spark's datetime pattern, e.g. "
               "'dd/MM/yyyy HH:mm:ss') in `timezone` (default UTC) -> UTC time",
               params=("pattern", "timezone"), required=("pattern",), is_time=True),
    Conversion("argus_time", "one", "Argus 'yyyy/MM/dd HH:mm:ss[.ffffff]' in `timezone` -> UTC time",
               params=("timezone",), is_time=True),
    Conversion("clf_time", "one", "web log time '10/Oct/2000:13:55:36 -0700' -> UTC time", is_time=True),
    Conversion("request_target", "one", "'GET /path HTTP/1.1' -> '/path'"),
    Conversion("count_sum", "many", "the sum of counts; an unset one counts 0, all unset is unset; "
               "a value that is not a count is passed on for ingest to refuse"),
    Conversion("missing_is_zero", "one", "the value, and 0 where it is unset ('-')"),
    Conversion("snake_case", "one", "'Fiber optic' -> 'fiber_optic'"),
    Conversion("lookup", "one", "the value (lower-cased) looked up in `map`; one not in it is "
               "`otherwise`: text (passed on), snake_case, or null", params=("map", "otherwise"),
               required=("map",), mappings=("map",)),
    Conversion("flags", "flags", "the names (values of `flags`) of the fields (keys) whose value is "
               "`yes` (default 'yes', any case), joined with `separator` (default ';'); null when none",
               params=("flags", "yes", "separator"), required=("flags",), mappings=("flags",)),
    Conversion("constant", "none", "the same `value` on every row (usually an option: '$site_domain')",
               params=("value",), required=("value",)),
)}
LOOKUP_OTHERWISE = ("text", "snake_case", "null")


@dataclass(frozen=True)
class ColumnRule:
    """How one canonical column is computed: its conversion of its input fields."""

    column: str
    convert: str
    inputs: tuple[str, ...]
    params: tuple[tuple[str, str | tuple[tuple[str, str], ...]], ...] = ()
    fallback: ColumnRule | None = None  # used where this rule gives null; its fields may be absent
    line: int = 0

    def mapping(self, name: str) -> dict[str, str]:
        value = dict(self.params).get(name, ())
        return dict(value) if isinstance(value, tuple) else {}

    @property
    def all_inputs(self) -> tuple[str, ...]:
        return self.inputs + (self.fallback.all_inputs if self.fallback else ())


@dataclass(frozen=True)
class Layout:
    kind: str  # csv | zeek | combined_log | json_lines | parquet | canonical
    delimiter: str = ","
    header: bool = True
    zeek_path: str | None = None  # the '#path' a Zeek log of this kind declares
    fields: tuple[str, ...] = ()  # csv without a header line: its fields in order


@dataclass(frozen=True)
class FormatOption:
    name: str
    kind: str  # text | host | timezone
    default: str | None
    help: str = ""


@dataclass(frozen=True)
class FileFormat:
    """One input format: its target source, layout, column rules, dropped fields and options."""

    name: str
    target: str | None  # None only for the built-in 'canonical' (any source onto itself)
    description: str
    layout: Layout
    columns: tuple[ColumnRule, ...]
    dropped_fields: tuple[tuple[str, str], ...] = ()
    options: tuple[FormatOption, ...] = ()
    origin: str = "built in"  # the format file it was read from

    @property
    def input_columns(self) -> list[str]:
        names = [f for rule in self.columns for f in rule.all_inputs]
        names += [f for f, _ in self.dropped_fields]
        return list(dict.fromkeys(names))

    @property
    def required_columns(self) -> list[str]:
        """Fields a file must have: those a column rule reads (fallback fields may be absent)."""
        return list(dict.fromkeys(f for rule in self.columns for f in rule.inputs))

    @property
    def carried(self) -> dict[str, list[str]]:
        """Input field -> the canonical column(s) it feeds."""
        fed: dict[str, list[str]] = {}
        for rule in self.columns:
            for name in dict.fromkeys(rule.all_inputs):
                fed.setdefault(name, []).append(rule.column)
        return fed

    @property
    def dropped(self) -> dict[str, str]:
        """Input field -> why it is not carried."""
        return dict(self.dropped_fields)

    @property
    def canonical_without_source(self) -> list[str]:
        """Canonical columns no rule computes: always null in the mapped text."""
        if self.target is None:
            return []
        ruled = {r.column for r in self.columns}
        return [c for c in SOURCES[self.target].column_names if c not in ruled]

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    def unclassified(self, fields: list[str]) -> list[str]:
        """The fields of a file that this format neither maps nor drops."""
        known = set(self.input_columns)
        return [f for f in fields if f not in known]

    def resolve_options(self, given: dict[str, str]) -> dict[str, str]:
        """Every option's value (given, else its default), checked; ValueError naming a bad one."""
        unknown = sorted(set(given) - set(self.option_names))
        if unknown:
            allowed = ", ".join(self.option_names) or "none"
            raise ValueError(f"format '{self.name}' takes no option(s) {', '.join(unknown)} "
                             f"(allowed: {allowed})")
        values = {}
        for option in self.options:
            value = given.get(option.name, option.default)
            if value is None:
                raise ValueError(f"format '{self.name}' needs the option {option.name} ({option.help})")
            values[option.name] = check_option_value(option, str(value))
        return values


def check_option_value(option: FormatOption, value: str) -> str:
    if option.kind == "timezone":
        return check_timezone(value)
    if option.kind == "host":
        if not value.strip():
            raise ValueError(f"{option.name} must be a non-empty host name")
        return value.strip().lower()
    return value


def check_timezone(timezone: str) -> str:
    """`timezone` if it is 'UTC', an offset '+01:00' or an IANA zone; ValueError otherwise."""
    if timezone == "UTC" or _UTC_OFFSET.match(timezone):
        return timezone
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone '{timezone}' (an IANA name like 'Europe/Prague', or '+01:00')"
        ) from exc
    return timezone


def canonical_format(source: str) -> FileFormat:
    """The built-in 'canonical' format for one source: every column carried as it is."""
    if source not in SOURCES:
        raise ValueError(f"unknown source '{source}' (one of {', '.join(SOURCES)})")
    rules = tuple(ColumnRule(c, "text", (c,)) for c in SOURCES[source].column_names)
    return FileFormat("canonical", source, CANONICAL.description, CANONICAL.layout, rules,
                      options=CANONICAL.options)


CANONICAL = FileFormat(
    "canonical", None,
    "The project's own landing files (Parquet, CSV with header, JSON lines) of any source",
    Layout("canonical"), (), options=(FormatOption("source", "text", None, "which source the files hold"),),
)
