"""Accuracy against epsilon and the contribution bounds: expected errors and their grid."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from core import mechanisms as mech
from core.config import (
    Aggregation,
    Contribution,
)
from core.kinds import BoundingLoss
from core.noise_plan import MetricPlan, PlanError, ReportPlan, plan_aggregation
from kr_reports.analysis._common import DEFAULT_ROWS_PER_CELL, TruthUnavailable
from kr_reports.analysis.deliveries import Delivery
from kr_reports.analysis.truth import clamped, report_inputs, report_rows, true_values
from stages.catalog import Catalog
from transforms.report_inputs import (
    UNIT,
)


@dataclass(frozen=True)
class ParameterGrid:
    epsilons: tuple[float, ...]
    max_groups: tuple[int, ...]
    max_rows: tuple[int, ...]


def _metric_rho(metric) -> float:
    """A zCDP metric's rho; one given an epsilon takes geometric noise on each of its parts."""
    if metric.rho is not None:
        return metric.rho
    return metric.epsilon**2 / (2 * len(metric.measure.parts))


def metrics_epsilon(spec: Aggregation) -> float:
    """The metrics' total epsilon (zCDP: stated at the spec's delta); partition selection excluded."""
    if spec.accounting == "zcdp":
        return mech.zcdp_epsilon(math.fsum(_metric_rho(m) for m in spec.metrics), spec.delta)
    return math.fsum(m.epsilon for m in spec.metrics)


def default_grid(spec: Aggregation) -> ParameterGrid:
    """Epsilons from an eighth to 8x the spec's, bounds from a quarter to 4x its own."""
    epsilon = metrics_epsilon(spec)
    bounds = spec.contribution

    def around(value: int) -> tuple[int, ...]:
        return tuple(sorted({max(1, round(value * f)) for f in (0.25, 0.5, 1, 2, 4)}))

    return ParameterGrid(
        epsilons=tuple(epsilon * 2.0**p for p in range(-3, 4)),
        max_groups=around(bounds.max_groups_per_subscriber),
        max_rows=around(bounds.max_rows_per_group),
    )


def spec_variant(spec: Aggregation, epsilon: float, max_groups: int, max_rows: int) -> Aggregation:
    """The spec with its metrics' total epsilon set to `epsilon` (each metric keeps its share;
    zCDP: the rho whose conversion is `epsilon`) and other contribution bounds."""
    if spec.accounting == "zcdp":  # rho scales by f: a rho by f, an epsilon by sqrt(f)
        current = math.fsum(_metric_rho(m) for m in spec.metrics)
        factor = brentq(lambda rho: mech.zcdp_epsilon(rho, spec.delta) - epsilon, 1e-12, 1e4) / current
        metrics = tuple(m.model_copy(update={"rho": m.rho * factor} if m.rho is not None
                                     else {"epsilon": m.epsilon * math.sqrt(factor)}) for m in spec.metrics)
    else:
        factor = epsilon / math.fsum(m.epsilon for m in spec.metrics)
        metrics = tuple(m.model_copy(update={"epsilon": m.epsilon * factor}) for m in spec.metrics)
    contribution = Contribution(max_groups_per_subscriber=max_groups, max_rows_per_group=max_rows)
    return spec.model_copy(update={"metrics": metrics, "contribution": contribution})


def cell_error_sd(metric: MetricPlan, rows_per_cell: float) -> tuple[float, str]:
    """Noise sd of one cell's released value and its unit. Means and variances depend on the
    cell's rows: they are given for a cell of `rows_per_cell` rows. A quantile's is the sd of
    its rank in rows: in a cell of n rows the q-quantile may be read as the (q +- sd / n)-one."""
    return metric.measure.cell_error_sd(metric, rows_per_cell)


def _regions_of(plan: ReportPlan) -> tuple[str, ...]:
    named = [k.column for k in plan.aggregation.group_by if k.values == "regions"]
    return tuple(plan.public_keys[named[0]]) if named else ()


def accuracy_grid(plan: ReportPlan, grid: ParameterGrid, rows_per_cell: float) -> pd.DataFrame:
    """The noise sd per cell and metric of the plan's spec re-planned for every (epsilon,
    max groups, max rows). A combination whose discrete Gaussian cannot be sampled has a NaN sd."""
    spec, regions = plan.aggregation, _regions_of(plan)
    rows = []
    for epsilon in grid.epsilons:
        for groups in grid.max_groups:
            for max_rows in grid.max_rows:
                base = {"epsilon": epsilon, "max_groups": groups, "max_rows": max_rows}
                try:
                    variant = plan_aggregation(spec_variant(spec, epsilon, groups, max_rows), regions)
                except PlanError:
                    rows += [{**base, "metric": m.name, "kind": m.kind, "unit": None, "noise_sd": math.nan}
                             for m in spec.metrics]
                    continue
                for metric in variant.metrics:
                    sd, unit = cell_error_sd(metric, rows_per_cell)
                    rows.append({**base, "metric": metric.name, "kind": metric.kind, "unit": unit,
                                 "noise_sd": sd})
    return pd.DataFrame(rows)


def bounding_kept_share(inputs: pd.DataFrame, plan: ReportPlan, max_groups: Sequence[int],
                        max_rows: Sequence[int]) -> pd.DataFrame:
    """Expected share of each count or sum that survives contribution bounding (and clamping).

    A subscriber in c cells keeps each with probability min(1, G / c); a cell's r rows
    keep min(r, R), and their expected sum is the cell's sum times min(1, R / r), as the
    engine keeps uniformly random cells and rows. Means and quantiles are ratios, which
    bounding biases far less, and are left out.
    """
    rows = report_rows(inputs, plan)
    keys = [UNIT, *plan.group_columns]
    summed = [m for m in plan.metric_specs if m.measure.bounding_loss is BoundingLoss.VALUES]
    per_cell = rows.groupby(keys).size().rename("rows").to_frame()
    for m in summed:
        per_cell[m.name] = clamped(rows, m).groupby([rows[k] for k in keys]).sum()
        per_cell[f"{m.name}__raw"] = rows[m.column].astype(float).groupby([rows[k] for k in keys]).sum()
    cells_of_unit = per_cell.groupby(level=UNIT)["rows"].transform("size")
    result = []
    for groups in max_groups:
        cell_kept = np.minimum(1.0, groups / cells_of_unit)
        for limit in max_rows:
            row_kept = np.minimum(1.0, limit / per_cell["rows"])
            shares = _kept_shares(plan, per_cell, cell_kept, row_kept, limit)
            result += [{"max_groups": groups, "max_rows": limit, "metric": name, "kept_share": share}
                       for name, share in shares.items()]
    return pd.DataFrame(result, columns=["max_groups", "max_rows", "metric", "kept_share"])


def _kept_shares(plan: ReportPlan, per_cell: pd.DataFrame, cell_kept, row_kept, limit: int) -> dict:
    total_rows = per_cell["rows"].sum()
    kept_rows = (np.minimum(per_cell["rows"], limit) * cell_kept).sum()
    rows_kept = kept_rows / total_rows if total_rows else math.nan
    shares = {}
    for m in plan.metric_specs:
        loss = m.measure.bounding_loss
        if loss is BoundingLoss.CELLS:
            shares[m.name] = cell_kept.mean()
        elif loss is BoundingLoss.ROWS:
            shares[m.name] = rows_kept
        elif loss is BoundingLoss.VALUES:
            raw = per_cell[f"{m.name}__raw"].sum()
            shares[m.name] = (per_cell[m.name] * row_kept * cell_kept).sum() / raw if raw else math.nan
    return shares


def typical_cell_values(truth: pd.DataFrame, plan: ReportPlan) -> dict[str, float]:
    """Mean true value over cells with data, per count or sum metric (the scale errors are read on)."""
    return {m.name: float(truth[m.name].mean()) for m in plan.metrics
            if m.measure.additive and m.name in truth}


def relative_error(noise: pd.DataFrame, kept: pd.DataFrame, typical: Mapping[str, float]) -> pd.DataFrame:
    """Expected relative error of a typical cell: sqrt(bias^2 + (noise sd / value)^2), where the
    bias is the share bounding drops. The combination with the least error balances the two."""
    merged = noise.merge(kept, on=["max_groups", "max_rows", "metric"], how="inner")
    scale = merged["metric"].map(typical).astype(float)
    merged["bias"] = 1.0 - merged["kept_share"]
    merged["relative_error"] = np.sqrt(merged["bias"] ** 2 + (merged["noise_sd"] / scale) ** 2)
    return merged


def best_bounds(errors: pd.DataFrame, epsilon: float) -> pd.DataFrame:
    """Per metric, the contribution bounds with the least relative error at `epsilon`."""
    at = errors[np.isclose(errors["epsilon"], epsilon)].dropna(subset=["relative_error"])
    best = at.loc[at.groupby("metric", sort=False)["relative_error"].idxmin()]
    return best[["metric", "epsilon", "max_groups", "max_rows", "bias", "noise_sd", "relative_error"]]


@dataclass(frozen=True, eq=False)
class Bounding:
    kept: pd.DataFrame  # max_groups, max_rows, metric, kept_share
    typical: dict[str, float]  # mean true value of a cell with data, per count or sum metric
    rows_per_cell: float  # median input rows of a cell with data
    note: str


def load_bounding(catalog: Catalog, delivery: Delivery, plan: ReportPlan, grid: ParameterGrid) -> Bounding:
    """Bounding figures of the grid's bounds on the run's (synthetic) protected data; without
    those inputs, no figures and a cell of DEFAULT_ROWS_PER_CELL rows."""
    try:
        inputs = report_inputs(catalog, delivery.aggregation, delivery.period)
    except TruthUnavailable as reason:
        empty = pd.DataFrame(columns=["max_groups", "max_rows", "metric", "kept_share"])
        return Bounding(empty, {}, DEFAULT_ROWS_PER_CELL, str(reason))
    truth = true_values(inputs, plan)
    kept = bounding_kept_share(inputs, plan, grid.max_groups, grid.max_rows)
    rows = float(truth["input_rows"].median()) if len(truth) else DEFAULT_ROWS_PER_CELL
    note = f"{len(inputs):,} input rows in {len(truth)} cells with data, median {rows:g} rows per cell"
    return Bounding(kept, typical_cell_values(truth, plan), rows, note)
