"""A report's spec (config/reports/*.yaml): its aggregation (keys, metrics, bounds) and its delivery."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from core.config.base import PARTNER_ID, REPORT_NAME, ConfigError, Frozen, Purpose, validated
from core.config.pipeline import PipelineConfig
from core.kinds import MetricKind, kind_names, metric_kind
from core.schemas import SOURCES

NAMED_DOMAINS = ("regions", "hours")


class GroupKey(Frozen):
    """A group-by key, public or private.

    Public: every value of its declared domain is reported, empty cells too,
    and rows outside the domain are dropped before aggregation. The domain is
    a named one (`regions` from pipeline.yaml, `hours`), a list, or an
    inclusive integer range. Private: values come from the data and are
    released only through differentially private partition selection.
    """

    column: str
    values: str | tuple[str | int, ...] | None = None
    range: tuple[int, int] | None = None
    private: bool = False

    @model_validator(mode="after")
    def _one_domain(self) -> GroupKey:
        declared = [self.values is not None, self.range is not None, self.private]
        if sum(declared) != 1:
            raise ValueError(f"group key '{self.column}': give exactly one of values, range or private")
        if isinstance(self.values, str) and self.values not in NAMED_DOMAINS:
            raise ValueError(
                f"group key '{self.column}': unknown domain '{self.values}' "
                f"(named: {', '.join(NAMED_DOMAINS)}; or give a list)"
            )
        if isinstance(self.values, tuple) and len(set(self.values)) != len(self.values):
            raise ValueError(f"group key '{self.column}': values repeat")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"group key '{self.column}': range start exceeds its end")
        return self


class Contribution(Frozen):
    """Per subscriber: at most this many cells, and this many rows in each."""

    max_groups_per_subscriber: int = Field(gt=0)
    max_rows_per_group: int = Field(gt=0)


def _known_kind(kind: str) -> str:
    metric_kind(kind)  # raises KindError (a ValueError) naming the known kinds
    return kind


class Metric(Frozen):
    """One released statistic with its bounds and its share of the budget.

    `epsilon` under pure or approximate DP accounting, `rho` under zCDP.
    Sums, means and variances encode values as fixed-point integers (value x
    10^precision, rounded) clamped to the integer bounds lower x 10^precision
    and upper x 10^precision, so noise is added to integers; a negative
    precision coarsens (-3: units of 1,000). Those bounds must be whole numbers
    of units: the sensitivity is computed from them, and a half-unit bound
    (2,500 at -3) would leave it ambiguous by a unit per row.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Annotated[str, AfterValidator(_known_kind)]  # a registered kind (core.kinds)
    epsilon: float | None = Field(default=None, gt=0)
    rho: float | None = Field(default=None, gt=0)
    column: str | None = None
    lower: float | None = None
    upper: float | None = None
    precision: int = Field(default=0, ge=-9, le=6)
    quantiles: tuple[float, ...] | None = None
    # How a quantile tree cuts [lower, upper]: equal widths, or equal ratios of
    # 1 + (value - lower) for heavy-tailed or low-bunched values such as bytes or
    # call seconds. A public choice like the bounds: it costs no budget.
    quantile_scale: Literal["linear", "log"] = "linear"
    bins: tuple[float, ...] | None = None
    # Also release each cell's share of its parent's total across this group key
    # (post-processing of the noisy values: no budget).
    share_across: str | None = None

    @model_validator(mode="after")
    def _kind_needs(self) -> Metric:
        if (self.epsilon is None) == (self.rho is None):
            raise ValueError(f"metric '{self.name}': give epsilon (pure/approximate DP, or geometric "
                             "noise under zCDP) or rho (zCDP)")
        self.measure.check()
        return self

    @property
    def measure(self) -> MetricKind:
        """The metric's kind, bound to it: its parts, sensitivities, post-processing and words."""
        return metric_kind(self.kind)(self)

    @property
    def scale(self) -> int | float:
        """Fixed-point factor: integer value = round(value x scale)."""
        return 10**self.precision


class PartitionSelection(Frozen):
    """Budget for releasing private keys, each with a probability its distinct subscribers give.

    `max_partitions_per_subscriber`: how many private keys a subscriber counts in for the
    selection alone (default: the contribution's max groups). A smaller bound makes the
    selection cheaper per key, while the released values keep the contribution's wider one.
    """

    epsilon: float = Field(gt=0)
    delta: float = Field(gt=0, lt=1)
    max_partitions_per_subscriber: int | None = Field(default=None, gt=0)


# The privacy unit's column in every report input; no key or metric may take its name.
UNIT_COLUMN = "subscriber"


class Aggregation(Frozen):
    """What is computed, and nothing about where it goes: the input of the release front door.

    `name` names its releases (in the ledger and the release store), `source` the dataset
    whose budget pays for them. Group keys, contribution bounds, metrics and accounting
    decide the noise; `min_subscribers` and `sparse_cells` the free post-processing. An
    analyst's ad-hoc query is an Aggregation alone; a scheduled report adds a Delivery.
    """

    name: str = Field(pattern=REPORT_NAME)  # used in paths and release ids
    source: str
    privacy_unit: Literal["subscriber"] = "subscriber"
    period: Literal["day"] = "day"
    group_by: tuple[GroupKey, ...] = Field(min_length=1)
    contribution: Contribution
    metrics: tuple[Metric, ...] = Field(min_length=1)
    # pure_dp: geometric noise, delta 0. approx_dp: discrete Gaussian, delta split
    # equally over metrics. zcdp: discrete Gaussian from each metric's rho; delta
    # is where the total rho is stated as (epsilon, delta) for ledger and manifest.
    accounting: Literal["pure_dp", "approx_dp", "zcdp"] = "pure_dp"
    delta: float = Field(default=0.0, ge=0, lt=1)
    partition_selection: PartitionSelection | None = None
    # k: a cell whose noisy distinct-subscriber count is under it is not published as is.
    min_subscribers: int | None = Field(default=None, ge=1)
    sparse_cells: Literal["suppress", "roll_up"] = "suppress"
    roll_up: str | None = None  # the key merged away when rolling a sparse cell into its parent

    @model_validator(mode="after")
    def _consistent(self) -> Aggregation:
        if self.source not in SOURCES:
            raise ValueError(f"unknown source '{self.source}'; expected one of {sorted(SOURCES)}")
        self._check_names()
        self._check_accounting()
        self._check_private_keys()
        self._check_sparse_cells()
        self._check_shares()
        return self

    def _check_names(self) -> None:
        names = [k.column for k in self.group_by] + [m.name for m in self.metrics]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"group keys and metric names must be unique: {', '.join(repeated)}")
        if UNIT_COLUMN in names:
            raise ValueError(f"'{UNIT_COLUMN}' is the privacy unit's column: no group key or metric "
                             "may take its name")
        keys = set(self.group_columns)
        for metric in self.metrics:
            if metric.column in keys:
                raise ValueError(f"metric '{metric.name}' reads group key '{metric.column}'")
            if metric.column == UNIT_COLUMN:
                raise ValueError(f"metric '{metric.name}' reads the privacy unit's column '{UNIT_COLUMN}'")

    def _check_accounting(self) -> None:
        # Under zCDP a metric may give an epsilon instead: geometric noise, counted as
        # epsilon^2 / 2 in rho (fast to draw where a metric has thousands of parts).
        if self.accounting != "zcdp":
            for metric in self.metrics:
                if metric.epsilon is None:
                    raise ValueError(f"metric '{metric.name}': {self.accounting} accounting needs epsilon")
        if self.accounting == "pure_dp" and self.delta != 0:
            raise ValueError("pure_dp accounting has delta 0; use approx_dp or zcdp for delta > 0")
        if self.accounting != "pure_dp" and self.delta == 0:
            raise ValueError(f"{self.accounting} accounting needs delta > 0")
        selection = self.partition_selection
        if (selection is not None and selection.max_partitions_per_subscriber is not None
                and selection.max_partitions_per_subscriber > self.contribution.max_groups_per_subscriber):
            raise ValueError("partition_selection.max_partitions_per_subscriber cannot exceed "
                             "contribution.max_groups_per_subscriber")

    def _check_shares(self) -> None:
        for metric in self.metrics:
            if metric.share_across is not None and metric.share_across not in self.group_columns:
                raise ValueError(f"metric '{metric.name}': share_across '{metric.share_across}' "
                                 f"is not a group key ({', '.join(self.group_columns)})")

    def _check_private_keys(self) -> None:
        has_private = any(k.private for k in self.group_by)
        if has_private and self.partition_selection is None:
            raise ValueError("private group keys need a partition_selection budget")
        if not has_private and self.partition_selection is not None:
            raise ValueError("partition_selection is only for private group keys")

    def _check_sparse_cells(self) -> None:
        if self.min_subscribers is not None and not any(m.measure.counts_subscribers for m in self.metrics):
            raise ValueError(f"min_subscribers needs a {' or '.join(kind_names(counts_subscribers=True))} "
                             "metric to test against")
        if self.sparse_cells == "roll_up":
            public = [k.column for k in self.group_by if not k.private]
            if self.min_subscribers is None or self.roll_up not in public:
                raise ValueError("sparse_cells roll_up needs min_subscribers and roll_up naming a public key")
        elif self.roll_up is not None:
            raise ValueError("roll_up is only used with sparse_cells: roll_up")

    @property
    def private_keys(self) -> tuple[str, ...]:
        return tuple(k.column for k in self.group_by if k.private)

    @property
    def group_columns(self) -> tuple[str, ...]:
        return tuple(k.column for k in self.group_by)

    def fingerprint(self) -> str:
        """SHA-256 of the aggregation's canonical JSON: a charge and its release must agree on it."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class Delivery(Frozen):
    """Where a report's releases go and why they may: the partner, purpose and policy clause."""

    partner: str = Field(pattern=PARTNER_ID)
    purpose: Purpose
    policy_clause: str


class ReportSpec(Frozen):
    """A scheduled report: an aggregation (what is computed) and its delivery (where it goes).

    The report's `name` is written once, at the top of its file, and names its aggregation.
    """

    name: str = Field(pattern=REPORT_NAME)  # its file's name; used in paths and release ids
    delivery: Delivery
    aggregation: Aggregation

    @model_validator(mode="before")
    @classmethod
    def _name_the_aggregation(cls, data):
        if isinstance(data, dict) and isinstance(data.get("aggregation"), dict) and "name" in data:
            aggregation = data["aggregation"]
            if "name" in aggregation and aggregation["name"] != data["name"]:
                raise ValueError("aggregation.name: leave it out; the report's name names its aggregation")
            data = {**data, "aggregation": {"name": data["name"], **aggregation}}
        return data

    @model_validator(mode="after")
    def _one_name(self) -> ReportSpec:
        if self.aggregation.name != self.name:
            raise ValueError(f"aggregation.name '{self.aggregation.name}' is not the report's name "
                             f"'{self.name}'")
        return self


def load_report_specs(config_dir: Path) -> list[ReportSpec]:
    """Every report of the catalog; each file is named after its report (<name>.yaml), so no
    two reports share a name (a name is a folder in the release store and the deliveries)."""
    report_dir = config_dir / "reports"
    paths = sorted(report_dir.glob("*.yaml"))
    specs = [validated(ReportSpec, path) for path in paths]
    if not specs:
        raise ConfigError(f"{report_dir}: no report specs (*.yaml) found")
    for path, spec in zip(paths, specs, strict=True):
        if spec.name != path.stem:
            raise ConfigError(f"{path}: report name '{spec.name}' is not its file's name "
                              f"(expected name: {path.stem}, or rename the file {spec.name}.yaml)")
    return specs


def check_report_allowed(spec: ReportSpec, pipeline: PipelineConfig) -> None:
    """Refuse, before any data is read, a report its partner may not receive."""
    delivery = spec.delivery
    partner = pipeline.partner(delivery.partner)
    if delivery.purpose not in partner.allowed_purposes:
        raise ConfigError(
            f"report '{spec.name}': partner '{delivery.partner}' is not allowed purpose "
            f"'{delivery.purpose}' (allowed: {', '.join(partner.allowed_purposes)})"
        )
