"""The DP engine end to end on small data: bounding on Spark, noise, post-processing.

With a huge epsilon the noise is (almost surely) zero, so released values
must equal the bounded truth computed by hand.
"""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from releasing import fresh_period, open_releaser
from specs import report_spec

from core.config import ReportSpec
from transforms.report_aggregate import MissingReportColumn

SCHEMA = "subscriber string, region string, hour int, domain string, bytes bigint"
REGIONS = ("North", "South")
HUGE = 1e7  # epsilon (or rho) that makes the noise vanish


def _spec(**overrides) -> ReportSpec:
    base = {
        "name": "t", "source": "network_flows", "partner": "p", "purpose": "aggregate_reports",
        "policy_clause": "c",
        "group_by": [{"column": "region", "values": "regions"}, {"column": "hour", "range": [0, 2]}],
        "contribution": {"max_groups_per_subscriber": 5, "max_rows_per_group": 10},
        "metrics": [{"name": "subs", "kind": "count_distinct_subscribers", "epsilon": HUGE}],
    }
    base.update(overrides)
    return report_spec(base)


def _release(spark, rows, spec, rng=0):
    """The release through the front door, on a ledger and store of its own."""
    with tempfile.TemporaryDirectory() as folder:
        releaser = open_releaser(Path(folder), REGIONS, random_state=np.random.RandomState(rng))
        return releaser.release(spark.createDataFrame(rows, SCHEMA), spec.aggregation, fresh_period()).table


def _row(release, region, hour):
    match = release[(release["region"] == region) & (release["hour"] == hour)]
    assert len(match) == 1
    return match.iloc[0]


def test_every_metric_kind_equals_the_bounded_truth_without_noise(spark):
    values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    rows = [(f"s{i}", "North", 0, "a.com", v) for i, v in enumerate(values)]
    rows += [("s0", "North", 1, "a.com", 5), ("x", "South", 2, "a.com", 999_999)]
    metrics = [
        {"name": "subs", "kind": "count_distinct_subscribers", "epsilon": HUGE},
        {"name": "flows", "kind": "count", "epsilon": HUGE},
        {"name": "total", "kind": "sum", "column": "bytes", "lower": 0, "upper": 1000, "epsilon": HUGE},
        {"name": "avg", "kind": "mean", "column": "bytes", "lower": 0, "upper": 1000, "epsilon": HUGE},
        {"name": "var", "kind": "variance", "column": "bytes", "lower": 0, "upper": 1000, "epsilon": HUGE},
        {"name": "q", "kind": "quantiles", "column": "bytes", "lower": 0, "upper": 1000,
         "quantiles": [0.5, 0.9], "epsilon": HUGE},
        {"name": "h", "kind": "histogram", "column": "bytes", "bins": [0, 50, 1000], "epsilon": HUGE},
    ]
    release = _release(spark, rows, _spec(metrics=metrics))
    assert len(release) == 2 * 3 and (release["status"] == "released").all()
    cell = _row(release, "North", 0)
    assert (cell["subs"], cell["flows"], cell["total"]) == (10, 10, 550)
    assert cell["avg"] == pytest.approx(55)
    assert cell["var"] == pytest.approx(np.var(values), rel=1e-2)  # sum of squares: huge sensitivity
    leaf = 1000 / 4096  # quantiles are exact to within a leaf of the tree
    assert cell["q_p50"] == pytest.approx(50, abs=2 * leaf)
    assert cell["q_p90"] == pytest.approx(90, abs=2 * leaf)
    assert (cell["h_b0"], cell["h_b1"]) == (4, 6)
    south = _row(release, "South", 2)
    assert (south["subs"], south["total"], south["avg"]) == (1, 1000, 1000)  # clamped to the bound
    empty = _row(release, "South", 0)
    assert (empty["subs"], empty["flows"], empty["total"]) == (0, 0, 0)
    # No rows measured: no quantile is published, and the cell says why.
    assert empty[["q_p50", "q_p50_ci95_low", "q_p50_ci95_high", "q_p90"]].isna().all()
    assert empty["q_insufficient"] and not cell["q_insufficient"]


def test_intervals_are_reported_for_every_value_and_cover_it(spark):
    rows = [(f"s{i}", "North", i % 3, "a.com", 100) for i in range(3000)]
    metrics = [{"name": "subs", "kind": "count_distinct_subscribers", "epsilon": 0.5},
               {"name": "avg", "kind": "mean", "column": "bytes", "lower": 0, "upper": 200, "epsilon": 1}]
    one_each = {"max_groups_per_subscriber": 1, "max_rows_per_group": 1}
    release = _release(spark, rows, _spec(metrics=metrics, contribution=one_each), rng=3)
    full = release[release["region"] == "North"]
    assert (full["subs_ci95_low"] <= 1000).all() and (full["subs_ci95_high"] >= 1000).all()
    assert (full["subs_noise_sd"] > 0).all()
    assert (full["avg_ci95_low"] <= full["avg"]).all() and (full["avg"] <= full["avg_ci95_high"]).all()
    assert full["avg"].between(95, 105).all()


def test_rows_with_keys_outside_the_public_domain_never_count(spark):
    rows = [("a", "North", 0, "a.com", 1), ("b", "Mars", 0, "a.com", 1), ("c", "North", 7, "a.com", 1)]
    release = _release(spark, rows, _spec())
    assert release["subs"].sum() == 1
    assert set(release["region"]) == set(REGIONS)


def test_private_keys_are_released_only_through_partition_selection(spark):
    popular = [(f"s{i}", "North", 0, "popular.com", 1) for i in range(400)]
    rare = [("lonely", "North", 0, "rare.example", 1)]
    spec = _spec(
        group_by=[{"column": "hour", "range": [0, 1]}, {"column": "domain", "private": True}],
        partition_selection={"epsilon": 1.0, "delta": 1e-6},
    )
    release = _release(spark, popular + rare, spec)
    assert set(release["domain"]) == {"popular.com"}
    assert sorted(release["hour"]) == [0, 1]  # every public key for a selected partition
    assert release.loc[release["hour"] == 0, "subs"].item() == 400


def test_sparse_cells_are_suppressed_under_k(spark):
    rows = [(f"s{i}", "North", 0, "a.com", 1) for i in range(20)] + [("t", "North", 1, "a.com", 1)]
    release = _release(spark, rows, _spec(min_subscribers=5))
    assert _row(release, "North", 0)["status"] == "released"
    sparse = _row(release, "North", 1)
    assert sparse["status"] == "suppressed" and pd.isna(sparse["subs"])


def test_roll_up_merges_sparse_cells_into_their_parent_and_keeps_totals(spark):
    rows = [(f"s{i}", "North", 0, "a.com", 10) for i in range(20)]
    rows += [(f"t{i}", "North", h, "a.com", 10) for i, h in enumerate([1, 1, 2, 2])]
    rows += [("u", "South", 1, "a.com", 10)]
    metrics = [{"name": "subs", "kind": "count_distinct_subscribers", "epsilon": HUGE},
               {"name": "total", "kind": "sum", "column": "bytes", "lower": 0, "upper": 100, "epsilon": HUGE}]
    spec = _spec(metrics=metrics, min_subscribers=3, sparse_cells="roll_up", roll_up="hour")
    release = _release(spark, rows, spec)
    north = release[release["region"] == "North"]
    assert list(north["status"]) == ["released", "merged", "merged", "remainder"]
    remainder = north.iloc[-1]
    assert pd.isna(remainder["hour"]) and remainder["cells_merged"] == 2
    assert (remainder["subs"], remainder["total"]) == (4, 40)
    published = north[north["status"].isin(["released", "remainder"])]
    assert published["total"].sum() == 24 * 10  # the region's total is unchanged by the roll-up
    # South: one subscriber in one hour; its remainder is still under k, so it is suppressed.
    south = release[release["region"] == "South"]
    assert south["status"].tolist().count("suppressed") == 1 and south["subs"].isna().all()


def test_zcdp_release_uses_the_discrete_gaussian(spark):
    rows = [(f"s{i}", "North", 0, "a.com", 1) for i in range(50)]
    spec = _spec(accounting="zcdp", delta=1e-6,
                 metrics=[{"name": "subs", "kind": "count_distinct_subscribers", "rho": HUGE}])
    assert _row(_release(spark, rows, spec), "North", 0)["subs"] == 50


def test_a_column_the_input_lacks_is_named(spark):
    metrics = [{"name": "avg", "kind": "mean", "column": "packets", "lower": 0, "upper": 9, "epsilon": 1}]
    with pytest.raises(MissingReportColumn, match="no column 'packets'"):
        _release(spark, [("a", "North", 0, "a.com", 1)], _spec(metrics=metrics))


def test_noisy_quantiles_stay_near_the_truth_and_empty_nodes_add_no_phantom_rows(spark):
    one_each = {"max_groups_per_subscriber": 1, "max_rows_per_group": 1}
    metrics = [{"name": "q", "kind": "quantiles", "column": "bytes", "lower": 0, "upper": 1000,
                "quantiles": [0.1, 0.5, 0.9], "epsilon": 0.5}]
    spread = [(f"s{i}", "North", 0, "a.com", i % 1000) for i in range(3000)]
    narrow = [(f"t{i}", "South", 0, "a.com", 950) for i in range(400)]
    spec = _spec(metrics=metrics, contribution=one_each)
    for seed in range(3):
        release = _release(spark, spread + narrow, spec, rng=seed)
        north, south = _row(release, "North", 0), _row(release, "South", 0)
        assert north["q_p10"] == pytest.approx(100, abs=40)
        assert north["q_p50"] == pytest.approx(500, abs=40)
        assert north["q_p90"] == pytest.approx(900, abs=40)
        assert south["q_p50"] == pytest.approx(950, abs=20)
        assert north["q_p50_ci95_low"] <= north["q_p50"] <= north["q_p50_ci95_high"]
