"""Runs at once on one ledger: processes charging together never overspend its budget.

Each test runs on SQLite and on a throwaway PostgreSQL server (tests/postgres_server.py),
with real concurrent connections from processes released together at a barrier. A slowed
INSERT widens the gap between a run's budget read and its write, where a missing lock lets
several runs in; the negative control takes PostgreSQL's table lock away and shows that they
then do get in, so the test that they cannot is one that can fail. Nor does a ledger hold
connections to a shared server between its calls.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time

import sqlalchemy as sa
from postgres_server import LedgerBackend

from core.accounting import pure_dp_cost, total
from core.config import Budget
from core.ledger import BudgetExceeded, ChargeRequest, Ledger

DAY = dt.date(2026, 11, 1)
LIMIT = [Budget(window_days=30, epsilon=4.0)]
EACH = 3.0  # the budget has room for one run's charge, never two
NO_LOCK = "SELECT 1"  # what the negative control runs instead of LOCK TABLE


def _request(release_id: str, epsilon: float = EACH) -> ChargeRequest:
    """One run's release, for its own dataset: only the one privacy budget is shared."""
    return ChargeRequest(release_id=release_id, dataset=f"dataset-{release_id}", privacy_unit="subscriber",
                         period=DAY, report="r", partner="p", purpose="aggregate_reports",
                         cost=pure_dp_cost([epsilon]))


def _slow_insert(conn, cursor, statement, parameters, context, executemany):
    """Widen the gap between the budget read and the insert, where a missing lock would let two in."""
    if statement.lstrip().upper().startswith("INSERT"):
        time.sleep(0.2)


def _charge_in_process(location, release_id, lock_statement, start_together, results):
    if lock_statement is not None:  # the negative control: the lock taken away, in this process
        import core.ledger.ledger

        core.ledger.ledger.LOCK_CHARGES = sa.text(lock_statement)
    ledger = Ledger(location)
    sa.event.listen(ledger.engine, "before_cursor_execute", _slow_insert)
    start_together.wait(60)
    try:
        ledger.charge(_request(release_id), LIMIT)
        results.put("charged")
    except BudgetExceeded:
        results.put("refused")
    except Exception as exc:  # a lock error is a failure of the test, not of the worker
        results.put(type(exc).__name__)


def _slow_creation(conn, cursor, statement, parameters, context, executemany):
    """Widen the gap between seeing no ledger and creating it, where two runs could both create it."""
    if statement.lstrip().upper().startswith(("CREATE", "INSERT")):
        time.sleep(0.2)


def _open_in_process(location, start_together, results):
    sa.event.listen(sa.Engine, "before_cursor_execute", _slow_creation)  # the ledger's engine is made
    start_together.wait(60)  # when it opens: every engine of this process
    try:
        results.put(Ledger(location).id)
    except Exception as exc:  # two creators colliding is a failure of the test, not of the worker
        results.put(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")


def _at_once(target, arguments: list[tuple]) -> list[str]:
    """`target` in one process per arguments, released together at a barrier; their results, sorted."""
    context = multiprocessing.get_context("spawn")
    results, start_together = context.Queue(), context.Barrier(len(arguments))
    processes = [context.Process(target=target, args=(*args, start_together, results)) for args in arguments]
    for process in processes:
        process.start()
    for process in processes:
        process.join(90)
    return sorted(results.get(timeout=5) for _ in processes)


def _charging_at_once(location, workers: int, lock_statement: str | None = None) -> list[str]:
    return _at_once(_charge_in_process, [(location, f"r{k}", lock_statement) for k in range(workers)])


def _spent(location) -> float:
    return total(c.cost for c in Ledger(location).charges()).epsilon


def test_runs_at_once_cannot_overspend(ledger_backend):
    """Four runs race for one privacy budget with room for one of them: one is charged."""
    location = ledger_backend.new()
    Ledger(location)
    assert _charging_at_once(location, 4) == ["charged", "refused", "refused", "refused"]
    assert _spent(location) == EACH


def test_runs_at_once_on_a_sqlite_url_cannot_overspend(tmp_path):
    location = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    Ledger(location)
    assert _charging_at_once(location, 4) == ["charged", "refused", "refused", "refused"]
    assert _spent(location) == EACH


def test_without_its_table_lock_postgresql_lets_runs_at_once_overspend(postgres_server, tmp_path):
    """The negative control: LOCK TABLE replaced by a plain SELECT, several runs read the same unspent
    budget and all insert, so the test above fails when the lock is missing."""
    backend = LedgerBackend("postgresql", tmp_path, postgres_server)
    location = backend.new()
    Ledger(location)
    outcomes = _charging_at_once(location, 4, NO_LOCK)
    assert outcomes.count("charged") > 1, outcomes
    assert _spent(location) > LIMIT[0].epsilon
    backend.drop_all()


def test_runs_opening_a_new_ledger_at_once_share_one(ledger_backend):
    """Four runs start on an empty database at once: one creates the ledger, all get its identity."""
    location = ledger_backend.new()
    ids = _at_once(_open_in_process, [(location,)] * 4)
    assert len(set(ids)) == 1 and ids[0] == Ledger(location).id, ids


def test_a_ledger_holds_no_postgresql_connection_between_calls(postgres_server, tmp_path):
    """Every run, report and notebook opens its own Ledger on a shared server: a connection per call,
    as SQLite's file handles, so idle ones never pile up against the server's connection limit."""
    backend = LedgerBackend("postgresql", tmp_path, postgres_server)
    location = backend.new()
    ledgers = [Ledger(location) for _ in range(3)]
    for k, ledger in enumerate(ledgers):
        ledger.charge(_request(f"r{k}", 1.0), LIMIT)
        ledger.status(LIMIT, DAY)
    database = sa.make_url(location).database
    counting = sa.create_engine(postgres_server.url(), poolclass=sa.pool.NullPool)
    with counting.connect() as conn:
        held = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db"),
                            {"db": database}).scalar()
    counting.dispose()
    assert held == 0 and len(ledgers[0].charges()) == 3
    backend.drop_all()
