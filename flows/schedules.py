"""Schedules: the report catalog as two Prefect deployments, served against a Prefect server.

- `daily` runs `daily_partner_reports` for the latest complete landing day;
- `catch-up` runs it for every recent complete landing day on which some report
  has no stored release yet (a day missed while the server was down, a day
  that landed late, a run that failed).

Re-running a day is safe: a stored release is served again, never re-noised
and never charged twice (stages.daily.release). Cron strings, the time zone
and the flows' parameters come from config/schedules.yaml, validated into
frozen models. The runner executes one run at a time: each run is a Spark
application, and two runs of one day must not race for its releases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect import flow, get_run_logger, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from pydantic import Field, field_validator

from core.config import ConfigError, Frozen, load_report_specs, validated
from core.errors import KrReportsError
from core.location import is_url
from core.schemas import SOURCES
from core.sources import load_sources_config
from flows.daily import daily_partner_reports, landing_days
from stages.catalog import SYNTHETIC_GENERATOR, Catalog

DEFAULT_SCHEDULES = Path("config") / "schedules.yaml"
DAILY_DEPLOYMENT = "daily"
CATCH_UP_DEPLOYMENT = "catch-up"


class FlowParameters(Frozen):
    """What every scheduled run is given; a folder left out comes from $KR_DATA_DIR / $KR_OUT_DIR."""

    config_dir: str = "config"
    data_dir: str | None = None
    out_dir: str | None = None
    demo: bool = False

    def resolved(self) -> dict:
        """The parameters with relative folders made absolute (against the serving process's folder)."""
        def absolute(folder: str | None) -> str | None:
            if not folder or is_url(folder):  # a URL (shared storage) is absolute already
                return folder or None
            return str(Path(folder).resolve())

        return {"config_dir": absolute(self.config_dir), "data_dir": absolute(self.data_dir),
                "out_dir": absolute(self.out_dir), "demo": self.demo}


class CronSchedule(Frozen):
    cron: str

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        Cron(cron)  # Prefect's own check: five fields, no random or hashed expressions
        return cron


class CatchUpSchedule(CronSchedule):
    # How many of the latest landing days are looked at: older ones are left to `kr-reports run --day`,
    # so a day that cannot be released (its budget spent) is not retried forever.
    lookback_days: int = Field(default=7, ge=1, le=366)


class Schedules(Frozen):
    daily: CronSchedule
    catch_up: CatchUpSchedule


class SchedulesConfig(Frozen):
    timezone: str = "UTC"
    parameters: FlowParameters = FlowParameters()
    schedules: Schedules

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{timezone}' (an IANA name: UTC, Asia/Seoul...)") from None
        return timezone


def load_schedules(path: Path = DEFAULT_SCHEDULES) -> SchedulesConfig:
    return validated(SchedulesConfig, path)


def days_missing_a_release(days: Iterable[dt.date], reports: Iterable[str],
                           stored: Callable[[str, dt.date], object]) -> list[dt.date]:
    """The days, oldest first, on which some report has no stored release (`stored` is falsy)."""
    names = list(reports)
    return sorted(day for day in set(days) if any(not stored(name, day) for name in names))


class CatchUpFailed(KrReportsError, RuntimeError):
    """Some days of a catch-up run failed; the message names them and their failing stage."""


@flow(name="catch_up_partner_reports")
def catch_up_partner_reports(
    config_dir: str = "config",
    data_dir: str | None = None,
    out_dir: str | None = None,
    demo: bool = False,
    lookback_days: int = 7,
) -> dict:
    """Run the daily flow for each recent landing day that lacks a release; fail naming the days that failed.

    Each day is a subflow run, so one failing day does not stop the others.
    """
    if lookback_days < 1:
        raise ConfigError(f"lookback_days must be at least 1, not {lookback_days}")
    logger = get_run_logger()
    catalog = Catalog.from_env(data_dir, out_dir)
    reports = [spec.name for spec in load_report_specs(Path(config_dir))]
    recent = landing_days(catalog)[-lookback_days:]
    days = days_missing_a_release(recent, reports, catalog.release_numbers)
    if not days:
        logger.info("every report is released for the last %d landing day(s)", len(recent))
    failed = []
    for day in days:
        state = daily_partner_reports(day=day.isoformat(), data_dir=data_dir, out_dir=out_dir,
                                      config_dir=config_dir, demo=demo, return_state=True)
        if state.is_failed() or state.is_crashed():
            failed.append(f"{day.isoformat()}: {state.message}")
    if failed:
        raise CatchUpFailed(f"{len(failed)} of {len(days)} day(s) failed: " + "; ".join(failed))
    return {"days": [day.isoformat() for day in days]}


def build_deployments(config: SchedulesConfig) -> list[RunnerDeployment]:
    """The two deployments, with their cron schedules in the configured time zone."""
    parameters = config.parameters.resolved()
    daily = daily_partner_reports.to_deployment(
        name=DAILY_DEPLOYMENT,
        schedule=Cron(config.schedules.daily.cron, timezone=config.timezone),
        parameters=parameters,
        description="Every report of the catalog for the latest complete landing day.",
    )
    catch_up = catch_up_partner_reports.to_deployment(
        name=CATCH_UP_DEPLOYMENT,
        schedule=Cron(config.schedules.catch_up.cron, timezone=config.timezone),
        parameters={**parameters, "lookback_days": config.schedules.catch_up.lookback_days},
        description="Every report for each recent complete landing day that has no stored release yet.",
    )
    return [daily, catch_up]


def check_api_url() -> str:
    """The Prefect server's API URL; without one Prefect would start a throwaway server of its own."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ConfigError(
            "PREFECT_API_URL is not set: start a server (`prefect server start`) and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    return url


def check_demo_data(config: SchedulesConfig) -> None:
    """ConfigError when the runs would use demo keys on anything but the embedded synthetic data.

    Demo keys pseudonymize with a key that is not kept and sign with a key made
    on the spot: fine for the generator's data, never for real subscribers.
    """
    parameters = config.parameters
    if not parameters.demo:
        return
    catalog = Catalog.from_env(parameters.data_dir, parameters.out_dir)
    if not catalog.landing_is_synthetic():
        raise ConfigError(
            f"schedules say demo: true, but {catalog.landing_root} does not hold the embedded synthetic "
            f"data (its marker does not name `{SYNTHETIC_GENERATOR}`): set demo: false for real data, with "
            "KR_PSEUDONYM_KEY and the partners' signing keys configured"
        )
    sources = load_sources_config(Path(parameters.resolved()["config_dir"]))
    exports = [name for name in SOURCES if not sources.landing(name).is_generator_landing]
    if exports:
        raise ConfigError(
            f"schedules say demo: true, but sources.yaml reads {', '.join(exports)} from exports, not "
            "the embedded synthetic data: set demo: false for real data, with KR_PSEUDONYM_KEY and the "
            "partners' signing keys configured"
        )


def serve_schedules(config: SchedulesConfig) -> None:
    """Register the deployments on the server and run their scheduled runs, one at a time, until stopped."""
    check_demo_data(config)
    check_api_url()
    serve(*build_deployments(config), limit=1)
