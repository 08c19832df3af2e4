"""Empirical privacy audits of the release front door, for every metric kind and for partition selection.

Each audit releases a dataset D and its neighbour D' (D plus one subscriber contributing the
maximum) through `Releaser.release`, exactly as a partner's report is released: plan, budget
check, contribution bounding and aggregation in Spark, charge, noise, post-processing, store.
It then bounds the privacy loss of the published values from below (tests/privacy_audit.py)
and asserts that the bound stays within the epsilon the plan claims.

Replicas make this affordable: D holds R copies of a small base population, each under its own
value of the public replica keys and with its own subscribers; D' adds one maximal subscriber
to every copy. Noise is drawn independently per cell, so one release of D yields R independent
draws of one copy's published vector, and one release of D' the same for D'.

The added subscriber's values sit exactly half-way between fixed-point steps, beyond the
bounds (2.55 and -0.05 at precision 1 for [0, 2.5]; 2550 at precision -2 for [0, 2500]; 8500
at precision -3 for [-8000, 8000]), next to values at the bounds: a rounding that disagreed
with the clamping would let its contribution exceed the planned sensitivity.

Negative controls: the same audit, on the same data, through the same front door, with the
sensitivity understated by monkeypatching the mechanism constructors the plan calls (or, for
partition selection, its release probabilities), must refute the claim. They show that each audit has
the power to fail.

Seeds are fixed, so the results are reproducible; the margins were checked on other seeds too
(see the figures above CASES).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
from privacy_audit import AuditResult, audit_samples
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from releasing import fresh_period, open_releaser
from specs import report_spec

from core import mechanisms
from core.config import Aggregation
from stages.releaser import Release

CONFIDENCE = 0.99
# The replica index is split over two public keys, `block` and `replica`: the front door filters
# every public key with an `isin` over its whole domain, and one key of 10,000 values costs
# seconds of Python-to-JVM calls per release; two keys of 100 values cost nothing.
PER_BLOCK = 100
DELIVERY = {"partner": "audit", "purpose": "aggregate_reports", "policy_clause": "c"}

Understate = Callable[[pytest.MonkeyPatch], None]


def understated_sensitivity(factor: float) -> Understate:
    """Every noise mechanism the plan builds is calibrated to its sensitivity divided by `factor`."""

    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        geometric = mechanisms.geometric
        gaussian = mechanisms.discrete_gaussian
        zcdp_gaussian = mechanisms.zcdp_discrete_gaussian
        monkeypatch.setattr(mechanisms, "geometric",
                            lambda epsilon, l1, *what: geometric(epsilon, l1 / factor, *what))
        monkeypatch.setattr(mechanisms, "discrete_gaussian",
                            lambda epsilon, delta, l2, what: gaussian(epsilon, delta, l2 / factor, what))
        monkeypatch.setattr(mechanisms, "zcdp_discrete_gaussian",
                            lambda rho, l2, delta, what: zcdp_gaussian(rho, l2 / factor, delta, what))

    return patch


def understated_selection(delta: float) -> Understate:
    """Partition selection's release probabilities computed for a far larger `delta`."""

    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        keep = mechanisms.partition_keep_probabilities
        monkeypatch.setattr(mechanisms, "partition_keep_probabilities",
                            lambda epsilon, _delta, groups: keep(epsilon, delta, groups))

    return patch


@dataclass(frozen=True)
class Scenario:
    """Neighbouring datasets, one replica's rows at a time, and the aggregation released on both.

    `base`: one replica's rows of D (`person` names a subscriber within the replica). `extra`: the
    added subscriber's rows in every replica. A `domain` column is a private key, made
    replica-specific. `keys`: the aggregation's group keys after the replica keys (with
    `replica_keys` False, no replica keys: private keys carry the replica in their values).
    """

    name: str
    schema: str
    base: tuple[tuple, ...]
    extra: tuple[tuple, ...]
    replicas: int
    keys: tuple[dict, ...]
    contribution: dict
    metrics: tuple[dict, ...]
    understate: Understate
    replica_keys: bool = True
    settings: dict = field(default_factory=dict)  # accounting, delta, partition_selection

    @property
    def aggregation(self) -> Aggregation:
        replica_keys = [{"column": "block", "range": [0, self.replicas // PER_BLOCK - 1]},
                        {"column": "replica", "range": [0, PER_BLOCK - 1]}] if self.replica_keys else []
        flat = {"name": f"audit-{self.name}", "source": "network_flows", **DELIVERY,
                "group_by": [*replica_keys, *self.keys], "contribution": self.contribution,
                "metrics": list(self.metrics), **self.settings}
        return report_spec(flat).aggregation

    def replica_ids(self) -> list[str]:
        return [f"{i // PER_BLOCK}-{i % PER_BLOCK}" for i in range(self.replicas)]


def replicated(spark, scenario: Scenario, rows: tuple[tuple, ...]) -> DataFrame:
    """`rows` once per replica, each copy with its own subscribers (and private key values)."""
    one = spark.createDataFrame(list(rows), scenario.schema)
    grid = spark.range(scenario.replicas).select(
        F.floor(F.col("id") / PER_BLOCK).alias("block"), (F.col("id") % PER_BLOCK).alias("replica"))
    replica_id = F.concat_ws("-", F.col("block").cast("string"), F.col("replica").cast("string"))
    own = {"subscriber": F.concat_ws("/", replica_id, F.col("person"))}
    if "domain" in one.columns:
        own["domain"] = F.concat_ws(":", replica_id, F.col("domain"))
    return one.crossJoin(grid).withColumns(own).drop("person")


@dataclass(frozen=True)
class Neighbours:
    d: Release
    d_prime: Release


def release_neighbours(spark, folder: Path, scenario: Scenario, understated: bool) -> Neighbours:
    """D and D' through the front door, each with its own seeded noise, ledger and store."""
    aggregation = scenario.aggregation
    released = []
    for which, rows in (("d", scenario.base), ("d_prime", scenario.base + scenario.extra)):
        seed = zlib.crc32(f"{scenario.name}/{understated}/{which}".encode())
        releaser = open_releaser(folder / which, random_state=np.random.RandomState(seed))
        release = releaser.release(replicated(spark, scenario, rows), aggregation, fresh_period())
        assert not release.reused
        released.append(release)
    return Neighbours(*released)


@pytest.fixture(scope="module")
def neighbours(spark, tmp_path_factory) -> Callable[[Scenario, bool], Neighbours]:
    """Released neighbours per scenario, calibrated or understated, each made once per module."""
    made: dict[tuple[str, bool], Neighbours] = {}

    def get(scenario: Scenario, understated: bool = False) -> Neighbours:
        key = (scenario.name, understated)
        if key not in made:
            calibration = "understated" if understated else "calibrated"
            folder = tmp_path_factory.mktemp(f"{scenario.name}-{calibration}")
            with pytest.MonkeyPatch.context() as monkeypatch:
                if understated:
                    scenario.understate(monkeypatch)
                made[key] = release_neighbours(spark, folder, scenario, understated)
        return made[key]

    return get


# ---------------------------------------------------------------- scenarios

# Two cells per replica (hours 0 and 1), both at the maximum: up to 2 cells, 3 rows in each.
# Base: 6 subscribers with 3 rows in each hour. The added subscriber has 6 rows per hour (3 are
# kept), at and half-way beyond the upper bounds. Understated twofold.
COUNTS_AND_SUMS = Scenario(
    name="counts-sums",
    schema="person string, hour int, value double, bytes double",
    base=tuple((f"s{i}", h, (0.5, 1.0, 1.5, 2.0)[(i + j) % 4], 1000.0 * ((i + j) % 3))
               for i in range(6) for h in (0, 1) for j in range(3)),
    extra=tuple(("max", h, value, nbytes)
                for h in (0, 1) for value, nbytes in [(2.55, 2550.0), (2.5, 2500.0)] * 3),
    replicas=10_000,
    keys=({"column": "hour", "range": [0, 1]},),
    contribution={"max_groups_per_subscriber": 2, "max_rows_per_group": 3},
    metrics=(
        {"name": "flows", "kind": "count", "epsilon": 1.0},
        {"name": "subs", "kind": "count_distinct_subscribers", "epsilon": 1.0},
        {"name": "total", "kind": "sum", "column": "value", "lower": 0, "upper": 2.5, "precision": 1,
         "epsilon": 1.0},
        {"name": "total_bytes", "kind": "sum", "column": "bytes", "lower": 0, "upper": 2500, "precision": -2,
         "epsilon": 1.0},
        {"name": "bins", "kind": "histogram", "column": "value", "bins": [0, 1, 2, 2.5], "epsilon": 1.0},
    ),
    understate=understated_sensitivity(2),
)

# Means and variances are ratios of noisy parts (count, sum, sum of squares), so the audit sees
# them best in one cell with many rows relative to the count's noise. Base: 20 subscribers with
# 2 rows each at high values; the added subscriber sits at (and half-way beyond) the lower
# bound, so that its count, sum and square all move the mean (and the variance) the same way.
# Understated threefold: twofold leaves a variance's loss, spread over three parts and read
# through a ratio, within reach of its claim.
MEANS_AND_VARIANCES = Scenario(
    name="means-variances",
    schema="person string, value double",
    base=tuple((f"s{i}", (1.5, 2.0, 2.5)[(i + j) % 3]) for i in range(20) for j in range(2)),
    extra=(("max", -0.05), ("max", 0.0)) * 3,
    replicas=10_000,
    keys=(),
    contribution={"max_groups_per_subscriber": 1, "max_rows_per_group": 2},
    metrics=(
        {"name": "avg", "kind": "mean", "column": "value", "lower": 0, "upper": 2.5, "precision": 1,
         "epsilon": 1.0},
        {"name": "spread", "kind": "variance", "column": "value", "lower": 0, "upper": 2.5, "precision": 1,
         "epsilon": 1.0},
    ),
    understate=understated_sensitivity(3),
)

# A quantile tree spends a third of its budget on each level, and a median reads the root and
# the root's children on the way to its rank. Half the base rows sit at each bound, so the
# median is on the edge between them, and the added subscriber's rows (2.55, rounded and
# clamped to 2.5) tip it upwards. The cell holds more rows than the tree needs to place a
# median at this noise (about 95), so most cells publish it; a withheld median is an output
# too. Understated ninefold (sensitivity 1: both the rows and the levels forgotten): threefold
# need not exceed the claim, as the added rows move only part of what the median reads.
QUANTILES = Scenario(
    name="quantiles",
    schema="person string, value double",
    base=tuple((f"s{i}", 0.0 if i % 2 else 2.5) for i in range(36) for _ in range(3)),
    extra=(("max", 2.55), ("max", 2.5)) * 3,
    replicas=8_000,
    keys=(),
    contribution={"max_groups_per_subscriber": 1, "max_rows_per_group": 3},
    metrics=({"name": "q", "kind": "quantiles", "column": "value", "lower": 0, "upper": 2.5,
              "quantiles": [0.5], "epsilon": 1.5},),
    understate=understated_sensitivity(9),
)


def gaussian_sum(accounting: str, budget: dict) -> Scenario:
    """A sum under discrete Gaussian noise: bounds on both sides of 0, so no clamping at 0 hides
    the added subscriber. Understated fourfold: a Gaussian's (epsilon, delta) is loose for the
    threshold events an audit can see, so twofold stays within the claim."""
    return Scenario(
        name=f"gaussian-{accounting}",
        schema="person string, bytes double",
        base=(("s0", 0.0),),
        extra=(("max", 8500.0), ("max", 8000.0), ("max", 8500.0)),
        replicas=20_000,
        keys=(),
        contribution={"max_groups_per_subscriber": 1, "max_rows_per_group": 1},
        metrics=({"name": "total", "kind": "sum", "column": "bytes", "lower": -8000, "upper": 8000,
                  "precision": -3, **budget},),
        understate=understated_sensitivity(4),
        settings={"accounting": accounting, "delta": 1e-6},
    )


APPROX_DP = gaussian_sum("approx_dp", {"epsilon": 1.0})
ZCDP = gaussian_sum("zcdp", {"rho": 0.02})  # (epsilon 1.07, delta 1e-6)

# Partition selection (truncated geometric): private keys only, the replica in their values. The
# added subscriber joins the replica's `shared` key, whose n subscribers put it where the release
# probability still grows by e^(epsilon / 2) a subscriber (one of the subscriber's two partitions):
# the last n whose next step stays at or under 1/2. It also brings its `own` key, absent from D,
# released with probability delta / 2 at most. Computed for a delta of 0.2, `own` is released
# one time in ten: far more than the claimed delta allows.
SELECTION_BUDGET = {"epsilon": 2.0, "delta": 1e-5}
_KEEP = mechanisms.partition_keep_probabilities(
    SELECTION_BUDGET["epsilon"], SELECTION_BUDGET["delta"], max_partitions=2)
SHARED = max(n for n in range(len(_KEEP) - 1) if _KEEP[n + 1] <= 0.5)
SELECTION = Scenario(
    name="selection",
    schema="person string, domain string",
    base=tuple((f"s{i}", "shared") for i in range(SHARED)),
    extra=(("max", "shared"), ("max", "own")),
    replicas=10_000,
    keys=({"column": "domain", "private": True},),
    contribution={"max_groups_per_subscriber": 2, "max_rows_per_group": 1},
    metrics=({"name": "subs", "kind": "count_distinct_subscribers", "epsilon": 1.0},),
    understate=understated_selection(0.2),
    replica_keys=False,
    settings={"partition_selection": SELECTION_BUDGET},
)

# The same, with the selection's own bound: a subscriber counts in 1 of its 2 keys for the
# selection (per-key budget epsilon, not epsilon / 2), while the released values count both.
NARROW_BUDGET = {**SELECTION_BUDGET, "max_partitions_per_subscriber": 1}
_NARROW_KEEP = mechanisms.partition_keep_probabilities(
    SELECTION_BUDGET["epsilon"], SELECTION_BUDGET["delta"], max_partitions=1)
NARROW_SHARED = max(n for n in range(len(_NARROW_KEEP) - 1) if _NARROW_KEEP[n + 1] <= 0.5)
SELECTION_NARROW = replace(
    SELECTION, name="selection-narrow",
    base=tuple((f"s{i}", "shared") for i in range(NARROW_SHARED)),
    settings={"partition_selection": NARROW_BUDGET},
)


# ---------------------------------------------------------------- what is audited


def published(release: Release, scenario: Scenario, columns: Sequence[str],
              withheld: float | None = None) -> np.ndarray:
    """(replicas, cells x columns): the published values, one replica's cells in key order per row.

    `withheld`: the number standing for a value the release withholds (a quantile of a cell too
    small to place it is null): whether a value is published is part of what the release shows.
    """
    table = release.table.sort_values(list(scenario.aggregation.group_columns), kind="stable")
    values = table[list(columns)].to_numpy(dtype="float64")
    if withheld is not None:
        values = np.where(np.isnan(values), withheld, values)
    assert len(table) % scenario.replicas == 0 and not np.isnan(values).any()
    return values.reshape(scenario.replicas, -1)


def selected(release: Release, scenario: Scenario) -> np.ndarray:
    """(replicas, 2): whether each replica's `shared` and `own` private keys were released."""
    released = set(release.table["domain"])
    return np.array([[f"{r}:shared" in released, f"{r}:own" in released] for r in scenario.replica_ids()],
                    dtype="float64")


@dataclass(frozen=True)
class Case:
    """One audited output: a metric's published columns (or the selected keys) and its claim."""

    id: str
    scenario: Scenario
    metric: str | None  # None: partition selection
    power: float  # the point estimate must exceed this share of the claimed epsilon

    def claim(self, release: Release) -> tuple[float, float]:
        """(epsilon, delta) the plan claims for what is audited, as the release records it.

        Metrics in one release have independent noise: each is audited against its own share.
        """
        record = release.record
        if self.metric is None:
            return record.partition_selection.epsilon, record.partition_selection.delta
        if record.accounting == "zcdp":  # one metric: the release's conversion is the metric's
            assert len(record.metrics) == 1
            return record.epsilon, record.delta
        metric = record.metric(self.metric)
        return metric.epsilon, metric.delta

    def audit(self, pair: Neighbours) -> tuple[AuditResult, float]:
        epsilon, delta = self.claim(pair.d)
        assert self.claim(pair.d_prime) == (epsilon, delta)
        if self.metric is None:
            samples = [selected(r, self.scenario) for r in (pair.d, pair.d_prime)]
        else:
            metric = pair.d.record.metric(self.metric)
            withheld = -1.0 if metric.kind == "quantiles" else None  # below every bound audited
            samples = [published(r, self.scenario, metric.outputs, withheld)
                       for r in (pair.d, pair.d_prime)]
        return audit_samples(*samples, CONFIDENCE, delta=delta), epsilon


# Each case's power: the point estimate on the calibrated release must exceed this share of its
# claim. Seen over three sets of seeds (share of the claim): counts, sums and the histogram
# 0.7-1.2, mean 0.7-0.8; variance 0.45-0.6 (a ratio of three noisy parts); quantile 0.3 (about a
# third of the tree's budget, through an interpolation); Gaussians 0.3 (their (epsilon, delta)
# is loose for the threshold events an audit sees); selection 0.5 (one of the subscriber's two
# keys). Understated, the lower bounds exceeded the claims by 0.24 or more (count_distinct at
# twofold the closest), by 0.3 for the Gaussians and far more for quantiles and selection.
CASES = [
    Case("count", COUNTS_AND_SUMS, "flows", 0.5),
    Case("count_distinct_subscribers", COUNTS_AND_SUMS, "subs", 0.5),
    Case("sum", COUNTS_AND_SUMS, "total", 0.5),
    Case("sum-precision-minus-2", COUNTS_AND_SUMS, "total_bytes", 0.5),
    Case("histogram", COUNTS_AND_SUMS, "bins", 0.5),
    Case("mean", MEANS_AND_VARIANCES, "avg", 0.5),
    Case("variance", MEANS_AND_VARIANCES, "spread", 0.3),
    Case("quantiles", QUANTILES, "q", 0.15),
    Case("sum-approx_dp", APPROX_DP, "total", 0.2),
    Case("sum-zcdp", ZCDP, "total", 0.2),
    Case("partition-selection", SELECTION, None, 0.4),
    Case("partition-selection-own-bound", SELECTION_NARROW, None, 0.2),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_release_through_the_front_door_spends_no_more_than_it_claims(case, neighbours):
    result, epsilon = case.audit(neighbours(case.scenario))
    assert math.isfinite(epsilon) and epsilon > 0
    assert result.epsilon_lower_bound <= epsilon, result.summary()
    assert result.epsilon_point > case.power * epsilon, result.summary()  # not vacuous: it has power


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_same_audit_refutes_a_release_whose_calibration_is_understated(case, neighbours):
    result, epsilon = case.audit(neighbours(case.scenario, understated=True))
    assert result.epsilon_lower_bound > epsilon, result.summary()
