"""The privacy ledger as the notebooks show it: charges and the budget's status, read-only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from core.config import (
    Budget,
    load_pipeline_config,
)
from core.ledger import budget_status, charges_table
from stages.catalog import Catalog


def _read_only_engine(location: str | Path) -> sa.Engine:
    if isinstance(location, str) and "://" in location:
        return sa.create_engine(location)
    path = Path(location)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ledger; run `make run` (or set KR_DATA_DIR) first")
    return sa.create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")


def ledger_history(location: str | Path) -> pd.DataFrame:
    """Every charge in the ledger, oldest first, read without taking a lock or writing."""
    engine = _read_only_engine(location)
    try:
        with engine.connect() as conn:
            history = pd.read_sql(sa.select(charges_table).order_by(charges_table.c.id), conn)
    finally:
        engine.dispose()
    return history.assign(period=pd.to_datetime(history["period"]).dt.date)


def latest_protected_day(catalog: Catalog, source: str) -> dt.date:
    """The latest day the protected zone holds for a source."""
    folder = catalog.zone_root("protected") / source
    days = sorted(p.name.removeprefix("date=") for p in folder.glob("date=*"))
    if not days:
        raise LookupError(f"no protected {source} in {catalog.zones_root}; run `make run` first")
    return dt.date.fromisoformat(days[-1])


def load_budgets(config_dir: Path) -> tuple[Budget, ...]:
    """The privacy budget, then the caps."""
    return load_pipeline_config(config_dir).limits


def _timeline_days(history: pd.DataFrame, budgets: Sequence[Budget]) -> list[dt.date]:
    """From the first charged period until the last charge has left the longest window."""
    if history.empty:
        return []
    longest = max(b.window_days for b in budgets)
    last = max(history["period"]) + dt.timedelta(days=longest)
    return [d.date() for d in pd.date_range(min(history["period"]), last)]


def budget_over_time(history: pd.DataFrame, budgets: Sequence[Budget], unit: str = "subscriber",
                     days: Sequence[dt.date] | None = None) -> pd.DataFrame:
    """Spent and left per limit in the rolling window ending on each day (the ledger's rule)."""
    days = _timeline_days(history, budgets) if days is None else days
    charged = history.assign(period=history["period"].map(str))
    mine = charged[charged["privacy_unit"] == unit]
    columns = ["period", "dataset", "partner", "epsilon", "delta", "rho", "approx_epsilon", "approx_delta"]
    charges = list(mine[columns].itertuples(index=False))
    rows = [budget_status(budget, day, unit, charges).__dict__ for budget in budgets for day in days]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame.insert(1, "day", pd.to_datetime(frame["window_end"]).dt.date)
    return frame


def latest_status(history: pd.DataFrame, budgets: Sequence[Budget], unit: str = "subscriber",
                  today: dt.date | None = None) -> pd.DataFrame:
    """Each budget in the window ending on the latest charged period (`today` without charges)."""
    day = max(history["period"]) if not history.empty else (today or dt.date.today())
    return budget_over_time(history, budgets, unit, days=[day])


def spend_by_period(history: pd.DataFrame) -> pd.DataFrame:
    """Rho charged per period (rows) and report (columns): what composes across the window."""
    return history.pivot_table(index="period", columns="report", values="rho", aggfunc="sum",
                               fill_value=0.0)
