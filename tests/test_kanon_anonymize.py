"""The k-anonymity engine's one entry point, `transforms.kanon.anonymize`, on ARX's Adult table.

Both algorithms: k holds on the output (counted here again, not read from the engine's own
report), what the result reports matches its frame, and the engine refuses (rather than
returns) what it cannot anonymize within the suppression limit or what fails verification.
"""

from __future__ import annotations

import dataclasses

import pytest
from conftest import SHARED_DATA
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.kanon.hierarchy import find_hierarchies, from_mapping
from transforms.kanon import (
    Anonymization,
    AnonymizationConfig,
    KAnonymityError,
    Requirements,
    anonymize,
    engine,
)

ADULT = SHARED_DATA / "adult"
QIS = ("age", "sex", "race", "marital-status", "education", "native-country")


@pytest.fixture(scope="module")
def adult(spark) -> DataFrame:
    if not (ADULT / "adult.csv").is_file():
        pytest.skip(f"shared test data not found: {ADULT}")
    df = spark.read.option("header", True).option("sep", ";").csv(str(ADULT / "adult.csv"))
    return df.persist()


@pytest.fixture(scope="module")
def hierarchies():
    return find_hierarchies(ADULT, QIS)


def is_suppressed(qis=QIS) -> Column:
    """ARX's suppressed record: every quasi-identifier is '*'."""
    suppressed = F.lit(True)
    for column in qis:
        suppressed = suppressed & (F.col(column) == "*")
    return suppressed


def smallest_class(output: DataFrame, qis=QIS) -> int:
    """Fewest records sharing the quasi-identifiers, suppressed records left out."""
    classes = output.where(~is_suppressed(qis)).groupBy(*qis).count()
    return classes.agg(F.min("count")).first()[0]


def suppressed_count(output: DataFrame, qis=QIS) -> int:
    return output.where(is_suppressed(qis)).count()


def test_optimal_holds_k_on_adult_within_the_suppression_limit(adult, hierarchies):
    rows = adult.count()
    config = AnonymizationConfig(hierarchies, Requirements(k=10, suppression_limit=0.02))
    result = anonymize(adult, config)
    try:
        assert isinstance(result, Anonymization) and result.algorithm == "optimal"
        assert result.data.columns == adult.columns
        assert result.data.count() == rows  # suppressed records are kept, as '*'
        assert smallest_class(result.data) >= 10
        suppressed = suppressed_count(result.data)
        assert suppressed == result.suppressed_records <= 0.02 * rows
        assert set(result.transformation) == set(QIS)
        assert all(0 <= result.transformation[q] <= hierarchies[q].height for q in QIS)
        assert result.transformation != dict.fromkeys(QIS, 0)  # Adult is not 10-anonymous as it is
        assert result.verification.k >= 10 and result.verification.suppressed_rows == suppressed
        assert 0 < result.information_loss["loss"] < 1
        summary = result.summary()
        assert summary["algorithm"] == "optimal" and summary["metric"] == "loss"
        assert summary["transformation"] == result.transformation
        assert summary["lattice"]["anonymous"] >= 1
    finally:
        result.unpersist()


def test_mondrian_holds_k_on_adult_without_suppression(adult, hierarchies):
    config = AnonymizationConfig(hierarchies, Requirements(k=10), algorithm="mondrian")
    result = anonymize(adult, config)
    try:
        assert result.algorithm == "mondrian" and result.suppressed_records == 0
        assert result.data.count() == adult.count()
        assert smallest_class(result.data) >= 10
        assert suppressed_count(result.data) == 0
        classes = result.data.groupBy(*QIS).count().count()
        assert result.partitions.classes == classes == result.verification.classes
        assert result.partitions.smallest_class == result.verification.k >= 10
        assert 0 < result.information_loss["ncp"] < 1
        summary = result.summary()
        assert summary["classes"] == classes and "transformation" not in summary
        assert summary["risk"]["prosecutor"]["highest"] == 1 / result.partitions.smallest_class
    finally:
        result.unpersist()


def test_k_counts_persons_when_a_unit_is_given(adult, hierarchies):
    """Every person has two identical records: k = 10 persons needs classes of 20 records,
    where counting records would stop at 10 (5 persons)."""
    persons = adult.withColumn("person", F.monotonically_increasing_id().cast("string")).persist()
    twice = persons.unionByName(persons)
    config = AnonymizationConfig(hierarchies, Requirements(k=10, suppression_limit=0.02), unit="person")
    result = anonymize(twice, config)
    try:
        released = result.data.where(~is_suppressed())
        per_class = released.groupBy(*QIS).agg(F.countDistinct("person").alias("persons"))
        assert per_class.agg(F.min("persons")).first()[0] >= 10
        assert smallest_class(result.data) >= 20
        assert result.verification.unit == "person" and result.verification.k >= 10
    finally:
        result.unpersist()
        persons.unpersist()


@pytest.mark.parametrize("algorithm", ["optimal", "mondrian"])
def test_a_k_beyond_the_table_is_refused(adult, hierarchies, algorithm):
    config = AnonymizationConfig(hierarchies, Requirements(k=40_000), algorithm=algorithm)
    expected = "no generalization of age, sex" if algorithm == "optimal" else "fewer than k = 40000"
    with pytest.raises(KAnonymityError, match=expected):
        anonymize(adult, config)


def test_k_out_of_reach_within_the_suppression_limit_is_refused(adult):
    """Ages in decades at most (no '*' level): k = 3,000 leaves the teens and everyone over 60
    in classes too small, far more than 1% of the records, so a 1% limit refuses what a 50%
    limit allows (by suppressing exactly those classes)."""
    decades = from_mapping("age", [(str(a), f"{a // 10 * 10}s") for a in range(17, 91)])
    for limit, refused in ((0.01, True), (0.5, False)):
        config = AnonymizationConfig({"age": decades}, Requirements(k=3_000, suppression_limit=limit))
        if refused:
            with pytest.raises(KAnonymityError, match=r"no generalization of age satisfies the requirements "
                                                      r"within a suppression limit of 0\.01"):
                anonymize(adult, config)
            continue
        result = anonymize(adult, config)
        assert result.transformation == {"age": 1}
        assert smallest_class(result.data, ("age",)) >= 3_000
        assert 0.01 * adult.count() < result.suppressed_records == suppressed_count(result.data, ("age",))
        result.unpersist()


def test_mondrian_refuses_l_diversity(adult, hierarchies):
    config = AnonymizationConfig(hierarchies, Requirements(k=5, l=2, sensitive="salary-class"),
                                 algorithm="mondrian")
    with pytest.raises(KAnonymityError, match="mondrian enforces k only"):
        anonymize(adult, config)


def test_an_output_the_verifier_finds_short_is_refused(adult, hierarchies, monkeypatch):
    real_verify = engine.verify

    def lying_engine(df, qis, **kwargs):  # as if the engine had left a class of 3
        return dataclasses.replace(real_verify(df, qis, **kwargs), k=3)

    monkeypatch.setattr(engine, "verify", lying_engine)
    config = AnonymizationConfig(hierarchies, Requirements(k=10, suppression_limit=0.02))
    with pytest.raises(KAnonymityError, match="failed independent verification: k is 3, below 10"):
        anonymize(adult, config)


def test_the_config_refuses_what_no_engine_runs(hierarchies):
    with pytest.raises(ValueError, match="algorithm must be one of"):
        AnonymizationConfig(hierarchies, Requirements(k=5), algorithm="greedy")
    with pytest.raises(ValueError, match="metric must be one of"):
        AnonymizationConfig(hierarchies, Requirements(k=5), metric="precision")
    with pytest.raises(ValueError, match="at least one quasi-identifier"):
        AnonymizationConfig({}, Requirements(k=5))
    config = AnonymizationConfig(hierarchies, Requirements(k=5))
    assert config.quasi_identifiers == QIS and config.k == 5
    with pytest.raises(TypeError):
        config.hierarchies["age"] = hierarchies["sex"]  # frozen, its hierarchies too
