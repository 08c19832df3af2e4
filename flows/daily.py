"""The daily partner-report flow: ingest, validate, protect, release, validate, deliver.

Tasks pass paths, counts and release records (the frozen records of
stages.results), never DataFrames. IO tasks retry with a delay
(errors raised by this project's own checks are not retried: they would fail
the same way again); the release task does not (the release store and the
ledger make a re-run safe: it reuses what exists and never draws noise twice).

A failed run says where it stopped: the flow raises StageFailed naming the
stage, the dataset and the day; a report the privacy budget cannot take is
reported as refused (one line), the others are delivered, and the run ends
Failed naming it. A report that fails does not stop the others either: the run
ends with ReportsFailed, which carries the summary of what was delivered.

A `new_release` run opens the day's new release in the ledger before anything
is charged and closes it when no report failed; an interrupted one is resumed by
the next `new_release` run of the day (reports it already released are served,
a charge it left without a stored release is taken up: no new charge for either),
and a plain run refuses the reports it has not released yet rather than serve
their previous release. The summary's spend is read from the ledger's charges
made by this run (its flow run id), never from a charge an earlier run made.

A run publishes the artifact `daily-partner-reports` and one
`release-<report>` per report (what was released, and the privacy budget left
in the window ending on the day), and renders every
validation it made as Great Expectations Data Docs in
<data dir>/data_docs/<day>/<flow run id>/, a failed run included.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Failed

from core.config import (
    AnalystConfig,
    Partner,
    PipelineConfig,
    PlausibleTime,
    ReportSpec,
    check_report_allowed,
    load_analyst_config,
    load_pipeline_config,
    load_report_specs,
)
from core.keys import key_configured, master_key
from core.ledger import BudgetExceeded, NewRelease
from core.locking import data_folder_lock
from core.policy import Policy, load_policy
from core.schemas import SOURCES
from core.sources import SourceLanding, SourcesConfig, load_sources_config
from core.store import remove_staging
from expectations.runner import build_data_docs, recording_validations
from flows.artifacts import release_artifacts_task, summary_markdown
from flows.task_errors import (
    IO_RETRIES,
    ReportsFailed,
    ReportsRefused,
    StageFailed,
    _stage,
    keeping_data_out,
)
from stages import daily as stages
from stages.analyst import build_analyst_zone
from stages.catalog import Catalog
from stages.delivery import Delivered, check_delivery_setup, deliver, remove_staging_leftovers
from stages.results import Ingested, Protected, Refused, Released, ReportDelivered
from stages.sources import check_sources, generator_landing_format


@task(name="ingest", **IO_RETRIES)
@keeping_data_out
def ingest_task(catalog: Catalog, source: str, day: dt.date, landing_format: str | None,
                plausible_time: PlausibleTime, landing: SourceLanding) -> Ingested:
    result = stages.ingest(catalog, source, day, landing_format, plausible_time, landing)
    get_run_logger().info(
        "ingest %s: %d rows in, %d kept, %d quarantined",
        source, result.rows_in, result.rows_kept, result.rows_quarantined,
    )
    return result


@task(name="validate-raw", cache_policy=NO_CACHE)
@keeping_data_out
def validate_raw_task(catalog: Catalog, source: str, day: dt.date) -> dict[str, Any]:
    return stages.validate_raw(catalog, source, day)


@task(name="protect", **IO_RETRIES)
@keeping_data_out
def protect_task(catalog: Catalog, source: str, day: dt.date, demo: bool, policy: Policy) -> Protected:
    result = stages.protect_source(catalog, source, day, demo, policy)
    get_run_logger().info("protect %s: written and validated", source)
    return result


@task(name="analyst-zone", **IO_RETRIES)
@keeping_data_out
def analyst_zone_task(catalog: Catalog, day: dt.date, config: AnalystConfig) -> dict[str, Any]:
    result = build_analyst_zone(catalog, day, config)
    get_run_logger().info(
        "analyst zone %s: k %s achieved (asked %d), %d records suppressed",
        day, result["verification"]["k"], config.k, result["suppressed_records"],
    )
    return result


@task(name="release", retries=0, cache_policy=NO_CACHE)
@keeping_data_out
def release_task(catalog: Catalog, spec: ReportSpec, config_dir: str, day: dt.date,
                 new_release: bool | NewRelease, recover_lost: bool = False,
                 run: str = "") -> Released | Refused:
    """The release, or Refused (one line) when the budget cannot take it (news, not a crash)."""
    try:
        result = stages.release(catalog, spec, config_dir, day, new_release=new_release,
                                recover_lost=recover_lost, run=run)
    except BudgetExceeded as refusal:
        get_run_logger().warning("%s", refusal)
        return Refused(str(refusal))
    get_run_logger().info("%s %s: %s, epsilon %.3g", spec.name, day, result.how, result.record.epsilon)
    return result


@task(name="validate-release", cache_policy=NO_CACHE)
@keeping_data_out
def validate_release_task(catalog: Catalog, spec: ReportSpec, config_dir: str,
                          day: dt.date) -> dict[str, Any]:
    return stages.validate_release(catalog, spec, config_dir, day)


@task(name="deliver", **IO_RETRIES)
@keeping_data_out
def deliver_task(catalog: Catalog, spec: ReportSpec, release: Released, validation: dict[str, Any],
                 partner: Partner, demo: bool) -> Delivered:
    return deliver(catalog, spec, release.stored, validation, partner, demo)


def landing_days(catalog: Catalog) -> list[dt.date]:
    """The days the landing manifest lists (it is written once they are complete), oldest first."""
    dates = catalog.landing_manifest().get("dates") or []
    if not dates:
        raise ValueError(f"{catalog.landing_root}: landing manifest lists no dates")
    return sorted({dt.date.fromisoformat(d) for d in dates})


def latest_landing_day(catalog: Catalog) -> dt.date:
    return landing_days(catalog)[-1]


@task(name="data-docs", **IO_RETRIES)
@keeping_data_out
def data_docs_task(validations: list[dict], site_dir: Path, run_name: str) -> str:
    index = build_data_docs(validations, site_dir, run_name)
    get_run_logger().info("Data Docs of %d validations: %s", len(validations), index)
    return str(index)


@flow(name="daily_partner_reports")
def daily_partner_reports(
    day: str | None = None,
    data_dir: str | None = None,
    out_dir: str | None = None,
    config_dir: str = "config",
    demo: bool = False,
    new_release: bool = False,
    recover_lost: bool = False,
) -> dict:
    """Run every report in the catalog for one day and deliver it to its partner.

    Stops with StageFailed at the first failing stage before the reports; the Data
    Docs of what was validated until then are still built. A failing report does
    not stop the others: they are delivered, and the run then fails naming it.
    One run at a time on a data folder: another one is refused (RunInProgress).
    """
    setup = _checked_setup(data_dir, out_dir, config_dir, demo)  # touches no data folder
    with data_folder_lock(setup.catalog.data_dir):
        return _daily_partner_reports(setup, day, config_dir, demo, new_release, recover_lost)


@dataclass(frozen=True)
class RunSetup:
    """What a run checked before taking its data folder: configuration, keys, delivery targets."""

    catalog: Catalog
    pipeline: PipelineConfig
    policy: Policy
    specs: list[ReportSpec]
    analyst_config: AnalystConfig
    sources: SourcesConfig


def _checked_setup(data_dir: str | None, out_dir: str | None, config_dir: str, demo: bool) -> RunSetup:
    """Refuse what the configuration, the policy, the keys or a partner forbid, before any data
    is read and before the data folder is locked (or created)."""
    pipeline = load_pipeline_config(Path(config_dir))
    policy = load_policy(Path(config_dir))
    specs = load_report_specs(Path(config_dir))
    for spec in specs:
        check_report_allowed(spec, pipeline)
        policy.check_report(spec.aggregation, SOURCES[spec.aggregation.source], SOURCES["subscribers"])
    sources = load_sources_config(Path(config_dir))
    check_sources(sources)
    master_key(demo)  # fail fast when no key is configured outside demo mode
    catalog = Catalog.from_env(data_dir, out_dir)
    if not demo:  # a missing signing key stops the run here (demo keys are made under the lock)
        check_delivery_setup(catalog, _partners(pipeline, specs), demo)
    return RunSetup(catalog, pipeline, policy, specs, load_analyst_config(Path(config_dir)), sources)


def _partners(pipeline: PipelineConfig, specs: list[ReportSpec]) -> list[Partner]:
    return [pipeline.partner(s.delivery.partner) for s in specs]


def _daily_partner_reports(
    setup: RunSetup,
    day: str | None,
    config_dir: str,
    demo: bool,
    new_release: bool,
    recover_lost: bool,
) -> dict:
    logger = get_run_logger()
    catalog, pipeline, policy, specs = setup.catalog, setup.pipeline, setup.policy, setup.specs
    analyst_config = setup.analyst_config
    if demo:  # a configured key wins over the demo key (core.keys.master_key): say which one is used
        logger.info("demo mode: pseudonyms use the configured key" if key_configured()
                    else "demo mode: pseudonyms use a random key that lives only in this run")
    for note in check_delivery_setup(catalog, _partners(pipeline, specs), demo):
        logger.warning(note)
    _remove_staging_leftovers(catalog, _partners(pipeline, specs))
    run_day = dt.date.fromisoformat(day) if day else latest_landing_day(catalog)
    landing_format = generator_landing_format(catalog, setup.sources)
    docs_dir = catalog.data_docs(run_day, str(flow_run.id))  # internal: suites, columns, counts

    with recording_validations() as validations:
        try:
            sources = _ingest_and_protect(catalog, run_day, landing_format, demo, policy,
                                          pipeline.plausible_time, setup.sources)
            with _stage("analyst-zone", "analyst zone", run_day):
                analyst = analyst_zone_task(catalog, run_day, analyst_config)
            releasing = Releasing(config_dir, demo, new_release, recover_lost, str(flow_run.id))
            with _stage("release", "the day's new release", run_day):
                releasing = _with_new_release(catalog, releasing, run_day)
            reports, failed, refused = _release_and_deliver(catalog, specs, pipeline, run_day, releasing)
            if isinstance(releasing.new_release, NewRelease) and not failed:
                stages.close_new_release(catalog, releasing.new_release)
        except StageFailed:
            _data_docs_after_failure(list(validations), docs_dir)
            raise
        with _stage("data-docs", "the run's validations", run_day):
            data_docs = data_docs_task(list(validations), docs_dir, flow_run.name)
    with _stage("release-artifacts", "the run's releases", run_day):
        release_artifacts_task(catalog, pipeline, run_day, reports, data_docs)
    summary = {
        "day": run_day.isoformat(),
        "rows_in": sum(s.rows_in for s in sources),
        "rows_quarantined": sum(s.rows_quarantined for s in sources),
        "sources": [s.to_dict() for s in sources],
        "reports": [r.to_dict() for r in reports],
        **_spent_by_run(catalog, releasing.run),
        "analyst_zone": {
            "path": analyst["path"],
            "k": analyst["verification"]["k"],
            "l_distinct": analyst["verification"].get("l_distinct"),
            "suppressed_records": analyst["suppressed_records"],
            "transformation": analyst["transformation"],
        },
        "data_docs": data_docs,
        "flow_run_id": flow_run.id,
        "failed_reports": failed,
        "refused_reports": refused,
    }
    create_markdown_artifact(
        key="daily-partner-reports",
        markdown=summary_markdown(summary),
        description="What the daily run read, quarantined, released and delivered",
    )
    if failed:
        raise ReportsFailed(reports_failed_message(len(specs), failed, len(reports), refused), summary)
    if refused:  # a Failed state, not an exception: the refusal is news, and has no traceback
        refusal = ReportsRefused(refused, summary)
        return Failed(message=str(refusal), data=refusal)
    return summary


def _ingest_and_protect(catalog: Catalog, day: dt.date, landing_format: str | None, demo: bool,
                        policy: Policy, plausible_time: PlausibleTime,
                        sources_config: SourcesConfig) -> list[Ingested]:
    sources = []
    for source in SOURCES:
        with _stage("ingest", source, day):
            sources.append(ingest_task(catalog, source, day, landing_format, plausible_time,
                                       sources_config.landing(source)))
        with _stage("validate-raw", source, day):
            validate_raw_task(catalog, source, day)
        with _stage("protect", source, day):
            protect_task(catalog, source, day, demo, policy)
    return sources


def reports_failed_message(total: int, failed: list[str], delivered: int, refused: list[str]) -> str:
    """"k of n reports failed", and what became of the others, only as it is."""
    head = (f"all {total} reports failed" if len(failed) == total
            else f"{len(failed)} of {total} reports failed")
    others = []
    if delivered:
        others.append(f"{delivered} {'was' if delivered == 1 else 'were'} delivered")
    if refused:
        others.append(f"{len(refused)} refused by the privacy budget")
    tail = f"; of the others, {' and '.join(others)}" if others else ""
    return f"{head}{tail}: " + "; ".join(failed + refused)


def _spent_by_run(catalog: Catalog, run: str) -> dict:
    """What the ledger grew by in this run: its own charges (a reused or taken-up charge costs 0)."""
    charges = stages.charged_by_run(catalog, run)
    return {"epsilon_spent": math.fsum(c.epsilon for c in charges),
            "rho_spent": math.fsum(c.rho for c in charges),
            "charged_this_run": [c.release_id for c in charges]}


@dataclass(frozen=True)
class Releasing:
    """How this run releases: its configuration, demo keys, and the operator's release options.

    `new_release`: the operator's flag, then the day's NewRelease it opened or resumed.
    `run`: this run's id, recorded with every charge it makes.
    """

    config_dir: str
    demo: bool
    new_release: bool | NewRelease
    recover_lost: bool
    run: str = ""


def _with_new_release(catalog: Catalog, releasing: Releasing, day: dt.date) -> Releasing:
    """Open the day's new release before anything is charged, or resume the one a run left open."""
    if releasing.new_release is not True:
        return releasing
    opened, resumed = stages.open_new_release(catalog, releasing.config_dir, day)
    if resumed:
        get_run_logger().warning(
            "resuming the new release of %s opened %s by an interrupted run: reports it released are "
            "served, the others released (a charge it left unstored is taken up, not charged again)",
            day.isoformat(), opened.opened_at)
    return replace(releasing, new_release=opened)


def _release_and_deliver(catalog: Catalog, specs: list[ReportSpec], pipeline: PipelineConfig, day: dt.date,
                         releasing: Releasing) -> tuple[list[ReportDelivered], list[str], list[str]]:
    """Each report on its own: one that fails or is refused does not hold back the others.

    Returns the delivered reports, the failure message of each report that failed, and
    the refusal line of each report the privacy budget could not take.
    """
    reports, failed, refused = [], [], []
    for spec in specs:
        try:
            delivered = _release_and_deliver_one(catalog, spec, pipeline, day, releasing)
        except StageFailed as failure:
            get_run_logger().error("%s", failure)
            failed.append(str(failure))
            continue
        if isinstance(delivered, Refused):
            refused.append(delivered.line)
        else:
            reports.append(delivered)
    return reports, failed, refused


def _release_and_deliver_one(catalog: Catalog, spec: ReportSpec, pipeline: PipelineConfig, day: dt.date,
                             releasing: Releasing) -> ReportDelivered | Refused:
    with _stage("release", spec.name, day):
        released = release_task(catalog, spec, releasing.config_dir, day, releasing.new_release,
                                releasing.recover_lost, releasing.run)
    if isinstance(released, Refused):
        return released
    with _stage("validate-release", spec.name, day):
        validation = validate_release_task(catalog, spec, releasing.config_dir, day)
    with _stage("deliver", spec.name, day):
        delivery = deliver_task(catalog, spec, released, validation,
                                pipeline.partner(spec.delivery.partner), releasing.demo)
    return ReportDelivered.of(spec, released, delivery.path)


def _data_docs_after_failure(validations: list[dict], docs_dir: Path) -> None:
    """Data Docs of what was validated before a failure, never hiding the failure itself."""
    if not validations:
        return
    try:
        index = data_docs_task(validations, docs_dir, flow_run.name)
    except Exception as exc:
        get_run_logger().warning("Data Docs of the failed run were not built: %s", type(exc).__name__)
    else:
        get_run_logger().info("Data Docs of the failed run: %s", index)


def _remove_staging_leftovers(catalog: Catalog, partners: list[Partner]) -> None:
    """Hidden staging entries an interrupted run left behind (this run holds the data folder)."""
    removed = remove_staging(catalog.release_store.root)
    for partner in {p.id: p for p in partners}.values():
        removed += remove_staging_leftovers(catalog, partner)
    if removed:
        get_run_logger().info("removed %d staging leftover(s) of an interrupted run: %s",
                              len(removed), ", ".join(map(str, removed)))
