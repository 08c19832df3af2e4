"""The front door: every differentially private release passes here, and only here.

    releaser = Releaser.open(data_dir="data", config_dir="config")
    release = releaser.release(protected_df, aggregation, period=day)
    release.table     # the noisy cells, each value with its noise sd and 95% interval
    release.record    # what was spent, on which ledger entry, by which mechanisms (ReleaseRecord)

A Releaser holds the privacy ledger and the release store, and cannot run
without them. `release` does, in this order and nowhere else:

1. plan:      the aggregation becomes an immutable noise plan (core.noise_plan);
2. check:     the ledger refuses now a release the budget cannot take;
3. bound and aggregate: contributions bounded per subscriber and cells
              aggregated in Spark (transforms.report_aggregate); only the small
              aggregate is collected;
4. charge:    the ledger is charged under its lock (or refuses);
5. noise:     drawn once, in memory, with diffprivlib's integer mechanisms;
6. post-process: free functions of noisy values (clamping, suppression,
              roll-up, shares);
7. store:     written atomically, then the charge is marked stored.

A stored release is served again, never re-noised: fresh noise for the same
cells would let anyone average it away. The store and the ledger must agree
(see `_check_agreement`): a release store whose ledger was deleted, emptied,
swapped or rolled back, and a charge whose release was lost, stop the
release with a message naming both, before any data is read.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame

from core import noise_plan, noisy_cells
from core.cells import STATUS
from core.config import UNIT_COLUMN, Aggregation, Delivery, PipelineConfig, load_pipeline_config
from core.errors import KrReportsError
from core.ledger import (
    CHARGED,
    Charge,
    ChargeRequest,
    Ledger,
    LedgerMissing,
    NewRelease,
    ledger_location,
)
from core.release_record import (
    GuaranteeRecord,
    MetricRecord,
    PartRecord,
    ReleaseRecord,
    SelectionRecord,
)
from core.shares import with_shares
from core.store import ReleaseStore, StoredRelease
from transforms.report_aggregate import aggregate_report

# What an internal aggregation (no partner) is recorded as, in the ledger's partner and purpose.
INTERNAL_RECIPIENT = "internal"
INTERNAL_PURPOSE = "internal_analysis"


class ReleaseRefused(KrReportsError, RuntimeError):
    """The release store and the ledger disagree, or a release cannot be made as asked."""


@dataclass(frozen=True)
class Release:
    """One release: its noisy table and its record, and whether it was served from the store."""

    table: pd.DataFrame
    record: ReleaseRecord
    reused: bool
    path: Path  # the stored release's folder
    newly_charged: bool = False  # this call added the charge (False: served, or an earlier charge taken up)

    @property
    def release_id(self) -> str:
        return self.record.release_id

    @property
    def stored(self) -> StoredRelease:
        """The release as the store holds it: its record and folder (no table in memory)."""
        return StoredRelease(self.record, self.path)


def release_id(name: str, period: dt.date, number: int = 1) -> str:
    base = f"{name}/{period.isoformat()}"
    return base if number == 1 else f"{base}#{number}"


class Releaser:
    """Releases aggregations of Spark DataFrames, each charged to one ledger and stored once."""

    def __init__(self, ledger: Ledger, store: ReleaseStore, config: PipelineConfig, random_state=None):
        """`random_state` seeds the noise: for tests only; production noise is from `secrets`."""
        self.ledger, self.store, self.config = ledger, store, config
        self._random_state = random_state
        self._check_agreement()

    @classmethod
    def open(cls, data_dir: Path | str, config_dir: Path | str = "config", ledger_url: str | None = None,
             random_state=None, releases: Path | str | None = None) -> Releaser:
        """The releaser of a data folder: its ledger (or `ledger_url`, $KR_LEDGER_URL) and its store
        (or the store at `releases`, a folder or URL: stages.catalog's zones).

        A ledger is created only beside an empty release store.
        """
        store = ReleaseStore(releases or Path(data_dir) / "releases")
        location = ledger_location(Path(data_dir), ledger_url)
        try:
            ledger = Ledger(location, create=store.is_empty())
        except LedgerMissing as missing:
            raise ReleaseRefused(f"{missing}; the release store at {store.root} holds releases charged "
                                 "to it. Restore that ledger (or point KR_LEDGER_URL at it); a new "
                                 "ledger beside stored releases would start a fresh budget") from None
        return cls(ledger, store, load_pipeline_config(Path(config_dir)), random_state)

    # ---- agreement of store and ledger ---------------------------------------------------

    def _check_agreement(self) -> None:
        """Refuse a store whose releases this ledger did not charge (or has lost the charges of)."""
        bound = self.store.ledger_id()
        if bound is None:
            if not self.store.is_empty():
                raise ReleaseRefused(f"the release store at {self.store.root} names no ledger (store.json "
                                     f"is missing); it cannot be matched with the ledger at "
                                     f"{self.ledger.location}")
            return
        if bound != self.ledger.id:
            raise ReleaseRefused(
                f"the release store at {self.store.root} was charged to ledger {bound}, but the ledger at "
                f"{self.ledger.location} is {self.ledger.id}: a deleted, emptied or other ledger. Use the "
                "ledger the store was charged to")
        known = self.ledger.charge_ids()
        lost = sorted(r.release_id for r in self.store.records() if r.ledger_entry_id not in known)
        if lost:
            raise ReleaseRefused(
                f"the ledger at {self.ledger.location} lacks the charges of {len(lost)} release(s) in the "
                f"store at {self.store.root} (first: {lost[0]}): it was rolled back. Restore it")

    # ---- the release ---------------------------------------------------------------------

    def plan(self, aggregation: Aggregation) -> noise_plan.ReportPlan:
        return noise_plan.plan_aggregation(aggregation, self.config.regions)

    def stored(self, aggregation: Aggregation, period: dt.date,
               number: int | None = None) -> StoredRelease | None:
        """The latest (or the numbered) stored release of an aggregation for a period, if it is of
        this aggregation."""
        if number is None:
            stored = self.store.latest(aggregation.name, period.isoformat())
        elif number in self.store.numbers(aggregation.name, period.isoformat()):
            stored = self.store.read(aggregation.name, period.isoformat(), number)
        else:
            stored = None
        if stored is not None and stored.record.aggregation_hash != aggregation.fingerprint():
            raise ReleaseRefused(
                f"release '{stored.record.release_id}' is stored from another version of aggregation "
                f"'{aggregation.name}' (the spec changed after it was released); restore the spec, or "
                "make a deliberate new release")
        return stored

    def served(self, aggregation: Aggregation, period: dt.date,
               new_release: bool | NewRelease = False) -> StoredRelease | None:
        """The stored release a request is served from, or None when it is to be made (and charged).

        Plain: the latest stored release, unless an interrupted new release of the day has not
        released this aggregation yet (refused: serving the old release would hide that). In a
        new release (NewRelease): the release it already stored for this aggregation, if any.
        `True`: none (a new release of this aggregation alone).
        """
        if new_release is True:
            return None
        if isinstance(new_release, NewRelease):
            mine = [c for c in self.ledger.charges_of(aggregation.name, period)
                    if c.new_release == new_release.id and c.state != CHARGED]
            return self.stored(aggregation, period, mine[-1].number) if mine else None
        unfinished = self.ledger.open_new_release_of(period)
        if unfinished is not None and self._not_released_in(unfinished, aggregation, period):
            raise ReleaseRefused(
                f"a new release of {period.isoformat()} (opened {unfinished.opened_at}) was interrupted "
                f"before it released '{aggregation.name}': it is not served at its previous release. "
                f"Finish it with `kr-reports run --day {period.isoformat()} --new-release` (it charges "
                "only the reports it has not released)")
        return self.stored(aggregation, period)

    def _not_released_in(self, new_release: NewRelease, aggregation: Aggregation, period: dt.date) -> bool:
        charges = self.ledger.charges_of(aggregation.name, period)
        return not any(c.new_release == new_release.id and c.state != CHARGED for c in charges)

    def release(self, data: DataFrame | None, aggregation: Aggregation, period: dt.date,
                delivery: Delivery | None = None, *, new_release: bool | NewRelease = False,
                recover_lost: bool = False, run: str = "") -> Release:
        """Release `aggregation` of `data` for `period`: served from the store if it exists.

        `delivery` names the partner and purpose the ledger records (none: an internal
        aggregation). `new_release` makes a deliberate new release, charged again: `True`
        for this aggregation alone, or the day's open NewRelease (Ledger.open_new_release)
        of a run that releases every report anew, which serves what that new release
        already stored and so can be resumed after an interruption without a new charge.
        `recover_lost` lets a release whose stored copy was lost be made again under a new
        number, charged again; without it such a release is refused. `run` names the run in
        the ledger's new charges (its summary sums them).
        """
        stored = self.served(aggregation, period, new_release)
        if stored is not None:
            return Release(stored.table(), stored.record, True, stored.folder)
        plan = self.plan(aggregation)
        number = self._number(aggregation, period, recover_lost)
        opened = new_release if isinstance(new_release, NewRelease) else None
        request = self._request(plan, period, number, delivery, run, opened)
        self.ledger.check(request, self.config.limits)  # before any Spark job
        found, buckets, partitions = _true_aggregates(data, plan)
        charge, newly_charged = self.ledger.charge(request, self.config.limits)
        table = self._noisy_table(plan, found, buckets, partitions)
        record = _record(plan, charge, self.ledger.id, period, number, table, delivery,
                         _guarantee_record(self.config))
        self.store.bind_to_ledger(self.ledger.id)
        written = self.store.write(aggregation.name, period.isoformat(), number, table, record)
        self.ledger.mark_stored(charge.id)
        return Release(written.table(), written.record, False, written.folder, newly_charged)

    def _number(self, aggregation: Aggregation, period: dt.date, recover_lost: bool) -> int:
        """The release number to charge: a charge left unstored by a crash is taken up again;
        a stored charge whose release is missing from the store is refused unless recovered.

        Taking up an unstored charge (no new charge) draws noise once for it: the noise of
        the stopped run lived only in its memory (the store is written before the charge is
        marked stored, and delivery reads the store), so nobody saw it, and drawing now is
        as if drawn once. The ledger refuses the charge if its terms changed since.
        """
        in_store = set(self.store.numbers(aggregation.name, period.isoformat()))
        charges = self.ledger.charges_of(aggregation.name, period)
        lost = [c for c in charges if c.state != CHARGED and c.number not in in_store]
        if lost and not recover_lost:
            raise ReleaseRefused(
                f"release '{lost[-1].release_id}' was charged (ledger entry {lost[-1].id} at "
                f"{self.ledger.location}) and stored, but the store at {self.store.root} no longer "
                "holds it. It is not drawn again under the same charge; recover_lost (kr-reports run "
                "--recover-lost) makes a new release, charged again")
        pending = [c for c in charges if c.state == CHARGED and c.number not in in_store]
        if pending and not recover_lost:
            return pending[-1].number  # died between charge and store: nothing left, reuse if it matches
        taken = in_store | {c.number for c in charges}
        return max(taken, default=0) + 1

    def _request(self, plan: noise_plan.ReportPlan, period: dt.date, number: int, delivery: Delivery | None,
                 run: str = "", new_release: NewRelease | None = None) -> ChargeRequest:
        aggregation = plan.aggregation
        return ChargeRequest(
            release_id=release_id(aggregation.name, period, number),
            dataset=aggregation.source,
            privacy_unit=aggregation.privacy_unit,
            period=period,
            report=aggregation.name,
            partner=delivery.partner if delivery else INTERNAL_RECIPIENT,
            purpose=delivery.purpose if delivery else INTERNAL_PURPOSE,
            cost=plan.cost,
            aggregation_hash=aggregation.fingerprint(),
            run=run,
            new_release=new_release.id if new_release else None,
        )

    def _noisy_table(self, plan: noise_plan.ReportPlan, found, buckets, partitions) -> pd.DataFrame:
        """Noise, drawn once, then free post-processing (the only place noise is drawn)."""
        rng = self._random_state
        selected = noisy_cells.select_partitions(partitions, plan, rng) if plan.selection else None
        cells = noisy_cells.complete_cells(found, plan, selected)
        noisy = with_shares(noisy_cells.noisy_release(cells, buckets, plan, random_state=rng), plan)
        return with_text_types(noisy, plan)


def _true_aggregates(data: DataFrame, plan: noise_plan.ReportPlan):
    """True bounded aggregates, collected: (cells present, bucket counts, private partitions).

    The salt that picks which rows and cells a subscriber keeps is secret and new per release.
    """
    aggregates = aggregate_report(data, plan, UNIT_COLUMN, salt=secrets.randbits(62))
    try:
        cells = aggregates.cells.toPandas()
        buckets = {name: df.toPandas() for name, df in aggregates.buckets.items()}
        partitions = aggregates.partitions.toPandas() if aggregates.partitions is not None else None
    finally:
        aggregates.unpersist()
    return cells, buckets, partitions


def with_text_types(noisy: pd.DataFrame, plan: noise_plan.ReportPlan) -> pd.DataFrame:
    """Text keys and status typed as strings, so a release with no rows keeps its schema.

    pandas gives an empty column no type; Parquet would store it as null and
    every later reader (the release suite, a partner) would see a void column.
    """
    text = [k.column for k in plan.aggregation.group_by
            if k.private or not isinstance(plan.public_keys[k.column][0], int)]
    return noisy.astype({column: "string" for column in [*text, STATUS]})


def _record(plan: noise_plan.ReportPlan, charge: Charge, ledger_id: str, period: dt.date, number: int,
            table: pd.DataFrame, delivery: Delivery | None, guarantee: GuaranteeRecord) -> ReleaseRecord:
    statuses = table[STATUS].value_counts()
    aggregation = plan.aggregation
    return ReleaseRecord(
        release_id=charge.release_id,
        number=number,
        ledger_id=ledger_id,
        ledger_entry_id=charge.id,
        aggregation_hash=aggregation.fingerprint(),
        report=aggregation.name,
        source=aggregation.source,
        partner=delivery.partner if delivery else None,
        period=period.isoformat(),
        accounting=aggregation.accounting,
        epsilon=plan.epsilon,
        delta=plan.delta,
        rho=plan.rho,
        cells=len(table),
        cells_by_status={status: int(n) for status, n in sorted(statuses.items())},
        metrics=tuple(_metric_record(m) for m in plan.metrics),
        partition_selection=_selection_record(plan.selection),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        guarantee=guarantee,
    )


def _guarantee_record(config: PipelineConfig) -> GuaranteeRecord:
    """The budget every release counts against, stated for a partner."""
    budget = config.privacy_budget
    return GuaranteeRecord(statement=config.guarantee(), window_days=budget.window_days,
                           epsilon=budget.epsilon, delta=budget.delta)


def _selection_record(selection: noise_plan.Selection | None) -> SelectionRecord | None:
    if selection is None:
        return None
    return SelectionRecord(epsilon=selection.epsilon, delta=selection.delta, mechanism="truncated_geometric",
                           even_odds_from=selection.even_odds, always_from=selection.threshold)


def _metric_record(metric: noise_plan.MetricPlan) -> MetricRecord:
    return MetricRecord(
        name=metric.name,
        kind=metric.kind,
        column=metric.metric.column,
        outputs=tuple(metric.outputs),
        epsilon=metric.epsilon,  # NaN under zCDP: the store writes it as null
        delta=metric.delta,
        rho=metric.rho,
        parts=tuple(
            PartRecord(
                part=name,
                mechanism=noise.kind,
                sensitivity=noise.sensitivity,
                noise_sd=noise.sd,
                ci95_half_width=noise.ci_half_width(noise_plan.CONFIDENCE),
            )
            for name, noise in metric.parts
        ),
    )
