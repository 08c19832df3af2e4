"""The quantile tree on its own: exact without noise, where its noise goes, what it spends,
and whether its 95% intervals hold the truth 95% of the time at the catalog's noise.

The tree is a noisy root count, 32 nodes and 4,096 leaves over [lower, upper]
(core.noise_plan); NoisyTree places quantiles in it lazily (core.quantile_tree). Fake
samplers stand in for the noise where a test needs to place it.
"""


import numpy as np
import pytest
from specs import report_spec

from core import mechanisms as mech
from core.accounting import Cost
from core.noise_plan import (
    TREE_BRANCHINGS,
    TREE_HEIGHT,
    TREE_LEAVES,
    plan_aggregation,
    quantile_min_rows,
    quantile_rank_sd,
)
from core.noisy_cells import NoisyTree, is_insufficient

NODES = TREE_BRANCHINGS[0]
LEAVES_PER_NODE = TREE_LEAVES // NODES


class Exact:
    """No noise: every node reads its true count."""

    def randomise(self, value):
        return value


class EmptyNodesRead:
    """Every empty node reads `phantom` rows, like positive noise; others are exact."""

    def __init__(self, phantom):
        self.phantom = phantom

    def randomise(self, value):
        return value + self.phantom if value == 0 else value


class SignedNoise:
    """Empty nodes read +phantom and -phantom in turn (noise that adds up to nothing); others exact."""

    def __init__(self, phantom):
        self.phantom, self.draws = phantom, 0

    def randomise(self, value):
        if value:
            return value
        self.draws += 1
        return self.phantom if self.draws % 2 else -self.phantom


class Counting(Exact):
    def __init__(self):
        self.draws = 0

    def randomise(self, value):
        self.draws += 1
        return value


def _leaves(positions) -> np.ndarray:
    return np.bincount(np.asarray(positions), minlength=TREE_LEAVES)


def test_without_noise_the_walk_returns_the_leaf_of_the_exact_quantile():
    rng = np.random.RandomState(0)
    rows = rng.randint(0, TREE_LEAVES, size=500)
    tree = NoisyTree(_leaves(rows), Exact(), noise_sd=0.0)
    for q in (np.arange(1, 100) + 0.3) / 100:  # ranks q * 500 between two rows: one exact row each
        position = tree.quantile(q, 0, TREE_LEAVES)  # bounds in leaves: the value is a leaf position
        exact_leaf = np.quantile(rows, q, method="inverted_cdf")
        assert exact_leaf <= position <= exact_leaf + 1, q


def test_without_noise_a_rank_between_two_rows_is_the_same_from_either_end():
    values = np.arange(10, 101, 10)  # rows at 10, 20, ..., 100 over [0, 1000]
    tree = NoisyTree(_leaves((values / 1000 * TREE_LEAVES).astype(int)), Exact(), noise_sd=0.0)
    leaf = 1000 / TREE_LEAVES
    # q = 0.5 is counted from below, q = 0.9 from above: both stop just above the row below the gap.
    assert tree.quantile(0.5, 0, 1000) == pytest.approx(50, abs=leaf)
    assert tree.quantile(0.9, 0, 1000) == pytest.approx(90, abs=leaf)


def test_an_empty_tree_places_no_quantile():
    tree = NoisyTree(np.zeros(TREE_LEAVES, dtype="int64"), Exact(), noise_sd=3.0)
    assert tree.place(0.5) is None and np.isnan(tree.quantile(0.5, 100, 300))


def test_a_cell_needs_the_rows_that_keep_the_medians_rank_band_inside_them():
    metric = _flow_bytes()  # p50 and p90
    rank_sd = quantile_rank_sd(metric.part("tree").sd)
    needed = quantile_min_rows(metric)
    assert 0.5 * needed == pytest.approx(1.959964 * rank_sd)  # q n - z sd = 0 and q n + z sd = n
    noise, rng = metric.part("tree"), np.random.RandomState(5)
    values = SHAPES["lognormal, sigma 1"](rng, 50_000)
    for rows, expected in ((0, True), (2_000, True), (50_000, False)):
        tree = NoisyTree(_cell(metric, values[:rows]), noise.sampler(rng), noise.sd)
        assert is_insufficient(tree, metric) is expected, rows
    exact = NoisyTree(np.zeros(TREE_LEAVES, dtype="int64"), Exact(), 0.0)
    assert is_insufficient(exact, _noiseless(metric))  # no noise, no rows: still nothing to place


def _noiseless(metric):
    return type(metric)(metric.metric, (("tree", mech.geometric(1e9, 1)),), 1e9, 0.0, 0.0, Cost())


def test_noise_below_zero_is_kept_so_a_sparse_tail_adds_no_phantom_rows():
    # 100 rows low in the range; the 29 empty nodes above read +8 and -8 in turn. Clamped at
    # 0 they would add 15 x 8 = 120 phantom rows above the 10 the 90th percentile counts.
    rows = [2 * LEAVES_PER_NODE + 5] * 50 + [2 * LEAVES_PER_NODE + 9] * 50
    tree = NoisyTree(_leaves(rows), SignedNoise(8), noise_sd=0.0)
    assert tree.quantile(0.9, 0, TREE_LEAVES) == pytest.approx(2 * LEAVES_PER_NODE + 9.5, abs=0.5)


def test_without_noise_the_interval_is_the_leaf_around_the_quantile():
    rows = np.random.RandomState(2).randint(0, TREE_LEAVES, size=300)
    tree = NoisyTree(_leaves(rows), Exact(), noise_sd=0.0)
    for q in (0.103, 0.503, 0.903):  # ranks between two rows: one exact row each
        placed = tree.place(q)
        leaf = np.quantile(rows, q, method="inverted_cdf")
        assert (placed.low, placed.high) == (leaf, leaf + 1) and leaf <= placed.position <= leaf + 1, q


def test_the_rank_is_a_share_of_the_root_count_not_of_the_childrens_noisy_sum():
    # 100 rows in the first leaf; 31 empty nodes read 10 phantom rows each (310 in all).
    tree = NoisyTree(_leaves([0] * 100), EmptyNodesRead(10), noise_sd=0.0)
    # Half of the root's 100 rows lie in the first node; half of 410 would reach the 12th node.
    assert tree.quantile(0.5, 0, TREE_LEAVES) < 1


@pytest.mark.parametrize(("leaf", "q"), [(TREE_LEAVES - 1, 0.9), (0, 0.1)])
def test_phantom_rows_between_the_far_end_and_the_rows_do_not_move_a_quantile(leaf, q):
    # All rows at one end; every empty node reads 10 rows. Counted from the nearer end the
    # rank meets the rows before any phantom row; counted from the far end it would cross
    # 31 phantom nodes (310 rows) before the 100 real ones.
    tree = NoisyTree(_leaves([leaf] * 100), EmptyNodesRead(10), noise_sd=0.0)
    assert tree.quantile(q, 0, TREE_LEAVES) == pytest.approx(leaf + 0.5, abs=0.5)


def test_leaves_are_read_only_in_a_node_holding_more_rows_than_their_noise():
    noise_sd = 1.0  # a node's leaves are read from LEAVES_PER_NODE * noise_sd rows on
    few, many = Counting(), Counting()
    NoisyTree(_leaves([5] * (LEAVES_PER_NODE - 1)), few, noise_sd).quantile(0.5, 0, 1)
    NoisyTree(_leaves([5] * LEAVES_PER_NODE), many, noise_sd).quantile(0.5, 0, 1)
    assert few.draws == 1 + NODES  # the root and its children, noised once each
    assert many.draws == 1 + NODES + LEAVES_PER_NODE


def test_a_node_whose_leaves_are_not_read_is_interpolated_linearly():
    rows = [LEAVES_PER_NODE + 3] * 10  # ten rows in the second node, too few to read its leaves
    tree = NoisyTree(_leaves(rows), Exact(), noise_sd=1.0)
    assert tree.quantile(0.5, 0, TREE_LEAVES) == pytest.approx(LEAVES_PER_NODE * 1.5)


def test_each_row_moves_one_node_per_noised_level_as_the_plan_charges():
    spec = report_spec({
        "name": "t", "source": "network_flows", "partner": "p", "purpose": "aggregate_reports",
        "policy_clause": "c", "group_by": [{"column": "hour", "values": "hours"}],
        "contribution": {"max_groups_per_subscriber": 6, "max_rows_per_group": 8},
        "metrics": [{"name": "q", "kind": "quantiles", "column": "bytes", "lower": 0, "upper": 1,
                     "quantiles": [0.5], "epsilon": 0.3}],
    })
    noise = plan_aggregation(spec.aggregation, ()).metrics[0].part("tree")
    assert noise.sensitivity == 6 * 8 * TREE_HEIGHT
    base = np.random.RandomState(1).randint(0, 50, TREE_LEAVES)
    for leaf in (0, 1234, TREE_LEAVES - 1):
        plus_one = base.copy()
        plus_one[leaf] += 1
        levels = NoisyTree(base, Exact(), 0.0).levels, NoisyTree(plus_one, Exact(), 0.0).levels
        assert len(levels[0]) == TREE_HEIGHT
        assert [int(np.abs(a - b).sum()) for a, b in zip(*levels, strict=True)] == [1] * TREE_HEIGHT


def test_the_noisy_tree_spends_no_more_than_its_epsilon():
    """Neighbours: a cell, and the cell plus one subscriber's R rows in one leaf."""
    from privacy_audit import audit_epsilon

    epsilon, rows_per_cell, leaf = 1.0, 2, 1234
    noise = mech.geometric(epsilon, rows_per_cell * TREE_HEIGHT)  # one cell per subscriber
    base = np.full(TREE_LEAVES, 3, dtype="int64")
    neighbour = base.copy()
    neighbour[leaf] += rows_per_cell

    def release(leaves):
        def draw(random_state):  # the three nodes the added rows move; all others read alike
            tree = NoisyTree(leaves, noise.sampler(random_state), noise.sd)
            return np.array([tree.count(0, 0), tree.count(1, leaf // LEAVES_PER_NODE), tree.count(2, leaf)])
        return draw

    result = audit_epsilon(release(base), release(neighbour), runs=10_000, confidence=0.99)
    assert result.epsilon_lower_bound <= epsilon, result.summary()
    assert result.epsilon_point > 0.5 * epsilon  # the audit sees most of the loss: it has power


# ---- at the catalog's noise ---------------------------------------------------------------

SHAPES = {  # a cell's values before clamping to the metric's bounds
    "lognormal, sigma 1": lambda rng, n: rng.lognormal(np.log(24_000), 1.0, n),
    "lognormal, sigma 2": lambda rng, n: rng.lognormal(np.log(8_000), 2.0, n),
    "exponential": lambda rng, n: rng.exponential(40_000, n),
    "uniform": lambda rng, n: rng.uniform(0, 100_000, n),
}
PUBLISHED = 400  # intervals per shape and size: enough to tell 93% coverage from 84%


def _flow_bytes():
    """Flow bytes' median and 90th percentile as the network report had them before the catalog
    was re-sized for daily releases: [0, 250k], epsilon 0.3, 6 cells x 8 rows, pure DP. The
    tests below need a tree whose cells publish at tens of thousands of rows; the shipped
    report's tree (epsilon 0.05 a day) needs more rows than they can afford to draw."""
    spec = report_spec({
        "name": "flows", "source": "network_flows", "partner": "p", "purpose": "aggregate_reports",
        "policy_clause": "c", "group_by": [{"column": "hour", "values": "hours"}],
        "contribution": {"max_groups_per_subscriber": 6, "max_rows_per_group": 8},
        "metrics": [{"name": "flow_bytes", "kind": "quantiles", "column": "bytes", "lower": 0,
                     "upper": 250_000, "quantiles": [0.5, 0.9], "epsilon": 0.3}],
    })
    return plan_aggregation(spec.aggregation, ()).metrics[0]


def _cell(metric, values: np.ndarray) -> np.ndarray:
    """Leaf counts of a cell's clamped values (transforms.bounding.tree_leaf_index, linear)."""
    m = metric.metric
    share = (np.clip(values, m.lower, m.upper) - m.lower) / (m.upper - m.lower)
    return _leaves(np.minimum(share * TREE_LEAVES, TREE_LEAVES - 1).astype(int))


def _published(metric, leaves: np.ndarray, rng, count: int) -> list[list]:
    """Noise draws on one cell until `count` are published: each its quantiles' (value, low, high)."""
    m, noise = metric.metric, metric.part("tree")
    released = []
    for _ in range(5 * count):
        tree = NoisyTree(leaves, noise.sampler(rng), noise.sd)
        if not is_insufficient(tree, metric):
            released.append([tree.place(q).values(m.lower, m.upper) for q in m.quantiles])
        if len(released) == count:
            break
    return released


@pytest.mark.parametrize("rows", [8_000, 50_000])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_intervals_hold_the_true_quantile_at_least_93_percent_of_the_time(shape, rows):
    """The network report's quantiles (bytes in [0, 250k], epsilon 0.3, 6 cells x 8 rows, pure
    DP) on one cell, noised until 400 draws are published. Coverage is over the noise; the
    truth is the cell's. 8,000 rows is just over the rows a cell needs (about 7,600), so about
    a quarter of its draws are flagged insufficient: coverage holds among those published.

    With 400 intervals, 93% coverage or more is observed under 93% with probability under 1%
    (at 95%, about 1 in 10^5); an interval that covers 84% of the time (the walk that read
    noisy counts clamped at 0, on lognormal cells of 50,000 rows) passes with probability
    about 1 in 10^6.
    """
    metric = _flow_bytes()
    rng = np.random.RandomState(rows)
    values = np.clip(SHAPES[shape](rng, rows), metric.metric.lower, metric.metric.upper)
    released = np.array(_published(metric, _cell(metric, values), rng, PUBLISHED))
    assert len(released) == PUBLISHED, "too few draws published to measure coverage"
    truth = np.quantile(values, metric.metric.quantiles)
    covered = (released[:, :, 1] <= truth) & (truth <= released[:, :, 2])
    assert (covered.mean(axis=0) >= 0.93).all(), dict(zip(metric.outputs, covered.mean(axis=0), strict=True))


def test_a_sparse_tail_no_longer_pulls_the_90th_percentile_up():
    """50,000 lognormal rows (sigma 1) at the network report's noise: the walk that read noisy
    counts clamped at 0 put the 90th percentile 48% high on average (every empty node of the
    tail added phantom rows); unbiased counts land within about 20%, the median within 6%."""
    metric = _flow_bytes()
    rng = np.random.RandomState(11)
    values = np.clip(SHAPES["lognormal, sigma 1"](rng, 50_000), 0, 250_000)
    released = np.array(_published(metric, _cell(metric, values), rng, 100))
    errors = released[:, :, 0] / np.quantile(values, metric.metric.quantiles) - 1
    assert (np.abs(errors).mean(axis=0) < [0.08, 0.25]).all(), np.abs(errors).mean(axis=0)
    assert abs(errors[:, 1].mean()) < 0.15  # the pull: a mean error of +48% before


# ---- the log scale ------------------------------------------------------------------------


@pytest.mark.parametrize("scale", ["linear", "log"])
def test_spark_leaves_and_tree_values_are_inverses(spark, scale):
    from pyspark.sql import functions as F

    from core.noise_plan import tree_value
    from transforms.bounding import tree_leaf_index

    values = [0.0, 0.4, 1.0, 7.5, 59.0, 600.0, 3599.9, 3600.0]
    df = spark.createDataFrame([(v,) for v in values], "v double")
    leaves = [r["leaf"] for r in df.select(
        tree_leaf_index(F.col("v"), 0.0, 3600.0, TREE_LEAVES, scale).alias("leaf")).collect()]
    for value, leaf in zip(values, leaves, strict=True):
        low, high = (tree_value(edge / TREE_LEAVES, 0.0, 3600.0, scale) for edge in (leaf, leaf + 1))
        assert low <= value * (1 + 1e-12) and (value < high or leaf == TREE_LEAVES - 1), (value, leaf)


def test_the_log_scale_resolves_values_bunched_low_that_linear_leaves_cannot():
    """Values between 0.5 and 2 in [0, 3600] (seconds, say): linear leaves are 0.88 wide,
    log ones 0.2% of 1 + value."""
    from core.noise_plan import tree_value

    values = np.random.RandomState(1).uniform(0.5, 2, size=2000)
    errors = {}
    for scale in ("linear", "log"):
        inner_edges = [tree_value(i / TREE_LEAVES, 0, 3600, scale) for i in range(1, TREE_LEAVES)]
        positions = np.searchsorted(inner_edges, values, side="right")
        tree = NoisyTree(_leaves(positions), Exact(), noise_sd=0.0)
        released = np.array([tree.quantile(q, 0, 3600, scale) for q in (0.1, 0.5, 0.9)])
        errors[scale] = np.max(np.abs(released / np.quantile(values, [0.1, 0.5, 0.9]) - 1))
    assert errors["log"] < 0.01 and errors["linear"] > 0.05, errors


def test_a_scale_other_than_linear_is_for_quantiles_only():
    from pydantic import ValidationError

    from core.config import Metric

    Metric(name="d", kind="quantiles", column="d", lower=0, upper=10, quantiles=(0.5,), epsilon=1,
           quantile_scale="log")
    with pytest.raises(ValidationError, match="quantile_scale applies to quantiles metrics only"):
        Metric(name="s", kind="sum", column="d", lower=0, upper=10, epsilon=1, quantile_scale="log")
    with pytest.raises(ValidationError, match="quantile_scale"):
        Metric(name="d", kind="quantiles", column="d", lower=0, upper=10, quantiles=(0.5,), epsilon=1,
               quantile_scale="sqrt")
