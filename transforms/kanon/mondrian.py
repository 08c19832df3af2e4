"""Mondrian multidimensional local recoding (strict), on Spark.

LeFevre, DeWitt and Ramakrishnan, "Mondrian Multidimensional K-Anonymity"
(ICDE 2006): split the table recursively, each time on the quasi-identifier
(QI) whose range in the partition is widest relative to the table's, at that
QI's median, as long as both halves keep at least k subscribers. Every final
partition is one equivalence class; each record's QIs are replaced by the
class's range. Unlike full-domain generalization, two records with the same
age may get different ranges, so skewed or very large tables lose far less.

How it runs here:
- every QI becomes a number ("rank"): numeric QIs their value, ordered
  categoricals their position in a declared order, hierarchy QIs their
  leaf's position with each subtree's leaves contiguous;
- when k counts records, the cuts depend only on how many records hold each
  distinct QI combination: one aggregation gives those counts and, if there
  are at most `driver_combos` combinations, the driver cuts them exactly
  (`mondrian_driver`) and a broadcast join recodes the rows. Otherwise, and
  when k counts units:
- top levels on Spark, one round per tree level: the driver proposes a cut
  for every large partition from a row sample carried by the previous
  round's aggregation, a broadcast join assigns candidate children, and
  one aggregation counts them exactly. A cut is kept only if every child
  has at least k units, so a bad sample costs utility, never privacy;
- partitions of at most `local_rows` rows are finished in parallel by
  `applyInPandas`, one group per partition, with the same algorithm on exact
  in-memory numbers (level by level, vectorized in numpy);
- the recoded output is grouped by its generalized QIs and the smallest
  class checked against k (distinct units when `unit` is given). On the
  driver's path the rows are grouped by class code, one code per tuple of
  generalized values, and must add up to the input's records; the codes are
  decoded to text after the check.

k counts units (subscribers) when `unit` is given: a subscriber with many
records is one person. Records with a null unit count as no one.

Modules: the QI specs and the cut rule on numbers are pure (`core.kanon.mondrian`);
the cut on the driver is in `transforms.kanon.mondrian_driver`, the Spark rounds and the
in-memory finish in `transforms.kanon.mondrian_rounds`; this module checks the arguments,
picks the path, runs it, and checks the output. Both paths give the same classes when the
Spark rounds' samples are complete (tests/test_mondrian.py compares them row for row); on
large tables the driver's medians are exact where the rounds' came from samples.

Not implemented: relaxed Mondrian (median values split between both
halves), suppression of outliers, l-diversity or t-closeness, binary cuts
inside a hierarchy level (a hierarchy QI splits into all children of the
covering node at once, or not at all), and medians weighted by unit (cuts
sit at the median record; only the k check counts units).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from core.kanon.models import KAnonymityError
from core.kanon.mondrian import CUT_RULES, HierarchyQI, NumericQI, OrderedQI, QuasiIdentifier, Rules
from transforms.kanon.mondrian_driver import (
    CLASS_CODE,
    COMBO_ROWS,
    DriverCut,
    arrow_frame,
    classes_of_rows,
    combo_ranks,
    combo_table,
    cut_combos,
    decoded,
    generalized_columns,
    hashed_rows,
    session_setting,
)
from transforms.kanon.mondrian_rounds import (
    NCP_PREFIX,
    PREFIX,
    ROWS_COLUMN,
    UNIT,
    UNITS_COLUMN,
    apply_cuts,
    column_named,
    penalty_column,
    qi_domains,
    rank_column,
    recoded_rows,
    refuse_unranked,
    root_part,
    split_on_spark,
    with_ranks,
    with_root_part,
)

__all__ = [
    "DRIVER_COMBOS",
    "HierarchyQI",
    "KAnonymityError",
    "MondrianRecoding",
    "NumericQI",
    "OrderedQI",
    "QuasiIdentifier",
    "generalize_mondrian",
    "ncp",
    "verify_k_anonymous",
]


# Distinct QI combinations the driver cuts from their counts (more: the Spark rounds). Two million
# combinations: about 150 MB of numbers on the driver plus the QI values, and one broadcast table.
DRIVER_COMBOS = 2_000_000


@dataclass(frozen=True)
class MondrianRecoding:
    """The recoded rows and their equivalence classes.

    `data` has the input's columns, each QI replaced by its class's generalized
    value (a string). Its rows are persisted (memory and disk): verification
    read them once, the caller writes them once, the same rows; call
    `unpersist()` after writing. `classes` has one row per class: the
    generalized QIs, `rows`, `units` and `ncp_<qi>` (each record's penalty on
    that QI, see `ncp`); it is computed from the persisted rows, so read it
    before `unpersist()` (after, it recomputes the whole recoding).
    """

    data: DataFrame
    classes: DataFrame
    class_count: int
    smallest_class: int  # units (rows when no unit column)
    spark_rounds: int  # splitting rounds run on Spark before the in-memory finish
    cached: DataFrame = field(repr=False)  # `data` plus per-record penalties, persisted

    def unpersist(self) -> None:
        self.cached.unpersist()


def _check_arguments(df: DataFrame, qis: Sequence[QuasiIdentifier], k: int, unit: str | None) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    columns = [qi.column for qi in qis]
    if not columns:
        raise ValueError("at least one quasi-identifier is needed")
    if len(set(columns)) != len(columns):
        raise ValueError("a quasi-identifier column is listed twice")
    missing = [c for c in [*columns, *([unit] if unit else [])] if c not in df.columns]
    if missing:
        raise ValueError(f"columns not in the DataFrame: {missing}")
    if unit in columns:
        raise ValueError(f"the unit column '{unit}' cannot also be a quasi-identifier")
    clashing = [c for c in df.columns if c.startswith(PREFIX)] + [
        c for c in columns if c in (ROWS_COLUMN, UNITS_COLUMN) or c.startswith(NCP_PREFIX)
    ]
    if clashing:
        raise ValueError(f"column names reserved by the recoding: {clashing}")
    for qi in qis:
        if isinstance(qi, NumericQI) and not isinstance(df.schema[qi.column].dataType, T.NumericType):
            raise ValueError(f"numeric quasi-identifier '{qi.column}' has a non-numeric type")
        if isinstance(qi, OrderedQI) and len(set(qi.order)) != len(qi.order):
            raise ValueError(f"order of '{qi.column}' lists a value twice")


def _class_summary(recoded: DataFrame, columns: Sequence[str], unit: str | None, penalties=()) -> DataFrame:
    units = F.countDistinct(column_named(unit)) if unit else F.count(F.lit(1))
    return recoded.groupBy(*[column_named(c) for c in columns]).agg(
        F.count(F.lit(1)).alias(ROWS_COLUMN),
        units.alias(UNITS_COLUMN),
        *[F.max(F.col(p)).alias(f"{NCP_PREFIX}{c}") for c, p in penalties],
    )


def _check_smallest(classes: DataFrame, k: int, unit: str | None) -> tuple[int, int]:
    count, smallest = classes.agg(F.count(F.lit(1)), F.min(UNITS_COLUMN)).first()
    return _refuse_small(count, smallest, k, unit)


def _refuse_small(count: int, smallest: int | None, k: int, unit: str | None) -> tuple[int, int]:
    if count and smallest < k:
        what = "units" if unit else "rows"
        raise KAnonymityError(
            f"not {k}-anonymous: {count} equivalence classes, the smallest has {smallest} {what}"
        )
    return count, smallest or 0


def verify_k_anonymous(
    df: DataFrame, columns: Sequence[str], k: int, unit: str | None = None
) -> tuple[int, int]:
    """(classes, smallest class) of `df` grouped by `columns`; KAnonymityError if smallest < k.

    Class size counts distinct `unit` values when given (a null unit counts as no
    one), else rows.
    """
    return _check_smallest(_class_summary(df, columns, unit), k, unit)


def generalize_mondrian(
    df: DataFrame,
    qis: Sequence[QuasiIdentifier],
    k: int,
    unit: str | None = None,
    *,
    local_rows: int = 250_000,
    sample_rows: int = 1_000,
    seed: int = 0,
    cut: str = "balanced",
    driver_combos: int = DRIVER_COMBOS,
) -> MondrianRecoding:
    """Strict Mondrian local recoding of `df` on `qis` so every class has >= k units.

    `unit` is the column identifying a person (k counts distinct units), or
    None to count rows. Without `unit`, a table with at most `driver_combos`
    distinct QI combinations is cut on the driver from their exact counts
    (`mondrian_driver`; 0 turns that off). Otherwise partitions of more than
    `local_rows` rows are cut on Spark, from medians of samples of about
    `sample_rows` rows each (exact counts decide); smaller ones are finished in
    memory, one partition per task. QI
    values must be non-null and, for categorical QIs, listed in their order or
    hierarchy (else ValueError, with counts only). Raises KAnonymityError if the
    output check finds a class under k (it should never).

    `cut` on numeric and ordered QIs: "balanced" cuts just above or just below
    the median value, whichever halves the partition more evenly (many records
    share a value, so "at the median" is ambiguous); "median" sends the median
    value left and does not cut when it is the partition's largest value, the
    literal rule behind published strict-Mondrian figures (more loss).
    """
    _check_arguments(df, qis, k, unit)
    if local_rows < 1 or sample_rows < 1:
        raise ValueError("local_rows and sample_rows must be positive")
    if isinstance(driver_combos, bool) or not isinstance(driver_combos, int) or driver_combos < 0:
        raise ValueError(f"driver_combos must be a non-negative integer, got {driver_combos!r}")
    if cut not in CUT_RULES:
        raise ValueError(f"cut must be one of {CUT_RULES}, got {cut!r}")
    table = combo_table(df, qis, driver_combos) if unit is None and driver_combos else None
    recoding = _recode_on_driver(df, qis, k, cut, table) if table is not None else None
    if recoding is not None:
        return recoding
    recoded, rounds = _cut_on_spark(df, qis, k, unit, cut, local_rows, sample_rows, seed)
    recoded = recoded.persist(StorageLevel.MEMORY_AND_DISK)
    penalties = [(qi.column, penalty_column(i)) for i, qi in enumerate(qis)]
    classes = _class_summary(recoded, [qi.column for qi in qis], unit, penalties)
    try:
        count, smallest = _check_smallest(classes, k, unit)
    except KAnonymityError:
        recoded.unpersist()
        raise
    data = recoded.select(*[column_named(c) for c in df.columns])
    return MondrianRecoding(data, classes, count, smallest, rounds, recoded)


def _recode_on_driver(df: DataFrame, qis, k: int, cut: str, table) -> MondrianRecoding | None:
    """Cut the frequency table on the driver; check k on the rows' class codes, then decode them.
    None when the classes' generalized values are too many to code (the caller cuts on Spark)."""
    ranks, unranked = combo_ranks(table, qis)
    refuse_unranked(unranked)
    weights = table[COMBO_ROWS].to_numpy(dtype=np.int64)
    records = int(weights.sum())
    if records < k:
        raise KAnonymityError(f"the table has {records} units, fewer than k = {k}")
    rules = Rules(qi_domains(qis, ranks.min(axis=0), ranks.max(axis=0), df.schema), k, cut == "balanced")
    driver_cut = cut_combos(ranks, weights, rules)
    if driver_cut is None:
        return None
    return _checked_recoding(df, qis, k, table, driver_cut, records)


def _checked_recoding(df, qis, k: int, table, driver_cut: DriverCut, records: int) -> MondrianRecoding:
    """The rows with their class codes, persisted and checked: k on their counts, all records there."""
    coded = _persisted_uncompressed(classes_of_rows(hashed_rows(df, qis), table, driver_cut))
    try:
        rows = _rows_per_code(coded, driver_cut.penalties.index.to_numpy(), records)
        count, smallest = _refuse_small(len(rows), int(rows.min()) if len(rows) else None, k, None)
    except KAnonymityError:
        coded.unpersist()
        raise
    generalized = generalized_columns(qis, driver_cut)
    classes = _driver_classes(df, qis, driver_cut, rows, generalized)
    return MondrianRecoding(decoded(coded, df.columns, generalized), classes, count, smallest, 0, coded)


def _persisted_uncompressed(rows: DataFrame) -> DataFrame:
    """`rows` persisted (memory and disk) in uncompressed column batches.

    These rows are kept only from the check to the caller's write. Choosing and applying each
    column's compression took more CPU than anything else in building the cache (about a
    third of the whole recoding at 10M rows), for memory the machine has. Spark reads the
    setting when `persist` is called.
    """
    with session_setting(rows.sparkSession, "spark.sql.inMemoryColumnarStorage.compressed", "false"):
        return rows.persist(StorageLevel.MEMORY_AND_DISK)


def _rows_per_code(coded: DataFrame, codes: np.ndarray, records: int) -> np.ndarray:
    """Rows per class code (`codes`, ascending), counted on the output rows: an independent check
    of the cut. Refused unless every input record is there exactly once, in a class of the cut."""
    counted = coded.groupBy(CLASS_CODE).agg(F.count(F.lit(1)).alias(ROWS_COLUMN)).toPandas()
    rows = counted.set_index(CLASS_CODE)[ROWS_COLUMN].reindex(codes, fill_value=0).to_numpy(dtype=np.int64)
    if int(rows.sum()) != records or int(counted[ROWS_COLUMN].sum()) != records:
        raise KAnonymityError(
            f"the recoded output has {int(counted[ROWS_COLUMN].sum())} rows for {records} input records"
        )
    return rows


def _driver_classes(df: DataFrame, qis, driver_cut: DriverCut, rows: np.ndarray, generalized) -> DataFrame:
    """`MondrianRecoding.classes` (as `_class_summary` gives it) from the class codes and their rows,
    each QI decoded by `generalized` (`generalized_columns`)."""
    penalties = driver_cut.penalties
    numbers = {CLASS_CODE: penalties.index.to_numpy(dtype=np.int64), ROWS_COLUMN: rows, UNITS_COLUMN: rows}
    numbers |= {penalty_column(i): penalties[penalty_column(i)].to_numpy() for i in range(len(qis))}
    return arrow_frame(df.sparkSession, pa.table(numbers)).select(
        *[generalized[qi.column].alias(qi.column) for qi in qis],
        ROWS_COLUMN,
        UNITS_COLUMN,
        *[F.col(penalty_column(i)).alias(f"{NCP_PREFIX}{qi.column}") for i, qi in enumerate(qis)],
    )


def _cut_on_spark(df: DataFrame, qis, k: int, unit, cut: str, local_rows, sample_rows, seed):
    """The recoded rows and the Spark rounds run: top levels cut on Spark, the rest in memory."""
    ranked = with_ranks(df, qis, unit)
    # Every round reads the ranks again: keep just those few columns at hand, not the whole rows.
    ranks = ranked.select(*[rank_column(i) for i in range(len(qis))], *([UNIT] if unit else []))
    ranks = ranks.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        root = root_part(ranks, qis, unit, local_rows, sample_rows, seed)
        if root.units < k:
            raise KAnonymityError(f"the table has {root.units} units, fewer than k = {k}")
        domains = qi_domains(qis, root.lo, root.hi, df.schema)
        rules = Rules(domains, k, balanced=cut == "balanced")
        replay, finals, local_ids, rounds = split_on_spark(
            ranks, root, rules, unit, local_rows, sample_rows, seed
        )
    finally:
        ranks.unpersist()
    assigned = functools.reduce(
        lambda rows, cuts: apply_cuts(rows, cuts, len(qis)), replay, with_root_part(ranked)
    )
    return recoded_rows(df, assigned, qis, rules, finals, local_ids, unit), rounds


def ncp(classes: DataFrame) -> float:
    """Normalized Certainty Penalty (Xu et al., KDD 2006) of a recoding, as a fraction in [0, 1].

    A record's penalty on a QI is its class's normalized width: numeric
    (class max - class min) / (table max - table min); ordered categorical
    (last - first position spanned) / (values in the order - 1); hierarchy
    (leaves under the class's node - 1) / (leaves - 1); 0 when the domain has
    one value. NCP = mean over QIs of (mean over records of the penalty), i.e.
    the sum of penalties over all records and QIs divided by records x QIs
    (what Mondrian papers report as a percentage, also called GCP).
    `classes` is `MondrianRecoding.classes`.
    """
    penalties = [c for c in classes.columns if c.startswith(NCP_PREFIX)]
    if not penalties:
        raise ValueError(f"no {NCP_PREFIX}<qi> columns: pass MondrianRecoding.classes")
    weighted = [F.sum(F.col(ROWS_COLUMN) * column_named(p)) for p in penalties]
    sums = classes.agg(F.sum(ROWS_COLUMN), *weighted).first()
    return float(np.mean([s / sums[0] for s in sums[1:]])) if sums[0] else 0.0
