"""`kr-reports kanon`: a record-level table made k-anonymous (optionally l-diverse, t-close).

Reads a delimited file, quarantines rows whose quasi-identifier values are
not in their hierarchy (with a reason; rows in = rows used + quarantined),
anonymizes with the optimal full-domain search (or Mondrian), and runs the
independent verifier on the output before anything is written. Writes the
anonymized table and `report.json` to OUT: the chosen transformation,
suppressed records, every information-loss metric, the re-identification
risk and the verifier's result. The report holds numbers and column names
only, never values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from core.kanon import models as M
from core.kanon.hierarchy import Hierarchy, find_hierarchies
from core.kanon.lattice import search_optimal
from core.kanon.metrics import information_loss, reidentification_risk
from core.kanon.models import KAnonymityError
from core.store import write_atomically
from stages.spark import get_spark
from transforms.kanon.full_domain import apply_transformation, frequency_table
from transforms.kanon.mondrian import HierarchyQI, generalize_mondrian
from transforms.kanon.mondrian import ncp as mondrian_ncp
from transforms.kanon.verify import Verification, verify

REASON_COLUMN = "reason"
RISK_THRESHOLD = 0.2  # a record is "at risk" above a 1-in-5 chance of re-identification


@dataclass(frozen=True)
class Requirements:
    """What the output must satisfy."""

    k: int
    l: int | None = None  # noqa: E741 - the model's name for it
    l_kind: str = "distinct"  # distinct | entropy | recursive
    c: float | None = None  # recursive (c, l)
    t: float | None = None
    t_distance: str = "equal"  # equal | ordered
    sensitive: str | None = None
    suppression_limit: float = 0.0

    def models(self) -> list:
        chosen = [M.KAnonymity(self.k)]
        if self.l is not None:
            if self.l_kind == "entropy":
                chosen.append(M.EntropyLDiversity(self.l))
            elif self.l_kind == "recursive":
                chosen.append(M.RecursiveCLDiversity(self.c, self.l))
            else:
                chosen.append(M.DistinctLDiversity(self.l))
        if self.t is not None:
            model = M.OrderedDistanceTCloseness if self.t_distance == "ordered" else M.EqualDistanceTCloseness
            chosen.append(model(self.t))
        return chosen


def check_requirements(req: Requirements) -> None:
    if req.k < 1:
        raise KAnonymityError(f"k must be at least 1, got {req.k}")
    if (req.l is not None or req.t is not None) and req.sensitive is None:
        raise KAnonymityError("l-diversity and t-closeness need --sensitive COL")
    if req.l_kind == "recursive" and req.c is None:
        raise KAnonymityError("recursive (c, l)-diversity needs --c")
    if not 0 <= req.suppression_limit < 1:
        raise KAnonymityError(f"suppression limit must be in [0, 1), got {req.suppression_limit}")


def read_table(path: Path, sep: str) -> DataFrame:
    if not path.exists():
        raise KAnonymityError(f"{path}: input not found")
    return get_spark().read.option("header", True).option("sep", sep).csv(str(path))


def _check_columns(df: DataFrame, path: Path, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KAnonymityError(f"{path}: no column {', '.join(repr(c) for c in missing)} in its header")


def with_quarantine_reason(df: DataFrame, hierarchies: Mapping[str, Hierarchy]) -> DataFrame:
    """A `reason` column: null for usable rows, else which column's value its hierarchy lacks."""
    reason = F.lit(None).cast("string")
    for column, hierarchy in reversed(list(hierarchies.items())):
        unknown = ~F.col(column).isin(list(hierarchy.values)) | F.col(column).isNull()
        reason = F.when(unknown, F.lit(f"{column}: value not in its hierarchy")).otherwise(reason)
    return df.withColumn(REASON_COLUMN, reason)


def verified(output: DataFrame, qis: Sequence[str], req: Requirements, unit: str | None) -> Verification:
    """The independent verifier's result; an output that falls short is never written."""
    result = verify(output, list(qis), sensitive=req.sensitive, unit=unit)
    short = []
    if result.k is not None and result.k < req.k:
        short.append(f"k is {result.k}, below {req.k}")
    if req.l is not None and req.l_kind == "distinct" and (result.l_distinct or 0) < req.l:
        short.append(f"distinct l is {result.l_distinct}, below {req.l}")
    if req.t is not None:
        achieved = result.t_ordered if req.t_distance == "ordered" else result.t_equal
        if achieved is not None and achieved > req.t + 1e-9:
            short.append(f"t is {achieved:.4f}, above {req.t}")
    if short:
        raise KAnonymityError(f"the anonymized output failed independent verification: {'; '.join(short)}")
    return result


def anonymize_optimal(
    usable: DataFrame, hierarchies: Mapping[str, Hierarchy], req: Requirements, metric: str, unit: str | None
) -> tuple[DataFrame, dict]:
    """Optimal full-domain generalization: the output frame and the report's search part."""
    qis = list(hierarchies)
    frequency = frequency_table(usable, qis, sensitive=req.sensitive, unit=unit)
    result = search_optimal(
        frequency, hierarchies, qis, req.models(), req.suppression_limit, metric,
        sensitive=req.sensitive, unit=unit,
    )
    if result.transformation is None:
        raise KAnonymityError(
            f"no generalization of {', '.join(qis)} satisfies the requirements within a suppression "
            f"limit of {req.suppression_limit:g}; raise the limit or use coarser hierarchies"
        )
    levels = result.transformation.by_column
    output = apply_transformation(usable, hierarchies, levels, result.suppressed)
    report = {
        "algorithm": "optimal",
        "metric": metric,
        "transformation": levels,
        "suppressed_records": result.suppressed_records,
        "lattice": {"nodes": result.nodes_total, "checked": result.nodes_checked,
                    "pruned": result.nodes_pruned, "anonymous": len(result.anonymous)},
        "information_loss": asdict(information_loss(frequency, hierarchies, levels, result.suppressed, unit)),
        "risk": asdict(reidentification_risk(frequency, hierarchies, levels, threshold=RISK_THRESHOLD,
                                             suppressed=result.suppressed, unit=unit)),
    }
    return output, report


def kanon_file(
    input_path: Path,
    out: Path,
    quasi_identifiers: Sequence[str],
    hierarchy_dir: Path,
    req: Requirements,
    *,
    sep: str = ";",
    metric: str = "loss",
    algorithm: str = "optimal",
    unit: str | None = None,
    hierarchy_files: Mapping[str, str] | None = None,
    quarantine: Path | None = None,
) -> dict:
    check_requirements(req)
    df = read_table(input_path, sep)
    _check_columns(df, input_path, [*quasi_identifiers, *(c for c in (req.sensitive, unit) if c)])
    hierarchies = find_hierarchies(hierarchy_dir, quasi_identifiers, hierarchy_files, sep)
    flagged = with_quarantine_reason(df, hierarchies).persist()
    try:
        rows_in = flagged.count()
        usable = flagged.where(F.col(REASON_COLUMN).isNull()).drop(REASON_COLUMN).persist()
        rejected = flagged.where(F.col(REASON_COLUMN).isNotNull())
        by_reason = {r[REASON_COLUMN]: r["count"] for r in rejected.groupBy(REASON_COLUMN).count().collect()}
        rows_used = rows_in - sum(by_reason.values())
        if algorithm == "mondrian":
            output, search = anonymize_mondrian(usable, hierarchies, req, unit, rows_used)
        else:
            output, search = anonymize_optimal(usable, hierarchies, req, metric, unit)
        output = output.persist()
        verification = verified(output, quasi_identifiers, req, unit)
        report = _report(input_path, rows_in, by_reason, req, search, verification, out, quarantine)
        _write(out, output, sep, report)
        if by_reason and quarantine is not None:
            rejected.write.mode("overwrite").option("header", True).option("sep", sep).csv(str(quarantine))
        output.unpersist()
        usable.unpersist()
    finally:
        flagged.unpersist()
    return report


def anonymize_mondrian(
    usable: DataFrame, hierarchies: Mapping[str, Hierarchy], req: Requirements, unit: str | None, rows: int
) -> tuple[DataFrame, dict]:
    """Strict Mondrian local recoding along the hierarchies' subtrees (k only, no suppression)."""
    if req.l is not None or req.t is not None:
        raise KAnonymityError(
            "mondrian enforces k only; use --algorithm optimal for l-diversity or t-closeness"
        )
    qis = [HierarchyQI(column, hierarchy) for column, hierarchy in hierarchies.items()]
    recoding = generalize_mondrian(usable, qis, req.k, unit)
    report = {
        "algorithm": "mondrian",
        "classes": recoding.class_count,
        "smallest_class": recoding.smallest_class,
        "spark_rounds": recoding.spark_rounds,
        "suppressed_records": 0,
        "information_loss": {"ncp": mondrian_ncp(recoding.classes)},
        "risk": {"prosecutor": {"highest": 1 / recoding.smallest_class,
                                "average": recoding.class_count / rows}},
    }
    return recoding.data, report


def _report(input_path, rows_in, by_reason, req, search, verification, out, quarantine) -> dict:
    quarantined = sum(by_reason.values())
    return {
        "input": str(input_path),
        "rows_in": rows_in,
        "rows_used": rows_in - quarantined,
        "rows_quarantined": quarantined,
        "quarantined_by_reason": by_reason,
        "quarantine": str(quarantine) if quarantined and quarantine is not None else None,
        "requirements": asdict(req),
        **search,
        "verification": verification.to_dict(),
        "output": str(out / "anonymized"),
    }


def _write(out: Path, output: DataFrame, sep: str, report: dict) -> None:
    """Table and report land together, or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)

    def fill(folder: Path) -> None:
        output.write.option("header", True).option("sep", sep).csv(str(folder / "anonymized"))
        (folder / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))

    if not write_atomically(out, fill):
        raise KAnonymityError(f"{out}: already exists; choose a new output folder")
