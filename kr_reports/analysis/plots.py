"""Plots: each draws on the Axes it is given and returns it."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from core.cells import STATUS
from kr_reports.analysis._common import PANEL_COLUMNS
from kr_reports.analysis.deliveries import Delivery


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
