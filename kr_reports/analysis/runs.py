"""Where a run's files are: the data folder, the config folder and the report a notebook looks at."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.config import (
    Aggregation,
    load_pipeline_config,
)
from core.ledger import LEDGER_FILE, LEDGER_URL_ENV
from core.location import location
from core.noise_plan import ReportPlan, plan_aggregation
from kr_reports.analysis._common import CONFIG_ENV, REPORT_ENV
from stages.catalog import ZONES_ENV, Catalog


@dataclass(frozen=True)
class Settings:
    catalog: Catalog
    config_dir: Path
    ledger: str | Path  # a SQLAlchemy URL or the SQLite file
    report: str | None  # the report to explore; None: the first delivered one


def project_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding pyproject.toml (else `start`)."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return start


def settings_from_env(environ: Mapping[str, str], cwd: Path) -> Settings:
    """Folders as `make run` leaves them: KR_DATA_DIR, KR_OUT_DIR, KR_ZONES_URL, KR_CONFIG_DIR,
    KR_LEDGER_URL, KR_REPORT. Defaults and relative paths are taken from the project root, not from the
    notebooks/ folder a Jupyter kernel starts in."""
    root = project_root(cwd.resolve())

    def folder(name: str, default: str) -> Path:
        return root / environ.get(name, default)  # an absolute value replaces the root

    data_dir, zones = folder("KR_DATA_DIR", "data"), environ.get(ZONES_ENV)
    return Settings(
        catalog=Catalog(data_dir=data_dir, out_dir=folder("KR_OUT_DIR", "out"),
                        zones=location(zones) if zones else None),
        config_dir=folder(CONFIG_ENV, "config"),
        ledger=environ.get(LEDGER_URL_ENV) or data_dir / LEDGER_FILE,
        report=environ.get(REPORT_ENV) or None,
    )


def load_plan(aggregation: Aggregation, config_dir: Path) -> ReportPlan:
    """The aggregation's noise plan, with the public regions of the pipeline configuration."""
    return plan_aggregation(aggregation, load_pipeline_config(config_dir).regions)
