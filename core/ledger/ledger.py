"""The Ledger: one database of charges, each made inside a transaction that holds the write lock."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from core.ledger.charging import (
    adopted,
    charge_from,
    charged_or_refused,
    charges_between,
    find_open_new_release,
)
from core.ledger.database import (
    ADDED_COLUMNS,
    COSTS_WITHOUT_PARTS,
    LOCK_CHARGES,
    LOCK_SCHEMA,
    charges_table,
    database_url,
    ledger_engine,
    ledger_exists,
    meta_table,
    metadata,
    new_releases_table,
    write_transaction,
)
from core.ledger.errors import LedgerMissing
from core.ledger.records import (
    CHARGED,
    COST_PARTS,
    STORED,
    BudgetStatus,
    Charge,
    ChargeRequest,
    LimitLike,
    NewRelease,
)
from core.ledger.windows import budget_status, windows_span

DEFAULT_PRIVACY_UNIT = "subscriber"


class Ledger:
    def __init__(self, location: str | Path, *, create: bool = True):
        """`location`: a SQLAlchemy URL (it contains "://") or the path of a SQLite file.

        With `create=False` a ledger that is not there (no file, an empty file, no
        charges table) raises LedgerMissing instead of starting a fresh budget.
        """
        self.url = database_url(location)
        self.engine = ledger_engine(self.url, create)
        if not create and not ledger_exists(self.url, self.engine):
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
        with self.engine.connect() as conn, write_transaction(conn):
            if conn.dialect.name != "sqlite":
                conn.execute(LOCK_SCHEMA)
            metadata.create_all(conn)
            columns = {col["name"] for col in sa.inspect(conn).get_columns("charges")}
            for column, statement in ADDED_COLUMNS.items():
                if column not in columns:
                    conn.execute(statement)
            if "approx_epsilon" not in columns:
                conn.execute(COSTS_WITHOUT_PARTS)
            ledger_id = conn.execute(
                sa.select(meta_table.c.value).where(meta_table.c.key == "ledger_id")).scalar()
            if ledger_id is None:
                ledger_id = uuid.uuid4().hex
                conn.execute(sa.insert(meta_table).values(key="ledger_id", value=ledger_id))
        return ledger_id

    @contextmanager
    def _locked(self) -> Iterator[sa.Connection]:
        """A transaction holding the ledger's write lock until it commits or rolls back."""
        with self.engine.connect() as conn, write_transaction(conn):
            if conn.dialect.name != "sqlite":
                conn.execute(LOCK_CHARGES)
            yield conn

    def charges(self, dataset: str | None = None) -> list[Charge]:
        query = sa.select(charges_table).order_by(charges_table.c.id)
        if dataset is not None:
            query = query.where(charges_table.c.dataset == dataset)
        with self.engine.connect() as conn:
            return [charge_from(row) for row in conn.execute(query)]

    def charge(self, request: ChargeRequest, limits: Sequence[LimitLike]) -> tuple[Charge, bool]:
        """Charge a release once, inside one write transaction. Returns (entry, newly_charged)."""
        with self._locked() as conn:
            existing = charged_or_refused(conn, request, limits)
            if existing is not None:
                return adopted(conn, charge_from(existing), request.new_release), False
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
            found = find_open_new_release(conn, period)
            if found is not None:
                return found, True
            opened_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            inserted = conn.execute(sa.insert(new_releases_table).values(
                period=period.isoformat(), opened_at=opened_at))
        return NewRelease(inserted.inserted_primary_key[0], period.isoformat(), opened_at), False

    def open_new_release_of(self, period: dt.date) -> NewRelease | None:
        """The new release of a day that a run left unfinished, if any."""
        with self.engine.connect() as conn:
            return find_open_new_release(conn, period)

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
            return [charge_from(row) for row in conn.execute(query)] if run else []

    def mark_stored(self, charge_id: int) -> None:
        """The charge's release is stored: from now on the charge can pay for nothing else."""
        with self._locked() as conn:
            conn.execute(sa.update(charges_table).where(charges_table.c.id == charge_id).values(state=STORED))

    def charges_of(self, report: str, period: dt.date) -> list[Charge]:
        """Every charge of one aggregation (by name) for one period, by release number."""
        c = charges_table.c
        query = sa.select(charges_table).where(c.report == report, c.period == period.isoformat())
        with self.engine.connect() as conn:
            return sorted((charge_from(row) for row in conn.execute(query)), key=lambda ch: ch.number)

    def charge_ids(self) -> set[int]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(charges_table.c.id)).scalars())

    def check(self, request: ChargeRequest, limits: Sequence[LimitLike]) -> None:
        """Refuse now a release the limits cannot take, before any work is done for it.

        Advisory only: nothing is locked or written, and charge() decides again
        under the lock (another run may spend the budget in between).
        """
        with self.engine.connect() as conn:
            charged_or_refused(conn, request, limits)

    def status(self, limits: Iterable[LimitLike], as_of: dt.date,
               privacy_unit: str = DEFAULT_PRIVACY_UNIT) -> list[BudgetStatus]:
        """Each limit in the rolling window ending on `as_of`, for one privacy unit's charges."""
        limits = list(limits)
        with self.engine.connect() as conn:
            rows = charges_between(conn, privacy_unit, *windows_span(as_of, limits)) if limits else []
        return [budget_status(limit, as_of, privacy_unit, rows) for limit in limits]
