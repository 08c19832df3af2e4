from collections import Counter

import pandas as pd
from specs import report_spec

from kr_reports.config import Metric
from kr_reports.dp import plan_aggregation
from kr_reports.noising import complete_cells
from transforms.bounding import (
    EncodedInputs,
    aggregate_cells,
    bound_contributions,
    bucket_counts,
    encode_metric_inputs,
    filter_public_keys,
)

SCHEMA = "subscriber string, region string, hour int, bytes bigint"


def _bound(df, max_groups=2, max_rows=3, salt=1, clamp=(0, 100)):
    total = Metric(name="total", kind="sum", column="bytes", lower=clamp[0], upper=clamp[1], epsilon=1)
    encoded, inputs = encode_metric_inputs(df, [total], tree_leaves=16)
    groups = ["region", "hour"]
    bounded = bound_contributions(encoded, "subscriber", groups, inputs, max_groups, max_rows, salt)
    return bounded.withColumnRenamed("total", "bytes")


def test_rows_per_group_groups_per_subscriber_and_clamping_are_exact(spark):
    # Subscriber a: 5 cells x 4 rows, values 10, 20, 30 and 5000 (clamped to 100).
    rows = [("a", "R1", h, b) for h in range(5) for b in (10, 20, 30, 5000)]
    rows += [("b", "R1", 0, 7), ("b", "R2", 0, -3)]
    bounded = _bound(spark.createDataFrame(rows, SCHEMA)).collect()
    per_subscriber = Counter(r["subscriber"] for r in bounded)
    assert per_subscriber == {"a": 2, "b": 2}
    for row in bounded:
        assert row["rows"] <= 3
        if row["subscriber"] == "a":
            assert row["rows"] == 3
            # Any 3 of {10, 20, 30, 100}: the sum is the total minus the one left out.
            assert row["bytes"] in {160 - v for v in (10, 20, 30, 100)}
    assert {r["bytes"] for r in bounded if r["subscriber"] == "b"} == {7, 0}


def test_bounding_is_stable_for_a_salt_and_varies_across_salts(spark):
    rows = [("a", "R1", h, 1) for h in range(24)]
    df = spark.createDataFrame(rows, SCHEMA)
    chosen = lambda salt: sorted(r["hour"] for r in _bound(df, max_groups=3, salt=salt).collect())  # noqa: E731
    assert chosen(5) == chosen(5)
    assert len({tuple(chosen(s)) for s in range(6)}) > 1


def test_group_choice_is_uniform_over_a_subscribers_groups(spark):
    # 4 groups, keep 1: over many salts each group should be kept about 1/4 of the time.
    rows = [(f"s{i}", "R1", h, 1) for i in range(500) for h in range(4)]
    bounded = _bound(spark.createDataFrame(rows, SCHEMA), max_groups=1, salt=99)
    counts = Counter(r["hour"] for r in bounded.select("hour").collect())
    assert sum(counts.values()) == 500
    for hour in range(4):
        assert 90 <= counts[hour] <= 160  # 125 expected; ~4.4 sd either side


def test_cells_count_subscribers_once_and_every_public_cell_is_reported(spark):
    rows = [("a", "R1", 0, 50), ("a", "R1", 0, 50), ("b", "R1", 0, 10), ("c", "R2", 1, 5)]
    rows += [("d", "Mars", 0, 999), ("e", "R1", 99, 999)]  # outside the public domain
    keys = {"region": ["R1", "R2"], "hour": [0, 1]}
    df = filter_public_keys(spark.createDataFrame(rows, SCHEMA), keys)
    cells = aggregate_cells(_bound(df), ["region", "hour"], EncodedInputs(sums=("bytes",))).toPandas()
    plan = plan_aggregation(report_spec({
        "name": "t", "source": "network_flows", "partner": "p", "purpose": "aggregate_reports",
        "policy_clause": "c", "group_by": [{"column": "region", "values": keys["region"]},
                                           {"column": "hour", "values": keys["hour"]}],
        "contribution": {"max_groups_per_subscriber": 2, "max_rows_per_group": 3},
        "metrics": [{"name": "n", "kind": "count", "epsilon": 1}],
    }).aggregation, regions=())
    result = complete_cells(cells, plan, None)
    expected = pd.DataFrame(
        [("R1", 0, 2, 3, 110), ("R1", 1, 0, 0, 0), ("R2", 0, 0, 0, 0), ("R2", 1, 1, 1, 5)],
        columns=["region", "hour", "distinct_units", "rows", "bytes"],
    )
    assert result[expected.columns].values.tolist() == expected.values.tolist()


def test_encoded_inputs_are_fixed_point_centred_and_bucketed(spark):
    metrics = [
        Metric(name="kb", kind="sum", column="bytes", lower=0, upper=10_000, precision=-3, epsilon=1),
        Metric(name="avg", kind="mean", column="bytes", lower=0, upper=100, epsilon=1),
        Metric(name="q", kind="quantiles", column="bytes", lower=0, upper=160, quantiles=[0.5], epsilon=1),
        Metric(name="h", kind="histogram", column="bytes", bins=[0, 10, 100, 1000], epsilon=1),
    ]
    df = spark.createDataFrame([("a", "R1", 0, b) for b in (-5, 5, 50, 2600, 99_999)], SCHEMA)
    encoded, inputs = encode_metric_inputs(df, metrics, tree_leaves=16)
    rows = encoded.orderBy("bytes").collect()
    assert [r["kb"] for r in rows] == [0, 0, 0, 3, 10]  # clamped, then units of 1,000 (2.6 -> 3)
    assert [r["avg"] for r in rows] == [-100, -90, 0, 100, 100]  # 2v - (0 + 100), v clamped
    assert [r["q"] for r in rows] == [0, 0, 5, 15, 15]  # 16 leaves of width 10 over [0, 160]
    assert [r["h"] for r in rows] == [0, 0, 1, 2, 2]  # outside values go to the end bins
    assert inputs == EncodedInputs(sums=("kb", "avg"), squares=(), buckets=("q", "h"))


def test_bucket_lists_keep_only_bounded_rows(spark):
    hist = Metric(name="h", kind="histogram", column="bytes", bins=[0, 10, 20], epsilon=1)
    rows = [("a", "R1", 0, v) for v in (1, 2, 3, 15, 16)] + [("b", "R1", 0, 15)]
    encoded, inputs = encode_metric_inputs(spark.createDataFrame(rows, SCHEMA), [hist], tree_leaves=16)
    bounded = bound_contributions(encoded, "subscriber", ["region", "hour"], inputs, 1, 3, salt=4)
    assert sorted(len(r["h"]) for r in bounded.collect()) == [1, 3]
    counts = {r["bucket"]: r["rows"] for r in bucket_counts(bounded, ["region", "hour"], "h").collect()}
    assert sum(counts.values()) == 4 and counts[1] >= 1
