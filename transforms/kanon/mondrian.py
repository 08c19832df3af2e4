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
- top levels on Spark, one round per tree level: the driver proposes a cut
  for every large partition from a row sample carried by the previous
  round's aggregation, a broadcast join assigns candidate children, and
  one aggregation counts them exactly. A cut is kept only if every child
  has at least k units, so a bad sample costs utility, never privacy;
- partitions of at most `local_rows` rows are finished in parallel by
  `applyInPandas`, one group per partition, with the same algorithm on exact
  in-memory numbers (level by level, vectorized in numpy);
- the recoded output is grouped by its generalized QIs and the smallest
  class checked against k (distinct units when `unit` is given).

k counts units (subscribers) when `unit` is given: a subscriber with many
records is one person. Records with a null unit count as no one.

Not implemented: relaxed Mondrian (median values split between both
halves), suppression of outliers, l-diversity or t-closeness, binary cuts
inside a hierarchy level (a hierarchy QI splits into all children of the
covering node at once, or not at all), and medians weighted by unit (cuts
sit at the median record; only the k check counts units).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from core.kanon.hierarchy import Hierarchy
from core.kanon.models import KAnonymityError

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
TOP = "*"
ROWS_COLUMN = "rows"
UNITS_COLUMN = "units"
NCP_PREFIX = "ncp_"


# --- specs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericQI:
    """A numeric QI, cut by value; generalized to `[min, max]` (or the value when min = max).

    A comma, not `[min-max]`: a dash would be ambiguous with negative numbers."""

    column: str


@dataclass(frozen=True)
class OrderedQI:
    """A categorical QI cut like a number along `order` (every value the column may hold);
    generalized to the set of values its range spans, `{a|b|c}` (or the value alone)."""

    column: str
    order: tuple[str, ...]


@dataclass(frozen=True)
class HierarchyQI:
    """A categorical QI cut along the subtrees of `hierarchy`; generalized to the lowest
    hierarchy node that covers the class's values."""

    column: str
    hierarchy: Hierarchy


QuasiIdentifier = NumericQI | OrderedQI | HierarchyQI


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


# --- domains: QIs as ranks ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Domain:
    """One QI as ranks: how a box of ranks reads (label) and what it costs (normalized width)."""

    kind: str  # "numeric", "ordered" or "hierarchy"
    low: float  # smallest rank of the domain (numeric: of the table)
    high: float  # largest rank
    integral: bool = False  # numeric labels without a decimal point
    names: tuple[str, ...] = ()  # rank -> value (ordered; hierarchy leaves)
    ancestors: np.ndarray | None = None  # [level, rank] -> node id (hierarchy)
    node_names: tuple[str, ...] = ()  # node id -> label
    node_leaves: np.ndarray | None = None  # node id -> leaves under it


def _ordered_domain(order: Sequence[str]) -> _Domain:
    return _Domain("ordered", 0.0, float(len(order) - 1), names=tuple(order))


def _hierarchy_domain(hierarchy: Hierarchy) -> _Domain:
    """Leaves ranked so every subtree is a contiguous run (first-seen order at each level)."""
    rows = hierarchy.rows
    if len({r[-1] for r in rows}) > 1:  # no single root: add one
        rows = tuple((*r, TOP) for r in rows)
    levels = range(len(rows[0]))
    first_seen = [{} for _ in levels]
    for index, row in enumerate(rows):
        for level in levels:
            first_seen[level].setdefault(row[level], index)
    leaves = sorted(rows, key=lambda r: tuple(first_seen[lv][r[lv]] for lv in reversed(levels)))
    ids: dict[tuple[int, str], int] = {}
    for level in levels:
        for row in leaves:
            ids.setdefault((level, row[level]), len(ids))
    ancestors = np.array([[ids[(level, row[level])] for row in leaves] for level in levels])
    return _Domain(
        "hierarchy",
        0.0,
        float(len(leaves) - 1),
        names=tuple(r[0] for r in leaves),
        ancestors=ancestors,
        node_names=tuple(name for _, name in ids),
        node_leaves=np.bincount(ancestors.ravel(), minlength=len(ids)),
    )


def _lca_level(dom: _Domain, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Level of the lowest hierarchy node covering ranks lo..hi (contiguous subtrees: the ends decide)."""
    same = dom.ancestors[:, lo.astype(np.int64)] == dom.ancestors[:, hi.astype(np.int64)]
    return np.argmax(same, axis=0)


def _lca(dom: _Domain, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return dom.ancestors[_lca_level(dom, lo, hi), lo.astype(np.int64)]


def _width(dom: _Domain, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A box's normalized width on one QI, in [0, 1]: the NCP of each of its records."""
    span = dom.high - dom.low
    if span <= 0:
        return np.zeros(len(lo))
    if dom.kind == "hierarchy":  # span is leaves - 1
        return (dom.node_leaves[_lca(dom, lo, hi)] - 1) / span
    return (hi - lo) / span


def _widths(domains: Sequence[_Domain], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.column_stack([_width(dom, lo[:, j], hi[:, j]) for j, dom in enumerate(domains)])


def _number(value: float, integral: bool) -> str:
    return str(int(value)) if integral else repr(float(value))


def _label(dom: _Domain, lo: float, hi: float) -> str:
    if dom.kind == "hierarchy":
        return dom.node_names[int(_lca(dom, np.array([lo]), np.array([hi]))[0])]
    if dom.kind == "ordered":
        spanned = dom.names[int(lo) : int(hi) + 1]
        return spanned[0] if len(spanned) == 1 else "{" + "|".join(spanned) + "}"
    if lo == hi:
        return _number(lo, dom.integral)
    return f"[{_number(lo, dom.integral)}, {_number(hi, dom.integral)}]"


def _labels(dom: _Domain, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Generalized value of each box on one QI (formatted once per distinct box)."""
    boxes, inverse = np.unique(np.column_stack([lo, hi]), axis=0, return_inverse=True)
    texts = np.array([_label(dom, a, b) for a, b in boxes], dtype=object)
    return texts[inverse.ravel()]


# --- the algorithm on numbers (shared by the driver and the in-memory finish) -------------------------

CUT_RULES = ("balanced", "median")


@dataclass(frozen=True, eq=False)
class _Rules:
    """What every cut obeys: the QIs' domains, k, and where beside the median to cut."""

    domains: tuple[_Domain, ...]
    k: int
    balanced: bool


def _distinct_count(groups: np.ndarray, units: np.ndarray | None, size: int) -> np.ndarray:
    """Units per group (rows when there is no unit column); unit codes < 0 are null and count as no one."""
    if units is None:
        return np.bincount(groups, minlength=size)
    known = units >= 0
    base = int(units.max(initial=0)) + 1
    pairs = np.sort(groups[known].astype(np.int64) * base + units[known])
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = pairs[1:] != pairs[:-1]  # sort-based: np.unique's hash path is slower on int64 pairs
    return np.bincount(pairs[first] // base, minlength=size)


def _compact(keys: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(keys, return_inverse=True)` for keys in [0, bound): by counting when bound is small."""
    if bound > 4 * len(keys) + 1024:
        distinct, inverse = np.unique(keys, return_inverse=True)
        return distinct, inverse.ravel()
    present = np.bincount(keys, minlength=bound) > 0
    return np.flatnonzero(present), (np.cumsum(present) - 1)[keys]


def _boxes(ranks: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-group minimum and maximum rank on every QI; groups 0..n-1 must all be non-empty."""
    by_group = pd.DataFrame(ranks).groupby(groups, sort=True)
    return by_group.min().to_numpy(), by_group.max().to_numpy()


def _median_cuts(
    values: np.ndarray, groups: np.ndarray, size: int, lo: np.ndarray, hi: np.ndarray, balanced: bool
) -> np.ndarray:
    """A cut per group (left side: values <= cut) at the median of `values`.

    Discrete values pile up on the median. `balanced`: the cut goes just above
    or just below the median value, whichever halves the group more evenly; a
    group without values (a partition its sample missed) is cut at its
    midpoint. Otherwise the median value goes left, as in LeFevre et al., and a
    group whose median is its largest value gets no cut (`hi`: one child).
    """
    every_group = np.arange(size)
    by_group = pd.Series(values).groupby(groups)
    median = by_group.quantile(0.5, interpolation="lower").reindex(every_group).to_numpy()
    under = values < median[groups]
    below_cut = pd.Series(values).where(under).groupby(groups).max().reindex(every_group).to_numpy()
    counts = np.bincount(groups, minlength=size)
    at_most = np.bincount(groups, weights=(values <= median[groups]).astype(float), minlength=size)
    below = np.bincount(groups, weights=under.astype(float), minlength=size)
    above_ok = (counts > 0) & (median < hi)
    if not balanced:
        return np.where(above_ok, median, hi)
    below_ok = below > 0
    balanced_above = np.abs(at_most - counts / 2) <= np.abs(below - counts / 2)
    take_above = above_ok & (~below_ok | balanced_above)
    return np.where(take_above, median, np.where(below_ok, below_cut, lo + (hi - lo) / 2))


def _propose_cuts(
    ranks: np.ndarray, groups: np.ndarray, lo: np.ndarray, hi: np.ndarray, allowed: np.ndarray, rules: _Rules
) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the QI to cut (-1: none left) and, unless it is a hierarchy, the cut value.

    `ranks`/`groups` may be all rows (exact) or a sample; `lo`/`hi` are exact.
    """
    widths = np.where(allowed, _widths(rules.domains, lo, hi), 0.0)
    dim = np.where(widths.max(axis=1) > 0, widths.argmax(axis=1), -1)
    cut = np.full(len(dim), np.nan)
    by_value = np.array([dom.kind != "hierarchy" for dom in rules.domains])
    wants_value = (dim >= 0) & by_value[np.maximum(dim, 0)]
    rows = np.flatnonzero(wants_value[groups])
    if wants_value.any():
        nodes = np.flatnonzero(wants_value)
        compact = np.searchsorted(nodes, groups[rows])
        values = ranks[rows, dim[groups[rows]]]
        lo_cut, hi_cut = lo[nodes, dim[nodes]], hi[nodes, dim[nodes]]
        cut[nodes] = _median_cuts(values, compact, len(nodes), lo_cut, hi_cut, rules.balanced)
    return dim, cut


def _child_codes(
    ranks: np.ndarray,
    groups: np.ndarray,
    dim: np.ndarray,
    cut: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    domains,
) -> np.ndarray:
    """Which side of its group's cut each row falls on (hierarchy: which child subtree)."""
    codes = np.zeros(len(groups), dtype=np.int64)
    row_dim = dim[groups]
    for j, dom in enumerate(domains):
        rows = np.flatnonzero(row_dim == j)
        if not len(rows):
            continue
        if dom.kind == "hierarchy":
            level = _lca_level(dom, lo[:, j], hi[:, j])[groups[rows]]
            codes[rows] = dom.ancestors[level - 1, ranks[rows, j].astype(np.int64)]
        else:
            codes[rows] = ranks[rows, j] > cut[groups[rows]]
    return codes


def _mondrian_classes(ranks: np.ndarray, units: np.ndarray | None, rules: _Rules) -> np.ndarray:
    """Strict Mondrian on in-memory ranks: the class index of each row.

    Level-synchronous: every round tries one cut in every open partition at
    once, with numpy over all rows, so the cost is a few sorts per tree level
    rather than Python work per partition. A cut is kept only when every child
    has at least k units; otherwise that QI is closed for the partition and the
    next-widest one is tried in the next round.
    """
    n, d = ranks.shape
    classes = np.full(n, -1, dtype=np.int64)
    rows = np.arange(n)
    groups = np.zeros(n, dtype=np.int64)
    allowed = np.ones((1 if n else 0, d), dtype=bool)
    next_class = 0
    while len(rows):
        size = len(allowed)
        sub_ranks = ranks[rows]
        sub_units = None if units is None else units[rows]
        lo, hi = _boxes(sub_ranks, groups)
        splittable = _distinct_count(groups, sub_units, size) >= 2 * rules.k
        dim, cut = _propose_cuts(sub_ranks, groups, lo, hi, allowed & splittable[:, None], rules)
        done = dim < 0
        class_of = np.cumsum(done) - 1 + next_class
        finished = done[groups]
        classes[rows[finished]] = class_of[groups[finished]]
        next_class += int(done.sum())

        codes = _child_codes(sub_ranks, groups, dim, cut, lo, hi, rules.domains)
        base = int(codes.max(initial=0)) + 1
        children, child_of_row = _compact(groups * base + codes, size * base)
        parent = children // base
        child_units = _distinct_count(child_of_row, sub_units, len(children))
        fewest = np.full(size, np.iinfo(np.int64).max)
        np.minimum.at(fewest, parent, child_units)
        kept = ~done & (np.bincount(parent, minlength=size) >= 2) & (fewest >= rules.k)
        closed = ~done & ~kept
        allowed[np.flatnonzero(closed), dim[closed]] = False

        keep_rows = ~finished
        key = np.where(kept[groups], child_of_row, len(children) + groups)[keep_rows]
        next_keys, groups = _compact(key, len(children) + size)
        was_child = next_keys < len(children)
        allowed = np.where(was_child[:, None], True, allowed[np.maximum(next_keys - len(children), 0)])
        rows = rows[keep_rows]
    return classes


# --- Spark -------------------------------------------------------------------------------------------


def _col(name: str) -> Column:
    """A column by its exact name (dots, hyphens)."""
    return F.col("`" + name.replace("`", "``") + "`")


def _rank(i: int) -> str:
    return f"{PREFIX}rank_{i}"


def _label_col(i: int) -> str:
    return f"{PREFIX}label_{i}"


def _penalty(i: int) -> str:
    return f"{PREFIX}ncp_{i}"


def _units(unit: str | None) -> Column:
    return F.countDistinct(UNIT) if unit else F.count(F.lit(1))


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


def _with_ranks(df: DataFrame, qis: Sequence[QuasiIdentifier], unit: str | None) -> DataFrame:
    """The input plus one double rank per QI (null: null or outside the order/hierarchy) and the unit."""
    spark = df.sparkSession
    ranked = df.select(
        "*",
        *[
            _col(qi.column).cast("double").alias(_rank(i))
            for i, qi in enumerate(qis)
            if isinstance(qi, NumericQI)
        ],
        *([_col(unit).alias(UNIT)] if unit else []),
    )
    for i, qi in enumerate(qis):
        if isinstance(qi, NumericQI):
            continue
        names = qi.order if isinstance(qi, OrderedQI) else _hierarchy_domain(qi.hierarchy).names
        value = f"{PREFIX}value_{i}"
        lookup = spark.createDataFrame(
            [(v, float(r)) for r, v in enumerate(names)], f"`{value}` string, `{_rank(i)}` double"
        )
        # A broadcast hash join, not a literal map: map lookups scan every key for every row.
        ranked = ranked.join(
            F.broadcast(lookup), _col(qi.column).cast("string") == _col(value), how="left"
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


def _root(ranks: DataFrame, qis, unit, local_rows: int, sample_rows: int, seed: int) -> _Part:
    d = len(qis)
    missing = [F.col(_rank(i)).isNull() | F.isnan(_rank(i)) for i in range(d)]
    stats = ranks.agg(
        F.count(F.lit(1)),
        _units(unit),
        *[F.min(_rank(i)) for i in range(d)],
        *[F.max(_rank(i)) for i in range(d)],
        *[F.count_if(m) for m in missing],
    ).first()
    unranked = {qi.column: stats[2 + 2 * d + i] for i, qi in enumerate(qis) if stats[2 + 2 * d + i]}
    if unranked:  # counts only: the values themselves may be personal data
        raise ValueError(
            f"values that are null, NaN or outside their order/hierarchy, per column: {unranked}"
        )
    sample = np.empty((0, d))
    if stats[0] > local_rows:  # else the in-memory finish takes the whole table: no cut on Spark
        fraction = min(1.0, sample_rows / stats[0])
        sampled = ranks if fraction >= 1 else ranks.sample(fraction=fraction, seed=seed)
        # A bounded sample (about `sample_rows` rows of the QI ranks), so collecting it is safe.
        sample = sampled.select(*[_rank(i) for i in range(d)]).toPandas().to_numpy(dtype=float).reshape(-1, d)
    return _Part(
        ROOT_ID,
        stats[0],
        stats[1],
        np.array(stats[2 : 2 + d], dtype=float),
        np.array(stats[2 + d : 2 + 2 * d], dtype=float),
        np.ones(d, dtype=bool),
        sample,
    )


def _domains(qis, root: _Part, schema: T.StructType) -> tuple[_Domain, ...]:
    def domain(i: int, qi: QuasiIdentifier) -> _Domain:
        if isinstance(qi, OrderedQI):
            return _ordered_domain(qi.order)
        if isinstance(qi, HierarchyQI):
            return _hierarchy_domain(qi.hierarchy)
        integral = isinstance(schema[qi.column].dataType, T.IntegralType)
        return _Domain("numeric", float(root.lo[i]), float(root.hi[i]), integral=integral)

    return tuple(domain(i, qi) for i, qi in enumerate(qis))


def _splittable(part: _Part, rules: _Rules) -> bool:
    widths = _widths(rules.domains, part.lo[None, :], part.hi[None, :])[0]
    return part.units >= 2 * rules.k and bool((part.allowed & (widths > 0)).any())


def _child_bounds(dom: _Domain, lo: float, hi: float) -> list[float]:
    """Cut values between the child subtrees of the node covering lo..hi (hierarchy QIs)."""
    level = int(_lca_level(dom, np.array([lo]), np.array([hi]))[0])
    below = dom.ancestors[level - 1, int(lo) : int(hi) + 1]
    return [float(lo + i) for i in np.flatnonzero(below[:-1] != below[1:])]


def _plan_round(active: list[_Part], rules: _Rules, next_id: int, sample_rows: int) -> list[tuple]:
    """One candidate cut per active partition: (part, QI, cut values, child ids, sample fraction)."""
    groups = np.concatenate([np.full(len(p.sample), g) for g, p in enumerate(active)]).astype(np.int64)
    sample = np.vstack([p.sample for p in active])
    lo = np.vstack([p.lo for p in active])
    hi = np.vstack([p.hi for p in active])
    allowed = np.vstack([p.allowed for p in active])
    dim, cut = _propose_cuts(sample, groups, lo, hi, allowed, rules)
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
    value = F.element_at(F.array(*[F.col(_rank(i)) for i in range(d)]), F.col(DIM) + 1)
    below = F.size(F.filter(F.col(CUTS), lambda c: c < value))
    return F.element_at(F.col(CHILDREN), below + 1)


def _round_stats(assigned: DataFrame, cuts: DataFrame, d: int, unit, seed: int) -> dict[int, _Part]:
    """Exact rows, units and box of every candidate child, plus a sample of its rows; one aggregation."""
    ranks = [F.col(_rank(i)) for i in range(d)]
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


def _apply_cuts(assigned: DataFrame, cuts: DataFrame, d: int) -> DataFrame:
    joined = assigned.join(F.broadcast(cuts), on=PART, how="left")
    part = F.when(F.col(DIM).isNotNull(), _child_of(d)).otherwise(F.col(PART))
    return joined.select(*[c for c in assigned.columns if c != PART], part.alias(PART))


def _with_root_part(ranked: DataFrame) -> DataFrame:
    return ranked.select("*", F.lit(ROOT_ID).cast("long").alias(PART))


def _split_on_spark(ranks: DataFrame, root, rules: _Rules, unit, local_rows, sample_rows, seed):
    """Cut partitions larger than `local_rows` on Spark, one aggregation per round.

    `ranks` holds the QI ranks (and unit) of every row. Returns the kept cuts
    of each round (to replay on whole rows), the final partitions (nothing left
    to cut), the ids of partitions to finish in memory, and the rounds run.
    """
    d = len(rules.domains)
    spark = ranks.sparkSession
    assigned = _with_root_part(ranks)
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
            assigned = _apply_cuts(assigned, replay[-1], d)
    return replay, finals, local_ids, rounds


def _recoded_schema(df: DataFrame, qis) -> T.StructType:
    columns = {qi.column for qi in qis}
    fields = [T.StructField(f.name, T.StringType(), True) if f.name in columns else f for f in df.schema]
    return T.StructType(fields + [T.StructField(_penalty(i), T.DoubleType(), False) for i in range(len(qis))])


def _finals_table(spark, finals: list[_Part], qis, domains) -> DataFrame:
    """Generalized values and penalties of the partitions finished on Spark (a small table)."""
    lo = np.vstack([p.lo for p in finals])
    hi = np.vstack([p.hi for p in finals])
    widths = _widths(domains, lo, hi)
    table = pd.DataFrame({PART: [p.id for p in finals]})
    for i, dom in enumerate(domains):
        table[_label_col(i)] = _labels(dom, lo[:, i], hi[:, i])
        table[_penalty(i)] = widths[:, i]
    schema = T.StructType(
        [T.StructField(PART, T.LongType(), False)]
        + [
            column
            for i in range(len(qis))
            for column in (
                T.StructField(_label_col(i), T.StringType(), False),
                T.StructField(_penalty(i), T.DoubleType(), False),
            )
        ]
    )
    return spark.createDataFrame(table, schema)


def _finish_in_memory(columns, qis, rules: _Rules, unit):
    """The grouped-map function: one Spark-level partition in, its rows recoded out.

    A pandas function because the recursion over a partition's own rows has no
    native Spark form; it also writes the generalized values, so the rows need
    no second shuffle to meet their class's box.
    """
    rank_columns = [_rank(i) for i in range(len(qis))]
    qi_index = {qi.column: i for i, qi in enumerate(qis)}

    def recode(rows: pd.DataFrame) -> pd.DataFrame:
        ranks = rows[rank_columns].to_numpy(dtype=float)
        units = pd.factorize(rows[UNIT])[0] if unit else None
        classes = _mondrian_classes(ranks, units, rules)
        by_class = pd.DataFrame(ranks).groupby(classes)
        lo, hi = by_class.min().to_numpy(), by_class.max().to_numpy()
        widths = _widths(rules.domains, lo, hi)
        out = {}
        for column in columns:
            i = qi_index.get(column)
            out[column] = (
                rows[column] if i is None else _labels(rules.domains[i], lo[:, i], hi[:, i])[classes]
            )
        out |= {_penalty(i): widths[classes, i] for i in range(len(qis))}
        return pd.DataFrame(out, index=rows.index)

    return recode


def _recoded_rows(df, assigned, qis, rules: _Rules, finals, local_ids, unit) -> DataFrame:
    """Every row with its QIs generalized and its per-QI penalty (internal columns)."""
    schema = _recoded_schema(df, qis)
    qi_index = {qi.column: i for i, qi in enumerate(qis)}
    branches = []
    if finals:
        table = _finals_table(df.sparkSession, finals, qis, rules.domains)
        branches.append(
            assigned.join(F.broadcast(table), on=PART, how="inner").select(
                *[_col(_label_col(qi_index[c])).alias(c) if c in qi_index else _col(c) for c in df.columns],
                *[F.col(_penalty(i)) for i in range(len(qis))],
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


def _class_summary(recoded: DataFrame, columns: Sequence[str], unit: str | None, penalties=()) -> DataFrame:
    units = F.countDistinct(_col(unit)) if unit else F.count(F.lit(1))
    return recoded.groupBy(*[_col(c) for c in columns]).agg(
        F.count(F.lit(1)).alias(ROWS_COLUMN),
        units.alias(UNITS_COLUMN),
        *[F.max(F.col(p)).alias(f"{NCP_PREFIX}{c}") for c, p in penalties],
    )


def _check_smallest(classes: DataFrame, k: int, unit: str | None) -> tuple[int, int]:
    count, smallest = classes.agg(F.count(F.lit(1)), F.min(UNITS_COLUMN)).first()
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
) -> MondrianRecoding:
    """Strict Mondrian local recoding of `df` on `qis` so every class has >= k units.

    `unit` is the column identifying a person (k counts distinct units), or
    None to count rows. Partitions of more than `local_rows` rows are cut on
    Spark, from medians of samples of about `sample_rows` rows each (exact counts
    decide); smaller ones are finished in memory, one partition per task. QI
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
    if cut not in CUT_RULES:
        raise ValueError(f"cut must be one of {CUT_RULES}, got {cut!r}")
    ranked = _with_ranks(df, qis, unit)
    # Every round reads the ranks again: keep just those few columns at hand, not the whole rows.
    ranks = ranked.select(*[_rank(i) for i in range(len(qis))], *([UNIT] if unit else []))
    ranks = ranks.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        root = _root(ranks, qis, unit, local_rows, sample_rows, seed)
        if root.units < k:
            raise KAnonymityError(f"the table has {root.units} units, fewer than k = {k}")
        rules = _Rules(_domains(qis, root, df.schema), k, balanced=cut == "balanced")
        replay, finals, local_ids, rounds = _split_on_spark(
            ranks, root, rules, unit, local_rows, sample_rows, seed
        )
    finally:
        ranks.unpersist()
    assigned = functools.reduce(
        lambda rows, cuts: _apply_cuts(rows, cuts, len(qis)), replay, _with_root_part(ranked)
    )
    recoded = _recoded_rows(df, assigned, qis, rules, finals, local_ids, unit)
    recoded = recoded.persist(StorageLevel.MEMORY_AND_DISK)
    penalties = [(qi.column, _penalty(i)) for i, qi in enumerate(qis)]
    classes = _class_summary(recoded, [qi.column for qi in qis], unit, penalties)
    try:
        count, smallest = _check_smallest(classes, k, unit)
    except KAnonymityError:
        recoded.unpersist()
        raise
    data = recoded.select(*[_col(c) for c in df.columns])
    return MondrianRecoding(data, classes, count, smallest, rounds, recoded)


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
    sums = classes.agg(F.sum(ROWS_COLUMN), *[F.sum(F.col(ROWS_COLUMN) * _col(p)) for p in penalties]).first()
    return float(np.mean([s / sums[0] for s in sums[1:]])) if sums[0] else 0.0
