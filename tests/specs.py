"""Report specs for tests, written flat as earlier specs were and nested as config/reports/ has them."""

from __future__ import annotations

from core.config import Aggregation, ReportSpec

DELIVERY_FIELDS = ("partner", "purpose", "policy_clause")


def report_spec(flat: dict) -> ReportSpec:
    """A ReportSpec from one flat mapping: delivery fields to `delivery`, the rest to `aggregation`."""
    delivery = {k: flat[k] for k in DELIVERY_FIELDS if k in flat}
    aggregation = {k: v for k, v in flat.items() if k not in (*DELIVERY_FIELDS, "name")}
    return ReportSpec.model_validate({"name": flat["name"], "delivery": delivery, "aggregation": aggregation})


def traffic_aggregation() -> Aggregation:
    """Distinct subscribers by region and hour of network flows: a small aggregation to release."""
    return report_spec({
        "name": "traffic", "source": "network_flows", "partner": "p", "purpose": "aggregate_reports",
        "policy_clause": "c",
        "group_by": [{"column": "region", "values": "regions"}, {"column": "hour", "range": [0, 1]}],
        "contribution": {"max_groups_per_subscriber": 2, "max_rows_per_group": 2},
        "metrics": [{"name": "subs", "kind": "count_distinct_subscribers", "epsilon": 1.0}],
    }).aggregation
