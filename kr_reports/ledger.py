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

A ledger has an identity (a random id written when it is created), which the
release store records: a deleted, emptied or swapped ledger is noticed
rather than silently replaced by a fresh budget. `Ledger(location,
create=False)` refuses to create one.

Budgets are checked on epsilon and delta. Releases accounted in zCDP also
record their rho; the epsilon and delta they are charged are the converted
values the caller passes.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

LEDGER_URL_ENV = "KR_LEDGER_URL"
LEDGER_FILE = "ledger.sqlite"
DEFAULT_PRIVACY_UNIT = "subscriber"

# Sums of configured floats (0.1 + 0.2 ...) can land a hair above the budget
# they exactly fill; these slacks keep such a release from being refused.
EPSILON_SLACK = 1e-12
DELTA_SLACK = 1e-15

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
    sqlite_autoincrement=True,  # as the first ledgers were: ids are never reused
)
meta_table = sa.Table(
    "ledger_meta",
    _metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
CHARGED, STORED = "charged", "stored"

# Columns added since the first ledgers: an older ledger gets them with these defaults
# (its releases spent no rho, and all of them were stored).
_ADD_COLUMNS = {
    "rho": sa.text("ALTER TABLE charges ADD COLUMN rho FLOAT NOT NULL DEFAULT 0"),
    "aggregation_hash": sa.text("ALTER TABLE charges ADD COLUMN aggregation_hash TEXT NOT NULL DEFAULT ''"),
    "state": sa.text("ALTER TABLE charges ADD COLUMN state TEXT NOT NULL DEFAULT 'stored'"),
}
_LOCK_CHARGES = sa.text("LOCK TABLE charges IN SHARE ROW EXCLUSIVE MODE")


class BudgetExceeded(RuntimeError):
    """A release would spend more than its dataset's budget allows."""


class LedgerMissing(RuntimeError):
    """No ledger where one must already exist (it was deleted, emptied, or its URL changed)."""


class ChargeMismatch(RuntimeError):
    """A release id is already charged, for other terms or for a release already stored."""


class BudgetLike(Protocol):
    """What the ledger reads from a configured budget (`kr_reports.config.Budget`)."""

    dataset: str
    window_days: int
    epsilon: float
    delta: float


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
    epsilon: float
    delta: float
    rho: float = 0.0
    aggregation_hash: str = ""


@dataclass(frozen=True)
class Spent:
    epsilon: float
    delta: float
    rho: float
    releases: int


@dataclass(frozen=True)
class BudgetStatus:
    """One dataset's budget in the rolling window ending on `window_end` (inclusive).

    `committed_around_*` is what was charged on periods less than a window away
    from `window_end`, on either side. Every rolling window containing that day
    lies inside this span, so it bounds the most spent in any of them; it is
    also the figure `Ledger.charge` checks, so a release for `window_end` can
    spend at most budget minus it.
    """

    dataset: str
    privacy_unit: str
    window_days: int
    window_start: str
    window_end: str
    budget_epsilon: float
    budget_delta: float
    spent_epsilon: float
    spent_delta: float
    spent_rho: float
    remaining_epsilon: float
    remaining_delta: float
    releases: int
    committed_around_epsilon: float
    committed_around_delta: float


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


def _span_around(day: dt.date, window_days: int) -> tuple[str, str]:
    """Periods less than a window away from `day`: the union of every window containing it."""
    reach = dt.timedelta(days=window_days - 1)
    return (day - reach).isoformat(), (day + reach).isoformat()


def _total(rows: Sequence[sa.Row]) -> Spent:
    return Spent(
        epsilon=math.fsum(r.epsilon for r in rows),
        delta=math.fsum(r.delta for r in rows),
        rho=math.fsum(r.rho for r in rows),
        releases=len(rows),
    )


def _charges_between(
    conn: sa.Connection, dataset: str, unit: str, first: str, last: str
) -> list[sa.Row]:
    """Charges on one dataset and privacy unit with periods in [first, last]."""
    c = charges_table.c
    query = sa.select(c.period, c.epsilon, c.delta, c.rho).where(
        c.dataset == dataset, c.privacy_unit == unit, c.period.between(first, last)
    )
    return list(conn.execute(query))


def _would_exceed(spent: Spent, request: ChargeRequest, budget_epsilon: float, budget_delta: float) -> bool:
    return (spent.epsilon + request.epsilon > budget_epsilon + EPSILON_SLACK
            or spent.delta + request.delta > budget_delta + DELTA_SLACK)


def _refusal(request: ChargeRequest, spent: Spent, budget_epsilon: float, budget_delta: float,
             window_days: int) -> BudgetExceeded:
    return BudgetExceeded(
        f"release '{request.release_id}' needs epsilon {request.epsilon:g}, "
        f"delta {request.delta:g} on dataset '{request.dataset}', but "
        f"epsilon {spent.epsilon:g} / delta {spent.delta:g} of the budget "
        f"(epsilon {budget_epsilon:g}, delta {budget_delta:g} per {window_days} days) "
        f"is already spent around {request.period.isoformat()}"
    )


def budget_status(budget: BudgetLike, as_of: dt.date, unit: str, rows: Sequence[sa.Row]) -> BudgetStatus:
    """A budget's status from the charges on periods less than a window away from `as_of`."""
    first, last = _rolling_window(as_of, budget.window_days)
    spent = _total([r for r in rows if first <= r.period <= last])
    around = _total(rows)
    return BudgetStatus(
        dataset=budget.dataset,
        privacy_unit=unit,
        window_days=budget.window_days,
        window_start=first,
        window_end=last,
        budget_epsilon=budget.epsilon,
        budget_delta=budget.delta,
        spent_epsilon=spent.epsilon,
        spent_delta=spent.delta,
        spent_rho=spent.rho,
        remaining_epsilon=max(0.0, budget.epsilon - spent.epsilon),
        remaining_delta=max(0.0, budget.delta - spent.delta),
        releases=spent.releases,
        committed_around_epsilon=around.epsilon,
        committed_around_delta=around.delta,
    )


def _status_of(conn: sa.Connection, budget: BudgetLike, as_of: dt.date, unit: str) -> BudgetStatus:
    first, last = _span_around(as_of, budget.window_days)
    return budget_status(budget, as_of, unit, _charges_between(conn, budget.dataset, unit, first, last))


def _differences(existing: sa.Row, request: ChargeRequest) -> list[str]:
    """The terms in which an existing charge differs from a request for the same release id."""
    row = existing._mapping
    asked = {"dataset": request.dataset, "privacy_unit": request.privacy_unit,
             "period": request.period.isoformat(), "epsilon": request.epsilon, "delta": request.delta,
             "rho": request.rho, "aggregation_hash": request.aggregation_hash}
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


def _charged_or_refused(conn: sa.Connection, request: ChargeRequest, budget_epsilon: float,
                        budget_delta: float, window_days: int) -> sa.Row | None:
    """The release's existing matching charge; else None if the budget can take it; else refused.

    The check spans every rolling window containing the release's period:
    keeping that sum within budget keeps each such window within budget.
    """
    existing = conn.execute(
        sa.select(charges_table).where(charges_table.c.release_id == request.release_id)
    ).first()
    if existing is not None:
        return _reusable_or_refused(existing, request)
    first, last = _span_around(request.period, window_days)
    spent = _total(_charges_between(conn, request.dataset, request.privacy_unit, first, last))
    if _would_exceed(spent, request, budget_epsilon, budget_delta):
        raise _refusal(request, spent, budget_epsilon, budget_delta, window_days)
    return None


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

    def charge(
        self, request: ChargeRequest, budget_epsilon: float, budget_delta: float, window_days: int
    ) -> tuple[Charge, bool]:
        """Charge a release once, inside one write transaction. Returns (entry, newly_charged)."""
        with self._locked() as conn:
            existing = _charged_or_refused(conn, request, budget_epsilon, budget_delta, window_days)
            if existing is not None:
                return _charge_from(existing), False
            values = {
                "aggregation_hash": request.aggregation_hash,
                "state": CHARGED,
                "release_id": request.release_id,
                "dataset": request.dataset,
                "privacy_unit": request.privacy_unit,
                "period": request.period.isoformat(),
                "report": request.report,
                "partner": request.partner,
                "purpose": request.purpose,
                "epsilon": request.epsilon,
                "delta": request.delta,
                "rho": request.rho,
                "charged_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            inserted = conn.execute(sa.insert(charges_table).values(**values))
        return Charge(id=inserted.inserted_primary_key[0], **values), True

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

    def check(
        self, request: ChargeRequest, budget_epsilon: float, budget_delta: float, window_days: int
    ) -> None:
        """Refuse now a release the budget cannot take, before any work is done for it.

        Advisory only: nothing is locked or written, and charge() decides again
        under the lock (another run may spend the budget in between).
        """
        with self.engine.connect() as conn:
            _charged_or_refused(conn, request, budget_epsilon, budget_delta, window_days)

    def status(
        self, budgets: Iterable[BudgetLike], as_of: dt.date, privacy_unit: str = DEFAULT_PRIVACY_UNIT
    ) -> list[BudgetStatus]:
        """Spent and remaining budget per configured budget, in the window ending on `as_of`.

        Budgets are per privacy unit (per subscriber), so only that unit's charges count.
        """
        with self.engine.connect() as conn:
            return [_status_of(conn, budget, as_of, privacy_unit) for budget in budgets]


def _pair(epsilon: float, delta: float) -> str:
    return f"{epsilon:g} / {delta:g}"


def _aligned(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def format_status(statuses: Sequence[BudgetStatus], as_of: dt.date) -> str:
    """A table of budget status per dataset, for people."""
    if not statuses:
        return "no privacy budgets configured"
    unit = statuses[0].privacy_unit
    header = ("dataset", "window", "budget eps/delta", "spent eps/delta", "remaining eps/delta",
              "spent rho", "releases", "committed eps")
    rows = [
        (s.dataset, f"{s.window_days} days", _pair(s.budget_epsilon, s.budget_delta),
         _pair(s.spent_epsilon, s.spent_delta), _pair(s.remaining_epsilon, s.remaining_delta),
         f"{s.spent_rho:g}", str(s.releases), f"{s.committed_around_epsilon:g}")
        for s in statuses
    ]
    return "\n".join([
        f"Privacy budget per {unit}, rolling windows ending {as_of.isoformat()}",
        _aligned([header, *rows]),
        "committed eps: charged less than a window before or after that day. It bounds every window\n"
        "containing the day; a release for the day can spend at most budget minus it.",
    ])
