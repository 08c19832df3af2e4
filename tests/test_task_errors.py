"""What a failed task leaves in Prefect's API: no data value, and no retry of a file that cannot be parsed.

Prefect stores a failed task run's exception text and traceback (its state message
and its logs). A foreign error may quote the data it choked on; the task raises the
project's TaskFailed instead, naming the error's type, and the original goes only to
the local log at debug level.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest

SENTINEL = "sentinel.subscriber@example.com"
DAY = dt.date(2026, 11, 1)


def _in_a_flow(task_call):
    """Run a task call inside a flow run (Prefect ships a task's logs only within one); its state."""
    from prefect import flow

    @flow(name="one-task")
    def one_task():
        return task_call()

    return one_task(return_state=True).result(raise_on_failure=False)


def _recorded(task_run_id) -> tuple[list[str], list[str]]:
    """What Prefect's API holds about a task run: its states' messages, and its logs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTaskRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        states = client.read_task_run_states(task_run_id)
        logs = client.read_logs(LogFilter(task_run_id=LogFilterTaskRunId(any_=[task_run_id])))
    return [s.message or "" for s in states], [log.message for log in logs]


class _Kept(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def local_log():
    """What the flows' local logger writes (debug included)."""
    logger, kept = logging.getLogger("flows.task_errors"), _Kept()
    level = logger.level
    logger.addHandler(kept)
    logger.setLevel(logging.DEBUG)
    yield kept.records
    logger.removeHandler(kept)
    logger.setLevel(level)


def _quoting_data(error_type, message: str = f"no subscriber {SENTINEL}"):
    def stage(catalog, source, day):  # a library choking on a value it read
        try:
            int(SENTINEL)
        except ValueError as exc:
            raise error_type(message) from exc
    return stage


def test_a_foreign_error_quoting_data_leaves_no_value_in_prefect(tmp_path, prefect_harness, monkeypatch,
                                                                local_log):
    from flows import daily
    from flows.task_errors import TaskFailed
    from stages.catalog import Catalog

    monkeypatch.setattr(daily.stages, "validate_raw", _quoting_data(KeyError))
    catalog = Catalog(tmp_path / "data", tmp_path / "out")
    state = _in_a_flow(lambda: daily.validate_raw_task(catalog, "subscribers", DAY, return_state=True))

    error = state.result(raise_on_failure=False)
    assert isinstance(error, TaskFailed)
    assert str(error) == "KeyError (its text may quote data: details in the local debug log)"
    assert error.__cause__ is None and error.__context__ is None
    messages, logs = _recorded(state.state_details.task_run_id)
    assert any("TaskFailed" in line for line in messages) and any("TaskFailed" in line for line in logs)
    assert not [line for line in messages + logs if "sentinel" in line]  # recorded, without the value
    (kept,) = [r for r in local_log if r.exc_info]
    assert kept.levelno == logging.DEBUG and SENTINEL in logging.Formatter().format(kept)


def test_a_project_error_keeps_its_message_but_not_a_foreign_cause(tmp_path, prefect_harness, monkeypatch):
    from flows import daily
    from stages.catalog import Catalog, MissingInput

    missing = _quoting_data(MissingInput, "raw subscribers: dataset not found")
    monkeypatch.setattr(daily.stages, "validate_raw", missing)
    catalog = Catalog(tmp_path, tmp_path)
    state = _in_a_flow(lambda: daily.validate_raw_task(catalog, "subscribers", DAY, return_state=True))

    error = state.result(raise_on_failure=False)
    assert isinstance(error, MissingInput) and str(error) == "raw subscribers: dataset not found"
    messages, logs = _recorded(state.state_details.task_run_id)
    assert any("MissingInput" in line for line in logs)
    assert not [line for line in messages + logs if "ValueError" in line or "int()" in line]


def test_a_corrupt_landing_file_is_not_retried_and_the_last_line_names_it(tmp_path, spark, prefect_harness,
                                                                         config_dir, capsys):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    from kr_reports.cli import main

    data = tmp_path / "data"
    landing = data / "landing"
    corrupt = landing / "subscribers" / "part-00000.snappy.parquet"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"PAR1" + b"\x00 truncated in transfer " * 40)
    (landing / ".complete").write_text(json.dumps({"dates": [DAY.isoformat()], "format": "parquet"}))

    code = main(["run", "--demo", "--data-dir", str(data), "--out-dir", str(tmp_path / "out"),
                 "--config-dir", str(config_dir)])

    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"kr-reports run: error: stage 'ingest' failed for subscribers on {DAY}: "
                           f"{corrupt}: cannot be parsed, corrupt or not in the landing format "
                           "(Py4JJavaError FAILED_READ_FILE."), last
    with get_client(sync_client=True) as client:
        (flow_run,) = client.read_flow_runs(limit=1, sort=FlowRunSort.START_TIME_DESC)
        this_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        (ingest,) = client.read_task_runs(flow_run_filter=this_run,
                                          task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="ingest")))
    assert ingest.state.is_failed()
    assert ingest.run_count == 1, "a file Spark cannot parse fails alike next time: no retry"


@pytest.mark.parametrize(("condition", "retryable"), [
    ("FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER", False),
    ("FAILED_READ_FILE.NO_HINT", False),
    ("FAILED_READ_FILE.FILE_NOT_EXIST", True),
    ("TASK_WRITE_FAILED", True),
])
def test_only_a_file_that_cannot_be_parsed_is_not_worth_retrying(tmp_path, condition, retryable):
    from flows.task_errors import foreign_error

    landing = tmp_path / "landing" / "part-0.parquet"
    landing.parent.mkdir()
    landing.write_bytes(b"x")

    class Py4JJavaError(Exception):
        pass

    java = Py4JJavaError(f"An error occurred while calling o55.parquet.\n: org.apache.spark.SparkException: "
                         f"[{condition}] Encountered error while reading file file:{landing}. {SENTINEL}")
    error = foreign_error(java, tmp_path)
    assert error.retryable is retryable
    assert str(landing) in str(error) and condition in str(error) and SENTINEL not in str(error)
    assert str(landing) not in str(foreign_error(java, tmp_path / "elsewhere"))  # data folder's files only
