import datetime as dt
import json
import multiprocessing
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from kr_reports.cli import main
from kr_reports.config import Budget
from kr_reports.ledger import LEDGER_URL_ENV, BudgetExceeded, ChargeRequest, Ledger, ledger_location

ROOT_CONFIG = Path(__file__).resolve().parents[1] / "config"
DAY = dt.date(2026, 11, 1)
ROOMY = (100.0, 1.0, 30)  # a budget, delta and window that refuse nothing, for setting up ledgers

# The table as the first, sqlite3-only ledger created it: no rho column.
LEGACY_SCHEMA = """
CREATE TABLE charges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    release_id TEXT NOT NULL UNIQUE,
    dataset TEXT NOT NULL,
    privacy_unit TEXT NOT NULL,
    period TEXT NOT NULL,
    report TEXT NOT NULL,
    partner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    epsilon REAL NOT NULL,
    delta REAL NOT NULL,
    charged_at TEXT NOT NULL
)
"""


def _request(release_id="r/2026-11-01", epsilon=1.0, day=DAY, dataset="network_flows",
             delta=0.0, rho=0.0, unit="subscriber"):
    return ChargeRequest(release_id=release_id, dataset=dataset, privacy_unit=unit,
                         period=day, report="r", partner="p", purpose="aggregate_reports",
                         epsilon=epsilon, delta=delta, rho=rho)


def test_a_release_is_charged_once(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    first, new = ledger.charge(_request(), 4.0, 0.0, 30)
    again, new_again = ledger.charge(_request(), 4.0, 0.0, 30)
    assert new and not new_again and first.id == again.id
    assert len(ledger.charges()) == 1


def test_over_budget_is_refused_and_nothing_is_written(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.charge(_request("a", 3.0), 4.0, 0.0, 30)
    with pytest.raises(BudgetExceeded, match="epsilon 3 / delta 0 of the budget"):
        ledger.charge(_request("b", 1.5, DAY + dt.timedelta(days=10)), 4.0, 0.0, 30)
    assert [c.release_id for c in ledger.charges()] == ["a"]
    # Outside the 30-day window, and on another dataset, the budget is fresh.
    ledger.charge(_request("c", 1.5, DAY + dt.timedelta(days=30)), 4.0, 0.0, 30)
    ledger.charge(_request("d", 3.5, dataset="web_visits"), 4.0, 0.0, 30)
    assert len(ledger.charges()) == 3


def test_check_refuses_as_charge_would_and_writes_nothing(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.charge(_request("a", 3.0), 4.0, 0.0, 30)
    ledger.check(_request("b", 1.0), 4.0, 0.0, 30)  # fits exactly
    with pytest.raises(BudgetExceeded, match=r"release 'b' needs epsilon 1\.5"):
        ledger.check(_request("b", 1.5), 4.0, 0.0, 30)
    ledger.check(_request("a", 3.0), 4.0, 0.0, 30)  # charged already: a retry is never refused
    assert [c.release_id for c in ledger.charges()] == ["a"]


def test_rho_is_recorded(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    charged, _ = ledger.charge(_request("z", 0.9, rho=0.02), 4.0, 0.0, 30)
    ledger.charge(_request("p", 0.5), 4.0, 0.0, 30)
    assert charged.rho == 0.02
    assert [(c.release_id, c.rho) for c in Ledger(tmp_path / "ledger.sqlite").charges()] == [
        ("z", 0.02), ("p", 0.0)]


def test_a_ledger_written_before_rho_keeps_its_charges_and_budget(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(LEGACY_SCHEMA)
        conn.execute("INSERT INTO charges (release_id, dataset, privacy_unit, period, report, partner, "
                     "purpose, epsilon, delta, charged_at) VALUES ('old', 'network_flows', 'subscriber', "
                     "'2026-11-01', 'r', 'p', 'aggregate_reports', 3.0, 0.0, '2026-11-01T06:00:00+00:00')")
    conn.close()
    ledger = Ledger(path)
    [old] = ledger.charges()
    assert (old.id, old.release_id, old.epsilon, old.rho) == (1, "old", 3.0, 0.0)
    with pytest.raises(BudgetExceeded, match="epsilon 3 / delta 0 of the budget"):
        ledger.charge(_request("new", 1.5, rho=0.1), 4.0, 0.0, 30)
    new, _ = ledger.charge(_request("new", 1.0, rho=0.1), 4.0, 0.0, 30)
    assert new.id == 2
    assert [(c.release_id, c.rho) for c in Ledger(path).charges()] == [("old", 0.0), ("new", 0.1)]


def test_a_sqlalchemy_url_opens_the_same_ledger_as_its_path(tmp_path):
    path = tmp_path / "nested" / "ledger.sqlite"
    by_url = Ledger(f"sqlite:///{path}")
    by_url.charge(_request("a", 3.0), 4.0, 0.0, 30)
    with pytest.raises(BudgetExceeded):
        Ledger(path).charge(_request("b", 1.5), 4.0, 0.0, 30)
    assert Ledger(path).charges() == by_url.charges()
    assert [c.release_id for c in by_url.charges()] == ["a"]


def test_the_ledger_location_is_an_explicit_url_then_the_environment_then_the_data_folder(
        tmp_path, monkeypatch):
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    assert ledger_location(tmp_path) == tmp_path / "ledger.sqlite"
    monkeypatch.setenv(LEDGER_URL_ENV, "postgresql://ledger-host/kr")
    assert ledger_location(tmp_path) == "postgresql://ledger-host/kr"
    assert ledger_location(tmp_path, "sqlite:///other.sqlite") == "sqlite:///other.sqlite"


def _days(n):
    return DAY + dt.timedelta(days=n)


@pytest.fixture
def spent_ledger(tmp_path):
    """network_flows with charges inside, around and outside the 30-day window ending on DAY."""
    ledger = Ledger(tmp_path / "data" / "ledger.sqlite")
    for release_id, epsilon, day, extra in [
        ("too-old", 1.0, _days(-40), {}),           # outside window and span
        ("day-before-window", 0.7, _days(-30), {}),  # just outside both
        ("window-start", 0.5, _days(-29), {"delta": 1e-7, "rho": 0.1}),
        ("as-of", 1.0, DAY, {}),
        ("after", 0.25, _days(5), {}),              # after DAY: in the span, not the window
        ("device-unit", 2.0, DAY, {"unit": "device"}),  # another privacy unit's budget
        ("web", 2.0, DAY, {"dataset": "web_visits"}),
    ]:
        ledger.charge(_request(release_id, epsilon, day, **extra), *ROOMY)
    return ledger


def test_status_sums_the_rolling_window_ending_on_the_day(spent_ledger):
    budgets = [Budget(dataset="network_flows", window_days=30, epsilon=4.0, delta=1e-6),
               Budget(dataset="web_visits", window_days=30, epsilon=4.0),
               Budget(dataset="subscribers", window_days=7, epsilon=2.0)]
    flows, web, subscribers = spent_ledger.status(budgets, DAY)
    assert (flows.window_start, flows.window_end) == ("2026-10-03", "2026-11-01")
    assert (flows.spent_epsilon, flows.spent_delta, flows.spent_rho, flows.releases) == (1.5, 1e-7, 0.1, 2)
    assert flows.remaining_epsilon == 2.5
    assert flows.remaining_delta == pytest.approx(9e-7, rel=1e-12)
    assert (flows.committed_around_epsilon, flows.committed_around_delta) == (1.75, 1e-7)
    assert (web.spent_epsilon, web.remaining_epsilon, web.releases) == (2.0, 2.0, 1)
    assert (subscribers.spent_epsilon, subscribers.remaining_epsilon, subscribers.releases) == (0.0, 2.0, 0)
    assert subscribers.window_start == "2026-10-26"


def test_remaining_budget_is_never_negative(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.charge(_request("a", 3.0, delta=1e-6), 4.0, 1e-5, 30)
    # The budget was cut after the charge: more is spent than it allows.
    [status] = ledger.status([Budget(dataset="network_flows", window_days=30, epsilon=2.0, delta=1e-7)], DAY)
    assert (status.spent_epsilon, status.spent_delta) == (3.0, 1e-6)
    assert (status.remaining_epsilon, status.remaining_delta) == (0.0, 0.0)


@pytest.fixture
def cli_config(tmp_path, monkeypatch):
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(ROOT_CONFIG / "pipeline.yaml", config / "pipeline.yaml")
    return config


def _table_row(out, dataset):
    [line] = [line for line in out.splitlines() if line.startswith(dataset + " ")]
    return line.split()


def test_cli_budget_prints_spent_and_remaining_per_dataset(spent_ledger, tmp_path, cli_config, capsys):
    assert main(["budget", "--data-dir", str(tmp_path / "data"), "--config-dir", str(cli_config),
                 "--as-of", DAY.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "rolling windows ending 2026-11-01" in out
    # dataset, window, budget eps / delta, spent eps / delta, remaining eps / delta, rho, releases, committed
    assert _table_row(out, "network_flows") == ["network_flows", "30", "days", "4", "/", "0", "1.5", "/",
                                                "1e-07", "2.5", "/", "0", "0.1", "2", "1.75"]
    # web_visits has a delta budget (1e-5) for partition selection; none of it is spent here
    assert _table_row(out, "web_visits")[6:] == ["2", "/", "0", "2", "/", "1e-05", "0", "1", "2"]
    assert _table_row(out, "devices")[3:12] == ["2", "/", "0", "0", "/", "0", "2", "/", "0"]


def test_cli_budget_json(spent_ledger, tmp_path, cli_config, capsys):
    assert main(["budget", "--data-dir", str(tmp_path / "data"), "--config-dir", str(cli_config),
                 "--as-of", DAY.isoformat(), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["as_of"] == "2026-11-01"
    by_dataset = {b["dataset"]: b for b in report["budgets"]}
    assert set(by_dataset) == {"network_flows", "call_records", "web_visits", "subscribers", "devices"}
    flows = by_dataset["network_flows"]
    assert (flows["spent_epsilon"], flows["remaining_epsilon"], flows["releases"]) == (1.5, 2.5, 2)


def test_cli_reads_the_ledger_named_by_url_option_or_environment(tmp_path, cli_config, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    Ledger(url).charge(_request("elsewhere", 1.25), *ROOMY)
    common = ["--data-dir", str(tmp_path / "data")]
    budget = ["budget", *common, "--config-dir", str(cli_config), "--as-of", DAY.isoformat(), "--json"]

    def spent_on_flows():
        report = json.loads(capsys.readouterr().out)
        return next(b["spent_epsilon"] for b in report["budgets"] if b["dataset"] == "network_flows")

    assert main(budget) == 0 and spent_on_flows() == 0.0  # the data folder's own, empty ledger
    assert main([*budget, "--ledger-url", url]) == 0 and spent_on_flows() == 1.25
    monkeypatch.setenv(LEDGER_URL_ENV, url)
    assert main(budget) == 0 and spent_on_flows() == 1.25
    assert main(["ledger", *common]) == 0
    assert "eps=1.25" in capsys.readouterr().out


def _slow_insert(conn, cursor, statement, parameters, context, executemany):
    """Widen the gap between the budget read and the insert, where a missing lock would let two in."""
    if statement.lstrip().upper().startswith("INSERT"):
        time.sleep(0.2)


def _charge_in_process(location, release_id, start_together, results):
    ledger = Ledger(location)
    sa.event.listen(ledger.engine, "before_cursor_execute", _slow_insert)
    start_together.wait(60)
    try:
        ledger.charge(_request(release_id, 3.0), 4.0, 0.0, 30)
        results.put("charged")
    except BudgetExceeded:
        results.put("refused")
    except Exception as exc:  # a lock error is a failure of the test, not of the worker
        results.put(type(exc).__name__)


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "sqlalchemy-url"])
def test_two_processes_at_once_cannot_overspend(tmp_path, as_url):
    path = tmp_path / "ledger.sqlite"
    location = f"sqlite:///{path}" if as_url else path
    Ledger(location)
    context = multiprocessing.get_context("spawn")
    results, start_together = context.Queue(), context.Barrier(4)
    workers = [context.Process(target=_charge_in_process, args=(location, f"r{i}", start_together, results))
               for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in workers)
    assert outcomes == ["charged", "refused", "refused", "refused"]
    assert sum(c.epsilon for c in Ledger(path).charges()) == 3.0
