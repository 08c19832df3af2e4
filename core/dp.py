"""From an aggregation to an immutable noise plan.

Sensitivities follow from the contribution bounds: a subscriber touches at
most G cells with at most R rows each, every value clamped to its metric's
bounds. A metric is one or more noised integer vectors ("parts"): a count,
a fixed-point sum, a sum of squares, the nodes of a quantile tree or the
bins of a histogram. Each part gets an explicit share of the metric's
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
from decimal import ROUND_HALF_EVEN

import numpy as np
from scipy.stats import norm

from core import mechanisms as mech
from core.accounting import Cost, approx_dp_cost, pure_dp_cost, total, zcdp_cost
from core.cells import CELL_COLUMNS, output_columns
from core.config import Aggregation, GroupKey, Metric, fixed_point_units
from core.mechanisms import CalibrationError, IntegerNoise

HOURS = tuple(range(24))
CONFIDENCE = 0.95
# Quantile trees over [lower, upper]: a root counting every row, 32 equal nodes under it
# and 128 equal leaves under each (4,096 leaves). All three levels are noised alike: the
# root and its 32 children are made consistent and give the total and the rank's node, and a
# node's leaves refine it only when the node holds many rows (core.quantile_tree).
# Few wide nodes near the root keep the rank's noise low.
TREE_BRANCHINGS = (32, 128)
TREE_HEIGHT = len(TREE_BRANCHINGS) + 1  # noised levels, the root's included
TREE_LEAVES = math.prod(TREE_BRANCHINGS)
TREE_BRANCHING = TREE_BRANCHINGS[0]  # the root's children, over which a rank's noise adds up


def tree_value(position: float, lower: float, upper: float, scale: str = "linear") -> float:
    """The value at `position` (0 to 1) along a quantile tree's leaves.

    linear: equal widths. log: equal ratios of 1 + (value - lower), so every leaf is the
    same relative step (for bytes in [0, 250k], 0.3% a leaf and 47% a top node) and low
    values get as fine leaves as high ones. transforms.bounding.tree_leaf_index is the
    inverse, in Spark.
    """
    if scale == "log":
        return lower + math.expm1(position * math.log1p(upper - lower))
    return lower + position * (upper - lower)


# The integer vectors each kind of metric releases noisy.
METRIC_PARTS = {
    "count_distinct_subscribers": ("value",),
    "count": ("value",),
    "sum": ("value",),
    "mean": ("count", "sum"),
    "variance": ("count", "sum", "sum_sq"),
    "quantiles": ("tree",),
    "histogram": ("bins",),
}


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

    def part(self, name: str) -> IntegerNoise:
        return dict(self.parts)[name]

    @property
    def outputs(self) -> tuple[str, ...]:
        """Released value columns (each with _noise_sd, _ci95_low, _ci95_high)."""
        if self.kind == "quantiles":
            return tuple(quantile_column(self.name, q) for q in self.metric.quantiles)
        if self.kind == "histogram":
            return tuple(f"{self.name}_b{i}" for i in range(len(self.metric.bins) - 1))
        return (self.name,)


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


def quantile_rank_sd(tree_noise_sd: float, leaves_read: bool = False) -> float:
    """Largest sd, in rows, of a quantile's rank test (rows below an edge minus q times the
    total, core.quantile_tree) at any edge between the root's children and for any q:
    with b children made consistent with the root its variance is (b + 1) / 4 - q (1 - q)
    noise variances at most. Within a node whose leaves are read, its m-leaf share adds at
    most m / 4 more."""
    variances = (TREE_BRANCHING + 1) / 4 + (TREE_BRANCHINGS[1] / 4 if leaves_read else 0)
    return tree_noise_sd * math.sqrt(variances)


def quantile_min_rows(metric: MetricPlan) -> float:
    """Rows (as the noisy tree estimates them) a cell needs for its quantiles to be placed.

    With fewer, some quantile's 95% rank band, q n +- z rank sd, reaches past both the first
    and the last row: the noisy tree cannot tell that quantile from the cell's minimum or
    maximum, and its interval would span (nearly) the whole bounds. Decided on the noisy
    total alone, so whether a cell is published does not depend on the noise of the ranks
    its intervals are built from (their coverage holds among published cells)."""
    z = float(norm.ppf(0.5 + CONFIDENCE / 2))
    hardest = min(max(q, 1 - q) for q in metric.metric.quantiles)  # the quantile nearest 1/2
    return z * quantile_rank_sd(metric.part("tree").sd) / hardest


def quantile_column(name: str, q: float) -> str:
    return f"{name}_p{round(q * 100, 4):g}".replace(".", "_")


def fixed_point_bounds(metric: Metric) -> tuple[int, int]:
    """The integer bounds of a fixed-point metric, the only ones: sensitivities are computed
    from them here, and transforms.bounding clamps every rounded value to them, so no row can
    contribute more than planned. Config requires whole bounds, so the rounding only decides
    for a Metric built without validation, and Spark clamps to whatever it decides."""
    low, high = (int(fixed_point_units(bound, metric.precision).to_integral_value(ROUND_HALF_EVEN))
                 for bound in (metric.lower, metric.upper))
    return low, high


def _per_cell_sensitivity(metric: Metric, part: str, max_rows: int) -> tuple[float, float]:
    """(L1, L2) of one subscriber's change to one cell's part, after bounding."""
    if metric.kind == "count_distinct_subscribers":
        return 1, 1
    if part in ("value", "count", "bins") and metric.kind != "sum":
        return max_rows, max_rows  # rows: in one bin each, so the bins' L1 is R too
    if part == "tree":  # every row adds 1 to one node per level, the root's included
        return max_rows * TREE_HEIGHT, max_rows * math.sqrt(TREE_HEIGHT)
    low, high = fixed_point_bounds(metric)
    per_row = {
        "value": max(abs(low), abs(high)),  # sum of fixed-point values
        "sum": high - low,  # doubled centred values lie in +-(high - low)
        "sum_sq": (high - low) ** 2,
    }[part]
    return max_rows * per_row, max_rows * per_row


def _part_noise(aggregation: Aggregation, metric: Metric, part: str, share: int) -> IntegerNoise:
    groups = aggregation.contribution.max_groups_per_subscriber
    l1_cell, l2_cell = _per_cell_sensitivity(metric, part, aggregation.contribution.max_rows_per_group)
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
    names = METRIC_PARTS[metric.kind]
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


def insufficient_column(metric_name: str) -> str:
    """A quantiles metric's flag: True where the cell had too few (noisy) rows to place them."""
    return f"{metric_name}_insufficient"


def release_columns(plan: ReportPlan) -> list[str]:
    columns = [*plan.group_columns, *CELL_COLUMNS]
    for metric in plan.metrics:
        for output in metric.outputs:
            columns += output_columns(output)
        if metric.kind == "quantiles":
            columns.append(insufficient_column(metric.name))
    return columns


def share_column(metric_name: str) -> str:
    return f"{metric_name}_share"


def published_columns(plan: ReportPlan) -> list[str]:
    """The stored release's columns: the noised ones, then the shares computed from them."""
    shares = [share_column(m.name) for m in plan.metrics if m.metric.share_across]
    return release_columns(plan) + [column for s in shares for column in output_columns(s)]


def count_columns(plan: ReportPlan) -> list[str]:
    """Released columns that are non-negative integer counts."""
    counted = ("count", "count_distinct_subscribers", "histogram")
    return [o for m in plan.metrics if m.kind in counted for o in m.outputs]
