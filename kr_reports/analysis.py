"""What the analyst notebooks compute: pure functions over the files a run wrote.

The notebooks in `notebooks/` call these and hold no logic of their own.
Nothing here starts Spark or Prefect: deliveries, protected and analyst
datasets are read with pandas (pyarrow), the ledger with a read-only query.

No function returns a subscriber pseudonym. The protected zone (which holds
them) is read only to compute true per-cell values on synthetic data, and
only per-cell aggregates leave `true_values` and `bounding_kept_share`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import sqlalchemy as sa
from matplotlib.ticker import NullFormatter
from scipy.optimize import brentq

from core import mechanisms as mech
from core.cells import PUBLISHED, RELEASED, STATUS, ci95_high_column, ci95_low_column, noise_sd_column
from core.config import (
    Aggregation,
    Budget,
    Contribution,
    Metric,
    ReportSpec,
    load_analyst_config,
    load_pipeline_config,
)
from core.dp import METRIC_PARTS, MetricPlan, PlanError, ReportPlan, plan_aggregation, quantile_rank_sd
from core.errors import KrReportsError
from core.kanon.metrics import SUPPRESSED
from core.ledger import LEDGER_FILE, LEDGER_URL_ENV, budget_status, charges_table
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
from stages.catalog import Catalog
from stages.delivery import parse_delivery_folder, verify_checksums
from stages.reference import parse_domain_categories, shipped_reference
from transforms.generalize import UNCATEGORIZED
from transforms.report_inputs import UNIT, references_read, sources_read

REPORT_ENV = "KR_REPORT"
CONFIG_ENV = "KR_CONFIG_DIR"
# Metrics whose empty cell is truly 0; a mean or a quantile of no rows has no value.
ZERO_WHEN_EMPTY = ("count", "count_distinct_subscribers", "sum", "histogram")
COUNTED = ("count", "count_distinct_subscribers", "histogram")
DEFAULT_ROWS_PER_CELL = 100.0  # the cell size errors are quoted for when the data cannot say
PANEL_COLUMNS = 4  # panels per row of a figure with one panel per metric


class TruthUnavailable(KrReportsError, LookupError):
    """The protected zone neither holds nor derives a column the report reads."""


# --- where a run's files are ---------------------------------------------------


@dataclass(frozen=True)
class Settings:
    catalog: Catalog
    config_dir: Path
    ledger: str | Path  # a SQLAlchemy URL or the SQLite file
    report: str | None  # the report to explore; None: the first delivered one


def project_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding pyproject.toml (else `start`)."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return start


def settings_from_env(environ: Mapping[str, str], cwd: Path) -> Settings:
    """Folders as `make run` leaves them: KR_DATA_DIR, KR_OUT_DIR, KR_CONFIG_DIR, KR_LEDGER_URL,
    KR_REPORT. Defaults and relative paths are taken from the project root, not from the
    notebooks/ folder a Jupyter kernel starts in."""
    root = project_root(cwd.resolve())

    def folder(name: str, default: str) -> Path:
        return root / environ.get(name, default)  # an absolute value replaces the root

    data_dir = folder("KR_DATA_DIR", "data")
    return Settings(
        catalog=Catalog(data_dir=data_dir, out_dir=folder("KR_OUT_DIR", "out")),
        config_dir=folder(CONFIG_ENV, "config"),
        ledger=environ.get(LEDGER_URL_ENV) or data_dir / LEDGER_FILE,
        report=environ.get(REPORT_ENV) or None,
    )


def load_plan(aggregation: Aggregation, config_dir: Path) -> ReportPlan:
    """The aggregation's noise plan, with the public regions of the pipeline configuration."""
    return plan_aggregation(aggregation, load_pipeline_config(config_dir).regions)


# --- deliveries ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Delivery:
    path: Path
    manifest: dict
    data: pd.DataFrame = field(repr=False)

    @property
    def spec(self) -> ReportSpec:
        return ReportSpec.model_validate(self.manifest["spec"])

    @property
    def aggregation(self) -> Aggregation:
        return self.spec.aggregation

    @property
    def report(self) -> str:
        return self.manifest["report"]

    @property
    def period(self) -> dt.date:
        return dt.date.fromisoformat(self.manifest["period"])

    @property
    def keys(self) -> tuple[str, ...]:
        return self.aggregation.group_columns

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every released value column, in the manifest's order."""
        return tuple(out for m in self.manifest["privacy"]["metrics"] for out in m["outputs"])

    def metric_of(self, output: str) -> dict:
        return next(m for m in self.manifest["privacy"]["metrics"] if output in m["outputs"])


def find_deliveries(out_dir: Path) -> pd.DataFrame:
    """One row per delivery folder (partner, report, period, release number, path), in order.
    Hidden staging folders of a delivery being written are not deliveries."""
    rows = []
    for manifest in sorted((out_dir / "deliveries").glob("*/*/*/manifest.json")):
        if any(part.startswith(".") for part in manifest.parts[-4:-1]):
            continue
        period, number = parse_delivery_folder(manifest.parts[-2])
        rows.append({"partner": manifest.parts[-4], "report": manifest.parts[-3], "period": period,
                     "release": number, "path": manifest.parent})
    frame = pd.DataFrame(rows, columns=["partner", "report", "period", "release", "path"])
    return frame.sort_values(["report", "period", "release"], kind="stable").reset_index(drop=True)


def choose_delivery(deliveries: pd.DataFrame, report: str | None = None) -> Path:
    """The latest delivery of `report` (its last period's last release); without a name, of the
    first report found."""
    if deliveries.empty:
        raise LookupError("no deliveries found; run `make run` (or set KR_OUT_DIR) first")
    name = report or deliveries["report"].iloc[0]
    matching = deliveries[deliveries["report"] == name]
    if matching.empty:
        known = ", ".join(sorted(deliveries["report"].unique()))
        raise LookupError(f"no delivery of report '{name}'; delivered: {known}")
    return Path(matching["path"].iloc[-1])


def load_delivery(path: Path) -> Delivery:
    """A delivery, after checking its files against the manifest's SHA-256."""
    verify_checksums(path)
    manifest = json.loads((path / "manifest.json").read_text())
    return Delivery(path=path, manifest=manifest, data=pd.read_parquet(path / "data.parquet"))


def delivery_summary(delivery: Delivery) -> pd.DataFrame:
    """What was released, to whom, at which privacy cost (one row per fact)."""
    m, spec = delivery.manifest, delivery.aggregation
    bounds = spec.contribution
    statuses = delivery.data[STATUS].value_counts().sort_index()
    facts = {
        "report": m["report"], "partner": m["partner"], "purpose": m["purpose"],
        "period": m["period"], "release": m["release_id"], "accounting": spec.accounting,
        "epsilon": m["privacy"]["epsilon"], "delta": m["privacy"]["delta"],
        "cells per subscriber (max)": bounds.max_groups_per_subscriber,
        "rows per cell (max)": bounds.max_rows_per_group,
        "k (min noisy subscribers)": spec.min_subscribers,
        **{f"cells {status}": int(n) for status, n in statuses.items()},
    }
    return pd.DataFrame({"fact": list(facts), "value": [str(v) for v in facts.values()]})


def noise_table(delivery: Delivery) -> pd.DataFrame:
    """Each metric's noised parts: mechanism, sensitivity, noise sd and 95% half-width."""
    rows = [
        {"metric": m["name"], "kind": m["kind"], "epsilon": m["epsilon"], **part}
        for m in delivery.manifest["privacy"]["metrics"] for part in m["parts"]
    ]
    return pd.DataFrame(rows)


def _cell_labels(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """'Seoul / 13'; a remainder row's rolled-up key reads 'remainder'."""
    parts = [frame[k].astype("string").fillna("remainder") for k in keys]
    return parts[0].str.cat(parts[1:], sep=" / ") if len(parts) > 1 else parts[0]


def released_values(delivery: Delivery, output: str) -> pd.DataFrame:
    """Published cells of one output with noise sd and 95% interval (withheld cells left out)."""
    return table_values(delivery.data, delivery.keys, output)


def table_values(data: pd.DataFrame, keys: Sequence[str], output: str) -> pd.DataFrame:
    """`released_values` of any release table (a delivery's, or one from the Releaser)."""
    published = data[data[STATUS].isin(PUBLISHED) & data[output].notna()]
    keys = list(keys)
    frame = published[[*keys, STATUS]].copy()
    frame.insert(len(keys), "cell", _cell_labels(published, keys))
    frame["output"] = output
    frame["released"] = published[output].astype(float)
    frame["noise_sd"] = published[noise_sd_column(output)].astype(float)
    frame["low"] = published[ci95_low_column(output)].astype(float)
    frame["high"] = published[ci95_high_column(output)].astype(float)
    return frame.reset_index(drop=True)


# --- true values (synthetic data only) -------------------------------------------


def _read_protected(catalog: Catalog, source: str, period: dt.date, wanted: set[str]) -> pd.DataFrame:
    path = catalog.protected(SOURCES[source], period)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no protected data; run the daily flow for {period} first")
    present = ds.dataset(path, format="parquet").schema.names
    return pd.read_parquet(path, columns=[c for c in present if c in wanted])


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


def _clamped(rows: pd.DataFrame, metric: Metric) -> pd.Series:
    return rows[metric.column].astype(float).clip(metric.lower, metric.upper)


def _histogram_truth(rows: pd.DataFrame, keys: list[str], metric: MetricPlan) -> pd.DataFrame:
    """Rows per bin; values outside the edges fall in the first or last bin, as released."""
    inner = np.asarray(metric.metric.bins[1:-1], dtype=float)
    bins = np.searchsorted(inner, rows[metric.metric.column].astype(float), side="right")
    counts = rows[keys].assign(_bin=bins).groupby([*keys, "_bin"]).size().unstack("_bin", fill_value=0)
    counts = counts.reindex(columns=range(len(metric.outputs)), fill_value=0)
    counts.columns = list(metric.outputs)
    return counts


def _metric_truth(rows: pd.DataFrame, keys: list[str], metric: MetricPlan) -> pd.DataFrame:
    """One metric's true values per cell, without bounding or noise (values clamped)."""
    m, kind = metric.metric, metric.kind
    if kind == "histogram":
        return _histogram_truth(rows, keys, metric)
    if kind == "count_distinct_subscribers":
        return rows.groupby(keys)[UNIT].nunique().to_frame(m.name)
    if kind == "count":
        return rows.groupby(keys).size().to_frame(m.name)
    grouped = _clamped(rows, m).groupby([rows[k] for k in keys])
    if kind == "quantiles":
        return pd.concat({out: grouped.quantile(q) for out, q in zip(metric.outputs, m.quantiles,
                                                                     strict=True)}, axis=1)
    how = {"sum": "sum", "mean": "mean", "variance": lambda s: s.var(ddof=0)}[kind]
    return grouped.agg(how).to_frame(m.name)


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
        empty = 0.0 if delivery.metric_of(output)["kind"] in ZERO_WHEN_EMPTY else math.nan
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


# --- the privacy ledger ----------------------------------------------------------


def _read_only_engine(location: str | Path) -> sa.Engine:
    if isinstance(location, str) and "://" in location:
        return sa.create_engine(location)
    path = Path(location)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ledger; run `make run` (or set KR_DATA_DIR) first")
    return sa.create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")


def ledger_history(location: str | Path) -> pd.DataFrame:
    """Every charge in the ledger, oldest first, read without taking a lock or writing."""
    engine = _read_only_engine(location)
    try:
        with engine.connect() as conn:
            history = pd.read_sql(sa.select(charges_table).order_by(charges_table.c.id), conn)
    finally:
        engine.dispose()
    return history.assign(period=pd.to_datetime(history["period"]).dt.date)


def latest_protected_day(catalog: Catalog, source: str) -> dt.date:
    """The latest day the protected zone holds for a source."""
    folder = catalog.data_dir / "protected" / source
    days = sorted(p.name.removeprefix("date=") for p in folder.glob("date=*"))
    if not days:
        raise LookupError(f"no protected {source} in {catalog.data_dir}; run `make run` first")
    return dt.date.fromisoformat(days[-1])


def load_budgets(config_dir: Path) -> tuple[Budget, ...]:
    """The privacy budget, then the caps."""
    return load_pipeline_config(config_dir).limits


def _timeline_days(history: pd.DataFrame, budgets: Sequence[Budget]) -> list[dt.date]:
    """From the first charged period until the last charge has left the longest window."""
    if history.empty:
        return []
    longest = max(b.window_days for b in budgets)
    last = max(history["period"]) + dt.timedelta(days=longest)
    return [d.date() for d in pd.date_range(min(history["period"]), last)]


def budget_over_time(history: pd.DataFrame, budgets: Sequence[Budget], unit: str = "subscriber",
                     days: Sequence[dt.date] | None = None) -> pd.DataFrame:
    """Spent and left per limit in the rolling window ending on each day (the ledger's rule)."""
    days = _timeline_days(history, budgets) if days is None else days
    charged = history.assign(period=history["period"].map(str))
    mine = charged[charged["privacy_unit"] == unit]
    columns = ["period", "dataset", "partner", "epsilon", "delta", "rho", "approx_epsilon", "approx_delta"]
    charges = list(mine[columns].itertuples(index=False))
    rows = [budget_status(budget, day, unit, charges).__dict__ for budget in budgets for day in days]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame.insert(1, "day", pd.to_datetime(frame["window_end"]).dt.date)
    return frame


def latest_status(history: pd.DataFrame, budgets: Sequence[Budget], unit: str = "subscriber",
                  today: dt.date | None = None) -> pd.DataFrame:
    """Each budget in the window ending on the latest charged period (`today` without charges)."""
    day = max(history["period"]) if not history.empty else (today or dt.date.today())
    return budget_over_time(history, budgets, unit, days=[day])


def spend_by_period(history: pd.DataFrame) -> pd.DataFrame:
    """Rho charged per period (rows) and report (columns): what composes across the window."""
    return history.pivot_table(index="period", columns="report", values="rho", aggfunc="sum",
                               fill_value=0.0)


# --- accuracy against epsilon and contribution bounds ---------------------------


@dataclass(frozen=True)
class ParameterGrid:
    epsilons: tuple[float, ...]
    max_groups: tuple[int, ...]
    max_rows: tuple[int, ...]


def _metric_rho(metric) -> float:
    """A zCDP metric's rho; one given an epsilon takes geometric noise on each of its parts."""
    if metric.rho is not None:
        return metric.rho
    return metric.epsilon**2 / (2 * len(METRIC_PARTS[metric.kind]))


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
    m, kind = metric.metric, metric.kind
    if kind in COUNTED:
        return metric.parts[0][1].sd, "rows" if kind != "count_distinct_subscribers" else "subscribers"
    if kind == "sum":
        return metric.part("value").sd / m.scale, m.column
    if kind == "mean":
        return metric.part("sum").sd / (2 * m.scale * rows_per_cell), m.column
    if kind == "variance":
        return metric.part("sum_sq").sd / (4 * m.scale**2 * rows_per_cell), f"{m.column}^2"
    return quantile_rank_sd(metric.part("tree").sd), "rank, rows"


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
    summed = [m for m in plan.metric_specs if m.kind == "sum"]
    per_cell = rows.groupby(keys).size().rename("rows").to_frame()
    for m in summed:
        per_cell[m.name] = _clamped(rows, m).groupby([rows[k] for k in keys]).sum()
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
        if m.kind == "count_distinct_subscribers":
            shares[m.name] = cell_kept.mean()
        elif m.kind in ("count", "histogram"):
            shares[m.name] = rows_kept
        elif m.kind == "sum":
            raw = per_cell[f"{m.name}__raw"].sum()
            shares[m.name] = (per_cell[m.name] * row_kept * cell_kept).sum() / raw if raw else math.nan
    return shares


def typical_cell_values(truth: pd.DataFrame, plan: ReportPlan) -> dict[str, float]:
    """Mean true value over cells with data, per count or sum metric (the scale errors are read on)."""
    return {m.name: float(truth[m.name].mean()) for m in plan.metrics
            if m.kind in ("count", "count_distinct_subscribers", "sum") and m.name in truth}


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


# --- the analyst zone ------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AnalystZone:
    day: dt.date
    report: dict
    records: pd.DataFrame = field(repr=False)  # quasi-identifiers and the sensitive attribute only

    @property
    def quasi_identifiers(self) -> list[str]:
        return list(self.report["verification"]["quasi_identifiers"])

    @property
    def sensitive(self) -> str | None:
        return self.report["verification"].get("sensitive")

    @property
    def k(self) -> int:
        return self.report["requirements"]["k"]


def latest_analyst_day(data_dir: Path) -> dt.date:
    days = sorted(p.name.removeprefix("date=") for p in (data_dir / "analyst").glob("date=*")
                  if (p / "report.json").is_file())
    if not days:
        raise FileNotFoundError(f"{data_dir / 'analyst'}: no analyst zone; run `make run` first")
    return dt.date.fromisoformat(days[-1])


def load_analyst_zone(catalog: Catalog, day: dt.date | None = None) -> AnalystZone:
    """The day's k-anonymous records (only the columns its report names) and report.json."""
    day = day or latest_analyst_day(catalog.data_dir)
    folder = catalog.analyst(day)
    report = json.loads((folder / "report.json").read_text())
    verification = report["verification"]
    columns = [*verification["quasi_identifiers"], *filter(None, [verification.get("sensitive")])]
    return AnalystZone(day, report, pd.read_parquet(folder / "records", columns=columns))


def analyst_zone_summary(report: dict) -> pd.DataFrame:
    """Asked against achieved, suppression, information loss and risk (one row per figure)."""
    asked, achieved = report["requirements"], report["verification"]
    risk, loss = report["risk"], report["information_loss"]
    figures = {
        "subscribers": report["subscribers"],
        "k asked / achieved": f"{asked['k']} / {achieved['k']}",
        "distinct l asked / achieved": f"{asked.get('l')} / {achieved.get('l_distinct')}",
        "equivalence classes": achieved["classes"],
        "records suppressed (limit)": f"{report['suppressed_records']} ({asked['suppression_limit']:.0%})",
        "information loss (ARX Loss)": f"{loss['loss']:.3f}",
        "NCP": f"{loss['ncp']:.3f}",
        "prosecutor risk, highest": f"{risk['prosecutor']['highest']:.3f}",
        "prosecutor risk, average": f"{risk['prosecutor']['average']:.3f}",
        f"records above risk {risk['threshold']:g}": f"{risk['prosecutor']['records_at_risk']:.1%}",
        "journalist risk, highest": f"{risk['journalist']['highest']:.3f}",
        "marketer risk": f"{risk['marketer']:.3f}",
    }
    return pd.DataFrame({"figure": list(figures), "value": [str(v) for v in figures.values()]})


def hierarchy_heights(config_dir: Path) -> dict[str, int]:
    """Levels above the original value per quasi-identifier, '*' included."""
    hierarchies = load_analyst_config(config_dir).hierarchies
    return {column: len(next(iter(table.values()))) + 1 for column, table in hierarchies.items()}


def generalization_levels(report: dict, heights: Mapping[str, int]) -> pd.DataFrame:
    """The chosen level of each quasi-identifier against its hierarchy's height, with its loss."""
    levels, losses = report["transformation"], report["information_loss"]["loss_per_attribute"]
    rows = [{"quasi_identifier": qi, "level": level, "height": heights.get(qi), "loss": losses.get(qi)}
            for qi, level in levels.items()]
    return pd.DataFrame(rows)


def _released(records: pd.DataFrame, qis: Sequence[str]) -> pd.DataFrame:
    """Records not suppressed (a suppressed record has '*' in every quasi-identifier)."""
    return records[~(records[list(qis)] == SUPPRESSED).all(axis=1)]


def class_sizes(records: pd.DataFrame, qis: Sequence[str], sensitive: str | None = None) -> pd.DataFrame:
    """Released equivalence classes: subscribers, prosecutor risk (1 / size), distinct sensitive
    values; largest first."""
    grouped = _released(records, qis).groupby(list(qis), dropna=False)
    sizes = grouped.size().rename("subscribers").to_frame()
    sizes["risk"] = 1.0 / sizes["subscribers"]
    if sensitive:
        sizes["distinct_" + sensitive] = grouped[sensitive].nunique()
    return sizes.sort_values("subscribers", ascending=False, kind="stable").reset_index()


def sensitive_shares(records: pd.DataFrame, qis: Sequence[str], sensitive: str) -> pd.DataFrame:
    """Share of each sensitive value within each released class (rows: class labels)."""
    released = _released(records, qis)
    labels = _cell_labels(released, list(qis)).rename("class")
    return pd.crosstab(labels, released[sensitive], normalize="index")


# --- plots (each draws on the Axes it is given and returns it) -------------------


def metric_panels(frame: pd.DataFrame, draw, *args, width: float = 5.0, height: float = 4.0):
    """A figure with one panel per metric in `frame`, each drawn by `draw(ax, frame, metric, *args)`."""
    metrics = list(dict.fromkeys(frame["metric"])) if len(frame) else []
    panels = max(1, len(metrics))
    columns = min(PANEL_COLUMNS, panels)
    rows = math.ceil(panels / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    for ax in axes.ravel()[panels:]:
        fig.delaxes(ax)
    if not metrics:
        _no_data(axes[0][0], "no figures for this report")
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        draw(ax, frame, metric, *args)
    fig.tight_layout()
    return fig


def _no_data(ax, message: str):
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()
    return ax


def plot_intervals(ax, values: pd.DataFrame, limit: int = 25):
    """The `limit` largest published cells with their 95% interval (and true value, if given)."""
    if values.empty:
        return _no_data(ax, "no published cells")
    shown = values.nlargest(limit, "released").iloc[::-1]
    y = np.arange(len(shown))
    spread = [shown["released"] - shown["low"], shown["high"] - shown["released"]]
    ax.errorbar(shown["released"], y, xerr=spread, fmt="o", capsize=3, label="released, 95% interval")
    if "true" in shown:
        ax.scatter(shown["true"], y, marker="x", color="black", zorder=3, label="true (synthetic)")
    ax.set_yticks(y, shown["cell"])
    ax.set_xlabel(shown["output"].iloc[0])
    ax.legend(loc="lower right")
    return ax


def plot_true_vs_released(ax, comparison: pd.DataFrame, output: str):
    """Released against true value per cell; the diagonal is no error."""
    cells = comparison[comparison["output"] == output]
    if cells.empty:
        return _no_data(ax, f"no true values to compare for {output}")
    spread = [cells["released"] - cells["low"], cells["high"] - cells["released"]]
    ax.errorbar(cells["true"], cells["released"], yerr=spread, fmt="o", alpha=0.6, capsize=2)
    ends = [min(cells["true"].min(), cells["low"].min()), max(cells["true"].max(), cells["high"].max())]
    ax.plot(ends, ends, color="grey", linestyle="--", label="released = true")
    ax.set_xlabel(f"true {output} (synthetic data)")
    ax.set_ylabel(f"released {output}")
    ax.set_title(f"{len(cells)} cells, 95% interval covers the truth in {cells['covered'].mean():.0%}")
    ax.legend()
    return ax


def plot_status_counts(ax, delivery: Delivery):
    counts = delivery.data[STATUS].value_counts().sort_index()
    ax.bar(counts.index, counts.to_numpy())
    ax.set_ylabel("rows")
    ax.set_title("cells by status")
    return ax


def plot_budget_over_time(ax, timeline: pd.DataFrame, measure: str = "spent_epsilon"):
    """One line per limit (the privacy budget, each cap); for spent epsilon, its budget dashed."""
    if timeline.empty:
        return _no_data(ax, "no charges in the ledger")
    for scope, rows in timeline.groupby("scope", sort=False):
        line, = ax.step(rows["day"], rows[measure], where="post", label=scope)
        if measure == "spent_epsilon":
            ax.axhline(rows["budget_epsilon"].iloc[0], color=line.get_color(), linestyle="--", alpha=0.5)
    ax.set_ylabel(measure.replace("_", " ") + " in the rolling window")
    ax.legend(fontsize="small")
    ax.tick_params(axis="x", labelrotation=30)
    return ax


def plot_spend_by_period(ax, spend: pd.DataFrame):
    """Stacked rho charged per period, by report (rhos add up in the window)."""
    if spend.empty:
        return _no_data(ax, "no charges in the ledger")
    bottom = np.zeros(len(spend))
    labels = [str(p) for p in spend.index]
    for report in spend.columns:
        ax.bar(labels, spend[report].to_numpy(), bottom=bottom, label=report)
        bottom += spend[report].to_numpy()
    ax.set_ylabel("rho charged")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
    return ax


def plot_noise_vs_epsilon(ax, grid: pd.DataFrame, metric: str, max_rows: int):
    """Noise sd per cell against total epsilon, one line per max groups per subscriber."""
    rows = grid[(grid["metric"] == metric) & (grid["max_rows"] == max_rows)]
    for groups, line in rows.groupby("max_groups"):
        ax.plot(line["epsilon"], line["noise_sd"], marker="o", label=f"{groups} cells")
    ax.set_xscale("log")
    ax.set_yscale("log")
    epsilons = sorted(rows["epsilon"].unique())
    ax.set_xticks(epsilons, [f"{e:.3g}" for e in epsilons])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("total epsilon of the metrics")
    units = rows["unit"].dropna()
    ax.set_ylabel(f"noise sd per cell ({units.iloc[0]})" if len(units) else "noise sd per cell")
    ax.set_title(f"{metric}, {max_rows} rows per cell")
    ax.legend(title="max per subscriber", fontsize="small")
    return ax


def plot_kept_share(ax, kept: pd.DataFrame, metric: str):
    """Share of a count or sum that bounding keeps, against max cells, per max rows."""
    rows = kept[kept["metric"] == metric]
    if rows.empty:
        return _no_data(ax, f"no bounding figures for {metric}")
    for limit, line in rows.groupby("max_rows"):
        ax.plot(line["max_groups"], line["kept_share"], marker="o", label=f"{limit} rows")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("max cells per subscriber")
    ax.set_ylabel("share kept after bounding")
    ax.set_title(metric)
    ax.legend(title="max per cell", fontsize="small")
    return ax


def plot_relative_error(ax, errors: pd.DataFrame, metric: str, epsilon: float):
    """Expected relative error of a typical cell against max cells, per max rows, at `epsilon`."""
    rows = errors[(errors["metric"] == metric) & np.isclose(errors["epsilon"], epsilon)]
    if rows.empty:
        return _no_data(ax, f"no error figures for {metric}")
    for limit, line in rows.groupby("max_rows"):
        ax.plot(line["max_groups"], line["relative_error"], marker="o", label=f"{limit} rows")
    ax.set_yscale("log")
    ax.set_xlabel("max cells per subscriber")
    ax.set_ylabel("relative error of a typical cell")
    ax.set_title(f"{metric} at epsilon {epsilon:.3g}")
    ax.legend(title="max per cell", fontsize="small")
    return ax


def plot_generalization(ax, levels: pd.DataFrame):
    """Chosen level against the hierarchy's height (full bar: suppressed to '*')."""
    ax.barh(levels["quasi_identifier"], levels["height"], color="lightgrey", label="hierarchy height")
    ax.barh(levels["quasi_identifier"], levels["level"], label="chosen level")
    ax.set_xlabel("generalization level")
    ax.legend(fontsize="small")
    return ax


def plot_class_sizes(ax, sizes: pd.DataFrame, k: int):
    """Subscribers per released class, largest first, against k."""
    if sizes.empty:
        return _no_data(ax, "every record is suppressed")
    ax.bar(np.arange(len(sizes)), sizes["subscribers"])
    ax.axhline(k, color="red", linestyle="--", label=f"k = {k}")
    ax.set_xlabel("equivalence class (largest first)")
    ax.set_ylabel("subscribers")
    ax.legend()
    return ax


def plot_sensitive_shares(ax, shares: pd.DataFrame):
    """Stacked share of each sensitive value per class."""
    if shares.empty:
        return _no_data(ax, "every record is suppressed")
    left = np.zeros(len(shares))
    for value in shares.columns:
        ax.barh(shares.index, shares[value].to_numpy(), left=left, label=str(value))
        left += shares[value].to_numpy()
    ax.set_xlabel(f"share of the class ({shares.columns.name})")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
    return ax

