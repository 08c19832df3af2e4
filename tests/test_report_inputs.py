"""Report inputs: the hour, profile attributes and derived columns a report groups by."""

import datetime as dt

import pytest

from core.config import load_pipeline_config, load_report_specs
from core.policy import load_policy
from core.report_columns import DOMAIN_CATEGORIES
from core.schemas import SOURCES
from transforms.report_inputs import references_read, report_input


@pytest.fixture(scope="module")
def profiles(spark):
    return spark.createDataFrame(
        [("s1", "Seoul", "30-39", "5g_slim", "music_streaming;cloud_storage"),
         ("s2", "Busan", "20-29", "prepaid", None)],
        "subscriber string, region string, age_band string, plan string, addons string",
    )


def test_cell_area_hour_and_profile_attributes_of_calls(spark, profiles):
    calls = spark.createDataFrame(
        [("s1", "C05123", dt.datetime(2026, 11, 2, 7)), ("s2", None, dt.datetime(2026, 11, 2, 23)),
         ("s3", "C17399", dt.datetime(2026, 11, 2, 0))],
        "subscriber string, cell_id string, start_hour timestamp",
    )
    frames = {"call_records": calls, "subscribers": profiles}
    rows = report_input("call_records", frames, ["cell_area", "hour"]).orderBy("subscriber").collect()
    assert [(r.cell_area, r.hour, r.region) for r in rows] == [
        ("C051", 7, "Seoul"), (None, 23, "Busan"), ("C173", 0, None)]


def test_add_on_indicators_of_subscribers(profiles):
    frames = {"subscribers": profiles}
    df = report_input("subscribers", frames, ["addon_music_streaming", "addon_roaming_pass", "region"])
    rows = df.orderBy("subscriber").collect()
    assert [(r.addon_music_streaming, r.addon_roaming_pass) for r in rows] == [(1, 0), (0, 0)]
    assert "hour" not in df.columns


def test_category_of_visited_domains_from_the_reference_table(spark, profiles):
    visits = spark.createDataFrame(
        [("s1", "naver.com", dt.datetime(2026, 11, 2, 9)),
         ("s2", "unknown-shop.kr", dt.datetime(2026, 11, 2, 9))],
        "subscriber string, domain string, visit_hour timestamp",
    )
    categories = spark.createDataFrame([("naver.com", "search")], "domain string, category string")
    assert references_read(["category"]) == (DOMAIN_CATEGORIES,)
    frames = {"web_visits": visits, "subscribers": profiles, DOMAIN_CATEGORIES: categories}
    rows = report_input("web_visits", frames, ["category"]).orderBy("subscriber").collect()
    assert [r.category for r in rows] == ["search", "uncategorized"]


def test_the_catalog_covers_every_source_and_passes_policy_and_partners(config_dir):
    from core.config import check_report_allowed

    specs = load_report_specs(config_dir)
    pipeline, policy = load_pipeline_config(config_dir), load_policy(config_dir)
    assert len(specs) >= 5
    assert {s.aggregation.source for s in specs} == set(SOURCES)
    for report in specs:
        check_report_allowed(report, pipeline)
        spec, delivery = report.aggregation, report.delivery
        policy.check_report(spec, SOURCES[spec.source], SOURCES["subscribers"])
        allowed = pipeline.partner(delivery.partner).allowed_purposes
        assert delivery.policy_clause and delivery.purpose in allowed
        selection = spec.partition_selection.delta if spec.partition_selection else 0
        assert pipeline.privacy_budget.delta >= spec.delta + selection
    assert "domain" in {k.column for s in specs for k in s.aggregation.group_by if k.private}
