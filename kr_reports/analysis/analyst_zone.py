"""The analyst zone: its k-anonymous datasets and what they keep."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.config import (
    load_analyst_config,
)
from core.kanon.metrics import SUPPRESSED
from core.location import url_of
from kr_reports.analysis.deliveries import cell_labels
from stages.catalog import Catalog


@dataclass(frozen=True, eq=False)
class AnalystZone:
    day: dt.date
    report: dict
    records: pd.DataFrame = field(repr=False)  # quasi-identifiers and the sensitive attribute only

    @property
    def quasi_identifiers(self) -> list[str]:
        return list(self.report["verification"]["quasi_identifiers"])

    @property
    def sensitive(self) -> str | None:
        return self.report["verification"].get("sensitive")

    @property
    def k(self) -> int:
        return self.report["requirements"]["k"]


def latest_analyst_day(zones: Path) -> dt.date:
    days = sorted(p.name.removeprefix("date=") for p in (zones / "analyst").glob("date=*")
                  if (p / "report.json").is_file())
    if not days:
        raise FileNotFoundError(f"{zones / 'analyst'}: no analyst zone; run `make run` first")
    return dt.date.fromisoformat(days[-1])


def load_analyst_zone(catalog: Catalog, day: dt.date | None = None) -> AnalystZone:
    """The day's k-anonymous records (only the columns its report names) and report.json."""
    day = day or latest_analyst_day(catalog.zones_root)
    folder = catalog.analyst(day)
    report = json.loads((folder / "report.json").read_text())
    verification = report["verification"]
    columns = [*verification["quasi_identifiers"], *filter(None, [verification.get("sensitive")])]
    return AnalystZone(day, report, pd.read_parquet(url_of(folder / "records"), columns=columns))


def analyst_zone_summary(report: dict) -> pd.DataFrame:
    """Asked against achieved, suppression, information loss and risk (one row per figure)."""
    asked, achieved = report["requirements"], report["verification"]
    risk, loss = report["risk"], report["information_loss"]
    figures = {
        "subscribers": report["subscribers"],
        "k asked / achieved": f"{asked['k']} / {achieved['k']}",
        "distinct l asked / achieved": f"{asked.get('l')} / {achieved.get('l_distinct')}",
        "equivalence classes": achieved["classes"],
        "records suppressed (limit)": f"{report['suppressed_records']} ({asked['suppression_limit']:.0%})",
        "information loss (ARX Loss)": f"{loss['loss']:.3f}",
        "NCP": f"{loss['ncp']:.3f}",
        "prosecutor risk, highest": f"{risk['prosecutor']['highest']:.3f}",
        "prosecutor risk, average": f"{risk['prosecutor']['average']:.3f}",
        f"records above risk {risk['threshold']:g}": f"{risk['prosecutor']['records_at_risk']:.1%}",
        "journalist risk, highest": f"{risk['journalist']['highest']:.3f}",
        "marketer risk": f"{risk['marketer']:.3f}",
    }
    return pd.DataFrame({"figure": list(figures), "value": [str(v) for v in figures.values()]})


def hierarchy_heights(config_dir: Path) -> dict[str, int]:
    """Levels above the original value per quasi-identifier, '*' included."""
    hierarchies = load_analyst_config(config_dir).hierarchies
    return {column: len(next(iter(table.values()))) + 1 for column, table in hierarchies.items()}


def generalization_levels(report: dict, heights: Mapping[str, int]) -> pd.DataFrame:
    """The chosen level of each quasi-identifier against its hierarchy's height, with its loss."""
    levels, losses = report["transformation"], report["information_loss"]["loss_per_attribute"]
    rows = [{"quasi_identifier": qi, "level": level, "height": heights.get(qi), "loss": losses.get(qi)}
            for qi, level in levels.items()]
    return pd.DataFrame(rows)


def _released(records: pd.DataFrame, qis: Sequence[str]) -> pd.DataFrame:
    """Records not suppressed (a suppressed record has '*' in every quasi-identifier)."""
    return records[~(records[list(qis)] == SUPPRESSED).all(axis=1)]


def class_sizes(records: pd.DataFrame, qis: Sequence[str], sensitive: str | None = None) -> pd.DataFrame:
    """Released equivalence classes: subscribers, prosecutor risk (1 / size), distinct sensitive
    values; largest first."""
    grouped = _released(records, qis).groupby(list(qis), dropna=False)
    sizes = grouped.size().rename("subscribers").to_frame()
    sizes["risk"] = 1.0 / sizes["subscribers"]
    if sensitive:
        sizes["distinct_" + sensitive] = grouped[sensitive].nunique()
    return sizes.sort_values("subscribers", ascending=False, kind="stable").reset_index()


def sensitive_shares(records: pd.DataFrame, qis: Sequence[str], sensitive: str) -> pd.DataFrame:
    """Share of each sensitive value within each released class (rows: class labels)."""
    released = _released(records, qis)
    labels = cell_labels(released, list(qis)).rename("class")
    return pd.crosstab(labels, released[sensitive], normalize="index")
