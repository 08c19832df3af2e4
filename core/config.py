"""User-edited configuration: YAML validated into frozen pydantic models.

Epsilon, delta, bounds and contribution limits live here and nowhere else;
the code turns a spec into a plan and executes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import KrReportsError
from core.names import check_identifier
from core.schemas import SOURCES, TimeRange
from core.signing import parse_reference


class ConfigError(KrReportsError, ValueError):
    """A configuration file is missing or does not match its model."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Names used in paths, release ids and key-derivation contexts.
REPORT_NAME = r"^[a-z0-9][a-z0-9_-]*$"
PARTNER_ID = r"^[a-z0-9][a-z0-9_-]*$"
Purpose = Annotated[str, AfterValidator(lambda name: check_identifier(name, "purpose"))]


def _repeated(values) -> list[str]:
    values = list(values)
    return sorted({str(v) for v in values if values.count(v) > 1})


class Partner(Frozen):
    """A partner: what it may receive, where its deliveries go, and which key signs them.

    `delivery_target` is a local folder or any fsspec URL (`s3://bucket/prefix`,
    `file:///srv/out`, ...); by default `<out dir>/deliveries/<id>`. Credentials
    never go in the URL: the filesystem reads its own (e.g. the AWS environment).
    `signing_key` names the Ed25519 private key and never holds it:
    `env:VARIABLE` or `file:path/to/key.pem` (see core/signing.py).
    """

    id: str = Field(pattern=PARTNER_ID)  # used in paths
    allowed_purposes: tuple[Purpose, ...]
    delivery_target: str | None = Field(default=None, min_length=1)
    signing_key: str

    @model_validator(mode="after")
    def _key_reference(self) -> Partner:
        try:
            parse_reference(self.signing_key)
        except ValueError as exc:
            raise ValueError(f"partner '{self.id}': {exc}") from None
        return self


class Budget(Frozen):
    """At most `epsilon` at `delta` per subscriber over any `window_days` consecutive days.

    The privacy budget holds every release together: every dataset, report and partner,
    internal analysis included (one subscriber is in all of them). A cap is an extra
    limit on one dataset's or one partner's releases alone.
    """

    window_days: int = Field(gt=0)
    epsilon: float = Field(gt=0)
    delta: float = Field(default=0.0, ge=0, lt=1)
    dataset: str | None = None
    partner: str | None = None

    @model_validator(mode="after")
    def _one_scope(self) -> Budget:
        if self.dataset is not None and self.partner is not None:
            raise ValueError("a cap limits one dataset or one partner, not both")
        return self

    @property
    def scope(self) -> str:
        if self.dataset is not None:
            return f"dataset {self.dataset}"
        return f"partner {self.partner}" if self.partner is not None else "all releases"

    def applies_to(self, dataset: str, partner: str) -> bool:
        return self.dataset in (None, dataset) and self.partner in (None, partner)


class PlausibleTime(Frozen):
    """Event times ingest accepts; any other is quarantined as `implausible_time`.

    From `earliest` (00:00 UTC) to the end of the UTC day `latest_days_ahead`
    days after the run's today: a Zeek ts of 0, an Argus year 9999 or a counter
    read as seconds is a broken clock, not an event, with or without `--day`.
    """

    earliest: dt.date = dt.date(2000, 1, 1)
    latest_days_ahead: int = Field(default=1, ge=0, le=366)

    def time_range(self, today: dt.date) -> TimeRange:
        end_day = today + dt.timedelta(days=self.latest_days_ahead + 1)
        if self.earliest >= end_day:
            raise ConfigError(f"plausible_time.earliest {self.earliest} is after today ({today}) "
                              f"plus latest_days_ahead ({self.latest_days_ahead})")
        return TimeRange(dt.datetime.combine(self.earliest, dt.time(), tzinfo=dt.UTC),
                         dt.datetime.combine(end_day, dt.time(), tzinfo=dt.UTC))


DEFAULT_PLAUSIBLE_TIME = PlausibleTime()


class Retention(Frozen):
    """Days each internal zone keeps a day's partition (`kr-reports purge`, core/retention.py).

    Raw and quarantine hold full records, protected pseudonymized ones. The release store
    and the ledger are never purged.
    """

    raw: int = Field(default=7, ge=1, strict=True)
    quarantine: int = Field(default=30, ge=1, strict=True)
    protected: int = Field(default=30, ge=1, strict=True)

    def keep_days(self) -> dict[str, int]:
        return {"raw": self.raw, "quarantine": self.quarantine, "protected": self.protected}


class PipelineConfig(Frozen):
    regions: tuple[str, ...] = Field(min_length=1)
    purposes: tuple[Purpose, ...] = ("advertising_campaign_delivery", "aggregate_reports")
    partners: tuple[Partner, ...]
    privacy_budget: Budget
    caps: tuple[Budget, ...] = ()
    plausible_time: PlausibleTime = DEFAULT_PLAUSIBLE_TIME
    retention: Retention = Retention()

    @model_validator(mode="before")
    @classmethod
    def _no_dataset_budgets(cls, data):
        if isinstance(data, dict) and "budgets" in data:
            raise ValueError(
                "per-dataset 'budgets' are gone: one subscriber is in every dataset, so one "
                "'privacy_budget' (window_days, epsilon, delta) holds every release, and a "
                "per-dataset or per-partner limit is a 'caps' entry (see config/pipeline.yaml)")
        return data

    @model_validator(mode="after")
    def _scopes(self) -> PipelineConfig:
        if self.privacy_budget.dataset is not None or self.privacy_budget.partner is not None:
            raise ValueError("privacy_budget holds every release: give no dataset or partner "
                             "(a limit on part of them is a cap)")
        for cap in self.caps:
            if cap.dataset is None and cap.partner is None:
                raise ValueError("a cap needs a dataset or a partner (privacy_budget holds all releases)")
        return self

    @model_validator(mode="after")
    def _no_repeats(self) -> PipelineConfig:
        """A partner, purpose or cap given twice is a mistake, never meant: which one would hold?"""
        for what, values in (("partner id", [p.id for p in self.partners]), ("purpose", self.purposes),
                             ("region", self.regions),
                             ("cap", [f"{c.scope} over {c.window_days} days" for c in self.caps])):
            repeated = _repeated(values)
            if repeated:
                raise ValueError(f"{what} given twice: {', '.join(repeated)}")
        for partner in self.partners:
            unknown = [p for p in partner.allowed_purposes if p not in self.purposes]
            if unknown:
                raise ValueError(f"partner '{partner.id}': allowed purpose(s) {', '.join(unknown)} "
                                 f"not among purposes ({', '.join(self.purposes)})")
        return self

    @property
    def limits(self) -> tuple[Budget, ...]:
        """Every limit a release must fit: the privacy budget, then the caps."""
        return (self.privacy_budget, *self.caps)

    def guarantee(self) -> str:
        """The privacy budget as one sentence a partner can read."""
        b = self.privacy_budget
        return (f"Over any {b.window_days} consecutive days of data, adding or removing any one "
                f"subscriber's data changes what all partners together receive by at most "
                f"epsilon {b.epsilon:g} at delta {b.delta:g} (differential privacy, every report "
                f"and dataset counted together).")

    def partner(self, partner_id: str) -> Partner:
        for partner in self.partners:
            if partner.id == partner_id:
                return partner
        raise ConfigError(f"partner '{partner_id}' is not configured in partners")


NAMED_DOMAINS = ("regions", "hours")
METRIC_KINDS = ("count", "count_distinct_subscribers", "sum", "mean", "variance", "quantiles", "histogram")
BOUNDED_KINDS = ("sum", "mean", "variance", "quantiles", "histogram")
FIXED_POINT_KINDS = ("sum", "mean", "variance")
SHAREABLE_KINDS = ("count", "count_distinct_subscribers", "sum")


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


def fixed_point_units(value: float, precision: int) -> Decimal:
    """value x 10^precision, exactly, computed on the decimal the value was written as.

    repr is the shortest decimal that reads back as the same float, i.e. what YAML read:
    0.1 at precision 1 is exactly 1, not 1.0000000000000002, and 2500 at -3 exactly 2.5.
    """
    return Decimal(repr(float(value))).scaleb(precision)


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
    kind: Literal[METRIC_KINDS]
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
        if self.kind in BOUNDED_KINDS and self.column is None:
            raise ValueError(f"{self.kind} metric '{self.name}' needs a column")
        if self.kind in ("sum", "mean", "variance", "quantiles"):
            if self.lower is None or self.upper is None:
                raise ValueError(f"{self.kind} metric '{self.name}' needs column, lower and upper")
            if self.lower >= self.upper:
                raise ValueError(f"{self.kind} metric '{self.name}': lower bound must be below upper bound")
        if self.kind in FIXED_POINT_KINDS:
            self._check_whole_bounds()
        if self.kind == "quantiles" and not (self.quantiles and all(0 < q < 1 for q in self.quantiles)):
            raise ValueError(f"quantiles metric '{self.name}' needs quantiles, each in (0, 1)")
        if self.quantile_scale != "linear" and self.kind != "quantiles":
            raise ValueError(f"metric '{self.name}': quantile_scale applies to quantiles metrics only")
        if self.share_across is not None and self.kind not in SHAREABLE_KINDS:
            raise ValueError(f"metric '{self.name}': share_across needs one of {', '.join(SHAREABLE_KINDS)}")
        if self.kind == "histogram":
            edges = self.bins or ()
            if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(f"histogram metric '{self.name}' needs at least 2 increasing bin edges")
        return self

    def _check_whole_bounds(self) -> None:
        for side, bound in (("lower", self.lower), ("upper", self.upper)):
            units = fixed_point_units(bound, self.precision)
            if not units.is_finite() or units != units.to_integral_value():
                raise ValueError(
                    f"{self.kind} metric '{self.name}': {side} bound {bound:g} is not a whole number of "
                    f"units at precision {self.precision} (units of {10.0 ** -self.precision:g}); "
                    "round the bound or change the precision"
                )

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
        if self.min_subscribers is not None and not any(
            m.kind == "count_distinct_subscribers" for m in self.metrics
        ):
            raise ValueError("min_subscribers needs a count_distinct_subscribers metric to test against")
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


class AnalystConfig(Frozen):
    """The analyst zone's anonymity requirements and quasi-identifier hierarchies."""

    k: int = Field(ge=2)
    l: int | None = Field(default=None, ge=2)  # noqa: E741 - the model's name for it
    suppression_limit: float = Field(default=0.0, ge=0, lt=1)
    metric: Literal["loss", "entropy", "discernibility", "aecs", "ncp"] = "loss"
    hierarchies: dict[str, dict[str, tuple[str, ...]]]

    @model_validator(mode="after")
    def _same_depth(self) -> AnalystConfig:
        for column, table in self.hierarchies.items():
            if len({len(parents) for parents in table.values()}) > 1:
                raise ValueError(f"hierarchy '{column}': every value needs the same number of levels")
        return self


def load_analyst_config(config_dir: Path) -> AnalystConfig:
    return _validated(AnalystConfig, config_dir / "analyst.yaml")


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
    """Every report of the catalog; each file is named after its report (<name>.yaml), so no
    two reports share a name (a name is a folder in the release store and the deliveries)."""
    report_dir = config_dir / "reports"
    paths = sorted(report_dir.glob("*.yaml"))
    specs = [_validated(ReportSpec, path) for path in paths]
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
