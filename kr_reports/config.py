"""User-edited configuration: YAML validated into frozen pydantic models.

Epsilon, delta, bounds and contribution limits live here and nowhere else;
the code turns a spec into a plan and executes it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kr_reports.schemas import SOURCES


class ConfigError(ValueError):
    """A configuration file is missing or does not match its model."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Partner(Frozen):
    id: str
    allowed_purposes: tuple[str, ...]


class Budget(Frozen):
    """At most `epsilon` (and `delta`) per subscriber per rolling window on one dataset."""

    dataset: str
    window_days: int = Field(gt=0)
    epsilon: float = Field(gt=0)
    delta: float = Field(default=0.0, ge=0, lt=1)


class PipelineConfig(Frozen):
    regions: tuple[str, ...] = Field(min_length=1)
    purposes: tuple[str, ...] = ("advertising_campaign_delivery", "aggregate_reports")
    partners: tuple[Partner, ...]
    budgets: tuple[Budget, ...]

    def partner(self, partner_id: str) -> Partner:
        for partner in self.partners:
            if partner.id == partner_id:
                return partner
        raise ConfigError(f"partner '{partner_id}' is not configured in partners")

    def budget_for(self, dataset: str) -> Budget:
        for budget in self.budgets:
            if budget.dataset == dataset:
                return budget
        raise ConfigError(f"no privacy budget is configured for dataset '{dataset}'")


class GroupKey(Frozen):
    """A public group-by key: every listed value is reported, empty cells too."""

    column: Literal["region", "hour"]
    values: Literal["regions", "hours"]


class Contribution(Frozen):
    max_groups_per_subscriber: int = Field(gt=0)
    max_rows_per_group: int = Field(gt=0)


class Metric(Frozen):
    name: str
    kind: Literal["count_distinct_subscribers", "sum"]
    epsilon: float = Field(gt=0)
    column: str | None = None
    lower: int | None = None
    upper: int | None = None

    @model_validator(mode="after")
    def _sum_needs_column_and_bounds(self) -> Metric:
        if self.kind == "sum":
            if self.column is None or self.lower is None or self.upper is None:
                raise ValueError(f"sum metric '{self.name}' needs column, lower and upper")
            if self.lower > self.upper:
                raise ValueError(f"sum metric '{self.name}': lower bound exceeds upper bound")
        return self


class ReportSpec(Frozen):
    name: str
    source: str
    partner: str
    purpose: str
    policy_clause: str
    privacy_unit: Literal["subscriber"] = "subscriber"
    period: Literal["day"] = "day"
    group_by: tuple[GroupKey, ...] = Field(min_length=1)
    contribution: Contribution
    metrics: tuple[Metric, ...] = Field(min_length=1)
    delta: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _source_exists(self) -> ReportSpec:
        if self.source not in SOURCES:
            raise ValueError(f"unknown source '{self.source}'; expected one of {sorted(SOURCES)}")
        return self

    @property
    def epsilon(self) -> float:
        """Total epsilon: the metrics compose sequentially (basic composition)."""
        return math.fsum(m.epsilon for m in self.metrics)


def _load_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _validated(model: type[Frozen], path: Path):
    try:
        return model.model_validate(_load_yaml(path))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None


def load_pipeline_config(config_dir: Path) -> PipelineConfig:
    return _validated(PipelineConfig, config_dir / "pipeline.yaml")


def load_report_specs(config_dir: Path) -> list[ReportSpec]:
    report_dir = config_dir / "reports"
    specs = [_validated(ReportSpec, path) for path in sorted(report_dir.glob("*.yaml"))]
    if not specs:
        raise ConfigError(f"{report_dir}: no report specs (*.yaml) found")
    return specs


def check_report_allowed(spec: ReportSpec, pipeline: PipelineConfig) -> None:
    """Refuse, before any data is read, a report its partner may not receive."""
    partner = pipeline.partner(spec.partner)
    if spec.purpose not in partner.allowed_purposes:
        raise ConfigError(
            f"report '{spec.name}': partner '{spec.partner}' is not allowed purpose "
            f"'{spec.purpose}' (allowed: {', '.join(partner.allowed_purposes)})"
        )
