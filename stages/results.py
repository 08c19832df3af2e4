"""What the daily run's stages hand each other: small frozen records, never a DataFrame.

A Prefect task returns these as they are (its result is kept in memory for the
run), so each holds paths, counts and a release's record only. Counts here are
exact counts of the run's input (rows in, kept, quarantined): they stay in the
run's own summary and logs, never in a delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from core.config import ReportSpec
from core.release_record import ReleaseRecord
from core.store import StoredRelease


@dataclass(frozen=True)
class Ingested:
    """A source's landing file split into raw and quarantine: rows in = kept + quarantined."""

    source: str
    rows_in: int
    rows_kept: int
    rows_quarantined: int
    quarantined_by_reason: Mapping[str, int]
    raw_path: str
    quarantine_path: str

    def to_dict(self) -> dict:
        return {**asdict(self), "quarantined_by_reason": dict(self.quarantined_by_reason)}


@dataclass(frozen=True)
class Protected:
    """A source's protected zone, written and validated; the columns by treatment."""

    source: str
    path: str
    validation: Mapping  # the protected suite's summary (expectations.runner.validate_dataframe)
    columns: Mapping[str, list[str]]  # treatment -> the columns it was applied to


@dataclass(frozen=True)
class Released:
    """A report's release as the run got it from the front door.

    `reused`: served from the store (no new noise, no charge). `charged_this_run`:
    this run added its charge (False when reused, or when an interrupted run's
    charge was taken up).
    """

    stored: StoredRelease
    reused: bool
    charged_this_run: bool

    @property
    def record(self) -> ReleaseRecord:
        return self.stored.record

    @property
    def how(self) -> str:
        """How the release came about, for the task's log."""
        if self.reused:
            return "reused stored release (no new noise, no charge)"
        if self.charged_this_run:
            return "released"
        return "released under the charge an interrupted run left unstored"


@dataclass(frozen=True)
class Refused:
    """A report the privacy budget could not take: one line (report, day, spent and left)."""

    line: str


@dataclass(frozen=True)
class ReportDelivered:
    """A report the run released and delivered: the run summary's line for it."""

    report: str
    source: str
    partner: str
    release_id: str
    epsilon: float
    delta: float
    rho: float
    reused: bool
    charged_this_run: bool
    ledger_entry_id: int
    cells_by_status: Mapping[str, int]
    delivery: str  # the delivery's folder or URL

    @classmethod
    def of(cls, spec: ReportSpec, released: Released, delivery: str) -> ReportDelivered:
        record = released.record
        return cls(report=spec.name, source=spec.aggregation.source, partner=spec.delivery.partner,
                   release_id=record.release_id,
                   epsilon=record.epsilon, delta=record.delta, rho=record.rho, reused=released.reused,
                   charged_this_run=released.charged_this_run, ledger_entry_id=record.ledger_entry_id,
                   cells_by_status=record.cells_by_status, delivery=delivery)

    def to_dict(self) -> dict:
        return {**asdict(self), "cells_by_status": dict(self.cells_by_status)}
