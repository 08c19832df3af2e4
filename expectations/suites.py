"""Great Expectations suites, built in code from the canonical specs.

Each builder returns a fresh `gx.ExpectationSuite` that belongs to no Data
Context (nothing is added to a store), so building a suite on every scheduled
run cannot collide with an earlier one, and needs no context at all.
`expectations.runner.validate_dataframe` runs them.

- `build_raw_suite`: the typed canonical dataset of one source, as ingest
  writes it: exact columns, Spark types, required keys, ranges, allowed values,
  and for daily sources every event inside the run's day.
- `build_protected_suite`: the protected zone: exactly the columns the protect
  stage keeps, a well-formed pseudonym, and no identifier-shaped string.
- `build_release_suite`: a released aggregate: exact columns, non-negative
  counts, and no identifier-shaped string.

"Identifier-shaped" means what `expectations.detectors` says, the same
detectors `kr-reports scan` runs: one expectation per column and detector,
whose meta names both. A detector that is a regex alone is GX's
`ExpectColumnValuesToNotMatchRegex` (Spark's `rlike`, as in the shared
predicate); one with a Luhn check is `ExpectColumnValuesToNotBeIdentifierShaped`,
defined here, which evaluates the shared Spark SQL predicate. Both are column
map expectations, so GX computes all of them in one Spark aggregation.
(`UnexpectedRowsExpectation` could run the predicate too, but costs two or more
Spark jobs, each a full pass, per column and detector.)
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

from core.cells import PUBLISHED, STATUS, STATUSES

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import SparkDFExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation, Expectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)
from great_expectations.expectations.row_conditions import Column as GxColumn
from pyspark.sql import Column
from pyspark.sql import functions as F

from core.schemas import FieldSpec, SourceSpec
from expectations.detectors import detector_sql, detectors, identifier_patterns

E = gx.expectations

# FieldSpec.dtype (Spark SQL name) -> the pyspark.sql.types class name that
# ExpectColumnValuesToBeOfType checks with isinstance on Spark.
SPARK_TYPE_NAMES: dict[str, str] = {
    "string": "StringType",
    "int": "IntegerType",
    "bigint": "LongType",
    "double": "DoubleType",
    "date": "DateType",
    "timestamp": "TimestampType",
    "boolean": "BooleanType",
}

PSEUDONYM_COLUMN = "subscriber"
PSEUDONYM_REGEX = "^[0-9a-f]{64}$"


class ColumnValuesNotIdentifierShaped(ColumnMapMetricProvider):
    """Map metric: a value is expected when the detector's shared predicate does not flag it."""

    condition_metric_name = "column_values.kr_not_identifier_shaped"
    condition_value_keys = ("detector",)

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column: Column, detector: str, **kwargs: Any) -> Column:
        name = kwargs["_accessor_domain_kwargs"]["column"]
        return ~F.expr(detector_sql(detector, name))


class ExpectColumnValuesToNotBeIdentifierShaped(ColumnMapExpectation):
    """Expect no value of the column to be flagged by the named identifier detector.

    The detector's Spark SQL predicate (`expectations.detectors`) decides, Luhn
    check included; null values are ignored. Spark data sources only.
    """

    detector: str
    map_metric: ClassVar[str] = "column_values.kr_not_identifier_shaped"
    success_keys: ClassVar[tuple[str, ...]] = ("detector", "mostly")
    args_keys: ClassVar[tuple[str, ...]] = ("column", "detector")

    @pydantic.validator("detector")
    def _known_detector(cls, detector: str) -> str:
        if detector not in identifier_patterns():
            raise ValueError(f"unknown detector {detector!r}")
        return detector


def build_raw_suite(source: SourceSpec, day: datetime.date | None) -> gx.ExpectationSuite:
    """Suite `raw_<source>` for the typed canonical DataFrame of one source.

    `day` is the run's day; a daily source (one with an event-time column) needs
    it, and every event must fall in [day 00:00, next day 00:00) UTC, the Spark
    session's time zone. A source without an event time ignores it.
    """
    if source.is_daily and day is None:
        raise ValueError(f"source {source.name} is daily: build_raw_suite needs the run's day")
    expectations: list[Expectation] = [
        E.ExpectTableColumnsToMatchOrderedList(column_list=source.column_names)
    ]
    for field in source.fields:
        expectations.extend(_raw_field_expectations(field))
    if source.event_time is not None and day is not None:
        start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
        expectations.append(
            E.ExpectColumnValuesToBeBetween(
                column=source.event_time,
                min_value=start,
                max_value=start + datetime.timedelta(days=1),
                strict_max=True,
            )
        )
    meta = {"source": source.name, "day": day.isoformat() if day is not None else None}
    return _suite(f"raw_{source.name}", expectations, meta)


def build_protected_suite(
    source: SourceSpec, columns: Sequence[str], string_columns: Sequence[str]
) -> gx.ExpectationSuite:
    """Suite `protected_<source>` for the protect stage's output of one source.

    `columns` are what the policy says the protected dataset holds (in order);
    `string_columns` are the ones the identifier detectors scan.
    """
    expectations: list[Expectation] = [
        E.ExpectTableColumnsToMatchOrderedList(column_list=list(columns)),
        E.ExpectColumnValuesToNotBeNull(column=PSEUDONYM_COLUMN),
        E.ExpectColumnValuesToMatchRegex(column=PSEUDONYM_COLUMN, regex=PSEUDONYM_REGEX),
        *_detector_expectations(string_columns),
    ]
    return _suite(f"protected_{source.name}", expectations, {"source": source.name})


def build_release_suite(
    expected_columns: list[str],
    count_columns: list[str],
    *,
    string_columns: Sequence[str] | None = None,
    report: str | None = None,
) -> gx.ExpectationSuite:
    """Suite `release_<report>` (or `release`) for one released aggregate table.

    Identifier detectors run on `string_columns`, by default every expected
    column that is not a count. Spark reads a non-string column as its text for
    a regex, so a release with a numeric metric other than a count (a sum that
    can reach 13 digits looks like a card number) should name its string
    columns.
    """
    unknown = [c for c in [*count_columns, *(string_columns or [])] if c not in expected_columns]
    if unknown:
        raise ValueError(f"columns not among the expected columns: {unknown}")
    if string_columns is None:
        string_columns = [c for c in expected_columns if c not in count_columns]
    expectations: list[Expectation] = [
        E.ExpectTableColumnsToMatchOrderedList(column_list=list(expected_columns))
    ]
    published: dict = {}
    if STATUS in expected_columns:
        expectations.append(
            E.ExpectColumnValuesToBeInSet(column=STATUS, value_set=list(STATUSES))
        )
        # Suppressed and merged cells withhold their values; published ones must have them.
        published = {"row_condition": GxColumn(STATUS).is_in(list(PUBLISHED))}
    for column in count_columns:
        expectations.append(E.ExpectColumnValuesToNotBeNull(column=column, **published))
        expectations.append(E.ExpectColumnValuesToBeBetween(column=column, min_value=0))
    expectations.extend(_detector_expectations(string_columns))
    name = f"release_{report}" if report else "release"
    return _suite(name, expectations, {"count_columns": list(count_columns)})


CLASS_SIZE = "subscribers"


def build_analyst_suite(k: int, quasi_identifiers: Sequence[str]) -> gx.ExpectationSuite:
    """Suite `analyst_classes` for the analyst zone's equivalence classes (one row per class).

    Its input is the class-size table (quasi-identifiers and `subscribers`), so
    the k-anonymity check is an ordinary column expectation: the smallest
    class holds at least k subscribers. Suppressed records (all '*') are not a class.
    """
    expectations: list[Expectation] = [
        E.ExpectTableColumnsToMatchSet(column_set=[*quasi_identifiers, CLASS_SIZE], exact_match=True),
        E.ExpectColumnMinToBeBetween(column=CLASS_SIZE, min_value=k),
        E.ExpectColumnValuesToNotBeNull(column=CLASS_SIZE),
    ]
    expectations.extend(_detector_expectations(list(quasi_identifiers)))
    return _suite("analyst_classes", expectations, {"k": k})


def _raw_field_expectations(field: FieldSpec) -> Iterator[Expectation]:
    yield E.ExpectColumnValuesToBeOfType(column=field.name, type_=SPARK_TYPE_NAMES[field.dtype])
    if field.required:
        yield E.ExpectColumnValuesToNotBeNull(column=field.name)
    if field.min_value is not None or field.max_value is not None:
        yield E.ExpectColumnValuesToBeBetween(
            column=field.name, min_value=field.min_value, max_value=field.max_value
        )
    if field.allowed is not None:
        yield E.ExpectColumnValuesToBeInSet(column=field.name, value_set=list(field.allowed))
    if field.pattern is not None:
        yield E.ExpectColumnValuesToMatchRegex(column=field.name, regex=field.pattern.anchored)


def _detector_expectations(columns: Iterable[str]) -> Iterator[Expectation]:
    """One expectation per column and detector; meta names the column and the detector."""
    for column in columns:
        for detector in detectors():
            meta = {"detector": detector.name, "column": column}
            if detector.luhn:
                yield ExpectColumnValuesToNotBeIdentifierShaped(
                    column=column, detector=detector.name, meta=meta
                )
            else:
                yield E.ExpectColumnValuesToNotMatchRegex(
                    column=column, regex=detector.regex, meta=meta
                )


def _suite(name: str, expectations: list[Expectation], meta: dict) -> gx.ExpectationSuite:
    """An unsaved suite, built without a Data Context (add_expectation would need one)."""
    suite = gx.ExpectationSuite(name=name, expectations=expectations, meta=meta)
    if len(suite.expectations) != len(expectations):  # GX logs and skips invalid ones
        raise ValueError(f"suite {name}: GX refused some of its expectations")
    return suite
