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
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Iterator, Sequence

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx
from great_expectations.expectations.expectation import Expectation

from expectations.detectors import identifier_patterns
from kr_reports.schemas import FieldSpec, SourceSpec, Treatment, protected_columns

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

# Type of a column after the protect stage, by treatment; KEEP keeps its dtype.
PROTECTED_DTYPES: dict[Treatment, str] = {
    Treatment.PSEUDONYMIZE: "string",  # 64 lowercase hex characters
    Treatment.TRUNCATE_IP: "string",  # "10.1.2.0/24", an IPv6 /48
    Treatment.COARSEN_HOUR: "timestamp",
    Treatment.AGE_BAND: "string",  # "30-39"
    Treatment.IMEI_TO_TAC: "string",  # 8-digit type allocation code
}

PSEUDONYM_COLUMN = "subscriber"
PSEUDONYM_REGEX = "^[0-9a-f]{64}$"


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


def build_protected_suite(source: SourceSpec) -> gx.ExpectationSuite:
    """Suite `protected_<source>` for the protect stage's output of one source."""
    expectations: list[Expectation] = [
        E.ExpectTableColumnsToMatchOrderedList(column_list=protected_columns(source)),
        E.ExpectColumnValuesToNotBeNull(column=PSEUDONYM_COLUMN),
        E.ExpectColumnValuesToMatchRegex(column=PSEUDONYM_COLUMN, regex=PSEUDONYM_REGEX),
        *_detector_expectations(protected_string_columns(source)),
    ]
    return _suite(f"protected_{source.name}", expectations, {"source": source.name})


def build_release_suite(
    expected_columns: list[str],
    count_columns: list[str],
    *,
    string_columns: Sequence[str] | None = None,
) -> gx.ExpectationSuite:
    """Suite `release` for one released aggregate table.

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
    for column in count_columns:
        expectations.append(E.ExpectColumnValuesToNotBeNull(column=column))
        expectations.append(E.ExpectColumnValuesToBeBetween(column=column, min_value=0))
    expectations.extend(_detector_expectations(string_columns))
    return _suite("release", expectations, {"count_columns": list(count_columns)})


def protected_string_columns(source: SourceSpec) -> list[str]:
    """The protected dataset's string columns, which the identifier detectors scan."""
    return [
        f.protected_name or f.name
        for f in source.fields
        if f.treatment is not Treatment.DROP
        and PROTECTED_DTYPES.get(f.treatment, f.dtype) == "string"
    ]


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


def _detector_expectations(columns: Iterable[str]) -> Iterator[Expectation]:
    """One not-match expectation per column and detector; meta names the detector."""
    for column in columns:
        for detector, regex in identifier_patterns().items():
            yield E.ExpectColumnValuesToNotMatchRegex(
                column=column, regex=regex, meta={"detector": detector}
            )


def _suite(name: str, expectations: list[Expectation], meta: dict) -> gx.ExpectationSuite:
    """An unsaved suite, built without a Data Context (add_expectation would need one)."""
    suite = gx.ExpectationSuite(name=name, expectations=expectations, meta=meta)
    if len(suite.expectations) != len(expectations):  # GX logs and skips invalid ones
        raise ValueError(f"suite {name}: GX refused some of its expectations")
    return suite
