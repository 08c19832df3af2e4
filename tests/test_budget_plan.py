"""The schedule against the budget: `kr-reports budget --plan`, serve's refusal, explain's shares.

The shipped catalog must run forever: released daily for 120 days, no report is refused
and no 30-day window of any subscriber goes over epsilon 8 at delta 1e-6. A catalog made
too greedy is refused by the plan and by `serve`, naming the report and the day.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from core import budget_plan
from core.accounting import Cost, guarantee, total
from core.config import Budget, load_pipeline_config, load_report_specs
from kr_reports.cli import main

FIRST = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def shipped(config_dir):
    return load_pipeline_config(config_dir), load_report_specs(config_dir)


def test_the_shipped_catalog_fits_its_budget_for_120_days(shipped):
    pipeline, specs = shipped
    plan = budget_plan.plan_schedule(pipeline, specs, 120, FIRST)
    assert plan.refusals == {}
    budget = pipeline.privacy_budget
    assert (budget.window_days, budget.epsilon, budget.delta) == (30, 8.0, 1e-6)
    fullest = plan.limits[0].fullest
    assert fullest.epsilon <= 8.0 and fullest.method == "zcdp"
    # recomputed from the plan's own charges: a full window of every report, plus what is held aside
    day = total(r.plan.cost for r in plan.reports)
    window = total([day] * 30 + [plan.reserved])
    assert guarantee(window, 1e-6).epsilon == pytest.approx(fullest.epsilon, rel=1e-9)
    # a window of the catalog alone, without the analysts' reservation, is well inside too
    assert guarantee(total([day] * 30), 1e-6).epsilon < fullest.epsilon


def test_the_plan_is_the_ledgers_rule(shipped):
    """A greedier copy of the catalog is refused on the day the ledger would refuse it."""
    pipeline, specs = shipped
    greedy = [_scaled(spec, 4.0) for spec in specs]
    plan = budget_plan.plan_schedule(pipeline, greedy, 40, FIRST)
    assert plan.refusals  # 4x the rho cannot run daily
    first_refusal = min(plan.refusals.values())
    assert FIRST < first_refusal < FIRST + dt.timedelta(days=30)
    # every window the plan allowed stays within the budget
    assert plan.limits[0].fullest.epsilon <= pipeline.privacy_budget.epsilon + 1e-9


def test_window_shares_add_up_to_what_the_daily_catalog_spends(shipped):
    pipeline, specs = shipped
    shares = [s for spec in specs for s in budget_plan.metric_shares(pipeline, specs, spec.name).values()]
    assert 0.5 < math.fsum(shares) <= 1.0  # the catalog uses most of its window, and no more


def test_budget_plan_command_prints_spend_refusals_and_noise(config_dir, capsys):
    assert main(["budget", "--plan", "--days", "120", "--config-dir", str(config_dir),
                 "--as-of", FIRST.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "Over any 30 consecutive days of data" in out and "epsilon 8 at delta 1e-06" in out
    assert "No report is ever refused." in out
    assert "first refused: never" in out and "discrete_gaussian sd" in out  # refusals, and each noise
    for spec in load_report_specs(config_dir):
        assert spec.name in out
    assert main(["budget", "--plan", "--json", "--days", "120", "--config-dir", str(config_dir)]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert all(r["refused_on"] is None for r in planned["reports"])
    assert planned["limits"][0]["fullest_epsilon"] <= 8.0
    assert all(sd > 0 for r in planned["reports"] for parts in r["metrics"].values() for sd in parts.values())


def test_a_greedy_catalog_is_refused_by_the_plan_and_by_serve(config_dir, tmp_path, capsys, monkeypatch):
    config = _greedy_copy(config_dir, tmp_path, report="plan_mix_region_age", factor=12.0)
    assert main(["budget", "--plan", "--days", "60", "--config-dir", str(config)]) == 1
    out = capsys.readouterr().out  # one report's greed crowds the whole catalog: all share one budget
    assert "Refused: " in out and "plan_mix_region_age from" in out

    served = []
    monkeypatch.setattr("flows.schedules.serve_schedules", lambda schedules: served.append(schedules))
    schedules = tmp_path / "schedules.yaml"
    text = (config_dir / "schedules.yaml").read_text().replace("config_dir: config", f"config_dir: {config}")
    schedules.write_text(text)
    assert main(["serve", "--schedules", str(schedules)]) == 2
    err = capsys.readouterr().err
    assert "report 'plan_mix_region_age' would be refused on day" in err and "--go-ahead" in err
    refusals = [line for line in err.splitlines() if line.startswith("kr-reports serve: error:")]
    assert refusals and all("would be refused on day" in line for line in refusals)
    assert "Traceback" not in err
    assert served == []
    assert main(["serve", "--schedules", str(schedules), "--go-ahead"]) == 0
    assert len(served) == 1


def test_serve_registers_the_shipped_catalog(config_dir, tmp_path, monkeypatch):
    served = []
    monkeypatch.setattr("flows.schedules.serve_schedules", lambda schedules: served.append(schedules))
    schedules = tmp_path / "schedules.yaml"
    text = (config_dir / "schedules.yaml").read_text()
    schedules.write_text(text.replace("config_dir: config", f"config_dir: {config_dir}"))
    assert main(["serve", "--schedules", str(schedules)]) == 0 and len(served) == 1


def test_explain_states_each_metrics_share_of_the_window(config_dir, capsys):
    report = "network_traffic_region_hour"
    assert main(["explain", report, "--no-spark", "--config-dir", str(config_dir)]) == 0
    out = capsys.readouterr().out
    pipeline, specs = load_pipeline_config(config_dir), load_report_specs(config_dir)
    shares = budget_plan.metric_shares(pipeline, specs, report)
    for name, share in shares.items():
        assert f"{share:.1%} of the window's budget" in out, name


def _scaled(spec, factor: float):
    aggregation = spec.aggregation
    metrics = tuple(m.model_copy(update={"rho": m.rho * factor} if m.rho is not None
                                 else {"epsilon": m.epsilon * math.sqrt(factor)})
                    for m in aggregation.metrics)
    return spec.model_copy(update={"aggregation": aggregation.model_copy(update={"metrics": metrics})})


def _greedy_copy(config_dir: Path, tmp_path: Path, report: str, factor: float) -> Path:
    config = tmp_path / "config"
    shutil.copytree(config_dir, config)
    path = config / "reports" / f"{report}.yaml"
    spec = yaml.safe_load(path.read_text())
    for metric in spec["aggregation"]["metrics"]:
        if "rho" in metric:
            metric["rho"] *= factor
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return config


def test_the_analysts_cap_is_held_aside_in_every_limit_they_can_reach(shipped):
    pipeline, specs = shipped
    web = Budget(window_days=30, epsilon=3.0, delta=1e-7, dataset="web_visits")
    other_partner = Budget(window_days=30, epsilon=3.0, delta=1e-7, partner="adreach")
    weekly = Budget(window_days=7, epsilon=0.1, delta=1e-9, partner="internal")
    limits = pipeline.model_copy(update={"caps": (*pipeline.caps, web, other_partner)})
    internal = pipeline.caps[0]
    assert internal.partner == "internal"
    held = budget_plan.reservation(web, limits.caps, specs)  # analysts may query web visits
    assert (held.rho, held.approx_epsilon) == (internal.epsilon**2 / 2, internal.epsilon)
    assert budget_plan.reservation(other_partner, limits.caps, specs) == Cost()  # another partner's cap
    # a weekly cap fills a 30-day window five times over: held aside five times
    five = budget_plan.reservation(pipeline.privacy_budget, (weekly,), specs)
    assert five.approx_epsilon == pytest.approx(0.5) and five.rho == pytest.approx(0.5**2 / 2)
