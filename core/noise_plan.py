"""From an aggregation to an immutable noise plan.

Sensitivities follow from the contribution bounds: a subscriber touches at
most G cells with at most R rows each, every value clamped to its metric's
bounds. A metric is one or more noised integer vectors ("parts"): a count,
a fixed-point sum, a sum of squares, the nodes of a quantile tree or the
bins of a histogram; its kind (core.kinds) names them and gives each one's
sensitivity in one cell, which G multiplies here. Each part gets an explicit share of the metric's
budget, and the aggregation's accounting decides how the shares compose:

- pure_dp: geometric noise on the L1 sensitivity; epsilons add up;
- approx_dp: discrete Gaussian on the L2 sensitivity; epsilons and deltas add up;
- zcdp: discrete Gaussian from rho; rhos add up and the total is stated as
  (epsilon, delta) at the aggregation's delta.

Private group keys add a partition-selection budget (approximate DP, not
zCDP). A plan's `cost` states all of it in the terms the ledger composes
across releases (core.accounting): every Gaussian and pure-DP part also
as a rho, partition selection on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core import mechanisms as mech
from core.accounting import Cost, approx_dp_cost, pure_dp_cost, total, zcdp_cost
from core.cells import CELL_COLUMNS, output_columns
from core.config import Aggregation, GroupKey, Metric
from core.kinds import (  # noqa: F401 - the plan's names for them, as its callers import them
    MetricKind,
    fixed_point_bounds,
    insufficient_column,
    quantile_column,
    quantile_min_rows,
)
from core.mechanisms import CONFIDENCE, CalibrationError, IntegerNoise  # noqa: F401
from core.quantile_tree import (  # noqa: F401
    TREE_BRANCHING,
    TREE_BRANCHINGS,
    TREE_HEIGHT,
    TREE_LEAVES,
    quantile_rank_sd,
    tree_value,
)

HOURS = tuple(range(24))


class PlanError(CalibrationError):
    """A spec whose noise cannot be calibrated as asked."""


@dataclass(frozen=True)
class MetricPlan:
    metric: Metric
    parts: tuple[tuple[str, IntegerNoise], ...]
    epsilon: float  # the metric's cost, as its accounting states it
    delta: float
    rho: float
    cost: Cost  # what the ledger composes: the parts' rhos, and epsilon / delta

    @property
    def name(self) -> str:
        return self.metric.name

    @property
    def kind(self) -> str:
        return self.metric.kind

    @property
    def measure(self) -> MetricKind:
        return self.metric.measure

    def part(self, name: str) -> IntegerNoise:
        return dict(self.parts)[name]

    @property
    def outputs(self) -> tuple[str, ...]:
        """Released value columns (each with _noise_sd, _ci95_low, _ci95_high)."""
        return self.measure.outputs()


@dataclass(frozen=True)
class Selection:
    """Private partitions, each released with the probability its distinct-subscriber count gives.

    `keep_probabilities[n]` for n subscribers; from `threshold` on, always released
    (mechanisms.partition_keep_probabilities).
    """

    epsilon: float
    delta: float
    max_partitions: int
    keep_probabilities: tuple[float, ...]

    @property
    def threshold(self) -> int:
        """Subscribers from which a partition is always released."""
        return len(self.keep_probabilities) - 1

    @property
    def even_odds(self) -> int:
        """Subscribers from which a partition is released at least half the time."""
        return next(n for n, p in enumerate(self.keep_probabilities) if p >= 0.5)

    def keep_probability(self, subscribers) -> np.ndarray:
        counts = np.minimum(np.asarray(subscribers, dtype="int64"), self.threshold)
        return np.asarray(self.keep_probabilities)[counts]

    @property
    def cost(self) -> Cost:
        return approx_dp_cost(self.epsilon, self.delta)


@dataclass(frozen=True)
class ReportPlan:
    aggregation: Aggregation
    public_keys: dict[str, tuple]
    metrics: tuple[MetricPlan, ...]
    selection: Selection | None

    @property
    def private_keys(self) -> tuple[str, ...]:
        return self.aggregation.private_keys

    @property
    def group_columns(self) -> tuple[str, ...]:
        return self.aggregation.group_columns

    @property
    def cost(self) -> Cost:
        """What one release of the plan spends, in the ledger's terms."""
        if self.aggregation.accounting == "zcdp":
            metrics = zcdp_cost(math.fsum(m.rho for m in self.metrics), self.aggregation.delta)
        else:
            metrics = total(m.cost for m in self.metrics)
        return metrics + self.selection.cost if self.selection else metrics

    @property
    def rho(self) -> float:
        return self.cost.rho

    @property
    def epsilon(self) -> float:
        return self.cost.epsilon

    @property
    def delta(self) -> float:
        return self.cost.delta

    @property
    def public_cells(self) -> int:
        return math.prod(len(v) for v in self.public_keys.values())

    @property
    def metric_specs(self) -> tuple[Metric, ...]:
        return tuple(m.metric for m in self.metrics)


def _part_noise(aggregation: Aggregation, metric: Metric, part: str, share: int) -> IntegerNoise:
    groups = aggregation.contribution.max_groups_per_subscriber
    l1_cell, l2_cell = metric.measure.sensitivity(part, aggregation.contribution.max_rows_per_group)
    what = f"aggregation '{aggregation.name}', metric '{metric.name}' ({part})"
    # zCDP takes geometric noise where a metric gives an epsilon (no rho)
    if aggregation.accounting == "pure_dp" or (aggregation.accounting == "zcdp" and metric.rho is None):
        return mech.geometric(metric.epsilon / share, groups * l1_cell, what)
    l2 = math.sqrt(groups) * l2_cell
    if aggregation.accounting == "zcdp":
        return mech.zcdp_discrete_gaussian(metric.rho / share, l2, aggregation.delta, what)
    delta = aggregation.delta / len(aggregation.metrics) / share
    return mech.discrete_gaussian(metric.epsilon / share, delta, l2, what)


def _plan_metric(aggregation: Aggregation, metric: Metric) -> MetricPlan:
    names = metric.measure.parts
    try:
        parts = tuple((name, _part_noise(aggregation, metric, name, len(names))) for name in names)
    except CalibrationError as exc:
        raise PlanError(str(exc)) from None
    if aggregation.accounting == "zcdp" and metric.rho is not None:
        cost = zcdp_cost(metric.rho, aggregation.delta)
        return MetricPlan(metric, parts, math.nan, math.nan, metric.rho, cost)
    if aggregation.accounting == "zcdp":  # geometric noise: its epsilon^2 / 2 composes in rho
        cost = pure_dp_cost(noise.epsilon for _, noise in parts)
        return MetricPlan(metric, parts, math.nan, math.nan, cost.rho, cost)
    if aggregation.accounting == "pure_dp":
        cost = pure_dp_cost(noise.epsilon for _, noise in parts)
        return MetricPlan(metric, parts, metric.epsilon, 0.0, cost.rho, cost)
    delta = aggregation.delta / len(aggregation.metrics)
    rho = math.fsum(noise.rho for _, noise in parts)  # Gaussian: its rho composes
    return MetricPlan(metric, parts, metric.epsilon, delta, rho, Cost(metric.epsilon, delta, rho))


def key_domain(key: GroupKey, regions: tuple[str, ...]) -> tuple:
    if key.range is not None:
        return tuple(range(key.range[0], key.range[1] + 1))
    if key.values == "regions":
        return tuple(regions)
    if key.values == "hours":
        return HOURS
    return tuple(key.values)


def plan_aggregation(aggregation: Aggregation, regions: tuple[str, ...]) -> ReportPlan:
    """The immutable plan: key domains, each metric's calibrated noise, partition selection."""
    public_keys = {k.column: key_domain(k, regions) for k in aggregation.group_by if not k.private}
    metrics = tuple(_plan_metric(aggregation, m) for m in aggregation.metrics)
    selection = None
    if aggregation.partition_selection is not None:
        budget = aggregation.partition_selection
        groups = budget.max_partitions_per_subscriber or aggregation.contribution.max_groups_per_subscriber
        probabilities = mech.partition_keep_probabilities(budget.epsilon, budget.delta, groups)
        selection = Selection(budget.epsilon, budget.delta, groups, probabilities)
    return ReportPlan(aggregation=aggregation, public_keys=public_keys, metrics=metrics, selection=selection)


def release_columns(plan: ReportPlan) -> list[str]:
    columns = [*plan.group_columns, *CELL_COLUMNS]
    for metric in plan.metrics:
        for output in metric.outputs:
            columns += output_columns(output)
        columns += metric.measure.flag_columns()
    return columns


def share_column(metric_name: str) -> str:
    return f"{metric_name}_share"


def published_columns(plan: ReportPlan) -> list[str]:
    """The stored release's columns: the noised ones, then the shares computed from them."""
    shares = [share_column(m.name) for m in plan.metrics if m.metric.share_across]
    return release_columns(plan) + [column for s in shares for column in output_columns(s)]


def count_columns(plan: ReportPlan) -> list[str]:
    """Released columns that are non-negative integer counts."""
    return [o for m in plan.metrics if m.measure.is_count for o in m.outputs]
