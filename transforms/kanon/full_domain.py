"""Full-domain generalization in Spark: the frequency table the search runs on, and the chosen transformation.

The optimal search (`core.kanon.lattice.search_optimal`) never touches
the records: one Spark aggregation gives the table of quasi-identifier
combinations and their counts, small enough for the driver, and every node of
the lattice is evaluated on that table. The chosen transformation is then
applied to the records with native Spark: a literal map per quasi-identifier
and a broadcast join on the (small) list of suppressed classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.kanon.hierarchy import Hierarchy
from core.kanon.metrics import RECORDS, SUPPRESSED

_SUPPRESS_FLAG = "_kanon_suppressed"


def frequency_table(
    df: DataFrame, quasi_identifiers: Sequence[str], sensitive: str | None = None, unit: str | None = None
) -> pd.DataFrame:
    """Records per combination of the quasi-identifiers (as text), in one Spark aggregation.

    With `sensitive`, the combination includes the sensitive value, so each
    class's sensitive histogram can be summed from the table. With `unit` (the
    subscriber column), the combination includes the unit too: one row per
    distinct (combination, unit) pair. That is what lets the search count
    distinct units per generalized class exactly, because a unit whose records
    fall in two combinations that merge must count once, which summing
    per-combination distinct counts would not do. The cost: the table grows to
    at most one row per (combination, unit), up to the number of subscribers
    times their distinct combinations instead of the number of combinations,
    and the driver then holds (pseudonymous) unit ids.

    Columns: the quasi-identifiers, `sensitive`, `unit` and `records`.
    """
    keys = [*quasi_identifiers, *([sensitive] if sensitive else []), *([unit] if unit else [])]
    if RECORDS in keys:
        raise ValueError(f"a grouping column may not be named '{RECORDS}'")
    as_text = [F.col(q).cast("string").alias(q) for q in quasi_identifiers]
    others = [F.col(c) for c in keys[len(quasi_identifiers) :]]
    counted = df.select(*as_text, *others).groupBy(*keys).agg(F.count(F.lit(1)).alias(RECORDS))
    return counted.toPandas()


def generalize_to_level(value: Column, hierarchy: Hierarchy, level: int) -> Column:
    """`value` (as text) mapped to its generalization at `level`; a value missing from the
    hierarchy becomes null, never the raw value."""
    pairs = [
        F.lit(item) for original, general in hierarchy.mapping(level).items() for item in (original, general)
    ]
    return F.try_element_at(F.create_map(*pairs), value.cast("string"))


def apply_transformation(
    df: DataFrame,
    hierarchies: Mapping[str, Hierarchy],
    levels: Mapping[str, int],
    suppressed: Iterable[Sequence[str]] = (),
) -> DataFrame:
    """`df` with each quasi-identifier in `levels` generalized to its level, and every
    quasi-identifier of the `suppressed` classes (their generalized values, in the order of
    `levels`) replaced by `*`, ARX's representation. Other columns pass through unchanged,
    in their order."""
    qis = list(levels)
    generalized = df.select(
        *[
            generalize_to_level(F.col(c), hierarchies[c], levels[c]).alias(c) if c in levels else F.col(c)
            for c in df.columns
        ]
    )
    hidden = [tuple(str(v) for v in key) for key in suppressed]
    if not hidden:
        return generalized
    flags = df.sparkSession.createDataFrame(
        [(*key, True) for key in hidden],
        ", ".join([*(f"`{q}` string" for q in qis), f"{_SUPPRESS_FLAG} boolean"]),
    )
    joined = generalized.join(F.broadcast(flags), on=qis, how="left")
    is_suppressed = F.coalesce(F.col(_SUPPRESS_FLAG), F.lit(False))
    return joined.select(
        *[
            F.when(is_suppressed, F.lit(SUPPRESSED)).otherwise(F.col(c)).alias(c) if c in levels else F.col(c)
            for c in df.columns
        ]
    )
