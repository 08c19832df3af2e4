"""Report specs for tests, written flat as earlier specs were and nested as config/reports/ has them."""

from __future__ import annotations

from core.config import ReportSpec

DELIVERY_FIELDS = ("partner", "purpose", "policy_clause")


def report_spec(flat: dict) -> ReportSpec:
    """A ReportSpec from one flat mapping: delivery fields to `delivery`, the rest to `aggregation`."""
    delivery = {k: flat[k] for k in DELIVERY_FIELDS if k in flat}
    aggregation = {k: v for k, v in flat.items() if k not in (*DELIVERY_FIELDS, "name")}
    return ReportSpec.model_validate({"name": flat["name"], "delivery": delivery, "aggregation": aggregation})
