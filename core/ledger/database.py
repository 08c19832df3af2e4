"""The ledger's tables and connections: schema, upgrades of older ledgers, engines and the write lock.

On SQLite the write lock is `BEGIN IMMEDIATE` (SQLAlchemy is made to emit the BEGIN itself);
elsewhere (PostgreSQL) `LOCK_CHARGES` takes a table lock that conflicts with itself and with
every write, and `LOCK_SCHEMA` an advisory lock under which the tables are created or upgraded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

LEDGER_URL_ENV = "KR_LEDGER_URL"
LEDGER_FILE = "ledger.sqlite"

# Execution option marking a connection whose transactions will write (SQLite only).
_WRITE_LOCK = "kr_ledger_write_lock"

metadata = sa.MetaData()
charges_table = sa.Table(
    "charges",
    metadata,
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
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
new_releases_table = sa.Table(
    "new_releases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("period", sa.Text, nullable=False),
    sa.Column("opened_at", sa.Text, nullable=False),
    sa.Column("closed_at", sa.Text, nullable=True),  # null while a run still has reports to release
    sqlite_autoincrement=True,
)


# Columns added since the first ledgers: an older ledger gets them with these defaults
# (its releases spent no rho, and all of them were stored).
ADDED_COLUMNS = {
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
COSTS_WITHOUT_PARTS = sa.text("UPDATE charges SET approx_epsilon = epsilon, approx_delta = delta, rho = 0")
LOCK_CHARGES = sa.text("LOCK TABLE charges IN SHARE ROW EXCLUSIVE MODE")
# Opening a ledger creates or upgrades its tables. On PostgreSQL, runs opening one at once take
# turns on this advisory lock, held until the transaction ends (LOCK TABLE needs the table to
# exist): else two create the same table at once and one fails, or both write a ledger id.
LOCK_SCHEMA = sa.text("SELECT pg_advisory_xact_lock(hashtext('kr-reports ledger schema'))")


def ledger_location(data_dir: Path, url: str | None = None) -> str | Path:
    """Where the ledger lives: `url` if given, else $KR_LEDGER_URL, else SQLite in the data folder."""
    return url or os.environ.get(LEDGER_URL_ENV) or Path(data_dir) / LEDGER_FILE


def database_url(location: str | Path) -> sa.URL:
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


def ledger_engine(url: sa.URL, create: bool = True) -> sa.Engine:
    """A connection per use: no file handle or server connection outlives a call. Every run, report
    and notebook opens a Ledger of its own, and a pool each would hold idle connections to a
    shared server until garbage collection, against its connection limit."""
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, poolclass=NullPool)
    if url.database and create:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # A writer waits up to a minute for another run's lock before giving up.
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"timeout": 60})
    _take_over_sqlite_begin(engine)
    return engine


@contextmanager
def write_transaction(conn: sa.Connection) -> Iterator[sa.Connection]:
    """A transaction that will write; on SQLite it holds the write lock from its start."""
    conn.execution_options(**{_WRITE_LOCK: True})
    with conn.begin():
        yield conn


def ledger_exists(url: sa.URL, engine: sa.Engine) -> bool:
    """A ledger is there: its charges table exists (an absent or empty SQLite file holds none)."""
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        return False
    with engine.connect() as conn:
        return sa.inspect(conn).has_table("charges")
