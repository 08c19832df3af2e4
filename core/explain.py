"""`kr-reports explain`: a report's plan in words, before any data is touched.

Everything here follows from the spec and the plan: key domains, bounds,
each noised part's mechanism, sensitivity and spread, the expected error
per cell (each metric's kind words its own, core.kinds), partition
selection and the sparse-cell rule. The shuffle counts come from Spark's
physical plan on an empty input of the same columns.
"""

from __future__ import annotations

from core.config import Delivery
from core.mechanisms import IntegerNoise
from core.noise_plan import CONFIDENCE, MetricPlan, ReportPlan


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


def _metric_lines(metric: MetricPlan, accounting: str, window_share: float | None = None) -> list[str]:
    m = metric.metric
    share = f"rho {m.rho:g}" if accounting == "zcdp" and m.rho is not None else f"epsilon {m.epsilon:g}"
    if window_share is not None:
        share += f" ({window_share:.1%} of the window's budget, the catalog released daily)"
    lines = [f"  {metric.name}: {metric.measure.describe()}; {share}"]
    unit = metric.measure.noise_unit()
    lines += [_noise_line(name, noise, unit) for name, noise in metric.parts]
    lines.append(metric.measure.expected_error(metric))
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
