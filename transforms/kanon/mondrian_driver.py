"""Mondrian cut on the driver, from the table of distinct quasi-identifier combinations.

Strict Mondrian's cuts depend only on the multiset of QI tuples: where a partition's
median lies and how many records each side holds. One Spark aggregation (the plain
`groupBy(QIs).count()`) gives that multiset as a frequency table, usually far smaller than
the rows; the driver cuts it with the same rule as the in-memory finish, each distinct
combination weighted by its records (`core.kanon.mondrian.mondrian_classes` with
`weights`), so every class's size is a sum of exact counts and k holds by construction.
A broadcast join on the QI columns then gives every row its class's generalized values;
the caller checks k again on the output, grouped by those values.

Bounded: the table is collected only when it has at most `limit` combinations (each one a
few numbers and the QI values the output holds anyway, never an identifier or another
column); a larger one returns None and the caller cuts on Spark instead. Not used when k
counts units: a subscriber may sit in several combinations, so units per partition are
not sums over combinations (that mode keeps the Spark rounds).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from core.kanon.mondrian import (
    NumericQI,
    OrderedQI,
    QuasiIdentifier,
    Rules,
    box_labels,
    box_widths,
    hierarchy_domain,
    mondrian_classes,
)
from transforms.kanon.mondrian_rounds import PREFIX, column_named, penalty_column

COMBO_ROWS = f"{PREFIX}combo_rows"


def _key_name(i: int) -> str:
    return f"{PREFIX}key_{i}"


def _label_name(i: int) -> str:
    return f"{PREFIX}combo_label_{i}"


def _key(qi: QuasiIdentifier) -> Column:
    """The value a QI is grouped and joined on: numbers as doubles, categoricals as text (as ranked)."""
    return column_named(qi.column).cast("double" if isinstance(qi, NumericQI) else "string")


def combo_table(df: DataFrame, qis: Sequence[QuasiIdentifier], limit: int) -> pd.DataFrame | None:
    """Records per distinct QI combination (one Spark aggregation), or None above `limit` combinations."""
    counted = (
        df.select(*[_key(qi).alias(_key_name(i)) for i, qi in enumerate(qis)])
        .groupBy(*[_key_name(i) for i in range(len(qis))])
        .agg(F.count(F.lit(1)).alias(COMBO_ROWS))
    )
    table = counted.limit(limit + 1).toPandas()  # at most limit + 1 rows reach the driver
    return None if len(table) > limit else table


def combo_ranks(table: pd.DataFrame, qis: Sequence[QuasiIdentifier]) -> tuple[np.ndarray, dict[str, int]]:
    """Each combination's ranks (as `mondrian_rounds.with_ranks` gives rows), and the records per QI
    whose value cannot be ranked (null, NaN, outside the order or hierarchy): counts, never values."""
    weights = table[COMBO_ROWS].to_numpy(dtype=np.int64)
    ranks = np.empty((len(table), len(qis)))
    for i, qi in enumerate(qis):
        values = table[_key_name(i)]
        if isinstance(qi, NumericQI):
            ranks[:, i] = values.to_numpy(dtype=float, na_value=np.nan)
            continue
        names = qi.order if isinstance(qi, OrderedQI) else hierarchy_domain(qi.hierarchy).names
        position = {name: float(r) for r, name in enumerate(names)}
        ranks[:, i] = values.map(position).to_numpy(dtype=float, na_value=np.nan)
    missing = np.isnan(ranks)
    unranked = {
        qi.column: int(weights[missing[:, i]].sum()) for i, qi in enumerate(qis) if missing[:, i].any()
    }
    return ranks, unranked


def combo_classes(ranks: np.ndarray, weights: np.ndarray, rules: Rules) -> pd.DataFrame:
    """Each combination's class: its generalized value and penalty per QI (internal column names)."""
    classes = mondrian_classes(ranks, None, rules, weights=weights)
    by_class = pd.DataFrame(ranks).groupby(classes, sort=True)
    lo, hi = by_class.min().to_numpy(), by_class.max().to_numpy()
    widths = box_widths(rules.domains, lo, hi)
    columns = {}
    for i, dom in enumerate(rules.domains):
        columns[_label_name(i)] = box_labels(dom, lo[:, i], hi[:, i])[classes]
        columns[penalty_column(i)] = widths[classes, i]
    return pd.DataFrame(columns)


def recoded_from_combos(
    df: DataFrame, qis: Sequence[QuasiIdentifier], table: pd.DataFrame, classes: pd.DataFrame
) -> DataFrame:
    """Every row with its QIs generalized and its per-QI penalty, by a broadcast join on the QI values."""
    d = len(qis)
    lookup = pd.concat([table[[_key_name(i) for i in range(d)]], classes], axis=1)
    schema = T.StructType(
        [
            T.StructField(_key_name(i), T.DoubleType() if isinstance(qi, NumericQI) else T.StringType())
            for i, qi in enumerate(qis)
        ]
        + [
            field
            for i in range(d)
            for field in (
                T.StructField(_label_name(i), T.StringType(), False),
                T.StructField(penalty_column(i), T.DoubleType(), False),
            )
        ]
    )
    lookup = df.sparkSession.createDataFrame(lookup[[f.name for f in schema]], schema)
    matches = [_key(qi) == F.col(_key_name(i)) for i, qi in enumerate(qis)]
    joined = df.join(F.broadcast(lookup), on=matches, how="inner")
    qi_index = {qi.column: i for i, qi in enumerate(qis)}
    return joined.select(
        *[F.col(_label_name(qi_index[c])).alias(c) if c in qi_index else column_named(c) for c in df.columns],
        *[F.col(penalty_column(i)) for i in range(d)],
    )
