"""Noise on the small aggregated frame, then post-processing that costs no budget.

Input: one row per cell (true bounded aggregates), bucket counts for quantile
trees and histograms, and the plan. Output: the release, one row per cell
with every metric's value, noise sd and 95% interval, and a status:

- released:   published as noised;
- suppressed: its noisy distinct-subscriber count is under the spec's k; values withheld;
- merged:     under k, and rolled up into its parent's remainder row;
- remainder:  the sum of a parent's merged cells (the rolled-up key is empty).

Post-processing only ever reads noisy values, so it is free: counts are
integers clamped at 0, means and variances are clamped to what their bounds
allow, quantiles are made monotone. A remainder row adds its cells' noisy
parts, so totals over a parent are the same with or without the roll-up.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from kr_reports.dp import (
    CONFIDENCE,
    TREE_BRANCHINGS,
    TREE_LEAVES,
    MetricPlan,
    ReportPlan,
    fixed_point_bounds,
    quantile_rank_sd,
    release_columns,
    tree_value,
)
from kr_reports.mechanisms import IntegerNoise

Z = float(norm.ppf(0.5 + CONFIDENCE / 2))
UNITS = "distinct_units"
ROWS = "rows"
BUCKET = "bucket"


def select_partitions(counts: pd.DataFrame, plan: ReportPlan, random_state=None) -> pd.DataFrame:
    """Private key values whose noisy distinct-subscriber count reaches the threshold."""
    selection = plan.selection
    noisy = selection.noise.add_to(counts[UNITS], random_state)
    kept = counts.loc[noisy >= selection.threshold, list(plan.private_keys)]
    return kept.sort_values(list(plan.private_keys)).reset_index(drop=True)


def complete_cells(found: pd.DataFrame, plan: ReportPlan, selected: pd.DataFrame | None) -> pd.DataFrame:
    """Every public cell (for every selected private partition), empty ones as zeros, sorted."""
    keys = list(plan.group_columns)
    grid = pd.DataFrame(list(itertools.product(*plan.public_keys.values())), columns=list(plan.public_keys))
    if selected is not None:
        grid = selected if grid.columns.empty else grid.merge(selected, how="cross")
    grid = grid[keys]
    found = found.astype({k: grid[k].dtype for k in keys if len(grid)})
    cells = grid.merge(found, on=keys, how="left")
    measures = [c for c in found.columns if c not in keys]
    cells[measures] = cells[measures].fillna(0).astype("int64")
    return cells.sort_values(keys, kind="stable").reset_index(drop=True)


@dataclass
class Output:
    """One released value column: value, noise sd and interval ends (arrays over rows)."""

    value: np.ndarray
    sd: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _input_column(metric: MetricPlan, part: str) -> str:
    if metric.kind == "count_distinct_subscribers":
        return UNITS
    if metric.kind == "count" or part == "count":
        return ROWS
    return f"{metric.name}__sq" if part == "sum_sq" else metric.name


def noisy_parts(cells: pd.DataFrame, buckets: dict[str, pd.DataFrame], plan: ReportPlan, rng) -> dict:
    """Draw the noise, once: (metric, part) -> noisy integers (bins: one column per bin)."""
    parts = {}
    for metric in plan.metrics:
        for name, noise in metric.parts:
            if name == "tree":
                continue  # drawn lazily while walking each cell's tree
            if name == "bins":
                bins = len(metric.metric.bins) - 1
                true = _bucket_matrix(cells, buckets[metric.name], list(plan.group_columns), bins)
                parts[metric.name, name] = noise.add_to(true.ravel(), rng).reshape(true.shape)
            else:
                parts[metric.name, name] = noise.add_to(cells[_input_column(metric, name)], rng)
    return parts


def _bucket_matrix(cells: pd.DataFrame, counts: pd.DataFrame, keys: list[str], width: int) -> np.ndarray:
    """Rows per (cell, bucket) as a dense matrix aligned with `cells`."""
    matrix = np.zeros((len(cells), width), dtype="int64")
    if counts.empty:
        return matrix
    position = cells[keys].reset_index(drop=True).reset_index().rename(columns={"index": "_row"})
    located = counts.merge(position, on=keys, how="inner")
    np.add.at(matrix, (located["_row"].to_numpy(), located[BUCKET].to_numpy()), located[ROWS].to_numpy())
    return matrix


def _count_output(noisy: np.ndarray, noise: IntegerNoise, merged: np.ndarray, divisor: float = 1.0,
                  floor: float | None = 0.0) -> Output:
    sd = noise.sd * np.sqrt(merged)
    exact = np.full(len(noisy), noise.ci_half_width(CONFIDENCE), dtype="float64")
    half = np.where(merged == 1, exact, np.ceil(Z * sd))
    low, high = (noisy - half) / divisor, (noisy + half) / divisor
    value = noisy / divisor
    if floor is not None:
        value, low, high = (np.maximum(a, floor) for a in (value, low, high))
    return Output(value, sd / divisor, low, high)


def _sum_floor(metric: MetricPlan) -> float | None:
    """Sums of non-negative (non-positive) values are clamped at 0 from below (above)."""
    return 0.0 if metric.metric.lower >= 0 else None


def _mean_output(metric: MetricPlan, parts: dict, merged: np.ndarray) -> Output:
    m = metric.metric
    count_noise, sum_noise = metric.part("count"), metric.part("sum")
    count = np.maximum(parts[m.name, "count"].astype("float64"), 1.0)
    total = parts[m.name, "sum"].astype("float64")
    low_fp, high_fp = fixed_point_bounds(m)
    half_range = 2 * m.scale
    value = (low_fp + high_fp) / half_range + total / (half_range * count)
    # Delta method on mean = mid + S / (2 scale C), noise only.
    sd = np.sqrt(
        (sum_noise.sd * np.sqrt(merged) / (half_range * count)) ** 2
        + (total / (half_range * count**2) * count_noise.sd * np.sqrt(merged)) ** 2
    )
    return _clamped_output(value, sd, m.lower, m.upper)


def _variance_output(metric: MetricPlan, parts: dict, merged: np.ndarray) -> Output:
    m = metric.metric
    c = np.maximum(parts[m.name, "count"].astype("float64"), 1.0)
    s = parts[m.name, "sum"].astype("float64")
    q = parts[m.name, "sum_sq"].astype("float64")
    four_scale_sq = 4 * m.scale**2
    value = (q / c - (s / c) ** 2) / four_scale_sq
    root = np.sqrt(merged)
    sd = np.sqrt(
        (metric.part("sum_sq").sd * root / c) ** 2
        + (2 * s / c**2 * metric.part("sum").sd * root) ** 2
        + ((-q / c**2 + 2 * s**2 / c**3) * metric.part("count").sd * root) ** 2
    ) / four_scale_sq
    return _clamped_output(value, sd, 0.0, ((m.upper - m.lower) / 2) ** 2)


def _clamped_output(value, sd, lower, upper) -> Output:
    clip = lambda a: np.clip(a, lower, upper)  # noqa: E731
    return Output(clip(value), sd, clip(value - Z * sd), clip(value + Z * sd))


class NoisyTree:
    """A cell's quantile tree (see kr_reports.dp) whose counts are noised the first time they
    are read, and the walk that locates a quantile in it.

    Nodes never read are never noised and never influence the output; a node read twice
    (by several quantiles) returns the same noisy count. Everything below is post-processing
    of noisy counts, so it costs no budget:

    - a count is read as max(noisy, 0);
    - the rank of quantile q is q times the root's noisy count: an unbiased total, where the
      sum of the root's children would add every empty child's clipped noise;
    - the rank is counted from the parent's nearer end (from below for q <= 1/2, from above
      otherwise), so it sums the noise of the few nodes between that end and the quantile,
      not of all the others, and their phantom rows pull it slightly towards that end
      rather than towards the middle;
    - within the node reached the value is interpolated linearly. A node's children are
      read only when it holds at least as many rows as its children's number times the
      noise sd: their clipped noise (under sd / 2 each on average) is then a minor part of
      its rows; otherwise they would place the rank at random within it.

    A root read as 0 carries nothing: the value is then interpolated over the bounds.
    """

    def __init__(self, leaf_counts: np.ndarray, sampler, noise_sd: float):
        nodes_per_level = [math.prod(TREE_BRANCHINGS[:level]) for level in range(len(TREE_BRANCHINGS) + 1)]
        self.levels = [leaf_counts.reshape(nodes, -1).sum(axis=1) for nodes in nodes_per_level]
        self.sampler = sampler
        self.noise_sd = noise_sd
        self.noisy: dict[tuple[int, int], int] = {}

    def count(self, level: int, index: int) -> int:
        key = (level, index)
        if key not in self.noisy:
            self.noisy[key] = max(0, self.sampler.randomise(int(self.levels[level][index])))
        return self.noisy[key]

    def total(self) -> int:
        return self.count(0, 0)

    def quantile(self, q: float, lower: float, upper: float, scale: str = "linear") -> float:
        """The value below which fraction q of the cell's rows lie."""
        return tree_value(self._leaf_position(q) / TREE_LEAVES, lower, upper, scale)

    def _leaf_position(self, q: float) -> float:
        """Where fraction q of the rows lies, in leaves from the lower bound."""
        level, node, fraction, rows = 0, 0, q, self.total()
        for branching in TREE_BRANCHINGS:
            if not self._children_worth_reading(level, rows, branching):
                break
            children = [self.count(level + 1, node * branching + i) for i in range(branching)]
            located = _locate(fraction, rows, children)
            if located is None:
                break
            child, fraction = located
            level, node, rows = level + 1, node * branching + child, children[child]
        return (node + fraction) * TREE_LEAVES / math.prod(TREE_BRANCHINGS[:level])

    def _children_worth_reading(self, level: int, rows: int, branching: int) -> bool:
        if rows <= 0:
            return False
        return level == 0 or rows >= branching * self.noise_sd


def _locate(fraction: float, rows: int, children: list[int]) -> tuple[int, float] | None:
    """The child holding rank `fraction * rows` of its parent, counted from the parent's
    nearer end, and the rank's fraction within that child; None when no child has rows."""
    from_above = fraction > 0.5
    ordered = children[::-1] if from_above else children
    # Ranks are whole rows without noise: rounding drops float error that would move a
    # rank sitting exactly between two rows to the other side of the gap.
    rank = round((1 - fraction if from_above else fraction) * rows, 9)
    held = _holding(rank, ordered, from_above)
    if held is None or not from_above:
        return held
    index, inside = held
    return len(children) - 1 - index, 1.0 - inside


def _holding(rank: float, counts: list[int], from_above: bool) -> tuple[int, float] | None:
    """The first count whose cumulated rows reach `rank`, and the rank's fraction within it.

    A rank between two rows resolves to the upper edge of the lower row's node from either
    end, so both ends agree without noise. A rank past every row (the noisy parent exceeds
    its children) goes to the far edge of the last count with rows; None when none has rows.
    """
    last = None
    for index, count in enumerate(counts):
        if count <= 0:
            continue
        if rank < count or (rank == count and not from_above):
            return index, rank / count
        rank -= count
        last = index
    return None if last is None else (last, 1.0)


def _quantile_outputs(metric: MetricPlan, cells, buckets, plan, rng) -> dict[str, Output]:
    """Per quantile: value, and an interval from the noise on the ranks (noise only)."""
    m, noise = metric.metric, metric.part("tree")
    leaves = _bucket_matrix(cells, buckets[m.name], list(plan.group_columns), TREE_LEAVES)
    rank_sd = quantile_rank_sd(noise.sd)
    n, k = len(cells), len(m.quantiles)
    values, lows, highs = (np.full((n, k), np.nan) for _ in range(3))
    for row in range(n):
        tree = NoisyTree(leaves[row], noise.sampler(rng), noise.sd)
        rows = tree.total()
        spread = Z * rank_sd / rows if rows > 0 else 1.0  # no rows measured: the whole bounds
        for j, q in enumerate(m.quantiles):
            values[row, j] = tree.quantile(q, m.lower, m.upper, m.quantile_scale)
            lows[row, j] = tree.quantile(max(q - spread, 0.0), m.lower, m.upper, m.quantile_scale)
            highs[row, j] = tree.quantile(min(q + spread, 1.0), m.lower, m.upper, m.quantile_scale)
        values[row] = np.maximum.accumulate(values[row])  # quantiles never decrease in q
    # Below and above 1/2 ranks are counted from opposite ends, so q + spread may land
    # under q's value: an interval always holds its value.
    lows, highs = np.minimum(lows, values), np.maximum(highs, values)
    return {
        name: Output(values[:, j], (highs[:, j] - lows[:, j]) / (2 * Z), lows[:, j], highs[:, j])
        for j, name in enumerate(metric.outputs)
    }


def metric_outputs(metric: MetricPlan, parts: dict, merged: np.ndarray, quantiles=None) -> dict[str, Output]:
    kind, name = metric.kind, metric.name
    if kind in ("count", "count_distinct_subscribers"):
        return {name: _count_output(parts[name, "value"], metric.part("value"), merged)}
    if kind == "sum":
        return {name: _count_output(parts[name, "value"], metric.part("value"), merged,
                                    divisor=metric.metric.scale, floor=_sum_floor(metric))}
    if kind == "mean":
        return {name: _mean_output(metric, parts, merged)}
    if kind == "variance":
        return {name: _variance_output(metric, parts, merged)}
    if kind == "histogram":
        bins = parts[name, "bins"]
        return {out: _count_output(bins[:, i], metric.part("bins"), merged)
                for i, out in enumerate(metric.outputs)}
    return quantiles[name]


def _k_metric(plan: ReportPlan) -> MetricPlan:
    return next(m for m in plan.metrics if m.kind == "count_distinct_subscribers")


def _remainders(cells: pd.DataFrame, parts: dict, sparse: np.ndarray, plan: ReportPlan):
    """Per parent with sparse cells: one row whose parts are the sum of its sparse cells' parts."""
    parent = [c for c in plan.group_columns if c != plan.aggregation.roll_up]
    groups = cells.loc[sparse, parent].reset_index().groupby(parent, sort=True, dropna=False)["index"]
    members = [np.asarray(index) for _, index in groups]
    keys = pd.DataFrame([cells.loc[m[0], parent].to_dict() for m in members], columns=parent)
    keys[plan.aggregation.roll_up] = None
    summed = {key: np.stack([values[m].sum(axis=0) for m in members]) if len(members) else values[:0]
              for key, values in parts.items()}
    return keys[list(plan.group_columns)], summed, np.array([len(m) for m in members], dtype="int64")


def _frame(keys: pd.DataFrame, plan: ReportPlan, outputs: dict[str, Output], status, merged) -> pd.DataFrame:
    frame = keys.reset_index(drop=True).copy()
    frame["status"] = status
    frame["cells_merged"] = merged
    for name, out in outputs.items():
        frame[name], frame[f"{name}_noise_sd"] = out.value, out.sd
        frame[f"{name}_ci95_low"], frame[f"{name}_ci95_high"] = out.low, out.high
    return frame


def _all_outputs(plan, parts, merged, quantiles) -> dict[str, Output]:
    outputs = {}
    for metric in plan.metrics:
        outputs.update(metric_outputs(metric, parts, merged, quantiles))
    return outputs


def noisy_release(
    cells: pd.DataFrame, buckets: dict[str, pd.DataFrame], plan: ReportPlan, random_state=None
) -> pd.DataFrame:
    """The release: noise drawn once per cell and part, then free post-processing."""
    cells = cells.reset_index(drop=True)
    ones = np.ones(len(cells), dtype="int64")
    parts = noisy_parts(cells, buckets, plan, random_state)
    quantiles = {
        m.name: _quantile_outputs(m, cells, buckets, plan, random_state)
        for m in plan.metrics if m.kind == "quantiles"
    }
    keys = cells[list(plan.group_columns)]
    frame = _frame(keys, plan, _all_outputs(plan, parts, ones, quantiles), "released", ones)
    k = plan.aggregation.min_subscribers
    if k is None:
        return _typed(frame, plan, cells)
    sparse = parts[_k_metric(plan).name, "value"] < k
    frame.loc[sparse, "status"] = "merged" if plan.aggregation.sparse_cells == "roll_up" else "suppressed"
    if plan.aggregation.sparse_cells == "roll_up" and sparse.any():
        frame = pd.concat([frame, _remainder_frame(cells, parts, sparse, plan, k)], ignore_index=True)
    withheld = frame["status"].isin(["suppressed", "merged"])
    frame.loc[withheld, _value_columns(plan)] = np.nan
    frame = frame.sort_values(list(plan.group_columns), na_position="last", kind="stable")
    return _typed(frame.reset_index(drop=True), plan, cells)


def _nan_quantiles(plan: ReportPlan, rows: int) -> dict[str, dict[str, Output]]:
    """Remainder rows have no quantiles: noisy trees are not added up."""
    nan = lambda: np.full(rows, np.nan)  # noqa: E731
    return {m.name: {out: Output(nan(), nan(), nan(), nan()) for out in m.outputs}
            for m in plan.metrics if m.kind == "quantiles"}


def _remainder_frame(cells, parts, sparse, plan, k) -> pd.DataFrame:
    keys, summed, merged = _remainders(cells, parts, sparse, plan)
    outputs = _all_outputs(plan, summed, merged, _nan_quantiles(plan, len(keys)))
    frame = _frame(keys, plan, outputs, "remainder", merged)
    frame.loc[summed[_k_metric(plan).name, "value"] < k, "status"] = "suppressed"
    return frame


def _value_columns(plan: ReportPlan) -> list[str]:
    return [c for c in release_columns(plan) if c not in (*plan.group_columns, "status", "cells_merged")]


def _typed(frame: pd.DataFrame, plan: ReportPlan, cells: pd.DataFrame) -> pd.DataFrame:
    """Integer keys and counts as nullable integers; every column in the declared order."""
    for key in plan.group_columns:
        if pd.api.types.is_integer_dtype(cells[key]):
            frame[key] = frame[key].astype("Int64")
    counted = {"count", "count_distinct_subscribers", "histogram"}
    for metric in plan.metrics:
        if metric.kind in counted or (metric.kind == "sum" and metric.metric.precision <= 0):
            for out in metric.outputs:
                for col in (out, f"{out}_ci95_low", f"{out}_ci95_high"):
                    frame[col] = frame[col].round().astype("Int64")
    return frame[release_columns(plan)]
