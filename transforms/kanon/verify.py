"""An independent check of k-anonymity, l-diversity and t-closeness of any table.

It runs on every k-anonymous output before it is written, and on purpose shares
no code with the anonymizer (it imports pyspark and the standard library only):
a bug in the engine cannot hide itself by being reused here. Everything is
computed from scratch with Spark aggregations; only per-class summaries reach
the driver.

Definitions used (a "weight" is the number of distinct `unit` values when a
unit is given, else the number of rows: one subscriber with many records is one
person):

- An equivalence class is a set of rows with equal quasi-identifiers (nulls
  equal, as in GROUP BY). Rows whose quasi-identifiers are all the suppression
  marker are ARX's suppressed records: counted apart, never a class.
- k: the smallest class weight.
- l_distinct: the fewest distinct sensitive values in a class.
- l_entropy: the smallest exp(H) over classes, H = -sum p ln p of the class's
  sensitive weights; the table is entropy l-diverse for every l <= l_entropy.
- Recursive (c, l)-diversity (Machanavajjhala et al. 2007, def. 4.3): with
  r_1 >= r_2 >= ... >= r_m a class's sensitive weights, r_1 < c (r_l + ... + r_m)
  in every class. `recursive_c(l)` is the largest r_1 / (r_l + ... + r_m) over
  classes: the table is recursive (c, l)-diverse exactly for c above it.
- t (Li, Li and Venkatasubramanian 2007): the largest Earth Mover's Distance
  between a class's sensitive distribution and the whole table's (suppressed
  rows included: they are published too). Equal ground distance: half the L1
  distance. Ordered distance over the m values: sum_i |cumulative difference up
  to i| / (m - 1), ordering values numerically when all parse as numbers, else
  as text; a null sensitive value counts as a value and sorts first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import reduce
from operator import and_

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

# Internal column names, prefixed so they cannot meet a caller's columns.
ROWS = "__kv_rows"
WEIGHT = "__kv_weight"
VALUE = "__kv_value"
POSITION = "__kv_position"
TABLE_SHARE = "__kv_table_share"
COUNTS = "__kv_counts"
TOTAL = "__kv_total"
DIFFERENCE = "__kv_difference"
CUMULATIVE = "__kv_cumulative"


@dataclass(frozen=True)
class Verification:
    """What a table achieves; every field is a number or a column name."""

    quasi_identifiers: tuple[str, ...]
    unit: str | None
    rows: int
    suppressed_rows: int
    classes: int
    k: int | None  # None when no class is left (empty or fully suppressed table)
    sensitive: str | None = None
    l_distinct: int | None = None
    l_entropy: float | None = None
    recursive_c_by_l: tuple[float, ...] = ()  # index l - 1
    t_equal: float | None = None
    t_ordered: float | None = None
    sensitive_order: str | None = None  # "numeric" or "text", the order t_ordered used

    def recursive_c(self, ell: int) -> float | None:
        """The bound c* of recursive (c, ell)-diversity: the table satisfies it
        for every c > c*; infinity when a class has fewer than `ell` values."""
        if self.sensitive is None:
            raise ValueError("recursive (c, l)-diversity needs a sensitive attribute")
        if ell < 1:
            raise ValueError("l must be at least 1")
        if self.classes == 0:
            return None
        return self.recursive_c_by_l[ell - 1] if ell <= len(self.recursive_c_by_l) else math.inf

    def to_dict(self) -> dict[str, object]:
        """For the JSON report: numbers and column names only; infinity becomes null."""

        def finite(number: float | None) -> float | None:
            return number if number is not None and math.isfinite(number) else None

        return {
            "quasi_identifiers": list(self.quasi_identifiers),
            "unit": self.unit,
            "sensitive": self.sensitive,
            "rows": self.rows,
            "suppressed_rows": self.suppressed_rows,
            "classes": self.classes,
            "k": self.k,
            "l_distinct": self.l_distinct,
            "l_entropy": self.l_entropy,
            "recursive_c_by_l": {str(ell): finite(c) for ell, c in enumerate(self.recursive_c_by_l, start=1)},
            "t_equal": self.t_equal,
            "t_ordered": self.t_ordered,
            "sensitive_order": self.sensitive_order,
        }


def verify(
    df: DataFrame,
    quasi_identifiers: list[str] | tuple[str, ...],
    sensitive: str | None = None,
    unit: str | None = None,
    suppressed_marker: str = "*",
) -> Verification:
    """k of `df` over `quasi_identifiers`, and l and t of `sensitive` when given.

    Reads `df` up to three times: cache it first when it is expensive to compute.
    """
    qis = tuple(quasi_identifiers)
    _check_columns(df, qis, sensitive, unit)
    suppressed = _is_suppressed(qis, suppressed_marker)
    groups = df.groupBy(*qis).agg(F.count(F.lit(1)).alias(ROWS), _weight(unit).alias(WEIGHT))
    # Suppressed rows share one all-marker group; it is counted, never a class.
    summary = groups.agg(
        F.coalesce(F.sum(ROWS), F.lit(0)).alias("rows"),
        F.coalesce(F.sum(F.when(suppressed, F.col(ROWS))), F.lit(0)).alias("suppressed_rows"),
        F.count(F.when(~suppressed, 1)).alias("classes"),
        F.min(F.when(~suppressed, F.col(WEIGHT))).alias("k"),
    ).first()
    result = Verification(quasi_identifiers=qis, unit=unit, sensitive=sensitive, **summary.asDict())
    if sensitive is None or result.classes == 0:
        return result
    return replace(result, **_sensitive_measures(df, qis, sensitive, unit, suppressed, result.classes))


def _check_columns(df: DataFrame, qis: tuple[str, ...], sensitive: str | None, unit: str | None) -> None:
    if not qis:
        raise ValueError("at least one quasi-identifier is needed")
    named = [*qis, *(c for c in (sensitive, unit) if c is not None)]
    missing = [c for c in named if c not in df.columns]
    if missing:
        raise ValueError(f"columns not in the table: {missing}")
    if sensitive in qis:
        raise ValueError(f"'{sensitive}' cannot be both quasi-identifier and sensitive")


def _is_suppressed(qis: tuple[str, ...], marker: str) -> Column:
    return reduce(and_, [F.coalesce(F.col(q).cast("string") == marker, F.lit(False)) for q in qis])


def _weight(unit: str | None) -> Column:
    # Rows without a unit belong to no known person and add nothing to k.
    return F.count_distinct(unit) if unit else F.count(F.lit(1))


def _sensitive_measures(
    df: DataFrame,
    qis: tuple[str, ...],
    sensitive: str,
    unit: str | None,
    suppressed: Column,
    classes: int,
) -> dict[str, object]:
    weights = (
        df.filter(~suppressed)
        .groupBy(*qis, sensitive)
        .agg(_weight(unit).alias(WEIGHT))
        .filter(F.col(WEIGHT) > 0)
        .persist()
    )
    table = (
        df.groupBy(sensitive)
        .agg(_weight(unit).alias(WEIGHT))
        .filter(F.col(WEIGHT) > 0)
        .select(F.col(sensitive).alias(VALUE), WEIGHT)
        .persist()
    )
    try:
        diversity = _diversity(weights, qis, classes)
        positions, order, values = _ground_order(table)
        t_equal, t_ordered = _closeness(weights, positions, values, qis, sensitive)
        return {**diversity, "t_equal": t_equal, "t_ordered": t_ordered, "sensitive_order": order}
    finally:
        weights.unpersist()
        table.unpersist()


def _diversity(weights: DataFrame, qis: tuple[str, ...], classes: int) -> dict[str, object]:
    """Distinct l, entropy l and recursive c per l, from one pass over the class weights.

    A class whose rows all lack a unit has no weights: it makes l 0 (nothing is
    known about who is in it), never a class that is left out.
    """
    largest_first = Window.partitionBy(*qis).orderBy(F.col(WEIGHT).desc())
    whole_class = Window.partitionBy(*qis).rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    # Ties do not matter: the weights from rank l down are the same multiset in any tie order.
    from_here_down = largest_first.rowsBetween(Window.currentRow, Window.unboundedFollowing)
    class_total = F.sum(WEIGHT).over(whole_class)
    ranked = weights.select(
        F.row_number().over(largest_first).alias("rank"),
        (F.max(WEIGHT).over(whole_class) / F.sum(WEIGHT).over(from_here_down)).alias("ratio"),
        # H = -sum p ln p with p = w / W equals ln W - sum(w ln w) / W.
        (F.log(class_total) - F.sum(F.col(WEIGHT) * F.log(WEIGHT)).over(whole_class) / class_total).alias(
            "entropy"
        ),
    )
    by_rank = {
        row["rank"]: row
        for row in ranked.groupBy("rank")
        .agg(
            F.max("ratio").alias("worst"),
            F.count(F.lit(1)).alias("classes"),
            F.min("entropy").alias("entropy"),  # at rank 1: one row per class
        )
        .collect()
    }
    if by_rank.get(1, {"classes": 0})["classes"] < classes:
        return {"l_distinct": 0, "l_entropy": 0.0, "recursive_c_by_l": ()}
    # Rank l exists in every class exactly when every class has at least l values;
    # where one lacks it, no c makes the table (c, l)-diverse.
    in_all = [rank for rank in sorted(by_rank) if by_rank[rank]["classes"] == classes]
    return {
        "l_distinct": len(in_all),
        "l_entropy": math.exp(by_rank[1]["entropy"]),
        "recursive_c_by_l": tuple(
            by_rank[rank]["worst"] if rank in in_all else math.inf for rank in sorted(by_rank)
        ),
    }


def _ground_order(table: DataFrame) -> tuple[DataFrame, str, int]:
    """(value, position, share of the whole table) per sensitive value, the order
    used ("numeric" when every non-null value parses as a number, else "text"),
    and the number of values."""
    as_text = F.col(VALUE).cast("string")
    as_number = as_text.try_cast("double")
    facts = table.agg(
        F.count(F.lit(1)).alias("values"),
        F.count(F.when(F.col(VALUE).isNotNull() & as_number.isNull(), 1)).alias("not_numbers"),
    ).first()
    numeric = facts["not_numbers"] == 0
    order = [as_number, as_text] if numeric else [as_text]
    # One row per distinct sensitive value: a single partition is fine here.
    ground_order = Window.orderBy(*(o.asc_nulls_first() for o in order))
    whole_table = Window.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    positions = table.select(
        VALUE,
        F.row_number().over(ground_order).alias(POSITION),
        (F.col(WEIGHT) / F.sum(WEIGHT).over(whole_table)).alias(TABLE_SHARE),
    )
    return positions, "numeric" if numeric else "text", facts["values"]


def _closeness(
    weights: DataFrame, positions: DataFrame, values: int, qis: tuple[str, ...], sensitive: str
) -> tuple[float, float]:
    """Largest equal- and ordered-distance EMD of a class from the whole table.

    Each class meets every table value (classes x values rows), since values
    absent from a class still move the cumulative difference.
    """
    located = weights.join(
        F.broadcast(positions.select(VALUE, POSITION)),
        on=F.col(sensitive).eqNullSafe(F.col(VALUE)),
        how="inner",
    )
    classes = located.groupBy(*qis).agg(
        F.map_from_entries(F.collect_list(F.struct(POSITION, WEIGHT))).alias(COUNTS),
        F.sum(WEIGHT).alias(TOTAL),
    )
    grid = classes.crossJoin(F.broadcast(positions.select(POSITION, TABLE_SHARE)))
    class_share = F.coalesce(F.try_element_at(COUNTS, F.col(POSITION)), F.lit(0)) / F.col(TOTAL)
    in_order = (
        Window.partitionBy(*qis).orderBy(POSITION).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    differences = grid.select(*qis, POSITION, (class_share - F.col(TABLE_SHARE)).alias(DIFFERENCE))
    cumulative = differences.select(*qis, DIFFERENCE, F.sum(DIFFERENCE).over(in_order).alias(CUMULATIVE))
    per_class = cumulative.groupBy(*qis).agg(
        (F.sum(F.abs(DIFFERENCE)) / 2).alias("equal"),
        (F.sum(F.abs(CUMULATIVE)) / max(values - 1, 1)).alias("ordered"),
    )
    worst = per_class.agg(F.max("equal").alias("equal"), F.max("ordered").alias("ordered")).first()
    return worst["equal"], worst["ordered"]
