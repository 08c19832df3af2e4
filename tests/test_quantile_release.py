"""Quantiles in a release: a cell too sparse to place them publishes none, and says so.

Through the front door (Spark, ledger, store, release suite, report page) on a small
report; the roll-up's remainder and merged rows on the noisy frame directly.
"""

import numpy as np
import pandas as pd
from releasing import fresh_period, open_releaser
from specs import report_spec

from core import noise_plan, report_page
from core.noisy_cells import noisy_release
from expectations.runner import validate_dataframe
from expectations.suites import build_release_suite

SCHEMA = "subscriber string, region string, hour int, domain string, bytes bigint"
REGIONS = ("North", "South")
QUANTILES = {"name": "q", "kind": "quantiles", "column": "bytes", "lower": 0, "upper": 1000,
             "quantiles": [0.5, 0.9], "epsilon": 1.0}
VALUES = ["q_p50", "q_p50_noise_sd", "q_p50_ci95_low", "q_p50_ci95_high",
          "q_p90", "q_p90_noise_sd", "q_p90_ci95_low", "q_p90_ci95_high"]


def _spec(**overrides):
    fields = {
        "name": "traffic_quantiles", "source": "network_flows", "partner": "metro-planning",
        "purpose": "aggregate_reports", "policy_clause": "c",
        "group_by": [{"column": "region", "values": "regions"}, {"column": "hour", "range": [0, 1]}],
        "contribution": {"max_groups_per_subscriber": 1, "max_rows_per_group": 1},
        "metrics": [{"name": "subs", "kind": "count_distinct_subscribers", "epsilon": 1.0}, QUANTILES],
        **overrides,
    }
    return report_spec(fields)


def test_an_empty_cell_publishes_no_quantile_and_flags_it(spark, tmp_path):
    spec = _spec()
    rows = [(f"s{i}", "North", 0, "a.com", i % 1000) for i in range(2000)]  # South and hour 1: empty
    releaser = open_releaser(tmp_path, REGIONS, random_state=np.random.RandomState(0))
    release = releaser.release(spark.createDataFrame(rows, SCHEMA), spec.aggregation, fresh_period(),
                               spec.delivery)
    table = release.table.set_index(["region", "hour"])
    plan = noise_plan.plan_aggregation(spec.aggregation, REGIONS)
    assert list(release.table.columns) == noise_plan.published_columns(plan)
    columns = noise_plan.release_columns(plan)
    assert columns[columns.index("q_p90_ci95_high") + 1] == "q_insufficient"  # after its outputs

    full, empty = table.loc[("North", 0)], table.loc[[("South", 0), ("South", 1), ("North", 1)]]
    assert not full["q_insufficient"] and 400 <= full["q_p50"] <= 600
    assert empty["q_insufficient"].all() and empty[VALUES].isna().all().all()
    assert release.table["q_insufficient"].dtype == "boolean"

    # The stored release passes its suite: quantiles may be empty, counts may not.
    stored = spark.read.parquet(str(release.path / "release.parquet"))
    suite = build_release_suite(noise_plan.published_columns(plan), noise_plan.count_columns(plan),
                                string_columns=["region"], report=spec.name)
    assert validate_dataframe(stored, suite, label="quantile release")["success"]

    page = report_page.render_report(release.table, report_page.page_info(spec, release.record))
    charts = page[page.index('<section class="metric"'):]
    assert charts.count('<g class="insufficient">') == 2 * len(empty)  # both quantiles of each
    assert "South, hour 0: insufficient data, released" in charts
    assert charts.count("3 cells had insufficient data to place it.") == 2
    assert "q_insufficient is true there" in page


def _cells(spec):
    """True aggregates: North hour 0 holds 3,000 subscribers (one row each, spread over the
    range); the other cells 12 each, under k = 20 alone, so South's two make a remainder of 24
    and North's one a remainder that stays under k. With the quantile tree's leaf counts."""
    plan = noise_plan.plan_aggregation(spec.aggregation, REGIONS)
    keys = pd.DataFrame([(r, h) for r in REGIONS for h in (0, 1)], columns=["region", "hour"])
    cells = keys.assign(distinct_units=[3000, 12, 12, 12])
    leaves = noise_plan.TREE_LEAVES
    dense = pd.DataFrame({"region": "North", "hour": 0, "bucket": np.arange(3000) * leaves // 3000,
                          "rows": 1})
    sparse = keys.iloc[1:].assign(bucket=7, rows=12)
    return cells, {"q": pd.concat([dense, sparse], ignore_index=True)}, plan


def test_remainders_are_flagged_and_withheld_cells_withhold_the_flag():
    spec = _spec(min_subscribers=20, sparse_cells="roll_up", roll_up="hour")
    cells, buckets, plan = _cells(spec)
    release = noisy_release(cells, buckets, plan, random_state=np.random.RandomState(4))
    flags = release.groupby("status")["q_insufficient"].apply(list).to_dict()
    assert flags == {"merged": [pd.NA] * 3, "released": [False], "remainder": [True], "suppressed": [pd.NA]}
    published = release["status"] == "released"
    assert release.loc[published, VALUES].notna().all().all()
    assert release.loc[~published, VALUES].isna().all().all()
