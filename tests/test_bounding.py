import functools
import itertools
import operator
from collections import Counter

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from specs import report_spec

from core.config import Metric
from core.noise_plan import TREE_BRANCHINGS, TREE_LEAVES, plan_aggregation
from core.noisy_cells import complete_cells
from transforms.bounding import (
    ROWS_COLUMN,
    UNITS_COLUMN,
    EncodedInputs,
    aggregate_cells,
    bound_contributions,
    bucket_counts,
    encode_metric_inputs,
    filter_public_keys,
    units_per_partition,
)
from transforms.report_aggregate import aggregate_report

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


# ---- fixed point: rounded, then clamped to the plan's integer bounds -----------------------

VALUES = "subscriber string, region string, hour int, v double"
HALF_WAYS = [-3.5, -2.5, -0.5, 0.5, 1.5, 2.5, 3.5]


def test_values_are_rounded_then_clamped_to_the_plans_integer_bounds(spark):
    metrics = [
        Metric(name="units", kind="sum", column="v", lower=-3, upper=2, epsilon=1),
        Metric(name="tenths", kind="sum", column="v", lower=-0.3, upper=0.2, precision=1, epsilon=1),
        Metric(name="avg", kind="mean", column="v", lower=-3, upper=2, epsilon=1),
        # Half-unit bounds, which config refuses, built without validation: the plan rounds
        # them to [0, 2] and Spark clamps to exactly that, so 2.5 contributes 2, not 3.
        Metric.model_construct(name="unchecked", kind="sum", column="v", lower=0, upper=2.5, epsilon=1),
    ]
    rows = [("a", "R1", 0, v) for v in HALF_WAYS]
    encoded, _ = encode_metric_inputs(spark.createDataFrame(rows, VALUES), metrics, tree_leaves=16)
    tenths = encode_metric_inputs(  # the same values in tenths
        spark.createDataFrame([("a", "R1", 0, v / 10) for v in HALF_WAYS], VALUES), metrics, 16)[0]
    got = {m.name: [r[m.name] for r in encoded.orderBy("v").collect()] for m in metrics}
    assert got["units"] == [-3, -3, -1, 1, 2, 2, 2]  # half up (away from 0), then clamped
    assert got["avg"] == [2 * v + 1 for v in got["units"]]  # 2v - (low + high), low + high = -1
    assert got["unchecked"] == [0, 0, 0, 1, 2, 2, 2]
    assert [r["tenths"] for r in tenths.orderBy("v").collect()] == got["units"]


# ---- one subscriber's effect on every noised part, against the plan -----------------------

# Column: (lower, upper, precision, half a unit). Negative bounds, coarse and fine units.
FIXED_POINT_CASES = {"v0": (-3, 2, 0, 0.5), "vk": (-3000, 2000, -3, 500), "vd": (-0.3, 0.2, 1, 0.05)}
# Half-unit bounds that config refuses, built without validation: still no more than planned.
UNCHECKED_CASES = {"w0": (0, 2.5, 0, 0.5), "wk": (-2500, 2500, -3, 500)}
CELLS = [("R1", 0), ("R1", 1), ("R2", 0)]  # the added subscriber's cells: one more than kept


def _bounded_metrics(column: str, lower, upper, precision: int, unchecked: bool) -> list[Metric]:
    make = Metric.model_construct if unchecked else Metric
    bounds = {"column": column, "lower": lower, "upper": upper, "epsilon": 1}
    return [
        make(name=f"sum_{column}", kind="sum", precision=precision, **bounds),
        make(name=f"mean_{column}", kind="mean", precision=precision, **bounds),
        make(name=f"var_{column}", kind="variance", precision=precision, **bounds),
        make(name=f"q_{column}", kind="quantiles", quantiles=(0.5,), **bounds),
        make(name=f"h_{column}", kind="histogram", column=column, bins=(lower, (lower + upper) / 2, upper),
             epsilon=1),
    ]


def _every_kind_plan():
    metrics = [Metric(name="n", kind="count", epsilon=1),
               Metric(name="subs", kind="count_distinct_subscribers", epsilon=1)]
    for cases, unchecked in ((FIXED_POINT_CASES, False), (UNCHECKED_CASES, True)):
        for column, (lower, upper, precision, _) in cases.items():
            metrics += _bounded_metrics(column, lower, upper, precision, unchecked)
    spec = report_spec({
        "name": "t", "source": "network_flows", "partner": "p", "purpose": "aggregate_reports",
        "policy_clause": "c", "group_by": [{"column": "region", "values": ["R1", "R2"]},
                                           {"column": "hour", "values": [0, 1]}],
        "contribution": {"max_groups_per_subscriber": 2, "max_rows_per_group": 3},
        "metrics": [{"name": "n", "kind": "count", "epsilon": 1}],
    })
    return plan_aggregation(spec.aggregation.model_copy(update={"metrics": tuple(metrics)}), regions=())


def _inputs(spark, side: str | None):
    """Two subscribers; with a side, also x, with 5 rows in each of 3 cells and every value
    half a unit beyond that side's bound (it rounds away from the range, then is clamped)."""
    cases = {**FIXED_POINT_CASES, **UNCHECKED_CASES}
    schema = "subscriber string, region string, hour int, " + ", ".join(f"{c} double" for c in cases)
    row = lambda pick: [float(pick(*case)) for case in cases.values()]  # noqa: E731
    others = [("a", "R1", 0, *row(lambda lo, hi, p, half: (lo + hi) / 2)),
              ("a", "R2", 1, *row(lambda lo, hi, p, half: hi)), ("b", "R1", 0, *row(lambda lo, *_: lo))]
    beyond = row(lambda lo, hi, p, half: lo - half if side == "low" else hi + half)
    added = [("x", region, hour, *beyond) for region, hour in CELLS for _ in range(5)] if side else []
    return spark.createDataFrame(others + added, schema)


def _tree_nodes(leaves: pd.DataFrame) -> pd.DataFrame:
    """Every node of each cell's tree, the root's included, from its leaf counts."""
    levels = [1, *itertools.accumulate(TREE_BRANCHINGS, operator.mul)]
    nodes = [leaves.assign(bucket=level * TREE_LEAVES + leaves["bucket"] * level // TREE_LEAVES)
             for level in levels]
    return pd.concat(nodes).groupby(["region", "hour", "bucket"], as_index=False)["rows"].sum()


def _cell_column(metric, part: str) -> str:
    if metric.kind == "count_distinct_subscribers":
        return UNITS_COLUMN
    if metric.kind == "count" or part == "count":
        return ROWS_COLUMN
    return f"{metric.name}__sq" if part == "sum_sq" else metric.name


def _part_vectors(spark_df, plan) -> dict[tuple[str, str], pd.Series]:
    """Each noised part's true values, indexed by cell (and bucket or tree node)."""
    aggregates = aggregate_report(spark_df, plan, "subscriber", salt=7)
    cells = aggregates.cells.toPandas().set_index(["region", "hour"])
    tagged = [counts.withColumn("metric", F.lit(name)) for name, counts in aggregates.buckets.items()]
    buckets = functools.reduce(DataFrame.unionByName, tagged).toPandas()  # one Spark job, not ten
    vectors = {}
    for metric in plan.metrics:
        for part, _ in metric.parts:
            if part in ("tree", "bins"):
                counts = buckets[buckets["metric"] == metric.name].drop(columns="metric")
                counts = _tree_nodes(counts) if part == "tree" else counts
                vectors[metric.name, part] = counts.set_index(["region", "hour", "bucket"])["rows"]
            else:
                vectors[metric.name, part] = cells[_cell_column(metric, part)]
    aggregates.unpersist()
    return vectors


def test_one_subscriber_moves_every_noised_part_by_at_most_its_planned_sensitivity(spark):
    """Neighbouring inputs, D and D plus one subscriber whose values lie half a unit beyond a bound
    (negative bounds, units of 1,000 and of 0.1, and half-unit bounds built without validation):
    the change to each part is within the plan's L1 sensitivity, per cell and over all cells,
    and reaches it on one of the two sides, so the plan is not loose either."""
    plan = _every_kind_plan()
    groups = plan.aggregation.contribution.max_groups_per_subscriber
    reached: dict[tuple[str, str], float] = {}
    without = _part_vectors(_inputs(spark, None), plan)
    for side in ("low", "high"):
        with_x = _part_vectors(_inputs(spark, side), plan)
        for (name, part), after in with_x.items():
            change = after.sub(without[name, part], fill_value=0).abs()
            planned = next(m for m in plan.metrics if m.name == name).part(part).sensitivity
            per_cell = change.groupby(level=["region", "hour"]).sum()
            assert per_cell.max() <= planned / groups, (name, part, side, per_cell.to_dict())
            assert change.sum() <= planned, (name, part, side)
            reached[name, part] = max(reached.get((name, part), 0), change.sum())
    planned = {(m.name, part): noise.sensitivity for m in plan.metrics for part, noise in m.parts}
    assert reached == planned


# ---- uniform over rows and cells, and stable ---------------------------------------------

HIST = Metric(name="h", kind="histogram", column="bytes", bins=[0, 10, 20], epsilon=1)


def _nine_and_one(spark, subscribers: int):
    """Each subscriber: 9 identical rows (bin 0) and 1 rare row (bin 1) in hour 0, 1 row in hour 1."""
    pattern = [(0, 5)] * 9 + [(0, 15), (1, 5)]
    rows = [(f"s{i}", "R1", hour, value) for i in range(subscribers) for hour, value in pattern]
    return encode_metric_inputs(spark.createDataFrame(rows, SCHEMA), [HIST], tree_leaves=16)


def _bounded_over_salts(encoded, inputs, salts, max_groups: int, max_rows: int) -> pd.DataFrame:
    """The bounded rows for each salt, in one Spark job."""
    runs = [bound_contributions(encoded, "subscriber", ["region", "hour"], inputs, max_groups, max_rows, salt)
            .withColumn("salt", F.lit(salt)) for salt in salts]
    return functools.reduce(DataFrame.unionByName, runs).toPandas()


def test_row_choice_is_uniform_over_rows_even_identical_ones(spark):
    # 100 subscribers x 4 salts: 400 draws of 1 row out of 10. Distinct subscribers are distinct
    # hash inputs, as distinct salts are. The rare row should be kept about 40 times (sd 6);
    # keeping identical rows together would keep it about 200 times.
    bounded = _bounded_over_salts(*_nine_and_one(spark, 100), salts=range(4), max_groups=2, max_rows=1)
    draws = bounded[bounded["hour"] == 0]["h"]
    assert len(draws) == 400 and all(len(kept) == 1 for kept in draws)
    rare = sum(kept[0] == 1 for kept in draws)
    assert 20 <= rare <= 64, rare  # about 3.4 sd below and 4 sd above 40


def test_cell_choice_is_uniform_over_cells_whatever_rows_they_hold(spark):
    # Hour 0 holds 10 rows and hour 1 one: keeping 1 cell of 2, each is kept about half the time.
    bounded = _bounded_over_salts(*_nine_and_one(spark, 100), salts=range(4), max_groups=1, max_rows=1)
    assert len(bounded) == 400
    assert 160 <= (bounded["hour"] == 0).sum() <= 240  # 200 expected, sd 10


def test_rows_kept_do_not_depend_on_how_the_input_is_partitioned(spark):
    rows = [("a", "R1", h, b) for h in range(4) for b in (1, 1, 1, 12, 12, 30, 7)]
    rows += [("b", "R2", 0, b) for b in (3, 3, 3, 3, 15)] + [("c", "R1", 1, 9)] * 6
    df = spark.createDataFrame(rows, SCHEMA)
    total = Metric(name="total", kind="sum", column="bytes", lower=0, upper=20, epsilon=1)

    def kept(layout):
        encoded, inputs = encode_metric_inputs(layout, [total, HIST], tree_leaves=16)
        bounded = bound_contributions(encoded, "subscriber", ["region", "hour"], inputs, 2, 3, salt=11)
        return sorted((r["subscriber"], r["region"], r["hour"], r["rows"], r["total"], tuple(sorted(r["h"])))
                      for r in bounded.collect())

    layouts = [df.coalesce(1), df.repartition(3), df.orderBy(F.rand(5)).repartition(4, "hour")]
    first, *others = (kept(layout) for layout in layouts)
    assert all(other == first for other in others)
    assert {r[0] for r in first} == {"a", "b", "c"} and all(r[3] == 3 for r in first)


def test_partition_selection_may_count_a_subscriber_in_fewer_keys_than_the_values(spark):
    """The selection's own bound: each subscriber counts in at most 2 of the keys it kept."""
    rows = [(f"u{u}", f"d{d}") for u in range(40) for d in range(5)]
    bounded = spark.createDataFrame(rows, "subscriber string, domain string")
    wide = units_per_partition(bounded, "subscriber", ["domain"]).toPandas()
    assert wide["distinct_units"].sum() == 40 * 5
    narrow = units_per_partition(bounded, "subscriber", ["domain"], max_partitions=2, salt=7).toPandas()
    assert narrow["distinct_units"].sum() == 40 * 2 and len(narrow) == 5  # spread over the keys
    again = units_per_partition(bounded, "subscriber", ["domain"], max_partitions=2, salt=7).toPandas()
    assert narrow.sort_values("domain").reset_index(drop=True).equals(
        again.sort_values("domain").reset_index(drop=True))
