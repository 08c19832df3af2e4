"""The analyst zone: the day's subscriber records, k-anonymous and l-diverse, with their report.

Built from the protected zone (never from raw data), anonymized by the
optimal full-domain search with the hierarchies in config/analyst.yaml,
checked by the independent verifier and by a Great Expectations suite on
its class sizes, then written with `report.json` (transformation, suppressed
records, information loss, risk, verification).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.config import AnalystConfig
from core.kanon.builders import tree
from core.kanon.hierarchy import Hierarchy
from core.location import url_of, write_once
from core.schemas import SOURCES
from expectations.runner import validate_dataframe
from expectations.suites import CLASS_SIZE, build_analyst_suite
from stages.catalog import Catalog, read_parquet
from stages.spark import get_spark
from transforms.analyst import QUASI_IDENTIFIERS, SENSITIVE, analyst_records
from transforms.kanon import AnonymizationConfig, Requirements, anonymize

OTHER = "other"


def hierarchies_for(records: DataFrame, config: AnalystConfig) -> dict[str, Hierarchy]:
    """The configured trees, with any value the data has but the config lacks under 'other'."""
    present = records.agg(*[F.collect_set(c).alias(c) for c in QUASI_IDENTIFIERS]).first()
    built = {}
    for column in QUASI_IDENTIFIERS:
        table = dict(config.hierarchies[column])
        depth = len(next(iter(table.values())))
        for value in present[column]:
            table.setdefault(value, (OTHER,) * depth)
        built[column] = tree(column, table)
    return built


def class_sizes(output: DataFrame) -> DataFrame:
    """Subscribers per released equivalence class (suppressed records are not a class)."""
    suppressed = F.lit(True)
    for column in QUASI_IDENTIFIERS:
        suppressed = suppressed & F.col(column).eqNullSafe("*")
    released = output.where(~suppressed)
    return released.groupBy(*QUASI_IDENTIFIERS).agg(F.count(F.lit(1)).alias(CLASS_SIZE))


def build_analyst_zone(catalog: Catalog, day: dt.date, config: AnalystConfig) -> dict:
    """Build the day's analyst zone once; a re-run returns the one already built."""
    final = catalog.analyst(day)
    if (final / "report.json").is_file():
        return {**json.loads((final / "report.json").read_text()), "path": str(final), "reused": True}
    spark = get_spark()
    frames = {name: read_parquet(spark, catalog.protected(SOURCES[name], day))
              for name in ("subscribers", "devices", "network_flows")}
    records = analyst_records(frames["subscribers"], frames["devices"], frames["network_flows"]).persist()
    try:
        req = Requirements(k=config.k, l=config.l, sensitive=SENSITIVE if config.l else None,
                           suppression_limit=config.suppression_limit)
        engine = AnonymizationConfig(hierarchies_for(records, config), req, metric=config.metric)
        result = anonymize(records, engine)
        suite = build_analyst_suite(config.k, QUASI_IDENTIFIERS)
        validation = validate_dataframe(class_sizes(result.data), suite, label=f"analyst zone {day}")
        report = {
            "day": day.isoformat(),
            "subscribers": records.count(),
            "requirements": {"k": config.k, "l": config.l, "suppression_limit": config.suppression_limit},
            **result.summary(),
            "verification": result.verification.to_dict(),
            "validation": validation,
        }
        _write(final, result.data, report)
        result.unpersist()
    finally:
        records.unpersist()
    return {**report, "path": str(final), "reused": False}


def _write(final: Path, output: DataFrame, report: dict) -> None:
    def fill(folder: Path) -> None:
        output.write.parquet(url_of(folder / "records"))
        (folder / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))  # last

    write_once(final, fill, marker="report.json")
