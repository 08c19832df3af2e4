"""The pipeline's stages: each reads datasets, applies transforms, writes one result.

Every stage takes and returns plain values (paths, dates, counts), so a
Prefect task can wrap it, retry it and show its result, and a test can call
it alone. No DataFrame crosses a stage boundary.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from pathlib import Path

from pyspark.sql import DataFrame

from expectations.runner import validate_dataframe
from expectations.suites import build_protected_suite, build_raw_suite, build_release_suite
from flows.catalog import Catalog, MissingInput, read_landing, read_parquet, write_atomically, write_parquet
from flows.reference import load_domain_categories, load_oui_table
from kr_reports import dp, noising
from kr_reports.config import PipelineConfig, ReportSpec
from kr_reports.keys import derive_key, master_key
from kr_reports.ledger import ChargeRequest, Ledger, ledger_location
from kr_reports.policy import Policy
from kr_reports.schemas import SOURCES
from kr_reports.shares import with_shares
from kr_reports.spark import get_spark
from transforms.ingest import (
    check_landing_columns,
    filter_quarantined,
    filter_usable,
    with_typed_and_reasons,
)
from transforms.protect import References, protect, protected_columns
from transforms.report_aggregate import aggregate_report
from transforms.report_inputs import (
    DOMAIN_CATEGORIES,
    UNIT,
    references_read,
    report_input,
    sources_read,
)

log = logging.getLogger(__name__)


class RowConservationError(RuntimeError):
    """Rows in != rows kept + rows quarantined."""


def count_by_reason(quarantine: DataFrame) -> dict[str, int]:
    """Quarantined rows per reason (a small aggregate)."""
    counts = quarantine.groupBy("reason").count().collect()
    return {row["reason"]: row["count"] for row in sorted(counts, key=lambda r: r["reason"])}


def ingest(catalog: Catalog, source_name: str, day: dt.date, landing_format: str) -> dict:
    """Landing -> raw + quarantine, proving that every row is in one of them."""
    spark = get_spark()
    source = SOURCES[source_name]
    landing_path = catalog.landing(source, day)
    landing = read_landing(spark, landing_path, landing_format)
    check_landing_columns(landing, source, str(landing_path))
    event_day = day if source.is_daily else None
    flagged = with_typed_and_reasons(landing, source, event_day).persist()
    try:
        rows_in = flagged.count()
        write_parquet(filter_usable(flagged, source), catalog.raw(source, day))
        write_parquet(filter_quarantined(flagged, source), catalog.quarantine(source, day))
    finally:
        flagged.unpersist()
    kept = read_parquet(spark, catalog.raw(source, day)).count()
    by_reason = count_by_reason(read_parquet(spark, catalog.quarantine(source, day)))
    quarantined = sum(by_reason.values())
    if rows_in != kept + quarantined:
        raise RowConservationError(
            f"{source_name} {day}: {rows_in} rows in, but {kept} kept + {quarantined} quarantined"
        )
    return {
        "source": source_name,
        "rows_in": rows_in,
        "rows_kept": kept,
        "rows_quarantined": quarantined,
        "quarantined_by_reason": by_reason,
        "raw_path": str(catalog.raw(source, day)),
        "quarantine_path": str(catalog.quarantine(source, day)),
    }


def validate_raw(catalog: Catalog, source_name: str, day: dt.date) -> dict:
    source = SOURCES[source_name]
    df = read_parquet(get_spark(), catalog.raw(source, day))
    suite = build_raw_suite(source, day if source.is_daily else None)
    return validate_dataframe(df, suite, label=f"raw {source_name} {day}")


def references_for(rules) -> References:
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
) -> dict:
    """Raw -> protected, as the policy says, with the day's derived pseudonymization key."""
    source = SOURCES[source_name]
    rules = policy.resolve(source)
    key = derive_key(master_key(demo), f"protected/{day.isoformat()}")
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
    return {
        "source": source_name,
        "path": str(catalog.protected(source, day)),
        "validation": summary,
        "columns": treatment_summary(rules),
    }


def treatment_summary(rules) -> dict[str, list[str]]:
    summary: dict[str, list[str]] = {}
    for rule in rules:
        summary.setdefault(rule.treatment, []).append(rule.column)
    return summary


def _true_aggregates(catalog: Catalog, plan: dp.ReportPlan, day: dt.date, salt: int):
    """True bounded aggregates, collected: (cells present, bucket counts, private partitions)."""
    spark = get_spark()
    frames = {name: read_parquet(spark, catalog.protected(SOURCES[name], day))
              for name in sources_read(plan.spec.source)}
    columns = [*plan.group_columns, *(m.column for m in plan.metric_specs if m.column)]
    if DOMAIN_CATEGORIES in references_read(columns):
        frames[DOMAIN_CATEGORIES] = load_domain_categories(spark)
    aggregates = aggregate_report(report_input(plan.spec.source, frames, columns), plan, UNIT, salt)
    try:
        cells = aggregates.cells.toPandas()
        buckets = {name: df.toPandas() for name, df in aggregates.buckets.items()}
        partitions = aggregates.partitions.toPandas() if aggregates.partitions is not None else None
    finally:
        aggregates.unpersist()
    return cells, buckets, partitions


def release_id(spec: ReportSpec, day: dt.date, number: int = 1) -> str:
    base = f"{spec.name}/{day.isoformat()}"
    return base if number == 1 else f"{base}#{number}"


def stored_release(catalog: Catalog, spec: ReportSpec, day: dt.date) -> dict | None:
    """The latest stored release of a report for a day, if any."""
    numbers = catalog.release_numbers(spec.name, day)
    if not numbers:
        return None
    return json.loads((catalog.release(spec.name, day, numbers[-1]) / "release.json").read_text())


def release(
    catalog: Catalog,
    spec: ReportSpec,
    pipeline: PipelineConfig,
    day: dt.date,
    new_release: bool = False,
    random_state=None,
) -> dict:
    """Charge the ledger, draw noise once, and store the release; reuse a stored one.

    A stored release is returned as it is: drawing fresh noise for the same
    numbers would let anyone average the noise away. `new_release` makes a
    deliberate new release, charged again. Noise exists only in memory
    between the charge and the atomic write of the store; a run that dies
    there has published nothing, and its retry finds the charge already made.
    """
    stored = stored_release(catalog, spec, day)
    if stored is not None and not new_release:
        return {**stored, "reused": True}
    number = 1 if stored is None else stored["number"] + 1
    plan = dp.plan_report(spec, pipeline.regions)
    _check_budget(catalog, plan, pipeline, day, number)  # a refusal costs no Spark job
    found, buckets, partitions = _true_aggregates(catalog, plan, day, salt=secrets.randbits(62))
    charge = _charge(catalog, plan, pipeline, day, number)
    selected = noising.select_partitions(partitions, plan, random_state) if plan.selection else None
    cells = noising.complete_cells(found, plan, selected)
    noisy = with_shares(noising.noisy_release(cells, buckets, plan, random_state=random_state), plan)
    store = catalog.release(spec.name, day, number)
    record = _release_record(plan, charge, day, number, noisy, store)

    def fill(folder: Path) -> None:
        with_text_types(noisy, plan).to_parquet(folder / "release.parquet", index=False)
        (folder / "release.json").write_text(json.dumps(record, indent=2))

    write_atomically(store, fill)
    return {**json.loads((store / "release.json").read_text()), "reused": False}


def with_text_types(noisy, plan: dp.ReportPlan):
    """Text keys and status typed as strings, so a release with no rows keeps its schema.

    pandas gives an empty column no type; Parquet would store it as null and
    every later reader (the release suite, a partner) would see a void column.
    """
    text = [k.column for k in plan.spec.group_by
            if k.private or not isinstance(plan.public_keys[k.column][0], int)]
    return noisy.astype({column: "string" for column in [*text, "status"]})


def _charge_request(plan: dp.ReportPlan, day: dt.date, number: int) -> ChargeRequest:
    spec = plan.spec
    return ChargeRequest(
        release_id=release_id(spec, day, number),
        dataset=spec.source,
        privacy_unit=spec.privacy_unit,
        period=day,
        report=spec.name,
        partner=spec.partner,
        purpose=spec.purpose,
        epsilon=plan.epsilon,
        delta=plan.delta,
        rho=plan.rho,
    )


def _check_budget(catalog: Catalog, plan: dp.ReportPlan, pipeline: PipelineConfig, day: dt.date,
                  number: int) -> None:
    budget = pipeline.budget_for(plan.spec.source)
    Ledger(ledger_location(catalog.data_dir)).check(
        _charge_request(plan, day, number), budget.epsilon, budget.delta, budget.window_days)


def _charge(catalog: Catalog, plan: dp.ReportPlan, pipeline: PipelineConfig, day: dt.date, number: int):
    budget = pipeline.budget_for(plan.spec.source)
    charge, _ = Ledger(ledger_location(catalog.data_dir)).charge(
        _charge_request(plan, day, number), budget.epsilon, budget.delta, budget.window_days)
    return charge


def _release_record(plan: dp.ReportPlan, charge, day: dt.date, number: int, noisy, store: Path) -> dict:
    statuses = noisy["status"].value_counts()
    return {
        "release_id": charge.release_id,
        "number": number,
        "ledger_entry_id": charge.id,
        "report": plan.spec.name,
        "period": day.isoformat(),
        "accounting": plan.spec.accounting,
        "epsilon": plan.epsilon,
        "delta": plan.delta,
        "rho": plan.rho,
        "cells": len(noisy),
        "cells_by_status": {status: int(n) for status, n in sorted(statuses.items())},
        "metrics": [_metric_record(m) for m in plan.metrics],
        "partition_selection": _selection_record(plan.selection),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "path": str(store),
    }


def _selection_record(selection: dp.Selection | None) -> dict | None:
    if selection is None:
        return None
    return {"epsilon": selection.noise.epsilon, "delta": selection.delta,
            "threshold": selection.threshold, "noise_sd": selection.noise.sd}


def _metric_record(metric: dp.MetricPlan) -> dict:
    return {
        "name": metric.name,
        "kind": metric.kind,
        "column": metric.metric.column,
        "outputs": list(metric.outputs),
        "epsilon": metric.epsilon,
        "delta": metric.delta,
        "rho": metric.rho,
        "parts": [
            {
                "part": name,
                "mechanism": noise.kind,
                "sensitivity": noise.sensitivity,
                "noise_sd": noise.sd,
                "ci95_half_width": noise.ci_half_width(dp.CONFIDENCE),
            }
            for name, noise in metric.parts
        ],
    }


def validate_release(catalog: Catalog, spec: ReportSpec, pipeline: PipelineConfig, day: dt.date) -> dict:
    plan = dp.plan_report(spec, pipeline.regions)
    stored = stored_release(catalog, spec, day)
    if stored is None:
        raise MissingInput(f"no stored release of report '{spec.name}' for {day.isoformat()}")
    released = get_spark().read.parquet(str(Path(stored["path"]) / "release.parquet"))
    keys = [c for c, t in released.dtypes if t == "string" and c in plan.group_columns]
    suite = build_release_suite(
        dp.published_columns(plan), dp.count_columns(plan), string_columns=keys, report=spec.name
    )
    return validate_dataframe(released, suite, label=f"release {spec.name} {day}")
