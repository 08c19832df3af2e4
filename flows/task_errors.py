"""How a task fails: retried only when a retry may help, its stage named, and no data value in
what Prefect stores (the original error goes to a local DEBUG log only)."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from prefect import Task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from core.errors import KrReportsError
from stages.catalog import Catalog
from stages.spark import error_condition


def is_project_error(exc: BaseException) -> bool:
    """Raised by this project's code: its message names no data value, and a retry fails alike."""
    return isinstance(exc, KrReportsError)


def _worth_retrying(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry what may pass next time (storage, Spark); not a check of ours, nor a file Spark cannot parse."""
    error = state.result(raise_on_failure=False)
    return getattr(error, "retryable", not is_project_error(error))


IO_RETRIES = {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": _worth_retrying,
              "cache_policy": NO_CACHE}


class StageFailed(KrReportsError, RuntimeError):
    """A stage of the run failed; the message names the stage, the dataset and the day."""


class ReportsFailed(StageFailed):
    """Some reports failed; the run's summary says which others were delivered (and where)."""

    def __init__(self, message: str, summary: dict) -> None:
        super().__init__(message)
        self.summary = summary


class ReportsRefused(StageFailed):
    """The privacy budget could not take some reports; the others were delivered.

    Not a crash: one line per refused report (report, day, spent and left, when budget
    returns), and the run's summary of what was delivered.
    """

    def __init__(self, refusals: list[str], summary: dict) -> None:
        super().__init__(f"{len(refusals)} report(s) refused by the privacy budget, the others were "
                         "delivered: " + "; ".join(refusals))
        self.refusals, self.summary = refusals, summary


class TaskFailed(StageFailed):
    """A task met an error from outside this project, whose text may quote data values.

    Prefect stores a failed task's exception text and traceback in its API, so the task
    raises this instead: it names the error's type (and the file, when Spark could not
    read one of the data folder's files), and the original is logged only locally, at
    debug level. `retryable` says whether another attempt may pass.
    """

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def stage_failure_message(stage: str, dataset: str, day: dt.date, cause: BaseException) -> str:
    """Where the run stopped, and why when the cause is ours (other messages may quote data)."""
    if isinstance(cause, TaskFailed):  # already says what and where, without data
        reason = str(cause)
    elif is_project_error(cause):
        reason = f"{type(cause).__name__}: {cause}"
    else:
        reason = f"{type(cause).__name__} (details in the task run's log)"
    return f"stage '{stage}' failed for {dataset} on {day.isoformat()}: {reason}"


P = ParamSpec("P")
R = TypeVar("R")
local_log = logging.getLogger(__name__)  # not Prefect's run logger: nothing here reaches its API

# Spark's error conditions for a file it cannot parse: the next attempt fails alike.
UNPARSABLE_FILE = ("FAILED_READ_FILE", "CANNOT_READ_FILE_FOOTER", "MALFORMED_RECORD_IN_PARSING",
                   "UNABLE_TO_INFER_SCHEMA")
_JAVA_CONDITION = re.compile(r"(?:Exception|Error): \[([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)\]")
_FILE_URI = re.compile(r"file:(/[^\s'\"]+)")


def keeping_data_out(task_fn: Callable[P, R]) -> Callable[P, R]:
    """A task body whose foreign errors leave it as TaskFailed, their text only in the local debug log."""
    @functools.wraps(task_fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return task_fn(*args, **kwargs)
        except Exception as exc:
            local_log.debug("%s failed", task_fn.__name__, exc_info=True)
            if is_project_error(exc):  # its message is clean; a cause it chains to may not be
                exc.__cause__, exc.__suppress_context__ = None, True
                raise
            catalog = next((a for a in (*args, *kwargs.values()) if isinstance(a, Catalog)), None)
            error = foreign_error(exc, catalog.data_dir if catalog else None)
        raise error  # outside the handler: no chain back to the original, not even an implicit one
    return run


def foreign_error(exc: BaseException, data_dir: Path | None) -> TaskFailed:
    """The project's error for a foreign one: its type, Spark's error condition, the unreadable file."""
    text = str(exc)  # read for the condition and the file only, never repeated
    condition = spark_condition(exc, text)
    unparsable = (condition is not None and condition.startswith(UNPARSABLE_FILE)
                  and condition != "FAILED_READ_FILE.FILE_NOT_EXIST")
    kind = type(exc).__name__ + (f" {condition}" if condition else "")
    file = _file_in(text, data_dir) if condition else None
    if file and unparsable:
        return TaskFailed(f"{file}: cannot be parsed, corrupt or not in the landing format ({kind}; "
                          "details in the local debug log)", retryable=False)
    where = f" reading {file}" if file else ""
    return TaskFailed(f"{kind}{where} (its text may quote data: details in the local debug log)",
                      retryable=not unparsable)


def spark_condition(exc: BaseException, text: str) -> str | None:
    """Spark's error condition, when it gave one; else as a Java error's text names it."""
    condition = error_condition(exc)
    if condition:
        return condition
    found = _JAVA_CONDITION.search(text)
    return found.group(1) if found else None


def _file_in(text: str, data_dir: Path | None) -> Path | None:
    """The first file the text names inside the data folder (a path of ours, not a data value)."""
    if data_dir is None:
        return None
    for uri in _FILE_URI.findall(text):
        path = Path(uri.rstrip(".,;:)"))
        if path.is_relative_to(data_dir) and path.is_file():
            return path
    return None


@contextmanager
def _stage(stage: str, dataset: str, day: dt.date) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise StageFailed(stage_failure_message(stage, dataset, day, exc)) from exc
