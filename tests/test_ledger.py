import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.accounting import Cost, approx_dp_cost, pure_dp_cost, zcdp_cost
from core.config import Budget
from core.ledger import (
    LEDGER_URL_ENV,
    BudgetExceeded,
    ChargeMismatch,
    ChargeRequest,
    Ledger,
    LedgerMissing,
    format_status,
    ledger_location,
    overdrawn_window,
)
from core.ledger.database import database_url
from core.mechanisms import zcdp_epsilon, zcdp_epsilon_bun_steinke
from kr_reports.cli import main

ROOT_CONFIG = Path(__file__).resolve().parents[1] / "config"
DAY = dt.date(2026, 11, 1)
ROOMY = [Budget(window_days=30, epsilon=100.0, delta=0.5)]  # refuses nothing, for setting up ledgers


def limit(epsilon=4.0, delta=0.0, window_days=30, **scope):
    return [Budget(window_days=window_days, epsilon=epsilon, delta=delta, **scope)]


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

# The table as ledgers were written before costs had parts: rho, hash and state, but
# no approximate-DP track.
BEFORE_PARTS_SCHEMA = (
    LEGACY_SCHEMA
    .replace("delta REAL NOT NULL,", "delta REAL NOT NULL,\n    rho FLOAT NOT NULL DEFAULT 0,")
    .replace("charged_at TEXT NOT NULL", "charged_at TEXT NOT NULL,\n"
             "    aggregation_hash TEXT NOT NULL DEFAULT '',\n    state TEXT NOT NULL DEFAULT 'stored'")
)


def _written_before(location, schema: str, rows: str):
    """A ledger as an earlier version left it: `schema` (SQLite's; in PostgreSQL's types there) and `rows`."""
    engine = sa.create_engine(database_url(location), poolclass=sa.pool.NullPool)
    if engine.dialect.name == "postgresql":
        schema = schema.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "SERIAL PRIMARY KEY").replace(
            "REAL", "DOUBLE PRECISION")
    with engine.begin() as conn:
        conn.exec_driver_sql(schema)
        conn.exec_driver_sql(rows)
    engine.dispose()
    return location


def _days(n):
    return DAY + dt.timedelta(days=n)


def _request(release_id="r/2026-11-01", epsilon=1.0, day=DAY, dataset="network_flows", cost=None,
             unit="subscriber", partner="p", report="r", aggregation_hash="", run="", new_release=None):
    """A request for a pure-DP release of `epsilon`, unless a `cost` is given."""
    return ChargeRequest(release_id=release_id, dataset=dataset, privacy_unit=unit,
                         period=day, report=report, partner=partner, purpose="aggregate_reports",
                         cost=pure_dp_cost([epsilon]) if cost is None else cost,
                         aggregation_hash=aggregation_hash, run=run, new_release=new_release)


def _released(ledger, request, limits):
    """Charge a release and mark it stored, as the releaser does once its table is written."""
    charge, new = ledger.charge(request, limits)
    ledger.mark_stored(charge.id)
    return charge, new


# ---------------------------------------------------------------- charged once, refused whole


def test_a_release_is_charged_once(ledger_at):
    ledger = Ledger(ledger_at)
    first, new = ledger.charge(_request(), limit())
    again, new_again = ledger.charge(_request(), limit())
    assert new and not new_again and first == again
    assert len(ledger.charges()) == 1
    assert first.cost == pure_dp_cost([1.0]) and first.state == "charged"


def test_over_budget_is_refused_and_nothing_is_written(ledger_at):
    ledger = Ledger(ledger_at)
    ledger.charge(_request("a", 3.0), limit())
    with pytest.raises(BudgetExceeded, match="epsilon 3 of 4 spent"):
        ledger.charge(_request("b", 1.5, _days(10)), limit())
    assert [c.release_id for c in ledger.charges()] == ["a"]
    # Outside every 30-day window holding "a" the budget is fresh.
    ledger.charge(_request("c", 1.5, _days(30)), limit())
    assert [c.release_id for c in ledger.charges()] == ["a", "c"]


def test_check_refuses_as_charge_would_and_writes_nothing(ledger_at):
    ledger = Ledger(ledger_at)
    ledger.charge(_request("a", 3.0), limit())
    ledger.check(_request("b", 1.0), limit())  # fits exactly
    with pytest.raises(BudgetExceeded, match=r"report 'r' for 2026-11-01 refused: it needs epsilon 1\.5"):
        ledger.check(_request("b", 1.5), limit())
    ledger.check(_request("a", 3.0), limit())  # charged already: a retry is never refused
    assert [c.release_id for c in ledger.charges()] == ["a"]


def test_a_limit_on_other_releases_is_not_checked(ledger_at):
    ledger = Ledger(ledger_at)
    tight = [Budget(window_days=30, epsilon=0.1, dataset="web_visits"),
             Budget(window_days=30, epsilon=0.1, partner="adreach")]
    ledger.charge(_request("flows", 3.0, dataset="network_flows", partner="metro-planning"), tight)
    assert len(ledger.charges()) == 1


def test_the_cost_is_recorded_in_all_its_parts(ledger_at):
    ledger = Ledger(ledger_at)
    mixed = zcdp_cost(0.02, 1e-7) + approx_dp_cost(0.3, 1e-8)
    charged, _ = ledger.charge(_request("z", cost=mixed), ROOMY)
    ledger.charge(_request("p", 0.5), ROOMY)
    assert charged.cost == mixed
    reopened = Ledger(ledger_at).charges()
    assert [(c.release_id, c.cost) for c in reopened] == [("z", mixed), ("p", pure_dp_cost([0.5]))]
    assert (reopened[0].rho, reopened[0].approx_epsilon, reopened[0].approx_delta) == (0.02, 0.3, 1e-8)


# ---------------------------------------------------------------- charged, stored, mismatched


def test_a_charged_release_is_reused_only_on_the_same_terms(ledger_at):
    ledger = Ledger(ledger_at)
    request = _request("r/2026-11-01", cost=zcdp_cost(0.05, 1e-6), aggregation_hash="h1")
    charge, _ = ledger.charge(request, limit(8.0, 1e-5))
    # Charged but not stored (the run died): the same request is paid for by the same charge,
    # even when the budget has since filled up.
    ledger.charge(_request("other", 7.0), ROOMY)
    assert ledger.charge(request, limit(8.0, 1e-5)) == (charge, False)
    ledger.check(request, limit(8.0, 1e-5))
    for changed, reason in [
        (_request("r/2026-11-01", cost=zcdp_cost(0.06, 1e-6), aggregation_hash="h1"), "rho 0.05 vs 0.06"),
        (_request("r/2026-11-01", cost=zcdp_cost(0.05, 1e-6), aggregation_hash="h2"), "the aggregation"),
        (_request("r/2026-11-01", cost=zcdp_cost(0.05, 1e-6) + approx_dp_cost(0.1, 1e-8),
                  aggregation_hash="h1"), "approx_epsilon 0.0 vs 0.1"),
        (_request("r/2026-11-01", cost=zcdp_cost(0.05, 1e-6), day=_days(1), aggregation_hash="h1"),
         "period '2026-11-01' vs '2026-11-02'"),
        (_request("r/2026-11-01", cost=zcdp_cost(0.05, 1e-6), dataset="web_visits", aggregation_hash="h1"),
         "dataset"),
    ]:
        with pytest.raises(ChargeMismatch, match="already charged") as refused:
            ledger.charge(changed, ROOMY)
        assert reason in str(refused.value)
        with pytest.raises(ChargeMismatch):
            ledger.check(changed, ROOMY)
    assert len(ledger.charges()) == 2


def test_a_stored_charge_never_pays_for_another_release(ledger_at):
    ledger = Ledger(ledger_at)
    charge, _ = ledger.charge(_request(), limit())
    ledger.mark_stored(charge.id)
    assert ledger.charges()[0].state == "stored"
    with pytest.raises(ChargeMismatch, match="not paid for again"):
        ledger.charge(_request(), limit())
    assert len(ledger.charges()) == 1


def test_charges_of_a_report_come_by_release_number(ledger_at):
    ledger = Ledger(ledger_at)
    for release_id in ["traffic/2026-11-01#3", "traffic/2026-11-01", "traffic/2026-11-01#2"]:
        ledger.charge(_request(release_id, 0.1, report="traffic"), ROOMY)
    ledger.charge(_request("traffic/2026-11-02", 0.1, day=_days(1), report="traffic"), ROOMY)
    assert [c.number for c in ledger.charges_of("traffic", DAY)] == [1, 2, 3]


# ---------------------------------------------------------------- identity and location


def test_a_ledger_keeps_its_identity_and_a_new_one_has_another(ledger_backend):
    location = ledger_backend.new()
    first = Ledger(location)
    assert Ledger(location).id == first.id
    assert Ledger(ledger_backend.url_of(location), create=False).id == first.id
    assert Ledger(ledger_backend.new()).id != first.id
    ledger_backend.delete(location)
    with pytest.raises(LedgerMissing):
        Ledger(location, create=False)
    assert Ledger(location).id != first.id  # a deleted ledger is a new ledger


def test_a_ledger_is_never_created_by_a_reader(ledger_backend, tmp_path):
    """No SQLite file, an empty one, or a PostgreSQL database without the ledger's tables."""
    nothing = ledger_backend.new(tmp_path / "nothing" / "ledger.sqlite")
    with pytest.raises(LedgerMissing, match="no privacy ledger"):
        Ledger(nothing, create=False)
    assert not (tmp_path / "nothing").exists() and ledger_backend.tables(nothing) == set()
    empty = ledger_backend.new(tmp_path / "empty.sqlite")
    if ledger_backend.is_sqlite:
        empty.touch()
    with pytest.raises(LedgerMissing):
        Ledger(empty, create=False)
    assert ledger_backend.tables(empty) == set()


def test_a_sqlalchemy_url_opens_the_same_ledger_as_its_path(tmp_path):
    path = tmp_path / "nested" / "ledger.sqlite"
    by_url = Ledger(f"sqlite:///{path}")
    by_url.charge(_request("a", 3.0), limit())
    with pytest.raises(BudgetExceeded):
        Ledger(path).charge(_request("b", 1.5), limit())
    assert Ledger(path).charges() == by_url.charges()
    assert [c.release_id for c in by_url.charges()] == ["a"]


def test_the_ledger_location_is_an_explicit_url_then_the_environment_then_the_data_folder(
        tmp_path, monkeypatch):
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    assert ledger_location(tmp_path) == tmp_path / "ledger.sqlite"
    monkeypatch.setenv(LEDGER_URL_ENV, "postgresql://ledger-host/kr")
    assert ledger_location(tmp_path) == "postgresql://ledger-host/kr"
    assert ledger_location(tmp_path, "sqlite:///other.sqlite") == "sqlite:///other.sqlite"


# ---------------------------------------------------------------- the rule: exact per rolling window


def test_a_release_between_two_full_windows_fits_when_no_window_holds_all_three(ledger_at):
    """10-day windows, epsilon 2: 1.5 nine days before and 1.5 nine days after. No 10-day window holds
    both, so 0.5 on the day between fits (each window holding it is at exactly 2), though the three
    together add to 3.5. Anything more on that day, or next to it, takes a window over."""
    ledger = Ledger(ledger_at)
    ten = limit(2.0, window_days=10)
    ledger.charge(_request("before", 1.5, _days(-9)), ten)
    ledger.charge(_request("after", 1.5, _days(9)), ten)
    ledger.charge(_request("between", 0.5, DAY), ten)
    with pytest.raises(BudgetExceeded, match="window 2026-10-23 to 2026-11-01"):
        ledger.check(_request("more", 0.1, DAY), ten)  # the window ending on the day is the fullest tie
    with pytest.raises(BudgetExceeded, match="window 2026-11-01 to 2026-11-10"):
        ledger.check(_request("next-day", 0.1, _days(1)), ten)  # with "between" and "after"
    with pytest.raises(BudgetExceeded, match="window 2026-10-23 to 2026-11-01"):
        ledger.check(_request("day-before", 0.1, _days(-1)), ten)  # with "before" and "between"
    # Ten days from either end, only one of the full days is in reach.
    ledger.check(_request("far", 0.5, _days(19)), ten)
    assert [c.release_id for c in ledger.charges()] == ["before", "after", "between"]


def test_a_release_is_refused_by_a_later_window_too(ledger_at):
    """A late-arriving release for an earlier day is checked in the windows after it as well."""
    ledger = Ledger(ledger_at)
    ledger.charge(_request("later", 3.5, _days(20)), limit())
    with pytest.raises(BudgetExceeded, match="window 2026-10-23 to 2026-11-21"):
        ledger.charge(_request("earlier", 1.0, DAY), limit())
    ledger.charge(_request("long-before", 1.0, _days(-10)), limit())  # no 30-day window holds both


def test_overdrawn_window_names_the_fullest_window():
    """7-day windows, epsilon 4: 2 five days before and 2.5 three days after; no window holds both."""
    rows = [type("Row", (), {"period": _days(n).isoformat(), "dataset": "d", "partner": "p",
                             **vars(pure_dp_cost([epsilon]))})
            for n, epsilon in [(-5, 2.0), (3, 2.5)]]
    [budget] = limit(4.0, window_days=7)
    assert overdrawn_window(rows, budget, DAY, pure_dp_cost([1.5])) is None  # 3.5 and exactly 4
    end, cost = overdrawn_window(rows, budget, DAY, pure_dp_cost([1.6]))  # 3.6 fits, 4.1 does not
    assert end == _days(3) and cost.epsilon == pytest.approx(4.1)
    end, cost = overdrawn_window(rows, budget, DAY, pure_dp_cost([2.1]))  # 4.1 and 4.6: the fuller
    assert end == _days(3) and cost.epsilon == pytest.approx(4.6)
    # A cap holds its own dataset's rows only.
    [own] = limit(4.0, window_days=7, dataset="d")
    assert overdrawn_window(rows, own, DAY, pure_dp_cost([2.1]))[0] == _days(3)
    [other] = limit(4.0, window_days=7, dataset="other")
    assert overdrawn_window(rows, other, DAY, pure_dp_cost([2.1])) is None


# ---------------------------------------------------------------- one budget across datasets, caps


def test_one_subscriber_budget_holds_every_dataset_and_caps_hold_their_own(ledger_at):
    ledger = Ledger(ledger_at)
    limits = [Budget(window_days=30, epsilon=4.0),
              Budget(window_days=30, epsilon=1.0, dataset="web_visits"),
              Budget(window_days=30, epsilon=3.0, partner="adreach")]

    def charge(release_id, epsilon, dataset, partner, day=DAY):
        return _released(ledger, _request(release_id, epsilon, day, dataset=dataset, partner=partner), limits)

    charge("flows", 2.0, "network_flows", "metro-planning")
    charge("web", 1.0, "web_visits", "metro-planning")  # budget 3 of 4 spent, web cap full
    with pytest.raises(BudgetExceeded, match="of dataset web_visits has epsilon 1 of 1 spent"):
        charge("web-more", 0.5, "web_visits", "metro-planning")  # the budget still has 1 left
    charge("calls", 1.0, "call_records", "metro-planning")  # another dataset, the budget's last 1
    with pytest.raises(BudgetExceeded, match="of all releases has epsilon 4 of 4 spent"):
        charge("flows-more", 0.5, "network_flows", "metro-planning")  # no cap on network_flows, but
    # two datasets' releases are one subscriber's privacy loss.

    # A month later: the partner cap limits that partner's releases alone.
    later = _days(40)
    charge("ad-1", 2.5, "network_flows", "adreach", later)
    with pytest.raises(BudgetExceeded, match=r"of partner adreach has epsilon 2\.5 of 3 spent"):
        charge("ad-2", 1.0, "call_records", "adreach", later)
    charge("metro", 1.0, "call_records", "metro-planning", later)
    charge("ad-3", 0.5, "call_records", "adreach", later)  # fills both the cap and the budget
    assert [c.release_id for c in ledger.charges()] == ["flows", "web", "calls", "ad-1", "metro", "ad-3"]

    budget, web, adreach = ledger.status(limits, later)
    assert (budget.scope, budget.spent_epsilon, budget.releases) == ("all releases", 4.0, 3)
    assert (web.scope, web.spent_epsilon, web.releases) == ("dataset web_visits", 0.0, 0)
    assert (adreach.scope, adreach.spent_epsilon, adreach.releases) == ("partner adreach", 3.0, 2)
    budget, web, adreach = ledger.status(limits, _days(29))  # the first month's window
    assert (budget.spent_epsilon, web.spent_epsilon, adreach.spent_epsilon) == (4.0, 1.0, 0.0)


def test_another_privacy_unit_has_its_own_budget(ledger_at):
    ledger = Ledger(ledger_at)
    _released(ledger, _request("subscribers", 4.0), limit())
    _released(ledger, _request("devices", 4.0, unit="device"), limit())
    [status] = ledger.status(limit(), DAY, privacy_unit="device")
    assert (status.privacy_unit, status.spent_epsilon, status.releases) == ("device", 4.0, 1)


# ---------------------------------------------------------------- composition in the window


def test_ten_zcdp_releases_compose_in_zcdp_not_by_adding_converted_epsilons(ledger_at):
    """Ten releases of rho 0.05 in one window: each alone is (1.71, 1e-6)-DP by Bun-Steinke, so adding
    converted epsilons would spend 17.12 (14.72 with the tighter CKS conversion); composed (rho 0.5)
    and converted once they are (5.22, 1e-6)-DP, and all ten fit a budget of 8."""
    ledger = Ledger(ledger_at)
    budget = limit(8.0, 1e-6)
    for k in range(10):
        _released(ledger, _request(f"gauss/{k}", cost=zcdp_cost(0.05, 1e-6), day=_days(-k)), budget)
    assert sum(zcdp_epsilon_bun_steinke(0.05, 1e-6) for _ in range(10)) == pytest.approx(17.12, abs=5e-3)
    [status] = ledger.status(budget, DAY)
    assert status.method == "zcdp" and status.releases == 10
    assert status.spent_rho == pytest.approx(0.5)
    assert status.spent_epsilon < 5.3
    assert status.spent_epsilon == pytest.approx(zcdp_epsilon(0.5, 1e-6), rel=1e-6)
    assert status.spent_epsilon == pytest.approx(5.22, abs=5e-3)
    assert status.spent_basic_epsilon == pytest.approx(10 * zcdp_epsilon(0.05, 1e-6))
    assert (status.spent_delta, status.remaining_epsilon) == (1e-6, pytest.approx(8 - status.spent_epsilon))
    # Composed in zCDP, the window takes about four more of the same before 8 is reached.
    for k in range(10, 30):
        try:
            ledger.charge(_request(f"gauss/{k}", cost=zcdp_cost(0.05, 1e-6), day=_days(-k)), budget)
        except BudgetExceeded:
            break
    assert len(ledger.charges()) == max(n for n in range(10, 40) if zcdp_epsilon(0.05 * n, 1e-6) <= 8)


def test_a_few_pure_dp_releases_compose_by_adding_epsilons(ledger_at):
    ledger = Ledger(ledger_at)
    budget = limit(8.0, 1e-6)
    for k, epsilon in enumerate([1.0, 0.5, 1.5]):
        ledger.charge(_request(f"pure/{k}", epsilon, _days(-k)), budget)
    [status] = ledger.status(budget, DAY)
    assert (status.method, status.spent_epsilon, status.spent_delta) == ("basic", 3.0, 0.0)
    assert status.spent_basic_epsilon == 3.0 and status.remaining_epsilon == 5.0
    assert status.spent_rho == pytest.approx((1.0 + 0.25 + 2.25) / 2)


def test_partition_selection_is_added_after_the_zcdp_conversion(ledger_at):
    ledger = Ledger(ledger_at)
    budget = limit(8.0, 1e-6)
    for k in range(10):
        ledger.charge(_request(f"gauss/{k}", cost=zcdp_cost(0.05, 1e-7), day=_days(-k)), budget)
    ledger.charge(_request("keys", cost=pure_dp_cost([0.2]) + approx_dp_cost(0.4, 1e-7)), budget)
    [status] = ledger.status(budget, DAY)
    assert status.method == "zcdp" and status.spent_rho == pytest.approx(0.5 + 0.02)
    assert status.spent_epsilon == pytest.approx(zcdp_epsilon(0.52, 9e-7) + 0.4, rel=1e-6)
    # The approximate part's delta is all a release may not exceed: more than the budget's is refused.
    with pytest.raises(BudgetExceeded):
        ledger.charge(_request("greedy", cost=approx_dp_cost(0.01, 1e-6)), budget)


# ---------------------------------------------------------------- the refusal, for people


def test_the_refusal_is_one_line_and_says_when_budget_returns(ledger_at):
    """Window 30, epsilon 4: 1 on day -20 and 2 on day -10. Another 2 on day 0 is refused (5); it fits
    from the first day whose windows cannot hold day -20 as well: day +10."""
    ledger = Ledger(ledger_at)
    ledger.charge(_request("old", 1.0, _days(-20)), limit())
    ledger.charge(_request("recent", 2.0, _days(-10)), limit())
    with pytest.raises(BudgetExceeded) as refused:
        ledger.charge(_request("web_reach_domain_day/2026-11-01", 2.0, report="web_reach_domain_day"),
                      limit())
    refusal = refused.value
    message = str(refusal)
    assert "\n" not in message
    assert "report 'web_reach_domain_day' for 2026-11-01 refused" in message
    assert "window 2026-10-03 to 2026-11-01 of all releases" in message
    assert "epsilon 3 of 4 spent" in message and "(1 left; with it 5)" in message
    assert "budget for it returns on 2026-11-11" in message
    assert (refusal.report, refusal.period, refusal.returns_on) == ("web_reach_domain_day", DAY, _days(10))
    # returns_on is the first later day it fits: refused the day before, charged on the day.
    with pytest.raises(BudgetExceeded):
        ledger.charge(_request("on-the-day-before", 2.0, refusal.returns_on - dt.timedelta(days=1)), limit())
    ledger.charge(_request("on-returns-on", 2.0, refusal.returns_on), limit())


def test_a_release_alone_over_the_limit_never_returns(ledger_at):
    ledger = Ledger(ledger_at)
    with pytest.raises(BudgetExceeded, match="it alone is more than the limit") as refused:
        ledger.charge(_request("huge", 5.0), limit())
    assert refused.value.returns_on is None
    assert "\n" not in str(refused.value)


def test_returns_on_sees_later_charges(ledger_at):
    ledger = Ledger(ledger_at)
    ledger.charge(_request("now", 3.0), limit())
    ledger.charge(_request("in-45-days", 3.0, _days(45)), limit())
    with pytest.raises(BudgetExceeded) as refused:
        ledger.charge(_request("late", 1.5), limit())
    returns_on = refused.value.returns_on
    assert returns_on is None or ledger.check(_request("retry", 1.5, returns_on), limit()) is None


def test_returns_on_fits_every_limit(ledger_at):
    ledger = Ledger(ledger_at)
    limits = [*limit(4.0), *limit(1.0, window_days=7, partner="p")]
    ledger.charge(_request("q-now", 3.5, partner="q"), limits)
    ledger.charge(_request("p-later", 1.0, _days(30), partner="p"), limits)
    with pytest.raises(BudgetExceeded) as refused:
        ledger.charge(_request("p-now", 1.0, partner="p"), limits)
    ledger.check(_request("retry", 1.0, refused.value.returns_on, partner="p"), limits)


# ---------------------------------------------------------------- ledgers written before


def test_a_ledger_written_before_rho_keeps_its_charges_and_budget(ledger_at):
    location = _written_before(
        ledger_at, LEGACY_SCHEMA,
        "INSERT INTO charges (release_id, dataset, privacy_unit, period, report, partner, purpose, epsilon, "
        "delta, charged_at) VALUES ('old', 'network_flows', 'subscriber', '2026-11-01', 'r', 'p', "
        "'aggregate_reports', 3.0, 0.0, '2026-11-01T06:00:00+00:00')")
    ledger = Ledger(location)
    [old] = ledger.charges()
    assert (old.id, old.release_id, old.state) == (1, "old", "stored")
    assert old.cost == Cost(epsilon=3.0, delta=0.0, rho=0.0, approx_epsilon=3.0, approx_delta=0.0)
    with pytest.raises(BudgetExceeded, match="epsilon 3 of 4 spent"):
        ledger.charge(_request("new", 1.5), limit())
    new, _ = ledger.charge(_request("new", 1.0), limit())
    assert new.id == 2
    assert [(c.release_id, c.rho) for c in Ledger(location).charges()] == [("old", 0.0), ("new", 0.5)]


def test_a_ledger_written_before_cost_parts_counts_old_charges_as_approximate_dp(ledger_at):
    """Old charges state only (epsilon, delta): moved to the approximate track, their rho dropped, so
    they are never composed through a rho they may not have (conservative: their epsilon is added)."""
    location = _written_before(
        ledger_at, BEFORE_PARTS_SCHEMA,
        "INSERT INTO charges (release_id, dataset, privacy_unit, period, report, partner, purpose, epsilon, "
        "delta, rho, charged_at, aggregation_hash, state) VALUES "
        "('old-gauss', 'network_flows', 'subscriber', '2026-10-30', 'r', 'p', 'aggregate_reports', 3.0, "
        "1e-7, 0.1, '2026-10-30T06:00:00+00:00', 'h', 'charged'), "
        "('old-pure', 'web_visits', 'subscriber', '2026-10-31', 'w', 'p', 'aggregate_reports', 1.0, 0.0, "
        "0.5, '2026-10-31T06:00:00+00:00', '', 'stored')")
    ledger = Ledger(location)
    gauss, pure = ledger.charges()
    assert gauss.cost == Cost(epsilon=3.0, delta=1e-7, rho=0.0, approx_epsilon=3.0, approx_delta=1e-7)
    assert pure.cost == Cost(epsilon=1.0, delta=0.0, rho=0.0, approx_epsilon=1.0, approx_delta=0.0)
    assert (gauss.state, gauss.aggregation_hash, pure.state) == ("charged", "h", "stored")

    budget = limit(10.0, 1e-6)
    for k in range(10):
        _released(ledger, _request(f"gauss/{k}", cost=zcdp_cost(0.05, 1e-6), day=_days(-k)), budget)
    [status] = ledger.status(budget, DAY)  # the old charged-only release costs, and is no release
    assert status.method == "zcdp" and (status.releases, status.unstored) == (11, 1)
    assert status.spent_rho == pytest.approx(0.5)  # the old charges' rhos are not in it
    assert status.spent_epsilon == pytest.approx(zcdp_epsilon(0.5, 1e-6 - 1e-7) + 4.0, rel=1e-6)

    # Migrated once: reopening leaves the new charges' parts alone.
    reopened = Ledger(location).charges()
    assert [c.cost for c in reopened[2:]] == [zcdp_cost(0.05, 1e-6)] * 10
    # A charged old release is still reusable on its old terms (now stated in parts).
    again = _request("old-gauss", day=_days(-2), aggregation_hash="h",
                     cost=Cost(epsilon=3.0, delta=1e-7, approx_epsilon=3.0, approx_delta=1e-7))
    assert Ledger(location).charge(again, budget) == (gauss, False)


# ---------------------------------------------------------------- status


@pytest.fixture
def spent_ledger(ledger_backend, tmp_path):
    """Charges inside, around and outside the 30-day window ending on DAY."""
    ledger = Ledger(ledger_backend.new(tmp_path / "data" / "ledger.sqlite"))
    for release_id, epsilon, day, extra in [
        ("too-old", 1.0, _days(-40), {}),            # outside window and span
        ("day-before-window", 0.7, _days(-30), {}),   # just outside both
        ("window-start", 0.5, _days(-29), {}),
        ("internal-query", 0.2, _days(-3), {"partner": "internal"}),
        ("as-of", 1.0, DAY, {}),
        ("after", 0.25, _days(5), {}),               # after DAY: in the span, not the window
        ("device-unit", 2.0, DAY, {"unit": "device"}),  # another privacy unit's budget
        ("web", 2.0, DAY, {"dataset": "web_visits"}),
    ]:
        _released(ledger, _request(release_id, epsilon, day, **extra), ROOMY)
    return ledger


STATUS_LIMITS = [Budget(window_days=30, epsilon=8.0, delta=1e-6),
                 Budget(window_days=30, epsilon=0.3, delta=1e-8, partner="internal"),
                 Budget(window_days=30, epsilon=3.0, dataset="network_flows"),
                 Budget(window_days=7, epsilon=2.0, dataset="subscribers")]


def test_status_composes_the_rolling_window_ending_on_the_day(spent_ledger):
    budget, internal, flows, subscribers = spent_ledger.status(STATUS_LIMITS, DAY)
    assert (budget.scope, budget.privacy_unit, budget.window_days) == ("all releases", "subscriber", 30)
    assert (budget.window_start, budget.window_end) == ("2026-10-03", "2026-11-01")
    assert (budget.budget_epsilon, budget.budget_delta) == (8.0, 1e-6)
    assert (budget.spent_epsilon, budget.spent_delta, budget.method) == (3.7, 0.0, "basic")
    assert budget.releases == 4
    assert budget.spent_basic_epsilon == 3.7
    assert budget.spent_rho == pytest.approx((0.25 + 0.04 + 1.0 + 4.0) / 2)
    assert budget.remaining_epsilon == pytest.approx(4.3)
    assert (internal.scope, internal.spent_epsilon, internal.releases) == ("partner internal", 0.2, 1)
    assert internal.remaining_epsilon == pytest.approx(0.1)
    assert (flows.scope, flows.spent_epsilon, flows.releases) == ("dataset network_flows", 1.7, 3)
    assert (subscribers.spent_epsilon, subscribers.remaining_epsilon, subscribers.releases) == (0.0, 2.0, 0)
    assert subscribers.window_start == "2026-10-26"


def test_status_on_a_later_day_moves_the_window(spent_ledger):
    [budget] = spent_ledger.status(STATUS_LIMITS[:1], _days(5))
    assert (budget.window_start, budget.releases) == ("2026-10-08", 4)  # window-start left, after came
    assert budget.spent_epsilon == pytest.approx(0.2 + 1.0 + 0.25 + 2.0)


def test_remaining_budget_is_never_negative(ledger_at):
    ledger = Ledger(ledger_at)
    ledger.charge(_request("a", 3.0), limit())
    # The budget was cut after the charge: more is spent than it allows.
    [status] = ledger.status(limit(2.0, 1e-7), DAY)
    assert (status.spent_epsilon, status.remaining_epsilon) == (3.0, 0.0)


def test_status_with_no_limits_and_an_empty_ledger(ledger_at):
    ledger = Ledger(ledger_at)
    assert ledger.status([], DAY) == []
    assert format_status([], DAY) == "no privacy budget configured"
    [status] = ledger.status(limit(), DAY)
    assert (status.spent_epsilon, status.method, status.releases, status.remaining_epsilon) == (
        0.0, "basic", 0, 4.0)


def test_format_status_is_a_table_per_limit(spent_ledger):
    table = format_status(spent_ledger.status(STATUS_LIMITS, DAY), DAY)
    lines = table.splitlines()
    assert lines[0] == "Privacy budget per subscriber, rolling windows ending 2026-11-01"
    assert lines[1].split()[:2] == ["limit", "window"]
    [budget_row] = [line for line in lines if line.startswith("all releases ")]
    assert budget_row.split()[2:] == ["2026-10-03", "to", "2026-11-01", "8", "at", "1e-06", "3.7", "4.3",
                                      "basic", "2.645", "4"]
    assert any(line.startswith("partner internal ") for line in lines)


# ---------------------------------------------------------------- the command line


@pytest.fixture
def cli_config(tmp_path, monkeypatch):
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(ROOT_CONFIG / "pipeline.yaml", config / "pipeline.yaml")
    return config


def _naming(ledger) -> list[str]:
    """The CLI options naming a ledger: none for the data folder's own SQLite file, else its URL."""
    if ledger.url.get_backend_name() == "sqlite":
        return []
    return ["--ledger-url", ledger.url.render_as_string(hide_password=False)]


def _table_row(out, scope):
    [line] = [line for line in out.splitlines() if line.startswith(scope + " ")]
    return line.split()


def test_cli_budget_prints_spent_and_remaining_per_limit(spent_ledger, tmp_path, cli_config, capsys):
    assert main(["budget", "--data-dir", str(tmp_path / "data"), "--config-dir", str(cli_config),
                 "--as-of", DAY.isoformat(), *_naming(spent_ledger)]) == 0
    out = capsys.readouterr().out
    assert "rolling windows ending 2026-11-01" in out
    assert "Over any 30 consecutive days" in out  # the guarantee, in words
    # limit, window, budget eps at delta, spent eps, left eps, by, spent rho, releases
    assert _table_row(out, "all releases")[2:] == ["2026-10-03", "to", "2026-11-01", "8", "at", "1e-06",
                                                   "3.7", "4.3", "basic", "2.645", "4"]
    assert _table_row(out, "partner internal")[2:] == ["2026-10-03", "to", "2026-11-01", "0.3", "at",
                                                       "1e-08", "0.2", "0.1", "basic", "0.02", "1"]


def test_cli_budget_json(spent_ledger, tmp_path, cli_config, capsys):
    assert main(["budget", "--data-dir", str(tmp_path / "data"), "--config-dir", str(cli_config),
                 "--as-of", DAY.isoformat(), "--json", *_naming(spent_ledger)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["as_of"] == "2026-11-01" and "guarantee" in report
    by_scope = {b["scope"]: b for b in report["limits"]}
    assert set(by_scope) == {"all releases", "partner internal"}
    everything = by_scope["all releases"]
    assert (everything["spent_epsilon"], everything["method"], everything["releases"]) == (3.7, "basic", 4)
    assert everything["remaining_epsilon"] == pytest.approx(4.3)


def test_cli_reads_the_ledger_named_by_url_option_or_environment(ledger_backend, tmp_path, cli_config,
                                                                monkeypatch, capsys):
    url = ledger_backend.url_of(ledger_backend.new(tmp_path / "elsewhere.sqlite"))
    Ledger(url).charge(_request("elsewhere", 1.25), ROOMY)
    common = ["--data-dir", str(tmp_path / "data")]
    budget = ["budget", *common, "--config-dir", str(cli_config), "--as-of", DAY.isoformat(), "--json"]

    def spent():
        report = json.loads(capsys.readouterr().out)
        return next(b["spent_epsilon"] for b in report["limits"] if b["scope"] == "all releases")

    assert main(budget) == 0 and spent() == 0.0  # the data folder's own, empty ledger
    assert main([*budget, "--ledger-url", url]) == 0 and spent() == 1.25
    monkeypatch.setenv(LEDGER_URL_ENV, url)
    assert main(budget) == 0 and spent() == 1.25
    assert main(["ledger", *common]) == 0
    assert "eps=1.25" in capsys.readouterr().out


# ---------------------------------------------------------------- interrupted runs: unstored charges,
# resumable new releases, each run's own charges


def test_a_charge_without_its_stored_release_costs_but_is_no_release(ledger_at):
    ledger = Ledger(ledger_at)
    _released(ledger, _request("stored", 1.0), ROOMY)
    ledger.charge(_request("killed-before-store", 0.5), ROOMY)  # its run stopped before the store
    [status] = ledger.status(limit(), DAY)
    assert (status.spent_epsilon, status.releases, status.unstored) == (1.5, 1, 1)
    table = format_status([status], DAY)
    assert _table_row(table, "all releases")[-3:] == ["1", "(+1", "unstored)"]
    assert "unstored: charged, but no release was stored" in table


def test_a_new_release_is_resumed_until_it_is_closed(ledger_at):
    ledger = Ledger(ledger_at)
    assert ledger.open_new_release_of(DAY) is None
    opened, resumed = ledger.open_new_release(DAY)
    assert not resumed and opened.period == DAY.isoformat() and opened.closed_at is None
    charge, _ = ledger.charge(_request("r/2026-11-01#2", new_release=opened.id), ROOMY)
    assert charge.new_release == opened.id == ledger.charges()[0].new_release
    # The run was killed: the day's new release is still open, and the next run resumes it.
    assert ledger.open_new_release_of(DAY) == opened
    assert ledger.open_new_release(DAY) == (opened, True)
    assert ledger.open_new_release_of(_days(1)) is None  # another day's is its own
    ledger.close_new_release(opened.id)
    assert ledger.open_new_release_of(DAY) is None
    after, resumed = ledger.open_new_release(DAY)  # a later new release of the day starts afresh
    assert not resumed and after.id != opened.id


def test_an_unstored_charge_taken_up_by_a_new_release_becomes_its_own_and_costs_that_run_nothing(ledger_at):
    ledger = Ledger(ledger_at)
    first, new = ledger.charge(_request(run="run-1"), ROOMY)  # run 1 stopped before the store
    opened, _ = ledger.open_new_release(DAY)
    taken, new_again = ledger.charge(_request(run="run-2", new_release=opened.id), ROOMY)
    assert new and not new_again and taken.id == first.id and taken.new_release == opened.id
    assert [c.new_release for c in ledger.charges()] == [opened.id]
    assert [c.release_id for c in ledger.charges_of_run("run-1")] == [first.release_id]
    assert ledger.charges_of_run("run-2") == []  # the ledger did not grow in run 2
    assert ledger.charges_of_run("") == []


def _store_release(data: Path, charge) -> None:
    import pandas as pd

    from core.release_record import ReleaseRecord
    from core.store import ReleaseStore

    store = ReleaseStore(data / "releases")
    name, period = charge.release_id.split("/")
    record = ReleaseRecord(
        release_id=charge.release_id, number=1, ledger_id="ledger", ledger_entry_id=charge.id,
        aggregation_hash="hash", report=name, source="network_flows", partner=None, period=period,
        accounting="zcdp", epsilon=1.0, delta=1e-9, rho=0.01, cells=1, cells_by_status={"released": 1},
        metrics=(), partition_selection=None, created_at="2026-11-02T00:00:00+00:00")
    store.write(name, period, 1, pd.DataFrame({"cells": [1]}), record)


def test_cli_ledger_shows_release_ids_and_flags_charges_without_a_stored_release(ledger_backend, tmp_path,
                                                                                 cli_config, capsys):
    data = tmp_path / "data"
    ledger = Ledger(ledger_backend.new(data / "ledger.sqlite"))
    kept, _ = _released(ledger, _request("kept/2026-11-01", 1.0), ROOMY)
    _store_release(data, kept)
    ledger.charge(_request("killed/2026-11-01", 0.5), ROOMY)
    _released(ledger, _request("lost/2026-11-01", 0.25), ROOMY)  # stored, then its copy was lost
    assert main(["ledger", "--data-dir", str(data), *_naming(ledger)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[2]: line for line in lines[:3]}
    assert set(rows) == {"kept/2026-11-01", "killed/2026-11-01", "lost/2026-11-01"}
    assert "[" not in rows["kept/2026-11-01"]
    assert rows["killed/2026-11-01"].endswith("[NOT STORED]")
    assert rows["lost/2026-11-01"].endswith("[LOST]")
    assert lines[3].startswith("2 charge(s) have no stored release: their spend counts")
