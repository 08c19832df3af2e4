"""Run a suite on a Spark DataFrame and report counts, never values.

One ephemeral Great Expectations context serves the whole process: its one
Spark data source, dataframe asset and whole-dataframe batch definition are
made on first use, and each DataFrame to check is handed over as a batch
parameter. Calling `validate_dataframe` any number of times therefore adds
nothing to the context and cannot fail on a name that already exists.

Results are asked for in the BASIC format with no partial unexpected list, so
GX never collects a row value; the summary and the failure message are built
from expectation types, column names, detector names and counts only.

Data Docs: inside `recording_validations()` every validation's result is kept
as JSON (with exception messages and any observed value that could be a row
value removed), and `build_data_docs` renders the kept results as a static
site. The site is built in a context of its own, so a suite name validated
many times (one `release` suite per report) never collides with a stored one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from pyspark import StorageLevel
from pyspark.sql import DataFrame

from core.errors import KrReportsError

RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}

_DATA_SOURCE = "kr_reports_spark"
_ASSET = "dataframe"
_BATCH_DEFINITION = "whole_dataframe"

# Every validation goes through the one batch definition (one batch id), so two
# must not run at once; the lock also guards the context's lazy creation.
_lock = threading.RLock()
_batch_definition: Any = None
# Open `recording_validations()` blocks; each receives every validation made while it is open.
_recorders: list[list[dict[str, Any]]] = []

_DOCS_SITE = "run"
# Result keys that can hold row values; BASIC with a count of 0 leaves them empty, and
# the docs drop them anyway. An observed value is kept only where it is structural.
_ROW_VALUE_KEYS = (
    "partial_unexpected_list", "partial_unexpected_index_list", "partial_unexpected_counts",
    "unexpected_list", "unexpected_index_list", "unexpected_index_query", "unexpected_rows",
)
_STRUCTURAL_OBSERVATIONS = (
    "expect_table_columns_to_match_ordered_list",
    "expect_table_columns_to_match_set",
    "expect_column_values_to_be_of_type",
    "expect_table_row_count_to_be_between",
)
_WITHHELD = "withheld: engine errors can quote row values"


class ValidationFailed(KrReportsError):
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
        _record(label, suite, result)
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


@contextmanager
def recording_validations() -> Iterator[list[dict[str, Any]]]:
    """Keep every validation this process makes inside the block, for `build_data_docs`.

    Yields the list that fills up: one {"label", "validated_at", "suite",
    "result"} per validation, failed ones included, as JSON: the suite as
    built, and GX's validation result made docs-safe.
    """
    recorded: list[dict[str, Any]] = []
    with _lock:
        _recorders.append(recorded)
    try:
        yield recorded
    finally:
        with _lock:
            _recorders[:] = [r for r in _recorders if r is not recorded]


def _record(label: str, suite: gx.ExpectationSuite, result: Any) -> None:
    if not _recorders:
        return
    record = {
        "label": label,
        "validated_at": dt.datetime.now(dt.UTC).isoformat(),
        "suite": suite.to_json_dict(),
        "result": docs_safe(result.to_json_dict()),
    }
    for recorded in _recorders:
        recorded.append(record)


def docs_safe(result: dict[str, Any]) -> dict[str, Any]:
    """A validation result's JSON without anything a row could have put in it."""
    return {**result, "results": [_safe_expectation_result(r) for r in result["results"]]}


def _safe_expectation_result(result: dict[str, Any]) -> dict[str, Any]:
    details = {k: v for k, v in (result.get("result") or {}).items() if k not in _ROW_VALUE_KEYS}
    if result["expectation_config"]["type"] not in _STRUCTURAL_OBSERVATIONS:
        details.pop("observed_value", None)
    exception = dict(result.get("exception_info") or {})
    if exception.get("raised_exception"):
        exception.update(exception_message=_WITHHELD, exception_traceback=_WITHHELD)
    return {**result, "result": details, "exception_info": exception}


def build_data_docs(recorded: list[dict[str, Any]], site_dir: Path, run_name: str) -> Path:
    """Render recorded validations as a static Data Docs site in `site_dir`; return its index.html.

    Each validation is listed under its suite, `run_name`, and its label (the
    stage and dataset) as data asset and batch. Where one suite name stands
    for different suites in a run (the release suite of each report), each is
    shown under its name qualified by the label.
    """
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults()),
    )
    context.add_data_docs_site(_DOCS_SITE, {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "site_section_builders": {"profiling": "None"},
    })
    store, suites_added = context.validation_results_store, set()
    for record, suite_name in zip(recorded, _docs_suite_names(recorded), strict=True):
        if suite_name not in suites_added:
            context.suites.add(gx.ExpectationSuite(**{**record["suite"], "name": suite_name}))
            suites_added.add(suite_name)
        key = _result_key(record, suite_name, run_name)
        store.set(key, store.deserialize(_with_run_meta(record, suite_name, key.run_id)))
    context.build_data_docs(site_names=[_DOCS_SITE])
    index = site_dir / "index.html"
    if not index.is_file():
        raise RuntimeError(f"{site_dir}: Great Expectations wrote no Data Docs index")
    return index


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-")


def _docs_suite_names(recorded: list[dict[str, Any]]) -> list[str]:
    """Each validation's suite name in the docs: its own, unless that name stands for several suites."""
    variants: dict[str, set[str]] = {}
    for record in recorded:
        suite = record["suite"]
        variants.setdefault(suite["name"], set()).add(json.dumps(suite["expectations"], sort_keys=True))
    names = []
    for record in recorded:
        name, batch = record["suite"]["name"], _slug(record["label"])
        if len(variants[name]) == 1:
            names.append(name)
        else:  # "release" + "release-network_traffic-2026-11-01" -> the latter, not a repetition
            names.append(batch if batch.startswith(f"{name}-") else f"{name}-{batch}")
    return names


def _with_run_meta(record: dict[str, Any], suite_name: str, run_id: RunIdentifier) -> dict[str, Any]:
    """The result as its page shows it: under its docs suite name, with its run and its label."""
    result = record["result"]
    meta = dict(result.get("meta") or {})
    meta["run_id"] = run_id.to_json_dict()
    meta["validation_time"] = record["validated_at"]
    meta["batch_spec"] = {**(meta.get("batch_spec") or {}), "data_asset_name": record["label"]}
    return {**result, "suite_name": suite_name, "meta": meta}


def _result_key(record: dict[str, Any], suite_name: str, run_name: str) -> ValidationResultIdentifier:
    return ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
        run_id=RunIdentifier(run_name=run_name, run_time=dt.datetime.fromisoformat(record["validated_at"])),
        batch_identifier=_slug(record["label"]),
    )
