"""User-edited configuration: YAML validated into frozen pydantic models.

Epsilon, delta, bounds and contribution limits live here and nowhere else;
the code turns a spec into a plan and executes it.
"""

from __future__ import annotations

from core.config.analyst import AnalystConfig, load_analyst_config
from core.config.base import PARTNER_ID, REPORT_NAME, ConfigError, Frozen, Purpose, load_yaml, validated
from core.config.pipeline import (
    DEFAULT_PLAUSIBLE_TIME,
    Budget,
    Partner,
    PipelineConfig,
    PlausibleTime,
    Retention,
    load_pipeline_config,
)
from core.config.reports import (
    NAMED_DOMAINS,
    UNIT_COLUMN,
    Aggregation,
    Contribution,
    Delivery,
    GroupKey,
    Metric,
    PartitionSelection,
    ReportSpec,
    check_report_allowed,
    load_report_specs,
)

__all__ = [
    "DEFAULT_PLAUSIBLE_TIME",
    "NAMED_DOMAINS",
    "PARTNER_ID",
    "REPORT_NAME",
    "UNIT_COLUMN",
    "Aggregation",
    "AnalystConfig",
    "Budget",
    "ConfigError",
    "Contribution",
    "Delivery",
    "Frozen",
    "GroupKey",
    "Metric",
    "PartitionSelection",
    "Partner",
    "PipelineConfig",
    "PlausibleTime",
    "Purpose",
    "ReportSpec",
    "Retention",
    "check_report_allowed",
    "load_analyst_config",
    "load_pipeline_config",
    "load_report_specs",
    "load_yaml",
    "validated",
]
