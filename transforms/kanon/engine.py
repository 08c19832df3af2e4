"""The k-anonymity engine's one entry point: `anonymize(df, config) -> Anonymization`.

After ARX's `ARXAnonymizer.anonymize(data, config)`. The configuration
(`core.kanon.config.AnonymizationConfig`) picks the algorithm:
- "optimal": full-domain generalization. One Spark aggregation gives the frequency table
  of quasi-identifier combinations; the lattice search (`core.kanon.lattice`) finds the
  transformation with the least information loss that satisfies every privacy model
  (k, l-diversity, t-closeness) with at most the allowed share of records suppressed; the
  transformation is then applied to the records in Spark (`full_domain`).
- "mondrian": strict Mondrian local recoding along the hierarchies' subtrees (`mondrian`):
  k only, nothing suppressed.
Either way the output goes through the independent verifier (`verify`, which shares no code
with the engine) before it is returned: an output short of the requirements is refused,
never returned. Refusals are KAnonymityError with counts and column names, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from pyspark.sql import DataFrame

from core.kanon.config import AnonymizationConfig, Requirements
from core.kanon.lattice import search_optimal
from core.kanon.metrics import information_loss, reidentification_risk
from transforms.kanon.full_domain import apply_transformation, frequency_table
from transforms.kanon.mondrian import HierarchyQI, KAnonymityError, generalize_mondrian, ncp
from transforms.kanon.verify import Verification, verify

RISK_THRESHOLD = 0.2  # a record is "at risk" above a 1-in-5 chance of re-identification


@dataclass(frozen=True)
class MondrianPartitions:
    """The equivalence classes Mondrian cut: how many, the smallest (in units), Spark rounds run."""

    classes: int
    smallest_class: int
    spark_rounds: int


@dataclass(frozen=True)
class Anonymization:
    """An anonymized frame, what was done to it, what it costs in information, and its verification.

    `data` is persisted (the verifier read it, the caller writes the same rows): call
    `unpersist()` once it is written. The optimal search fills `transformation` (a level
    per quasi-identifier), `metric` and `lattice`; Mondrian fills `partitions`.
    `information_loss` and `risk` are the report's numbers, never values of the data.
    """

    data: DataFrame
    algorithm: str
    suppressed_records: int
    information_loss: Mapping[str, float]
    risk: Mapping[str, object]
    verification: Verification
    transformation: Mapping[str, int] | None = None
    metric: str | None = None
    lattice: Mapping[str, int] | None = None
    partitions: MondrianPartitions | None = None
    persisted: tuple[DataFrame, ...] = field(default=(), repr=False)

    def summary(self) -> dict:
        """The engine's part of a report: the algorithm, what it chose, its loss and risk."""
        if self.partitions is not None:
            chosen = asdict(self.partitions)
        else:
            chosen = {"metric": self.metric, "transformation": dict(self.transformation),
                      "lattice": dict(self.lattice)}
        return {
            "algorithm": self.algorithm,
            **chosen,
            "suppressed_records": self.suppressed_records,
            "information_loss": dict(self.information_loss),
            "risk": dict(self.risk),
        }

    def unpersist(self) -> None:
        for frame in self.persisted:
            frame.unpersist()


def anonymize(df: DataFrame, config: AnonymizationConfig) -> Anonymization:
    """`df` anonymized as `config` asks, verified independently; KAnonymityError if it cannot be.

    Every quasi-identifier value must be in its hierarchy (quarantine the others first).
    """
    if config.algorithm == "mondrian":
        return _mondrian(df, config)
    return _optimal(df, config)


def _optimal(df: DataFrame, config: AnonymizationConfig) -> Anonymization:
    req, hierarchies, unit = config.requirements, config.hierarchies, config.unit
    qis = list(config.quasi_identifiers)
    frequency = frequency_table(df, qis, sensitive=req.sensitive, unit=unit)
    result = search_optimal(
        frequency, hierarchies, qis, req.models(), req.suppression_limit, config.metric,
        sensitive=req.sensitive, unit=unit,
    )
    if result.transformation is None:
        raise KAnonymityError(
            f"no generalization of {', '.join(qis)} satisfies the requirements within a suppression "
            f"limit of {req.suppression_limit:g}; raise the limit or use coarser hierarchies"
        )
    levels = result.transformation.by_column
    output = apply_transformation(df, hierarchies, levels, result.suppressed).persist()
    risk = reidentification_risk(frequency, hierarchies, levels, threshold=RISK_THRESHOLD,
                                 suppressed=result.suppressed, unit=unit)
    return Anonymization(
        data=output,
        algorithm="optimal",
        suppressed_records=result.suppressed_records,
        information_loss=asdict(information_loss(frequency, hierarchies, levels, result.suppressed, unit)),
        risk=asdict(risk),
        verification=_verified(output, config, also_drop=(output,)),
        transformation=levels,
        metric=config.metric,
        lattice={"nodes": result.nodes_total, "checked": result.nodes_checked,
                 "pruned": result.nodes_pruned, "anonymous": len(result.anonymous)},
        persisted=(output,),
    )


def _mondrian(df: DataFrame, config: AnonymizationConfig) -> Anonymization:
    """Strict Mondrian local recoding along the hierarchies' subtrees (k only, no suppression)."""
    req = config.requirements
    if req.l is not None or req.t is not None:
        raise KAnonymityError(
            "mondrian enforces k only; use --algorithm optimal for l-diversity or t-closeness"
        )
    qis = [HierarchyQI(column, hierarchy) for column, hierarchy in config.hierarchies.items()]
    recoding = generalize_mondrian(df, qis, req.k, config.unit)
    output = recoding.data.persist()
    verification = _verified(output, config, also_drop=(output, recoding.cached))
    rows = verification.rows  # every record is in a class: nothing is suppressed
    return Anonymization(
        data=output,
        algorithm="mondrian",
        suppressed_records=0,
        information_loss={"ncp": ncp(recoding.classes)},
        risk={"prosecutor": {"highest": 1 / recoding.smallest_class, "average": recoding.class_count / rows}},
        verification=verification,
        partitions=MondrianPartitions(recoding.class_count, recoding.smallest_class, recoding.spark_rounds),
        persisted=(output, recoding.cached),
    )


def _verified(
    output: DataFrame, config: AnonymizationConfig, also_drop: tuple[DataFrame, ...]
) -> Verification:
    """The independent verifier's result; an output that falls short is never returned
    (`also_drop`: the persisted frames behind it, released on refusal)."""
    req = config.requirements
    result = verify(output, list(config.quasi_identifiers), sensitive=req.sensitive, unit=config.unit)
    short = _shortfalls(result, req)
    if short:
        for frame in also_drop:
            frame.unpersist()
        raise KAnonymityError(f"the anonymized output failed independent verification: {'; '.join(short)}")
    return result


def _shortfalls(result: Verification, req: Requirements) -> list[str]:
    short = []
    if result.k is not None and result.k < req.k:
        short.append(f"k is {result.k}, below {req.k}")
    if req.l is not None and req.l_kind == "distinct" and (result.l_distinct or 0) < req.l:
        short.append(f"distinct l is {result.l_distinct}, below {req.l}")
    if req.t is not None:
        achieved = result.t_ordered if req.t_distance == "ordered" else result.t_equal
        if achieved is not None and achieved > req.t + 1e-9:
            short.append(f"t is {achieved:.4f}, above {req.t}")
    return short
