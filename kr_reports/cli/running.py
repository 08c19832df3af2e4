"""Commands that make and run the pipeline: generate, run, serve, purge."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path


def _cmd_generate(args: argparse.Namespace) -> int:
    from stages.generate import write_landing

    result = write_landing(
        Path(args.out),
        n_subscribers=args.subscribers,
        days=args.days,
        seed=args.seed,
        bad_row_rate=args.bad_row_rate,
        start_date=args.start_date,
        file_format=args.format,
    )
    print(json.dumps(result, indent=2))
    return 0


RUN_EXIT_STATUS = (
    "exit status: 0 every report delivered; 3 the privacy budget refused some reports (not charged), "
    "the others were delivered; 2 a stage or a report failed, or the input or configuration is wrong "
    "(reports delivered before or beside the failure are listed; with both failures and refusals the "
    "status is 2); 1 an unexpected error (a traceback)"
)


def _cmd_run(args: argparse.Namespace) -> int:
    """0: every report delivered; 3: the ones that fit delivered, some refused by the budget;
    2: some reports failed (the delivered ones are printed), or the run stopped at a stage."""
    from flows.daily import ReportsFailed, ReportsRefused, daily_partner_reports

    try:
        summary = daily_partner_reports(
            day=args.day,
            data_dir=args.data_dir,
            out_dir=args.out_dir,
            config_dir=args.config_dir,
            demo=args.demo,
            new_release=args.new_release,
            recover_lost=args.recover_lost,
        )
    except ReportsRefused as refused:
        _print_run(refused.summary)
        for line in refused.refusals:
            print(f"kr-reports run: refused: {line}", file=sys.stderr)
        return 3
    except ReportsFailed as failed:  # the others were delivered: say where before the error
        _print_run(failed.summary)
        print(f"kr-reports run: error: {failed}", file=sys.stderr)
        return 2
    _print_run(summary)
    return 0


def _print_run(summary: dict) -> None:
    print()
    print(f"Day {summary['day']}: {summary['rows_in']:,} rows read, "
          f"{summary['rows_quarantined']:,} quarantined, "
          f"{len(summary['reports'])} report(s) released, {len(summary['refused_reports'])} refused, "
          f"{len(summary['failed_reports'])} failed")
    for report in summary["reports"]:
        note = ""
        if report["reused"]:
            note = " (stored release reused)"
        elif not report["charged_this_run"]:
            note = " (under the charge an interrupted run left unstored)"
        print(f"  {report['report']} -> {report['delivery']}{note}")
    print(f"Charged this run: {len(summary['charged_this_run'])} release(s), rho {summary['rho_spent']:.4g} "
          f"(their own epsilons add to {summary['epsilon_spent']:.4g})")


def _cmd_serve(args: argparse.Namespace) -> int:
    from flows.schedules import load_schedules, serve_schedules

    schedules = load_schedules(Path(args.schedules))
    refusals = _schedule_refusals(Path(schedules.parameters.resolved()["config_dir"]))
    if refusals and not args.go_ahead:
        for report, day in refusals.items():
            print(f"kr-reports serve: error: report '{report}' would be refused on day {day} of its "
                  "schedule (see `kr-reports budget --plan`); re-size the catalog, or pass --go-ahead",
                  file=sys.stderr)
        return 2
    serve_schedules(schedules)
    return 0


def _schedule_refusals(config_dir: Path) -> dict[str, int]:
    """Each report the daily schedule would see refused within two windows, by day number (1 first)."""
    from core.budget_plan import plan_schedule
    from core.config import load_pipeline_config, load_report_specs

    pipeline = load_pipeline_config(config_dir)
    plan = plan_schedule(pipeline, load_report_specs(config_dir), 2 * pipeline.privacy_budget.window_days)
    return {name: (day - plan.first_day).days + 1 for name, day in plan.refusals.items()}


def _cmd_purge(args: argparse.Namespace) -> int:
    from core.config import load_pipeline_config
    from core.retention import PURGED_ZONES
    from stages.catalog import Catalog
    from stages.retention import format_purge, purge

    if args.older_than is not None:
        keep_days = dict.fromkeys(PURGED_ZONES, args.older_than)
    else:
        keep_days = load_pipeline_config(Path(args.config_dir)).retention.keep_days()
    as_of = args.as_of or dt.datetime.now(dt.UTC).date()
    result = purge(Catalog.from_env(args.data_dir, None), keep_days, as_of, dry_run=args.dry_run)
    print(format_purge(result))
    return 0


def _days(text: str) -> int:
    """A whole number of days, at least 1 (argparse type)."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, not '{text}'") from None
    if days < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 day, not {days}")
    return days


def add_commands(commands: argparse._SubParsersAction) -> None:
    gen = commands.add_parser(
        "generate", help="write synthetic landing data for all five sources",
        description="Write synthetic landing data (subscribers, devices, call_records, "
        "network_flows, web_visits), deterministic for a seed.",
    )
    gen.add_argument("--subscribers", type=int, default=5000, help="number of subscribers")
    gen.add_argument("--days", type=int, default=1, help="number of days of usage data")
    gen.add_argument("--out", required=True, help="landing folder to write")
    gen.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    gen.add_argument("--bad-row-rate", type=float, default=0.0,
                     help="fraction of rows to corrupt (0 to 1)")
    gen.add_argument("--start-date", type=dt.date.fromisoformat, default=dt.date(2026, 11, 1),
                     help="first day (YYYY-MM-DD)")
    gen.add_argument("--format", choices=("parquet", "csv", "json"), default="parquet")
    gen.set_defaults(handler=_cmd_generate)

    run = commands.add_parser(
        "run", help="run the daily partner-report flow",
        description="Ingest, validate, protect, release (DP) and deliver every report in the "
        "catalog for one day. An interrupted --new-release run is finished by running it again: reports "
        "it released are served, the others released, and a charge it left without a stored release is "
        "taken up (nothing is charged twice); until then a plain run refuses the reports it has not "
        "released rather than serve their previous release.",
        epilog=RUN_EXIT_STATUS,
    )
    run.add_argument("--day", help="day to report (YYYY-MM-DD); default: latest landing day")
    run.add_argument("--data-dir", help="data folder (default: $KR_DATA_DIR or ./data)")
    run.add_argument("--out-dir", help="output folder (default: $KR_OUT_DIR or ./out)")
    run.add_argument("--config-dir", default="config", help="folder with pipeline.yaml and reports/")
    run.add_argument("--demo", action="store_true",
                     help="synthetic data: allow a random per-run pseudonymization key")
    run.add_argument("--new-release", action="store_true",
                     help="make a new release of every report even when one is stored for the day "
                          "(charged again); run again to resume one that was interrupted")
    run.add_argument("--recover-lost", action="store_true",
                     help="a release charged and stored whose stored copy is lost is made again under a "
                          "new release number, charged again (without it such a release is refused)")
    run.set_defaults(handler=_cmd_run)

    srv = commands.add_parser(
        "serve", help="serve the scheduled deployments against a Prefect server",
        description="Register the daily and catch-up deployments of the report catalog, with the cron "
        "schedules and run parameters of the schedules file, on the Prefect server at PREFECT_API_URL "
        "(start one with `prefect server start`), and run their scheduled runs one at a time until "
        "stopped (Ctrl-C pauses the schedules). Refuses first, naming the report and the day, when the "
        "catalog's daily releases would be refused by the privacy budget (`kr-reports budget --plan`).",
    )
    srv.add_argument("--schedules", default="config/schedules.yaml",
                     help="schedules file (default: config/schedules.yaml)")
    srv.add_argument("--go-ahead", action="store_true",
                     help="serve even though the plan says a report would be refused")
    srv.set_defaults(handler=_cmd_serve)

    purge = commands.add_parser(
        "purge", help="remove internal zone partitions past their retention",
        description="Remove the day partitions (<zone>/<source>/date=D) of the raw, quarantine and "
        "protected zones older than their retention: --older-than DAYS for all three, else each zone's "
        "days under `retention` in pipeline.yaml. A partition is older than N days when its day is more "
        "than N days before the as-of day. The release store, the ledger, keys, landing, the analyst "
        "zone and deliveries are never touched; symbolic links are left alone, not followed.",
    )
    purge.add_argument("--older-than", type=_days, metavar="DAYS",
                       help="retention of every purged zone (default: pipeline.yaml's retention)")
    purge.add_argument("--data-dir", help="data folder (default: $KR_DATA_DIR or ./data)")
    purge.add_argument("--config-dir", default="config", help="folder with pipeline.yaml")
    purge.add_argument("--as-of", type=dt.date.fromisoformat,
                       help="the day retention counts back from (YYYY-MM-DD); default: today (UTC)")
    purge.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    purge.set_defaults(handler=_cmd_purge)
