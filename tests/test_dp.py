import math

import numpy as np
import pandas as pd
import pytest

from kr_reports.config import ReportSpec
from kr_reports.dp import (
    PlanError,
    count_columns,
    geometric_ci_half_width,
    noise_cells,
    plan_report,
    release_columns,
)

REGIONS = ("North", "South")


def _spec(**overrides) -> ReportSpec:
    base = {
        "name": "traffic",
        "source": "network_flows",
        "partner": "metro-planning",
        "purpose": "aggregate_reports",
        "policy_clause": "aggregate reports",
        "group_by": [{"column": "region", "values": "regions"}, {"column": "hour", "values": "hours"}],
        "contribution": {"max_groups_per_subscriber": 3, "max_rows_per_group": 10},
        "metrics": [
            {"name": "subscribers", "kind": "count_distinct_subscribers", "epsilon": 0.5},
            {"name": "bytes", "kind": "sum", "column": "bytes", "lower": 0, "upper": 1000,
             "epsilon": 1.0},
        ],
    }
    base.update(overrides)
    return ReportSpec.model_validate(base)


def test_sensitivity_follows_the_contribution_bounds():
    plan = plan_report(_spec(), REGIONS)
    count, total = plan.metrics
    assert (count.mechanism, count.sensitivity) == ("geometric", 3)
    assert total.sensitivity == 3 * 10 * 1000
    assert plan.epsilon == pytest.approx(1.5) and plan.delta == 0
    assert plan.cells == 2 * 24


def test_geometric_noise_spread_matches_the_mechanism(spark):
    plan = plan_report(_spec(), REGIONS)
    count = plan.metrics[0]
    cells = pd.DataFrame({"region": ["North"] * 20000, "hour": 0, "distinct_units": 10_000,
                          "bytes": 5_000_000})
    released = noise_cells(cells, plan, random_state=np.random.RandomState(3))
    noise = released["subscribers"] - 10_000
    assert abs(noise.mean()) < 4 * count.noise_sd / math.sqrt(len(noise))
    assert noise.std() == pytest.approx(count.noise_sd, rel=0.05)
    bytes_noise = released["bytes"] - 5_000_000
    assert bytes_noise.std() == pytest.approx(plan.metrics[1].noise_sd, rel=0.05)
    inside = (released["subscribers_ci95_low"] <= 10_000) & (released["subscribers_ci95_high"] >= 10_000)
    assert inside.mean() >= 0.94


def test_released_values_are_non_negative_integers_with_declared_columns():
    plan = plan_report(_spec(), REGIONS)
    cells = pd.DataFrame({"region": ["North", "South"], "hour": [0, 1], "distinct_units": [0, 1],
                          "bytes": [0, 10]})
    released = noise_cells(cells, plan)
    assert list(released.columns) == release_columns(plan)
    for column in count_columns(plan):
        assert released[column].dtype == "int64"
        assert (released[column] >= 0).all()


def test_geometric_interval_holds_its_coverage():
    for epsilon, sensitivity in [(0.1, 1), (1.0, 3), (0.5, 12000)]:
        t = geometric_ci_half_width(epsilon, sensitivity, 0.95)
        alpha = math.exp(-epsilon / sensitivity)
        def tail(k, a=alpha):
            return 2 * a ** (k + 1) / (1 + a)

        assert tail(t) <= 0.05 < tail(t - 1)


def test_approximate_dp_uses_the_discrete_gaussian_on_l2_sensitivity():
    spec = _spec(delta=1e-6, metrics=[
        {"name": "subscribers", "kind": "count_distinct_subscribers", "epsilon": 1.0}])
    metric = plan_report(spec, REGIONS).metrics[0]
    assert metric.mechanism == "discrete_gaussian"
    assert metric.sensitivity == math.ceil(math.sqrt(3))
    assert metric.delta == pytest.approx(1e-6)


def test_unsamplable_discrete_gaussian_is_refused_at_plan_time():
    with pytest.raises(PlanError, match="bytes"):
        plan_report(_spec(delta=1e-6), REGIONS)


def test_sum_metric_needs_bounds():
    with pytest.raises(ValueError, match="needs column, lower and upper"):
        _spec(metrics=[{"name": "b", "kind": "sum", "column": "bytes", "epsilon": 1.0}])
