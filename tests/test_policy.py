import pytest
import yaml
from specs import report_spec

from core.config import Aggregation, ConfigError
from core.policy import PolicyRefusal, UnclassifiedColumn, load_policy
from core.schemas import NETWORK_FLOWS, SOURCES, SUBSCRIBERS, FieldSpec, SourceSpec

FORBIDDEN = {"payment_information", "account_credentials", "images", "voice_recordings",
             "biometric_prints"}


@pytest.fixture(scope="module")
def policy(config_dir):
    return load_policy(config_dir)


def test_every_column_of_every_source_is_classified(policy):
    for source in SOURCES.values():
        assert [r.column for r in policy.resolve(source)] == source.column_names


def test_the_policy_names_the_categories_of_the_privacy_policy(policy):
    named = {"contact_information", "images", "voice_recordings", "biometric_prints",
             "reason_for_contact", "payment_information", "call_records", "websites_visited",
             "network_traffic_data", "product_and_device_identifiers", "service_options",
             "usage_information", "account_credentials", "device_settings"}
    assert named <= set(policy.categories)
    assert {n for n, c in policy.categories.items() if c.forbidden} == FORBIDDEN


def test_forbidden_and_contact_columns_are_dropped(policy):
    rules = {r.column: r for r in policy.resolve(SUBSCRIBERS)}
    for column in ("card_number", "password_hash", "name", "email", "msisdn"):
        assert rules[column].treatment == "drop"
    assert rules["account_id"].treatment == "pseudonymize"
    assert rules["birth_date"].generalizer == "age_band"


def test_an_unclassified_column_stops_with_its_name(policy):
    extended = SourceSpec(
        name="network_flows",
        fields=(*NETWORK_FLOWS.fields, FieldSpec("tcp_flags", "string")),
        event_time="start_time",
    )
    with pytest.raises(UnclassifiedColumn, match="tcp_flags of source 'network_flows'"):
        policy.resolve(extended)


def _report(column: str) -> Aggregation:
    return report_spec({
        "name": "card_spend", "source": "subscribers", "partner": "adreach",
        "purpose": "advertising_campaign_delivery", "policy_clause": "sharing",
        "group_by": [{"column": "region", "values": "regions"}],
        "contribution": {"max_groups_per_subscriber": 1, "max_rows_per_group": 1},
        "metrics": [{"name": "total", "kind": "sum", "column": column, "lower": 0, "upper": 9,
                     "epsilon": 1.0}],
    }).aggregation


def test_a_report_asking_for_payment_data_is_refused_with_the_clause(policy):
    with pytest.raises(PolicyRefusal, match="never passes the protect stage: Payment information"):
        policy.check_report(_report("card_number"), SUBSCRIBERS)
    with pytest.raises(PolicyRefusal, match="drops at the protect stage"):
        policy.check_report(_report("email"), SUBSCRIBERS)
    policy.check_report(_report("monthly_charges"), SUBSCRIBERS)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["categories"]["payment_information"].update(treatment="keep"),
         "forbidden category 'payment_information' must have treatment drop"),
        (lambda p: p["sources"]["subscribers"]["email"].update(category="gossip"),
         "unknown category 'gossip'"),
        (lambda p: p["sources"]["network_flows"]["src_ip"].pop("generalizer"),
         "name a generalizer"),
    ],
)
def test_inconsistent_policy_files_are_rejected(config_dir, tmp_path, edit, message):
    data = yaml.safe_load((config_dir / "policy.yaml").read_text())
    edit(data)
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_policy(tmp_path)


def test_group_keys_are_checked_too_and_profile_attributes_are_allowed(policy):
    from core.schemas import NETWORK_FLOWS

    spec = report_spec({
        "name": "by_email", "source": "network_flows", "partner": "metro-planning",
        "purpose": "aggregate_reports", "policy_clause": "sharing",
        "group_by": [{"column": "email", "private": True}],
        "partition_selection": {"epsilon": 1, "delta": 1e-6},
        "contribution": {"max_groups_per_subscriber": 1, "max_rows_per_group": 1},
        "metrics": [{"name": "n", "kind": "count", "epsilon": 1.0}],
    })
    with pytest.raises(PolicyRefusal, match=r"'email' .*drops at the protect stage"):
        policy.check_report(spec.aggregation, NETWORK_FLOWS, SUBSCRIBERS)
    by_region = spec.aggregation.model_copy(update={"group_by": (
        spec.aggregation.group_by[0].model_copy(update={"column": "age_band"}),)})
    policy.check_report(by_region, NETWORK_FLOWS, SUBSCRIBERS)  # a generalized profile attribute
    with pytest.raises(ConfigError, match="unknown column 'age_band'"):
        policy.check_report(by_region, NETWORK_FLOWS)


def _grouped_by(column: str, source: str) -> Aggregation:
    return report_spec({
        "name": f"by_{column}", "source": source, "partner": "metro-planning",
        "purpose": "aggregate_reports", "policy_clause": "sharing",
        "group_by": [{"column": column, "private": True}],
        "partition_selection": {"epsilon": 1, "delta": 1e-6},
        "contribution": {"max_groups_per_subscriber": 1, "max_rows_per_group": 1},
        "metrics": [{"name": "n", "kind": "count", "epsilon": 1.0}],
    }).aggregation


@pytest.mark.parametrize(
    ("column", "source", "origin"),
    [("category", "web_visits", "domain"), ("cell_area", "call_records", "cell_id"),
     ("hour", "call_records", "start_time")],
)
def test_a_derived_column_is_judged_as_the_column_it_comes_from(config_dir, tmp_path, column, source, origin):
    spec = _grouped_by(column, source)
    load_policy(config_dir).check_report(spec, SOURCES[source], SUBSCRIBERS)
    data = yaml.safe_load((config_dir / "policy.yaml").read_text())
    rule = data["sources"][source][origin]
    rule.pop("generalizer", None)
    rule["category"] = "contact_information"  # now dropped at the protect stage
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyRefusal, match=f"'{column}' .*drops at the protect stage"):
        load_policy(tmp_path).check_report(spec, SOURCES[source], SUBSCRIBERS)


def test_a_derived_column_from_a_source_without_its_origin_is_unknown(policy):
    with pytest.raises(ConfigError, match="unknown column 'cell_area'"):
        policy.check_report(_grouped_by("cell_area", "network_flows"), NETWORK_FLOWS, SUBSCRIBERS)
    with pytest.raises(ConfigError, match="unknown column 'hour'"):
        policy.check_report(_grouped_by("hour", "subscribers"), SUBSCRIBERS)
    policy.check_report(_grouped_by("addon_music_streaming", "subscribers"), SUBSCRIBERS)
