"""`kr-reports`: the command line of the reporting pipeline.

Each module of this package holds a group of commands and registers them
(`add_commands`); this one builds the parser, runs a command and turns the
project's own errors into one line and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from core.errors import InternalAlarm, KrReportsError
from kr_reports.cli import budget, deliveries, files, running


def _quiet_environment() -> None:
    """Offline-safe defaults, set before Prefect, GX or Spark are imported."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".prefect"))
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from core.private import use_private_umask

    use_private_umask()  # raw rows, keys and ledgers: files 0600, folders 0700
    import flows  # noqa: F401  registers Prefect Secret blocks as the key store (Prefect loads lazily)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kr-reports",
        description="KR Online privacy-safe aggregate reporting pipeline.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (running, budget, files, deliveries):
        group.add_commands(commands)
    return parser


def _users_to_fix(exc: Exception) -> bool:
    """An error of this project that is the user's to fix: shown as one line, without a traceback.

    Its message names files, columns, keys and counts, never data values (core.errors).
    An InternalAlarm is a safeguard catching the code itself: its traceback is shown.
    """
    return isinstance(exc, KrReportsError) and not isinstance(exc, InternalAlarm)


@contextlib.contextmanager
def _ending_cleanly(args: argparse.Namespace):
    """SIGTERM ends the command as Ctrl-C would, so its cleanup runs; the temporary Prefect server of
    a run is stopped however the command ends, kill -9 included (flows.api_server)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if in_main_thread else None
    try:
        if args.command == "run":
            from flows.api_server import temporary_api_server

            with temporary_api_server():
                yield
        else:
            yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_ended_by: list[int] = []  # the signal that is ending this command, once one has arrived


def _exit_on_sigterm(signum, frame) -> None:
    _ended_by.append(signum)
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_environment()
    _ended_by.clear()
    try:
        with _ending_cleanly(args):
            return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if _ended_by:  # the SystemExit our handler raised, wrapped by the code it interrupted
            return 128 + _ended_by[0]
        if _users_to_fix(exc):
            print(f"kr-reports {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise
    except BaseException as ended:
        if _is_prefect_termination(ended):
            return 128 + ended.signal
        raise


def _is_prefect_termination(ended: BaseException) -> bool:
    """Inside a flow run, Prefect's own SIGTERM handler ends it with TerminationSignal: the same
    ending as ours (the temporary server is stopped all the same), so the same exit status."""
    exceptions = sys.modules.get("prefect.exceptions")  # only a command that ran a flow loaded it
    return exceptions is not None and isinstance(ended, exceptions.TerminationSignal)


