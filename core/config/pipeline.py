"""pipeline.yaml: partners, purposes, the privacy budget and its caps, plausible event times, retention."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import Field, model_validator

from core.config.base import PARTNER_ID, ConfigError, Frozen, Purpose, repeated_values, validated
from core.schemas import TimeRange
from core.signing import parse_reference


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
            twice = repeated_values(values)
            if twice:
                raise ValueError(f"{what} given twice: {', '.join(twice)}")
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


def load_pipeline_config(config_dir: Path) -> PipelineConfig:
    return validated(PipelineConfig, config_dir / "pipeline.yaml")
