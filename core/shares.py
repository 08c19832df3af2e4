"""Shares of a parent's total, computed from released noisy values (post-processing).

A metric with `share_across: brand` also releases, for each published cell,
its value divided by the total of the published cells that differ only in
`brand` (a region's devices, say). Merged and suppressed cells have no share;
a remainder row holds the share of the cells merged into it, so the shares
of a parent add up to 1. No data is read and no budget is spent.

The noise of a share comes from every cell of its parent: for s = x / T with
T = x + R, the delta method gives var(s) ~ (R^2 var(x) + x^2 var(R)) / T^4,
where var(R) sums the other cells' noise variances. The interval is s +- 1.96
sd, clipped to [0, 1]; it is an approximation where T is small against its noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.cells import PUBLISHED, STATUS, ci95_high_column, ci95_low_column, noise_sd_column
from core.noise_plan import ReportPlan, share_column

Z95 = 1.959963984540054


def with_shares(release: pd.DataFrame, plan: ReportPlan) -> pd.DataFrame:
    """`release` with a share, its sd and 95% interval for each metric that asks for one."""
    out = release.copy()
    for metric in plan.metrics:
        across = metric.metric.share_across
        if across is not None:
            parents = [c for c in plan.group_columns if c != across]
            out = _with_share(out, metric.name, parents)
    return out


def _with_share(release: pd.DataFrame, name: str, parents: list[str]) -> pd.DataFrame:
    published = release[STATUS].isin(PUBLISHED) & release[name].notna()
    value = release[name].where(published).astype("float64")
    variance = (release[noise_sd_column(name)] ** 2).where(published).astype("float64")
    if parents:
        grouped = [release[c].astype("string").fillna("\0") for c in parents]  # null keys group together
        total = value.groupby(grouped).transform("sum")
        total_variance = variance.groupby(grouped).transform("sum")
    else:
        total = pd.Series(value.sum(), index=release.index)
        total_variance = pd.Series(variance.sum(), index=release.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (value / total).where(total > 0)
        rest, rest_variance = total - value, total_variance - variance
        sd = np.sqrt(rest**2 * variance + value**2 * rest_variance) / total**2
    column = share_column(name)
    return release.assign(**{
        column: share,
        noise_sd_column(column): sd.where(share.notna()),
        ci95_low_column(column): (share - Z95 * sd).clip(lower=0.0),
        ci95_high_column(column): (share + Z95 * sd).clip(upper=1.0),
    })
