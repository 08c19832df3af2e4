"""Strict Mondrian on numbers: the quasi-identifier specs, QIs as ranks, and the cut rule.

Pure numpy and pandas, no Spark: the Spark rounds (`transforms.kanon.mondrian_rounds`) and
the in-memory finish of each small partition both run these functions, so a partition is
cut the same way wherever it is cut. Every QI is a number ("rank"): numeric QIs their
value, ordered categoricals their position in a declared order, hierarchy QIs their leaf's
position with each subtree's leaves contiguous. A box of ranks reads as a generalized value
(`box_labels`) and costs its normalized width (`box_widths`, the NCP of its records).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.kanon.hierarchy import Hierarchy

TOP = "*"


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


# --- domains: QIs as ranks ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Domain:
    """One QI as ranks: how a box of ranks reads (label) and what it costs (normalized width)."""

    kind: str  # "numeric", "ordered" or "hierarchy"
    low: float  # smallest rank of the domain (numeric: of the table)
    high: float  # largest rank
    integral: bool = False  # numeric labels without a decimal point
    names: tuple[str, ...] = ()  # rank -> value (ordered; hierarchy leaves)
    ancestors: np.ndarray | None = None  # [level, rank] -> node id (hierarchy)
    node_names: tuple[str, ...] = ()  # node id -> label
    node_leaves: np.ndarray | None = None  # node id -> leaves under it


def ordered_domain(order: Sequence[str]) -> Domain:
    return Domain("ordered", 0.0, float(len(order) - 1), names=tuple(order))


def hierarchy_domain(hierarchy: Hierarchy) -> Domain:
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
    return Domain(
        "hierarchy",
        0.0,
        float(len(leaves) - 1),
        names=tuple(r[0] for r in leaves),
        ancestors=ancestors,
        node_names=tuple(name for _, name in ids),
        node_leaves=np.bincount(ancestors.ravel(), minlength=len(ids)),
    )


def lca_level(dom: Domain, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Level of the lowest hierarchy node covering ranks lo..hi (contiguous subtrees: the ends decide)."""
    same = dom.ancestors[:, lo.astype(np.int64)] == dom.ancestors[:, hi.astype(np.int64)]
    return np.argmax(same, axis=0)


def _lca(dom: Domain, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return dom.ancestors[lca_level(dom, lo, hi), lo.astype(np.int64)]


def _width(dom: Domain, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A box's normalized width on one QI, in [0, 1]: the NCP of each of its records."""
    span = dom.high - dom.low
    if span <= 0:
        return np.zeros(len(lo))
    if dom.kind == "hierarchy":  # span is leaves - 1
        return (dom.node_leaves[_lca(dom, lo, hi)] - 1) / span
    return (hi - lo) / span


def box_widths(domains: Sequence[Domain], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.column_stack([_width(dom, lo[:, j], hi[:, j]) for j, dom in enumerate(domains)])


def _number(value: float, integral: bool) -> str:
    # Adding 0.0 turns -0.0 into 0.0: the two are one value, and grouping already folds them.
    return str(int(value)) if integral else repr(float(value) + 0.0)


def _label(dom: Domain, lo: float, hi: float) -> str:
    if dom.kind == "hierarchy":
        return dom.node_names[int(_lca(dom, np.array([lo]), np.array([hi]))[0])]
    if dom.kind == "ordered":
        spanned = dom.names[int(lo) : int(hi) + 1]
        return spanned[0] if len(spanned) == 1 else "{" + "|".join(spanned) + "}"
    if lo == hi:
        return _number(lo, dom.integral)
    return f"[{_number(lo, dom.integral)}, {_number(hi, dom.integral)}]"


def box_labels(dom: Domain, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Generalized value of each box on one QI (formatted once per distinct box)."""
    boxes = pd.DataFrame({"lo": lo, "hi": hi}).groupby(["lo", "hi"], sort=False)  # hashed, not sorted
    texts = np.array([_label(dom, a, b) for a, b in boxes.size().index], dtype=object)
    return texts[boxes.ngroup().to_numpy()]


# --- the algorithm on numbers (shared by the driver and the in-memory finish) -------------------------

CUT_RULES = ("balanced", "median")


@dataclass(frozen=True, eq=False)
class Rules:
    """What every cut obeys: the QIs' domains, k, and where beside the median to cut."""

    domains: tuple[Domain, ...]
    k: int
    balanced: bool


def _distinct_count(
    groups: np.ndarray, units: np.ndarray | None, size: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Units per group (rows when there is no unit column); unit codes < 0 are null and count as no one.
    With `weights` (rows each entry stands for, no unit column) the rows are summed."""
    if weights is not None:
        return np.bincount(groups, weights=weights, minlength=size).astype(np.int64)
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


_HISTOGRAM_CELLS = 1 << 22  # groups x distinct values up to which medians are counted, not sorted


def _median_by_histogram(
    offsets: np.ndarray, groups: np.ndarray, size: int, weights: np.ndarray, span: int
) -> np.ndarray:
    """`_weighted_lower_median` of whole numbers 0..span-1 by counting: no sort."""
    cells = np.bincount(groups * span + offsets.astype(np.int64), weights=weights, minlength=size * span)
    cumulative = np.cumsum(cells.reshape(size, span), axis=1)
    totals = cumulative[:, -1]
    target = np.floor((totals - 1) / 2)
    position = (cumulative <= target[:, None]).sum(axis=1)
    return np.where(totals > 0, position, np.nan)


def _weighted_lower_median(
    values: np.ndarray, groups: np.ndarray, size: int, weights: np.ndarray
) -> np.ndarray:
    """Per group, the lower median of `values` each repeated `weights` times (NaN for an empty group):
    the value at position (n - 1) // 2 of the group's n sorted rows, as pandas' quantile(0.5, "lower")."""
    if not len(values):
        return np.full(size, np.nan)
    low, span = values.min(), values.max() - values.min() + 1
    if size * span <= max(4 * len(values), _HISTOGRAM_CELLS) and (values == np.floor(values)).all():
        return _median_by_histogram(values - low, groups, size, weights, int(span)) + low
    order = np.lexsort((values, groups))
    sorted_groups, sorted_weights = groups[order], weights[order]
    totals = np.bincount(groups, weights=weights, minlength=size).astype(np.int64)
    before = np.cumsum(sorted_weights) - sorted_weights  # rows before each entry, over all groups
    before -= (np.cumsum(totals) - totals)[sorted_groups]  # ... within its own group
    target = ((totals - 1) // 2)[sorted_groups]
    hit = (before <= target) & (before + sorted_weights > target)
    median = np.full(size, np.nan)
    median[sorted_groups[hit]] = values[order][hit]
    return median


def _median_cuts(
    values: np.ndarray,
    groups: np.ndarray,
    size: int,
    lo: np.ndarray,
    hi: np.ndarray,
    balanced: bool,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """A cut per group (left side: values <= cut) at the median of `values`.

    Discrete values pile up on the median. `balanced`: the cut goes just above
    or just below the median value, whichever halves the group more evenly; a
    group without values (a partition its sample missed) is cut at its
    midpoint. Otherwise the median value goes left, as in LeFevre et al., and a
    group whose median is its largest value gets no cut (`hi`: one child).
    `weights`: how many rows each value stands for (a frequency table), else one each.
    """
    every_group = np.arange(size)
    if weights is None:
        by_group = pd.Series(values).groupby(groups)
        median = by_group.quantile(0.5, interpolation="lower").reindex(every_group).to_numpy()
    else:
        median = _weighted_lower_median(values, groups, size, weights)
    under = values < median[groups]
    below_cut = pd.Series(values).where(under).groupby(groups).max().reindex(every_group).to_numpy()
    ones = np.ones(len(values)) if weights is None else weights.astype(float)
    counts = np.bincount(groups, weights=ones, minlength=size)
    at_most = np.bincount(groups, weights=ones * (values <= median[groups]), minlength=size)
    below = np.bincount(groups, weights=ones * under, minlength=size)
    above_ok = (counts > 0) & (median < hi)
    if not balanced:
        return np.where(above_ok, median, hi)
    below_ok = below > 0
    balanced_above = np.abs(at_most - counts / 2) <= np.abs(below - counts / 2)
    take_above = above_ok & (~below_ok | balanced_above)
    return np.where(take_above, median, np.where(below_ok, below_cut, lo + (hi - lo) / 2))


def propose_cuts(
    ranks: np.ndarray,
    groups: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    allowed: np.ndarray,
    rules: Rules,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the QI to cut (-1: none left) and, unless it is a hierarchy, the cut value.

    `ranks`/`groups` may be all rows (exact), a sample, or distinct rows with their
    `weights` (exact); `lo`/`hi` are exact.
    """
    widths = np.where(allowed, box_widths(rules.domains, lo, hi), 0.0)
    dim = np.where(widths.max(axis=1) > 0, widths.argmax(axis=1), -1)
    cut = np.full(len(dim), np.nan)
    by_value = np.array([dom.kind != "hierarchy" for dom in rules.domains])
    wants_value = (dim >= 0) & by_value[np.maximum(dim, 0)]
    rows = np.flatnonzero(wants_value[groups])
    if wants_value.any():
        nodes = np.flatnonzero(wants_value)
        position = np.zeros(len(dim), dtype=np.int64)
        position[nodes] = np.arange(len(nodes))
        compact = position[groups[rows]]
        values = ranks[rows, dim[groups[rows]]]
        lo_cut, hi_cut = lo[nodes, dim[nodes]], hi[nodes, dim[nodes]]
        row_weights = None if weights is None else weights[rows]
        cut[nodes] = _median_cuts(values, compact, len(nodes), lo_cut, hi_cut, rules.balanced, row_weights)
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
            level = lca_level(dom, lo[:, j], hi[:, j])[groups[rows]]
            codes[rows] = dom.ancestors[level - 1, ranks[rows, j].astype(np.int64)]
        else:
            codes[rows] = ranks[rows, j] > cut[groups[rows]]
    return codes


def mondrian_classes(
    ranks: np.ndarray, units: np.ndarray | None, rules: Rules, weights: np.ndarray | None = None
) -> np.ndarray:
    """Strict Mondrian on in-memory ranks: the class index of each row.

    Level-synchronous: every round tries one cut in every open partition at
    once, with numpy over all rows, so the cost is a few sorts per tree level
    rather than Python work per partition. A cut is kept only when every child
    has at least k units; otherwise that QI is closed for the partition and the
    next-widest one is tried in the next round.

    `weights` makes `ranks` a frequency table: each row stands for that many
    records (k counts records; `units` must then be None). The cuts, hence the
    classes, are those of the table with each row repeated `weights` times.
    """
    if weights is not None and units is not None:
        raise ValueError("weights count records: they cannot be combined with units")
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
        sub_weights = None if weights is None else weights[rows]
        lo, hi = _boxes(sub_ranks, groups)
        splittable = _distinct_count(groups, sub_units, size, sub_weights) >= 2 * rules.k
        dim, cut = propose_cuts(sub_ranks, groups, lo, hi, allowed & splittable[:, None], rules, sub_weights)
        done = dim < 0
        class_of = np.cumsum(done) - 1 + next_class
        finished = done[groups]
        classes[rows[finished]] = class_of[groups[finished]]
        next_class += int(done.sum())

        codes = _child_codes(sub_ranks, groups, dim, cut, lo, hi, rules.domains)
        base = int(codes.max(initial=0)) + 1
        children, child_of_row = _compact(groups * base + codes, size * base)
        parent = children // base
        child_units = _distinct_count(child_of_row, sub_units, len(children), sub_weights)
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
