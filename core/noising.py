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
allow, quantiles are placed in the consistent noisy tree (core.quantile_tree)
and made monotone. A remainder row adds its cells' noisy parts, so totals over
a parent are the same with or without the roll-up.

A quantiles metric also releases `<metric>_insufficient`: True where the noisy
tree estimates fewer rows than its quantiles need (dp.quantile_min_rows: a
figure of the plan, stated by `explain`). Such a cell publishes no quantile at
all, neither value nor interval. Remainder rows have no tree and are flagged too.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from diffprivlib.utils import check_random_state
from scipy.stats import norm

from core.cells import (
    CELL_COLUMNS,
    CELLS_MERGED,
    MERGED,
    RELEASED,
    REMAINDER,
    STATUS,
    SUPPRESSED,
    WITHHELD,
    ci95_high_column,
    ci95_low_column,
    noise_sd_column,
)
from core.dp import (
    CONFIDENCE,
    TREE_LEAVES,
    MetricPlan,
    ReportPlan,
    fixed_point_bounds,
    insufficient_column,
    quantile_min_rows,
    release_columns,
)
from core.mechanisms import IntegerNoise
from core.quantile_tree import NoisyTree

Z = float(norm.ppf(0.5 + CONFIDENCE / 2))
UNITS = "distinct_units"
ROWS = "rows"
BUCKET = "bucket"


def select_partitions(counts: pd.DataFrame, plan: ReportPlan, random_state=None) -> pd.DataFrame:
    """Private key values kept, each with the probability its (bounded) distinct-subscriber count gives.

    One uniform draw per partition from the secure source (a seed only in tests).
    """
    rng = check_random_state(random_state, secure=True)
    draws = np.array([rng.random() for _ in range(len(counts))])
    kept = counts.loc[draws < plan.selection.keep_probability(counts[UNITS]), list(plan.private_keys)]
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


@dataclass
class QuantileOutputs:
    """A quantiles metric's outputs, and which cells had too few rows to place them."""

    outputs: dict[str, Output]
    insufficient: np.ndarray  # bool per cell


def is_insufficient(tree: NoisyTree, metric: MetricPlan) -> bool:
    """Too few rows to place the quantiles: the tree's noisy total is under
    dp.quantile_min_rows (or not positive). A function of noisy counts only."""
    total = tree.total()
    return total <= 0 or total < quantile_min_rows(metric)


def _quantile_outputs(metric: MetricPlan, cells, buckets, plan, rng) -> QuantileOutputs:
    """Per quantile: value and 95% interval (core.quantile_tree); NaN where insufficient."""
    m, noise = metric.metric, metric.part("tree")
    leaves = _bucket_matrix(cells, buckets[m.name], list(plan.group_columns), TREE_LEAVES)
    n, k = len(cells), len(m.quantiles)
    values, lows, highs = (np.full((n, k), np.nan) for _ in range(3))
    flags = np.zeros(n, dtype=bool)
    for row in range(n):
        tree = NoisyTree(leaves[row], noise.sampler(rng), noise.sd)
        flags[row] = is_insufficient(tree, metric)
        if not flags[row]:
            placed = [tree.place(q).values(m.lower, m.upper, m.quantile_scale) for q in m.quantiles]
            ends = np.array(placed)
            values[row] = np.maximum.accumulate(ends[:, 0])  # quantiles never decrease in q
            lows[row], highs[row] = np.minimum(ends[:, 1], values[row]), np.maximum(ends[:, 2], values[row])
    outputs = {
        name: Output(values[:, j], (highs[:, j] - lows[:, j]) / (2 * Z), lows[:, j], highs[:, j])
        for j, name in enumerate(metric.outputs)
    }
    return QuantileOutputs(outputs, flags)


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
    return quantiles[name].outputs


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


def _frame(keys: pd.DataFrame, plan: ReportPlan, outputs: dict[str, Output], status, merged,
           quantiles: dict[str, QuantileOutputs]) -> pd.DataFrame:
    frame = keys.reset_index(drop=True).copy()
    frame[STATUS] = status
    frame[CELLS_MERGED] = merged
    for name, out in outputs.items():
        frame[name], frame[noise_sd_column(name)] = out.value, out.sd
        frame[ci95_low_column(name)], frame[ci95_high_column(name)] = out.low, out.high
    for name, placed in quantiles.items():
        frame[insufficient_column(name)] = pd.array(placed.insufficient, dtype="boolean")
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
    frame = _frame(keys, plan, _all_outputs(plan, parts, ones, quantiles), RELEASED, ones, quantiles)
    k = plan.aggregation.min_subscribers
    if k is None:
        return _typed(frame, plan, cells)
    sparse = parts[_k_metric(plan).name, "value"] < k
    frame.loc[sparse, STATUS] = MERGED if plan.aggregation.sparse_cells == "roll_up" else SUPPRESSED
    if plan.aggregation.sparse_cells == "roll_up" and sparse.any():
        frame = pd.concat([frame, _remainder_frame(cells, parts, sparse, plan, k)], ignore_index=True)
    withheld = frame[STATUS].isin(WITHHELD)
    frame.loc[withheld, _value_columns(plan)] = np.nan
    frame = frame.sort_values(list(plan.group_columns), na_position="last", kind="stable")
    return _typed(frame.reset_index(drop=True), plan, cells)


def _no_quantiles(plan: ReportPlan, rows: int) -> dict[str, QuantileOutputs]:
    """Remainder rows have no quantiles, and are flagged so: noisy trees are not added up, so a
    remainder has no tree of its own to place them in."""
    nan = lambda: np.full(rows, np.nan)  # noqa: E731
    return {m.name: QuantileOutputs({out: Output(nan(), nan(), nan(), nan()) for out in m.outputs},
                                    np.ones(rows, dtype=bool))
            for m in plan.metrics if m.kind == "quantiles"}


def _remainder_frame(cells, parts, sparse, plan, k) -> pd.DataFrame:
    keys, summed, merged = _remainders(cells, parts, sparse, plan)
    quantiles = _no_quantiles(plan, len(keys))
    outputs = _all_outputs(plan, summed, merged, quantiles)
    frame = _frame(keys, plan, outputs, REMAINDER, merged, quantiles)
    frame.loc[summed[_k_metric(plan).name, "value"] < k, STATUS] = SUPPRESSED
    return frame


def _value_columns(plan: ReportPlan) -> list[str]:
    """Every column a withheld cell leaves empty: values, accuracies and insufficiency flags."""
    return [c for c in release_columns(plan) if c not in (*plan.group_columns, *CELL_COLUMNS)]


def _typed(frame: pd.DataFrame, plan: ReportPlan, cells: pd.DataFrame) -> pd.DataFrame:
    """Integer keys and counts as nullable integers, flags as nullable booleans (empty where a cell
    is withheld); every column in the declared order."""
    for key in plan.group_columns:
        if pd.api.types.is_integer_dtype(cells[key]):
            frame[key] = frame[key].astype("Int64")
    counted = {"count", "count_distinct_subscribers", "histogram"}
    for metric in plan.metrics:
        if metric.kind in counted or (metric.kind == "sum" and metric.metric.precision <= 0):
            for out in metric.outputs:
                for col in (out, ci95_low_column(out), ci95_high_column(out)):
                    frame[col] = frame[col].round().astype("Int64")
        if metric.kind == "quantiles":
            flag = insufficient_column(metric.name)
            frame[flag] = frame[flag].astype("boolean")
    return frame[release_columns(plan)]
