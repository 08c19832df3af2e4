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

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from expectations.runner import validate_dataframe
from expectations.suites import build_protected_suite, build_raw_suite, build_release_suite
from flows.catalog import Catalog, read_landing, read_parquet, write_atomically, write_parquet
from flows.reference import load_oui_table
from kr_reports import dp
from kr_reports.config import PipelineConfig, ReportSpec
from kr_reports.keys import derive_key, master_key
from kr_reports.ledger import ChargeRequest, Ledger
from kr_reports.policy import Policy
from kr_reports.schemas import NETWORK_FLOWS, SOURCES, SUBSCRIBERS
from kr_reports.spark import get_spark
from transforms.bounding import (
    aggregate_cells,
    bound_contributions,
    filter_public_keys,
    with_all_public_cells,
)
from transforms.ingest import (
    check_landing_columns,
    filter_quarantined,
    filter_usable,
    with_typed_and_reasons,
)
from transforms.protect import References, protect, protected_columns

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


def _traffic_by_region_hour(flows: DataFrame, subscribers: DataFrame) -> DataFrame:
    """Flows with the subscriber's region and the hour of the flow."""
    regions = subscribers.select("subscriber", "region")
    return flows.join(regions, on="subscriber", how="inner").select(
        "subscriber", "region", F.hour("start_hour").alias("hour"), "bytes"
    )


def _aggregate_report(catalog: Catalog, plan: dp.ReportPlan, day: dt.date, salt: int) -> pd.DataFrame:
    """True per-cell aggregates after contribution bounding (small: one row per cell)."""
    spark = get_spark()
    flows = read_parquet(spark, catalog.protected(NETWORK_FLOWS, day))
    subscribers = read_parquet(spark, catalog.protected(SUBSCRIBERS, day))
    bounds = plan.spec.contribution
    bounded = bound_contributions(
        filter_public_keys(_traffic_by_region_hour(flows, subscribers), plan.public_keys),
        unit="subscriber",
        groups=list(plan.public_keys),
        clamps=plan.clamps,
        max_groups=bounds.max_groups_per_subscriber,
        max_rows=bounds.max_rows_per_group,
        salt=salt,
    )
    measures = ["distinct_units", *plan.clamps]
    cells = aggregate_cells(bounded, list(plan.public_keys), list(plan.clamps))
    return with_all_public_cells(cells, plan.public_keys, measures).toPandas()


def release_id(spec: ReportSpec, day: dt.date) -> str:
    return f"{spec.name}/{day.isoformat()}"


def release(
    catalog: Catalog, spec: ReportSpec, pipeline: PipelineConfig, day: dt.date, random_state=None
) -> dict:
    """Charge the ledger, draw noise once, and store the release; reuse a stored one.

    A stored release is returned as it is: drawing fresh noise for the same
    numbers would let anyone average the noise away.
    """
    store = catalog.release(spec.name, day)
    if (store / "release.json").is_file():
        return {**json.loads((store / "release.json").read_text()), "reused": True}
    plan = dp.plan_report(spec, pipeline.regions)
    cells = _aggregate_report(catalog, plan, day, salt=secrets.randbits(62))
    budget = pipeline.budget_for(spec.source)
    charge, _ = Ledger(catalog.ledger_path).charge(
        ChargeRequest(
            release_id=release_id(spec, day),
            dataset=spec.source,
            privacy_unit=spec.privacy_unit,
            period=day,
            report=spec.name,
            partner=spec.partner,
            purpose=spec.purpose,
            epsilon=plan.epsilon,
            delta=plan.delta,
        ),
        budget_epsilon=budget.epsilon,
        budget_delta=budget.delta,
        window_days=budget.window_days,
    )
    noisy = dp.noise_cells(cells, plan, random_state=random_state)
    record = {
        "release_id": charge.release_id,
        "ledger_entry_id": charge.id,
        "report": spec.name,
        "period": day.isoformat(),
        "epsilon": plan.epsilon,
        "delta": plan.delta,
        "cells": len(noisy),
        "metrics": [_metric_record(m) for m in plan.metrics],
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "path": str(store),
    }

    def fill(folder: Path) -> None:
        noisy.to_parquet(folder / "release.parquet", index=False)
        (folder / "release.json").write_text(json.dumps(record, indent=2))

    write_atomically(store, fill)
    return {**json.loads((store / "release.json").read_text()), "reused": False}


def _metric_record(metric: dp.MetricPlan) -> dict:
    return {
        "name": metric.name,
        "kind": metric.kind,
        "mechanism": metric.mechanism,
        "epsilon": metric.epsilon,
        "delta": metric.delta,
        "sensitivity": metric.sensitivity,
        "noise_sd": metric.noise_sd,
        "ci95_half_width": metric.ci_half_width,
    }


def validate_release(catalog: Catalog, spec: ReportSpec, pipeline: PipelineConfig, day: dt.date) -> dict:
    plan = dp.plan_report(spec, pipeline.regions)
    store = catalog.release(spec.name, day)
    released = get_spark().read.parquet(str(store / "release.parquet"))
    keys = [c for c, values in plan.public_keys.items() if isinstance(values[0], str)]
    suite = build_release_suite(
        dp.release_columns(plan), dp.count_columns(plan), string_columns=keys
    )
    return validate_dataframe(released, suite, label=f"release {spec.name} {day}")
