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
import functools
import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import flow_run
from prefect.states import Failed, State

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
from core.errors import KrReportsError
from core.keys import master_key
from core.ledger import BudgetExceeded, BudgetStatus, Ledger, NewRelease, ledger_location
from core.locking import data_folder_lock
from core.policy import Policy, load_policy
from core.schemas import SOURCES
from core.sources import SourceLanding, SourcesConfig, load_sources_config
from core.store import remove_staging
from expectations.runner import build_data_docs, recording_validations
from stages import daily as stages
from stages.analyst import build_analyst_zone
from stages.catalog import Catalog
from stages.delivery import Delivered, check_delivery_setup, deliver, remove_staging_leftovers
from stages.results import Ingested, Protected, Refused, Released, ReportDelivered
from stages.sources import check_sources, generator_landing_format
from stages.spark import error_condition


def is_project_error(exc: BaseException) -> bool:
    """Raised by this project's code: its message names no data value, and a retry fails alike."""
    return isinstance(exc, KrReportsError)


def _worth_retrying(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry what may pass next time (storage, Spark); not a check of ours, nor a file Spark cannot parse."""
    error = state.result(raise_on_failure=False)
    return getattr(error, "retryable", not is_project_error(error))


IO_RETRIES = {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": _worth_retrying,
              "cache_policy": NO_CACHE}


class StageFailed(KrReportsError, RuntimeError):
    """A stage of the run failed; the message names the stage, the dataset and the day."""


class ReportsFailed(StageFailed):
    """Some reports failed; the run's summary says which others were delivered (and where)."""

    def __init__(self, message: str, summary: dict) -> None:
        super().__init__(message)
        self.summary = summary


class ReportsRefused(StageFailed):
    """The privacy budget could not take some reports; the others were delivered.

    Not a crash: one line per refused report (report, day, spent and left, when budget
    returns), and the run's summary of what was delivered.
    """

    def __init__(self, refusals: list[str], summary: dict) -> None:
        super().__init__(f"{len(refusals)} report(s) refused by the privacy budget, the others were "
                         "delivered: " + "; ".join(refusals))
        self.refusals, self.summary = refusals, summary


class TaskFailed(StageFailed):
    """A task met an error from outside this project, whose text may quote data values.

    Prefect stores a failed task's exception text and traceback in its API, so the task
    raises this instead: it names the error's type (and the file, when Spark could not
    read one of the data folder's files), and the original is logged only locally, at
    debug level. `retryable` says whether another attempt may pass.
    """

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def stage_failure_message(stage: str, dataset: str, day: dt.date, cause: BaseException) -> str:
    """Where the run stopped, and why when the cause is ours (other messages may quote data)."""
    if isinstance(cause, TaskFailed):  # already says what and where, without data
        reason = str(cause)
    elif is_project_error(cause):
        reason = f"{type(cause).__name__}: {cause}"
    else:
        reason = f"{type(cause).__name__} (details in the task run's log)"
    return f"stage '{stage}' failed for {dataset} on {day.isoformat()}: {reason}"


P = ParamSpec("P")
R = TypeVar("R")
local_log = logging.getLogger(__name__)  # not Prefect's run logger: nothing here reaches its API

# Spark's error conditions for a file it cannot parse: the next attempt fails alike.
UNPARSABLE_FILE = ("FAILED_READ_FILE", "CANNOT_READ_FILE_FOOTER", "MALFORMED_RECORD_IN_PARSING",
                   "UNABLE_TO_INFER_SCHEMA")
_JAVA_CONDITION = re.compile(r"(?:Exception|Error): \[([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)\]")
_FILE_URI = re.compile(r"file:(/[^\s'\"]+)")


def keeping_data_out(task_fn: Callable[P, R]) -> Callable[P, R]:
    """A task body whose foreign errors leave it as TaskFailed, their text only in the local debug log."""
    @functools.wraps(task_fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return task_fn(*args, **kwargs)
        except Exception as exc:
            local_log.debug("%s failed", task_fn.__name__, exc_info=True)
            if is_project_error(exc):  # its message is clean; a cause it chains to may not be
                exc.__cause__, exc.__suppress_context__ = None, True
                raise
            catalog = next((a for a in (*args, *kwargs.values()) if isinstance(a, Catalog)), None)
            error = foreign_error(exc, catalog.data_dir if catalog else None)
        raise error  # outside the handler: no chain back to the original, not even an implicit one
    return run


def foreign_error(exc: BaseException, data_dir: Path | None) -> TaskFailed:
    """The project's error for a foreign one: its type, Spark's error condition, the unreadable file."""
    text = str(exc)  # read for the condition and the file only, never repeated
    condition = spark_condition(exc, text)
    unparsable = (condition is not None and condition.startswith(UNPARSABLE_FILE)
                  and condition != "FAILED_READ_FILE.FILE_NOT_EXIST")
    kind = type(exc).__name__ + (f" {condition}" if condition else "")
    file = _file_in(text, data_dir) if condition else None
    if file and unparsable:
        return TaskFailed(f"{file}: cannot be parsed, corrupt or not in the landing format ({kind}; "
                          "details in the local debug log)", retryable=False)
    where = f" reading {file}" if file else ""
    return TaskFailed(f"{kind}{where} (its text may quote data: details in the local debug log)",
                      retryable=not unparsable)


def spark_condition(exc: BaseException, text: str) -> str | None:
    """Spark's error condition, when it gave one; else as a Java error's text names it."""
    condition = error_condition(exc)
    if condition:
        return condition
    found = _JAVA_CONDITION.search(text)
    return found.group(1) if found else None


def _file_in(text: str, data_dir: Path | None) -> Path | None:
    """The first file the text names inside the data folder (a path of ours, not a data value)."""
    if data_dir is None:
        return None
    for uri in _FILE_URI.findall(text):
        path = Path(uri.rstrip(".,;:)"))
        if path.is_relative_to(data_dir) and path.is_file():
            return path
    return None


@contextmanager
def _stage(stage: str, dataset: str, day: dt.date) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise StageFailed(stage_failure_message(stage, dataset, day, exc)) from exc


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


def release_artifact_key(report: str) -> str:
    """A report's stable artifact key (Prefect allows lowercase letters, digits and dashes)."""
    return "release-" + re.sub(r"[^a-z0-9]+", "-", report.lower()).strip("-")


def release_markdown(report: ReportDelivered, budget: BudgetStatus, data_docs: str) -> str:
    """What one report released, and the privacy budget in the window ending on the release's day."""
    reused = ("yes: the stored release was served again (no new noise, no new charge)"
              if report.reused else "no: noise drawn once and charged to the ledger")
    cells = "; ".join(f"{status} {n:,}" for status, n in sorted(report.cells_by_status.items()))
    rows = [
        ("release id", f"`{report.release_id}`"),
        ("partner", report.partner),
        ("reused", reused),
        ("epsilon", f"{report.epsilon:g}"),
        ("delta", f"{report.delta:g}"),
        ("cells", cells or "none"),
        ("ledger entry", str(report.ledger_entry_id)),
        ("delivery", report.delivery),
        ("data docs", data_docs),
    ]
    b = budget
    return "\n".join([
        f"# Release of {report.report} for {b.window_end}",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        f"Privacy budget ({b.scope}) per {b.privacy_unit} in the {b.window_days}-day window "
        f"{b.window_start} to {b.window_end}, {b.releases} release(s) charged, composed by {b.method}:",
        "",
        "| | epsilon | delta |",
        "|---|---:|---:|",
        f"| budget | {b.budget_epsilon:g} | {b.budget_delta:g} |",
        f"| spent | {b.spent_epsilon:.4g} | {b.spent_delta:g} |",
        f"| remaining | {b.remaining_epsilon:.4g} | |",
    ])


@task(name="release-artifacts", **IO_RETRIES)
@keeping_data_out
def release_artifacts_task(catalog: Catalog, pipeline: PipelineConfig, day: dt.date,
                           reports: list[ReportDelivered], data_docs: str) -> list[str]:
    """One artifact per report; the budget is read from the ledger after every release of the run."""
    if not reports:
        return []
    ledger = Ledger(ledger_location(catalog.data_dir), create=False)  # the releases were charged to it
    keys = []
    for report in reports:
        (budget,) = ledger.status([pipeline.privacy_budget], day)
        keys.append(release_artifact_key(report.report))
        create_markdown_artifact(
            key=keys[-1],
            markdown=release_markdown(report, budget, data_docs),
            description=f"What {report.report} released for {day.isoformat()}, and the budget left",
        )
    return keys


def _summary_markdown(summary: dict) -> str:
    lines = [
        f"# Daily partner reports, {summary['day']}",
        "",
        f"Rows read: {summary['rows_in']:,}; quarantined: {summary['rows_quarantined']:,}; "
        f"reports released: {len(summary['reports'])}, refused: {len(summary['refused_reports'])}; "
        f"rho charged this run: {summary['rho_spent']:.4g} (the own epsilons of its "
        f"{len(summary['charged_this_run'])} new charge(s) add to {summary['epsilon_spent']:.4g}; the "
        "window's total composes them, see each release's artifact)",
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
    lines += ["", f"Great Expectations Data Docs of this run's validations: {summary['data_docs']}"]
    lines += ["", "| report | partner | epsilon | reused | delivery |", "|---|---|---:|---|---|"]
    lines += [
        f"| {r['report']} | {r['partner']} | {r['epsilon']:g} | {r['reused']} | {r['delivery']} |"
        for r in summary["reports"]
    ]
    if summary["refused_reports"]:
        lines += ["", "Refused by the privacy budget (not released, not charged):", ""]
        lines += [f"- {line}" for line in summary["refused_reports"]]
    return "\n".join(lines)


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
    if demo:
        logger.info("demo mode: pseudonyms use a random key that lives only in this run")
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
        markdown=_summary_markdown(summary),
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
