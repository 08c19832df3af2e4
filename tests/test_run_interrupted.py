"""`kr-reports run` killed or terminated: Prefect's temporary API server goes with it.

Each test starts the CLI as a process of its own (no PREFECT_API_URL, so the run
needs Prefect's temporary server), waits until that server answers, ends the CLI
with SIGKILL or SIGTERM, and asserts that the server process is gone and its port
free within seconds. The landing manifest names a day whose files are missing, so
the run would stop on its own only after Spark has started: it is still running
when it is ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER_START = 120  # seconds: a fresh Prefect database is migrated first
GONE_WITHIN = 10


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper does not count: it holds no port and no memory)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _server_of(cli: subprocess.Popen) -> tuple[int, int]:
    """The temporary server's process id and port, once it answers."""
    deadline = time.monotonic() + SERVER_START
    while time.monotonic() < deadline:
        if cli.poll() is not None:
            raise AssertionError(f"the run ended (rc {cli.returncode}) before its server answered: "
                                 + cli.log.read_text()[-2000:])
        for pid in _children(cli.pid):
            found = re.search(r"uvicorn .*--port (\d+)", _command_line(pid))
            if found and _answers(int(found.group(1))):
                return pid, int(found.group(1))
        time.sleep(0.2)
    raise AssertionError("the temporary Prefect server did not answer in time")


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory) -> Path:
    """One Prefect database for both tests: a fresh one is migrated when its first server starts."""
    return tmp_path_factory.mktemp("prefect")


@pytest.fixture
def run_cli(tmp_path, prefect_home):
    data = tmp_path / "data"
    (data / "landing").mkdir(parents=True)
    (data / "landing" / ".complete").write_text(json.dumps({"dates": ["2026-11-01"], "format": "parquet"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(PREFECT_HOME=str(prefect_home),
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=str(SERVER_START),
               PREFECT_SERVER_ANALYTICS_ENABLED="false",
               GX_ANALYTICS_ENABLED="false", PYSPARK_PYTHON=sys.executable)
    started = []

    def start() -> subprocess.Popen:
        log = tmp_path / f"run-{len(started)}.log"
        cli = subprocess.Popen(
            [sys.executable, "-m", "kr_reports.cli", "run", "--demo", "--data-dir", str(data),
             "--out-dir", str(tmp_path / "out"), "--config-dir", str(ROOT / "config")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
            start_new_session=True,  # its own group, so that the cleanup below reaches what it left
        )
        cli.log = log
        started.append(cli)
        return cli

    yield start
    for cli in started:  # whatever the test left (a Spark JVM, a server when the test failed)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cli.pid, signal.SIGKILL)
        cli.wait()


def _gone(pid: int, port: int) -> bool:
    deadline = time.monotonic() + GONE_WITHIN
    while time.monotonic() < deadline:
        if not _alive(pid) and not _answers(port):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("ending", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_the_temporary_prefect_server_ends_with_the_run(run_cli, ending):
    cli = run_cli()
    server, port = _server_of(cli)
    assert cli.poll() is None, "the run must still be going when it is ended"

    cli.send_signal(ending)

    assert _gone(server, port), f"the temporary Prefect server (pid {server}, port {port}) outlived the run"
    expected = -signal.SIGKILL if ending == signal.SIGKILL else 128 + signal.SIGTERM
    assert cli.wait(timeout=60) == expected, cli.log.read_text()[-3000:]


def test_a_sigterm_inside_a_flow_run_exits_as_a_sigterm(monkeypatch):
    # Once a flow runs, Prefect's own SIGTERM handler is in place and ends the run with its
    # TerminationSignal (a BaseException), which must not become a traceback and exit 1.
    from prefect.exceptions import TerminationSignal

    from kr_reports import cli
    from kr_reports.cli import budget

    def terminated(args):
        raise TerminationSignal(signal.SIGTERM)

    monkeypatch.setattr(budget, "_cmd_ledger", terminated)  # the parser is built when main runs
    assert cli.main(["ledger"]) == 128 + signal.SIGTERM


def test_a_run_that_ends_leaves_nothing_for_prefect_to_send_to_its_stopped_server(run_cli):
    cli = run_cli()  # a landing zone without files: the run fails in its first stage, rc 2
    assert cli.wait(timeout=SERVER_START + 120) == 2
    printed = cli.log.read_text()
    assert "Stopping temporary server" in printed
    assert "Error logging to API" not in printed, printed[-2000:]


def test_a_sigterm_that_library_code_wraps_in_its_own_error_still_ends_the_command_with_143(monkeypatch):
    """Our handler's SystemExit can land inside code that catches every error and raises its own
    (pydantic's serializer did, while Prefect was being imported): still the ending, not a traceback."""
    from kr_reports import cli
    from kr_reports.cli import budget

    def interrupted_inside_a_library(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, at the next bytecode
            time.sleep(1)
        except BaseException as exc:
            raise RuntimeError(f"Error calling function: {exc!r}") from exc

    monkeypatch.setattr(budget, "_cmd_ledger", interrupted_inside_a_library)
    assert cli.main(["ledger"]) == 128 + signal.SIGTERM

