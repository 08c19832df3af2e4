"""The independent k / l / t verifier.

Small tables carry answers worked out by hand in the tests; Li, Li and
Venkatasubramanian's t-closeness example (ARX's test2 table) carries the
paper's published distances; pycanon's anonymized adult tables carry the k and
l their file names promise (../shared/data, skipped when absent).
"""

from __future__ import annotations

import ast
import csv
import json
import math
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from transforms.kanon import verify as verify_module
from transforms.kanon.verify import verify

PYCANON = SHARED_DATA / "pycanon_adult"
ADULT = SHARED_DATA / "adult"
PYCANON_QIS = ["age", "education", "occupation", "relationship", "sex", "native-country"]


def string_frame(spark, columns: str, rows: list[tuple]):
    schema = StructType([StructField(name, StringType(), True) for name in columns.split()])
    return spark.createDataFrame(rows, schema)


def test_verifier_imports_only_pyspark_and_the_standard_library():
    tree = ast.parse(Path(verify_module.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    roots = {name.split(".")[0] for name in imported}
    assert roots - {"pyspark", "__future__"} <= sys.stdlib_module_names
    assert "pyspark" in roots


# Two classes and two suppressed rows; disease weights: A = flu 2, cold 1; B = cancer 2, flu 1, cold 1.
HAND_ROWS = [
    ("476**", "2*", "flu"),
    ("476**", "2*", "flu"),
    ("476**", "2*", "cold"),
    ("479**", "4*", "cancer"),
    ("479**", "4*", "cancer"),
    ("479**", "4*", "flu"),
    ("479**", "4*", "cold"),
    ("*", "*", "cold"),
    ("*", "*", "cancer"),
]


@pytest.fixture(scope="module")
def hand(spark):
    return verify(string_frame(spark, "zip age disease", HAND_ROWS), ["zip", "age"], sensitive="disease")


def test_hand_table_k_and_classes_leave_suppressed_rows_out(hand):
    assert (hand.rows, hand.suppressed_rows, hand.classes, hand.k) == (9, 2, 2, 3)


def test_hand_table_distinct_and_entropy_l(hand):
    assert hand.l_distinct == 2
    # A: p = (2/3, 1/3), exp(H) = 3 / 2^(2/3) = 1.89; B: p = (1/2, 1/4, 1/4), exp(H) = 2^1.5 = 2.83.
    assert hand.l_entropy == pytest.approx(3 / 2 ** (2 / 3))


def test_hand_table_recursive_c_per_l(hand):
    # l=1: A 2/3, B 2/4; l=2: A 2/1, B 2/(1+1); l=3: A has only two values.
    assert hand.recursive_c(1) == pytest.approx(2 / 3)
    assert hand.recursive_c(2) == pytest.approx(2.0)
    assert hand.recursive_c(3) == math.inf
    assert hand.recursive_c(7) == math.inf


def test_hand_table_t_against_the_whole_table_with_suppressed_rows(hand):
    # Whole table (9 rows): cancer, cold, flu 3 each. A = (0, 1/3, 2/3), B = (1/2, 1/4, 1/4).
    # Equal: A 1/2 (1/3 + 0 + 1/3) = 1/3, B 1/2 (1/6 + 1/12 + 1/12) = 1/6.
    assert hand.t_equal == pytest.approx(1 / 3)
    # Ordered (text: cancer < cold < flu): A cumulative -1/3, -1/3, 0 -> 2/3 / 2; B 1/6, 1/12, 0 -> 1/8.
    assert hand.sensitive_order == "text"
    assert hand.t_ordered == pytest.approx(1 / 3)


def test_report_dict_holds_numbers_and_column_names_only(hand):
    text = json.dumps(hand.to_dict(), allow_nan=False)
    for value in ("476", "479", "2*", "flu", "cold", "cancer"):
        assert value not in text
    # No class satisfies l = 3 (A has two values): infinity, written as null.
    expected = {"1": pytest.approx(2 / 3), "2": pytest.approx(2.0), "3": None}
    assert hand.to_dict()["recursive_c_by_l"] == expected
    assert hand.to_dict()["quasi_identifiers"] == ["zip", "age"]


# --- Li, Li and Venkatasubramanian 2007, on ARX's copy of their table --------------------------------


def li_table(spark, salary_suffix: str = ""):
    """test2.csv generalized like the paper's 3-diverse table: ZIP to 476**/479**,
    age to ARX's [20,30[ / [30,40[ / >=40."""
    with (ADULT / "test2_hierarchy_Age.csv").open(newline="") as handle:
        age_group = {row[0]: row[1] for row in csv.reader(handle, delimiter=";")}
    with (ADULT / "test2.csv").open(newline="") as handle:
        rows = [
            (row["ZIPCode"][:3] + "**", age_group[row["Age"]], row["Salary"] + salary_suffix, row["Disease"])
            for row in csv.DictReader(handle, delimiter=";")
        ]
    return string_frame(spark, "zip age salary disease", rows)


@pytest.mark.skipif(not ADULT.is_dir(), reason="../shared/data/adult not present")
def test_li_example_ordered_distance_matches_the_paper(spark):
    result = verify(li_table(spark), ["zip", "age"], sensitive="salary")
    assert (result.k, result.classes, result.l_distinct) == (3, 3, 3)
    # Paper, section 4: D[{3k,4k,5k}, Q] = 0.375 (the worst class), D[{6k,8k,11k}, Q] = 0.167.
    assert result.sensitive_order == "numeric"
    assert result.t_ordered == pytest.approx(0.375)
    # Each class puts 1/3 on three of nine equally likely values: 1/2 (3 * 2/9 + 6 * 1/9).
    assert result.t_equal == pytest.approx(2 / 3)


@pytest.mark.skipif(not ADULT.is_dir(), reason="../shared/data/adult not present")
def test_li_example_in_text_order_when_values_are_not_numbers(spark):
    result = verify(li_table(spark, salary_suffix="k"), ["zip", "age"], sensitive="salary")
    assert result.sensitive_order == "text"
    # Order 10k, 11k, 3k, ..., 9k; class {3k,4k,5k}: cumulative -1,-2,0,2,4,3,2,1,0 (ninths) -> 15/72.
    assert result.t_ordered == pytest.approx(15 / 72)


@pytest.mark.skipif(not ADULT.is_dir(), reason="../shared/data/adult not present")
def test_li_example_disease_is_three_diverse(spark):
    result = verify(li_table(spark), ["zip", "age"], sensitive="disease")
    assert result.l_distinct == 3
    assert result.l_entropy == pytest.approx(3.0)
    assert result.recursive_c(3) == pytest.approx(1.0)


# --- units, suppression, nulls ---------------------------------------------------------------------

UNIT_ROWS = [
    ("a", "s1", "flu"),
    ("a", "s1", "flu"),
    ("a", "s1", "flu"),
    ("a", "s2", "cold"),
    ("b", "s3", "flu"),
    ("b", "s4", "flu"),
    ("b", "s5", "cold"),
]


def test_k_counts_subscribers_not_rows(spark):
    df = string_frame(spark, "region subscriber disease", UNIT_ROWS)
    by_rows = verify(df, ["region"], sensitive="disease")
    by_units = verify(df, ["region"], sensitive="disease", unit="subscriber")
    assert (by_rows.k, by_units.k) == (3, 2)
    # Class a weighs flu 3 : cold 1 by rows, 1 : 1 by subscribers; class b is 2 : 1 either way.
    assert by_rows.l_entropy == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    assert by_units.l_entropy == pytest.approx(3 / 2 ** (2 / 3))
    assert by_units.recursive_c(2) == pytest.approx(2.0)


def test_a_subscriber_in_two_classes_counts_in_each(spark):
    df = string_frame(spark, "region subscriber", [("a", "s1"), ("a", "s2"), ("b", "s1"), ("b", "s3")])
    assert verify(df, ["region"], unit="subscriber").k == 2


def test_rows_without_a_unit_add_nothing_to_k(spark):
    df = string_frame(spark, "region subscriber", [("a", "s1"), ("a", None), ("a", None), ("b", "s2")])
    assert verify(df, ["region"]).k == 1
    assert verify(df, ["region"], unit="subscriber").k == 1


def test_a_class_of_unitless_rows_has_k_and_l_zero(spark):
    rows = [("a", "s1", "flu"), ("a", "s2", "cold"), ("b", None, "flu"), ("b", None, "cold")]
    df = string_frame(spark, "region subscriber disease", rows)
    result = verify(df, ["region"], sensitive="disease", unit="subscriber")
    assert (result.classes, result.k, result.l_distinct, result.l_entropy) == (2, 0, 0, 0.0)
    assert result.recursive_c(1) == math.inf


def test_only_rows_starred_in_every_quasi_identifier_are_suppressed(spark):
    schema = StructType([StructField("zip", StringType(), True), StructField("age", IntegerType(), True)])
    rows = [("*", None), ("*", None), ("476**", 30), ("476**", 30), ("*", 30), ("*", 30), ("*", 30)]
    df = spark.createDataFrame(rows, schema)
    # An integer age can never equal the marker; (`*`, null) rows are one class by GROUP BY rules.
    result = verify(df, ["zip", "age"])
    assert (result.rows, result.suppressed_rows, result.classes, result.k) == (7, 0, 3, 2)
    starred = string_frame(spark, "zip age", [("*", "*"), ("*", "*"), ("476**", "3*")])
    result = verify(starred, ["zip", "age"])
    assert (result.rows, result.suppressed_rows, result.classes, result.k) == (3, 2, 1, 1)


def test_a_fully_suppressed_table_has_no_classes_and_no_k(spark):
    df = string_frame(spark, "zip disease", [("*", "flu"), ("*", "cold")])
    result = verify(df, ["zip"], sensitive="disease")
    assert (result.rows, result.suppressed_rows, result.classes, result.k) == (2, 2, 0, None)
    assert result.l_distinct is None
    assert result.recursive_c(2) is None
    assert json.dumps(result.to_dict(), allow_nan=False)


def test_null_sensitive_values_count_as_a_value(spark):
    df = string_frame(spark, "zip disease", [("1", None), ("1", "flu"), ("2", "flu"), ("2", "flu")])
    result = verify(df, ["zip"], sensitive="disease")
    assert result.l_distinct == 1
    # Table: null 1/4, flu 3/4; zip 1: 1/2, 1/2 -> 1/2 (1/4 + 1/4); zip 2: 0, 1 -> 1/4.
    assert result.t_equal == pytest.approx(0.25)
    assert result.t_ordered == pytest.approx(0.25)  # m = 2: ordered equals equal distance


def test_bad_arguments_name_the_columns(spark):
    df = string_frame(spark, "zip disease", [("1", "flu")])
    with pytest.raises(ValueError, match="age"):
        verify(df, ["zip", "age"])
    with pytest.raises(ValueError, match="both quasi-identifier and sensitive"):
        verify(df, ["zip", "disease"], sensitive="disease")
    with pytest.raises(ValueError, match="needs a sensitive attribute"):
        verify(df, ["zip"]).recursive_c(2)


# --- pycanon's known answers -------------------------------------------------------------------------

PYCANON_CASES = [
    pytest.param(name, rows, k, l_distinct, id=name)
    for name, rows, k, l_distinct in [
        ("adult_anonymized_3.csv", 18_203, 3, 1),
        ("adult_anonymized_10.csv", 7_303, 10, 1),
        ("adult_anonymized_20.csv", 2_428, 20, 1),
        ("adult_k3_anonymized_l2.csv", 9_800, 3, 2),
        ("adult_k10_anonymized_l2.csv", 4_975, 10, 2),
        ("adult_k20_anonymized_l2.csv", 1_627, 20, 2),
    ]
]


@pytest.mark.skipif(not PYCANON.is_dir(), reason="../shared/data/pycanon_adult not present")
@pytest.mark.parametrize(
    ("name", "rows", "k", "l_distinct"), PYCANON_CASES, ids=[c[0] for c in PYCANON_CASES]
)
def test_pycanon_adult_tables_have_their_known_k_and_l(spark, name, rows, k, l_distinct):
    # QIs and sensitive attribute as in pycanon's README adult example.
    df = spark.read.csv(str(PYCANON / name), header=True)
    result = verify(df, PYCANON_QIS, sensitive="salary-class")
    assert (result.rows, result.suppressed_rows) == (rows, 0)
    assert (result.k, result.l_distinct) == (k, l_distinct)


def brute_force(rows: list[dict], qis: list[str], sensitive: str) -> dict[str, float]:
    """The same measures, by the textbook formulas, in plain Python (row weights)."""
    classes: dict[tuple, dict[str, int]] = {}
    for row in rows:
        counts = classes.setdefault(tuple(row[q] for q in qis), {})
        counts[row[sensitive]] = counts.get(row[sensitive], 0) + 1
    table: dict[str, int] = {}
    for row in rows:
        table[row[sensitive]] = table.get(row[sensitive], 0) + 1
    order = sorted(table, key=float) if all(v.isdigit() for v in table) else sorted(table)
    share = {v: table[v] / len(rows) for v in order}
    entropies, c2, equal, ordered = [], [], [], []
    for counts in classes.values():
        total = sum(counts.values())
        entropies.append(math.exp(-sum(n / total * math.log(n / total) for n in counts.values())))
        ranked = sorted(counts.values(), reverse=True)
        c2.append(ranked[0] / sum(ranked[1:]) if len(ranked) > 1 else math.inf)
        differences = [counts.get(v, 0) / total - share[v] for v in order]
        equal.append(sum(abs(d) for d in differences) / 2)
        running = [sum(differences[: i + 1]) for i in range(len(order))]
        ordered.append(sum(abs(r) for r in running) / (len(order) - 1))
    return {
        "l_entropy": min(entropies),
        "recursive_c2": max(c2),
        "t_equal": max(equal),
        "t_ordered": max(ordered),
    }


@pytest.mark.skipif(not PYCANON.is_dir(), reason="../shared/data/pycanon_adult not present")
@pytest.mark.parametrize(
    ("qis", "sensitive"),
    # This table holds only married US men: the salary class is what splits it into unequal classes.
    [(PYCANON_QIS, "salary-class"), (["salary-class"], "occupation"), (["salary-class"], "age")],
    ids=["salary-class", "occupation", "age"],
)
def test_measures_agree_with_a_brute_force_count_on_a_real_table(spark, qis, sensitive):
    path = PYCANON / "adult_k20_anonymized_l2.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = brute_force(rows, qis, sensitive)
    result = verify(spark.read.csv(str(path), header=True), qis, sensitive=sensitive)
    assert result.sensitive_order == ("numeric" if sensitive == "age" else "text")
    assert result.l_entropy == pytest.approx(expected["l_entropy"])
    assert result.recursive_c(2) == pytest.approx(expected["recursive_c2"])
    assert result.t_equal == pytest.approx(expected["t_equal"])
    assert result.t_ordered == pytest.approx(expected["t_ordered"])
