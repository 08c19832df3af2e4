"""What may reach a partner: every field of a delivery's manifest and every column of its data.

Every number that leaves is private or public. Each field a manifest may carry
is declared here, once, with where its value comes from:

- config: public configuration: the report spec, bounds, epsilon, partner,
  purpose, policy clause, the calibrated noise that follows from them,
  software versions and signing information;
- noisy: computed from the noisy release only: how many cells it has, by
  status, and the release suite's results on it (counts of expectations,
  never of rows);
- record: identifiers, timestamps and checksums of the release and delivery.

Exact counts of anything in the data (rows read, rows quarantined, cells
before suppression) have no provenance here, so a manifest carrying one is
refused. They stay in the internal run record (the flow's summary and its
Prefect artifact).

A key path names dict keys joined by dots; `[]` marks the items of a list and
`*` any key of a map whose keys are names (files, packages). A null, empty
list or empty mapping carries nothing and is allowed wherever its path or a
path below it is. A data file carries exactly the published columns of its
aggregation's plan.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator

from pydantic import BaseModel

from core import noise_plan
from core.cells import STATUSES
from core.config import Aggregation, ReportSpec
from core.errors import InternalAlarm

CONFIG, NOISY, RECORD = "config", "noisy", "record"
PROVENANCES = (CONFIG, NOISY, RECORD)
ANY_KEY = "*"
ITEMS = "[]"


class DisclosureError(InternalAlarm, RuntimeError):
    """A delivery would carry a field or a column that is neither private nor public."""


def model_paths(model: type[BaseModel]) -> tuple[str, ...]:
    """Every leaf key path a model's JSON dump can have (a field that is a list or a scalar: both)."""
    return tuple(sorted(_model_paths(model)))


def _model_paths(model: type[BaseModel]) -> set[str]:
    return {name + suffix for name, field in model.model_fields.items()
            for suffix in _type_paths(field.annotation)}


def _type_paths(annotation) -> set[str]:
    """Suffixes of the key paths a value of this type adds below its field."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_type_paths(arm) for arm in args))
    if origin in (tuple, list):
        items = [arg for arg in args if arg is not Ellipsis]
        return {ITEMS + suffix for item in items for suffix in _type_paths(item)}
    if origin is dict:
        return {f".{ANY_KEY}{suffix}" for suffix in _type_paths(args[1])}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {f".{path}" for path in _model_paths(annotation)}
    return {""}


def _each(provenance: str, prefix: str, *names: str) -> dict[str, str]:
    return {f"{prefix}{name}": provenance for name in names}


_METRIC = "privacy.metrics[]."
_PART = "privacy.metrics[].parts[]."

MANIFEST_FIELDS: dict[str, str] = {
    **_each(CONFIG, "", "manifest_version", "report", "partner", "purpose", "policy_clause"),
    **_each(RECORD, "", "period", "release_id", "release_number", "ledger_entry_id", "delivered_at"),
    **_each(CONFIG, "privacy.", "unit", "accounting", "epsilon", "delta", "rho", "min_subscribers",
            "sparse_cells"),
    **_each(CONFIG, "privacy.guarantee.", "statement", "window_days", "epsilon", "delta"),
    **_each(CONFIG, "privacy.contribution_bounds.", "max_groups_per_subscriber", "max_rows_per_group"),
    **_each(CONFIG, "privacy.partition_selection.", "epsilon", "delta", "mechanism", "even_odds_from",
           "always_from"),
    **_each(CONFIG, _METRIC, "name", "kind", "column", "outputs[]", "epsilon", "delta", "rho"),
    **_each(CONFIG, _PART, "part", "mechanism", "sensitivity", "noise_sd", "ci95_half_width"),
    **{f"spec.{path}": CONFIG for path in model_paths(ReportSpec)},
    "rows_released": NOISY,  # cells in the data file
    **_each(NOISY, "cells_by_status.", *STATUSES),
    "validation.suite": CONFIG,
    **_each(NOISY, "validation.", "success", "evaluated", "failed"),  # expectations, not rows
    f"software.{ANY_KEY}": CONFIG,
    **_each(CONFIG, "signing.", "algorithm", "public_key_fingerprint", "demo_key", "public_key_file",
            "signature_file"),
    f"files.{ANY_KEY}": RECORD,  # SHA-256 of each file, by file name
}


def leaf_paths(document, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """(key path, value) of every leaf of a JSON document; empty containers are leaves too.

    A path is a tuple of dict keys; a list adds `[]` to the key that holds it.
    """
    if isinstance(document, dict) and document:
        for key, value in document.items():
            yield from leaf_paths(value, (*path, str(key)))
    elif isinstance(document, list | tuple) and document:
        inside = (*path[:-1], f"{path[-1] if path else ''}{ITEMS}")
        for value in document:
            yield from leaf_paths(value, inside)
    else:
        yield path, document


def _matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    return len(pattern) == len(path) and all(p in (ANY_KEY, k) for p, k in zip(pattern, path, strict=True))


def _room_for(path: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether an allowed pattern lies below `path` (or `path` is its list), so an empty value may stand."""
    if not path or len(path) > len(pattern):
        return False
    head = pattern[:len(path)]
    return _matches(head, path) or _matches((*head[:-1], head[-1].removesuffix(ITEMS)), path)


_PATTERNS = {tuple(path.split(".")): provenance for path, provenance in MANIFEST_FIELDS.items()}


def provenance(path: tuple[str, ...], value=None) -> str | None:
    """The provenance of a manifest leaf, or None when the allowlist has no place for it."""
    for pattern, origin in _PATTERNS.items():
        if _matches(pattern, path):
            return origin
    if value is None or value == [] or value == {}:
        for pattern, origin in _PATTERNS.items():
            if _room_for(path, pattern):
                return origin
    return None


def manifest_violations(manifest: dict) -> list[str]:
    """The key paths of a manifest that the allowlist does not declare, each once, in order."""
    found = [".".join(path) for path, value in leaf_paths(manifest) if provenance(path, value) is None]
    return list(dict.fromkeys(found))


def check_manifest(manifest: dict) -> None:
    """Raise DisclosureError naming every field of `manifest` outside the allowlist."""
    outside = manifest_violations(manifest)
    if outside:
        raise DisclosureError(f"manifest.json would carry {len(outside)} field(s) that are neither "
                              f"configuration, noisy nor release record: {', '.join(outside)}")


def published_columns(aggregation: Aggregation) -> list[str]:
    """The columns a data file carries: exactly `noise_plan.published_columns` of the aggregation's plan.

    Columns name group keys and metric outputs, never key values, so the plan
    is made without the public domains (they decide rows, not columns).
    """
    return noise_plan.published_columns(noise_plan.plan_aggregation(aggregation, regions=()))


def check_data_columns(columns, aggregation: Aggregation) -> None:
    """Raise DisclosureError unless `columns` are exactly the aggregation's published columns."""
    expected, actual = published_columns(aggregation), [str(c) for c in columns]
    if actual != expected:
        extra = [c for c in actual if c not in expected]
        missing = [c for c in expected if c not in actual]
        detail = "; ".join(part for part in (
            f"not published: {', '.join(extra)}" if extra else "",
            f"missing: {', '.join(missing)}" if missing else "",
        ) if part) or "in another order"
        raise DisclosureError(f"the data of '{aggregation.name}' would not carry exactly its published "
                              f"columns ({detail})")
