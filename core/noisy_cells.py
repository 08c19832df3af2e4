"""Noise on the small aggregated frame, then post-processing that costs no budget.

Input: one row per cell (true bounded aggregates), bucket counts for quantile
trees and histograms, and the plan. Output: the release, one row per cell
with every metric's value, noise sd and 95% interval, and a status:

- released:   published as noised;
- suppressed: its noisy distinct-subscriber count is under the spec's k; values withheld;
- merged:     under k, and rolled up into its parent's remainder row;
- remainder:  the sum of a parent's merged cells (the rolled-up key is empty).

Each metric's kind (core.kinds) says which cell columns its parts noise and
turns the noisy parts into values. Post-processing only ever reads noisy
values, so it is free: counts are integers clamped at 0, means and variances
are clamped to what their bounds allow, quantiles are placed in the
consistent noisy tree (core.quantile_tree) and made monotone. A remainder row
adds its cells' noisy parts, so totals over a parent are the same with or
without the roll-up.

A quantiles metric also releases `<metric>_insufficient`: True where the noisy
tree estimates fewer rows than its quantiles need (kinds.quantile_min_rows: a
figure of the plan, stated by `explain`). Such a cell publishes no quantile at
all, neither value nor interval. Remainder rows have no tree and are flagged too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pandas as pd
from diffprivlib.utils import check_random_state

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
from core.kinds import BUCKET, ROWS, UNITS, CellOutputs, Output, is_insufficient  # noqa: F401
from core.mechanisms import IntegerNoise
from core.noise_plan import MetricPlan, ReportPlan, release_columns
from core.quantile_tree import NoisyTree


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


def noisy_parts(cells: pd.DataFrame, buckets: dict[str, pd.DataFrame], plan: ReportPlan, rng) -> dict:
    """Draw the noise, once: (metric, part) -> noisy integers (bins: one column per bin)."""
    parts = {}
    for metric in plan.metrics:
        for name, noise in metric.parts:
            if name in metric.measure.lazy_parts:
                continue  # drawn while post-processing reads each cell's tree (_noisy_trees)
            true = metric.measure.true_part(name, cells, buckets, list(plan.group_columns))
            if true.ndim == 2:  # one column per bucket
                parts[metric.name, name] = noise.add_to(true.ravel(), rng).reshape(true.shape)
            else:
                parts[metric.name, name] = noise.add_to(true, rng)
    return parts


def _noisy_trees(metric: MetricPlan, cells: pd.DataFrame, buckets: dict[str, pd.DataFrame],
                 keys: list[str], rng) -> dict[str, Iterator[NoisyTree]]:
    """Each lazy part's noisy trees, one per cell in order, made as they are walked: a node's
    noise is drawn once, when it is first read (core.quantile_tree)."""
    return {name: _trees(metric.measure.true_part(name, cells, buckets, keys), noise, rng)
            for name, noise in metric.parts if name in metric.measure.lazy_parts}


def _trees(leaves: np.ndarray, noise: IntegerNoise, rng) -> Iterator[NoisyTree]:
    for cell_leaves in leaves:
        yield NoisyTree(cell_leaves, noise.sampler(rng), noise.sd)


def metric_outputs(metric: MetricPlan, parts: dict, merged: np.ndarray,
                   placed: dict[str, CellOutputs]) -> dict[str, Output]:
    return metric.measure.release(metric, parts, merged, placed.get(metric.name))


def _k_metric(plan: ReportPlan) -> MetricPlan:
    return next(m for m in plan.metrics if m.measure.counts_subscribers)


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
           placed: dict[str, CellOutputs]) -> pd.DataFrame:
    frame = keys.reset_index(drop=True).copy()
    frame[STATUS] = status
    frame[CELLS_MERGED] = merged
    for name, out in outputs.items():
        frame[name], frame[noise_sd_column(name)] = out.value, out.sd
        frame[ci95_low_column(name)], frame[ci95_high_column(name)] = out.low, out.high
    for cell_outputs in placed.values():
        for flag, values in cell_outputs.flags.items():
            frame[flag] = pd.array(values, dtype="boolean")
    return frame


def _all_outputs(plan, parts, merged, placed) -> dict[str, Output]:
    outputs = {}
    for metric in plan.metrics:
        outputs.update(metric_outputs(metric, parts, merged, placed))
    return outputs


def noisy_release(
    cells: pd.DataFrame, buckets: dict[str, pd.DataFrame], plan: ReportPlan, random_state=None
) -> pd.DataFrame:
    """The release: noise drawn once per cell and part, then free post-processing."""
    cells = cells.reset_index(drop=True)
    ones = np.ones(len(cells), dtype="int64")
    parts = noisy_parts(cells, buckets, plan, random_state)
    keys = list(plan.group_columns)
    placed = {m.name: m.measure.place(m, _noisy_trees(m, cells, buckets, keys, random_state), len(cells))
              for m in plan.metrics}
    placed = {name: outputs for name, outputs in placed.items() if outputs is not None}
    frame = _frame(cells[keys], plan, _all_outputs(plan, parts, ones, placed), RELEASED, ones, placed)
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


def _unplaced(plan: ReportPlan, rows: int) -> dict[str, CellOutputs]:
    """What remainder rows get from kinds placed cell by cell (quantiles: none, flagged so)."""
    unplaced = {m.name: m.measure.unplaced(m, rows) for m in plan.metrics}
    return {name: outputs for name, outputs in unplaced.items() if outputs is not None}


def _remainder_frame(cells, parts, sparse, plan, k) -> pd.DataFrame:
    keys, summed, merged = _remainders(cells, parts, sparse, plan)
    placed = _unplaced(plan, len(keys))
    outputs = _all_outputs(plan, summed, merged, placed)
    frame = _frame(keys, plan, outputs, REMAINDER, merged, placed)
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
    for metric in plan.metrics:
        if metric.measure.integer_outputs():
            for out in metric.outputs:
                for col in (out, ci95_low_column(out), ci95_high_column(out)):
                    frame[col] = frame[col].round().astype("Int64")
        for flag in metric.measure.flag_columns():
            frame[flag] = frame[flag].astype("boolean")
    return frame[release_columns(plan)]
