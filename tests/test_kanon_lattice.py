"""Optimal full-domain generalization on Adult: the Flash-style search against exhaustive search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from core.kanon.hierarchy import find_hierarchies, from_mapping
from core.kanon.lattice import search_exhaustive, search_optimal
from core.kanon.metrics import METRICS, RECORDS, SUPPRESSED, encode, group
from core.kanon.models import DistinctLDiversity, EntropyLDiversity, KAnonymity
from transforms.kanon.full_domain import apply_transformation, frequency_table

ADULT = SHARED_DATA / "adult"
# Lattice of 5 * 2 * 2 * 3 * 4 * 3 = 720 nodes: small enough to search exhaustively.
SIX = ["age", "sex", "race", "marital-status", "education", "native-country"]
EIGHT = [*SIX, "workclass", "occupation"]  # every column but the salary class: 6,480 nodes


@pytest.fixture(scope="module")
def adult(spark):
    return spark.read.csv(str(ADULT / "adult.csv"), sep=";", header=True)


@pytest.fixture(scope="module")
def hierarchies():
    return find_hierarchies(ADULT, EIGHT)


@pytest.fixture(scope="module")
def six(adult) -> pd.DataFrame:
    return frequency_table(adult, SIX, sensitive="salary-class")


def _same(found: float, expected: float) -> bool:
    return found == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("limit", [0.0, 0.04])
@pytest.mark.parametrize("k", [5, 100])
def test_search_finds_the_exhaustive_optimum(six, hierarchies, k, limit, metric):
    models = [KAnonymity(k)]
    found = search_optimal(six, hierarchies, SIX, models, limit, metric)
    best = search_exhaustive(six, hierarchies, SIX, models, limit, metric)
    assert _same(found.value, best.value)
    # Ties allowed, but the chosen node must itself be anonymous and score what was reported.
    assert found.transformation.levels in best.values
    assert _same(best.values[found.transformation.levels], found.value)
    assert found.suppressed_records <= limit * six[RECORDS].sum()


@pytest.mark.parametrize("limit", [0.0, 0.04])
def test_predictive_tagging_classifies_every_node_as_a_full_check_does(six, hierarchies, limit):
    found = search_optimal(six, hierarchies, SIX, [KAnonymity(5)], limit, "loss")
    best = search_exhaustive(six, hierarchies, SIX, [KAnonymity(5)], limit, "loss")
    assert set(found.anonymous) == set(best.anonymous)
    assert found.nodes_total == best.nodes_checked == 720
    assert found.nodes_pruned > 0
    assert found.nodes_checked + found.nodes_pruned == 720


def test_suppression_trades_generalization_for_loss(six, hierarchies):
    strict = search_optimal(six, hierarchies, SIX, [KAnonymity(5)], 0.0, "loss")
    loose = search_optimal(six, hierarchies, SIX, [KAnonymity(5)], 0.04, "loss")
    assert strict.suppressed_records == 0 and strict.suppressed == ()
    assert 0 < loose.suppressed_records <= 0.04 * six[RECORDS].sum()
    assert loose.value < strict.value


@pytest.mark.parametrize("metric", ["loss", "discernibility"])
def test_distinct_l_diversity_is_searched_with_pruning(six, hierarchies, metric):
    models = [KAnonymity(5), DistinctLDiversity(2)]
    found = search_optimal(six, hierarchies, SIX, models, 0.04, metric, sensitive="salary-class")
    best = search_exhaustive(six, hierarchies, SIX, models, 0.04, metric, sensitive="salary-class")
    assert found.nodes_pruned > 0  # monotone with suppression
    assert _same(found.value, best.value)
    plain = search_optimal(six, hierarchies, SIX, [KAnonymity(5)], 0.04, metric)
    assert found.value >= plain.value  # an extra model can only cost


def test_entropy_l_diversity_with_suppression_checks_every_node(six, hierarchies):
    models = [KAnonymity(5), EntropyLDiversity(1.5)]
    found = search_optimal(six, hierarchies, SIX, models, 0.04, "loss", sensitive="salary-class")
    best = search_exhaustive(six, hierarchies, SIX, models, 0.04, "loss", sensitive="salary-class")
    assert found.nodes_pruned == 0  # not monotone with suppression: no predictive tagging
    assert _same(found.value, best.value)


def test_no_anonymous_node_gives_no_transformation(six, hierarchies):
    found = search_optimal(six, hierarchies, SIX, [KAnonymity(10**6)], 0.0, "loss")
    assert found.transformation is None and found.value is None and found.anonymous == ()


def test_suppression_limit_is_a_share_of_all_records():
    hierarchy = {"q": from_mapping("q", [("a", "*"), ("b", "*")])}
    # 71 records pass k = 71, 29 fail: a limit of 0.29 (0.29 * 100 = 28.999...) allows them.
    table = pd.DataFrame({"q": ["a", "b"], RECORDS: [71, 29]})
    assert search_optimal(table, hierarchy, ["q"], [KAnonymity(71)], 0.29).transformation.levels == (0,)
    assert search_optimal(table, hierarchy, ["q"], [KAnonymity(71)], 0.28).transformation.levels == (1,)


def test_all_eight_quasi_identifiers(adult, hierarchies):
    table = frequency_table(adult, EIGHT)
    found = search_optimal(table, hierarchies, EIGHT, [KAnonymity(10)], 0.04, "loss")
    assert found.nodes_total == 6480 and found.nodes_checked < found.nodes_total
    # Recount the chosen transformation's classes with plain pandas.
    general = table.copy()
    for column, level in found.transformation.by_column.items():
        general[column] = general[column].map(hierarchies[column].mapping(level))
    sizes = general.groupby(EIGHT)[RECORDS].sum()
    hidden = sizes.index.isin(list(found.suppressed))
    assert sizes[~hidden].min() >= 10
    assert sizes[hidden].sum() == found.suppressed_records <= 0.04 * table[RECORDS].sum()


def test_spark_output_is_k_anonymous(adult, hierarchies, six):
    k = 5
    found = search_optimal(six, hierarchies, SIX, [KAnonymity(k)], 0.04, "loss", sensitive="salary-class")
    released = apply_transformation(
        adult, hierarchies, found.transformation.by_column, found.suppressed
    ).toPandas()
    assert list(released.columns) == adult.columns
    hidden = (released[SIX] == SUPPRESSED).all(axis=1)
    assert hidden.sum() == found.suppressed_records > 0
    assert released.loc[~hidden].groupby(SIX).size().min() >= k
    original = adult.select("salary-class").toPandas()["salary-class"]
    assert released["salary-class"].value_counts().equals(original.value_counts())


# --- k counts subscribers ------------------------------------------------------

AGE = {
    "age": from_mapping(
        "age", [("21", "21-22", "*"), ("22", "21-22", "*"), ("23", "23-24", "*"), ("24", "23-24", "*")]
    )
}


@pytest.fixture(scope="module")
def visits(spark):
    # Subscriber A has three records: two at age 21, one at 22 (a data error, or a shared line).
    rows = [("A", 21), ("A", 21), ("A", 22), ("B", 23), ("C", 24), ("D", 23)]
    return spark.createDataFrame(rows, "subscriber string, age int")


def test_frequency_table_keeps_one_row_per_combination_and_unit(visits):
    table = frequency_table(visits, ["age"], unit="subscriber").sort_values(["age", "subscriber"])
    assert table.to_dict("list") == {
        "age": ["21", "22", "23", "23", "24"],
        "subscriber": ["A", "A", "B", "D", "C"],
        RECORDS: [2, 1, 1, 1, 1],
    }


def test_k_counts_subscribers_not_records(visits):
    table = frequency_table(visits, ["age"], unit="subscriber")
    # At level 1, "21-22" holds 3 records but one subscriber: A's two combinations merge,
    # so summing distinct subscribers per combination (2) would wrongly pass k = 2.
    by_subscriber = search_optimal(table, AGE, ["age"], [KAnonymity(2)], 0.0, unit="subscriber")
    by_record = search_optimal(table, AGE, ["age"], [KAnonymity(2)], 0.0)
    assert by_subscriber.transformation.levels == (2,)
    assert by_record.transformation.levels == (1,)
    # With suppression, A's class goes and the rest stays at level 1.
    suppressing = search_optimal(table, AGE, ["age"], [KAnonymity(2)], 0.5, unit="subscriber")
    assert suppressing.transformation.levels == (1,)
    assert suppressing.suppressed == (("21-22",),) and suppressing.suppressed_records == 3


def _adult_table(columns) -> pd.DataFrame:
    """Adult's frequency table from the CSV with pandas, rows in a shuffled order (no Spark)."""
    records = pd.read_csv(ADULT / "adult.csv", sep=";", dtype=str)
    table = records.groupby(columns).size().rename(RECORDS).reset_index()
    return table.sample(frac=1.0, random_state=3).reset_index(drop=True)


@pytest.mark.parametrize("extra", [None, "salary-class"])
def test_rolled_up_groupings_equal_grouping_the_whole_table(hierarchies, extra):
    # The search merges a less general node's classes instead of grouping every table row:
    # the classes, their numbering, sizes and sensitive histograms must be the same.
    encoded = encode(_adult_table([*EIGHT, *([extra] if extra else [])]), hierarchies, EIGHT, sensitive=extra)
    rng = np.random.default_rng(11)
    for _ in range(60):
        base = tuple(int(rng.integers(0, h + 1)) for h in encoded.heights)
        node = tuple(int(rng.integers(b, h + 1)) for b, h in zip(base, encoded.heights, strict=True))
        whole, rolled = group(encoded, node), group(encoded, node, group(encoded, base))
        assert np.array_equal(rolled.row_class, whole.row_class)
        assert np.array_equal(rolled.first_rows, whole.first_rows)
        assert np.array_equal(rolled.classes.records, whole.classes.records)
        assert np.array_equal(rolled.classes.size, whole.classes.size)
        if extra:
            assert np.array_equal(rolled.classes.sensitive, whole.classes.sensitive)


def test_eight_quasi_identifiers_search_matches_its_exhaustive_optimum_without_spark(hierarchies):
    # The bench's problem (6,480 nodes, k = 10, 4% suppression) on a table in another row order:
    # the roll-ups and per-class metrics must still find the exhaustive optimum.
    table = _adult_table(EIGHT)
    found = search_optimal(table, hierarchies, EIGHT, [KAnonymity(10)], 0.04, "loss")
    everything = search_exhaustive(table, hierarchies, EIGHT, [KAnonymity(10)], 0.04, "loss")
    assert found.transformation == everything.transformation
    assert _same(found.value, everything.value)
    assert found.value == pytest.approx(0.3160667402649313, rel=1e-12)  # as before the roll-ups
    assert found.suppressed_records == everything.suppressed_records == 1061
    assert found.nodes_checked == 1771
