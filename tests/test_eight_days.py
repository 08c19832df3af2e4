"""The schedule, for real: eight generated days run one after another through `kr-reports run`.

The shipped catalog against the shipped budget: no day is refused, every report is charged
what the plan says, and the ledger's window totals are the plan's. Then a cap the catalog
does not fit shows a refusal as news: one line per refused report, the others delivered,
exit status 3, no traceback.
"""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
import yaml

from core.accounting import guarantee, total
from core.budget_plan import plan_schedule
from core.config import load_pipeline_config, load_report_specs
from core.ledger import COST_PARTS, Ledger
from kr_reports.cli import main

FIRST = dt.date(2026, 11, 1)
DAYS = 8


@pytest.fixture(scope="module")
def eight_days(tmp_path_factory, spark, prefect_harness, config_dir):
    from stages.generate import write_landing

    root = tmp_path_factory.mktemp("eight-days")
    data, out = root / "data", root / "out"
    write_landing(data / "landing", n_subscribers=300, days=DAYS, seed=23, start_date=FIRST)
    runs = []
    for offset in range(DAYS):
        day = (FIRST + dt.timedelta(days=offset)).isoformat()
        runs.append(main(["run", "--demo", "--day", day, "--data-dir", str(data), "--out-dir", str(out),
                          "--config-dir", str(config_dir)]))
    return {"data": data, "out": out, "runs": runs}


def test_eight_days_run_without_a_refusal(eight_days, config_dir):
    assert eight_days["runs"] == [0] * DAYS
    specs = load_report_specs(config_dir)
    charges = Ledger(eight_days["data"] / "ledger.sqlite").charges()
    assert len(charges) == DAYS * len(specs)
    assert {c.period for c in charges} == {(FIRST + dt.timedelta(days=k)).isoformat() for k in range(DAYS)}


def test_the_ledgers_window_totals_match_the_plan(eight_days, config_dir):
    pipeline, specs = load_pipeline_config(config_dir), load_report_specs(config_dir)
    plan = plan_schedule(pipeline, specs, DAYS, FIRST)
    planned = {r.name: r.plan.cost for r in plan.reports}
    ledger = Ledger(eight_days["data"] / "ledger.sqlite")
    for charge in ledger.charges():  # each release charged what the plan says
        plan_cost = planned[charge.report]
        for part in COST_PARTS:
            assert getattr(charge.cost, part) == pytest.approx(getattr(plan_cost, part), rel=1e-12)
    budget = pipeline.privacy_budget
    for offset in range(DAYS):
        day = FIRST + dt.timedelta(days=offset)
        (status,) = ledger.status([budget], day)
        expected = guarantee(total(list(planned.values()) * (offset + 1)), budget.delta)
        assert status.spent_epsilon == pytest.approx(expected.epsilon, rel=1e-9)
        assert status.method == expected.method and status.releases == (offset + 1) * len(specs)
    assert status.spent_epsilon <= budget.epsilon


def test_a_release_the_budget_cannot_take_is_news_not_a_crash(eight_days, config_dir, tmp_path, capfd):
    config = tmp_path / "config"
    shutil.copytree(config_dir, config)
    pipeline = yaml.safe_load((config / "pipeline.yaml").read_text())
    pipeline["caps"].append({"dataset": "web_visits", "window_days": 30, "epsilon": 1.0, "delta": 1e-7})
    (config / "pipeline.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    last = (FIRST + dt.timedelta(days=DAYS - 1)).isoformat()
    capfd.readouterr()
    status = main(["run", "--demo", "--new-release", "--day", last, "--data-dir", str(eight_days["data"]),
                   "--out-dir", str(eight_days["out"]), "--config-dir", str(config)])
    out, err = capfd.readouterr()
    assert status == 3
    refused = [line for line in err.splitlines() if line.startswith("kr-reports run: refused: ")]
    web = {s.name for s in load_report_specs(config) if s.aggregation.source == "web_visits"}
    assert len(refused) == len(web)
    for name in web:
        line = next(line for line in refused if f"report '{name}' for {last} refused" in line)
        assert "dataset web_visits" in line and "left" in line and "returns on" in line
    assert "Traceback" not in out + err
    assert f"{len(load_report_specs(config)) - len(web)} report(s) released, {len(web)} refused" in out
