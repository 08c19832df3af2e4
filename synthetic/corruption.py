"""Malformed rows: corrupt a share of a source's rows so that each fails one FieldSpec rule.

Ingest must quarantine exactly these rows; `with_bad_rows` also returns which rows it
corrupted, so the generator can count them (rows in = rows out + quarantined is then
checked against a known number).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.schemas import FieldSpec, SourceSpec
from synthetic.draws import child_keys, keys_of, uniform, uniform_index, weighted_index
from synthetic.records import account_numbers
from synthetic.text import clock_text, lookup, plain_number

# Corruption kinds of inject_bad_rows and the raw values they write.
UNPARSEABLE_VALUES = ("12kb", "n/a", "2026-13-45 99:00")
NOT_ALLOWED_VALUES = ("unknown", "invalid", "?")
PARSED_DTYPES = ("int", "bigint", "double", "date", "timestamp", "boolean")


@dataclass(frozen=True)
class Candidate:
    """A corruption kind applied to one column."""

    column: str
    kind: str  # required, unparseable, negative, absurd, not_allowed, out_of_day
    field: FieldSpec | None = None


def inject_bad_rows(
    table: pa.Table, source: SourceSpec, rate: float, seed: int, day: dt.date | None
) -> pa.Table:
    """Corrupt one column in about `rate` of the rows, each failing a FieldSpec rule."""
    return with_bad_rows(table, source, rate, seed, day)[0]


def with_bad_rows(
    table: pa.Table, source: SourceSpec, rate: float, seed: int, day: dt.date | None
) -> tuple[pa.Table, np.ndarray]:
    """Corrupt one column in about `rate` of the rows, each failing a FieldSpec rule;
    return the table and a boolean array of the rows corrupted.

    Kinds, drawn with equal chance among those the source has: a required value
    nulled, an unparseable number/date/time, a negative number, an absurd number,
    an event time outside `day` (daily sources) and a value outside `allowed`; then
    a column among those the kind applies to. The draws hash the row's subscriber
    and its place among that subscriber's rows, so the result is deterministic and
    the same however the rows are chunked (by whole subscribers).
    """
    kinds = [kind for kind in corruption_kinds(source, day) if kind]
    candidates = [candidate for kind in kinds for candidate in kind]
    weights = [1.0 / len(kinds) / len(kind) for kind in kinds for _ in kind]
    tag = f"bad:{source.name}:{day.isoformat() if day else ''}"
    keys = row_keys(table)
    selected = uniform(seed, f"{tag}:select", keys) < rate
    choice = np.where(selected, weighted_index(weights, uniform(seed, f"{tag}:kind", keys)), -1)
    u = uniform(seed, f"{tag}:value", keys)
    columns = []
    for name in table.column_names:
        column = table.column(name)
        picked = [(i, c) for i, c in enumerate(candidates) if c.column == name]
        if picked:
            column = corrupt_column(column, picked, choice, u, day)
        columns.append(column)
    return pa.table(columns, names=table.column_names), selected


def row_keys(table: pa.Table) -> np.ndarray:
    """A key per row: its subscriber's number and its place among that subscriber's rows."""
    numbers = account_numbers(table)
    starts = np.r_[True, numbers[1:] != numbers[:-1]] if len(numbers) else np.zeros(0, bool)
    run_start = np.flatnonzero(starts)
    seq = np.arange(len(numbers)) - run_start[np.cumsum(starts) - 1]
    return child_keys(keys_of(numbers), seq)


def corrupt_column(
    column: pa.ChunkedArray, picked: list[tuple[int, Candidate]], choice: np.ndarray,
    u: np.ndarray, day: dt.date | None,
) -> pa.ChunkedArray:
    """`column` with the rows whose choice is one of `picked` replaced by that candidate's value."""
    mask = np.isin(choice, [index for index, _ in picked])
    if not mask.any():
        return column
    positions, values = [], []
    for index, candidate in picked:
        rows = np.flatnonzero(choice == index)
        positions.append(rows)
        values.append(bad_values(candidate, u[rows], day))
    # the replacements in row order, as replace_with_mask takes them
    replacements = pa.concat_arrays(values).take(np.argsort(np.concatenate(positions)))
    return pc.replace_with_mask(column.combine_chunks(), pa.array(mask), replacements)


def bad_values(candidate: Candidate, u: np.ndarray, day: dt.date | None) -> pa.Array:
    """The candidate's bad text for rows with draws `u`."""
    if candidate.kind == "required":
        return pa.nulls(len(u), pa.string())
    if candidate.kind == "unparseable":
        return lookup(UNPARSEABLE_VALUES, uniform_index(len(UNPARSEABLE_VALUES), u))
    if candidate.kind == "negative":
        return pc.binary_join_element_wise("-", plain_number(1 + uniform_index(999, u)), "")
    if candidate.kind == "absurd":
        return pa.array([absurd_value(candidate.field.max_value)] * len(u), pa.string())
    if candidate.kind == "not_allowed":
        return lookup(NOT_ALLOWED_VALUES, uniform_index(len(NOT_ALLOWED_VALUES), u))
    return out_of_day_times(day, u)


def corruption_kinds(source: SourceSpec, day: dt.date | None) -> list[list[Candidate]]:
    """Per corruption kind, the candidates (columns) it has in `source`."""
    fields = source.fields
    kinds = [
        [Candidate(f.name, "required") for f in fields if f.required],
        [Candidate(f.name, "unparseable") for f in fields if f.dtype in PARSED_DTYPES],
        [Candidate(f.name, "negative") for f in fields if f.min_value is not None],
        [Candidate(f.name, "absurd", f) for f in fields if f.max_value is not None],
        [Candidate(f.name, "not_allowed") for f in fields if f.allowed],
    ]
    if source.event_time is not None:
        kinds.append([Candidate(source.event_time, "out_of_day")])
    return kinds


def absurd_value(max_value: float) -> str:
    """A number far above `max_value`: 999999, or 10^15 for byte counters."""
    return "999999" if max_value < 999_999 else str(10**15)


def out_of_day_times(day: dt.date | None, u: np.ndarray) -> pa.Array:
    """Timestamps outside `day`: the day before, the day after, or in 1970."""
    others = ["1970-01-01"]
    if day is not None:
        others += [(day + dt.timedelta(days=step)).isoformat() for step in (-1, 1)]
    which = uniform_index(len(others), u)
    second = uniform_index(86_400, np.mod(u * 7919.0, 1.0))
    return pc.binary_join_element_wise(lookup(others, which), clock_text(second), " ")
