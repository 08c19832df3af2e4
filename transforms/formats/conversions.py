"""The conversions a format file names (`core.formats.CONVERSIONS`), each implemented once in Spark.

A conversion takes the input fields' text (null where the file has no
value) and gives the canonical column's landing text: timestamps as
'yyyy-MM-dd HH:mm:ss' UTC, everything else as text. Value problems (a port
of 70000, 'abc' for a duration) are not judged here: the text is passed on
and ingest quarantines the row with its own reason, so the rules live in one
place (`core.schemas`). A time a conversion cannot read is the one exception:
the record is rejected as 'malformed:timestamp' (`transforms.formats.mapping`).

Fixed-form times (epoch seconds, Argus, web log) are computed from their
parts, so the session time zone never shifts them; a `timestamp` pattern is
parsed and read back in the session zone (UTC in `stages.spark`), keeping
its wall clock, then moved from the file's zone to UTC.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column
from pyspark.sql import functions as F

from core.formats import ColumnRule
from transforms.formats.records import ntz_text, regex_groups

# '10/Oct/2000:13:55:36 -0700'
_CLF_TIME_PATTERN = r"^(\d{2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$"
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MAX_OFFSET_HOURS = 18  # java.time.ZoneOffset's limit
# Argus 'yyyy/MM/dd HH:mm:ss[.ffffff]' (ra's default), also with '-' between date parts.
_ARGUS_TIME_PATTERN = r"^(\d{4})[/-](\d{1,2})[/-](\d{1,2}) (\d{1,2}):(\d{2}):(\d{2}(?:\.\d{1,6})?)$"
_HEX_PORT_PATTERN = r"^0[xX][0-9A-Fa-f]{1,8}$"
_REQUEST_PATTERN = r"^(\S+) (\S+)(?: (\S+))?$"
_LAST_EPOCH_SECOND = 253_402_300_799  # 9999-12-31 23:59:59 UTC
_SECONDS_PER_DAY = 86_400

Converter = Callable[[list[Column], ColumnRule, dict[str, str]], Column]


def epoch_to_utc_text(seconds: Column) -> Column:
    """Epoch seconds (text, with fraction) -> 'yyyy-MM-dd HH:mm:ss' UTC; null when unreadable.

    Plain arithmetic on days and seconds of the day, so neither the session
    time zone nor daylight saving can shift it; the fraction is truncated.
    """
    exact = seconds.try_cast("decimal(20,6)")
    in_range = (exact >= F.lit(0)) & (exact <= F.lit(_LAST_EPOCH_SECOND))
    whole = F.floor(exact).cast("bigint")
    days = F.floor(whole / F.lit(_SECONDS_PER_DAY)).cast("bigint")
    second_of_day = whole - days * F.lit(_SECONDS_PER_DAY)
    date = F.date_add(F.lit("1970-01-01").cast("date"), days.cast("int")).cast("string")
    clock = F.format_string(
        "%02d:%02d:%02d",
        F.floor(second_of_day / F.lit(3600)).cast("int"),
        F.floor((second_of_day % F.lit(3600)) / F.lit(60)).cast("int"),
        (second_of_day % F.lit(60)).cast("int"),
    )
    return F.when(in_range, F.concat(date, F.lit(" "), clock))


def _to_utc(wall_clock: Column, timezone: str) -> Column:
    if timezone != "UTC":
        wall_clock = F.convert_timezone(F.lit(timezone), F.lit("UTC"), wall_clock)
    return wall_clock


def argus_time_to_utc_text(text: Column, timezone: str) -> Column:
    """'2013/10/21 13:22:59.340835' (wall clock in `timezone`) -> UTC landing text; null if unreadable."""
    parts = regex_groups(text, _ARGUS_TIME_PATTERN, 6)

    def part(i: int) -> Column:
        return F.get(parts, i - 1)

    wall_clock = F.try_make_timestamp_ntz(
        years=part(1).try_cast("int"),
        months=part(2).try_cast("int"),
        days=part(3).try_cast("int"),
        hours=part(4).try_cast("int"),
        mins=part(5).try_cast("int"),
        secs=part(6).try_cast("decimal(8,6)"),
    )
    return F.when(text.rlike(_ARGUS_TIME_PATTERN), ntz_text(_to_utc(wall_clock, timezone)))


def clf_time_to_utc_text(text: Column) -> Column:
    """'10/Oct/2000:13:55:36 -0700' -> '2000-10-10 20:55:36'; null if unreadable."""
    parts = regex_groups(text, _CLF_TIME_PATTERN, 9)

    def part(i: int) -> Column:
        return F.get(parts, i - 1)

    month = F.array_position(F.array(*[F.lit(m) for m in _MONTHS]), F.lower(part(2)))
    wall_clock = F.try_make_timestamp_ntz(
        years=part(3).try_cast("int"),
        months=month.cast("int"),
        days=part(1).try_cast("int"),
        hours=part(4).try_cast("int"),
        mins=part(5).try_cast("int"),
        secs=part(6).try_cast("decimal(8,6)"),
    )
    offset_ok = (part(8).try_cast("int") <= F.lit(_MAX_OFFSET_HOURS)) & (part(9).try_cast("int") < F.lit(60))
    zone = F.concat(part(7), part(8), F.lit(":"), part(9))
    utc = F.convert_timezone(zone, F.lit("UTC"), wall_clock)
    return F.when(text.rlike(_CLF_TIME_PATTERN) & offset_ok & wall_clock.isNotNull(), ntz_text(utc))


def pattern_time_to_utc_text(text: Column, pattern: str, timezone: str) -> Column:
    """A time written as Spark datetime `pattern`, wall clock in `timezone` -> UTC text; null if unreadable.

    The text is parsed and read back in the session's zone (a round trip that
    keeps its wall clock), then moved from `timezone` to UTC.
    """
    wall_clock = F.try_to_timestamp(text, F.lit(pattern)).cast("timestamp_ntz")
    return ntz_text(_to_utc(wall_clock, timezone))


def sum_counts(*counts: Column) -> Column:
    """The sum of counts; an unset one counts as 0, all unset is null.

    Anything that is not a non-negative integer is passed on as text (one
    value alone, or 'a+b') for ingest to reject, rather than summed away.
    """
    as_numbers = [c.try_cast("bigint") for c in counts]
    all_ok = F.lit(True)
    total = F.lit(0).cast("bigint")
    for text, number in zip(counts, as_numbers, strict=True):
        all_ok = all_ok & (text.isNull() | (number >= F.lit(0)))
        total = F.try_add(total, F.coalesce(number, F.lit(0)))
    all_unset = F.lit(True)
    for text in counts:
        all_unset = all_unset & text.isNull()
    return (
        F.when(all_unset, F.lit(None).cast("string"))
        .when(all_ok & total.isNotNull(), total.cast("string"))
        .otherwise(F.concat_ws("+", *counts))
    )


def decimal_port(port: Column) -> Column:
    """'0x0303' -> '771' (Argus prints ICMP type/code and ids as hex); other text unchanged."""
    return F.when(port.rlike(_HEX_PORT_PATTERN), F.conv(F.substring(port, 3, 8), 16, 10)).otherwise(port)


def host_without_port(host: Column) -> Column:
    """'Example.com:8080' -> 'example.com'; '[2001:db8::1]:80' -> '[2001:db8::1]'."""
    return F.regexp_replace(F.lower(host), r"^([^:\[\]]+|\[[^\]]+\]):[0-9]+$", "$1")


def snake_case(text: Column) -> Column:
    """'Fiber optic' -> 'fiber_optic'; 'Credit card (automatic)' -> 'credit_card' (a final note dropped)."""
    without_note = F.regexp_replace(F.lower(F.trim(text)), r"\s*\([^()]*\)$", "")
    return F.regexp_replace(F.regexp_replace(without_note, r"[^a-z0-9]+", "_"), r"^_+|_+$", "")


def _lookup(values: list[Column], rule: ColumnRule, params: dict[str, str]) -> Column:
    [value] = values
    table = F.create_map(*[F.lit(x) for k, v in rule.mapping("map").items() for x in (k.lower(), v)])
    otherwise = {"text": value, "snake_case": snake_case(value), "null": F.lit(None).cast("string")}
    found = F.element_at(table, F.lower(value))
    return F.when(value.isNotNull(), F.coalesce(found, otherwise[params.get("otherwise", "text")]))


def _flags(values: list[Column], rule: ColumnRule, params: dict[str, str]) -> Column:
    yes = params.get("yes", "yes").lower()
    names = list(rule.mapping("flags").values())
    taken = [F.when(F.lower(v) == F.lit(yes), F.lit(n)) for v, n in zip(values, names, strict=True)]
    joined = F.concat_ws(params.get("separator", ";"), *taken)
    return F.when(joined != F.lit(""), joined)


def _timestamp(values: list[Column], rule: ColumnRule, params: dict[str, str]) -> Column:
    return pattern_time_to_utc_text(values[0], params["pattern"], params.get("timezone", "UTC"))


CONVERTERS: dict[str, Converter] = {
    "text": lambda v, r, p: v[0],
    "lower": lambda v, r, p: F.lower(v[0]),
    "domain": lambda v, r, p: F.regexp_replace(F.lower(v[0]), r"\.$", ""),
    "host": lambda v, r, p: host_without_port(v[0]),
    "port": lambda v, r, p: decimal_port(v[0]),
    "epoch_seconds": lambda v, r, p: epoch_to_utc_text(v[0]),
    "timestamp": _timestamp,
    "argus_time": lambda v, r, p: argus_time_to_utc_text(v[0], p.get("timezone", "UTC")),
    "clf_time": lambda v, r, p: clf_time_to_utc_text(v[0]),
    "request_target": lambda v, r, p: F.when(
        v[0].rlike(_REQUEST_PATTERN), F.regexp_extract(v[0], _REQUEST_PATTERN, 2)),
    "count_sum": lambda v, r, p: sum_counts(*v),
    "missing_is_zero": lambda v, r, p: F.coalesce(v[0], F.lit("0")),
    "snake_case": lambda v, r, p: snake_case(v[0]),
    "lookup": _lookup,
    "flags": _flags,
    "constant": lambda v, r, p: F.lit(p["value"]).cast("string"),
}


def rule_params(rule: ColumnRule, options: dict[str, str]) -> dict[str, str]:
    """The rule's text parameters, a '$option' replaced by that option's value."""
    params = {}
    for name, value in rule.params:
        if isinstance(value, str):
            params[name] = options[value[1:]] if value.startswith("$") else value
    return params


def convert(rule: ColumnRule, get: Callable[[str], Column], options: dict[str, str]) -> Column:
    """The column `rule` computes from the fields `get` returns (its fallback where it gives null)."""
    column = CONVERTERS[rule.convert]([get(f) for f in rule.inputs], rule, rule_params(rule, options))
    if rule.fallback is not None:
        column = F.coalesce(column, convert(rule.fallback, get, options))
    return column.cast("string")
