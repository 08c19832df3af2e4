import datetime as dt
import multiprocessing

import pytest

from kr_reports.ledger import BudgetExceeded, ChargeRequest, Ledger

DAY = dt.date(2026, 11, 1)


def _request(release_id="r/2026-11-01", epsilon=1.0, day=DAY, dataset="network_flows"):
    return ChargeRequest(release_id=release_id, dataset=dataset, privacy_unit="subscriber",
                         period=day, report="r", partner="p", purpose="aggregate_reports",
                         epsilon=epsilon, delta=0.0)


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


def _charge_in_process(path, release_id, results):
    try:
        Ledger(path).charge(_request(release_id, 3.0), 4.0, 0.0, 30)
        results.put("charged")
    except BudgetExceeded:
        results.put("refused")


def test_two_processes_at_once_cannot_overspend(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_charge_in_process, args=(path, f"r{i}", results))
               for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in workers)
    assert outcomes == ["charged", "refused", "refused", "refused"]
    assert sum(c.epsilon for c in Ledger(path).charges()) == 3.0
