"""Report specs: an aggregation (what is computed) apart from its delivery (where it goes)."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from core.config import Aggregation, ConfigError, ReportSpec, load_report_specs

BASE = {
    "name": "traffic", "source": "network_flows",
    "group_by": [{"column": "region", "values": "regions"}],
    "contribution": {"max_groups_per_subscriber": 1, "max_rows_per_group": 1},
    "metrics": [{"name": "subs", "kind": "count_distinct_subscribers", "epsilon": 1.0},
                {"name": "total", "kind": "sum", "column": "bytes", "lower": 0, "upper": 10, "epsilon": 1.0}],
}


def _with(**changes) -> dict:
    return {**BASE, **changes}


def test_the_catalog_reads_as_named_aggregations_with_deliveries(config_dir):
    for spec in load_report_specs(config_dir):
        assert spec.aggregation.name == spec.name
        assert spec.delivery.partner and spec.delivery.policy_clause
        assert "partner" not in Aggregation.model_fields  # what is computed knows no partner


def test_an_aggregation_needs_no_partner():
    assert Aggregation.model_validate(BASE).name == "traffic"


@pytest.mark.parametrize("collision", [
    {"group_by": [{"column": "subscriber", "private": True}],
     "partition_selection": {"epsilon": 1, "delta": 1e-6}},
    {"metrics": [{"name": "subscriber", "kind": "count", "epsilon": 1.0}]},
    {"metrics": [{"name": "n", "kind": "sum", "column": "subscriber", "lower": 0, "upper": 1,
                  "epsilon": 1.0}]},
    {"metrics": [{"name": "region", "kind": "count", "epsilon": 1.0}]},
    {"metrics": [{"name": "h", "kind": "histogram", "column": "region", "bins": [0, 1, 2], "epsilon": 1.0}]},
])
def test_the_privacy_unit_and_the_keys_are_reserved(collision):
    """A metric named like the unit would replace the unit's column before bounding."""
    with pytest.raises(ValidationError, match=r"privacy unit|unique|reads group key"):
        Aggregation.model_validate(_with(**collision))


def test_the_fingerprint_follows_every_term_of_the_aggregation():
    base = Aggregation.model_validate(BASE)
    assert base.fingerprint() == Aggregation.model_validate(BASE).fingerprint()
    tighter = _with(contribution={"max_groups_per_subscriber": 1, "max_rows_per_group": 2})
    assert Aggregation.model_validate(tighter).fingerprint() != base.fingerprint()


def test_a_report_names_its_aggregation_once(tmp_path):
    spec = {"name": "traffic", "delivery": {"partner": "p", "purpose": "aggregate_reports",
                                            "policy_clause": "c"},
            "aggregation": {k: v for k, v in BASE.items() if k != "name"}}
    assert ReportSpec.model_validate(spec).aggregation.name == "traffic"
    spec["aggregation"]["name"] = "other"
    with pytest.raises(ValidationError, match="leave it out"):
        ReportSpec.model_validate(spec)


def test_a_flat_report_file_is_refused_naming_the_file(tmp_path):
    (tmp_path / "reports").mkdir()
    flat = {**BASE, "partner": "p", "purpose": "aggregate_reports", "policy_clause": "c"}
    (tmp_path / "reports" / "traffic.yaml").write_text(yaml.safe_dump(flat))
    with pytest.raises(ConfigError, match=r"traffic\.yaml: .*delivery: Field required"):
        load_report_specs(tmp_path)


def test_the_plausible_time_range_is_configured_and_checked(config_dir, tmp_path):
    import datetime as dt

    from core.config import load_pipeline_config

    shipped = load_pipeline_config(config_dir).plausible_time
    window = shipped.time_range(dt.date(2026, 11, 1))
    assert window.start == dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    assert window.end == dt.datetime(2026, 11, 3, tzinfo=dt.UTC)  # the end of tomorrow
    pipeline = yaml.safe_load((config_dir / "pipeline.yaml").read_text())
    for bad, named in (({"earliest": "soon"}, "plausible_time.earliest"),
                       ({"latest_days_ahead": -1}, "plausible_time.latest_days_ahead"),
                       ({"latest": "2030-01-01"}, "plausible_time.latest")):
        (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({**pipeline, "plausible_time": bad}))
        with pytest.raises(ConfigError, match=named):
            load_pipeline_config(tmp_path)
    with pytest.raises(ConfigError, match="after today"):
        shipped.model_copy(update={"earliest": dt.date(2030, 1, 1)}).time_range(dt.date(2026, 11, 1))
