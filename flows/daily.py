"""The daily partner-report flow: ingest, validate, protect, release, validate, deliver.

Tasks pass paths and counts, never DataFrames. IO tasks retry with a delay;
the release task does not (the release store and the ledger make a re-run
safe: it reuses what exists and never draws noise twice).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows import stages
from flows.analyst import build_analyst_zone
from flows.catalog import Catalog
from flows.delivery import deliver
from kr_reports.config import (
    check_report_allowed,
    load_analyst_config,
    load_pipeline_config,
    load_report_specs,
)
from kr_reports.keys import master_key
from kr_reports.policy import load_policy
from kr_reports.schemas import SOURCES

IO_RETRIES = {"retries": 2, "retry_delay_seconds": 5, "cache_policy": NO_CACHE}


@task(name="ingest", **IO_RETRIES)
def ingest_task(catalog: Catalog, source: str, day: dt.date, landing_format: str) -> dict:
    result = stages.ingest(catalog, source, day, landing_format)
    get_run_logger().info(
        "ingest %s: %d rows in, %d kept, %d quarantined",
        source, result["rows_in"], result["rows_kept"], result["rows_quarantined"],
    )
    return result


@task(name="validate-raw", cache_policy=NO_CACHE)
def validate_raw_task(catalog: Catalog, source: str, day: dt.date) -> dict:
    return stages.validate_raw(catalog, source, day)


@task(name="protect", **IO_RETRIES)
def protect_task(catalog: Catalog, source: str, day: dt.date, demo: bool, policy) -> dict:
    result = stages.protect_source(catalog, source, day, demo, policy)
    get_run_logger().info("protect %s: written and validated", source)
    return result


@task(name="analyst-zone", **IO_RETRIES)
def analyst_zone_task(catalog: Catalog, day: dt.date, config) -> dict:
    result = build_analyst_zone(catalog, day, config)
    get_run_logger().info(
        "analyst zone %s: k %s achieved (asked %d), %d records suppressed",
        day, result["verification"]["k"], config.k, result["suppressed_records"],
    )
    return result


@task(name="release", retries=0, cache_policy=NO_CACHE)
def release_task(catalog: Catalog, spec, pipeline, day: dt.date, new_release: bool) -> dict:
    result = stages.release(catalog, spec, pipeline, day, new_release=new_release)
    how = "reused stored release (no new noise, no charge)" if result["reused"] else "released"
    get_run_logger().info("%s %s: %s, epsilon %.3g", spec.name, day, how, result["epsilon"])
    return result


@task(name="validate-release", cache_policy=NO_CACHE)
def validate_release_task(catalog: Catalog, spec, pipeline, day: dt.date) -> dict:
    return stages.validate_release(catalog, spec, pipeline, day)


@task(name="deliver", **IO_RETRIES)
def deliver_task(catalog: Catalog, spec, release: dict, inputs: dict, validation: dict) -> dict:
    return deliver(catalog, spec, release, inputs, validation)


def latest_landing_day(catalog: Catalog) -> dt.date:
    dates = catalog.landing_manifest().get("dates") or []
    if not dates:
        raise ValueError(f"{catalog.landing_root}: landing manifest lists no dates")
    return max(dt.date.fromisoformat(d) for d in dates)


def _summary_markdown(summary: dict) -> str:
    lines = [
        f"# Daily partner reports, {summary['day']}",
        "",
        f"Rows read: {summary['rows_in']:,}; quarantined: {summary['rows_quarantined']:,}; "
        f"reports released: {len(summary['reports'])}; epsilon spent this run: "
        f"{summary['epsilon_spent']:g}",
        "",
        "| source | rows in | kept | quarantined |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {s['source']} | {s['rows_in']:,} | {s['rows_kept']:,} | {s['rows_quarantined']:,} |"
        for s in summary["sources"]
    ]
    zone = summary["analyst_zone"]
    lines += ["", f"Analyst zone: k {zone['k']}, distinct l {zone['l_distinct']}, "
              f"{zone['suppressed_records']} records suppressed, at {zone['path']}"]
    lines += ["", "| report | partner | epsilon | reused | delivery |", "|---|---|---:|---|---|"]
    lines += [
        f"| {r['report']} | {r['partner']} | {r['epsilon']:g} | {r['reused']} | {r['delivery']} |"
        for r in summary["reports"]
    ]
    return "\n".join(lines)


@flow(name="daily_partner_reports")
def daily_partner_reports(
    day: str | None = None,
    data_dir: str | None = None,
    out_dir: str | None = None,
    config_dir: str = "config",
    demo: bool = False,
    new_release: bool = False,
) -> dict:
    """Run every report in the catalog for one day and deliver it to its partner."""
    logger = get_run_logger()
    pipeline = load_pipeline_config(Path(config_dir))
    policy = load_policy(Path(config_dir))
    specs = load_report_specs(Path(config_dir))
    analyst_config = load_analyst_config(Path(config_dir))
    for spec in specs:  # refuse what the policy or the partner forbids before reading any data
        check_report_allowed(spec, pipeline)
        policy.check_report(spec, SOURCES[spec.source], SOURCES["subscribers"])
    master_key(demo)  # fail fast when no key is configured outside demo mode
    if demo:
        logger.info("demo mode: pseudonyms use a random key that lives only in this run")
    catalog = Catalog.from_env(data_dir, out_dir)
    run_day = dt.date.fromisoformat(day) if day else latest_landing_day(catalog)
    landing_format = catalog.landing_manifest().get("format", "parquet")

    sources = []
    for source in SOURCES:
        sources.append(ingest_task(catalog, source, run_day, landing_format))
        validate_raw_task(catalog, source, run_day)
        protect_task(catalog, source, run_day, demo, policy)
    inputs = {s["source"]: {k: s[k] for k in ("rows_in", "rows_kept", "rows_quarantined")} for s in sources}
    analyst = analyst_zone_task(catalog, run_day, analyst_config)

    reports = []
    for spec in specs:
        released = release_task(catalog, spec, pipeline, run_day, new_release)
        validation = validate_release_task(catalog, spec, pipeline, run_day)
        delivery = deliver_task(catalog, spec, released, inputs, validation)
        reports.append(
            {
                "report": spec.name,
                "partner": spec.partner,
                "epsilon": released["epsilon"],
                "reused": released["reused"],
                "ledger_entry_id": released["ledger_entry_id"],
                "delivery": delivery["path"],
            }
        )
    summary = {
        "day": run_day.isoformat(),
        "rows_in": sum(s["rows_in"] for s in sources),
        "rows_quarantined": sum(s["rows_quarantined"] for s in sources),
        "sources": sources,
        "reports": reports,
        "epsilon_spent": math.fsum(r["epsilon"] for r in reports if not r["reused"]),
        "analyst_zone": {
            "path": analyst["path"],
            "k": analyst["verification"]["k"],
            "l_distinct": analyst["verification"].get("l_distinct"),
            "suppressed_records": analyst["suppressed_records"],
            "transformation": analyst["transformation"],
        },
    }
    create_markdown_artifact(
        key="daily-partner-reports",
        markdown=_summary_markdown(summary),
        description="What the daily run read, quarantined, released and delivered",
    )
    return summary
