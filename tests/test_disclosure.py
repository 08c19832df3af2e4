"""What reaches a partner is only private or public: the allowlist, and every delivery checked against it.

The session's daily run (tests/conftest.py) delivers every configured report;
each of its deliveries is walked here: manifest fields against
core.disclosure, data columns against the published columns of the
report's plan, and every number its report page shows against its data file
and manifest. Negative controls put an exact input count where the checks
must find it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from disclosure_checks import page_violations, strict_json
from specs import report_spec

from core import disclosure, noise_plan
from core.config import ReportSpec, load_pipeline_config, load_report_specs
from core.disclosure import (
    CONFIG,
    NOISY,
    PROVENANCES,
    RECORD,
    DisclosureError,
    check_data_columns,
    check_manifest,
    manifest_violations,
)
from stages.delivery import DATA_FILES, MANIFEST, REPORT_PAGE

# ---- the allowlist -----------------------------------------------------------------------


def test_every_allowed_field_has_one_of_three_provenances():
    assert set(disclosure.MANIFEST_FIELDS.values()) <= set(PROVENANCES) == {CONFIG, NOISY, RECORD}
    spec_fields = {p for p in disclosure.MANIFEST_FIELDS if p.startswith("spec.")}
    assert spec_fields == {f"spec.{p}" for p in disclosure.model_paths(ReportSpec)}
    assert {disclosure.MANIFEST_FIELDS[p] for p in spec_fields} == {CONFIG}
    assert disclosure.MANIFEST_FIELDS["privacy.metrics[].parts[].noise_sd"] == CONFIG
    assert disclosure.MANIFEST_FIELDS["rows_released"] == NOISY
    assert disclosure.MANIFEST_FIELDS["files.*"] == RECORD


def test_exact_input_counts_have_no_place_in_a_manifest():
    manifest = {
        "report": "r", "rows_released": 12, "cells_by_status": {"released": 10, "suppressed": 2},
        "inputs": {"network_flows": {"rows_in": 5665, "rows_quarantined": 170}},
        "cells_before_suppression": 14,
        "privacy": {"epsilon": 1.0, "metrics": [{"name": "n", "true_total": 811, "parts": []}]},
        "validation": {"suite": "release_r", "success": True, "evaluated": 13, "failed": 0,
                       "failures": [{"unexpected_count": 3, "element_count": 425}]},
    }
    assert manifest_violations(manifest) == [
        "inputs.network_flows.rows_in", "inputs.network_flows.rows_quarantined", "cells_before_suppression",
        "privacy.metrics[].true_total", "validation.failures[].unexpected_count",
        "validation.failures[].element_count",
    ]
    with pytest.raises(DisclosureError, match=r"6 field\(s\).*inputs\.network_flows\.rows_in"):
        check_manifest(manifest)


def test_a_map_of_statuses_takes_statuses_only_and_empty_values_carry_nothing():
    statuses = {"cells_by_status": {"released": 3, "sub0042": 1}}
    assert manifest_violations(statuses) == ["cells_by_status.sub0042"]
    empty = {"cells_by_status": {}, "privacy": {"partition_selection": None, "metrics": []},
             "spec": {"aggregation": {"group_by": [{"values": None, "range": [0, 23]}]}}}
    assert manifest_violations(empty) == []
    assert manifest_violations({"privacy": {"partition_selection": 87}}) == ["privacy.partition_selection"]
    assert manifest_violations({"files": {"data.csv": "ab", "anything.bin": "cd"}}) == []


def _spec(**extra) -> ReportSpec:
    return report_spec({
        "name": "traffic", "source": "network_flows", "partner": "p", "purpose": "aggregate_reports",
        "policy_clause": "c", "group_by": [{"column": "region", "values": "regions"}],
        "contribution": {"max_groups_per_subscriber": 1, "max_rows_per_group": 1},
        "metrics": [{"name": "n", "kind": "count", "epsilon": 1.0, "share_across": "region"}], **extra})


def test_a_data_file_carries_exactly_the_published_columns():
    aggregation = _spec().aggregation
    published = noise_plan.published_columns(noise_plan.plan_aggregation(aggregation, ("North", "South")))
    assert disclosure.published_columns(aggregation) == published
    check_data_columns(published, aggregation)
    with pytest.raises(DisclosureError, match="not published: rows_in"):
        check_data_columns([*published, "rows_in"], aggregation)
    with pytest.raises(DisclosureError, match="missing: n_ci95_high"):
        check_data_columns([c for c in published if c != "n_ci95_high"], aggregation)
    with pytest.raises(DisclosureError, match="another order"):
        check_data_columns(list(reversed(published)), aggregation)


def test_the_strict_parser_refuses_what_python_json_lets_through():
    for constant in ("NaN", "Infinity", "-Infinity"):
        assert json.loads(f'{{"epsilon": {constant}}}')  # Python's json reads it ...
        with pytest.raises(ValueError, match="not JSON"):  # ... a strict reader does not
            strict_json(f'{{"epsilon": {constant}}}')


# ---- every delivery of the daily run -------------------------------------------------------


@pytest.fixture(scope="module")
def deliveries(daily_run, config_dir) -> list[dict]:
    """Each delivery the daily run wrote, with its manifest, data, page and the report's plan."""
    specs = {s.name: s for s in load_report_specs(config_dir)}
    regions = load_pipeline_config(config_dir).regions
    found = []
    for manifest_path in sorted((daily_run["out"] / "deliveries").glob(f"*/*/*/{MANIFEST}")):
        folder = manifest_path.parent
        if any(part.startswith(".") for part in folder.parts[-3:]):
            continue
        manifest = strict_json(manifest_path.read_text())
        spec = specs[manifest["report"]]
        found.append({
            "folder": folder, "manifest": manifest, "spec": spec,
            "plan": noise_plan.plan_aggregation(spec.aggregation, regions),
            "parquet": pd.read_parquet(folder / "data.parquet"),
            "csv": pd.read_csv(folder / "data.csv"),
            "page": (folder / REPORT_PAGE).read_text(),
        })
    assert len(found) == len(daily_run["summary"]["reports"]) == len(specs)
    return found


def test_every_manifest_carries_only_allowed_fields(deliveries):
    for delivery in deliveries:
        assert manifest_violations(delivery["manifest"]) == [], delivery["folder"]
        assert delivery["manifest"]["spec"] == delivery["spec"].model_dump(mode="json")  # the public spec


def test_every_data_file_carries_exactly_the_published_columns(deliveries):
    for delivery in deliveries:
        published = noise_plan.published_columns(delivery["plan"])
        assert list(delivery["parquet"].columns) == published, delivery["folder"]
        assert list(delivery["csv"].columns) == published, delivery["folder"]
        assert set(delivery["manifest"]["files"]) == {*DATA_FILES, REPORT_PAGE}


def _page_violations(delivery: dict, html: str | None = None) -> list[str]:
    keys = list(delivery["plan"].group_columns)
    return page_violations(html or delivery["page"], delivery["parquet"], delivery["manifest"], keys)


def test_every_number_a_report_page_shows_is_from_its_data_or_manifest(deliveries):
    drawn = 0
    for delivery in deliveries:
        assert _page_violations(delivery) == [], delivery["folder"]
        drawn += delivery["page"].count("<svg viewBox")
    assert drawn > 0  # the charts' numbers were checked too, not only the notes


# ---- negative controls: an exact count put where the checks must find it ------------------


def _exact_counts(daily_run) -> list[int]:
    counts = [s["rows_in"] for s in daily_run["summary"]["sources"]]
    counts += [s["rows_quarantined"] for s in daily_run["summary"]["sources"] if s["rows_quarantined"]]
    assert counts
    return counts


def test_a_manifest_carrying_input_counts_fails_the_check(deliveries, daily_run):
    manifest = deliveries[0]["manifest"]
    sources = daily_run["summary"]["sources"]
    leaked = {**manifest, "inputs": {s["source"]: {"rows_in": s["rows_in"]} for s in sources}}
    assert manifest_violations(leaked) == [f"inputs.{s['source']}.rows_in" for s in sources]


def test_a_data_file_with_an_extra_column_fails_the_check(deliveries):
    delivery = deliveries[0]
    leaked = delivery["csv"].assign(rows_in=1)
    with pytest.raises(DisclosureError, match="not published: rows_in"):
        check_data_columns(leaked.columns, delivery["spec"].aggregation)


def test_a_report_page_showing_an_exact_count_fails_the_check(deliveries, daily_run):
    counts = _exact_counts(daily_run)
    for delivery in deliveries:
        shown = " ".join(f"{n:,}" for n in counts)
        html = delivery["page"].replace("</body>", f"<p>Rows read and quarantined: {shown}</p></body>")
        found = _page_violations(delivery, html)
        # every finding is an injected count; a count equal by chance to a noisy value cannot be told apart
        assert found and all("Rows read and quarantined" in f for f in found), delivery["folder"]
        # a round count (300 subscribers) can be a legitimate tick of a wide scale: inject one that is not
        odd = next(n for n in counts if n % 10)
        tick = html.replace('text-anchor="end">0</text>', f'text-anchor="end">{odd:,}</text>', 1)
        if tick != html:
            assert any(f.startswith("chart of") for f in _page_violations(delivery, tick)), delivery["folder"]


# ---- no NaN or Infinity in any JSON file ---------------------------------------------------


JSON_NAMES = ("*.json", "*.json.sig", ".complete")


def test_every_json_file_the_daily_run_wrote_is_strict_json(daily_run):
    checked = []
    for root in (daily_run["data"], daily_run["out"]):
        for pattern in JSON_NAMES:
            for path in sorted(root.rglob(pattern)):
                document = strict_json(path.read_text())  # raises on NaN, Infinity, -Infinity
                _assert_finite(document, path)
                checked.append(path)
    names = {p.name for p in checked}
    assert {MANIFEST, "release.json", "store.json", "manifest.json.sig", ".complete"} <= names


def _assert_finite(document, path: Path) -> None:
    for key_path, value in disclosure.leaf_paths(document):
        if isinstance(value, float):
            assert math.isfinite(value), f"{path}: {'.'.join(key_path)}"
