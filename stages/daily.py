"""The pipeline's stages: each reads datasets, applies transforms, writes one result.

Every stage takes plain values (paths, dates, configuration) and returns a
small frozen record of stages.results (paths, counts, a release's record), so
a Prefect task can wrap it, retry it and show its result, and a test can call
it alone. No DataFrame crosses a stage boundary.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from core import noise_plan
from core.config import DEFAULT_PLAUSIBLE_TIME, Aggregation, PlausibleTime, ReportSpec
from core.errors import KrReportsError
from core.keys import derive_key, master_key
from core.ledger import Charge, Ledger, NewRelease, ledger_location
from core.policy import Policy, ResolvedRule
from core.report_columns import DOMAIN_CATEGORIES
from core.schemas import SOURCES
from core.sources import GENERATOR_LANDING, SourceLanding
from expectations.runner import validate_dataframe
from expectations.suites import build_protected_suite, build_raw_suite, build_release_suite
from stages.catalog import Catalog, MissingInput, read_parquet, write_parquet
from stages.reference import load_domain_categories, load_oui_table
from stages.releaser import Releaser
from stages.results import Ingested, Protected, Released
from stages.sources import quarantined_lines, read_day_input
from stages.spark import get_spark
from transforms.ingest import (
    check_landing_columns,
    filter_quarantined,
    filter_usable,
    with_typed_and_reasons,
)
from transforms.protect import References, protect, protected_columns
from transforms.report_inputs import references_read, report_input, sources_read

log = logging.getLogger(__name__)


class RowConservationError(KrReportsError, RuntimeError):
    """Rows in != rows kept + rows quarantined."""


def count_by_reason(quarantine: DataFrame) -> dict[str, int]:
    """Quarantined rows per reason (a small aggregate)."""
    counts = quarantine.groupBy("reason").count().collect()
    return {row["reason"]: row["count"] for row in sorted(counts, key=lambda r: r["reason"])}


def ingest(catalog: Catalog, source_name: str, day: dt.date, landing_format: str | None = None,
           plausible_time: PlausibleTime = DEFAULT_PLAUSIBLE_TIME,
           landing: SourceLanding = GENERATOR_LANDING) -> Ingested:
    """The day's input -> raw + quarantine, proving that every row is in one of them.

    `landing` says where the input is and in which format (config/sources.yaml; by
    default the generator's landing, in its manifest's `landing_format`). Lines its
    format cannot read are quarantined with their reason, beside the rows ingest rejects.
    """
    spark = get_spark()
    source = SOURCES[source_name]
    day_input = read_day_input(spark, catalog, source, day, landing, landing_format)
    check_landing_columns(day_input.landing, source, day_input.location)
    event_day = day if source.is_daily else None
    plausible = plausible_time.time_range(dt.datetime.now(dt.UTC).date())
    flagged = with_typed_and_reasons(day_input.landing, source, event_day, plausible).persist()
    try:
        rows_in = flagged.count()
        quarantine = filter_quarantined(flagged, source)
        rejected = Observation()
        if day_input.rejected is not None:
            # Counted on their way into the quarantine, not by a second read of the files:
            # a count of the format's output, independent of what the write then holds.
            lines = day_input.rejected.observe(rejected, F.count(F.lit(1)).alias("lines"))
            quarantine = quarantine.unionByName(quarantined_lines(lines, source))
        write_parquet(filter_usable(flagged, source), catalog.raw(source, day))
        write_parquet(quarantine, catalog.quarantine(source, day))
        if day_input.rejected is not None:
            rows_in += rejected.get["lines"]
    finally:
        flagged.unpersist()
    kept = read_parquet(spark, catalog.raw(source, day)).count()
    by_reason = count_by_reason(read_parquet(spark, catalog.quarantine(source, day)))
    quarantined = sum(by_reason.values())
    if rows_in != kept + quarantined:
        raise RowConservationError(
            f"{source_name} {day}: {rows_in} rows in, but {kept} kept + {quarantined} quarantined"
        )
    return Ingested(
        source=source_name,
        rows_in=rows_in,
        rows_kept=kept,
        rows_quarantined=quarantined,
        quarantined_by_reason=by_reason,
        raw_path=str(catalog.raw(source, day)),
        quarantine_path=str(catalog.quarantine(source, day)),
    )


def validate_raw(catalog: Catalog, source_name: str, day: dt.date) -> dict[str, Any]:
    source = SOURCES[source_name]
    df = read_parquet(get_spark(), catalog.raw(source, day))
    suite = build_raw_suite(source, day if source.is_daily else None)
    return validate_dataframe(df, suite, label=f"raw {source_name} {day}")


def references_for(rules: Sequence[ResolvedRule]) -> References:
    """Reference tables the rules need; a missing OUI registry leaves vendors unknown."""
    if not any(r.generalizer == "mac_vendor" for r in rules):
        return References()
    try:
        return References(oui=load_oui_table(get_spark()))
    except FileNotFoundError as missing:
        log.warning("%s; MAC vendors will be null", missing)
        return References()


def protect_source(
    catalog: Catalog, source_name: str, day: dt.date, demo: bool, policy: Policy
) -> Protected:
    """Raw -> protected, as the policy says, with the day's derived pseudonymization key."""
    source = SOURCES[source_name]
    rules = policy.resolve(source)
    key = derive_key(master_key(demo), "protected", day.isoformat())
    raw = read_parquet(get_spark(), catalog.raw(source, day))
    protected_df = protect(raw, rules, key, day, references_for(rules))
    write_parquet(protected_df, catalog.protected(source, day))
    protected = read_parquet(get_spark(), catalog.protected(source, day))
    summary = validate_dataframe(
        protected,
        build_protected_suite(
            source, protected_columns(rules), [c for c, t in protected.dtypes if t == "string"]
        ),
        label=f"protected {source_name} {day}",
    )
    return Protected(source=source_name, path=str(catalog.protected(source, day)), validation=summary,
                     columns=treatment_summary(rules))


def treatment_summary(rules: Sequence[ResolvedRule]) -> dict[str, list[str]]:
    summary: dict[str, list[str]] = {}
    for rule in rules:
        summary.setdefault(rule.treatment, []).append(rule.column)
    return summary


def report_data(catalog: Catalog, aggregation: Aggregation, day: dt.date) -> DataFrame:
    """The protected rows an aggregation reads for a day: its source, joined as it needs."""
    spark = get_spark()
    frames = {name: read_parquet(spark, catalog.protected(SOURCES[name], day))
              for name in sources_read(aggregation.source)}
    columns = [*aggregation.group_columns, *(m.column for m in aggregation.metrics if m.column)]
    if DOMAIN_CATEGORIES in references_read(columns):
        frames[DOMAIN_CATEGORIES] = load_domain_categories(spark)
    return report_input(aggregation.source, frames, columns)


def releaser(catalog: Catalog, config_dir: Path | str, random_state=None) -> Releaser:
    """The front door over this data folder's ledger and release store."""
    return Releaser.open(catalog.data_dir, config_dir, random_state=random_state,
                         releases=catalog.release_store.root)


def release(
    catalog: Catalog,
    spec: ReportSpec,
    config_dir: Path | str,
    day: dt.date,
    new_release: bool | NewRelease = False,
    recover_lost: bool = False,
    run: str = "",
) -> Released:
    """Release a report through the front door: served from the store when it exists.

    A stored release is returned as it is: drawing fresh noise for the same
    numbers would let anyone average the noise away. `new_release` makes a
    deliberate new release, charged again (stages.releaser); a NewRelease
    serves what it already released.
    """
    door = releaser(catalog, config_dir)
    stored = door.served(spec.aggregation, day, new_release)
    data = report_data(catalog, spec.aggregation, day) if stored is None else None  # served: no read
    made = door.release(data, spec.aggregation, day, spec.delivery, new_release=new_release,
                        recover_lost=recover_lost, run=run)
    return Released(made.stored, reused=made.reused, charged_this_run=made.newly_charged)


def open_new_release(catalog: Catalog, config_dir: Path | str, day: dt.date) -> tuple[NewRelease, bool]:
    """The day's new release of every report: an interrupted one resumed (True), else a new one."""
    return releaser(catalog, config_dir).ledger.open_new_release(day)


def close_new_release(catalog: Catalog, new_release: NewRelease) -> None:
    Ledger(ledger_location(catalog.data_dir), create=False).close_new_release(new_release.id)


def charged_by_run(catalog: Catalog, run: str) -> list[Charge]:
    """The ledger's charges this run made itself: what the ledger grew by in it."""
    return Ledger(ledger_location(catalog.data_dir), create=False).charges_of_run(run)


def validate_release(catalog: Catalog, spec: ReportSpec, config_dir: Path | str,
                     day: dt.date) -> dict[str, Any]:
    door = releaser(catalog, config_dir)
    plan = door.plan(spec.aggregation)
    stored = door.stored(spec.aggregation, day)
    if stored is None:
        raise MissingInput(f"no stored release of report '{spec.name}' for {day.isoformat()}")
    released = get_spark().read.parquet(str(stored.table_path))
    keys = [c for c, t in released.dtypes if t == "string" and c in plan.group_columns]
    suite = build_release_suite(
        noise_plan.published_columns(plan), noise_plan.count_columns(plan), string_columns=keys,
        report=spec.name
    )
    return validate_dataframe(released, suite, label=f"release {spec.name} {day}")
