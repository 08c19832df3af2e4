"""Mondrian local recoding: exact partitions on hand-made tables, k in units, skew,
the Spark rounds against the in-memory finish, the cut on the driver (from the table of
distinct QI combinations) against both, NCP by hand, and Adult at k = 10."""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from core.kanon.hierarchy import from_mapping, load_arx_hierarchy
from core.kanon.models import KAnonymityError
from transforms.kanon.mondrian import (
    HierarchyQI,
    NumericQI,
    OrderedQI,
    generalize_mondrian,
    ncp,
    verify_k_anonymous,
)

ADULT = SHARED_DATA / "adult"
# UCI Adult's education-num order (1 = Preschool ... 16 = Doctorate).
EDUCATION_ORDER = (
    "Preschool", "1st-4th", "5th-6th", "7th-8th", "9th", "10th", "11th", "12th", "HS-grad",
    "Some-college", "Assoc-voc", "Assoc-acdm", "Bachelors", "Masters", "Prof-school", "Doctorate",
)  # fmt: skip
ADULT_CATEGORICAL = ("marital-status", "occupation", "race", "sex", "native-country", "workclass")
CITIES = from_mapping(
    "city",
    [
        ("Seoul", "Capital area", "*"),
        ("Incheon", "Capital area", "*"),
        ("Busan", "Southeast", "*"),
        ("Ulsan", "Southeast", "*"),
    ],
)


def recoded_rows(result, order_by: str) -> list[tuple]:
    return [tuple(r) for r in result.data.orderBy(order_by).collect()]


def test_each_cut_takes_the_widest_qi_at_its_median(spark):
    # x and y both span their whole range at the root (a tie: the first QI, x, is cut);
    # each half then spans 1/8 of x's range but all of y's, so y is cut next.
    points = [(1, 1), (2, 1), (1, 9), (2, 9), (8, 1), (9, 1), (8, 9), (9, 9)]
    df = spark.createDataFrame([(i, x, y) for i, (x, y) in enumerate(points)], "id int, x int, y int")
    qis = [NumericQI("x"), NumericQI("y")]

    fine = generalize_mondrian(df, qis, k=2)
    assert recoded_rows(fine, "id") == [
        (0, "[1, 2]", "1"), (1, "[1, 2]", "1"), (2, "[1, 2]", "9"), (3, "[1, 2]", "9"),
        (4, "[8, 9]", "1"), (5, "[8, 9]", "1"), (6, "[8, 9]", "9"), (7, "[8, 9]", "9"),
    ]  # fmt: skip
    assert (fine.class_count, fine.smallest_class) == (4, 2)

    coarse = generalize_mondrian(df, qis, k=3)  # halves of 4 cannot be cut into two >= 3
    assert {r[1:] for r in recoded_rows(coarse, "id")} == {("[1, 2]", "[1, 9]"), ("[8, 9]", "[1, 9]")}
    assert (coarse.class_count, coarse.smallest_class) == (2, 4)
    fine.unpersist()
    coarse.unpersist()


def test_k_counts_subscribers_not_records(spark):
    # Four subscribers with three records each, every subscriber at one age.
    rows = [(s, age, n) for s, age in (("a", 20), ("b", 21), ("c", 40), ("d", 41)) for n in range(3)]
    df = spark.createDataFrame(rows, "subscriber string, age int, n int")
    qis = [NumericQI("age")]

    by_rows = generalize_mondrian(df, qis, k=2)
    by_subscribers = generalize_mondrian(df, qis, k=2, unit="subscriber")

    assert by_rows.data.select("age").distinct().count() == 4  # each subscriber alone: 3 rows >= 2
    pairs = {(r.subscriber, r.age) for r in by_subscribers.data.collect()}
    assert pairs == {("a", "[20, 21]"), ("b", "[20, 21]"), ("c", "[40, 41]"), ("d", "[40, 41]")}
    assert by_subscribers.smallest_class == 2
    assert verify_k_anonymous(by_subscribers.data, ["age"], 2, unit="subscriber") == (2, 2)
    by_rows.unpersist()
    by_subscribers.unpersist()


def test_ncp_of_a_tiny_table_by_hand(spark):
    df = spark.createDataFrame([(10, "F"), (20, "F"), (30, "M"), (40, "M"), (40, "F")], "age int, sex string")
    result = generalize_mondrian(df, [NumericQI("age"), OrderedQI("sex", ("F", "M"))], k=2)
    # Root: age and sex both span their domain, age comes first. Ages 10 20 30 40 40: the
    # median 30 splits 3|2 either way (<= 30 or < 30); the tie goes to <= 30. Three rows
    # cannot make two classes of 2, so two classes remain.
    assert sorted(tuple(r) for r in result.classes.select("age", "sex", "rows").collect()) == [
        ("40", "{F|M}", 2),
        ("[10, 30]", "{F|M}", 3),
    ]
    # age: 3 records at (30 - 10) / (40 - 10) and 2 at 0 -> 0.4; sex: every record spans
    # both values -> 1. NCP = mean over QIs = (0.4 + 1) / 2.
    assert ncp(result.classes) == pytest.approx(0.7)
    result.unpersist()


def test_cut_rules_when_the_median_is_the_largest_value(spark):
    df = spark.createDataFrame([(1,), (2,), (2,), (2,), (2,)], "age int")
    balanced = generalize_mondrian(df, [NumericQI("age")], k=1)
    median = generalize_mondrian(df, [NumericQI("age")], k=1, cut="median")
    # The median, 2, is the largest value: "balanced" cuts below it, "median" (the
    # literal rule) does not cut at all.
    assert sorted(r.age for r in balanced.data.collect()) == ["1", "2", "2", "2", "2"]
    assert {r.age for r in median.data.collect()} == {"[1, 2]"}
    balanced.unpersist()
    median.unpersist()


def test_hierarchy_qi_is_cut_into_subtrees(spark):
    rows = [(c, i) for c in ("Seoul", "Incheon", "Busan", "Ulsan") for i in range(3)]
    df = spark.createDataFrame(rows, "city string, i int")
    qis = [HierarchyQI("city", CITIES)]
    labels = {}
    for k in (6, 7):
        result = generalize_mondrian(df, qis, k=k)
        labels[k] = {r.city for r in result.data.select("city").distinct().collect()}
        if k == 6:
            # Capital area covers 2 of 4 leaves: (2 - 1) / (4 - 1) for every record.
            assert ncp(result.classes) == pytest.approx(1 / 3)
        result.unpersist()
    assert labels == {
        6: {"Capital area", "Southeast"},
        7: {"*"},
    }


def mixed_table(spark, rows: int):
    """Seeded random QIs of three kinds, plus a subscriber with several records."""
    cities = ("Seoul", "Incheon", "Busan", "Ulsan")
    plans = ("basic", "plus", "max")
    return spark.range(rows).select(
        (F.col("id") % (rows // 3)).alias("subscriber"),
        (18 + (F.abs(F.xxhash64("id", F.lit(1))) % 60)).cast("int").alias("age"),
        F.element_at(
            F.array(*map(F.lit, cities)), (F.abs(F.xxhash64("id", F.lit(2))) % 4 + 1).cast("int")
        ).alias("city"),
        F.element_at(
            F.array(*map(F.lit, plans)), (F.abs(F.xxhash64("id", F.lit(3))) % 3 + 1).cast("int")
        ).alias("plan"),
        (F.col("id") * 1.5).alias("spend"),
    )


MIXED_QIS = [NumericQI("age"), HierarchyQI("city", CITIES), OrderedQI("plan", ("basic", "plus", "max"))]


def test_spark_rounds_with_full_samples_match_the_in_memory_result(spark):
    df = mixed_table(spark, 600)
    in_memory = generalize_mondrian(df, MIXED_QIS, k=5, unit="subscriber")
    # Every partition over 100 rows is cut on Spark; a sample rate of 1 makes its medians exact,
    # so the two paths must agree row for row.
    on_spark = generalize_mondrian(df, MIXED_QIS, k=5, unit="subscriber", local_rows=100, sample_rows=10**9)
    assert in_memory.spark_rounds == 0
    assert on_spark.spark_rounds >= 2
    assertDataFrameEqual(on_spark.data, in_memory.data)
    assert in_memory.smallest_class >= 5
    in_memory.unpersist()
    on_spark.unpersist()


def test_poor_samples_cost_utility_never_k(spark):
    df = mixed_table(spark, 600)
    result = generalize_mondrian(df, MIXED_QIS, k=5, unit="subscriber", local_rows=100, sample_rows=2, seed=7)
    assert result.spark_rounds >= 2
    assert result.smallest_class >= 5
    assert result.data.count() == 600
    assert verify_k_anonymous(result.data, ["age", "city", "plan"], 5, "subscriber")[1] >= 5
    result.unpersist()


def test_skewed_value_with_ninety_percent_of_rows(spark):
    # 900 rows at age 30 and 100 spread over 18..67 (two per age). Cut on plan, each half has 12
    # rows under 30: k = 10 lets age 30 become classes of its own, k = 20 would not.
    df = spark.range(1000).select(
        F.when(F.col("id") < 900, 30).otherwise(18 + F.col("id") % 50).cast("int").alias("age"),
        F.element_at(F.array(F.lit("basic"), F.lit("plus")), (F.col("id") % 2 + 1).cast("int")).alias("plan"),
    )
    qis = [NumericQI("age"), OrderedQI("plan", ("basic", "plus"))]
    result = generalize_mondrian(df, qis, k=10, local_rows=100, sample_rows=50, driver_combos=0)
    assert result.spark_rounds >= 1
    assert result.smallest_class >= 10
    heavy = result.data.where(F.col("age") == "30").count()
    assert heavy >= 900
    result.unpersist()


def test_verification_names_the_class_count_and_the_smallest_size(spark):
    df = spark.createDataFrame(
        [("x", "a"), ("x", "b"), ("x", "c"), ("y", "d"), ("y", "d")], "band string, subscriber string"
    )
    assert verify_k_anonymous(df, ["band"], 2) == (2, 2)
    with pytest.raises(KAnonymityError, match="2 equivalence classes, the smallest has 1 units"):
        verify_k_anonymous(df, ["band"], 2, unit="subscriber")


def test_values_it_cannot_rank_are_refused_with_counts_only(spark):
    df = spark.createDataFrame([("basic", 1), ("gold", 2), (None, 3)], "plan string, age int")
    with pytest.raises(ValueError, match=r"\{'plan': 2\}"):
        generalize_mondrian(df, [OrderedQI("plan", ("basic", "plus"))], k=1)
    nan = spark.createDataFrame([(1.0,), (float("nan"),)], "x double")
    with pytest.raises(ValueError, match=r"\{'x': 1\}"):
        generalize_mondrian(nan, [NumericQI("x")], k=1)
    with pytest.raises(ValueError, match="non-numeric"):
        generalize_mondrian(df, [NumericQI("plan")], k=1)
    with pytest.raises(KAnonymityError, match="fewer than k"):
        generalize_mondrian(df, [NumericQI("age")], k=4)


def read_adult(spark):
    return spark.read.csv(
        str(ADULT / "adult.csv"),
        sep=";",
        header=True,
        schema="sex string, age int, race string, `marital-status` string, education string, "
        "`native-country` string, workclass string, occupation string, `salary-class` string",
    )


@pytest.fixture(scope="module")
def adult(spark):
    if not (ADULT / "adult.csv").is_file():
        pytest.skip(f"shared test data not found: {ADULT}")
    return read_adult(spark)


def hierarchy(column: str):
    return load_arx_hierarchy(ADULT / f"adult_hierarchy_{column}.csv", column)


def test_adult_at_k_10_with_ordered_categoricals(adult):
    qis = [
        NumericQI("age"),
        OrderedQI("education", EDUCATION_ORDER),
        *[OrderedQI(c, tuple(sorted(hierarchy(c).values))) for c in ADULT_CATEGORICAL],
    ]
    # Spark rounds, then in memory
    result = generalize_mondrian(adult, qis, k=10, local_rows=8_000, driver_combos=0)
    assert result.spark_rounds >= 2
    assert result.smallest_class >= 10
    assert result.data.columns == adult.columns
    assert (
        result.data.groupBy("salary-class").count().collect()
        == adult.groupBy("salary-class").count().collect()
    )
    # Published strict Mondrian on these 8 QIs: about 12% at k = 10 (see bench/bench_mondrian.py).
    assert 0.05 < ncp(result.classes) < 0.25
    result.unpersist()


def test_adult_at_k_10_with_hierarchies(adult):
    qis = [
        NumericQI("age"),
        OrderedQI("education", EDUCATION_ORDER),
        *[HierarchyQI(c, hierarchy(c)) for c in ADULT_CATEGORICAL],
    ]
    result = generalize_mondrian(adult, qis, k=10)
    assert result.smallest_class >= 10
    nodes = {v for c in ADULT_CATEGORICAL for row in hierarchy(c).rows for v in row}
    labels = {r[0] for r in result.data.select("native-country").distinct().collect()}
    assert labels <= nodes  # every generalized country is a hierarchy node
    assert 0.05 < ncp(result.classes) < 0.6
    result.unpersist()


def assert_same_recoding(driver, spark_path) -> None:
    """Row for row the same output, the same classes and the same NCP."""
    assertDataFrameEqual(driver.data, spark_path.data)
    assert (driver.class_count, driver.smallest_class) == (spark_path.class_count, spark_path.smallest_class)
    assert ncp(driver.classes) == pytest.approx(ncp(spark_path.classes), rel=1e-12)
    assert driver.spark_rounds == 0
    driver.unpersist()
    spark_path.unpersist()


@pytest.mark.parametrize("k", [2, 10, 50])
@pytest.mark.parametrize("cut", ["balanced", "median"])
def test_the_cut_on_the_driver_equals_the_in_memory_cut_on_adult(adult, k, cut):
    # Adult has 30,162 rows but fewer distinct QI combinations: the driver cuts the weighted
    # combinations; with driver_combos=0 the whole table is cut in memory, row by row.
    qis = [
        NumericQI("age"),
        OrderedQI("education", EDUCATION_ORDER),
        *[HierarchyQI(c, hierarchy(c)) for c in ADULT_CATEGORICAL[:3]],
        *[OrderedQI(c, tuple(sorted(hierarchy(c).values))) for c in ADULT_CATEGORICAL[3:]],
    ]
    driver = generalize_mondrian(adult, qis, k=k, cut=cut)
    assert_same_recoding(driver, generalize_mondrian(adult, qis, k=k, cut=cut, driver_combos=0))


def test_the_cut_on_the_driver_equals_the_in_memory_cut_on_generated_profiles(spark):
    df = mixed_table(spark, 3000).drop("subscriber")
    driver = generalize_mondrian(df, MIXED_QIS, k=7)
    assert_same_recoding(driver, generalize_mondrian(df, MIXED_QIS, k=7, driver_combos=0))


def test_the_cut_on_the_driver_with_a_qi_of_one_value_and_a_double_qi(spark):
    # plan holds one value (never cut); spend is a double with repeats; nothing else to cut on.
    df = spark.range(400).select(
        F.lit("basic").alias("plan"),
        ((F.col("id") % 37) * 1.5).alias("spend"),
        (F.col("id") % 5).cast("int").alias("band"),
    )
    qis = [OrderedQI("plan", ("basic", "plus")), NumericQI("spend"), NumericQI("band")]
    driver = generalize_mondrian(df, qis, k=9)
    assert {r.plan for r in driver.data.select("plan").distinct().collect()} == {"basic"}
    assert driver.smallest_class >= 9
    assert_same_recoding(driver, generalize_mondrian(df, qis, k=9, driver_combos=0))


def test_more_combinations_than_driver_combos_are_cut_on_spark(spark):
    df = mixed_table(spark, 600).drop("subscriber")
    combos = df.select("age", "city", "plan").distinct().count()
    on_spark = generalize_mondrian(df, MIXED_QIS, k=5, local_rows=100, driver_combos=combos - 1)
    assert on_spark.spark_rounds >= 2  # too many combinations for the driver: the Spark rounds
    assert on_spark.smallest_class >= 5
    assert on_spark.data.count() == 600
    on_driver = generalize_mondrian(df, MIXED_QIS, k=5, local_rows=100, driver_combos=combos)
    assert on_driver.spark_rounds == 0 and on_driver.smallest_class >= 5
    on_spark.unpersist()
    on_driver.unpersist()


@pytest.mark.parametrize("driver_combos", [0, 1000])
def test_both_paths_refuse_bad_data_alike(spark, driver_combos):
    df = spark.createDataFrame(
        [("basic", 1, 2.0), ("gold", 2, None), (None, 3, 1.0), ("plus", None, 4.0)],
        "plan string, age int, x double",
    )
    qis = [OrderedQI("plan", ("basic", "plus")), NumericQI("age"), NumericQI("x")]
    with pytest.raises(ValueError, match=r"\{'plan': 2, 'age': 1, 'x': 1\}$"):
        generalize_mondrian(df, qis, k=1, driver_combos=driver_combos)
    with pytest.raises(KAnonymityError, match="the table has 3 units, fewer than k = 5"):
        generalize_mondrian(df.where("age is not null"), [NumericQI("age")], k=5, driver_combos=driver_combos)
    empty = df.where("false")
    with pytest.raises(KAnonymityError, match="the table has 0 units, fewer than k = 1"):
        generalize_mondrian(empty, [NumericQI("age")], k=1, driver_combos=driver_combos)
    with pytest.raises(ValueError, match="driver_combos"):
        generalize_mondrian(df, [NumericQI("age")], k=1, driver_combos=-1)


def test_a_double_qi_holding_minus_zero_loses_no_row_on_the_driver(spark):
    # Grouping folds -0.0 into 0.0; the rows' hash must too, or their join would find no class
    # (and the label reads 0.0 whichever of the two the class holds).
    df = spark.range(200).select(
        F.when(F.col("id") % 4 == 0, F.lit(-0.0)).otherwise((F.col("id") % 9).cast("double")).alias("x"),
        (F.col("id") % 3).cast("int").alias("band"),
    )
    qis = [NumericQI("x"), NumericQI("band")]
    driver = generalize_mondrian(df, qis, k=6)
    assert driver.data.count() == 200
    assert_same_recoding(driver, generalize_mondrian(df, qis, k=6, driver_combos=0))


def test_combinations_sharing_a_hash_are_cut_on_spark(spark, monkeypatch):
    # Rows find their class by their combination's hash: two combinations with one hash would
    # mix their rows, so the driver gives the table up (a constant hash stands in for a collision).
    from transforms.kanon import mondrian_driver

    df = mixed_table(spark, 600).drop("subscriber")
    expected = generalize_mondrian(df, MIXED_QIS, k=5, local_rows=100, sample_rows=10**9, driver_combos=0)
    monkeypatch.setattr(mondrian_driver, "combo_hash", lambda keys: F.lit(7).cast("long"))
    collided = generalize_mondrian(df, MIXED_QIS, k=5, local_rows=100, sample_rows=10**9)
    assert collided.spark_rounds >= 2
    assertDataFrameEqual(collided.data, expected.data)
    collided.unpersist()
    expected.unpersist()


def test_classes_too_many_to_code_are_cut_on_spark(spark, monkeypatch):
    from transforms.kanon import mondrian_driver

    df = mixed_table(spark, 600).drop("subscriber")
    monkeypatch.setattr(mondrian_driver, "CODE_BITS", 3)  # age alone has more generalized values
    result = generalize_mondrian(df, MIXED_QIS, k=5, local_rows=100)
    assert result.spark_rounds >= 2 and result.smallest_class >= 5
    result.unpersist()


@pytest.mark.parametrize("fault", ["moved", "dropped"])
def test_the_driver_path_refuses_rows_that_left_their_class(spark, monkeypatch, fault):
    # Negative control for the check on the output rows: the cut is right, but the rows of one
    # class are moved to another (the total stays) or dropped; both must be refused.
    from transforms.kanon import mondrian, mondrian_driver

    real = mondrian_driver.classes_of_rows

    def faulty(hashed, table, cut):
        coded = real(hashed, table, cut)
        code = F.col(mondrian_driver.CLASS_CODE)
        first, second = (int(c) for c in cut.penalties.index[:2])
        if fault == "dropped":
            return coded.where(code != first)
        return coded.withColumn(mondrian_driver.CLASS_CODE, F.when(code == first, second).otherwise(code))

    monkeypatch.setattr(mondrian, "classes_of_rows", faulty)
    df = mixed_table(spark, 600).drop("subscriber")
    message = "the smallest has 0 rows" if fault == "moved" else r"the recoded output has \d+ rows for 600"
    with pytest.raises(KAnonymityError, match=message):
        generalize_mondrian(df, MIXED_QIS, k=5)


def test_the_driver_path_returns_the_rows_it_checked(spark, tmp_path):
    # The rows were counted per class from their persisted copy; the caller writes that copy.
    # With the input gone after the call, a recomputation would fail (the coded rows must stay
    # persisted until the caller unpersists them).
    import shutil

    mixed_table(spark, 600).drop("subscriber").write.parquet(str(tmp_path / "profiles"))
    result = generalize_mondrian(spark.read.parquet(str(tmp_path / "profiles")), MIXED_QIS, k=5)
    shutil.rmtree(tmp_path / "profiles")
    assert result.spark_rounds == 0
    assert result.data.count() == 600
    assert result.data.groupBy("age", "city", "plan").count().agg(F.min("count")).first()[0] >= 5
    result.unpersist()


def test_categoricals_sent_as_text_are_ranked_on_the_driver_alike(spark, monkeypatch):
    # Short categorical lists are ranked by Spark once per combination, long ones travel as text
    # and are ranked on the driver: with every list "long", the recoding and the refusals match.
    from transforms.kanon import mondrian_driver

    df = mixed_table(spark, 600).drop("subscriber")
    ranked_on_spark = generalize_mondrian(df, MIXED_QIS, k=5)
    monkeypatch.setattr(mondrian_driver, "RANKED_ON_SPARK", 0)
    ranked_on_driver = generalize_mondrian(df, MIXED_QIS, k=5)
    assert ranked_on_driver.spark_rounds == 0
    assert_same_recoding(ranked_on_driver, ranked_on_spark)
    unlisted = df.withColumn("plan", F.when(F.col("age") < 30, "platinum").otherwise(F.col("plan")))
    with pytest.raises(ValueError, match=r"\{'plan': \d+\}$"):
        generalize_mondrian(unlisted, MIXED_QIS, k=5)


def test_the_recoding_leaves_the_session_settings_as_it_found_them(spark):
    # The cache and the driver's tables change two Spark settings for one call each.
    compression = "spark.sql.inMemoryColumnarStorage.compressed"
    local_relations = "spark.sql.execution.arrow.localRelationThreshold"
    spark.conf.set(compression, "true")
    threshold_before = spark.conf.get(local_relations)
    try:
        result = generalize_mondrian(mixed_table(spark, 600).drop("subscriber"), MIXED_QIS, k=5)
        assert result.spark_rounds == 0
        assert spark.conf.get(compression) == "true"
        assert spark.conf.get(local_relations) == threshold_before
        result.unpersist()
    finally:
        spark.conf.unset(compression)


def test_a_session_setting_is_restored_or_unset_even_on_error(spark):
    from transforms.kanon.mondrian_driver import session_setting

    key = "spark.sql.inMemoryColumnarStorage.batchSize"
    spark.conf.unset(key)
    default = spark.conf.get(key)
    with session_setting(spark, key, "123"):
        assert spark.conf.get(key) == "123"
    assert spark.conf.get(key) == default
    spark.conf.set(key, "4567")
    with pytest.raises(RuntimeError), session_setting(spark, key, "89"):
        raise RuntimeError("inside")
    assert spark.conf.get(key) == "4567"
    spark.conf.unset(key)


def test_a_driver_table_reaches_spark_whole_and_typed(spark):
    import numpy as np
    import pyarrow as pa

    from transforms.kanon.mondrian_driver import arrow_frame

    numbers = pa.table({"code": np.arange(250_000, dtype=np.int64) * 3, "share": np.linspace(0, 1, 250_000)})
    frame = arrow_frame(spark, numbers)
    assert dict(frame.dtypes) == {"code": "bigint", "share": "double"}
    back = frame.toPandas().sort_values("code", ignore_index=True)
    assert back.equals(numbers.to_pandas())
    assert arrow_frame(spark, numbers.slice(0, 0)).count() == 0
