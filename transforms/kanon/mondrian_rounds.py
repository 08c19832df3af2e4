"""Mondrian's Spark side: ranks for every row, rounds of cuts on Spark, then the in-memory finish.

Top levels run on Spark, one round per tree level: the driver proposes a cut for every
large partition from a row sample carried by the previous round's aggregation, a broadcast
join assigns candidate children, and one aggregation counts them exactly. A cut is kept
only if every child has at least k units, so a bad sample costs utility, never privacy.
Partitions of at most `local_rows` rows are finished by `applyInPandas`, one group per
partition, with the same rule on exact in-memory numbers (`core.kanon.mondrian`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from core.kanon.mondrian import (
    Domain,
    HierarchyQI,
    NumericQI,
    OrderedQI,
    QuasiIdentifier,
    Rules,
    box_labels,
    box_widths,
    hierarchy_domain,
    lca_level,
    mondrian_classes,
    ordered_domain,
    propose_cuts,
)

PREFIX = "__mondrian_"
PART = f"{PREFIX}part"
CHILD = f"{PREFIX}child"
DIM = f"{PREFIX}dim"
CUTS = f"{PREFIX}cuts"
CHILDREN = f"{PREFIX}children"
SAMPLE_P = f"{PREFIX}sample_p"
SAMPLE = f"{PREFIX}sample"
UNIT = f"{PREFIX}unit"
ROOT_ID = 0
ROWS_COLUMN = "rows"
UNITS_COLUMN = "units"
NCP_PREFIX = "ncp_"


# --- Spark -------------------------------------------------------------------------------------------


def column_named(name: str) -> Column:
    """A column by its exact name (dots, hyphens)."""
    return F.col("`" + name.replace("`", "``") + "`")


def rank_column(i: int) -> str:
    return f"{PREFIX}rank_{i}"


def _label_col(i: int) -> str:
    return f"{PREFIX}label_{i}"


def penalty_column(i: int) -> str:
    return f"{PREFIX}ncp_{i}"


def _units(unit: str | None) -> Column:
    return F.countDistinct(UNIT) if unit else F.count(F.lit(1))


def with_ranks(df: DataFrame, qis: Sequence[QuasiIdentifier], unit: str | None) -> DataFrame:
    """The input plus one double rank per QI (null: null or outside the order/hierarchy) and the unit."""
    spark = df.sparkSession
    ranked = df.select(
        "*",
        *[
            column_named(qi.column).cast("double").alias(rank_column(i))
            for i, qi in enumerate(qis)
            if isinstance(qi, NumericQI)
        ],
        *([column_named(unit).alias(UNIT)] if unit else []),
    )
    for i, qi in enumerate(qis):
        if isinstance(qi, NumericQI):
            continue
        names = qi.order if isinstance(qi, OrderedQI) else hierarchy_domain(qi.hierarchy).names
        value = f"{PREFIX}value_{i}"
        lookup = spark.createDataFrame(
            [(v, float(r)) for r, v in enumerate(names)], f"`{value}` string, `{rank_column(i)}` double"
        )
        # A broadcast hash join, not a literal map: map lookups scan every key for every row.
        ranked = ranked.join(
            F.broadcast(lookup), column_named(qi.column).cast("string") == column_named(value), how="left"
        ).drop(value)
    return ranked


@dataclass(frozen=True, eq=False)
class _Part:
    """A partition on the Spark level, with exact counts and box and a uniform sample of its rows."""

    id: int
    rows: int
    units: int
    lo: np.ndarray
    hi: np.ndarray
    allowed: np.ndarray
    sample: np.ndarray  # (sampled rows, QIs) ranks


def refuse_unranked(unranked: dict[str, int]) -> None:
    """ValueError naming, per QI column, how many records have a value with no rank."""
    if unranked:  # counts only: the values themselves may be personal data
        raise ValueError(
            f"values that are null, NaN or outside their order/hierarchy, per column: {unranked}"
        )


def root_part(ranks: DataFrame, qis, unit, local_rows: int, sample_rows: int, seed: int) -> _Part:
    d = len(qis)
    missing = [F.col(rank_column(i)).isNull() | F.isnan(rank_column(i)) for i in range(d)]
    stats = ranks.agg(
        F.count(F.lit(1)),
        _units(unit),
        *[F.min(rank_column(i)) for i in range(d)],
        *[F.max(rank_column(i)) for i in range(d)],
        *[F.count_if(m) for m in missing],
    ).first()
    refuse_unranked({qi.column: stats[2 + 2 * d + i] for i, qi in enumerate(qis) if stats[2 + 2 * d + i]})
    sample = np.empty((0, d))
    if stats[0] > local_rows:  # else the in-memory finish takes the whole table: no cut on Spark
        fraction = min(1.0, sample_rows / stats[0])
        sampled = ranks if fraction >= 1 else ranks.sample(fraction=fraction, seed=seed)
        # A bounded sample (about `sample_rows` rows of the QI ranks), so collecting it is safe.
        collected = sampled.select(*[rank_column(i) for i in range(d)]).toPandas()
        sample = collected.to_numpy(dtype=float).reshape(-1, d)
    return _Part(
        ROOT_ID,
        stats[0],
        stats[1],
        np.array(stats[2 : 2 + d], dtype=float),
        np.array(stats[2 + d : 2 + 2 * d], dtype=float),
        np.ones(d, dtype=bool),
        sample,
    )


def qi_domains(qis, lo: np.ndarray, hi: np.ndarray, schema: T.StructType) -> tuple[Domain, ...]:
    """Each QI's domain; numeric ones span the table's smallest to largest value (`lo`, `hi`)."""

    def domain(i: int, qi: QuasiIdentifier) -> Domain:
        if isinstance(qi, OrderedQI):
            return ordered_domain(qi.order)
        if isinstance(qi, HierarchyQI):
            return hierarchy_domain(qi.hierarchy)
        integral = isinstance(schema[qi.column].dataType, T.IntegralType)
        return Domain("numeric", float(lo[i]), float(hi[i]), integral=integral)

    return tuple(domain(i, qi) for i, qi in enumerate(qis))


def _splittable(part: _Part, rules: Rules) -> bool:
    widths = box_widths(rules.domains, part.lo[None, :], part.hi[None, :])[0]
    return part.units >= 2 * rules.k and bool((part.allowed & (widths > 0)).any())


def _child_bounds(dom: Domain, lo: float, hi: float) -> list[float]:
    """Cut values between the child subtrees of the node covering lo..hi (hierarchy QIs)."""
    level = int(lca_level(dom, np.array([lo]), np.array([hi]))[0])
    below = dom.ancestors[level - 1, int(lo) : int(hi) + 1]
    return [float(lo + i) for i in np.flatnonzero(below[:-1] != below[1:])]


def _plan_round(active: list[_Part], rules: Rules, next_id: int, sample_rows: int) -> list[tuple]:
    """One candidate cut per active partition: (part, QI, cut values, child ids, sample fraction)."""
    groups = np.concatenate([np.full(len(p.sample), g) for g, p in enumerate(active)]).astype(np.int64)
    sample = np.vstack([p.sample for p in active])
    lo = np.vstack([p.lo for p in active])
    hi = np.vstack([p.hi for p in active])
    allowed = np.vstack([p.allowed for p in active])
    dim, cut = propose_cuts(sample, groups, lo, hi, allowed, rules)
    plan = []
    for g, part in enumerate(active):
        j = int(dim[g])
        dom = rules.domains[j]
        cuts = _child_bounds(dom, lo[g, j], hi[g, j]) if dom.kind == "hierarchy" else [float(cut[g])]
        children = list(range(next_id, next_id + len(cuts) + 1))
        next_id += len(children)
        # Children are about half their parent: twice the parent's rate gives each ~sample_rows.
        plan.append((part.id, j, cuts, children, min(1.0, 2 * sample_rows / part.rows)))
    return plan


CUT_SCHEMA = T.StructType(
    [
        T.StructField(PART, T.LongType(), False),
        T.StructField(DIM, T.IntegerType(), False),
        T.StructField(CUTS, T.ArrayType(T.DoubleType(), False), False),
        T.StructField(CHILDREN, T.ArrayType(T.LongType(), False), False),
        T.StructField(SAMPLE_P, T.DoubleType(), False),
    ]
)


def _child_of(d: int) -> Column:
    """The child a row falls in: how many of its partition's cuts lie below its rank on the cut QI."""
    value = F.element_at(F.array(*[F.col(rank_column(i)) for i in range(d)]), F.col(DIM) + 1)
    below = F.size(F.filter(F.col(CUTS), lambda c: c < value))
    return F.element_at(F.col(CHILDREN), below + 1)


def _round_stats(assigned: DataFrame, cuts: DataFrame, d: int, unit, seed: int) -> dict[int, _Part]:
    """Exact rows, units and box of every candidate child, plus a sample of its rows; one aggregation."""
    ranks = [F.col(rank_column(i)) for i in range(d)]
    sampled = F.when(F.rand(seed) < F.col(SAMPLE_P), F.array(*ranks))
    stats = (
        assigned.join(F.broadcast(cuts), on=PART, how="inner")
        .select(*ranks, *([F.col(UNIT)] if unit else []), _child_of(d).alias(CHILD), sampled.alias(SAMPLE))
        .groupBy(CHILD)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            _units(unit).alias("units"),
            *[F.min(r) for r in ranks],
            *[F.max(r) for r in ranks],
            F.collect_list(SAMPLE).alias(SAMPLE),
        )
        .collect()
    )
    return {
        row[0]: _Part(
            row[0],
            row[1],
            row[2],
            np.array(row[3 : 3 + d], dtype=float),
            np.array(row[3 + d : 3 + 2 * d], dtype=float),
            np.ones(d, dtype=bool),
            np.array(row[SAMPLE], dtype=float).reshape(-1, d),
        )
        for row in stats
    }


def _settle(active: list[_Part], plan: list[tuple], stats: dict[int, _Part], k: int):
    """Keep a cut when all its children have >= k units; else close that QI for the partition."""
    parts, kept = [], []
    for part, row in zip(active, plan, strict=True):
        children = [stats[c] for c in row[3] if c in stats]
        if len(children) >= 2 and min(c.units for c in children) >= k:
            parts.extend(children)
            kept.append(row)
        else:
            allowed = part.allowed.copy()
            allowed[row[1]] = False
            sample = np.vstack([part.sample[:0], *[c.sample for c in children]])
            parts.append(replace(part, allowed=allowed, sample=sample))
    return parts, kept


def apply_cuts(assigned: DataFrame, cuts: DataFrame, d: int) -> DataFrame:
    joined = assigned.join(F.broadcast(cuts), on=PART, how="left")
    part = F.when(F.col(DIM).isNotNull(), _child_of(d)).otherwise(F.col(PART))
    return joined.select(*[c for c in assigned.columns if c != PART], part.alias(PART))


def with_root_part(ranked: DataFrame) -> DataFrame:
    return ranked.select("*", F.lit(ROOT_ID).cast("long").alias(PART))


def split_on_spark(ranks: DataFrame, root, rules: Rules, unit, local_rows, sample_rows, seed):
    """Cut partitions larger than `local_rows` on Spark, one aggregation per round.

    `ranks` holds the QI ranks (and unit) of every row. Returns the kept cuts
    of each round (to replay on whole rows), the final partitions (nothing left
    to cut), the ids of partitions to finish in memory, and the rounds run.
    """
    d = len(rules.domains)
    spark = ranks.sparkSession
    assigned = with_root_part(ranks)
    replay = []
    pending, finals, local_ids = [root], [], []
    next_id, rounds = ROOT_ID + 1, 0
    while pending:
        active = []
        for part in pending:
            if not _splittable(part, rules):
                finals.append(part)
            elif part.rows <= local_rows:
                local_ids.append(part.id)
            else:
                active.append(part)
        if not active:
            break
        rounds += 1
        plan = _plan_round(active, rules, next_id, sample_rows)
        next_id = max(c for row in plan for c in row[3]) + 1
        stats = _round_stats(assigned, spark.createDataFrame(plan, CUT_SCHEMA), d, unit, seed + rounds)
        pending, kept = _settle(active, plan, stats, rules.k)
        if kept:
            replay.append(spark.createDataFrame(kept, CUT_SCHEMA))
            assigned = apply_cuts(assigned, replay[-1], d)
    return replay, finals, local_ids, rounds


def _recoded_schema(df: DataFrame, qis) -> T.StructType:
    columns = {qi.column for qi in qis}
    fields = [T.StructField(f.name, T.StringType(), True) if f.name in columns else f for f in df.schema]
    penalties = [T.StructField(penalty_column(i), T.DoubleType(), False) for i in range(len(qis))]
    return T.StructType(fields + penalties)


def _finals_table(spark, finals: list[_Part], qis, domains) -> DataFrame:
    """Generalized values and penalties of the partitions finished on Spark (a small table)."""
    lo = np.vstack([p.lo for p in finals])
    hi = np.vstack([p.hi for p in finals])
    widths = box_widths(domains, lo, hi)
    table = pd.DataFrame({PART: [p.id for p in finals]})
    for i, dom in enumerate(domains):
        table[_label_col(i)] = box_labels(dom, lo[:, i], hi[:, i])
        table[penalty_column(i)] = widths[:, i]
    schema = T.StructType(
        [T.StructField(PART, T.LongType(), False)]
        + [
            column
            for i in range(len(qis))
            for column in (
                T.StructField(_label_col(i), T.StringType(), False),
                T.StructField(penalty_column(i), T.DoubleType(), False),
            )
        ]
    )
    return spark.createDataFrame(table, schema)


def _finish_in_memory(columns, qis, rules: Rules, unit):
    """The grouped-map function: one Spark-level partition in, its rows recoded out.

    A pandas function because the recursion over a partition's own rows has no
    native Spark form; it also writes the generalized values, so the rows need
    no second shuffle to meet their class's box.
    """
    rank_columns = [rank_column(i) for i in range(len(qis))]
    qi_index = {qi.column: i for i, qi in enumerate(qis)}

    def recode(rows: pd.DataFrame) -> pd.DataFrame:
        ranks = rows[rank_columns].to_numpy(dtype=float)
        units = pd.factorize(rows[UNIT])[0] if unit else None
        classes = mondrian_classes(ranks, units, rules)
        by_class = pd.DataFrame(ranks).groupby(classes)
        lo, hi = by_class.min().to_numpy(), by_class.max().to_numpy()
        widths = box_widths(rules.domains, lo, hi)
        out = {}
        for column in columns:
            i = qi_index.get(column)
            out[column] = (
                rows[column] if i is None else box_labels(rules.domains[i], lo[:, i], hi[:, i])[classes]
            )
        out |= {penalty_column(i): widths[classes, i] for i in range(len(qis))}
        return pd.DataFrame(out, index=rows.index)

    return recode


def recoded_rows(df, assigned, qis, rules: Rules, finals, local_ids, unit) -> DataFrame:
    """Every row with its QIs generalized and its per-QI penalty (internal columns)."""
    schema = _recoded_schema(df, qis)
    qi_index = {qi.column: i for i, qi in enumerate(qis)}
    branches = []
    if finals:
        table = _finals_table(df.sparkSession, finals, qis, rules.domains)
        branches.append(
            assigned.join(F.broadcast(table), on=PART, how="inner").select(
                *[column_named(_label_col(qi_index[c])).alias(c) if c in qi_index else column_named(c)
                  for c in df.columns],
                *[F.col(penalty_column(i)) for i in range(len(qis))],
            )
        )
    if local_ids:
        finish = _finish_in_memory(df.columns, qis, rules, unit)
        branches.append(
            assigned.where(F.col(PART).isin(local_ids)).groupBy(PART).applyInPandas(finish, schema)
        )
    recoded = branches[0]
    for branch in branches[1:]:
        recoded = recoded.unionByName(branch)
    return recoded
