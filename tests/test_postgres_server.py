"""The PostgreSQL the ledger's tests run on: had where it can be, skipped (failed under CI) where
not, and thrown away after the session.

scripts/ensure_postgres.sh (run by `make test`) is run on a PATH of fakes; the fixture
(tests/postgres_server.py) in a pytest session of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from postgres_server import HOW_TO_GET_IT, server_binaries

TESTS = Path(__file__).resolve().parent
SCRIPT = TESTS.parent / "scripts" / "ensure_postgres.sh"
BASH = "/bin/bash"


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


def _ensure_postgres(tmp_path: Path, uid: int, apt: str | None, ci: str | None = None, **env):
    """The script on a PATH of fakes, with Debian's versions looked for under tmp_path/lib: `id -u`
    says `uid`; `apt-get` runs `apt` (absent if None; `{lib}` is where Debian's versions go)."""
    fakes, lib = tmp_path / "bin", tmp_path / "lib"
    fakes.mkdir()
    lib.mkdir()
    _tool(fakes, "id", f"echo {uid}")
    if apt is not None:
        _tool(fakes, "apt-get", apt.format(lib=lib))
    env = {"PATH": str(fakes), "HOME": str(tmp_path), "KR_PG_DEBIAN_ROOT": str(lib), **env}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


INSTALLS = ('[ "$1" = install ] || exit 0; /bin/mkdir -p {lib}/15/bin; for t in initdb pg_ctl; do '
            'echo "#!/bin/bash" > {lib}/15/bin/$t; /bin/chmod +x {lib}/15/bin/$t; done')


def test_root_with_apt_installs_debians_postgresql(tmp_path):
    done = _ensure_postgres(tmp_path, uid=0, apt=INSTALLS)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "lib" / "15" / "bin" / "pg_ctl").is_file()


def test_root_with_apt_that_cannot_install_postgresql_fails(tmp_path):
    done = _ensure_postgres(tmp_path, uid=0, apt="exit 100")
    assert done.returncode == 1
    assert "ERROR: postgresql could not be installed" in done.stderr


def test_root_with_apt_that_claims_success_without_a_server_fails(tmp_path):
    done = _ensure_postgres(tmp_path, uid=0, apt="exit 0")
    assert done.returncode == 1


def test_ci_without_a_way_to_install_postgresql_fails(tmp_path):
    done = _ensure_postgres(tmp_path, uid=1000, apt=None, ci="true")
    assert done.returncode == 1
    assert "CI=true" in done.stderr and "KR_PG_BIN" in done.stderr


def test_a_developer_machine_without_postgresql_gets_a_note(tmp_path):
    done = _ensure_postgres(tmp_path, uid=1000, apt=None)
    assert done.returncode == 0
    assert done.stderr.startswith("NOTE: no PostgreSQL server")
    assert "tests will be skipped" in done.stderr


def test_a_server_named_by_kr_pg_bin_is_enough(tmp_path):
    server = tmp_path / "pg"
    server.mkdir()
    for tool in ("initdb", "pg_ctl"):
        _tool(server, tool, "exit 0")
    done = _ensure_postgres(tmp_path, uid=1000, apt=None, ci="true", KR_PG_BIN=str(server))
    assert done.returncode == 0, done.stderr


# ---- the fixture, in a session of its own ----------------------------------------------------

SAMPLE = '''
from pathlib import Path

from sqlalchemy import create_engine, text


def test_a_ledger_location(ledger_backend, ledger_at):
    if not ledger_backend.is_sqlite:
        with create_engine(ledger_at).connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1


def test_the_server(postgres_server):
    Path("server.txt").write_text(f"{postgres_server.folder} {postgres_server.port}")
'''


def _session(tmp_path: Path, ci: str | None, binaries: bool) -> str:
    conftest = ["from postgres_server import ledger_at, ledger_backend, postgres_server  # noqa",
                "from strict_ci import pytest_make_collect_report, pytest_runtest_makereport  # noqa"]
    if not binaries:
        conftest += ["import postgres_server as server", "server.server_binaries = lambda: None"]
    (tmp_path / "conftest.py").write_text("\n".join(conftest) + "\n")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *sys.path])
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    return done.stdout


def test_without_server_binaries_the_postgresql_tests_skip_saying_how_to_get_them(tmp_path):
    out = _session(tmp_path, None, binaries=False)
    assert "1 passed, 2 skipped" in out, out
    assert "make postgres-check" in out and "apt-get install postgresql" in out


def test_under_ci_without_server_binaries_the_postgresql_tests_fail(tmp_path):
    out = _session(tmp_path, "true", binaries=False)
    assert "1 passed" in out and "skipped" not in out.splitlines()[-1], out
    assert "skipped under CI=true" in out and "make postgres-check" in out


def test_the_server_is_stopped_and_its_folder_removed_after_the_session(tmp_path):
    if server_binaries() is None:
        pytest.skip(HOW_TO_GET_IT)
    out = _session(tmp_path, None, binaries=True)
    assert "3 passed" in out, out
    folder, port = (tmp_path / "server.txt").read_text().split()
    assert not Path(folder).exists()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(port))) != 0  # nothing listens there any more
