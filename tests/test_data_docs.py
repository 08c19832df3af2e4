"""Great Expectations Data Docs: built from each run's validations, with counts and never row values."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.schemas import SOURCES
from expectations.runner import (
    ValidationFailed,
    build_data_docs,
    docs_safe,
    recording_validations,
    validate_dataframe,
)
from expectations.suites import build_release_suite

PLANTED_EMAIL = "planted.person@example.org"


def _html(site: Path) -> str:
    return "\n".join(page.read_text() for page in site.rglob("*.html"))


def test_a_failed_validation_is_in_the_docs_with_its_count_but_not_its_value(spark, tmp_path):
    suite = build_release_suite(["region", "visits", "status"], ["visits"])
    rows = [("Seoul", 12, "released"), (PLANTED_EMAIL, 9, "released")]
    leaking = spark.createDataFrame(rows, "region string, visits long, status string")
    with recording_validations() as recorded, pytest.raises(ValidationFailed):
        validate_dataframe(leaking, suite, label="release planted 2026-11-01")
    validate_dataframe(leaking.limit(1), suite, label="after the block")  # not recorded

    assert [r["label"] for r in recorded] == ["release planted 2026-11-01"]
    index = build_data_docs(recorded, tmp_path / "site", "test-run")
    assert index == tmp_path / "site" / "index.html"
    pages = list((tmp_path / "site" / "validations").rglob("*.html"))
    assert len(pages) == 1 and "release-planted-2026-11-01" in pages[0].name
    page = pages[0].read_text()
    assert "Failed" in page and "1 unexpected values found" in page  # the email detector's count
    assert PLANTED_EMAIL not in _html(tmp_path / "site")


def test_docs_keep_no_row_values_exception_messages_or_non_structural_observations():
    result = {
        "suite_name": "release",
        "results": [
            {"expectation_config": {"type": "expect_column_max_to_be_between", "kwargs": {"column": "x"}},
             "result": {"observed_value": PLANTED_EMAIL, "partial_unexpected_list": [PLANTED_EMAIL]},
             "exception_info": {"raised_exception": True, "exception_message": f"bad {PLANTED_EMAIL}",
                                "exception_traceback": f"... {PLANTED_EMAIL}"}},
            {"expectation_config": {"type": "expect_table_columns_to_match_set", "kwargs": {}},
             "result": {"observed_value": ["region", "visits"]},
             "exception_info": {"raised_exception": False}},
        ],
    }
    safe = docs_safe(result)
    assert PLANTED_EMAIL not in repr(safe)
    assert safe["results"][0]["exception_info"]["raised_exception"] is True
    assert safe["results"][1]["result"]["observed_value"] == ["region", "visits"]  # column names stay


def test_a_run_builds_data_docs_listing_every_suite_it_validated(daily_run, config_dir):
    from core.config import load_report_specs

    summary = daily_run["summary"]
    index = Path(summary["data_docs"])
    assert index.name == "index.html" and index.is_file()
    assert index.parent == daily_run["data"] / "data_docs" / summary["day"] / summary["flow_run_id"]
    listed = index.read_text()
    expected = [f"raw_{s}" for s in SOURCES] + [f"protected_{s}" for s in SOURCES] + ["analyst_classes"]
    expected += [f"release-{spec.name}-{summary['day']}" for spec in load_report_specs(config_dir)]
    assert [name for name in expected if name not in listed] == []
    validation_pages = list((index.parent / "validations").rglob("*.html"))
    assert len(validation_pages) == len(expected)  # one page per validation of the run


# Direct identifiers of the generated landing data, per source.
IDENTIFIER_COLUMNS = {
    "subscribers": ["account_id", "name", "email", "msisdn"],
    "devices": ["imei", "imsi", "mac"],
    "call_records": ["caller_msisdn", "callee_msisdn"],
    "network_flows": ["src_ip", "dst_ip"],
    "web_visits": ["client_ip"],
}


def test_the_run_data_docs_hold_no_input_identifier(daily_run, spark):
    identifiers: set[str] = set()
    for source, columns in IDENTIFIER_COLUMNS.items():
        landing = spark.read.parquet(str(daily_run["data"] / "landing" / source))
        for row in landing.select(*columns).distinct().collect():
            identifiers.update(v for v in row if v and len(v) >= 6)
    assert len(identifiers) > 1000
    html = _html(Path(daily_run["summary"]["data_docs"]).parent)
    assert [v for v in identifiers if v in html] == []


def test_the_run_artifact_names_the_data_docs(daily_run, prefect_harness):
    summary = daily_run["summary"]
    artifact = _run_artifact(summary["flow_run_id"], "daily-partner-reports")
    assert f"Data Docs of this run's validations: {summary['data_docs']}" in artifact.data


def _run_artifact(flow_run_id: str, key: str):
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]),
            key=ArtifactFilterKey(any_=[key]),
        ))
    return artifact

