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

from core.kanon.group_medians import GroupMedians, group_medians
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


def _distinct_boxes(dom: Domain, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each box's number among the distinct boxes (in order of first appearance), and their labels."""
    boxes = pd.DataFrame({"lo": lo, "hi": hi}).groupby(["lo", "hi"], sort=False)  # hashed, not sorted
    texts = np.array([_label(dom, a, b) for a, b in boxes.size().index], dtype=object)
    return boxes.ngroup().to_numpy(), texts


def box_labels(dom: Domain, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Generalized value of each box on one QI (formatted once per distinct box)."""
    box_number, texts = _distinct_boxes(dom, lo, hi)
    return texts[box_number]


def box_label_numbers(dom: Domain, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`pd.factorize(box_labels(dom, lo, hi))` without a label per box: each box's number among
    the distinct labels (numbered in order of first appearance), and those labels."""
    box_number, texts = _distinct_boxes(dom, lo, hi)
    # Boxes are numbered by first appearance, so the first box of a label comes first among its boxes.
    label_number, labels = pd.factorize(texts)
    return label_number[box_number], labels


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


def _extremes(values: np.ndarray, groups: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the smallest and largest of `values`, as floats (inf and -inf for a group without rows)."""
    if values.dtype.kind == "f":
        low, high = np.full(size, np.inf), np.full(size, -np.inf)
    else:
        low, high = np.full(size, np.iinfo(values.dtype).max), np.full(size, np.iinfo(values.dtype).min)
        low, high = low.astype(values.dtype), high.astype(values.dtype)
    np.minimum.at(low, groups, values)  # unbuffered, but far cheaper than a groupby that factorizes groups
    np.maximum.at(high, groups, values)
    empty = low > high
    return np.where(empty, np.inf, low), np.where(empty, -np.inf, high)


def _rank_columns(ranks: np.ndarray) -> np.ndarray:
    """One contiguous row of ranks per QI: 32-bit integers when every rank is a whole number that
    fits (the same numbers, and their per-group extremes are found faster), else floats."""
    columns = np.array(ranks, dtype=float).T.copy()
    if columns.size and (columns == np.floor(columns)).all() and np.abs(columns).max() < 2**31:
        return columns.astype(np.int32)
    return columns


def _boxes(columns: np.ndarray, groups: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the minimum and maximum rank on every QI (`columns`: one row of ranks per QI)."""
    extremes = [_extremes(column, groups, size) for column in columns]
    return np.column_stack([lo for lo, _ in extremes]), np.column_stack([hi for _, hi in extremes])


def _cut_at(medians: GroupMedians, lo: np.ndarray, hi: np.ndarray, balanced: bool) -> np.ndarray:
    """A cut per group (left side: values <= cut) at its median, by the cut rule.

    Discrete values pile up on the median. `balanced`: the cut goes just above
    or just below the median value, whichever halves the group more evenly; a
    group without values (a partition its sample missed) is cut at its
    midpoint. Otherwise the median value goes left, as in LeFevre et al., and a
    group whose median is its largest value gets no cut (`hi`: one child).
    """
    m = medians
    above_ok = (m.counts > 0) & (m.median < hi)
    if not balanced:
        return np.where(above_ok, m.median, hi)
    below_ok = m.below > 0
    balanced_above = np.abs(m.at_most - m.counts / 2) <= np.abs(m.below - m.counts / 2)
    take_above = above_ok & (~below_ok | balanced_above)
    return np.where(take_above, m.median, np.where(below_ok, m.below_cut, lo + (hi - lo) / 2))


def _median_cuts(
    values: np.ndarray,
    groups: np.ndarray,
    size: int,
    lo: np.ndarray,
    hi: np.ndarray,
    balanced: bool,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """`_cut_at` each group's median of `values` (the rows a group holds, or a sample of them:
    `lo`/`hi` bound the whole group). `weights`: how many rows each value stands for, else one each."""
    low, high = _extremes(values, groups, size)
    return _cut_at(group_medians(values, groups, weights, low, high), lo, hi, balanced)


def _widest(lo: np.ndarray, hi: np.ndarray, allowed: np.ndarray, rules: Rules) -> np.ndarray:
    """Per group, the allowed QI where its box is widest (-1: none left)."""
    widths = np.where(allowed, box_widths(rules.domains, lo, hi), 0.0)
    return np.where(widths.max(axis=1) > 0, widths.argmax(axis=1), -1)


def _cut_by_value(dim: np.ndarray, rules: Rules) -> np.ndarray:
    """Which groups are cut at a value (a QI chosen that is not a hierarchy)."""
    by_value = np.array([dom.kind != "hierarchy" for dom in rules.domains])
    return (dim >= 0) & by_value[np.maximum(dim, 0)]


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
    dim = _widest(lo, hi, allowed, rules)
    cut = np.full(len(dim), np.nan)
    wants_value = _cut_by_value(dim, rules)
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
    values: np.ndarray,
    groups: np.ndarray,
    dim: np.ndarray,
    cut: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    domains,
) -> np.ndarray:
    """Which child of its group each row goes to, numbered in the children's order (the side of a
    value cut: False, True; a hierarchy's child subtree); `values`: each row's rank on its group's QI."""
    codes = values > cut[groups]  # NaN cut (no value cut): False
    by_subtree = [j for j, dom in enumerate(domains) if dom.kind == "hierarchy" and (dim == j).any()]
    if by_subtree:
        codes, row_dim = codes.astype(np.int64), dim[groups]
    for j in by_subtree:
        dom = domains[j]
        rows = np.flatnonzero(row_dim == j)
        level = lca_level(dom, lo[:, j], hi[:, j])[groups[rows]]
        node = dom.ancestors[level - 1, values[rows].astype(np.int64)]
        # Less the group's smallest node id, the codes stay small and in the nodes' order.
        smallest = np.full(len(dim), np.iinfo(np.int64).max)
        np.minimum.at(smallest, groups[rows], node)
        codes[rows] = node - smallest[groups[rows]]
    return codes


def _value_cuts(
    values: np.ndarray,
    groups: np.ndarray,
    dim: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    rules: Rules,
    weights: np.ndarray | None,
    whole_qis: np.ndarray,
) -> np.ndarray:
    """`propose_cuts`'s cut values from all rows, given each row's rank on its group's QI
    (`whole_qis`: which QIs hold whole numbers only)."""
    every_group = np.arange(len(dim))
    wants_value = _cut_by_value(dim, rules)
    lo_cut, hi_cut = lo[every_group, np.maximum(dim, 0)], hi[every_group, np.maximum(dim, 0)]
    # The box is exact: its bounds are the group's smallest and largest value on the QI.
    low, high = np.where(wants_value, lo_cut, np.nan), np.where(wants_value, hi_cut, np.nan)
    whole = bool(whole_qis[dim[wants_value]].all())
    cut = _cut_at(group_medians(values, groups, weights, low, high, whole), lo_cut, hi_cut, rules.balanced)
    return np.where(wants_value, cut, np.nan)


@dataclass(frozen=True, eq=False)
class _Step:
    """One round's tried cuts: each row's cell (its group and child), the children present (cells
    with rows) and their groups, units per cell, and which groups keep their cut."""

    cells: np.ndarray
    children: np.ndarray
    parent: np.ndarray
    cell_units: np.ndarray
    kept: np.ndarray


def _try_cuts(groups, codes, done, units, weights, k: int) -> _Step:
    """Which groups keep their cut: at least two children, each of k units or more."""
    size = len(done)
    base = int(codes.max(initial=0)) + 1
    cells, cell_keys = groups * base + codes, None
    if size * base > 4 * len(groups) + 1024:  # sparse: number the cells present
        cell_keys, cells = np.unique(cells, return_inverse=True)
        cells = cells.ravel()
    cell_count = size * base if cell_keys is None else len(cell_keys)
    rows = np.bincount(cells, minlength=cell_count)
    children = np.flatnonzero(rows)
    parent = (children if cell_keys is None else cell_keys[children]) // base
    cell_units = (
        rows if units is None and weights is None else _distinct_count(cells, units, cell_count, weights)
    )
    fewest = np.full(size, np.iinfo(np.int64).max)
    np.minimum.at(fewest, parent, cell_units[children])
    kept = ~done & (np.bincount(parent, minlength=size) >= 2) & (fewest >= k)
    return _Step(cells, children, parent, cell_units, kept)


def _next_groups(step: _Step, done: np.ndarray, closed: np.ndarray, next_class: int) -> np.ndarray:
    """Each row's group in the next round: the kept children in order, then the closed groups
    whole; a done group's rows get -1 - their class (classes numbered from `next_class`)."""
    kept_child = step.kept[step.parent]
    group_next = np.zeros(len(done), dtype=np.int64)
    group_next[closed] = kept_child.sum() + np.arange(closed.sum())
    group_next[done] = -1 - (next_class + np.arange(done.sum()))
    cell_next = np.zeros(len(step.cell_units), dtype=np.int64)
    cell_next[step.children] = np.where(kept_child, np.cumsum(kept_child) - 1, group_next[step.parent])
    return cell_next[step.cells]


@dataclass(frozen=True, eq=False)
class Partition:
    """Strict Mondrian's result: each row's class, and each class's box (the minimum and the
    maximum rank of its rows on every QI, one row per class)."""

    classes: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def mondrian_classes(
    ranks: np.ndarray, units: np.ndarray | None, rules: Rules, weights: np.ndarray | None = None
) -> np.ndarray:
    """Strict Mondrian on in-memory ranks: the class index of each row (see `mondrian_partition`)."""
    return mondrian_partition(ranks, units, rules, weights).classes


def mondrian_partition(
    ranks: np.ndarray, units: np.ndarray | None, rules: Rules, weights: np.ndarray | None = None
) -> Partition:
    """Strict Mondrian on in-memory ranks: each row's class and each class's box.

    Level-synchronous: every round tries one cut in every open partition at
    once, with numpy over all rows, so the cost is a few passes per tree level
    rather than Python work per partition. A cut is kept only when every child
    has at least k units; otherwise that QI is closed for the partition and the
    next-widest one is tried in the next round. Classes are numbered in the
    order they close (within a round, in partition order).

    `weights` makes `ranks` a frequency table: each row stands for that many
    records (k counts records; `units` must then be None). The cuts, hence the
    classes, are those of the table with each row repeated `weights` times.
    """
    if weights is not None and units is not None:
        raise ValueError("weights count records: they cannot be combined with units")
    if weights is not None and len(weights) and weights.min() < 1:
        raise ValueError("weights count records: each row must stand for at least one")
    n, d = ranks.shape
    classes = np.full(n, -1, dtype=np.int64)
    class_boxes: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros((0, d)), np.zeros((0, d)))]
    rows = np.arange(n)
    columns = _rank_columns(ranks)
    whole_qis = np.array([bool((column == np.floor(column)).all()) for column in columns], dtype=bool)
    groups = np.zeros(n, dtype=np.int64)
    allowed = np.ones((1 if n else 0, d), dtype=bool)
    counts = _distinct_count(groups, units, len(allowed), weights)
    next_class = 0
    while len(rows):
        size = len(allowed)
        lo, hi = _boxes(columns, groups, size)
        dim = _widest(lo, hi, allowed & (counts >= 2 * rules.k)[:, None], rules)
        done = dim < 0
        class_boxes.append((lo[done], hi[done]))
        codes = np.zeros(len(groups), dtype=bool)
        if not done.all():
            values = columns.ravel()[np.maximum(dim, 0)[groups] * len(groups) + np.arange(len(groups))]
            cut = _value_cuts(values, groups, dim, lo, hi, rules, weights, whole_qis)
            codes = _child_codes(values, groups, dim, cut, lo, hi, rules.domains)
        step = _try_cuts(groups, codes, done, units, weights, rules.k)
        closed = ~done & ~step.kept
        allowed[np.flatnonzero(closed), dim[closed]] = False

        groups = _next_groups(step, done, closed, next_class)
        next_class += int(done.sum())
        kept_child = step.kept[step.parent]
        counts = np.concatenate((step.cell_units[step.children[kept_child]], counts[closed]))
        allowed = np.concatenate((np.ones((kept_child.sum(), d), dtype=bool), allowed[closed]))

        finished = groups < 0
        if finished.any():  # rows of new classes leave the arrays
            classes[rows[finished]] = -1 - groups[finished]
            keep_rows = np.flatnonzero(~finished)
            rows, columns, groups = rows[keep_rows], np.take(columns, keep_rows, axis=1), groups[keep_rows]
            units = None if units is None else units[keep_rows]
            weights = None if weights is None else weights[keep_rows]
    return Partition(classes, *(np.concatenate(side) for side in zip(*class_boxes, strict=True)))
