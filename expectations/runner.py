"""Run a suite on a Spark DataFrame and report counts, never values.

One ephemeral Great Expectations context serves the whole process: its one
Spark data source, dataframe asset and whole-dataframe batch definition are
made on first use, and each DataFrame to check is handed over as a batch
parameter. Calling `validate_dataframe` any number of times therefore adds
nothing to the context and cannot fail on a name that already exists.

Results are asked for in the BASIC format with no partial unexpected list, so
GX never collects a row value; the summary and the failure message are built
from expectation types, column names, detector names and counts only.
"""

from __future__ import annotations

import os
import threading
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx
from great_expectations.data_context.types.base import ProgressBarsConfig
from pyspark import StorageLevel
from pyspark.sql import DataFrame

RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}

_DATA_SOURCE = "kr_reports_spark"
_ASSET = "dataframe"
_BATCH_DEFINITION = "whole_dataframe"

# Every validation goes through the one batch definition (one batch id), so two
# must not run at once; the lock also guards the context's lazy creation.
_lock = threading.RLock()
_batch_definition: Any = None


class ValidationFailed(Exception):
    """A suite did not pass; `failures` lists what failed, with counts only."""

    def __init__(self, message: str, failures: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.failures = failures


def validate_dataframe(df: DataFrame, suite: gx.ExpectationSuite, *, label: str) -> dict[str, Any]:
    """Validate `df` against `suite`; return a summary or raise ValidationFailed.

    The summary is {"suite", "success", "evaluated", "failed", "failures"}; each
    failure is {"expectation", "column", "detector", "unexpected_count",
    "element_count", "error"} (plus, for table-level checks, the missing and
    unexpected column names). `label` prefixes the error message (the stage
    and dataset, say). The DataFrame is persisted for the validation when it is
    not already, and released afterwards.
    """
    persisted_here = not df.is_cached
    with _lock:
        if persisted_here:
            df.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            batch = _get_batch_definition().get_batch(batch_parameters={"dataframe": df})
            result = batch.validate(suite, result_format=RESULT_FORMAT)
        finally:
            if persisted_here:
                df.unpersist()
    failures = sorted((_failure(r) for r in result.results if not r.success), key=_failure_order)
    summary = {
        "suite": suite.name,
        "success": bool(result.success),
        "evaluated": len(result.results),
        "failed": len(failures),
        "failures": failures,
    }
    if not summary["success"]:
        raise ValidationFailed(_failure_message(label, summary), failures)
    return summary


def _get_batch_definition() -> Any:
    """The process's batch definition, made (with its context) on first use."""
    global _batch_definition
    with _lock:
        if _batch_definition is None:
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(
                globally=False, metric_calculations=False
            )
            context.variables.analytics_enabled = False
            # persist=False: GX would cache every DataFrame and never release it.
            data_source = context.data_sources.add_spark(_DATA_SOURCE, persist=False)
            asset = data_source.add_dataframe_asset(_ASSET)
            _batch_definition = asset.add_batch_definition_whole_dataframe(_BATCH_DEFINITION)
        return _batch_definition


def _failure(result: Any) -> dict[str, Any]:
    """What failed, from an ExpectationValidationResult: names and counts only."""
    config = result.expectation_config
    kwargs = config.kwargs
    details = result.result or {}
    exception_info = result.exception_info or {}
    failure: dict[str, Any] = {
        "expectation": config.type,
        "column": kwargs.get("column"),
        "detector": (config.meta or {}).get("detector"),
        "unexpected_count": details.get("unexpected_count"),
        "element_count": details.get("element_count"),
        # the exception's message is left out: engine errors can quote values
        "error": bool(exception_info.get("raised_exception")),
    }
    if "column_list" in kwargs and isinstance(details.get("observed_value"), list):
        expected = list(kwargs["column_list"])
        observed = [str(c) for c in details["observed_value"]]
        failure["missing_columns"] = [c for c in expected if c not in observed]
        failure["unexpected_columns"] = [c for c in observed if c not in expected]
    if config.type == "expect_column_values_to_be_of_type":
        failure["observed_type"] = details.get("observed_value")
    return failure


def _failure_order(failure: dict[str, Any]) -> tuple[bool, str, str, str]:
    """Table-level checks first, then by column, expectation and detector (GX reorders)."""
    column = failure["column"]
    return (
        column is not None,
        str(column or ""),
        failure["expectation"],
        failure["detector"] or "",
    )


def _failure_message(label: str, summary: dict[str, Any]) -> str:
    parts = [_describe(f) for f in summary["failures"]]
    return (
        f"{label}: suite {summary['suite']} failed {summary['failed']} of "
        f"{summary['evaluated']} expectations: " + "; ".join(parts)
    )


def _describe(failure: dict[str, Any]) -> str:
    text = failure["expectation"]
    if failure["detector"]:
        text += f"[{failure['detector']}]"
    if failure["column"] is not None:
        text += f" on {failure['column']}"
    if failure["error"]:
        return text + " (error)"
    if failure["unexpected_count"] is not None:
        return text + f" ({failure['unexpected_count']} rows)"
    if "missing_columns" in failure:
        missing, unexpected = failure["missing_columns"], failure["unexpected_columns"]
        if not missing and not unexpected:
            return text + " (column order differs)"
        return text + f" (missing: {_names(missing)}; unexpected: {_names(unexpected)})"
    if failure.get("observed_type"):
        return text + f" (observed {failure['observed_type']})"
    return text


def _names(columns: list[str]) -> str:
    return ", ".join(columns) or "none"
