"""`kr-reports`: the command line of the reporting pipeline."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path


def _quiet_environment() -> None:
    """Offline-safe defaults, set before Prefect, GX or Spark are imported."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".prefect"))
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def _cmd_generate(args: argparse.Namespace) -> int:
    from flows.generate import write_landing

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


def _cmd_run(args: argparse.Namespace) -> int:
    from flows.daily import daily_partner_reports

    summary = daily_partner_reports(
        day=args.day,
        data_dir=args.data_dir,
        out_dir=args.out_dir,
        config_dir=args.config_dir,
        demo=args.demo,
    )
    print()
    print(f"Day {summary['day']}: {summary['rows_in']:,} rows read, "
          f"{summary['rows_quarantined']:,} quarantined, "
          f"{len(summary['reports'])} report(s) released, "
          f"epsilon spent this run {summary['epsilon_spent']:g}")
    for report in summary["reports"]:
        note = " (stored release reused)" if report["reused"] else ""
        print(f"  {report['report']} -> {report['delivery']}{note}")
    return 0


def _cmd_ledger(args: argparse.Namespace) -> int:
    from flows.catalog import Catalog
    from kr_reports.ledger import Ledger

    catalog = Catalog.from_env(args.data_dir, None)
    charges = Ledger(catalog.ledger_path).charges(args.dataset)
    if not charges:
        print("no charges recorded")
    for c in charges:
        print(f"{c.id:>4}  {c.charged_at}  {c.dataset:<14} {c.period}  {c.report:<32} "
              f"{c.partner:<16} eps={c.epsilon:g} delta={c.delta:g}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kr-reports",
        description="KR Online privacy-safe aggregate reporting pipeline.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        "catalog for one day.",
    )
    run.add_argument("--day", help="day to report (YYYY-MM-DD); default: latest landing day")
    run.add_argument("--data-dir", help="data folder (default: $KR_DATA_DIR or ./data)")
    run.add_argument("--out-dir", help="output folder (default: $KR_OUT_DIR or ./out)")
    run.add_argument("--config-dir", default="config", help="folder with pipeline.yaml and reports/")
    run.add_argument("--demo", action="store_true",
                     help="synthetic data: allow a random per-run pseudonymization key")
    run.set_defaults(handler=_cmd_run)

    ledger = commands.add_parser(
        "ledger", help="list the privacy ledger's charges",
        description="List every charge in the privacy ledger.",
    )
    ledger.add_argument("--data-dir", help="data folder (default: $KR_DATA_DIR or ./data)")
    ledger.add_argument("--dataset", help="only this dataset")
    ledger.set_defaults(handler=_cmd_ledger)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's to fix: shown as one line, without a traceback.

    Their messages name files, columns, expectations and counts, never data values.
    """
    from expectations.runner import ValidationFailed
    from flows.catalog import MissingInput
    from flows.stages import RowConservationError
    from kr_reports.config import ConfigError
    from kr_reports.dp import PlanError
    from kr_reports.keys import PseudonymKeyError
    from kr_reports.ledger import BudgetExceeded
    from transforms.ingest import SchemaMismatch

    return (
        ConfigError, MissingInput, SchemaMismatch, ValidationFailed, BudgetExceeded,
        PseudonymKeyError, PlanError, RowConservationError,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_environment()
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if isinstance(exc, _expected_errors()):
            print(f"kr-reports {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
