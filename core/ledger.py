"""The persistent privacy ledger (SQLAlchemy Core; SQLite unless a URL says otherwise).

Every release is charged here, inside one transaction that holds the ledger's
write lock, before anything is written: the budget check and the insert happen
together, so two runs at once cannot both spend the last of a budget. On
SQLite the lock is `BEGIN IMMEDIATE`; elsewhere (PostgreSQL) it is a
`LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE` that conflicts with itself and
with every write. A release id is charged at most once.

A charge is `charged` until its release is stored, then `stored`. Asking
again for a `charged` release id (a run that died between the charge and the
store) returns that charge only when it matches the request in every term
(dataset, period, epsilon, delta, rho and the aggregation's hash); anything
else is refused: a release whose noise may have left, or whose spec changed
after it was paid for, is never paid for twice with one charge.

A deliberate new release of a day's reports (`kr-reports run --new-release`) is
opened here before anything is charged for it (`open_new_release`), each of its
charges names it, and it is closed when every report has been through it. A run
killed in between leaves it open: the next `--new-release` run of that day
resumes it (a report already charged in it is not charged again), and a plain
run refuses the reports it left at their previous release instead of serving
those silently. Each charge names the run that made it (`run`), so a run's
summary states what the ledger grew by in that run, never another run's charge.

A ledger has an identity (a random id written when it is created), which the
release store records: a deleted, emptied or swapped ledger is noticed
rather than silently replaced by a fresh budget. `Ledger(location,
create=False)` refuses to create one.

A charge records the release's cost (core.accounting): its own
(epsilon, delta), its rho, and its approximate-DP part that is not zCDP. A
release is refused when any rolling window containing its period, with the
release added, would exceed a limit: the privacy budget over every release
of the privacy unit (every dataset, report and partner), or a cap over one
dataset's or partner's releases. Each window's releases are composed as a
whole (basic or zCDP, whichever proves the smaller epsilon), so the check is
exact per window rather than a sum of converted epsilons.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from core.accounting import Cost, fits, guarantee, largest_windows, total
from core.errors import KrReportsError

LEDGER_URL_ENV = "KR_LEDGER_URL"
LEDGER_FILE = "ledger.sqlite"
DEFAULT_PRIVACY_UNIT = "subscriber"

# Execution option marking a connection whose transactions will write (SQLite only).
_WRITE_LOCK = "kr_ledger_write_lock"

_metadata = sa.MetaData()
charges_table = sa.Table(
    "charges",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("release_id", sa.Text, nullable=False, unique=True),
    sa.Column("dataset", sa.Text, nullable=False),
    sa.Column("privacy_unit", sa.Text, nullable=False),
    sa.Column("period", sa.Text, nullable=False),  # ISO date: text order is date order
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("partner", sa.Text, nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("epsilon", sa.Float, nullable=False),
    sa.Column("delta", sa.Float, nullable=False),
    sa.Column("rho", sa.Float, nullable=False, server_default=sa.text("0")),
    sa.Column("charged_at", sa.Text, nullable=False),
    sa.Column("aggregation_hash", sa.Text, nullable=False, server_default=sa.text("''")),
    # Charges written before states were recorded were all stored with their releases.
    sa.Column("state", sa.Text, nullable=False, server_default=sa.text("'stored'")),
    sa.Column("approx_epsilon", sa.Float, nullable=False, server_default=sa.text("0")),
    sa.Column("approx_delta", sa.Float, nullable=False, server_default=sa.text("0")),
    # The run that made the charge ('' before runs were recorded), and the new release it belongs to.
    sa.Column("run", sa.Text, nullable=False, server_default=sa.text("''")),
    sa.Column("new_release", sa.Integer, nullable=True),
    sqlite_autoincrement=True,  # as the first ledgers were: ids are never reused
)
meta_table = sa.Table(
    "ledger_meta",
    _metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
new_releases_table = sa.Table(
    "new_releases",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("period", sa.Text, nullable=False),
    sa.Column("opened_at", sa.Text, nullable=False),
    sa.Column("closed_at", sa.Text, nullable=True),  # null while a run still has reports to release
    sqlite_autoincrement=True,
)
CHARGED, STORED = "charged", "stored"
COST_PARTS = ("epsilon", "delta", "rho", "approx_epsilon", "approx_delta")

# Columns added since the first ledgers: an older ledger gets them with these defaults
# (its releases spent no rho, and all of them were stored).
_ADD_COLUMNS = {
    "rho": sa.text("ALTER TABLE charges ADD COLUMN rho FLOAT NOT NULL DEFAULT 0"),
    "aggregation_hash": sa.text("ALTER TABLE charges ADD COLUMN aggregation_hash TEXT NOT NULL DEFAULT ''"),
    "state": sa.text("ALTER TABLE charges ADD COLUMN state TEXT NOT NULL DEFAULT 'stored'"),
    "approx_epsilon": sa.text("ALTER TABLE charges ADD COLUMN approx_epsilon FLOAT NOT NULL DEFAULT 0"),
    "approx_delta": sa.text("ALTER TABLE charges ADD COLUMN approx_delta FLOAT NOT NULL DEFAULT 0"),
    "run": sa.text("ALTER TABLE charges ADD COLUMN run TEXT NOT NULL DEFAULT ''"),
    "new_release": sa.text("ALTER TABLE charges ADD COLUMN new_release INTEGER"),
}
# Charges written before costs had parts state only their (epsilon, delta): that is all they
# may compose by, so their whole cost goes on the approximate-DP track (never less than true).
_COSTS_WITHOUT_PARTS = sa.text("UPDATE charges SET approx_epsilon = epsilon, approx_delta = delta, rho = 0")
_LOCK_CHARGES = sa.text("LOCK TABLE charges IN SHARE ROW EXCLUSIVE MODE")


class BudgetExceeded(KrReportsError, RuntimeError):
    """A release would take a rolling window over a limit. The message is one line for people."""

    def __init__(self, message: str, report: str, period: dt.date, returns_on: dt.date | None):
        super().__init__(message)
        self.report, self.period, self.returns_on = report, period, returns_on


class LedgerMissing(KrReportsError, RuntimeError):
    """No ledger where one must already exist (it was deleted, emptied, or its URL changed)."""


class ChargeMismatch(KrReportsError, RuntimeError):
    """A release id is already charged, for other terms or for a release already stored."""


class LimitLike(Protocol):
    """What the ledger reads from a configured limit (`core.config.Budget`)."""

    window_days: int
    epsilon: float
    delta: float

    @property
    def scope(self) -> str: ...

    def applies_to(self, dataset: str, partner: str) -> bool: ...


@dataclass(frozen=True)
class Charge:
    id: int
    release_id: str
    dataset: str
    privacy_unit: str
    period: str
    report: str
    partner: str
    purpose: str
    epsilon: float
    delta: float
    rho: float
    charged_at: str
    aggregation_hash: str = ""
    state: str = STORED
    approx_epsilon: float = 0.0
    approx_delta: float = 0.0
    run: str = ""
    new_release: int | None = None

    @property
    def cost(self) -> Cost:
        return _cost(self)

    @property
    def number(self) -> int:
        """The release number in the id (`name/period` is 1, `name/period#n` is n)."""
        _, _, number = self.release_id.partition("#")
        return int(number or 1)


@dataclass(frozen=True)
class ChargeRequest:
    release_id: str
    dataset: str
    privacy_unit: str
    period: dt.date
    report: str
    partner: str
    purpose: str
    cost: Cost
    aggregation_hash: str = ""
    run: str = ""  # the run asking (a flow run's id), recorded with a new charge
    new_release: int | None = None  # the open new release (NewRelease.id) it is part of


@dataclass(frozen=True)
class NewRelease:
    """A deliberate new release of one day's reports, open until every report has been through it."""

    id: int
    period: str
    opened_at: str
    closed_at: str | None = None


@dataclass(frozen=True)
class BudgetStatus:
    """One limit in the rolling window ending on `window_end` (inclusive).

    `spent_epsilon` is the smallest epsilon the window's releases are proven
    (epsilon, `spent_delta`)-DP at, composed by `method`; `spent_rho` and
    `spent_basic_epsilon` are the sums it is computed from. `releases` counts the
    charges whose release was stored; `unstored` those charged without a stored
    release (a run stopped between charge and store): their spend counts all the same.
    """

    scope: str
    privacy_unit: str
    window_days: int
    window_start: str
    window_end: str
    budget_epsilon: float
    budget_delta: float
    spent_epsilon: float
    spent_delta: float
    method: str
    spent_rho: float
    spent_basic_epsilon: float
    remaining_epsilon: float
    releases: int
    unstored: int = 0


def ledger_location(data_dir: Path, url: str | None = None) -> str | Path:
    """Where the ledger lives: `url` if given, else $KR_LEDGER_URL, else SQLite in the data folder."""
    return url or os.environ.get(LEDGER_URL_ENV) or Path(data_dir) / LEDGER_FILE


def _database_url(location: str | Path) -> sa.URL:
    """A string with "://" is a SQLAlchemy URL; anything else is the path of a SQLite file."""
    if isinstance(location, str) and "://" in location:
        return sa.make_url(location)
    return sa.URL.create("sqlite", database=str(location))


def _take_over_sqlite_begin(engine: sa.Engine) -> None:
    """Let SQLAlchemy emit BEGIN, IMMEDIATE when writing (the pysqlite recipe in SQLAlchemy's docs).

    The sqlite3 driver begins lazily and only before DML, so a budget read would
    run outside the transaction; `BEGIN IMMEDIATE` takes the write lock first.
    """

    @sa.event.listens_for(engine, "connect")
    def _driver_does_not_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        writing = conn.get_execution_options().get(_WRITE_LOCK, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _create_engine(url: sa.URL, create: bool = True) -> sa.Engine:
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url)
    if url.database and create:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # A connection per use, as sqlite3 did: no file handle outlives a call. A
    # writer waits up to a minute for another run's lock before giving up.
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"timeout": 60})
    _take_over_sqlite_begin(engine)
    return engine


@contextmanager
def _write_transaction(conn: sa.Connection) -> Iterator[sa.Connection]:
    """A transaction that will write; on SQLite it holds the write lock from its start."""
    conn.execution_options(**{_WRITE_LOCK: True})
    with conn.begin():
        yield conn


def _rolling_window(end: dt.date, window_days: int) -> tuple[str, str]:
    """First and last period (ISO) of the rolling window ending on `end`."""
    return (end - dt.timedelta(days=window_days - 1)).isoformat(), end.isoformat()


def _cost(row) -> Cost:
    return Cost(epsilon=row.epsilon, delta=row.delta, rho=row.rho,
                approx_epsilon=row.approx_epsilon, approx_delta=row.approx_delta)


def _charges_between(conn: sa.Connection, unit: str, first: str, last: str) -> list[sa.Row]:
    """Charges of one privacy unit with periods in [first, last], every dataset and partner."""
    c = charges_table.c
    query = sa.select(c.period, c.dataset, c.partner, c.epsilon, c.delta, c.rho, c.approx_epsilon,
                      c.approx_delta, c.state).where(c.privacy_unit == unit, c.period.between(first, last))
    return list(conn.execute(query))


def _inside(rows: Sequence, limit: LimitLike, first: str, last: str) -> list:
    return [r for r in rows if first <= r.period <= last and limit.applies_to(r.dataset, r.partner)]


def _is_stored(row) -> bool:
    """A charge whose release was stored (planned charges, which have no state, count as stored)."""
    return getattr(row, "state", STORED) == STORED


def spent_between(rows: Sequence, limit: LimitLike, first: str, last: str) -> tuple[Cost, int]:
    """What the limit's charges with periods in [first, last] (ISO) cost together, and how many of
    them are stored releases (a charge left without its release costs, but is no release).

    `rows`: charges with period, dataset, partner and the cost columns (and state, if any).
    """
    inside = _inside(rows, limit, first, last)
    return total(_cost(r) for r in inside), sum(1 for r in inside if _is_stored(r))


def _windows_with(rows: Sequence, limit: LimitLike, day: dt.date, cost: Cost) -> list[tuple[dt.date, Cost]]:
    """Every rolling window containing `day` (by its last day), with `cost` added to what it holds."""
    by_period: dict[str, list[Cost]] = {}
    for r in rows:
        if limit.applies_to(r.dataset, r.partner):
            by_period.setdefault(r.period, []).append(_cost(r))
    reach = limit.window_days - 1
    days = [(day + dt.timedelta(days=k)).isoformat() for k in range(-reach, reach + 1)]
    daily = [total(by_period.get(period, ())) for period in days]
    return [(day + dt.timedelta(days=k), total(daily[k:k + limit.window_days]) + cost)
            for k in range(limit.window_days)]


def overdrawn_window(rows: Sequence, limit: LimitLike, day: dt.date,
                     cost: Cost) -> tuple[dt.date, Cost] | None:
    """A window containing `day` that `cost` would take over the limit (the fullest), else None.

    `rows`: charges with period (ISO), dataset, partner and the cost columns.
    """
    windows = _windows_with(rows, limit, day, cost)
    largest = largest_windows([c for _, c in windows])
    over = [(end, c) for end, c in windows if c in largest and not fits(c, limit.epsilon, limit.delta)]
    return max(over, key=lambda w: guarantee(w[1], limit.delta).epsilon, default=None)


def _returns_on(rows: Sequence, limits: Sequence[LimitLike], day: dt.date, cost: Cost) -> dt.date | None:
    """The first later period this release would fit every limit on, with the charges as they are.

    `rows` must reach a window past the last day searched (two windows after `day`).
    """
    for k in range(1, 2 * max(limit.window_days for limit in limits) + 1):
        later = day + dt.timedelta(days=k)
        if all(overdrawn_window(rows, limit, later, cost) is None for limit in limits):
            return later
    return None


def _refusal(request: ChargeRequest, limit: LimitLike, window: tuple[dt.date, Cost],
             rows: Sequence, later_rows: Sequence, limits: Sequence[LimitLike]) -> BudgetExceeded:
    end, with_release = window
    start, _ = _rolling_window(end, limit.window_days)
    spent, _ = spent_between(rows, limit, start, end.isoformat())
    before = guarantee(spent, limit.delta).epsilon
    returns = _returns_on(later_rows, limits, request.period, request.cost)
    reach = 2 * max(lim.window_days for lim in limits)
    if not fits(request.cost, limit.epsilon, limit.delta):
        when = "it alone is more than the limit"
    elif returns:
        when = f"budget for it returns on {returns.isoformat()}"
    else:
        when = f"no day in the next {reach} has room for it"
    after = guarantee(with_release, limit.delta).epsilon
    if math.isinf(after):  # no composition proves it within the limit's delta
        state = f"needs more delta than the limit's {limit.delta:g} with it"
    else:
        state = (f"has epsilon {before:.3g} of {limit.epsilon:g} spent at delta {limit.delta:g} "
                 f"({max(0.0, limit.epsilon - before):.3g} left; with it {after:.3g})")
    message = (
        f"report '{request.report}' for {request.period.isoformat()} refused: it needs epsilon "
        f"{request.cost.epsilon:.3g} (rho {request.cost.rho:.3g}), and the window {start} to "
        f"{end.isoformat()} of {limit.scope} {state}; {when}"
    )
    return BudgetExceeded(message, request.report, request.period, returns)


def budget_status(limit: LimitLike, as_of: dt.date, unit: str, rows: Sequence) -> BudgetStatus:
    """A limit's status from charges (rows with period, dataset, partner and cost columns)."""
    first, last = _rolling_window(as_of, limit.window_days)
    spent, releases = spent_between(rows, limit, first, last)
    proven = guarantee(spent, limit.delta)
    return BudgetStatus(
        scope=limit.scope,
        privacy_unit=unit,
        window_days=limit.window_days,
        window_start=first,
        window_end=last,
        budget_epsilon=limit.epsilon,
        budget_delta=limit.delta,
        spent_epsilon=proven.epsilon,
        spent_delta=proven.delta,
        method=proven.method,
        spent_rho=spent.rho,
        spent_basic_epsilon=spent.epsilon,
        remaining_epsilon=max(0.0, limit.epsilon - proven.epsilon),
        releases=releases,
        unstored=sum(1 for r in _inside(rows, limit, first, last) if not _is_stored(r)),
    )


def _span(day: dt.date, limits: Sequence[LimitLike]) -> tuple[str, str]:
    """Periods less than the longest window away from `day`: every window containing it."""
    reach = dt.timedelta(days=max(limit.window_days for limit in limits) - 1)
    return (day - reach).isoformat(), (day + reach).isoformat()


def _differences(existing: sa.Row, request: ChargeRequest) -> list[str]:
    """The terms in which an existing charge differs from a request for the same release id."""
    row = existing._mapping
    asked = {"dataset": request.dataset, "privacy_unit": request.privacy_unit,
             "period": request.period.isoformat(), "aggregation_hash": request.aggregation_hash,
             **{part: getattr(request.cost, part) for part in COST_PARTS}}
    differ = []
    for term, value in asked.items():
        held = row[term]
        numeric = isinstance(value, float)
        same = math.isclose(held, value, rel_tol=1e-12, abs_tol=0) if numeric else held == value
        if not same:
            differ.append(term if term == "aggregation_hash" else f"{term} {held!r} vs {value!r}")
    return differ


def _reusable_or_refused(existing: sa.Row, request: ChargeRequest) -> sa.Row:
    """An existing charge may pay for this request only if nothing was stored for it and it matches."""
    if existing._mapping["state"] != CHARGED:
        raise ChargeMismatch(
            f"release '{request.release_id}' was charged (ledger entry {existing._mapping['id']}) and its "
            "release stored; it is not paid for again. Serve the stored release, or make a new release"
        )
    differ = _differences(existing, request)
    if differ:
        what = ", ".join("the aggregation (spec hash)" if d == "aggregation_hash" else d for d in differ)
        raise ChargeMismatch(
            f"release '{request.release_id}' is already charged (ledger entry {existing._mapping['id']}) "
            f"for other terms: {what}. The spec changed after the charge; restore it, or make a new release"
        )
    return existing


def _charged_or_refused(conn: sa.Connection, request: ChargeRequest,
                        limits: Sequence[LimitLike]) -> sa.Row | None:
    """The release's existing matching charge; else None if every limit can take it; else refused."""
    existing = conn.execute(
        sa.select(charges_table).where(charges_table.c.release_id == request.release_id)
    ).first()
    if existing is not None:
        return _reusable_or_refused(existing, request)
    rows = _charges_between(conn, request.privacy_unit, *_span(request.period, limits))
    applicable = [limit for limit in limits if limit.applies_to(request.dataset, request.partner)]
    for limit in applicable:
        window = overdrawn_window(rows, limit, request.period, request.cost)
        if window is not None:
            first, _ = _span(request.period, limits)
            reach = request.period + dt.timedelta(days=3 * max(lim.window_days for lim in limits))
            later_rows = _charges_between(conn, request.privacy_unit, first, reach.isoformat())
            raise _refusal(request, limit, window, rows, later_rows, applicable)
    return None


def _open_new_release(conn: sa.Connection, period: dt.date) -> NewRelease | None:
    t = new_releases_table.c
    row = conn.execute(sa.select(new_releases_table).where(
        t.period == period.isoformat(), t.closed_at.is_(None)).order_by(t.id.desc())).first()
    return NewRelease(**row._mapping) if row is not None else None


def _adopted(conn: sa.Connection, charge: Charge, new_release: int | None) -> Charge:
    """A charge left unstored, taken up by a new release: it is that new release's from now on."""
    if new_release is None or charge.new_release == new_release:
        return charge
    conn.execute(sa.update(charges_table).where(charges_table.c.id == charge.id)
                 .values(new_release=new_release))
    return replace(charge, new_release=new_release)


def _charge_from(row: sa.Row) -> Charge:
    return Charge(**{f.name: row._mapping[f.name] for f in fields(Charge)})


def _exists(url: sa.URL, engine: sa.Engine) -> bool:
    """A ledger is there: its charges table exists (an absent or empty SQLite file holds none)."""
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        return False
    with engine.connect() as conn:
        return sa.inspect(conn).has_table("charges")


class Ledger:
    def __init__(self, location: str | Path, *, create: bool = True):
        """`location`: a SQLAlchemy URL (it contains "://") or the path of a SQLite file.

        With `create=False` a ledger that is not there (no file, an empty file, no
        charges table) raises LedgerMissing instead of starting a fresh budget.
        """
        self.url = _database_url(location)
        self.engine = _create_engine(self.url, create)
        if not create and not _exists(self.url, self.engine):
            raise LedgerMissing(f"no privacy ledger at {self.location}: it was deleted or emptied, or "
                                "the ledger URL points elsewhere than before")
        self.id = self._upgrade_schema()

    @property
    def location(self) -> str:
        """Where the ledger is, for messages (a database URL without its password)."""
        if self.url.get_backend_name() == "sqlite":
            return str(self.url.database)
        return self.url.render_as_string(hide_password=True)

    def _upgrade_schema(self) -> str:
        """Create the tables, add columns a ledger written before them lacks; the ledger's id."""
        with self.engine.connect() as conn, _write_transaction(conn):
            _metadata.create_all(conn)
            columns = {col["name"] for col in sa.inspect(conn).get_columns("charges")}
            for column, statement in _ADD_COLUMNS.items():
                if column not in columns:
                    conn.execute(statement)
            if "approx_epsilon" not in columns:
                conn.execute(_COSTS_WITHOUT_PARTS)
            ledger_id = conn.execute(
                sa.select(meta_table.c.value).where(meta_table.c.key == "ledger_id")).scalar()
            if ledger_id is None:
                ledger_id = uuid.uuid4().hex
                conn.execute(sa.insert(meta_table).values(key="ledger_id", value=ledger_id))
        return ledger_id

    @contextmanager
    def _locked(self) -> Iterator[sa.Connection]:
        """A transaction holding the ledger's write lock until it commits or rolls back."""
        with self.engine.connect() as conn, _write_transaction(conn):
            if conn.dialect.name != "sqlite":
                conn.execute(_LOCK_CHARGES)
            yield conn

    def charges(self, dataset: str | None = None) -> list[Charge]:
        query = sa.select(charges_table).order_by(charges_table.c.id)
        if dataset is not None:
            query = query.where(charges_table.c.dataset == dataset)
        with self.engine.connect() as conn:
            return [_charge_from(row) for row in conn.execute(query)]

    def charge(self, request: ChargeRequest, limits: Sequence[LimitLike]) -> tuple[Charge, bool]:
        """Charge a release once, inside one write transaction. Returns (entry, newly_charged)."""
        with self._locked() as conn:
            existing = _charged_or_refused(conn, request, limits)
            if existing is not None:
                return _adopted(conn, _charge_from(existing), request.new_release), False
            values = {
                "run": request.run,
                "new_release": request.new_release,
                "aggregation_hash": request.aggregation_hash,
                "state": CHARGED,
                "release_id": request.release_id,
                "dataset": request.dataset,
                "privacy_unit": request.privacy_unit,
                "period": request.period.isoformat(),
                "report": request.report,
                "partner": request.partner,
                "purpose": request.purpose,
                **{part: getattr(request.cost, part) for part in COST_PARTS},
                "charged_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            inserted = conn.execute(sa.insert(charges_table).values(**values))
        return Charge(id=inserted.inserted_primary_key[0], **values), True

    def open_new_release(self, period: dt.date) -> tuple[NewRelease, bool]:
        """The day's open new release, else a new one: (it, True when an interrupted one is resumed)."""
        with self._locked() as conn:
            found = _open_new_release(conn, period)
            if found is not None:
                return found, True
            opened_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            inserted = conn.execute(sa.insert(new_releases_table).values(
                period=period.isoformat(), opened_at=opened_at))
        return NewRelease(inserted.inserted_primary_key[0], period.isoformat(), opened_at), False

    def open_new_release_of(self, period: dt.date) -> NewRelease | None:
        """The new release of a day that a run left unfinished, if any."""
        with self.engine.connect() as conn:
            return _open_new_release(conn, period)

    def close_new_release(self, new_release_id: int) -> None:
        """Every report has been through the new release: the next one of the day starts afresh."""
        closed_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._locked() as conn:
            conn.execute(sa.update(new_releases_table).where(new_releases_table.c.id == new_release_id)
                         .values(closed_at=closed_at))

    def charges_of_run(self, run: str) -> list[Charge]:
        """The charges a run made itself (not those it took up from an earlier run)."""
        query = sa.select(charges_table).where(charges_table.c.run == run).order_by(charges_table.c.id)
        with self.engine.connect() as conn:
            return [_charge_from(row) for row in conn.execute(query)] if run else []

    def mark_stored(self, charge_id: int) -> None:
        """The charge's release is stored: from now on the charge can pay for nothing else."""
        with self._locked() as conn:
            conn.execute(sa.update(charges_table).where(charges_table.c.id == charge_id).values(state=STORED))

    def charges_of(self, report: str, period: dt.date) -> list[Charge]:
        """Every charge of one aggregation (by name) for one period, by release number."""
        c = charges_table.c
        query = sa.select(charges_table).where(c.report == report, c.period == period.isoformat())
        with self.engine.connect() as conn:
            return sorted((_charge_from(row) for row in conn.execute(query)), key=lambda ch: ch.number)

    def charge_ids(self) -> set[int]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(charges_table.c.id)).scalars())

    def check(self, request: ChargeRequest, limits: Sequence[LimitLike]) -> None:
        """Refuse now a release the limits cannot take, before any work is done for it.

        Advisory only: nothing is locked or written, and charge() decides again
        under the lock (another run may spend the budget in between).
        """
        with self.engine.connect() as conn:
            _charged_or_refused(conn, request, limits)

    def status(self, limits: Iterable[LimitLike], as_of: dt.date,
               privacy_unit: str = DEFAULT_PRIVACY_UNIT) -> list[BudgetStatus]:
        """Each limit in the rolling window ending on `as_of`, for one privacy unit's charges."""
        limits = list(limits)
        with self.engine.connect() as conn:
            rows = _charges_between(conn, privacy_unit, *_span(as_of, limits)) if limits else []
        return [budget_status(limit, as_of, privacy_unit, rows) for limit in limits]


def format_status(statuses: Sequence[BudgetStatus], as_of: dt.date) -> str:
    """A table of each limit's window ending on `as_of`, for people."""
    if not statuses:
        return "no privacy budget configured"
    header = ("limit", "window", "budget eps at delta", "spent eps", "left eps", "by", "spent rho",
              "releases")
    rows = [
        (s.scope, f"{s.window_start} to {s.window_end}", f"{s.budget_epsilon:g} at {s.budget_delta:g}",
         f"{s.spent_epsilon:.4g}", f"{s.remaining_epsilon:.4g}", s.method, f"{s.spent_rho:.4g}",
         str(s.releases) + (f" (+{s.unstored} unstored)" if s.unstored else ""))
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    table = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                      for row in [header, *rows])
    unstored = any(s.unstored for s in statuses)
    return "\n".join([
        f"Privacy budget per {statuses[0].privacy_unit}, rolling windows ending {as_of.isoformat()}",
        table,
        "spent eps: the window's releases composed (basic: epsilons add; zcdp: rhos add, converted "
        "once),\nwhichever proves the smaller epsilon at the limit's delta.",
        *(["unstored: charged, but no release was stored (a run stopped in between); their spend "
           "counts,\nthey are no release (`kr-reports ledger` flags them)"] if unstored else []),
    ])
