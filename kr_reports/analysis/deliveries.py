"""Deliveries as a partner gets them: found, checked against their checksums, read."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.cells import PUBLISHED, STATUS, ci95_high_column, ci95_low_column, noise_sd_column
from core.config import (
    Aggregation,
    ReportSpec,
)
from stages.delivery import parse_delivery_folder, verify_checksums


@dataclass(frozen=True, eq=False)
class Delivery:
    path: Path
    manifest: dict
    data: pd.DataFrame = field(repr=False)

    @property
    def spec(self) -> ReportSpec:
        return ReportSpec.model_validate(self.manifest["spec"])

    @property
    def aggregation(self) -> Aggregation:
        return self.spec.aggregation

    @property
    def report(self) -> str:
        return self.manifest["report"]

    @property
    def period(self) -> dt.date:
        return dt.date.fromisoformat(self.manifest["period"])

    @property
    def keys(self) -> tuple[str, ...]:
        return self.aggregation.group_columns

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every released value column, in the manifest's order."""
        return tuple(out for m in self.manifest["privacy"]["metrics"] for out in m["outputs"])

    def metric_of(self, output: str) -> dict:
        return next(m for m in self.manifest["privacy"]["metrics"] if output in m["outputs"])


def find_deliveries(out_dir: Path) -> pd.DataFrame:
    """One row per delivery folder (partner, report, period, release number, path), in order.
    Hidden staging folders of a delivery being written are not deliveries."""
    rows = []
    for manifest in sorted((out_dir / "deliveries").glob("*/*/*/manifest.json")):
        if any(part.startswith(".") for part in manifest.parts[-4:-1]):
            continue
        period, number = parse_delivery_folder(manifest.parts[-2])
        rows.append({"partner": manifest.parts[-4], "report": manifest.parts[-3], "period": period,
                     "release": number, "path": manifest.parent})
    frame = pd.DataFrame(rows, columns=["partner", "report", "period", "release", "path"])
    return frame.sort_values(["report", "period", "release"], kind="stable").reset_index(drop=True)


def choose_delivery(deliveries: pd.DataFrame, report: str | None = None) -> Path:
    """The latest delivery of `report` (its last period's last release); without a name, of the
    first report found."""
    if deliveries.empty:
        raise LookupError("no deliveries found; run `make run` (or set KR_OUT_DIR) first")
    name = report or deliveries["report"].iloc[0]
    matching = deliveries[deliveries["report"] == name]
    if matching.empty:
        known = ", ".join(sorted(deliveries["report"].unique()))
        raise LookupError(f"no delivery of report '{name}'; delivered: {known}")
    return Path(matching["path"].iloc[-1])


def load_delivery(path: Path) -> Delivery:
    """A delivery, after checking its files against the manifest's SHA-256."""
    verify_checksums(path)
    manifest = json.loads((path / "manifest.json").read_text())
    return Delivery(path=path, manifest=manifest, data=pd.read_parquet(path / "data.parquet"))


def delivery_summary(delivery: Delivery) -> pd.DataFrame:
    """What was released, to whom, at which privacy cost (one row per fact)."""
    m, spec = delivery.manifest, delivery.aggregation
    bounds = spec.contribution
    statuses = delivery.data[STATUS].value_counts().sort_index()
    facts = {
        "report": m["report"], "partner": m["partner"], "purpose": m["purpose"],
        "period": m["period"], "release": m["release_id"], "accounting": spec.accounting,
        "epsilon": m["privacy"]["epsilon"], "delta": m["privacy"]["delta"],
        "cells per subscriber (max)": bounds.max_groups_per_subscriber,
        "rows per cell (max)": bounds.max_rows_per_group,
        "k (min noisy subscribers)": spec.min_subscribers,
        **{f"cells {status}": int(n) for status, n in statuses.items()},
    }
    return pd.DataFrame({"fact": list(facts), "value": [str(v) for v in facts.values()]})


def noise_table(delivery: Delivery) -> pd.DataFrame:
    """Each metric's noised parts: mechanism, sensitivity, noise sd and 95% half-width."""
    rows = [
        {"metric": m["name"], "kind": m["kind"], "epsilon": m["epsilon"], **part}
        for m in delivery.manifest["privacy"]["metrics"] for part in m["parts"]
    ]
    return pd.DataFrame(rows)


def cell_labels(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """'Seoul / 13'; a remainder row's rolled-up key reads 'remainder'."""
    parts = [frame[k].astype("string").fillna("remainder") for k in keys]
    return parts[0].str.cat(parts[1:], sep=" / ") if len(parts) > 1 else parts[0]


def released_values(delivery: Delivery, output: str) -> pd.DataFrame:
    """Published cells of one output with noise sd and 95% interval (withheld cells left out)."""
    return table_values(delivery.data, delivery.keys, output)


def table_values(data: pd.DataFrame, keys: Sequence[str], output: str) -> pd.DataFrame:
    """`released_values` of any release table (a delivery's, or one from the Releaser)."""
    published = data[data[STATUS].isin(PUBLISHED) & data[output].notna()]
    keys = list(keys)
    frame = published[[*keys, STATUS]].copy()
    frame.insert(len(keys), "cell", cell_labels(published, keys))
    frame["output"] = output
    frame["released"] = published[output].astype(float)
    frame["noise_sd"] = published[noise_sd_column(output)].astype(float)
    frame["low"] = published[ci95_low_column(output)].astype(float)
    frame["high"] = published[ci95_high_column(output)].astype(float)
    return frame.reset_index(drop=True)
