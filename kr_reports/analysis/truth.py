"""True per-cell values, from the protected zone (synthetic data only), to measure error against."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import pyarrow.dataset as ds

from core.cells import RELEASED, STATUS
from core.config import (
    Aggregation,
    Metric,
)
from core.kinds import metric_kind
from core.location import url_of
from core.noise_plan import MetricPlan, ReportPlan
from core.policy import derived_origin
from core.report_columns import (
    ADDON_PREFIX,
    ADDONS,
    CATEGORY,
    CELL_AREA,
    CELL_AREA_LENGTH,
    CELL_ID,
    DOMAIN,
    DOMAIN_CATEGORIES,
    EVENT_HOUR,
    HOUR,
    PROFILE_ATTRIBUTES,
)
from core.schemas import SOURCES
from kr_reports.analysis._common import TruthUnavailable
from kr_reports.analysis.deliveries import Delivery, released_values
from stages.catalog import Catalog
from stages.reference import parse_domain_categories, shipped_reference
from transforms.generalize import UNCATEGORIZED
from transforms.report_inputs import UNIT, references_read, sources_read


def _read_protected(catalog: Catalog, source: str, period: dt.date, wanted: set[str]) -> pd.DataFrame:
    path = catalog.protected(SOURCES[source], period)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no protected data; run the daily flow for {period} first")
    present = ds.dataset(url_of(path), format="parquet").schema.names
    return pd.read_parquet(url_of(path), columns=[c for c in present if c in wanted])


def _has_addon(addons: pd.Series, name: str) -> pd.Series:
    """1 when the ';'-joined list holds `name` exactly, else 0 (as `report_inputs.has_addon`)."""
    listed = (";" + addons.fillna("") + ";").str.contains(f";{name};", regex=False)
    return listed.astype("int64")


def _domain_category(domains: pd.Series, categories: pd.DataFrame) -> pd.Series:
    """A protected domain's category. The protected zone holds registered domains, so the host
    lookup and the registered-domain lookup of `with_domain_category` are the same lookup."""
    table = categories.groupby("domain")["category"].min()
    return domains.str.strip().str.lower().map(table).fillna(UNCATEGORIZED)


def _with_derived(df: pd.DataFrame, column: str, frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """pandas twin of `transforms.report_inputs._with_derived`; `df` unchanged when not derivable."""
    if column == CATEGORY and DOMAIN in df and DOMAIN_CATEGORIES in frames:
        return df.assign(**{CATEGORY: _domain_category(df[DOMAIN], frames[DOMAIN_CATEGORIES])})
    if column == CELL_AREA and CELL_ID in df:
        return df.assign(**{CELL_AREA: df[CELL_ID].str[:CELL_AREA_LENGTH]})
    if column.startswith(ADDON_PREFIX) and ADDONS in df:
        return df.assign(**{column: _has_addon(df[ADDONS], column.removeprefix(ADDON_PREFIX))})
    return df


def with_report_keys(source: str, frames: Mapping[str, pd.DataFrame],
                     columns: Sequence[str] = ()) -> pd.DataFrame:
    """pandas twin of `transforms.report_inputs.report_input`: profile attributes, `hour` and
    the derived `columns` asked for."""
    df = frames[source]
    if source != "subscribers":
        profile = frames["subscribers"]
        attributes = [c for c in PROFILE_ATTRIBUTES if c in profile.columns and c not in df.columns]
        df = df.merge(profile[[UNIT, *attributes]], on=UNIT, how="left")
    if source in EVENT_HOUR:
        df = df.assign(**{HOUR: pd.to_datetime(df[EVENT_HOUR[source]]).dt.hour})
    for column in dict.fromkeys(columns):
        if column not in df.columns:
            df = _with_derived(df, column, frames)
    return df


def _columns_used(spec: Aggregation) -> list[str]:
    return list(dict.fromkeys([UNIT, *spec.group_columns, *(m.column for m in spec.metrics if m.column)]))


def report_inputs(catalog: Catalog, spec: Aggregation, period: dt.date) -> pd.DataFrame:
    """The report's input rows from the protected zone, as the release read them (unbounded)."""
    used = _columns_used(spec)
    origins = {origin for column in used for origin in derived_origin(column) or ()}
    wanted = {*used, *origins, *EVENT_HOUR.values(), *PROFILE_ATTRIBUTES}
    frames = {name: _read_protected(catalog, name, period, wanted) for name in sources_read(spec.source)}
    if DOMAIN_CATEGORIES in references_read(used):
        frames[DOMAIN_CATEGORIES] = parse_domain_categories(
            shipped_reference("domain_categories.csv").read_bytes())
    inputs = with_report_keys(spec.source, frames, used)
    missing = [c for c in used if c not in inputs.columns]
    if missing:
        raise TruthUnavailable(
            f"report '{spec.name}' reads {', '.join(missing)}, which the protected zone of "
            f"{period} neither holds nor derives"
        )
    return inputs


def report_rows(inputs: pd.DataFrame, plan: ReportPlan) -> pd.DataFrame:
    """Rows the release may use: public keys inside their domains, no empty key or value."""
    used = [UNIT, *plan.private_keys, *(m.column for m in plan.metric_specs if m.column)]
    keep = inputs[list(dict.fromkeys(used))].notna().all(axis=1)
    for column, domain in plan.public_keys.items():
        keep &= inputs[column].isin(domain)
    return inputs[keep]


def clamped(rows: pd.DataFrame, metric: Metric) -> pd.Series:
    return rows[metric.column].astype(float).clip(metric.lower, metric.upper)


def _metric_truth(rows: pd.DataFrame, keys: list[str], metric: MetricPlan) -> pd.DataFrame:
    """One metric's true values per cell, without bounding or noise (values clamped)."""
    return metric.measure.exact(rows, keys, UNIT, metric)


def true_values(inputs: pd.DataFrame, plan: ReportPlan) -> pd.DataFrame:
    """Per cell with data: every released output's true value, and the cell's rows."""
    rows = report_rows(inputs, plan)
    keys = list(plan.group_columns)
    parts = [_metric_truth(rows, keys, metric) for metric in plan.metrics]
    sizes = rows.groupby(keys).size().rename("input_rows")
    return pd.concat([*parts, sizes], axis=1).reset_index()


@dataclass(frozen=True, eq=False)
class Truth:
    values: pd.DataFrame | None = field(repr=False)  # per cell; None when unavailable
    note: str


def load_truth(catalog: Catalog, delivery: Delivery, plan: ReportPlan) -> Truth:
    """True per-cell values from the run's protected zone, or the reason there are none."""
    try:
        inputs = report_inputs(catalog, delivery.aggregation, delivery.period)
    except TruthUnavailable as reason:
        return Truth(None, str(reason))
    values = true_values(inputs, plan)
    return Truth(values, f"true values of {len(values)} cells with data, from {len(inputs):,} input rows")


def true_vs_released(released: pd.DataFrame, truth: pd.DataFrame, output: str,
                     empty_value: float) -> pd.DataFrame:
    """Released cells beside their true value: error and whether the 95% interval covers it.

    A released cell absent from `truth` had no rows: its true value is `empty_value`
    (0 for counts and sums, NaN for means and quantiles, which are then left out).
    Remainder rows are left out: their true value is no single cell's.
    """
    cells = released[released[STATUS] == RELEASED]
    keys = list(cells.columns[: list(cells.columns).index("cell")])  # as `released_values` orders them
    typed = truth[[*keys, output]].astype({k: cells[k].dtype for k in keys})
    merged = cells.merge(typed.rename(columns={output: "true"}), on=keys, how="left")
    merged["true"] = merged["true"].astype(float).fillna(empty_value)
    merged = merged[merged["true"].notna()].copy()
    merged["error"] = merged["released"] - merged["true"]
    merged["covered"] = (merged["low"] <= merged["true"]) & (merged["true"] <= merged["high"])
    return merged.reset_index(drop=True)


def compare_release(delivery: Delivery, truth: Truth) -> pd.DataFrame:
    """`true_vs_released` for every output, stacked (empty when there are no true values)."""
    if truth.values is None:
        columns = ["output", "released", "noise_sd", "low", "high", "true", "error", "covered"]
        return pd.DataFrame(columns=columns)
    frames = []
    for output in delivery.outputs:
        empty = 0.0 if metric_kind(delivery.metric_of(output)["kind"]).zero_when_empty else math.nan
        frames.append(true_vs_released(released_values(delivery, output), truth.values, output, empty))
    return pd.concat(frames, ignore_index=True)


def accuracy_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per output: cells compared, 95% interval coverage, mean and median absolute error, mean
    noise sd and mean true value. The intervals cover the noise only: coverage under 95% comes
    from bounding bias, or from publication (a small cell is published when its noise was high).
    Quantile intervals are whole nodes of the tree and cover a little more than 95%."""
    grouped = comparison.assign(abs_error=comparison["error"].abs()).groupby("output", sort=False)
    return pd.DataFrame({
        "cells": grouped.size(),
        "coverage": grouped["covered"].mean(),
        "mean_abs_error": grouped["abs_error"].mean(),
        "median_abs_error": grouped["abs_error"].median(),
        "mean_noise_sd": grouped["noise_sd"].mean(),
        "mean_true": grouped["true"].mean(),
    }).reset_index()
