"""Per-group lower medians of weighted values, and the row counts around them, without a groupby.

Mondrian cuts every open partition at the median of its widest QI at once
(`core.kanon.mondrian`), over up to millions of rows and hundreds of thousands of groups.
Ranks are usually whole numbers in a short range, so each group's values are counted in a
histogram (a cell per value between its smallest and largest) and the median is found by
searching the running total, without sorting; other values are sorted by group and value,
runs of equal values playing the cells. Weighted rows count as that many repeated rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupMedians:
    """Per group: the lower median, the largest value below it (NaN: none), and how many rows hold
    any value, a value <= the median, a value < the median (weights summed)."""

    median: np.ndarray
    below_cut: np.ndarray
    counts: np.ndarray
    at_most: np.ndarray
    below: np.ndarray


_CELLS_PER_ROW = 4  # a histogram beats a sort up to this many cells per row (and a few thousand)


def group_medians(
    values: np.ndarray,
    groups: np.ndarray,
    weights: np.ndarray | None,
    low: np.ndarray,
    high: np.ndarray,
    whole: bool | None = None,
) -> GroupMedians:
    """`GroupMedians` of each group's `values`, each repeated `weights` times (positive; None: once).

    `low`/`high` are each group's smallest and largest value; a group where low > high (or NaN)
    is skipped, as if it had no rows. The lower median is the value at position (n - 1) // 2 of
    the group's n sorted rows, as pandas' quantile(0.5, "lower"). Whole numbers (`whole`: known
    to be, else checked) are counted in a histogram with a cell per value from each group's low
    to its high: no sort.
    """
    active = low <= high
    rows = np.flatnonzero(active[groups])
    if len(rows) < len(groups):
        values, groups = values[rows], groups[rows]
        weights = None if weights is None else weights[rows]
    low, widths = np.where(active, low, 0), np.where(active, high - low + 1, 0)
    whole = bool((values == np.floor(values)).all()) if whole is None else whole
    if whole and (low == np.floor(low)).all() and widths.sum() <= _CELLS_PER_ROW * len(values) + 4096:
        widths = widths.astype(np.int64)
        first = np.concatenate(([0], np.cumsum(widths)))  # each group's first cell, then the end
        # Whole numbers: values - low + first is exact (first - low too, below 2**52), a cell per value.
        if np.abs(low).max(initial=0) < 2**52:
            cell = (values + (first[:-1] - low)[groups]).astype(np.int64)
        else:
            cell = (values - low[groups]).astype(np.int64) + first[groups]
        cells = np.bincount(cell, weights=weights, minlength=first[-1])
        return _medians_of_cells(cells, first, lambda at, group: low[group] + (at - first[group]))
    cells, run_values, first = _value_runs(values, groups, weights, len(low))
    return _medians_of_cells(cells, first, lambda at, _: run_values[at])


def _value_runs(
    values: np.ndarray, groups: np.ndarray, weights: np.ndarray | None, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """By sorting: the rows of each run of equal values within a group (a cell), group after group
    and in increasing value; each run's value; each group's first run (then the end)."""
    order = np.lexsort((values, groups))
    values, groups = values[order], groups[order]
    new_run = np.ones(len(values), dtype=bool)
    new_run[1:] = (values[1:] != values[:-1]) | (groups[1:] != groups[:-1])
    runs = np.flatnonzero(new_run)
    rows = np.ones(len(values), dtype=np.int64) if weights is None else weights[order]
    cells = np.add.reduceat(rows, runs) if len(runs) else rows[:0]
    first = np.concatenate(([0], np.cumsum(np.bincount(groups[runs], minlength=size))))
    return cells, values[runs], first


def _medians_of_cells(cells: np.ndarray, first: np.ndarray, value_of) -> GroupMedians:
    """`GroupMedians` from the rows per cell: group g's cells are first[g]..first[g + 1] - 1, in
    increasing value; `value_of(cells, groups)` is the value of each group's given cell."""
    size = len(first) - 1
    if not len(cells):
        nothing = np.full(size, np.nan)
        return GroupMedians(nothing, nothing, np.zeros(size), np.zeros(size), np.zeros(size))
    every_group = np.arange(size)
    cumulative = np.cumsum(cells)
    before = np.concatenate(([0], cumulative))  # rows in the cells before each cell
    base = before[first[:-1]]
    counts = before[first[1:]] - base
    has_rows = counts > 0
    # The median's cell: the first whose running total passes (n - 1) // 2 rows into the group.
    at = np.searchsorted(cumulative, base + (counts - 1) // 2, side="right")
    at = np.where(has_rows, at, 0)
    below = np.where(has_rows, before[at] - base, 0)
    at_most = np.where(has_rows, cumulative[at] - base, 0)
    # The last cell with rows before the median's: the first whose running total reaches them.
    previous = np.minimum(np.searchsorted(cumulative, before[at], side="left"), len(cells) - 1)
    median = np.where(has_rows, value_of(at, every_group), np.nan)
    below_cut = np.where(below > 0, value_of(previous, every_group), np.nan)
    return GroupMedians(median, below_cut, counts, at_most, below)
