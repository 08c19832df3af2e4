"""Information loss, privacy models and re-identification risk against answers worked out by hand.

The table is ARX's toy `test2.csv` (9 patients: ZIPCode, Age, Salary, Disease)
with its hierarchies; ZIPCode and Age are the quasi-identifiers. Every
expected value below is computed in the test from the definitions, not taken
from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from core.kanon.hierarchy import find_hierarchies
from core.kanon.lattice import search_exhaustive, search_optimal
from core.kanon.metrics import RECORDS, encode, group, information_loss, reidentification_risk
from core.kanon.models import (
    ClassStats,
    DistinctLDiversity,
    EntropyLDiversity,
    EqualDistanceTCloseness,
    KAnonymity,
    OrderedDistanceTCloseness,
    RecursiveCLDiversity,
)

ADULT = SHARED_DATA / "adult"
QIS = ["ZIPCode", "Age"]
N = 9


@pytest.fixture(scope="module")
def patients() -> pd.DataFrame:
    return pd.read_csv(ADULT / "test2.csv", sep=";", dtype=str)


@pytest.fixture(scope="module")
def table(patients) -> pd.DataFrame:
    return patients.groupby(QIS).size().rename(RECORDS).reset_index()


@pytest.fixture(scope="module")
def hierarchies():
    return find_hierarchies(ADULT, QIS)


def approx(value: float):
    return pytest.approx(value, rel=1e-12, abs=1e-12)


# --- information loss ----------------------------------------------------------


def test_the_original_table_loses_nothing(table, hierarchies):
    found = information_loss(table, hierarchies, {"ZIPCode": 0, "Age": 0})
    assert found.loss == approx(0.0) and found.entropy == approx(0.0) and found.ncp == approx(0.0)
    assert found.discernibility == N  # nine classes of one
    assert found.aecs == 1.0


def test_three_classes_of_three(table, hierarchies):
    # ZIPCode at 476**/479** and Age at decades: {476**, [20,30[} x3, {479**, >=40} x3, {476**, [30,40[} x3.
    found = information_loss(table, hierarchies, {"ZIPCode": 2, "Age": 1})
    assert found.discernibility == 3 * 3**2
    assert found.aecs == N / 3
    # Loss: 476** covers 6 of the 9 ZIP codes (6 records), 479** covers 3 (3 records);
    # each decade covers 3 of the 9 ages. Normalized as (sum - N/|A|) / (N - N/|A|).
    zip_sum, age_sum = 6 * 6 / 9 + 3 * 3 / 9, 9 * 3 / 9
    zip_loss, age_loss = (zip_sum - 1) / (N - 1), (age_sum - 1) / (N - 1)
    assert (zip_loss, age_loss) == (approx(0.5), approx(0.25))
    assert found.loss_per_attribute == {"ZIPCode": approx(zip_loss), "Age": approx(age_loss)}
    assert found.loss == approx(math.sqrt((1 + zip_loss) * (1 + age_loss)) - 1)
    # Entropy: every original value is unique; a record costs log2(size of its generalized value).
    assert found.entropy == approx(6 * math.log2(6) + 3 * math.log2(3) + 9 * math.log2(3))
    # NCP: 476** costs 6/9, 479** 3/9, a decade 3/9; averaged over records and attributes.
    assert found.ncp == approx(((6 * 6 / 9 + 3 * 3 / 9) / N + 3 / 9) / 2)


def test_suppressed_records_count_as_fully_generalized(table, hierarchies):
    # ZIPCode at 4767*/4760*/4790*, Age at decades: classes of 2, 1, 3, 2, 1 records.
    # The two single records (47602, 22) and (47673, 36) are suppressed.
    suppressed = [("4760*", "[20,30["), ("4767*", "[30,40[")]
    found = information_loss(table, hierarchies, {"ZIPCode": 1, "Age": 1}, suppressed)
    assert found.discernibility == 2**2 + 3**2 + 2**2 + 2 * N  # each suppressed record charged N
    assert found.aecs == N / (3 + 1)  # the suppressed records form one more class
    # Loss per attribute: 7 kept records x 3/9, 2 suppressed x 1.
    each = (7 * 3 / 9 + 2 - 1) / (N - 1)
    assert each == approx(5 / 12)
    assert found.loss_per_attribute == {"ZIPCode": approx(each), "Age": approx(each)}
    assert found.loss == approx(each)
    # Entropy: generalization of all 9 records (log2 3 each, two attributes), plus the two
    # suppressed records' distinct generalized values going to * (1 bit each, per attribute).
    assert found.entropy == approx(2 * 9 * math.log2(3) + 2 * 2 * 1.0)
    assert found.ncp == approx((7 * 3 / 9 + 2) / N)


def test_full_suppression_is_the_maximal_loss(table, hierarchies):
    everything = [("4767*", "[20,30["), ("4760*", "[20,30["), ("4790*", ">=40"), ("4760*", "[30,40["),
                  ("4767*", "[30,40[")]  # fmt: skip
    found = information_loss(table, hierarchies, {"ZIPCode": 1, "Age": 1}, everything)
    assert found.loss == approx(1.0) and found.ncp == approx(1.0)
    assert found.discernibility == N * N and found.aecs == N


def test_search_on_the_toy_table_matches_its_exhaustive_optimum(table, hierarchies):
    for metric in ("loss", "entropy", "discernibility", "aecs", "ncp"):
        for limit in (0.0, 2 / 9):
            found = search_optimal(table, hierarchies, QIS, [KAnonymity(2)], limit, metric)
            best = search_exhaustive(table, hierarchies, QIS, [KAnonymity(2)], limit, metric)
            assert found.value == approx(best.value), (metric, limit)


# --- k counts units ------------------------------------------------------------


def test_class_size_counts_distinct_units_across_merged_combinations(hierarchies):
    # Subscriber s1 appears under 47677 and 47678, which merge at 4767*: one subscriber, not two.
    table = pd.DataFrame(
        {"ZIPCode": ["47677", "47678", "47678", "47602"], "Age": ["29", "27", "27", "22"],
         "unit": ["s1", "s1", "s2", "s3"], RECORDS: [4, 1, 2, 1]}
    )  # fmt: skip
    encoded = encode(table, hierarchies, QIS, unit="unit")
    classes = group(encoded, (1, 1)).classes  # 4767* [20,30[ and 4760* [20,30[
    assert classes.records.tolist() == [7, 1]
    assert classes.size.tolist() == [2, 1]


# --- privacy models --------------------------------------------------------------


def stats(histogram, overall=None, values=None) -> ClassStats:
    histogram = np.array(histogram)
    records = histogram.sum(axis=1)
    overall = histogram.sum(axis=0) if overall is None else np.array(overall)
    names = tuple(values or (str(i) for i in range(histogram.shape[1])))
    return ClassStats(records, records, histogram, overall, names)


def test_k_anonymity_counts_class_size():
    assert KAnonymity(3).satisfied(stats([[2, 1], [1, 1]])).tolist() == [True, False]


def test_distinct_l_diversity_counts_values_present():
    assert DistinctLDiversity(2).satisfied(stats([[5, 0], [1, 1]])).tolist() == [False, True]


def test_entropy_l_diversity():
    # [1, 1]: entropy exactly 1 bit = log2(2), passes; [3, 1]: 0.811 bits, fails.
    assert EntropyLDiversity(2).satisfied(stats([[1, 1], [3, 1], [4, 0]])).tolist() == [True, False, False]
    # [3, 3, 3]: log2(3) exactly, the boundary passes despite rounding.
    assert EntropyLDiversity(3).satisfied(stats([[3, 3, 3], [4, 3, 2]])).tolist() == [True, False]


def test_recursive_cl_diversity():
    # r1 < c * (r_l + ... + r_m), sorted descending.
    counts = stats([[3, 1, 0], [2, 1, 1], [4, 0, 0]])
    assert RecursiveCLDiversity(3, 2).satisfied(counts).tolist() == [
        False,
        True,
        False,
    ]  # 3 < 3*1 no; 2 < 3*2
    assert RecursiveCLDiversity(4, 2).satisfied(counts).tolist() == [True, True, False]  # 3 < 4*1
    assert RecursiveCLDiversity(2, 3).satisfied(counts).tolist() == [False, False, False]  # 2 < 2*1 no
    assert RecursiveCLDiversity(3, 3).satisfied(counts).tolist() == [False, True, False]  # 2 < 3*1


def test_equal_distance_t_closeness():
    # Whole table 50/50; class [3, 1] is 1/2 * (|3/4 - 1/2| + |1/4 - 1/2|) = 0.25 away.
    counts = stats([[3, 1], [2, 2]], overall=[5, 5])
    assert EqualDistanceTCloseness(0.25).satisfied(counts).tolist() == [True, True]
    assert EqualDistanceTCloseness(0.2).satisfied(counts).tolist() == [False, True]


def test_ordered_distance_t_closeness():
    # Values 9 < 10 < 100 (numeric order, not text order), whole table uniform.
    # Only "10" (the middle): steps -1/3, 1/3, 0 -> 2/3 / (m-1) = 1/3; only "9" (the lowest):
    # steps 2/3, 1/3, 0 -> 1 / (m-1) = 0.5.
    counts = stats([[1, 0, 0], [0, 0, 1]], overall=[1, 1, 1], values=("10", "100", "9"))
    assert OrderedDistanceTCloseness(0.4).satisfied(counts).tolist() == [True, False]
    assert OrderedDistanceTCloseness(0.5).satisfied(counts).tolist() == [True, True]
    given = OrderedDistanceTCloseness(0.4, order=("10", "9", "100"))  # now 9 is in the middle
    assert given.satisfied(counts).tolist() == [False, True]


def test_monotonicity_with_and_without_suppression():
    models = [KAnonymity(2), DistinctLDiversity(2), EntropyLDiversity(2), RecursiveCLDiversity(3, 2),
              EqualDistanceTCloseness(0.2), OrderedDistanceTCloseness(0.2)]  # fmt: skip
    assert [m.monotone(0.0) for m in models] == [True] * 6
    assert [m.monotone(0.05) for m in models] == [True, True, False, False, False, False]


def test_models_on_a_generalized_table(patients, hierarchies):
    # At ZIPCode 476**/479** and Age decades the classes hold these diseases:
    # 476** [20,30[: gastric ulcer, gastritis, stomach cancer; 479** >=40: gastritis, flu,
    # bronchitis; 476** [30,40[: bronchitis, pneumonia, stomach cancer. Three classes of three
    # distinct diseases, DM 27: the best 3-anonymous, distinct-3-diverse transformation.
    table = patients.groupby([*QIS, "Disease"]).size().rename(RECORDS).reset_index()
    models = [KAnonymity(3), DistinctLDiversity(3)]
    found = search_optimal(table, hierarchies, QIS, models, 0.0, "discernibility", sensitive="Disease")
    assert found.value == 27 and found.suppressed_records == 0
    assert (2, 1) in found.anonymous and (1, 1) not in found.anonymous
    # Each of those classes holds three diseases once: entropy exactly log2(3), which passes
    # entropy 3-diversity at its boundary, so the same optimum.
    strict = search_optimal(table, hierarchies, QIS, [EntropyLDiversity(3)], 0.0, "discernibility",
                            sensitive="Disease")  # fmt: skip
    assert strict.value == 27


# --- re-identification risk ----------------------------------------------------

SINGLES = [("4760*", "[20,30["), ("4767*", "[30,40[")]
LEVELS = {"ZIPCode": 1, "Age": 1}


def test_risk_without_a_population(table, hierarchies):
    # Released classes of 2, 3 and 2 records (7 records); the 2 suppressed are left out.
    risk = reidentification_risk(table, hierarchies, LEVELS, threshold=0.4, suppressed=SINGLES)
    assert risk.prosecutor.highest == approx(1 / 2)
    assert risk.prosecutor.average == approx(3 / 7)  # classes / records
    assert risk.prosecutor.records_at_risk == approx(4 / 7)  # the two classes of 2: 1/2 > 0.4
    assert risk.journalist == risk.prosecutor  # the table is its own population
    assert risk.marketer == approx(3 / 7)


def test_risk_threshold_is_strict(table, hierarchies):
    risk = reidentification_risk(table, hierarchies, LEVELS, threshold=0.5, suppressed=SINGLES)
    assert risk.prosecutor.records_at_risk == 0.0  # 1/2 is not above 0.5


def test_journalist_and_marketer_risk_with_a_population(table, hierarchies):
    population = table.assign(**{RECORDS: table[RECORDS] * 2})  # every class twice as large
    risk = reidentification_risk(
        table, hierarchies, LEVELS, threshold=0.3, suppressed=SINGLES, population=population
    )
    assert risk.prosecutor.highest == approx(1 / 2)
    assert risk.journalist.highest == approx(1 / 4)
    # max(classes / sum F, sum f/F / n) = max(3 / 14, (2/4 + 3/6 + 2/4) / 7)
    assert risk.journalist.average == approx(max(3 / 14, 1.5 / 7))
    assert risk.journalist.records_at_risk == 0.0  # 1/4, 1/6 <= 0.3
    assert risk.marketer == approx(1.5 / 7)


def test_a_population_must_contain_the_data(table, hierarchies):
    with pytest.raises(ValueError, match="population"):
        reidentification_risk(table, hierarchies, LEVELS, threshold=0.3, population=table.iloc[:3])
