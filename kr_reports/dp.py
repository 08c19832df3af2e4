"""From a report spec to a noise plan, and noise on the small aggregated frame.

Sensitivities follow from the contribution bounds: a subscriber touches at
most G cells, with at most R rows of value at most M (in absolute value) in
each. Pure DP (delta = 0) uses diffprivlib's Geometric mechanism calibrated
to the L1 sensitivity of the whole vector of cells; approximate DP uses its
discrete Gaussian calibrated to the (integer-rounded-up) L2 sensitivity.
Noise is only ever added to integers, and only with diffprivlib's secure
random source unless a test passes `random_state`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from diffprivlib.mechanisms import GaussianDiscrete, Geometric

from kr_reports.config import Metric, ReportSpec

HOURS = tuple(range(24))
CONFIDENCE = 0.95
# diffprivlib's discrete Gaussian sampler loops O(sigma) times per draw.
MAX_DISCRETE_GAUSSIAN_SCALE = 1e4


class PlanError(ValueError):
    """A spec whose noise cannot be calibrated as asked."""


@dataclass(frozen=True)
class MetricPlan:
    name: str
    kind: str
    column: str | None
    epsilon: float
    delta: float
    mechanism: str  # "geometric" or "discrete_gaussian"
    sensitivity: int
    noise_sd: float
    ci_half_width: int

    def mechanism_for(self, random_state=None):
        if self.mechanism == "geometric":
            return Geometric(
                epsilon=self.epsilon, sensitivity=self.sensitivity, random_state=random_state
            )
        return GaussianDiscrete(
            epsilon=self.epsilon,
            delta=self.delta,
            sensitivity=self.sensitivity,
            random_state=random_state,
        )


@dataclass(frozen=True)
class ReportPlan:
    spec: ReportSpec
    public_keys: dict[str, tuple]
    metrics: tuple[MetricPlan, ...]

    @property
    def epsilon(self) -> float:
        return math.fsum(m.epsilon for m in self.metrics)

    @property
    def delta(self) -> float:
        return math.fsum(m.delta for m in self.metrics)

    @property
    def clamps(self) -> dict[str, tuple[int, int]]:
        return {
            m.column: (m.lower, m.upper) for m in self.spec.metrics if m.kind == "sum"
        }

    @property
    def cells(self) -> int:
        return math.prod(len(v) for v in self.public_keys.values())


def _per_cell_bound(metric: Metric, max_rows: int) -> int:
    if metric.kind == "count_distinct_subscribers":
        return 1
    return max_rows * max(abs(metric.lower), abs(metric.upper))


def geometric_ci_half_width(epsilon: float, sensitivity: int, confidence: float) -> int:
    """Smallest t with P(|noise| > t) <= 1 - confidence for the two-sided geometric."""
    alpha = math.exp(-epsilon / sensitivity)
    # P(|X| > t) = 2 alpha^(t+1) / (1 + alpha)
    t = math.log((1 - confidence) * (1 + alpha) / 2) / math.log(alpha) - 1
    return max(0, math.ceil(t))


def _plan_metric(metric: Metric, spec: ReportSpec, delta_share: float) -> MetricPlan:
    bounds = spec.contribution
    per_cell = _per_cell_bound(metric, bounds.max_rows_per_group)
    groups = bounds.max_groups_per_subscriber
    if delta_share == 0:
        sensitivity = groups * per_cell  # L1 over the vector of cells
        alpha = math.exp(-metric.epsilon / sensitivity)
        sd = math.sqrt(2 * alpha) / (1 - alpha)
        half_width = geometric_ci_half_width(metric.epsilon, sensitivity, CONFIDENCE)
        mechanism = "geometric"
    else:
        sensitivity = math.ceil(math.sqrt(groups) * per_cell)  # L2, rounded up
        # The scale grows linearly with the sensitivity; check before diffprivlib's search.
        unit = GaussianDiscrete(epsilon=metric.epsilon, delta=delta_share, sensitivity=1)
        if unit._scale * sensitivity > MAX_DISCRETE_GAUSSIAN_SCALE:
            raise PlanError(
                f"report '{spec.name}', metric '{metric.name}': discrete Gaussian scale about "
                f"{unit._scale * sensitivity:.3g} is too large to sample; use delta 0 "
                f"(geometric) or tighter contribution bounds"
            )
        sd = float(
            GaussianDiscrete(
                epsilon=metric.epsilon, delta=delta_share, sensitivity=sensitivity
            )._scale
        )
        half_width = math.ceil(1.959964 * sd)
        mechanism = "discrete_gaussian"
    return MetricPlan(
        name=metric.name,
        kind=metric.kind,
        column=metric.column,
        epsilon=metric.epsilon,
        delta=delta_share,
        mechanism=mechanism,
        sensitivity=sensitivity,
        noise_sd=sd,
        ci_half_width=half_width,
    )


def plan_report(spec: ReportSpec, regions: tuple[str, ...]) -> ReportPlan:
    """The immutable plan: public key domains and each metric's calibrated noise."""
    domains = {"regions": tuple(regions), "hours": HOURS}
    public_keys = {key.column: domains[key.values] for key in spec.group_by}
    delta_share = spec.delta / len(spec.metrics)
    metrics = tuple(_plan_metric(m, spec, delta_share) for m in spec.metrics)
    return ReportPlan(spec=spec, public_keys=public_keys, metrics=metrics)


def true_value_column(metric: MetricPlan) -> str:
    """The aggregated (pre-noise) column a metric reads."""
    return "distinct_units" if metric.kind == "count_distinct_subscribers" else metric.column


def noise_cells(cells: pd.DataFrame, plan: ReportPlan, random_state=None) -> pd.DataFrame:
    """The release: group keys, then per metric its noisy value, noise sd and 95% interval.

    Post-processing costs no budget: released values are integers clamped at 0
    (every metric here is a count or a sum of non-negative bounded values).
    The interval is around the noisy value, before clamping.
    """
    release = cells[list(plan.public_keys)].copy()
    for metric in plan.metrics:
        mechanism = metric.mechanism_for(random_state)
        truth = cells[true_value_column(metric)].astype("int64")
        noisy = truth.map(lambda v, m=mechanism: m.randomise(int(v))).astype("int64")
        release[metric.name] = noisy.clip(lower=0)
        release[f"{metric.name}_noise_sd"] = round(metric.noise_sd, 3)
        release[f"{metric.name}_ci95_low"] = (noisy - metric.ci_half_width).clip(lower=0)
        release[f"{metric.name}_ci95_high"] = (noisy + metric.ci_half_width).clip(lower=0)
    return release.reset_index(drop=True)


def release_columns(plan: ReportPlan) -> list[str]:
    columns = list(plan.public_keys)
    for metric in plan.metrics:
        columns += [
            metric.name,
            f"{metric.name}_noise_sd",
            f"{metric.name}_ci95_low",
            f"{metric.name}_ci95_high",
        ]
    return columns


def count_columns(plan: ReportPlan) -> list[str]:
    return [m.name for m in plan.metrics]
