"""Commands on the privacy budget and the ledger: explain, ledger, budget."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path


def _cmd_explain(args: argparse.Namespace) -> int:
    from core.budget_plan import metric_shares
    from core.config import ConfigError, load_pipeline_config, load_report_specs
    from core.explain import explain
    from core.noise_plan import plan_aggregation

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


LEDGER_URL_HELP = ("privacy ledger: a SQLAlchemy URL or a SQLite path "
                   "(default: $KR_LEDGER_URL or <data-dir>/ledger.sqlite)")


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


def add_commands(commands: argparse._SubParsersAction) -> None:
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
