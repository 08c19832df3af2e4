"""`kr-reports explain`: a report's plan in words, before any data is touched.

Everything here follows from the spec and the plan: key domains, bounds,
each noised part's mechanism, sensitivity and spread, the expected error
per cell, partition selection and the sparse-cell rule. The shuffle counts
come from Spark's physical plan on an empty input of the same columns.
"""

from __future__ import annotations

import math

from core.config import Delivery
from core.dp import (
    CONFIDENCE,
    TREE_BRANCHING,
    TREE_LEAVES,
    MetricPlan,
    ReportPlan,
    insufficient_column,
    quantile_min_rows,
    quantile_rank_sd,
)
from core.mechanisms import IntegerNoise


def _budget(plan: ReportPlan) -> str:
    spec = plan.aggregation
    text = f"{spec.accounting}: total epsilon {plan.epsilon:.4g}, delta {plan.delta:.3g}"
    if spec.accounting == "zcdp":
        text += f" (rho {plan.rho:.4g}, stated at delta {spec.delta:.3g})"
    return text


def _keys(plan: ReportPlan) -> list[str]:
    lines = []
    for key in plan.aggregation.group_by:
        if key.private:
            lines.append(f"  {key.column}: private (from the data, released by partition selection)")
        else:
            domain = plan.public_keys[key.column]
            shown = ", ".join(str(v) for v in domain[:5]) + (", ..." if len(domain) > 5 else "")
            lines.append(f"  {key.column}: public, {len(domain)} values ({shown})")
    return lines


def _noise_line(part: str, noise: IntegerNoise, unit: float) -> str:
    norm = "L1" if noise.kind == "geometric" else "L2"
    half = noise.ci_half_width(CONFIDENCE)
    return (
        f"    {part}: {noise.kind}, {norm} sensitivity {noise.sensitivity:,.4g}, "
        f"noise sd {noise.sd / unit:,.4g}, 95% interval +-{half / unit:,.4g}"
    )


def _expected_error(metric: MetricPlan) -> str:
    m = metric.metric
    if metric.kind in ("count", "count_distinct_subscribers", "histogram"):
        return "    error per cell: the noise above, whatever the cell's size"
    if metric.kind == "sum":
        return f"    error per cell: the noise above, in units of {m.column}"
    if metric.kind in ("mean", "variance"):
        sum_sd = metric.part("sum").sd / (2 * m.scale)
        return (f"    error per cell of n rows: about {sum_sd:,.4g} / n on the mean (delta method); "
                "small cells are clamped to the bounds")
    rank_sd = quantile_rank_sd(metric.part("tree").sd)
    width = m.upper - m.lower
    if m.quantile_scale == "log":
        span = math.log1p(width)
        leaf, node = math.expm1(span / TREE_LEAVES), math.expm1(span / TREE_BRANCHING)
        resolution = (f"resolution {leaf:.2%} of 1 + (value - lower) in nodes holding enough rows to read "
                      f"their leaves, else {node:.0%} (interpolated on the log scale)")
    else:
        resolution = (f"resolution {width / TREE_LEAVES:,.4g} in nodes holding enough rows to read their "
                      f"leaves, else {width / TREE_BRANCHING:,.4g} (interpolated)")
    leaves_sd = quantile_rank_sd(metric.part("tree").sd, leaves_read=True)
    return (f"    error per cell of n rows: rank noise sd at most {rank_sd:,.4g} rows ({leaves_sd:,.4g} "
            f"where a node's leaves are read), so about {rank_sd:,.4g} / n in quantile; {resolution}\n"
            "    95% interval: the whole nodes (or leaves) where the noisy rank test cannot exclude the "
            f"quantile; a cell of fewer than {quantile_min_rows(metric):,.0f} rows (noisy) publishes "
            f"no quantile ({insufficient_column(metric.name)})")


def _metric_lines(metric: MetricPlan, accounting: str, window_share: float | None = None) -> list[str]:
    m = metric.metric
    share = f"rho {m.rho:g}" if accounting == "zcdp" and m.rho is not None else f"epsilon {m.epsilon:g}"
    if window_share is not None:
        share += f" ({window_share:.1%} of the window's budget, the catalog released daily)"
    what = m.kind if m.column is None else f"{m.kind} of {m.column}"
    if m.lower is not None:
        what += f", clamped to [{m.lower:g}, {m.upper:g}]"
    if m.kind == "quantiles":
        what += f", q = {', '.join(f'{q:g}' for q in m.quantiles)}, {m.quantile_scale} tree"
    if m.kind == "histogram":
        what += f", bins {list(m.bins)}"
    lines = [f"  {metric.name}: {what}; {share}"]
    unit = m.scale if m.kind == "sum" else 1
    lines += [_noise_line(name, noise, unit) for name, noise in metric.parts]
    lines.append(_expected_error(metric))
    if m.share_across:
        lines.append(f"    {metric.name}_share: each cell's share of its parent's published total across "
                     f"{m.share_across}, from the noisy values (no budget); sd by the delta method")
    return lines


def _delivery_lines(delivery: Delivery | None) -> list[str]:
    if delivery is None:
        return ["No delivery: an internal aggregation, charged to the ledger like any release"]
    return [f"Partner {delivery.partner}, purpose {delivery.purpose}",
            f"Policy clause: {delivery.policy_clause}"]


def explain(plan: ReportPlan, shuffles: dict[str, int] | None = None,
            delivery: Delivery | None = None, window_shares: dict[str, float] | None = None) -> str:
    """`window_shares`: each metric's share of the privacy budget's window (budget_plan.metric_shares)."""
    spec = plan.aggregation
    bounds = spec.contribution
    lines = [
        f"Report {spec.name}: source {spec.source}, privacy unit {spec.privacy_unit}, period {spec.period}",
        *_delivery_lines(delivery),
        f"Budget: {_budget(plan)}",
        "Group keys:",
        *_keys(plan),
        f"Public cells: {plan.public_cells:,}",
        f"Contribution bounds: at most {bounds.max_groups_per_subscriber} cells per subscriber "
        f"(chosen at random), at most {bounds.max_rows_per_group} rows per cell",
        "Metrics (each part is noised once per cell):",
    ]
    for metric in plan.metrics:
        lines += _metric_lines(metric, spec.accounting, (window_shares or {}).get(metric.name))
    if plan.selection is not None:
        s = plan.selection
        lines.append(
            f"Partition selection (truncated geometric): epsilon {s.epsilon:g}, delta {s.delta:.3g}; a "
            f"private key with n subscribers is released with a probability that grows with n: half the "
            f"time from {s.even_odds}, always from {s.threshold}"
        )
    if spec.min_subscribers is not None:
        rule = (f"rolled up over {spec.roll_up} into one remainder row per parent"
                if spec.sparse_cells == "roll_up" else "suppressed")
        lines.append(f"Sparse cells: under {spec.min_subscribers} noisy subscribers, {rule}")
    if shuffles is not None:
        detail = ", ".join(f"{name} {n}" for name, n in shuffles.items())
        lines.append(f"Spark shuffles (physical plan): {detail}; bounding itself is one repartition "
                     "by subscriber")
    return "\n".join(lines)
