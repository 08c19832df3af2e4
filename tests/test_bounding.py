from collections import Counter

from pyspark.testing import assertDataFrameEqual

from transforms.bounding import (
    aggregate_cells,
    bound_contributions,
    filter_public_keys,
    with_all_public_cells,
)

SCHEMA = "subscriber string, region string, hour int, bytes bigint"


def _bound(df, max_groups=2, max_rows=3, salt=1, clamp=(0, 100)):
    return bound_contributions(
        df, "subscriber", ["region", "hour"], {"bytes": clamp}, max_groups, max_rows, salt
    )


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
    cells = aggregate_cells(_bound(df), ["region", "hour"], ["bytes"])
    result = with_all_public_cells(cells, keys, ["distinct_units", "rows", "bytes"])
    expected = spark.createDataFrame(
        [("R1", 0, 2, 3, 110), ("R1", 1, 0, 0, 0), ("R2", 0, 0, 0, 0), ("R2", 1, 1, 1, 5)],
        "region string, hour bigint, distinct_units bigint, rows bigint, bytes bigint",
    )
    assertDataFrameEqual(result, expected, checkRowOrder=True)
