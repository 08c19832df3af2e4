"""Generalization hierarchies, in ARX's format and model.

A hierarchy maps every value of a column to one generalized value per
level: level 0 is the value itself, the last level is usually `*` (fully
suppressed). ARX stores it as a CSV without header, one row per value:
`value;level1;level2;...;*`. Rows must be consistent: two values that share
a generalization at one level share it at every higher level (a tree).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.errors import KrReportsError


class HierarchyError(KrReportsError, ValueError):
    """A hierarchy file or table that is not a valid generalization hierarchy."""


@dataclass(frozen=True)
class Hierarchy:
    column: str
    rows: tuple[tuple[str, ...], ...]  # (value, level 1, ..., top), one per value

    def __post_init__(self) -> None:
        _check_rows(self.column, self.rows)

    @property
    def height(self) -> int:
        """The highest generalization level (0 is the original value)."""
        return len(self.rows[0]) - 1

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(r[0] for r in self.rows)

    def mapping(self, level: int) -> dict[str, str]:
        """value -> its generalization at `level`."""
        if not 0 <= level <= self.height:
            raise HierarchyError(f"hierarchy '{self.column}': level {level} outside 0..{self.height}")
        return {r[0]: r[level] for r in self.rows}

    def generalize(self, value: str, level: int) -> str:
        mapped = self.mapping(level).get(value)
        if mapped is None:
            raise HierarchyError(f"hierarchy '{self.column}' has no row for one of the column's values")
        return mapped

    def leaves_under(self, level: int) -> dict[str, int]:
        """Generalized value at `level` -> how many original values it covers."""
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row[level]] = counts.get(row[level], 0) + 1
        return counts


def _check_rows(column: str, rows: tuple[tuple[str, ...], ...]) -> None:
    if not rows:
        raise HierarchyError(f"hierarchy '{column}' is empty")
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise HierarchyError(
                f"hierarchy '{column}', row {number}: {len(row)} levels, expected {width} like row 1"
            )
    values = [r[0] for r in rows]
    if len(set(values)) != len(values):
        raise HierarchyError(f"hierarchy '{column}': a value appears in more than one row")
    for level in range(1, width - 1):
        parents: dict[str, str] = {}
        for row in rows:
            if parents.setdefault(row[level], row[level + 1]) != row[level + 1]:
                raise HierarchyError(
                    f"hierarchy '{column}': level {level} group maps to two different level "
                    f"{level + 1} groups (not a tree)"
                )


def from_mapping(column: str, rows: Iterable[Iterable[str]]) -> Hierarchy:
    return Hierarchy(column, tuple(tuple(str(v) for v in row) for row in rows))


def load_arx_hierarchy(path: Path, column: str | None = None, sep: str = ";") -> Hierarchy:
    """Read an ARX hierarchy CSV (`value;level1;...;*`, no header)."""
    path = Path(path)
    if not path.is_file():
        raise HierarchyError(f"{path}: hierarchy file not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = [tuple(r) for r in csv.reader(handle, delimiter=sep) if r and any(c.strip() for c in r)]
    name = column or path.stem.split("_hierarchy_", 1)[-1]
    try:
        return Hierarchy(name, tuple(rows))
    except HierarchyError as exc:
        raise HierarchyError(f"{path}: {exc}") from None


def find_hierarchies(
    folder: Path, columns: Iterable[str], mapping: Mapping[str, str] | None = None, sep: str = ";"
) -> dict[str, Hierarchy]:
    """Hierarchies for `columns` from `folder`: ARX naming `<dataset>_hierarchy_<column>.csv`,
    or an explicit column -> file name mapping."""
    folder = Path(folder)
    found = {}
    for column in columns:
        if mapping and column in mapping:
            path = folder / mapping[column]
        else:
            matches = sorted(folder.glob(f"*_hierarchy_{column}.csv"))
            if len(matches) != 1:
                raise HierarchyError(
                    f"{folder}: expected one file named *_hierarchy_{column}.csv for column "
                    f"'{column}', found {len(matches)}"
                )
            path = matches[0]
        found[column] = load_arx_hierarchy(path, column, sep)
    return found
