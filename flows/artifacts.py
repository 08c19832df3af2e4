"""What a run shows in Prefect's UI: a Markdown artifact per released report and the run's summary."""

from __future__ import annotations

import datetime as dt
import re

from prefect import task
from prefect.artifacts import create_markdown_artifact

from core.config import (
    PipelineConfig,
)
from core.ledger import BudgetStatus, Ledger, ledger_location
from flows.task_errors import IO_RETRIES, keeping_data_out
from stages.catalog import Catalog
from stages.results import ReportDelivered


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


def summary_markdown(summary: dict) -> str:
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
