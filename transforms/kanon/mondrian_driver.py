"""Mondrian cut on the driver, from the table of distinct quasi-identifier combinations.

Strict Mondrian's cuts depend only on the multiset of QI tuples: where a partition's
median lies and how many records each side holds. One Spark aggregation (the plain
`groupBy(QIs).count()`) gives that multiset as a frequency table, usually far smaller than
the rows; the driver cuts it with the same rule as the in-memory finish, each distinct
combination weighted by its records (`core.kanon.mondrian.mondrian_classes` with
`weights`), so every class's size is a sum of exact counts and k holds by construction.

The rows then travel as numbers, not text: each carries a 64-bit hash of its QI values, and
a broadcast join on that one key gives it its class code (each QI's generalized value
numbered, the numbers packed in one long). The caller counts the rows per code, checks k on
those counts, and only then are the codes decoded, each QI's text looked up from its bits
in a literal list. The table's hashes must be distinct: if two combinations share one
(about one chance in 10^7 at two million combinations), `combo_table` returns None and the
caller cuts on Spark instead; so does `cut_combos` when the codes would need over 62 bits.

Bounded: the table is collected only when it has at most `limit` combinations (each one a
few numbers: its records, its hash and its ranks, computed by Spark once per combination;
a categorical with a long list of values travels as its text, which the output holds
anyway; never an identifier or another column); a larger one returns None too. Not used
when k counts units: a subscriber may sit in several combinations, so units per partition
are not sums over combinations (that mode keeps the Spark rounds).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from core.kanon.mondrian import (
    HierarchyQI,
    NumericQI,
    OrderedQI,
    QuasiIdentifier,
    Rules,
    box_label_numbers,
    box_widths,
    hierarchy_domain,
    mondrian_partition,
)
from transforms.kanon.mondrian_rounds import PREFIX, column_named, penalty_column

COMBO_ROWS = f"{PREFIX}combo_rows"
COMBO_HASH = f"{PREFIX}combo_hash"
CLASS_CODE = f"{PREFIX}class_code"


def _key_name(i: int) -> str:
    return f"{PREFIX}key_{i}"


def _key(qi: QuasiIdentifier) -> Column:
    """The value a QI is hashed on: numbers as doubles, categoricals as text (as ranked)."""
    # Spark's grouping and its xxhash64 both take -0.0 as 0.0 (a test pins it): rows hash as their group.
    return column_named(qi.column).cast("double" if isinstance(qi, NumericQI) else "string")


# Categoricals with at most this many values are ranked by Spark, once per combination (a scan
# of the list); longer lists reach the driver as text, ranked there through a dict.
RANKED_ON_SPARK = 64


def _names(qi: OrderedQI | HierarchyQI) -> tuple[str, ...]:
    return qi.order if isinstance(qi, OrderedQI) else hierarchy_domain(qi.hierarchy).names


def _ranked_on_spark(qi: QuasiIdentifier) -> bool:
    return not isinstance(qi, NumericQI) and len(_names(qi)) <= RANKED_ON_SPARK


def _sent_key(qi: QuasiIdentifier, key: Column) -> Column:
    """How a combination's value of `qi` (its `_key`) travels to the driver: numbers as doubles,
    short lists' values as their ranks (null when not listed), other categoricals as text."""
    if not _ranked_on_spark(qi):
        return key
    position = F.array_position(F.array(*[F.lit(name) for name in _names(qi)]), key)
    return F.when(position > 0, (position - 1).cast("int"))


def combo_hash(keys: Sequence[Column]) -> Column:
    """The 64-bit hash rows and combinations are matched on."""
    return F.xxhash64(*keys)


def combo_table(df: DataFrame, qis: Sequence[QuasiIdentifier], limit: int) -> pd.DataFrame | None:
    """Records, hash and values per distinct QI combination (one Spark aggregation, the plain
    `groupBy(QIs).count()`); None above `limit` combinations or when two combinations share a hash.
    The hash and the ranks are computed once per combination, after the grouping, not per row."""
    names = [_key_name(i) for i in range(len(qis))]
    counted = (
        df.select(*[_key(qi).alias(name) for qi, name in zip(qis, names, strict=True)])
        .groupBy(*names)
        .agg(F.count(F.lit(1)).alias(COMBO_ROWS))
        .select(
            COMBO_ROWS,
            combo_hash([F.col(name) for name in names]).alias(COMBO_HASH),
            *[_sent_key(qi, F.col(name)).alias(name) for qi, name in zip(qis, names, strict=True)],
        )
    )
    table = counted.limit(limit + 1).toPandas()  # at most limit + 1 rows reach the driver
    if len(table) > limit or not table[COMBO_HASH].is_unique:
        return None
    return table


def combo_ranks(table: pd.DataFrame, qis: Sequence[QuasiIdentifier]) -> tuple[np.ndarray, dict[str, int]]:
    """Each combination's ranks (as `mondrian_rounds.with_ranks` gives rows), and the records per QI
    whose value cannot be ranked (null, NaN, outside the order or hierarchy): counts, never values."""
    weights = table[COMBO_ROWS].to_numpy(dtype=np.int64)
    ranks = np.empty((len(table), len(qis)))
    for i, qi in enumerate(qis):
        values = table[_key_name(i)]
        if isinstance(qi, NumericQI) or _ranked_on_spark(qi):  # a number, or a rank Spark gave
            ranks[:, i] = values.to_numpy(dtype=float, na_value=np.nan)
            continue
        position = {name: float(r) for r, name in enumerate(_names(qi))}
        ranks[:, i] = values.map(position).to_numpy(dtype=float, na_value=np.nan)
    missing = np.isnan(ranks)
    unranked = {
        qi.column: int(weights[missing[:, i]].sum()) for i, qi in enumerate(qis) if missing[:, i].any()
    }
    return ranks, unranked


# Class codes pack each QI's generalized-value number in its own bits of a non-negative long.
CODE_BITS = 62


@dataclass(frozen=True)
class DriverCut:
    """The cut as numbers: each combination's class code, and what the codes stand for.

    A class code packs, per QI, the number of the class's generalized value in `labels`,
    so two Mondrian classes whose boxes read the same once generalized get one code: they
    are one class to whoever reads the output, and k is checked per code.
    """

    code_of_combo: np.ndarray  # class code of each combination (table order)
    labels: tuple[np.ndarray, ...]  # per QI, its distinct generalized values in number order
    shifts: tuple[int, ...]  # per QI, where its number sits in a code
    penalties: pd.DataFrame  # per class code (the index, ascending): each QI's penalty


def _bits(values: int) -> int:
    return max(1, (values - 1).bit_length())


def cut_combos(ranks: np.ndarray, weights: np.ndarray, rules: Rules) -> DriverCut | None:
    """Cut the weighted combinations and code their classes; None if the codes need over CODE_BITS bits."""
    partition = mondrian_partition(ranks, None, rules, weights=weights)
    classes, lo, hi = partition.classes, partition.lo, partition.hi  # each class's box, by class
    # (number, values) per QI; factorize hashes, where sorting hundreds of thousands of texts took seconds.
    numbered = [box_label_numbers(dom, lo[:, i], hi[:, i]) for i, dom in enumerate(rules.domains)]
    labels = tuple(np.asarray(values, dtype=object) for _, values in numbered)
    shifts = np.cumsum([0, *[_bits(len(values)) for values in labels]])
    if shifts[-1] > CODE_BITS:
        return None
    code_of_class = np.zeros(len(lo), dtype=np.int64)
    for (number, _), shift in zip(numbered, shifts, strict=False):
        code_of_class |= number.astype(np.int64) << int(shift)
    widths = box_widths(rules.domains, lo, hi)
    penalties = pd.DataFrame(widths, columns=[penalty_column(i) for i in range(len(labels))])
    # Classes that share a code share their boxes' generalized values, hence their widths: max is any.
    penalties = penalties.groupby(code_of_class, sort=True).max()
    return DriverCut(code_of_class[classes], labels, tuple(int(s) for s in shifts[:-1]), penalties)


def _generalized_value(code: Column, values: np.ndarray, shift: int) -> Column:
    """One QI's generalized value of a class code column: its number's bits index the values."""
    number = F.shiftright(code, shift).bitwiseAND(F.lit((1 << _bits(len(values))) - 1))
    # One literal from a numpy array of str: a py4j call per value would cost seconds on thousands.
    texts = F.lit(np.asarray(values, dtype=str))
    return F.element_at(texts, (number + F.lit(1)).cast("int"))


def hashed_rows(df: DataFrame, qis: Sequence[QuasiIdentifier]) -> DataFrame:
    """The input's columns but its QIs, plus the hash of each row's QI combination."""
    qi_columns = {qi.column for qi in qis}
    return df.select(
        *[column_named(c) for c in df.columns if c not in qi_columns],
        combo_hash([_key(qi) for qi in qis]).alias(COMBO_HASH),
    )


def classes_of_rows(hashed: DataFrame, table: pd.DataFrame, cut: DriverCut) -> DataFrame:
    """`hashed_rows` with each row's class code for its hash (a broadcast join), the hash dropped."""
    lookup = pa.table({COMBO_HASH: table[COMBO_HASH].to_numpy(dtype=np.int64), CLASS_CODE: cut.code_of_combo})
    lookup = arrow_frame(hashed.sparkSession, lookup)
    return hashed.join(F.broadcast(lookup), on=COMBO_HASH, how="inner").drop(COMBO_HASH)


@contextmanager
def session_setting(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """One Spark SQL setting changed while inside, then restored (for settings read when a
    DataFrame is created or persisted, not when it runs)."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def arrow_frame(spark: SparkSession, table: pa.Table) -> DataFrame:
    """A DataFrame of a driver-side table, read from its Arrow batches as an RDD.

    Not a local relation (what Spark makes of tables under its local-relation threshold): its
    rows sit in the query plan, which Spark compares each time it looks a plan up among the
    cached ones; at a million rows that cost seconds per query. Nor a one-row range that emits
    the batches from a Python function: the function, batches included, is pickled and
    broadcast, about a second for a million rows.
    """
    with session_setting(spark, "spark.sql.execution.arrow.localRelationThreshold", "0"):
        frame = spark.createDataFrame(table)
    # One task: these tables are read whole (a broadcast, the classes); a task per 10,000-row
    # batch cost more in scheduling than the reading.
    return frame.coalesce(1)


def generalized_columns(qis: Sequence[QuasiIdentifier], cut: DriverCut) -> dict[str, Column]:
    """Each QI's generalized value, decoded from the class code column (built once per cut: each
    list of values becomes a literal through py4j, a few hundred milliseconds for thousands)."""
    return {
        qi.column: _generalized_value(F.col(CLASS_CODE), values, shift)
        for qi, values, shift in zip(qis, cut.labels, cut.shifts, strict=True)
    }


def decoded(coded: DataFrame, columns: Sequence[str], generalized: dict[str, Column]) -> DataFrame:
    """The rows with `columns` in order, each QI its class's generalized value (`generalized_columns`)."""
    return coded.select(*[generalized[c].alias(c) if c in generalized else column_named(c) for c in columns])
