"""The temporary Prefect API server of a local run, stopped however the run ends.

Without PREFECT_API_URL, Prefect starts a temporary API server (a uvicorn child
process, about 200 MB) for a flow run and stops it when the interpreter exits.
A run killed with SIGKILL never gets there, and the server stayed behind,
orphaned, holding its port. So a local run starts that server itself, before
the flow (Prefect's clients then use the same instance), and pairs it with a
watchdog: a small process, in a session of its own, that reads a pipe from the
run. The run tells it the server's process id; when the run ends normally it
dismisses the watchdog and stops the server itself; when the run ends any other
way the kernel closes the pipe, and the watchdog stops the server.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

DISMISS = b"-\n"

# Reads server process ids, one a line. A dismissal leaves them alone; end of input
# (the run is gone, however it ended) stops each: SIGTERM, then SIGKILL after 5 s.
_WATCHDOG = r"""
import os, signal, sys, time
pids = []
for line in sys.stdin.buffer:
    if line == b"-\n":
        sys.exit(0)
    pids.append(int(line))
for pid in pids:
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            time.sleep(0.1)
            os.kill(pid, 0)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


class _Watchdog:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG],
            stdin=subprocess.PIPE, start_new_session=True,  # a Ctrl-C to the run's group leaves it be
        )

    def watch(self, pid: int) -> None:
        self.process.stdin.write(f"{pid}\n".encode())
        self.process.stdin.flush()

    def dismiss(self) -> None:
        with suppress(BrokenPipeError):
            self.process.stdin.write(DISMISS)
            self.process.stdin.close()
        self.process.wait()


class _WatchedServer(SubprocessASGIServer):
    """Prefect's temporary server, each of whose processes the watchdog is told of as it starts."""

    watchdog: _Watchdog

    def _run_uvicorn_command(self) -> subprocess.Popen:
        process = super()._run_uvicorn_command()  # Prefect's own launch; started again on a port clash
        self.watchdog.watch(process.pid)
        return process


@contextmanager
def temporary_api_server() -> Iterator[str | None]:
    """The temporary API server for this process's flow runs, when Prefect would start one.

    Yields its API URL, or None when PREFECT_API_URL names a server (nothing to start).
    """
    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        yield None
        return
    watchdog = _Watchdog()
    server = _WatchedServer()  # registered as the instance Prefect's clients start and reuse
    server.watchdog = watchdog
    if server.server_process is not None:  # started already in this process
        watchdog.watch(server.server_process.pid)
    try:
        server.start()
        yield server.api_url
    finally:
        _send_what_prefect_holds()
        server.stop()
        watchdog.dismiss()


def _send_what_prefect_holds() -> None:
    """The runs' queued logs and events reach the server before it stops; left queued, Prefect
    would send them at exit to a stopped server and print "Error logging to API"."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        with suppress(Exception):  # what cannot be sent now is lost either way; the run's end is not
            service.drain_all(timeout=5)
