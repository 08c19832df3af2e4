"""Builders that turn a column's distinct values into a generalization hierarchy.

Each builder takes the column name and the distinct values present (strings, as
they appear in the data) and returns a `Hierarchy` whose top level is `*`. The
`Hierarchy` constructor checks that the result is a tree, so a builder cannot
hand the anonymizer two parents for one group. Errors name the column and how
many values failed, never the values themselves (they may be personal data).
"""

from __future__ import annotations

import csv
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path

from core.kanon.hierarchy import Hierarchy, HierarchyError

TOP = "*"
UNKNOWN_MODEL = "unknown model"
UNKNOWN_BRAND = "unknown brand"
UNKNOWN_SITE = "unknown site"
UNKNOWN_REGION = "unknown region"
TAC_DIGITS = 8

# Hours [start, end] of each part of the day, as the issue defines them.
PARTS_OF_DAY = (("night", 0, 5), ("morning", 6, 11), ("afternoon", 12, 17), ("evening", 18, 23))

# An ISO week can span two months (and two years), so week and month cannot be
# stacked: the levels of one hierarchy come from one of these chains, in order.
DATETIME_CHAINS = (
    ("hour", "part_of_day", "day", "week"),
    ("hour", "part_of_day", "day", "month"),
)


def _distinct(column: str, values: Iterable[str]) -> list[str]:
    """The distinct values in first-seen order; every one must be a string."""
    unique = list(dict.fromkeys(values))
    not_strings = sum(not isinstance(v, str) for v in unique)
    if not_strings:
        raise HierarchyError(f"hierarchy '{column}': {not_strings} value(s) are not strings")
    return unique


def _fail_if_invalid(column: str, invalid: int, what: str) -> None:
    if invalid:
        raise HierarchyError(f"hierarchy '{column}': {invalid} value(s) are not {what}")


def _build(column: str, rows: Iterable[Sequence[str]]) -> Hierarchy:
    return Hierarchy(column, tuple((*row, TOP) for row in rows))


# --- numeric intervals -------------------------------------------------------------------------------


def _number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _plain(number: Decimal) -> str:
    return format(number.normalize(), "f")


def _check_widths(column: str, widths: Sequence[Decimal]) -> None:
    if not widths or any(w <= 0 for w in widths):
        raise HierarchyError(f"hierarchy '{column}': interval widths must be positive, at least one")
    for narrow, wide in pairwise(widths):
        # Nested intervals need each width to be a larger multiple of the one below it.
        if wide <= narrow or wide % narrow != 0:
            raise HierarchyError(
                f"hierarchy '{column}': width {_plain(wide)} is not a larger multiple of {_plain(narrow)}"
            )


def _interval(number: Decimal, lower: Decimal, width: Decimal) -> str:
    start = lower + ((number - lower) / width).to_integral_value(rounding=ROUND_FLOOR) * width
    return f"[{_plain(start)}, {_plain(start + width)}["


def intervals(
    column: str,
    values: Iterable[str],
    widths: Sequence[int | float | str] = (5, 10, 20),
    lower: int | float | str | None = None,
) -> Hierarchy:
    """Numbers -> `[a, b[` intervals, one level per width, then `*`.

    Intervals of every level start at `lower` plus a multiple of their width;
    `lower` defaults to the smallest value rounded down to a multiple of the
    first width. Values below an explicit `lower` are an error.
    """
    unique = _distinct(column, values)
    numbers = [_number(v) for v in unique]
    _fail_if_invalid(column, sum(n is None for n in numbers), "finite numbers")
    steps = [Decimal(str(w)) for w in widths]
    _check_widths(column, steps)
    if lower is None:
        start = (min(numbers) / steps[0]).to_integral_value(rounding=ROUND_FLOOR) * steps[0]
    else:
        start = Decimal(str(lower))
        below = sum(n < start for n in numbers)
        if below:
            raise HierarchyError(f"hierarchy '{column}': {below} value(s) are below the lower bound")
    return _build(
        column,
        ((text, *(_interval(n, start, w) for w in steps)) for text, n in zip(unique, numbers, strict=True)),
    )


# --- dates and times ---------------------------------------------------------------------------------


def _part_of_day(hour: int) -> str:
    return next(name for name, first, last in PARTS_OF_DAY if first <= hour <= last)


def _datetime_label(moment: datetime, level: str) -> str:
    if level == "hour":
        return moment.strftime("%Y-%m-%dT%H")
    if level == "part_of_day":
        return f"{moment:%Y-%m-%d} {_part_of_day(moment.hour)}"
    if level == "day":
        return moment.strftime("%Y-%m-%d")
    if level == "week":
        iso = moment.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return moment.strftime("%Y-%m")


def _check_datetime_levels(column: str, levels: Sequence[str]) -> None:
    known = {name for chain in DATETIME_CHAINS for name in chain}
    unknown = [name for name in levels if name not in known]
    if unknown or not levels:
        raise HierarchyError(
            f"hierarchy '{column}': levels must be some of {sorted(known)}, got {list(levels)}"
        )
    if "week" in levels and "month" in levels:
        raise HierarchyError(
            f"hierarchy '{column}': 'week' and 'month' cannot both be levels: an ISO week can span "
            "two months, so the result would not be a tree; use one of them"
        )
    chain = next(c for c in DATETIME_CHAINS if set(levels) <= set(c))
    if [chain.index(name) for name in levels] != sorted({chain.index(name) for name in levels}):
        raise HierarchyError(
            f"hierarchy '{column}': levels must go from fine to coarse, in the order {chain}"
        )


def _parse_datetime(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def datetimes(
    column: str,
    values: Iterable[str],
    levels: Sequence[str] = ("hour", "part_of_day", "day", "month"),
) -> Hierarchy:
    """ISO timestamps -> hour `2026-11-01T13`, part of day `2026-11-01 afternoon`,
    day `2026-11-01`, ISO week `2026-W44` or month `2026-11`, then `*`.

    `levels` is an ordered selection from hour, part_of_day, day and then either
    week or month (not both: weeks cross month ends). Timestamps keep the wall
    clock they are written in; an offset is not converted.
    """
    _check_datetime_levels(column, levels)
    unique = _distinct(column, values)
    moments = [_parse_datetime(v) for v in unique]
    _fail_if_invalid(column, sum(m is None for m in moments), "ISO timestamps")
    return _build(
        column,
        (
            (text, *(_datetime_label(m, level) for level in levels))
            for text, m in zip(unique, moments, strict=True)
        ),
    )


# --- prefix masking ----------------------------------------------------------------------------------


def _mask(value: str, keep: int) -> str:
    return value[:keep] + "*" * max(len(value) - keep, 0)


def prefix_mask(column: str, values: Iterable[str], keep: Sequence[int] = (4, 3, 2, 1)) -> Hierarchy:
    """Keep the first `keep[i]` characters at level i+1 and mask the rest with `*`
    (`47677` -> `4767*` -> `476**` ...), then `*`. Masks keep the value's length;
    a value no longer than a prefix stays as it is at that level.
    """
    if not keep or any(k < 0 for k in keep) or list(keep) != sorted(set(keep), reverse=True):
        raise HierarchyError(f"hierarchy '{column}': prefix lengths must be distinct, >= 0 and decreasing")
    unique = _distinct(column, values)
    return _build(column, ((v, *(_mask(v, k) for k in keep)) for v in unique))


# --- IP prefixes -------------------------------------------------------------------------------------


def _check_bits(column: str, bits: Sequence[int], maximum: int, family: str) -> None:
    if any(not 0 <= b <= maximum for b in bits) or list(bits) != sorted(set(bits), reverse=True):
        raise HierarchyError(
            f"hierarchy '{column}': {family} prefix lengths must be distinct, decreasing and in 0..{maximum}"
        )


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def ip_prefixes(
    column: str,
    values: Iterable[str],
    ipv4_bits: Sequence[int] = (24, 16, 8),
    ipv6_bits: Sequence[int] = (48, 32, 16),
) -> Hierarchy:
    """IP addresses -> network prefixes (`10.1.2.0/24`, `2001:db8:1::/48`, ...), then `*`.

    A column may mix IPv4 and IPv6, so both families need the same number of levels.
    """
    if len(ipv4_bits) != len(ipv6_bits):
        raise HierarchyError(f"hierarchy '{column}': IPv4 and IPv6 need the same number of prefix levels")
    _check_bits(column, ipv4_bits, 32, "IPv4")
    _check_bits(column, ipv6_bits, 128, "IPv6")
    unique = _distinct(column, values)
    addresses = [_parse_ip(v) for v in unique]
    _fail_if_invalid(column, sum(a is None for a in addresses), "IP addresses")

    def prefixes(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[str, ...]:
        bits = ipv4_bits if address.version == 4 else ipv6_bits
        return tuple(str(ipaddress.ip_network((address, b), strict=False)) for b in bits)

    return _build(column, ((text, *prefixes(a)) for text, a in zip(unique, addresses, strict=True)))


# --- trees from parent tables ------------------------------------------------------------------------


def tree(column: str, table: Mapping[str, Sequence[str]]) -> Hierarchy:
    """A hierarchy from value -> its ancestors, nearest first
    (`{"cell-17": ("site-3", "Seoul")}`), with `*` added on top."""
    depths = {len(ancestors) for ancestors in table.values()}
    if len(depths) > 1:
        raise HierarchyError(
            f"hierarchy '{column}': every value needs the same number of ancestors, found {sorted(depths)}"
        )
    _distinct(column, table)
    return _build(column, ((value, *ancestors) for value, ancestors in table.items()))


def region_tree(
    column: str,
    cells: Iterable[str],
    cell_sites: Mapping[str, str],
    site_regions: Mapping[str, str],
) -> Hierarchy:
    """cell -> site -> region -> `*`; a cell or site missing from its table goes
    under `unknown site` / `unknown region` rather than failing the run."""

    def ancestors(cell: str) -> tuple[str, str]:
        site = cell_sites.get(cell)
        if site is None:
            return UNKNOWN_SITE, UNKNOWN_REGION
        return site, site_regions.get(site, UNKNOWN_REGION)

    return tree(column, {cell: ancestors(cell) for cell in _distinct(column, cells)})


def tac_of(value: str) -> str:
    """The 8-digit TAC of a TAC or IMEI string (its first 8 digits); shorter values
    lost their leading zeros (spreadsheet damage) and are padded back."""
    digits = value.strip()
    return digits[:TAC_DIGITS] if len(digits) >= TAC_DIGITS else digits.zfill(TAC_DIGITS)


def tac_model_brand(
    column: str,
    tacs: Iterable[str],
    tac_table: Mapping[str, tuple[str, str]],
) -> Hierarchy:
    """TAC or IMEI -> model -> brand -> `*`, from tac -> (brand, model).

    A model label carries its brand (`Oppo N1`): the Osmocom database has model
    names shared by several brands (N1: Oppo and Neonode), and a bare model
    name would then have two parents. Unknown TACs go under `unknown model` /
    `unknown brand`.
    """
    table = {tac_of(tac): pair for tac, pair in tac_table.items()}
    rows = {}
    for value in _distinct(column, tacs):
        brand, model = table.get(tac_of(value), (UNKNOWN_BRAND, ""))
        model_label = UNKNOWN_MODEL if brand == UNKNOWN_BRAND else f"{brand} {model or UNKNOWN_MODEL}"
        rows[value] = (model_label, brand)
    return tree(column, rows)


# --- ARX CSV -----------------------------------------------------------------------------------------


def to_arx_csv(hierarchy: Hierarchy, path: Path, sep: str = ";") -> Path:
    """Write `hierarchy` in ARX's format (`value;level1;...;*`, no header)."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter=sep, lineterminator="\n").writerows(hierarchy.rows)
    return path
