"""`kr-reports`: the command line of the reporting pipeline."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
from pathlib import Path

from core.errors import InternalAlarm, KrReportsError
from core.names import UnsafeName, check_identifier, path_under


def _quiet_environment() -> None:
    """Offline-safe defaults, set before Prefect, GX or Spark are imported."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".prefect"))
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from core.private import use_private_umask

    use_private_umask()  # raw rows, keys and ledgers: files 0600, folders 0700
    import flows  # noqa: F401  registers Prefect Secret blocks as the key store (Prefect loads lazily)


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


def _cmd_explain(args: argparse.Namespace) -> int:
    from core.budget_plan import metric_shares
    from core.config import ConfigError, load_pipeline_config, load_report_specs
    from core.dp import plan_aggregation
    from core.explain import explain

    config_dir = Path(args.config_dir)
    specs = {s.name: s for s in load_report_specs(config_dir)}
    if args.report not in specs:
        raise ConfigError(f"no report '{args.report}' in {config_dir / 'reports'} "
                          f"(reports: {', '.join(sorted(specs))})")
    spec = specs[args.report]
    pipeline = load_pipeline_config(config_dir)
    plan = plan_aggregation(spec.aggregation, pipeline.regions)
    shares = metric_shares(pipeline, list(specs.values()), spec.name)
    shuffles = None
    if not args.no_spark:
        from stages.spark import get_spark
        from transforms.report_aggregate import count_shuffles
        from transforms.report_inputs import UNIT

        shuffles = count_shuffles(get_spark("kr-reports-explain"), plan, UNIT)
    print(explain(plan, shuffles, spec.delivery, shares))
    return 0


def _cmd_kanon(args: argparse.Namespace) -> int:
    from stages.catalog import Catalog
    from stages.kanon_file import Requirements, kanon_file

    mapping = dict(item.split("=", 1) for item in args.hierarchy or [])
    req = Requirements(
        k=args.k, l=args.l, l_kind=args.l_kind, c=args.c, t=args.t, t_distance=args.t_distance,
        sensitive=args.sensitive, suppression_limit=args.suppression_limit,
    )
    if args.quarantine:
        quarantine = _empty_or_new(Path(args.quarantine), "--quarantine")
    else:
        stem = check_identifier(Path(args.input).stem, "input name (names the quarantine; pass --quarantine)")
        quarantine = path_under(Catalog.from_env(args.data_dir, None).data_dir / "quarantine" / "kanon", stem)
    report = kanon_file(
        Path(args.input), Path(args.out), [c.strip() for c in args.qi.split(",") if c.strip()],
        Path(args.hierarchies), req, sep=args.sep, metric=args.metric, algorithm=args.algorithm,
        unit=args.unit, hierarchy_files=mapping, quarantine=quarantine,
    )
    print(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0


def _cmd_protect(args: argparse.Namespace) -> int:
    from core.config import load_pipeline_config
    from core.policy import load_policy
    from stages.catalog import Catalog
    from stages.protect_file import protect_file

    config_dir = Path(args.config_dir)
    policy = load_policy(config_dir)
    pipeline = load_pipeline_config(config_dir)
    purpose = _configured_purpose(args.purpose, pipeline.purposes, config_dir)
    given = args.release is not None
    release = check_identifier(
        args.release if given else f"{Path(args.input).name}-{dt.date.today().isoformat()}",
        "release id" if given else "release id (from the input's name; pass --release)")
    if args.quarantine:
        quarantine = _empty_or_new(Path(args.quarantine), "--quarantine")
    else:
        data_dir = Catalog.from_env(args.data_dir, None).data_dir
        quarantine = path_under(data_dir / "quarantine" / "protect", release)
    options = _format_options(args)
    summary = protect_file(
        args.format, Path(args.input), Path(args.out), quarantine, policy,
        purpose=purpose, release=release, demo=args.demo, day=args.day,
        plausible_time=pipeline.plausible_time, **options,
    )
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def _configured_purpose(purpose: str, purposes: tuple[str, ...], config_dir: Path) -> str:
    from core.config import ConfigError

    if purpose not in purposes:
        raise ConfigError(f"--purpose {purpose!r} is not a configured purpose "
                          f"({config_dir / 'pipeline.yaml'}: {', '.join(purposes)})")
    return purpose


def _empty_or_new(folder: Path, option: str) -> Path:
    """A folder the command may fill (and replace): a new or empty one, never one holding data."""
    if folder.exists() and not (folder.is_dir() and not any(folder.iterdir())):
        raise UnsafeName(f"{option} {folder}: exists and is not empty; name a new or empty folder "
                         "(its contents would be replaced)")
    return folder


PROTECT_OPTIONS = {"site_domain": "--site-domain", "timezone": "--timezone", "source": "--source",
                   "file_format": "--file-format"}


def _format_options(args: argparse.Namespace) -> dict[str, str]:
    """The format options given, each one the format takes; --format canonical needs --source."""
    from stages.formats import FormatError, format_options

    given = {name: getattr(args, name) for name in PROTECT_OPTIONS if getattr(args, name) is not None}
    allowed = format_options(args.format)
    for name in given:
        if name not in allowed:
            takes = ", ".join(PROTECT_OPTIONS[o] for o in allowed if o in PROTECT_OPTIONS)
            raise FormatError(f"{args.input}: {PROTECT_OPTIONS[name]} does not apply to --format "
                              f"{args.format} (it takes {takes or 'none of the format options'})")
    if args.format == "canonical" and "source" not in given:
        raise FormatError(f"{args.input}: --format canonical needs --source (which source the files hold)")
    return given


def _open_ledger(args: argparse.Namespace):
    """The ledger at --ledger-url, else $KR_LEDGER_URL, else in the data folder; created only
    beside an empty release store (else a missing ledger is an error, not a fresh budget)."""
    from core.ledger import Ledger, ledger_location
    from stages.catalog import Catalog

    catalog = Catalog.from_env(args.data_dir, None)
    return Ledger(ledger_location(catalog.data_dir, args.ledger_url), create=catalog.release_store.is_empty())


def _cmd_ledger(args: argparse.Namespace) -> int:
    from stages.catalog import Catalog

    charges = _open_ledger(args).charges(args.dataset)
    if not charges:
        print("no charges recorded")
    store = Catalog.from_env(args.data_dir, None).release_store
    stored = {(r.release_id, r.ledger_entry_id) for r in store.records()}
    flagged = 0
    for c in charges:
        flag = _unstored_flag(c, (c.release_id, c.id) in stored)
        flagged += bool(flag)
        print(f"{c.id:>4}  {c.charged_at}  {c.release_id:<48} {c.dataset:<14} {c.partner:<16} "
              f"eps={c.epsilon:.4g} delta={c.delta:g} rho={c.rho:.4g}"
              + (f" approx={c.approx_epsilon:g}/{c.approx_delta:g}" if c.approx_epsilon else "") + flag)
    if flagged:
        print(f"{flagged} charge(s) have no stored release: their spend counts in the budget, they are no "
              "release. NOT STORED: a run stopped between charge and store (the next run of the release "
              "takes the charge up; noise drawn for it was never stored or delivered); LOST: the stored "
              "copy is gone (`kr-reports run --recover-lost`)")
    return 0


def _unstored_flag(charge, in_store: bool) -> str:
    """'' for a charge whose release is in the store; else why it has none."""
    from core.ledger import CHARGED

    if in_store:
        return ""
    return "  [NOT STORED]" if charge.state == CHARGED else "  [LOST]"


def _cmd_budget(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from core.config import load_pipeline_config

    pipeline = load_pipeline_config(Path(args.config_dir))
    if args.plan:
        return _print_plan(pipeline, args)
    from core.ledger import format_status

    as_of = args.as_of or dt.datetime.now(dt.UTC).date()
    statuses = _open_ledger(args).status(pipeline.limits, as_of)
    if args.json:
        print(json.dumps({"as_of": as_of.isoformat(), "guarantee": pipeline.guarantee(),
                          "limits": [asdict(s) for s in statuses]}, indent=2))
    else:
        print(pipeline.guarantee())
        print(format_status(statuses, as_of))
    return 0


def _print_plan(pipeline, args: argparse.Namespace) -> int:
    """The schedule's spend, refusals and noise, planned on an empty ledger; 1 when a report is refused."""
    from core.budget_plan import format_plan, plan_schedule
    from core.config import load_report_specs

    first = args.as_of or dt.datetime.now(dt.UTC).date()
    plan = plan_schedule(pipeline, load_report_specs(Path(args.config_dir)), args.days, first)
    if args.json:
        print(json.dumps(plan_json(plan, pipeline), indent=2))
    else:
        print(format_plan(plan, pipeline.guarantee()))
    return 1 if plan.refusals else 0


def plan_json(plan, pipeline) -> dict:
    return {
        "guarantee": pipeline.guarantee(),
        "first_day": plan.first_day.isoformat(),
        "days": plan.days,
        "limits": [{"scope": s.limit.scope, "window_days": s.limit.window_days, "epsilon": s.limit.epsilon,
                    "delta": s.limit.delta, "fullest_epsilon": s.fullest.epsilon, "method": s.fullest.method}
                   for s in plan.limits],
        "reports": [{"report": r.name, "dataset": r.dataset, "partner": r.partner, "rho": r.plan.cost.rho,
                     "epsilon_alone": r.plan.cost.epsilon, "share": plan.share(r.name),
                     "refused_on": r.refused_on.isoformat() if r.refused_on else None,
                     "metrics": {m.name: {p: n.sd for p, n in m.parts} for m in r.plan.metrics}}
                    for r in plan.reports],
    }


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


def _cmd_scan(args: argparse.Namespace) -> int:
    from stages.scan import format_report, scan_path
    from stages.spark import get_spark

    report = scan_path(get_spark("kr-reports-scan"), Path(args.path))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
    return 0 if report.clean else 1


def _cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the delivery verifies, 1 when it fails (any check), 2 when no key is usable."""
    from core.signing import SigningKeyError
    from stages.delivery import DeliveryInvalid, verify_delivery

    try:
        result = verify_delivery(args.delivery, _verification_key(args), pinned=args.fingerprint,
                                 partner=args.partner, allow_extra=args.allow_extra,
                                 allow_demo=args.allow_demo)
    except SigningKeyError as exc:
        print(f"kr-reports verify: error: {exc}", file=sys.stderr)
        return 2
    except DeliveryInvalid as exc:
        print(f"kr-reports verify: FAILED: {exc}", file=sys.stderr)
        return 1
    for name in result.unlisted:
        print(f"kr-reports verify: warning: {name} is not listed in manifest.json (allowed, not verified)",
              file=sys.stderr)
    if result.demo_key:
        print("kr-reports verify: warning: a DEMO key signed this delivery (allowed by --allow-demo)",
              file=sys.stderr)
    pinned = "pinned " if args.fingerprint else ""
    print(f"OK {result.location}: {result.report} {result.period} for {result.partner}; signature "
          f"valid ({pinned}Ed25519 key {result.fingerprint}); {len(result.files)} files match manifest.json: "
          f"{', '.join(result.files)}")
    return 0


def _fingerprint(text: str) -> str:
    """argparse type of --fingerprint: `sha256:HEX` or HEX, normalized."""
    from core.signing import parse_fingerprint

    try:
        return parse_fingerprint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_key_fingerprint(args: argparse.Namespace) -> int:
    """Print the fingerprint of the key that signs a partner's deliveries, to give the partner out of band."""
    from core.config import load_pipeline_config
    from core.signing import operator_key
    from stages.catalog import Catalog

    partner = load_pipeline_config(Path(args.config_dir)).partner(args.partner)
    key = operator_key(partner.id, partner.signing_key, Catalog.from_env(args.data_dir, None).signing_keys)
    if key.demo:
        print(f"kr-reports key-fingerprint: warning: partner '{partner.id}' has no configured key; this is "
              f"its DEMO key {key.origin} (synthetic data only: never give it to a partner)", file=sys.stderr)
    print(key.fingerprint)
    return 0


def _verification_key(args: argparse.Namespace):
    """--public-key FILE (all a partner needs), else the partner's key as the configuration names it."""
    from core.signing import SigningKeyError, load_public_key

    if args.public_key:
        import fsspec

        try:
            with fsspec.open(args.public_key, "rb") as handle:
                return load_public_key(handle.read(), args.public_key)
        except (FileNotFoundError, IsADirectoryError):
            raise SigningKeyError(f"{args.public_key}: public key file not found") from None

    from core.config import load_pipeline_config
    from core.signing import operator_public_key
    from stages.catalog import Catalog
    from stages.delivery import manifest_partner

    partner = load_pipeline_config(Path(args.config_dir)).partner(manifest_partner(args.delivery))
    key_dir = Catalog.from_env(args.data_dir, None).signing_keys
    return operator_public_key(partner.id, partner.signing_key, key_dir)


LEDGER_URL_HELP = ("privacy ledger: a SQLAlchemy URL or a SQLite path "
                   "(default: $KR_LEDGER_URL or <data-dir>/ledger.sqlite)")


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

    exp = commands.add_parser(
        "explain", help="print a report's plan before any data is touched",
        description="Print a report's plan: key domains, contribution bounds, each metric's "
        "mechanism, sensitivity, noise scale and expected error per cell, partition selection, "
        "the sparse-cell rule, and the shuffles of Spark's physical plan (on an empty input).",
    )
    exp.add_argument("report", metavar="REPORT", help="report name (config/reports/<REPORT>.yaml)")
    exp.add_argument("--config-dir", default="config", help="folder with pipeline.yaml and reports/")
    exp.add_argument("--no-spark", action="store_true", help="skip Spark (no shuffle counts)")
    exp.set_defaults(handler=_cmd_explain)

    prot = commands.add_parser(
        "protect", help="map a real file to its canonical source and protect it",
        description="Read a real file (Zeek conn/dns/http log, Argus binetflow CSV, web server "
        "combined log, IBM telco customer CSV, or canonical Parquet/CSV/JSON lines), quarantine "
        "what cannot be used, apply the privacy policy, validate, and write the protected "
        "dataset and summary.json to OUT. Pseudonyms are keyed per purpose and release.",
    )
    prot.add_argument("--format", required=True,
                      choices=("zeek_conn", "zeek_dns", "zeek_http", "binetflow", "combined_log",
                               "telco_customers", "canonical"))
    prot.add_argument("--input", required=True, help="input file or folder")
    prot.add_argument("--out", required=True, help="output folder")
    prot.add_argument("--purpose", default="aggregate_reports",
                      help="purpose of this release: one of the purposes in pipeline.yaml")
    prot.add_argument("--release", help="release id: letters, digits, '.', '_', '-' "
                                        "(default: <input name>-<today>)")
    prot.add_argument("--day", type=dt.date.fromisoformat,
                      help="quarantine events outside this day (YYYY-MM-DD)")
    prot.add_argument("--site-domain", help="combined_log: the site the log belongs to")
    prot.add_argument("--timezone", help="binetflow: time zone of StartTime (default UTC)")
    prot.add_argument("--source", choices=("subscribers", "devices", "call_records",
                                           "network_flows", "web_visits"),
                      help="canonical: which source the files hold")
    prot.add_argument("--file-format", choices=("parquet", "csv", "json"),
                      help="canonical: the files' format when their names do not tell it")
    prot.add_argument("--quarantine",
                      help="quarantine folder, new or empty "
                           "(default: $KR_DATA_DIR/quarantine/protect/<release>)")
    prot.add_argument("--data-dir", help="data folder (default: $KR_DATA_DIR or ./data)")
    prot.add_argument("--config-dir", default="config", help="folder with policy.yaml and pipeline.yaml")
    prot.add_argument("--demo", action="store_true",
                      help="allow a random per-run pseudonymization key (test data only)")
    prot.set_defaults(handler=_cmd_protect)

    kan = commands.add_parser(
        "kanon", help="make a record-level table k-anonymous (l-diverse, t-close)",
        description="Anonymize a delimited table over its quasi-identifiers with generalization "
        "hierarchies (ARX's CSV format, matched as <dataset>_hierarchy_<column>.csv), by optimal "
        "full-domain generalization with a suppression limit or by Mondrian. The output is "
        "verified independently before it is written; OUT gets anonymized/ and report.json "
        "(transformation, suppressed rows, information loss, risk, verification).",
    )
    kan.add_argument("--input", required=True, help="delimited file with a header")
    kan.add_argument("--sep", default=";", help="field separator (default ';')")
    kan.add_argument("--qi", required=True, help="quasi-identifiers, comma-separated")
    kan.add_argument("--hierarchies", required=True, help="folder with the hierarchy files")
    kan.add_argument("--hierarchy", action="append", metavar="COL=FILE",
                     help="explicit hierarchy file for a column (repeatable)")
    kan.add_argument("--k", type=int, required=True)
    kan.add_argument("--l", type=float, help="l-diversity of --sensitive")
    kan.add_argument("--l-kind", choices=("distinct", "entropy", "recursive"), default="distinct")
    kan.add_argument("--c", type=float, help="c of recursive (c, l)-diversity")
    kan.add_argument("--t", type=float, help="t-closeness of --sensitive")
    kan.add_argument("--t-distance", choices=("equal", "ordered"), default="equal")
    kan.add_argument("--sensitive", help="sensitive attribute column")
    kan.add_argument("--suppression-limit", type=float, default=0.0,
                     help="largest fraction of records that may be suppressed (default 0)")
    kan.add_argument("--metric", choices=("loss", "entropy", "discernibility", "aecs", "ncp"),
                     default="loss", help="information loss to minimize (optimal search)")
    kan.add_argument("--algorithm", choices=("optimal", "mondrian"), default="optimal")
    kan.add_argument("--unit", help="privacy-unit column (e.g. subscriber): k counts its distinct values")
    kan.add_argument("--out", required=True, help="output folder (must not exist)")
    kan.add_argument("--quarantine",
                     help="where unusable rows go, new or empty "
                          "(default: $KR_DATA_DIR/quarantine/kanon/<input name>)")
    kan.add_argument("--data-dir", help="data folder (default: $KR_DATA_DIR or ./data)")
    kan.set_defaults(handler=_cmd_kanon)

    ledger = commands.add_parser(
        "ledger", help="list the privacy ledger's charges",
        description="List every charge in the privacy ledger with its release id; a charge without a "
        "stored release is flagged NOT STORED (a run stopped between charge and store) or LOST (its "
        "stored copy is gone).",
    )
    ledger.add_argument("--data-dir", help="data folder (default: $KR_DATA_DIR or ./data)")
    ledger.add_argument("--ledger-url", help=LEDGER_URL_HELP)
    ledger.add_argument("--dataset", help="only this dataset")
    ledger.set_defaults(handler=_cmd_ledger)

    budget = commands.add_parser(
        "budget", help="show the privacy budget spent and left, or plan the schedule against it",
        description="For the privacy budget and every cap in pipeline.yaml, show the epsilon spent in the "
        "rolling window ending on the as-of day (the window's releases composed), what remains, and how "
        "many releases spent it. With --plan, plan the catalog's daily schedule instead.",
    )
    budget.add_argument("--data-dir", help="data folder (default: $KR_DATA_DIR or ./data)")
    budget.add_argument("--ledger-url", help=LEDGER_URL_HELP)
    budget.add_argument("--config-dir", default="config", help="folder with pipeline.yaml")
    budget.add_argument("--as-of", type=dt.date.fromisoformat,
                        help="last day of the windows (YYYY-MM-DD); default: today (UTC)")
    budget.add_argument("--json", action="store_true", help="print the status (or plan) as JSON")
    budget.add_argument("--plan", action="store_true",
                        help="plan the catalog's schedule instead: every report once a day on an empty "
                             "ledger, the fullest window per limit, the first day each report would be "
                             "refused and each metric's noise (exit 1 if any report is refused)")
    budget.add_argument("--days", type=int, default=120, help="days to plan (default 120)")
    budget.set_defaults(handler=_cmd_budget)

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

    scan = commands.add_parser(
        "scan", help="look for identifier-shaped values in data files",
        description="Scan a file, or every supported file under a folder (Parquet, CSV with a "
        "header, JSON lines, HTML text and attributes; Spark output folders too), for "
        "identifier-shaped values: e-mail "
        "addresses, phone numbers, IPv4/IPv6 and MAC addresses, IMEI, IMSI, ICCID and payment "
        "card numbers (the last three with a valid Luhn check digit). The same detectors guard "
        "the protected and release suites. The report names file, column, detector and the "
        "number of rows; it never shows a value.",
        epilog="exit status: 0 nothing found, 1 identifier-shaped values found, "
        "2 the path is missing, unsupported or unreadable",
    )
    scan.add_argument("path", metavar="PATH", help="file or folder to scan")
    scan.add_argument("--json", action="store_true", help="print the report as JSON")
    scan.set_defaults(handler=_cmd_scan)

    ver = commands.add_parser(
        "verify", help="check a delivery's signature and checksums",
        description="Verify a partner delivery (a folder or an fsspec URL such as s3://bucket/prefix/"
        "<report>/<day>): the Ed25519 signature over manifest.json, then the SHA-256 of every file "
        "it lists. With --public-key only the delivery and the key are needed (no Spark, ledger or "
        "configuration); without it the key comes from the partner's signing_key in pipeline.yaml "
        "(or its demo key). Pin the key with --fingerprint: the key file beside the deliveries is only as "
        "safe as that folder. A file manifest.json does not list, a manifest whose partner, report or "
        "period is not its folder's, and a demo-signed delivery all fail.",
        epilog="exit status: 0 verified, 1 the delivery is incomplete, altered, misplaced, holds an "
        "unlisted file, is demo-signed or signed by another key than the given or pinned one, "
        "2 no usable public key",
    )
    ver.add_argument("delivery", metavar="DELIVERY", help="delivery folder or fsspec URL")
    ver.add_argument("--public-key", metavar="FILE",
                     help="the partner's copy of signing_key.pub.pem (PEM), shared out of band")
    ver.add_argument("--config-dir", default="config",
                     help="folder with pipeline.yaml (used without --public-key)")
    ver.add_argument("--data-dir", help="data folder holding demo keys (default: $KR_DATA_DIR or ./data)")
    ver.add_argument("--fingerprint", type=_fingerprint, metavar="SHA256",
                     help="the key's fingerprint as the operator gave it to you out of band "
                          "(`kr-reports key-fingerprint`); any other key fails")
    ver.add_argument("--partner", metavar="ID",
                     help="your partner id, when your deliveries are not under a folder named by it")
    ver.add_argument("--allow-extra", action="append", default=[], metavar="NAME",
                     help="accept this file although manifest.json does not list it (unverified; repeatable)")
    ver.add_argument("--allow-demo", action="store_true",
                     help="accept a delivery signed by a demo key (synthetic data only)")
    ver.set_defaults(handler=_cmd_verify)

    fpr = commands.add_parser(
        "key-fingerprint", help="print the fingerprint of the key that signs a partner's deliveries",
        description="Print the SHA-256 fingerprint of the public key that signs a partner's deliveries "
        "(its configured signing_key, else its demo key), to give the partner out of band: the partner "
        "pins it with `kr-reports verify --fingerprint`, so a key replaced beside the deliveries fails.",
    )
    fpr.add_argument("partner", metavar="PARTNER", help="partner id (pipeline.yaml)")
    fpr.add_argument("--config-dir", default="config", help="folder with pipeline.yaml")
    fpr.add_argument("--data-dir", help="data folder holding demo keys (default: $KR_DATA_DIR or ./data)")
    fpr.set_defaults(handler=_cmd_key_fingerprint)
    return parser


def _users_to_fix(exc: Exception) -> bool:
    """An error of this project that is the user's to fix: shown as one line, without a traceback.

    Its message names files, columns, keys and counts, never data values (core.errors).
    An InternalAlarm is a safeguard catching the code itself: its traceback is shown.
    """
    return isinstance(exc, KrReportsError) and not isinstance(exc, InternalAlarm)


@contextlib.contextmanager
def _ending_cleanly(args: argparse.Namespace):
    """SIGTERM ends the command as Ctrl-C would, so its cleanup runs; the temporary Prefect server of
    a run is stopped however the command ends, kill -9 included (flows.api_server)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if in_main_thread else None
    try:
        if args.command == "run":
            from flows.api_server import temporary_api_server

            with temporary_api_server():
                yield
        else:
            yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_environment()
    try:
        with _ending_cleanly(args):
            return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if _users_to_fix(exc):
            print(f"kr-reports {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise
    except BaseException as ended:
        if _is_prefect_termination(ended):
            return 128 + ended.signal
        raise


def _is_prefect_termination(ended: BaseException) -> bool:
    """Inside a flow run, Prefect's own SIGTERM handler ends it with TerminationSignal: the same
    ending as ours (the temporary server is stopped all the same), so the same exit status."""
    exceptions = sys.modules.get("prefect.exceptions")  # only a command that ran a flow loaded it
    return exceptions is not None and isinstance(ended, exceptions.TerminationSignal)


if __name__ == "__main__":
    sys.exit(main())
