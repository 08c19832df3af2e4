"""A release's record: what was released, charged to which ledger entry, by which mechanisms.

The front door (stages.releaser) makes one per release, the release store
keeps it as release.json beside the noisy table (core.store), and the
delivery's manifest and report page are written from it. Every field is a
release identity (ids, numbers, timestamps), public configuration, or a
count of released (noisy) cells: nothing here is an exact count of the data.

`to_dict` is the JSON document the store writes; `from_dict` reads it back,
records of earlier versions included (a store keeps every release it made):
the ledger named as `ledger: {id, charge_id}` before `ledger_id`; partition
selection by a noisy-count threshold before the truncated geometric
(ThresholdSelectionRecord); no `guarantee` before records stated it (None).
A budget that a zCDP release does not state (a metric's epsilon and delta) is
NaN when made and null once stored (JSON has no NaN): both read as "not stated".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

from core.errors import KrReportsError


class RecordInvalid(KrReportsError, ValueError):
    """A stored release record lacks a field the release store writes (names the fields, no values)."""


@dataclass(frozen=True)
class PartRecord:
    """One noised part of a metric (a count, a sum, a tree level...): its mechanism and accuracy."""

    part: str
    mechanism: str
    sensitivity: float
    noise_sd: float
    ci95_half_width: float


@dataclass(frozen=True)
class MetricRecord:
    name: str
    kind: str
    column: str | None
    outputs: tuple[str, ...]
    epsilon: float | None  # NaN or None under zCDP: the metric's cost is its rho
    delta: float | None
    rho: float | None
    parts: tuple[PartRecord, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**_plain(self), "outputs": list(self.outputs), "parts": [_plain(p) for p in self.parts]}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> MetricRecord:
        fields_ = _fields(cls, document, "metric")
        return cls(**{**fields_, "outputs": tuple(fields_["outputs"]),
                      "parts": tuple(_build(PartRecord, p, "metric part") for p in fields_["parts"])})


@dataclass(frozen=True)
class SelectionRecord:
    """Private partition selection: its budget, and the subscriber counts where keeping a key is
    even odds and certain."""

    epsilon: float
    delta: float
    mechanism: str
    even_odds_from: int
    always_from: int


@dataclass(frozen=True)
class ThresholdSelectionRecord:
    """Private partition selection of earlier releases: a key was kept when its noisy
    distinct-subscriber count reached `threshold`."""

    epsilon: float
    delta: float
    threshold: int
    noise_sd: float


@dataclass(frozen=True)
class GuaranteeRecord:
    """The budget every release counts against, stated for a partner."""

    statement: str
    window_days: int
    epsilon: float
    delta: float


@dataclass(frozen=True)
class ReleaseRecord:
    release_id: str
    number: int  # 1 for a period's first release; a deliberate new release counts up
    ledger_id: str
    ledger_entry_id: int
    aggregation_hash: str
    report: str
    source: str
    partner: str | None  # None: an internal aggregation
    period: str  # ISO date
    accounting: str
    epsilon: float
    delta: float
    rho: float
    cells: int
    cells_by_status: Mapping[str, int]  # noisy statuses: cells released, remainder, suppressed, merged
    metrics: tuple[MetricRecord, ...]
    partition_selection: SelectionRecord | ThresholdSelectionRecord | None
    created_at: str
    guarantee: GuaranteeRecord | None = None

    def metric(self, name: str) -> MetricRecord:
        return next(m for m in self.metrics if m.name == name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of release.json (and the manifest's release fields)."""
        return {
            **_plain(self),
            "cells_by_status": dict(self.cells_by_status),
            "metrics": [m.to_dict() for m in self.metrics],
            "partition_selection": _plain(self.partition_selection) if self.partition_selection else None,
            "guarantee": _plain(self.guarantee) if self.guarantee else None,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> ReleaseRecord:
        """A record as the release store keeps it; RecordInvalid naming the fields it lacks."""
        found = _fields(cls, {"number": 1, **_legacy_ledger(document)}, "release record")
        return cls(**{
            **found,
            "cells_by_status": {str(k): int(v) for k, v in found["cells_by_status"].items()},
            "metrics": tuple(MetricRecord.from_dict(m) for m in found["metrics"]),
            "partition_selection": _selection(found["partition_selection"]),
            "guarantee": _build(GuaranteeRecord, found.get("guarantee"), "guarantee"),
        })


def _legacy_ledger(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """A record that named its ledger as `ledger: {id, charge_id}`, with `ledger_id` as now."""
    ledger = document.get("ledger")
    if "ledger_id" in document or not isinstance(ledger, Mapping) or "id" not in ledger:
        return document
    return {**document, "ledger_id": ledger["id"]}


def _selection(document) -> SelectionRecord | ThresholdSelectionRecord | None:
    """Partition selection as recorded: truncated geometric (it names its mechanism), or a threshold."""
    legacy = isinstance(document, Mapping) and "mechanism" not in document
    return _build(ThresholdSelectionRecord if legacy else SelectionRecord, document, "partition selection")


def _plain(record) -> dict[str, Any]:
    """A record's own fields (not deep: nested records are the caller's to convert)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _fields(cls, document: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The document's values of `cls`'s fields (others ignored); RecordInvalid naming missing ones."""
    if not isinstance(document, Mapping):
        raise RecordInvalid(f"{what}: expected an object, found {type(document).__name__}")
    missing = [f.name for f in fields(cls) if f.name not in document and f.default is MISSING]
    if missing:
        raise RecordInvalid(f"{what}: missing {', '.join(missing)}")
    return {f.name: document[f.name] for f in fields(cls) if f.name in document}


def _build(cls, document, what: str):
    """A nested record from its document; None stays None (not stated)."""
    return None if document is None else cls(**_fields(cls, document, what))
