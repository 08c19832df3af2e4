import math

import pytest
from specs import report_spec

from core import mechanisms
from core.config import Metric, ReportSpec
from core.noise_plan import (
    TREE_HEIGHT,
    PlanError,
    count_columns,
    fixed_point_bounds,
    plan_aggregation,
    quantile_column,
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
            {"name": "bytes", "kind": "sum", "column": "bytes", "lower": 0, "upper": 1000, "epsilon": 1.0},
        ],
    }
    base.update(overrides)
    return report_spec(base)


ALL_KINDS = [
    {"name": "flows", "kind": "count", "epsilon": 1.0},
    {"name": "avg", "kind": "mean", "column": "bytes", "lower": -50, "upper": 150, "epsilon": 1.0},
    {"name": "var", "kind": "variance", "column": "bytes", "lower": 0, "upper": 100, "epsilon": 0.9},
    {"name": "q", "kind": "quantiles", "column": "bytes", "lower": 0, "upper": 1000,
     "quantiles": [0.5, 0.95], "epsilon": 1.0},
    {"name": "h", "kind": "histogram", "column": "bytes", "bins": [0, 10, 100, 1000], "epsilon": 1.0},
]


def test_sensitivity_follows_the_contribution_bounds():
    plan = plan_aggregation(_spec().aggregation, REGIONS)
    count, total = plan.metrics
    assert (count.part("value").kind, count.part("value").sensitivity) == ("geometric", 3)
    assert total.part("value").sensitivity == 3 * 10 * 1000
    assert plan.epsilon == pytest.approx(1.5) and plan.delta == 0
    assert plan.public_cells == 2 * 24


def test_every_metric_kind_splits_its_budget_over_its_parts():
    plan = plan_aggregation(_spec(metrics=ALL_KINDS).aggregation, REGIONS)
    parts = {m.name: {name: noise for name, noise in m.parts} for m in plan.metrics}
    assert parts["flows"]["value"].sensitivity == 3 * 10
    # mean: rows, and doubled centred values in +-(150 - -50) = +-200 per row
    assert parts["avg"]["count"].sensitivity == 30 and parts["avg"]["sum"].sensitivity == 30 * 200
    assert parts["avg"]["sum"].epsilon == pytest.approx(0.5)
    assert parts["var"]["sum_sq"].sensitivity == 30 * 100**2
    assert parts["var"]["count"].epsilon == pytest.approx(0.3)
    assert parts["q"]["tree"].sensitivity == 30 * TREE_HEIGHT  # one node per level per row
    assert parts["h"]["bins"].sensitivity == 30
    assert plan.epsilon == pytest.approx(4.9)


def test_release_columns_name_every_output_with_its_accuracy():
    plan = plan_aggregation(_spec(metrics=ALL_KINDS).aggregation, REGIONS)
    columns = release_columns(plan)
    assert columns[:4] == ["region", "hour", "status", "cells_merged"]
    for output in ["flows", "avg", "var", "q_p50", "q_p95", "h_b0", "h_b2"]:
        assert {output, f"{output}_noise_sd", f"{output}_ci95_low", f"{output}_ci95_high"} <= set(columns)
    assert count_columns(plan) == ["flows", "h_b0", "h_b1", "h_b2"]
    assert quantile_column("q", 0.999) == "q_p99_9"


def test_approximate_dp_uses_the_discrete_gaussian_on_l2_sensitivity():
    spec = _spec(accounting="approx_dp", delta=1e-6,
                 metrics=[{"name": "subscribers", "kind": "count_distinct_subscribers", "epsilon": 1.0}])
    noise = plan_aggregation(spec.aggregation, REGIONS).metrics[0].part("value")
    assert noise.kind == "discrete_gaussian" and noise.rho == pytest.approx(mechanisms.rho_for(1.0, 1e-6))
    assert noise.sensitivity == pytest.approx(math.sqrt(3))  # L2 as it is, not rounded up
    assert noise.delta == pytest.approx(1e-6)


def test_zcdp_rhos_add_up_and_are_stated_as_epsilon_delta():
    spec = _spec(accounting="zcdp", delta=1e-6, metrics=[
        {"name": "subscribers", "kind": "count_distinct_subscribers", "rho": 0.02},
        {"name": "flows", "kind": "count", "rho": 0.03},
    ])
    plan = plan_aggregation(spec.aggregation, REGIONS)
    assert plan.rho == pytest.approx(0.05)
    assert plan.epsilon == pytest.approx(mechanisms.zcdp_epsilon(0.05, 1e-6))  # converted once (CKS)
    assert plan.epsilon < 0.05 + 2 * math.sqrt(0.05 * math.log(1e6))
    assert plan.delta == pytest.approx(1e-6)
    assert plan.cost.rho == pytest.approx(0.05) and plan.cost.approx_epsilon == 0
    noise = plan.metrics[1].part("value")
    assert noise.scale == pytest.approx(math.sqrt(3) * 10 / math.sqrt(2 * 0.03))


def test_private_keys_add_a_partition_selection_budget():
    spec = _spec(
        group_by=[{"column": "hour", "values": "hours"}, {"column": "domain", "private": True}],
        partition_selection={"epsilon": 0.5, "delta": 1e-6},
    )
    plan = plan_aggregation(spec.aggregation, REGIONS)
    assert plan.private_keys == ("domain",) and list(plan.public_keys) == ["hour"]
    assert plan.epsilon == pytest.approx(2.0) and plan.delta == pytest.approx(1e-6)
    # partition selection composes on its own track; the geometric metric's epsilon as rho
    assert (plan.cost.approx_epsilon, plan.cost.approx_delta) == (0.5, 1e-6)
    assert plan.cost.rho == pytest.approx(sum(m.epsilon**2 / 2 for m in plan.metrics))
    selection = plan.selection
    assert selection.keep_probabilities == mechanisms.partition_keep_probabilities(0.5, 1e-6, 3)
    assert selection.keep_probabilities[1] == pytest.approx(1e-6 / 3)
    # the optimal mechanism: released half the time from fewer subscribers than the old threshold
    assert selection.even_odds < mechanisms.partition_selection_threshold(0.5, 1e-6, 3) == 87


def test_partition_selection_may_have_a_tighter_bound_of_its_own():
    spec = _spec(
        group_by=[{"column": "domain", "private": True}],
        contribution={"max_groups_per_subscriber": 12, "max_rows_per_group": 2},
        partition_selection={"epsilon": 0.5, "delta": 1e-6, "max_partitions_per_subscriber": 2},
    )
    selection = plan_aggregation(spec.aggregation, REGIONS).selection
    assert selection.max_partitions == 2
    assert selection.keep_probabilities == mechanisms.partition_keep_probabilities(0.5, 1e-6, 2)
    with pytest.raises(ValueError, match="cannot exceed"):
        _spec(group_by=[{"column": "domain", "private": True}],
              contribution={"max_groups_per_subscriber": 2, "max_rows_per_group": 2},
              partition_selection={"epsilon": 0.5, "delta": 1e-6, "max_partitions_per_subscriber": 3})


def test_zcdp_takes_geometric_noise_where_a_metric_gives_an_epsilon():
    spec = _spec(accounting="zcdp", delta=1e-6, metrics=[
        {"name": "subscribers", "kind": "count_distinct_subscribers", "rho": 0.02},
        {"name": "flows", "kind": "count", "epsilon": 0.2},
    ])
    plan = plan_aggregation(spec.aggregation, REGIONS)
    assert plan.metrics[0].part("value").kind == "discrete_gaussian"
    assert plan.metrics[1].part("value").kind == "geometric"
    assert plan.rho == pytest.approx(0.02 + 0.2**2 / 2)


def test_unsamplable_discrete_gaussian_is_refused_at_plan_time():
    with pytest.raises(PlanError, match="bytes"):
        plan_aggregation(_spec(accounting="approx_dp", delta=1e-6).aggregation, REGIONS)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metrics": [{"name": "b", "kind": "sum", "column": "bytes", "epsilon": 1.0}]},
         "needs column, lower and upper"),
        ({"delta": 1e-6}, "pure_dp accounting has delta 0"),
        ({"accounting": "approx_dp", "delta": 1e-6, "metrics": [
            {"name": "n", "kind": "count", "rho": 0.1}]}, "approx_dp accounting needs epsilon"),
        ({"group_by": [{"column": "domain", "private": True}]}, "need a partition_selection budget"),
        ({"min_subscribers": 5, "metrics": [{"name": "f", "kind": "count", "epsilon": 1}]},
         "needs a count_distinct_subscribers metric"),
        ({"min_subscribers": 5, "sparse_cells": "roll_up", "roll_up": "minute"},
         "roll_up naming a public key"),
        ({"group_by": [{"column": "hour", "values": "hours", "range": [0, 3]}]}, "exactly one of"),
        ({"metrics": [{"name": "q", "kind": "quantiles", "column": "bytes", "lower": 0, "upper": 9,
                       "quantiles": [1.5], "epsilon": 1}]}, "each in \\(0, 1\\)"),
        ({"metrics": [{"name": "h", "kind": "histogram", "column": "bytes", "bins": [5, 1],
                       "epsilon": 1}]}, "increasing bin edges"),
    ],
)
def test_inconsistent_specs_are_rejected_with_the_reason(overrides, message):
    with pytest.raises(ValueError, match=message):
        _spec(**overrides)


def test_key_domains_may_be_lists_and_ranges():
    spec = _spec(group_by=[{"column": "plan", "values": ["basic", "max"]},
                           {"column": "hour", "range": [6, 9]}])
    expected = {"plan": ("basic", "max"), "hour": (6, 7, 8, 9)}
    assert plan_aggregation(spec.aggregation, REGIONS).public_keys == expected


def test_explain_states_a_log_scale_trees_relative_resolution():
    from core.explain import explain

    metric = {"name": "secs", "kind": "quantiles", "column": "duration_s", "lower": 0, "upper": 3600,
              "quantiles": [0.5, 0.9], "epsilon": 0.4}
    linear = explain(plan_aggregation(_spec(metrics=[metric]).aggregation, REGIONS))
    log = explain(plan_aggregation(_spec(metrics=[{**metric, "quantile_scale": "log"}]).aggregation, REGIONS))
    assert "linear tree" in linear and "resolution 0.8789 in nodes" in linear
    # log1p(3600) / 4096 and / 32 as steps of 1 + value
    assert "log tree" in log and "resolution 0.20% of 1 + (value - lower)" in log and "else 29%" in log


# ---- fixed-point bounds ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lower", "upper", "precision", "integers"),
    [
        (0, 0.1, 1, (0, 1)),  # 0.1 x 10 is 1.0000000000000002 in floats, 1 as written
        (0.07, 0.29, 2, (7, 29)),
        (-0.3, 0.2, 1, (-3, 2)),
        (-3000, 2000, -3, (-3, 2)),
        (0, 250_000, 0, (0, 250_000)),
        (-1e12, 1e12, 6, (-10**18, 10**18)),  # beyond 2^53: exact, not via floats
    ],
)
def test_whole_bounds_give_exact_integer_bounds(lower, upper, precision, integers):
    metric = Metric(name="m", kind="sum", column="v", lower=lower, upper=upper, precision=precision,
                    epsilon=1)
    assert fixed_point_bounds(metric) == integers


@pytest.mark.parametrize("kind", ["sum", "mean", "variance"])
@pytest.mark.parametrize(
    ("lower", "upper", "precision", "side"),
    [
        (0, 2.5, 0, "upper bound 2.5"),
        (0, 2500, -3, "upper bound 2500"),
        (-0.5, 0.4, 0, "lower bound -0.5"),  # would be [0, 0]: a sensitivity of 0
        (-2.25, 3, 1, "lower bound -2.25"),
        (0, float("inf"), 0, "upper bound inf"),
    ],
)
def test_bounds_that_are_not_whole_units_are_rejected(kind, lower, upper, precision, side):
    message = f"{kind} metric 'spend': {side} is not a whole number of units at precision {precision}"
    with pytest.raises(ValueError, match=message):
        Metric(name="spend", kind=kind, column="v", lower=lower, upper=upper, precision=precision, epsilon=1)


def test_quantile_and_histogram_bounds_need_not_be_whole():
    """Trees and histograms count rows into leaves and bins: their bounds are not fixed point."""
    Metric(name="q", kind="quantiles", column="v", lower=0, upper=2.5, quantiles=[0.5], epsilon=1)
    Metric(name="h", kind="histogram", column="v", bins=[0, 0.5, 2.5], epsilon=1)


def test_the_shipped_reports_have_whole_bounds(config_dir):
    from core.config import load_report_specs

    fixed_point = [m for s in load_report_specs(config_dir) for m in s.aggregation.metrics
                   if m.kind in ("sum", "mean", "variance")]
    assert fixed_point and all(isinstance(b, int) for m in fixed_point for b in fixed_point_bounds(m))


@pytest.mark.parametrize("make", [
    lambda: mechanisms.geometric(1.0, 0),
    lambda: mechanisms.geometric(1.0, -2),
    lambda: mechanisms.discrete_gaussian(1.0, 1e-6, 0, "test"),
    lambda: mechanisms.zcdp_discrete_gaussian(0.5, 0.0, 1e-6, "test"),
])
def test_a_zero_sensitivity_is_an_error_not_raised_to_one(make):
    with pytest.raises(mechanisms.CalibrationError, match=r"sensitivity is (0|-2); noise needs a positive"):
        make()


@pytest.mark.parametrize("budget", [{"epsilon": 1.0}, {"rho": 0.5}])
def test_a_plan_with_zero_sensitivity_is_refused(budget):
    # Bounds that config would refuse, built without validation: [-0.5, 0.4] is [0, 0] in integers.
    accounting = {"accounting": "zcdp", "delta": 1e-6} if "rho" in budget else {}
    metric = Metric.model_construct(name="tiny", kind="sum", column="v", lower=-0.5, upper=0.4, **budget)
    valid = {"name": "n", "kind": "count", **budget}
    aggregation = _spec(**accounting, metrics=[valid]).aggregation.model_copy(update={"metrics": (metric,)})
    with pytest.raises(PlanError, match="metric 'tiny' \\(value\\): sensitivity is 0"):
        plan_aggregation(aggregation, REGIONS)
