"""A throwaway PostgreSQL server for the tests, and the ledger's two backends as a fixture.

The ledger is SQLite unless a URL puts it elsewhere; on PostgreSQL it locks the charges table
instead. Both paths must hold the same rules, so the ledger's tests take `ledger_backend`,
which runs each of them on a fresh SQLite file and on a fresh database of a real server.

The server is started once per test session: `initdb` into a new folder under /tmp, `pg_ctl`
on 127.0.0.1 and a free port (its socket in that folder, fsync off: nothing here needs to
survive a crash), stopped with `pg_ctl stop -m immediate` and its folder removed at the end.
PostgreSQL refuses to run as root, so as root it runs as the `postgres` user (Debian's
package creates it) or else `nobody`. Where no server binaries are found (PATH,
/usr/lib/postgresql/*/bin or $KR_PG_BIN), the PostgreSQL tests skip saying how to get them;
under CI=true that skip fails (tests/strict_ci.py).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

BACKENDS = ("sqlite", "postgresql")
HOW_TO_GET_IT = ("no PostgreSQL server binaries (initdb, pg_ctl) on PATH, under /usr/lib/postgresql/*/bin or "
                 "in $KR_PG_BIN: run `make postgres-check` as root, or `apt-get install postgresql`")
SERVER_USERS = ("postgres", "nobody")  # as root: Debian's server user, else the unprivileged default
_databases = itertools.count(1)


def _version(folder: str) -> tuple[int, ...]:
    """Debian's version folder as numbers (/usr/lib/postgresql/15/bin: (15,); 9.6: (9, 6))."""
    return tuple(int(part) if part.isdigit() else -1 for part in Path(folder).parent.name.split("."))


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: $KR_PG_BIN, else PATH, else Debian's newest version."""
    on_path = shutil.which("initdb")
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for folder in [os.environ.get("KR_PG_BIN"), on_path and str(Path(on_path).resolve().parent), *debian]:
        if folder and all(os.access(Path(folder) / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(folder)
    return None


def _unprivileged() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs the server's tools as a user it accepts, and that user (as root)."""
    if os.geteuid() != 0:
        return [], None
    for name in SERVER_USERS:
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"], user
    raise RuntimeError(f"running as root, and none of the users {', '.join(SERVER_USERS)} exists to run "
                       "PostgreSQL as (it refuses root)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """A running throwaway server: databases are made on it, each for one test."""

    folder: Path
    binaries: Path
    as_user: list[str]
    port: int = 0
    superuser: str = "kr"

    def url(self, database: str = "postgres") -> sa.URL:
        return sa.URL.create("postgresql+psycopg", username=self.superuser, host="127.0.0.1",
                             port=self.port, database=database)

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, str(self.binaries / tool), *args], cwd=self.folder,
                              capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        done = self._run("initdb", "-D", str(self.folder / "data"), "-U", self.superuser, "--auth=trust",
                         "-E", "UTF8", "--locale=C", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")

    def start(self) -> None:
        """Start on a free loopback port (another, if a process took the one chosen meanwhile)."""
        for _ in range(3):
            self.port = _free_port()
            options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                       f"-c unix_socket_directories={self.folder} -c fsync=off -c synchronous_commit=off "
                       "-c full_page_writes=off -c max_connections=300")
            done = self._run("pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "server.log"),
                             "-w", "-t", "60", "-o", options, "start")
            if done.returncode == 0:
                return
        log = (self.folder / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"pg_ctl could not start PostgreSQL: {done.stderr.strip()}\n{log}")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop")

    def _admin(self, statement: str) -> None:
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
        engine.dispose()

    def create_database(self) -> sa.URL:
        """A new, empty database (its own name in this session); its URL."""
        name = f"ledger_{next(_databases)}"
        self._admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: sa.URL) -> None:
        """Drop a test's database, ending connections a test's ledgers left in their pools."""
        self._admin(f"DROP DATABASE IF EXISTS {url.database} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the session; skips (fails under CI) where none can be run."""
    binaries = server_binaries()
    if binaries is None:
        pytest.skip(HOW_TO_GET_IT)
    as_user, user = _unprivileged()
    folder = Path(tempfile.mkdtemp(prefix="kr-tests-postgres-"))  # not under pytest's 0700 root folder
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    server = PostgresServer(folder, binaries, as_user)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


class LedgerBackend:
    """Fresh, empty ledger locations on one backend, for one test.

    `new(path)`: on SQLite that path (by default a new file in the test's folder); on
    PostgreSQL a new database's URL (the path is ignored). `url_of` gives the string a
    --ledger-url option or $KR_LEDGER_URL takes; `tables` and `delete` look and damage
    from outside the ledger, as an operator could.
    """

    def __init__(self, name: str, folder: Path, server: PostgresServer | None):
        self.name, self._folder, self._server = name, folder, server
        self._made: list[sa.URL] = []
        self._files = itertools.count(1)

    @property
    def is_sqlite(self) -> bool:
        return self._server is None

    def new(self, path: Path | None = None) -> str | Path:
        if self._server is None:
            return path or self._folder / f"ledger-{next(self._files)}.sqlite"
        url = self._server.create_database()
        self._made.append(url)
        return url.render_as_string(hide_password=False)

    @staticmethod
    def url_of(location: str | Path) -> str:
        return location if isinstance(location, str) else f"sqlite:///{location}"

    def tables(self, location: str | Path) -> set[str]:
        """The tables at a location, read without creating anything (no SQLite file: none)."""
        if isinstance(location, Path) and not location.exists():
            return set()
        engine = sa.create_engine(self.url_of(location), poolclass=sa.pool.NullPool)
        try:
            return set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()

    def delete(self, location: str | Path) -> None:
        """The ledger gone: its SQLite file removed, or every table dropped from its database."""
        if isinstance(location, Path):
            location.unlink()
            return
        engine = sa.create_engine(location, poolclass=sa.pool.NullPool)
        tables = sa.MetaData()
        tables.reflect(engine)
        tables.drop_all(engine)
        engine.dispose()

    def drop_all(self) -> None:
        for url in self._made:
            self._server.drop_database(url)


@pytest.fixture(params=BACKENDS)
def ledger_backend(request, tmp_path):
    """The ledger's backend for this test: SQLite files, or databases on the throwaway server."""
    server = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    backend = LedgerBackend(request.param, tmp_path, server)
    yield backend
    if server is not None:
        backend.drop_all()


@pytest.fixture
def ledger_at(ledger_backend) -> str | Path:
    """A fresh, empty ledger location on the test's backend."""
    return ledger_backend.new()
